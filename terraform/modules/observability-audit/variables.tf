variable "name_prefix" {
  description = "Prefix of every name, e.g. agenthost-prod: the bucket is <name_prefix>-audit, the key alias alias/<name_prefix>-audit, the secrets <name_prefix>/audit-signing-key and <name_prefix>/cache-key."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,38}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 4 to 40 characters of a-z, 0-9 and -, starting with a letter."
  }
}

variable "audit_bucket_name" {
  description = "Name of the audit bucket ([audit.s3] bucket); null for <name_prefix>-audit."
  type        = string
  default     = null

  validation {
    condition     = var.audit_bucket_name == null ? true : can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.audit_bucket_name))
    error_message = "audit_bucket_name must be a valid S3 bucket name."
  }
}

variable "audit_retention_mode" {
  description = "Object Lock mode of the bucket's default retention. COMPLIANCE: nobody, the root user included, can delete or shorten a segment's retention. GOVERNANCE: principals with s3:BypassGovernanceRetention can (dev only)."
  type        = string
  default     = "COMPLIANCE"

  validation {
    condition     = contains(["COMPLIANCE", "GOVERNANCE"], var.audit_retention_mode)
    error_message = "audit_retention_mode must be COMPLIANCE or GOVERNANCE."
  }
}

variable "audit_retention_days" {
  description = "Days every object is locked by the bucket's default retention ([audit.s3] retention_days should say the same); objects move to Glacier after it."
  type        = number

  validation {
    condition     = var.audit_retention_days >= 1 && var.audit_retention_days <= 36500 && floor(var.audit_retention_days) == var.audit_retention_days
    error_message = "audit_retention_days must be a whole number from 1 to 36500."
  }
}

variable "audit_expire_after_days" {
  description = "Days after which audit objects are deleted (null: kept for ever, in Glacier). Must exceed audit_retention_days."
  type        = number
  default     = null

  validation {
    condition     = var.audit_expire_after_days == null ? true : var.audit_expire_after_days >= 2 && floor(var.audit_expire_after_days) == var.audit_expire_after_days
    error_message = "audit_expire_after_days must be a whole number of days, or null."
  }
}

variable "kms_deletion_window_days" {
  description = "Days a scheduled deletion of the audit key waits (7 to 30)."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30 && floor(var.kms_deletion_window_days) == var.kms_deletion_window_days
    error_message = "kms_deletion_window_days must be a whole number from 7 to 30."
  }
}

variable "log_retention_days" {
  description = "Retention of the containers' log group, in days (a value CloudWatch Logs accepts)."
  type        = number
  default     = 90

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch Logs' retention values (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "lambda_function_name" {
  description = "The Lambda runtime's function, for its alarms and dashboard widgets; null where there is none."
  type        = string
  default     = null
}

variable "lambda_alarms" {
  description = "Thresholds of the Lambda alarms: errors per minute (problems answered to direct invokes count as errors), throttles per 5 minutes, p95 duration in milliseconds."
  type = object({
    errors_per_minute = optional(number, 5)
    throttles         = optional(number, 1)
    p95_duration_ms   = optional(number, 10000)
  })
  default = {}

  validation {
    condition     = var.lambda_alarms.errors_per_minute >= 1 && var.lambda_alarms.throttles >= 1 && var.lambda_alarms.p95_duration_ms >= 1
    error_message = "lambda_alarms thresholds must be at least 1."
  }
}

variable "dlq_names" {
  description = "Dead-letter queues to alarm on: any message in one is an event or call nobody handled."
  type        = list(string)
  default     = []
}

variable "approvals_pending" {
  description = <<-EOT
    Alarm when requests wait for an approver. agenthost exposes the gauge
    agenthost_approvals_pending on /metrics (Prometheus); the operator publishes it to
    CloudWatch under this namespace and metric name with the dimension Environment =
    <name_prefix> (e.g. the CloudWatch agent's Prometheus scraping, or an OpenTelemetry
    collector's EMF exporter). null: no alarm.
  EOT
  type = object({
    namespace   = optional(string, "Agenthost")
    metric_name = optional(string, "agenthost_approvals_pending")
    threshold   = optional(number, 50)
  })
  default = {}

  validation {
    condition     = var.approvals_pending == null ? true : var.approvals_pending.threshold >= 1 && !startswith(var.approvals_pending.namespace, "AWS/")
    error_message = "approvals_pending.threshold must be at least 1, and the namespace may not start with AWS/."
  }
}

variable "create_alarm_topic" {
  description = "Create an SNS topic (encrypted with the audit key) that every alarm notifies."
  type        = bool
  default     = false
}

variable "alarm_action_arns" {
  description = "Further alarm actions (SNS topics, incident tools) every alarm notifies."
  type        = list(string)
  default     = []
}

variable "xray_service_names" {
  description = "Services (the Lambda function's name; the containers' OTEL service name) the X-Ray group gathers."
  type        = list(string)

  validation {
    condition     = length(var.xray_service_names) > 0 && alltrue([for s in var.xray_service_names : can(regex("^[A-Za-z0-9._:-]+$", s))])
    error_message = "xray_service_names needs at least one name of A-Z, a-z, 0-9, ., _, : and -."
  }
}

variable "audit_secret_name" {
  description = "Name of the audit signing key's secret ([keys] audit_secret); null for <name_prefix>/audit-signing-key."
  type        = string
  default     = null
}

variable "cache_secret_name" {
  description = "Name of the artifact cache key's secret ([keys] cache_secret); null for <name_prefix>/cache-key."
  type        = string
  default     = null
}

variable "model_api_key_secrets" {
  description = "Secrets for model API keys ([model] backend = \"openai\" and tenant [model] tables), by name, with a description each."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for n in keys(var.model_api_key_secrets) : can(regex("^[A-Za-z0-9/_+=.@-]{1,512}$", n))])
    error_message = "Secret names are 1 to 512 characters of A-Z, a-z, 0-9 and /_+=.@-."
  }
}

variable "secret_recovery_window_days" {
  description = "Days a deleted secret can still be restored (7 to 30)."
  type        = number
  default     = 30

  validation {
    condition     = var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30
    error_message = "secret_recovery_window_days must be from 7 to 30."
  }
}

variable "tags" {
  description = "Tags added to every resource (the environment's provider default_tags come on top)."
  type        = map(string)
  default     = {}
}
