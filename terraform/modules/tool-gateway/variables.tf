variable "name_prefix" {
  description = "Prefix of every name, e.g. agenthost-prod: the API is <name_prefix>-api."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,38}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 4 to 40 characters of a-z, 0-9 and -, starting with a letter."
  }
}

variable "backend" {
  description = <<-EOT
    Where requests go; give one. lambda: the function's live alias (function_name, qualifier,
    invoke_arn), with payload format 2.0, which the host reads. http: a load balancer
    listener in front of the containers (listener_arn), reached through a VPC link in the
    given subnets and security groups.
  EOT
  type = object({
    lambda = optional(object({
      function_name = string
      qualifier     = string
      invoke_arn    = string
    }))
    http = optional(object({
      listener_arn       = string
      subnet_ids         = list(string)
      security_group_ids = list(string)
    }))
  })

  validation {
    condition     = (var.backend.lambda == null) != (var.backend.http == null)
    error_message = "backend must give exactly one of lambda or http."
  }
}

variable "jwt" {
  description = "The issuer and audiences the JWT authorizer accepts: the issuer of host.toml's [[server.issuers]] whose tokens callers bring (the host checks the token again, with its roles and tenants)."
  type = object({
    issuer    = string
    audiences = list(string)
  })

  validation {
    condition     = startswith(var.jwt.issuer, "https://") && length(var.jwt.audiences) > 0
    error_message = "jwt.issuer must be an https:// issuer URL and jwt.audiences must name at least one audience."
  }
}

variable "jwt_routes" {
  description = "Routes behind the JWT authorizer: the data plane (tools, agents, runs, approvals, components) and /metrics."
  type        = list(string)
  default     = ["ANY /v1/{proxy+}", "GET /metrics"]
}

variable "iam_routes" {
  description = "Routes behind IAM (SigV4) authorization: the ones the host answers without a bearer token (health, readiness, the OpenAPI document), for monitors with execute-api:Invoke. SigV4 takes the Authorization header, so it cannot guard a route that needs the host's bearer token."
  type        = list(string)
  default     = ["GET /healthz", "GET /readyz", "GET /openapi.json"]
}

variable "throttling" {
  description = "Stage-wide throttling: steady requests per second and burst."
  type = object({
    rate_limit  = optional(number, 100)
    burst_limit = optional(number, 200)
  })
  default = {}

  validation {
    condition     = var.throttling.rate_limit >= 1 && var.throttling.burst_limit >= 1 && var.throttling.burst_limit <= 5000
    error_message = "throttling.rate_limit must be at least 1 and burst_limit from 1 to 5000."
  }
}

variable "kms_key_arn" {
  description = "The platform key, for the access log group."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:kms:[a-z0-9-]+:[0-9]{12}:key/[a-f0-9-]+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (not an alias)."
  }
}

variable "log_retention_days" {
  description = "Retention of the access log group, in days (a value CloudWatch Logs accepts)."
  type        = number
  default     = 90

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch Logs' retention values (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "tags" {
  description = "Tags added to every resource (the environment's provider default_tags come on top)."
  type        = map(string)
  default     = {}
}
