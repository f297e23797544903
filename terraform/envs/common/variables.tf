# Infrastructure settings (terraform.tfvars of each environment) and the
# application release (release.auto.tfvars), kept in separate files so
# that a release changes one file and an infrastructure change never
# touches it.

variable "environment" {
  description = "Which environment this stack is: dev, stg or prod. The floors in main.tf get stricter along that chain."
  type        = string

  validation {
    condition     = contains(["dev", "stg", "prod"], var.environment)
    error_message = "environment must be dev, stg or prod."
  }
}

variable "region" {
  description = "The region of every resource."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-east-1."
  }
}

variable "allowed_account_ids" {
  description = "The account(s) this environment may be applied to; the provider refuses any other."
  type        = list(string)

  validation {
    condition     = length(var.allowed_account_ids) > 0 && alltrue([for a in var.allowed_account_ids : can(regex("^[0-9]{12}$", a))])
    error_message = "allowed_account_ids must list 12-digit account ids."
  }
}

variable "bucket_suffix" {
  description = "Appended to the bucket names (S3 names are global): e.g. -123456789012. Empty keeps the names host.toml in deploy/k8s uses."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^(-[a-z0-9]+)*$", var.bucket_suffix))
    error_message = "bucket_suffix must be empty or -<a-z0-9> segments."
  }
}

variable "runtimes" {
  description = "Which runtimes to deploy: lambda, rosa (containers on ROSA or EKS), or both (they read the same queue and share the memory table)."
  type        = set(string)

  validation {
    condition     = length(var.runtimes) > 0 && alltrue([for r in var.runtimes : contains(["lambda", "rosa"], r)])
    error_message = "runtimes must name lambda, rosa or both."
  }
}

variable "lambda" {
  description = "The function's size and concurrency."
  type = object({
    memory_size             = optional(number, 1024)
    timeout                 = optional(number, 60)
    reserved_concurrency    = optional(number, 10)
    provisioned_concurrency = optional(number, 0)
    http_entry              = optional(string, "api-gateway")
  })
  default = {}
}

variable "rosa" {
  description = "The cluster the containers run on: its IAM OIDC provider and the overlay's namespace. Needed when runtimes has rosa."
  type = object({
    oidc_provider_arn = string
    namespace         = string
    service_account   = optional(string, "agenthost")
  })
  default = null
}

variable "gateway" {
  description = "The tool gateway: the JWT issuer and audiences callers' tokens come from, stage throttling, and (without the lambda runtime) the load balancer listener in front of the containers. null: no gateway."
  type = object({
    jwt_issuer    = string
    jwt_audiences = list(string)
    rate_limit    = optional(number, 100)
    burst_limit   = optional(number, 200)
    http_backend = optional(object({
      listener_arn       = string
      subnet_ids         = list(string)
      security_group_ids = list(string)
    }))
  })
  default = null
}

variable "events" {
  description = "Queue redrive and archive settings."
  type = object({
    max_receive_count      = optional(number, 8)
    archive_retention_days = optional(number, 30)
  })
  default = {}
}

variable "audit" {
  description = "Object Lock default retention of the audit bucket ([audit.s3] retention_mode and retention_days in host.toml must say the same)."
  type = object({
    retention_mode = string
    retention_days = number
  })
}

variable "audit_prefix" {
  description = "[audit.s3] prefix: the key prefix the runtimes write under."
  type        = string
  default     = "trail"
}

variable "log_retention_days" {
  description = "Retention of every log group (function, gateway, workflow, containers), in days."
  type        = number
}

variable "deletion_protection" {
  description = "Deletion protection on the memory and registry tables."
  type        = bool
}

variable "force_destroy" {
  description = "Let `terraform destroy` empty the registry and config buckets (dev only)."
  type        = bool
  default     = false
}

variable "kms_deletion_window_days" {
  description = "Days a scheduled deletion of the platform and audit keys waits."
  type        = number
  default     = 30
}

variable "alarm_topic" {
  description = "Create the encrypted SNS topic every alarm notifies."
  type        = bool
  default     = false
}

variable "alarm_action_arns" {
  description = "Further alarm actions (an existing topic, an incident tool)."
  type        = list(string)
  default     = []
}

variable "bedrock_model_ids" {
  description = "Bedrock models the runtimes may call: foundation model ids in this region (anthropic.claude-3-5-sonnet-20240620-v1:0) or cross-region inference profile ids (us.anthropic.claude-sonnet-4-20250514-v1:0), which grant the profile and the model it routes to."
  type        = list(string)
  default     = []
}

variable "model_api_key_secrets" {
  description = "Secrets to make for model API keys, by name, with a description."
  type        = map(string)
  default     = {}
}

variable "verified_permissions" {
  description = "Create the Verified Permissions policy store with the host's Cedar schema."
  type        = bool
  default     = false
}

# The application release: release.auto.tfvars.

variable "release" {
  description = "The application release this environment runs: agent manifest version, component digests, Lambda package digest, container image digest (all sha256:<hex>)."
  type = object({
    manifest_version       = string
    component_digests      = map(string)
    lambda_package_digest  = string
    container_image_digest = string
  })

  validation {
    condition = (
      can(regex("^sha256:[0-9a-f]{64}$", var.release.lambda_package_digest)) &&
      can(regex("^sha256:[0-9a-f]{64}$", var.release.container_image_digest)) &&
      alltrue([for d in values(var.release.component_digests) : can(regex("^sha256:[0-9a-f]{64}$", d))])
    )
    error_message = "Every digest in release must match ^sha256:[0-9a-f]{64}$."
  }
}

variable "lambda_canary" {
  description = "During a canary: the version the live alias keeps and the share the new version gets (release.auto.tfvars). null: the new version takes all traffic."
  type = object({
    stable_version = string
    weight         = number
  })
  default = null
}
