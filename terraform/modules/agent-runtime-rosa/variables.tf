variable "name_prefix" {
  description = "Prefix of every name, e.g. agenthost-prod: the role is <name_prefix>-runtime, the name deploy/k8s/overlays/*/kustomization.yaml annotate the service account with."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,38}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 4 to 40 characters of a-z, 0-9 and -, starting with a letter."
  }
}

variable "oidc_provider_arn" {
  description = "ARN of the IAM OIDC provider of the cluster's service account issuer (ROSA with STS: the cluster's OIDC configuration; EKS: the cluster's IAM OIDC provider)."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:iam::[0-9]{12}:oidc-provider/[^\\s]+$", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be an IAM OIDC provider ARN (arn:aws:iam::<account>:oidc-provider/<issuer host and path>)."
  }
}

variable "namespace" {
  description = "Namespace the agenthost Deployment runs in (the overlay's namespace, e.g. agenthost-prod)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a Kubernetes DNS label."
  }
}

variable "service_account" {
  description = "The Deployment's service account (deploy/k8s/base/serviceaccount.yaml: agenthost)."
  type        = string
  default     = "agenthost"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.service_account))
    error_message = "service_account must be a Kubernetes object name."
  }
}

variable "max_session_hours" {
  description = "Longest session of the role, in hours (the pod identity webhook refreshes tokens before they expire)."
  type        = number
  default     = 1

  validation {
    condition     = var.max_session_hours >= 1 && var.max_session_hours <= 12 && floor(var.max_session_hours) == var.max_session_hours
    error_message = "max_session_hours must be a whole number from 1 to 12."
  }
}

variable "access" {
  description = <<-EOT
    What the containers reach (the runtime-policy of platform-control-plane). registry.write
    (default true): deploys, aliases, promotions and rollbacks go through the server's
    routes. share_artifacts (default true): replicas store what they compile for each other
    ([registry] share_artifacts). audit_prefix: [audit.s3] prefix; each pod writes its
    stream under it.
  EOT
  type = object({
    memory_table_arn = string
    registry = object({
      table_arn       = string
      bucket_arn      = string
      prefix          = string
      write           = optional(bool, true)
      share_artifacts = optional(bool, true)
    })
    audit_bucket_arn         = string
    audit_prefix             = string
    queue_arn                = string
    queue_url                = string
    bus_arn                  = optional(string)
    step_functions_callbacks = optional(bool, true)
    secret_arns              = optional(list(string), [])
    kms_key_arns             = optional(list(string), [])
    bedrock_model_arns       = optional(list(string), [])
  })

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.access.audit_prefix))
    error_message = "access.audit_prefix must be a non-empty S3 key prefix without leading or trailing slashes (the host's [audit.s3] prefix): an empty one would grant bucket//... keys the host never writes."
  }

  validation {
    condition     = can(regex("^https://sqs\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/[0-9]{12}/[A-Za-z0-9_-]+$", var.access.queue_url))
    error_message = "access.queue_url must be an SQS queue URL."
  }
}

variable "permissions_boundary_arn" {
  description = "A permissions boundary for the role, or null."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource (the environment's provider default_tags come on top)."
  type        = map(string)
  default     = {}
}
