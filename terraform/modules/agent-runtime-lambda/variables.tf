variable "name_prefix" {
  description = "Prefix of every name, e.g. agenthost-prod: the function is <name_prefix>-runtime unless function_name says otherwise."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,38}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 4 to 40 characters of a-z, 0-9 and -, starting with a letter."
  }
}

variable "function_name" {
  description = "Name of the function; null for <name_prefix>-runtime."
  type        = string
  default     = null

  validation {
    condition     = var.function_name == null ? true : can(regex("^[A-Za-z0-9_-]{1,64}$", var.function_name))
    error_message = "function_name must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -."
  }
}

variable "package" {
  description = <<-EOT
    The package scripts/package-lambda.sh builds (bootstrap, config/, registry/): a local
    zip (file) or an S3 object (s3_bucket, s3_key, optionally s3_object_version). Give one.
  EOT
  type = object({
    file              = optional(string)
    s3_bucket         = optional(string)
    s3_key            = optional(string)
    s3_object_version = optional(string)
  })

  validation {
    condition     = (var.package.file != null) != (var.package.s3_bucket != null && var.package.s3_key != null)
    error_message = "package must give either file, or s3_bucket and s3_key, not both."
  }
}

variable "package_digest" {
  description = "SHA-256 of the package: sha256: and 64 hex digits (release.auto.tfvars). A local file is checked against it; an S3 package is recorded with it (name its key after the digest)."
  type        = string

  validation {
    condition     = can(regex("^sha256:[0-9a-f]{64}$", var.package_digest))
    error_message = "package_digest must match ^sha256:[0-9a-f]{64}$."
  }
}

variable "memory_size" {
  description = "MemorySize in MiB. The host sizes its engine from it (one instance slot per 64 MiB, 4 to 64; guest memory at most half the function); the bundle's artifacts are precompiled for one size (package-lambda.sh --memory): keep them equal."
  type        = number
  default     = 1024

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240 && floor(var.memory_size) == var.memory_size
    error_message = "memory_size must be a whole number of MiB from 128 to 10240 (Lambda's range)."
  }
}

variable "timeout" {
  description = "Function timeout in seconds: above the host's [limits] timeout_ms, so a call resumed by the settle sweep can finish."
  type        = number
  default     = 60

  validation {
    condition     = var.timeout >= 3 && var.timeout <= 900 && floor(var.timeout) == var.timeout
    error_message = "timeout must be a whole number of seconds from 3 to 900."
  }
}

variable "ephemeral_storage_mb" {
  description = "Size of /tmp in MiB: the data directory (/tmp/agenthost), audit segments not yet shipped, compiled artifacts."
  type        = number
  default     = 1024

  validation {
    condition     = var.ephemeral_storage_mb >= 512 && var.ephemeral_storage_mb <= 10240
    error_message = "ephemeral_storage_mb must be from 512 to 10240."
  }
}

variable "log_level" {
  description = "AGENTHOST_LOG: the host's log filter, e.g. info or agenthost=debug."
  type        = string
  default     = "info"

  validation {
    condition     = can(regex("^[A-Za-z0-9_:=,.-]+$", var.log_level))
    error_message = "log_level must be a tracing filter such as info or agenthost=debug."
  }
}

variable "environment" {
  description = "Further environment variables. AGENTHOST_CONFIG (/var/task/config, where the package puts config/) and AGENTHOST_LOG are set by the module; AWS_* names are Lambda's."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([for k in keys(var.environment) :
    can(regex("^[A-Za-z][A-Za-z0-9_]*$", k)) && !startswith(k, "AWS_") && !contains(["AGENTHOST_CONFIG", "AGENTHOST_LOG"], k)])
    error_message = "environment keys must be variable names, not AWS_* and not AGENTHOST_CONFIG or AGENTHOST_LOG."
  }
}

variable "kms_key_arn" {
  description = "The platform key: the function's environment variables and its log group are encrypted with it."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:kms:[a-z0-9-]+:[0-9]{12}:key/[a-f0-9-]+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (not an alias)."
  }
}

variable "log_retention_days" {
  description = "Retention of the function's log group, in days (a value CloudWatch Logs accepts)."
  type        = number
  default     = 90

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch Logs' retention values (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions: the most environments at once, which bounds what the function can ask of the memory table and Bedrock."
  type        = number
  default     = 10

  validation {
    condition     = var.reserved_concurrency >= 1 && floor(var.reserved_concurrency) == var.reserved_concurrency
    error_message = "reserved_concurrency must be a whole number of at least 1 (0 would stop the function)."
  }
}

variable "provisioned_concurrency" {
  description = "Provisioned concurrency on the live alias (0: none): environments kept started, so calls meet no cold start."
  type        = number
  default     = 0

  validation {
    condition     = var.provisioned_concurrency >= 0 && floor(var.provisioned_concurrency) == var.provisioned_concurrency
    error_message = "provisioned_concurrency must be a whole number of at least 0."
  }
}

variable "canary" {
  description = <<-EOT
    A canary on the live alias: the alias keeps stable_version (the version in service before
    this release) and sends weight (0 < weight < 1) of invocations to the version this apply
    publishes. null: the alias points at the new version alone. Set in release.auto.tfvars.
  EOT
  type = object({
    stable_version = string
    weight         = number
  })
  default = null

  validation {
    condition     = var.canary == null ? true : can(regex("^[0-9]+$", var.canary.stable_version)) && var.canary.weight > 0 && var.canary.weight < 1
    error_message = "canary.stable_version must be a published version number and canary.weight between 0 and 1 (exclusive)."
  }
}

variable "queue" {
  description = "The events queue to read through an event source mapping, or null for none. batch_size and max_batching_window_seconds shape batches; max_concurrency bounds the environments the queue may take (null: up to reserved concurrency)."
  type = object({
    arn                         = string
    batch_size                  = optional(number, 10)
    max_batching_window_seconds = optional(number, 0)
    max_concurrency             = optional(number)
  })
  default = null

  validation {
    condition = var.queue == null ? true : (
      can(regex("^arn:[a-z-]+:sqs:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+$", var.queue.arn)) &&
      var.queue.batch_size >= 1 && var.queue.batch_size <= 10000 &&
      var.queue.max_batching_window_seconds >= 0 && var.queue.max_batching_window_seconds <= 300 &&
      (var.queue.batch_size <= 10 || var.queue.max_batching_window_seconds >= 1) &&
      (var.queue.max_concurrency == null ? true : var.queue.max_concurrency >= 2 && var.queue.max_concurrency <= 1000)
    )
    error_message = "queue: an SQS ARN; batch_size 1 to 10000 (above 10 needs max_batching_window_seconds of at least 1); max_batching_window_seconds 0 to 300; max_concurrency 2 to 1000 or null."
  }
}

variable "http_entry" {
  description = "How HTTP reaches the function: function-url (a Function URL on the live alias; the host's bearer tokens authenticate, as SigV4 would take their header), api-gateway (tool-gateway integrates the alias and grants itself the invoke) or none."
  type        = string
  default     = "api-gateway"

  validation {
    condition     = contains(["function-url", "api-gateway", "none"], var.http_entry)
    error_message = "http_entry must be function-url, api-gateway or none."
  }
}

variable "settle_schedule" {
  description = "Schedule of the settle event ({\"settle\": true}): each one answers paused workflows whose approval was decided elsewhere or expired. A deployment without serve replicas needs it. null: none."
  type        = string
  default     = "rate(1 minute)"

  validation {
    condition     = var.settle_schedule == null ? true : can(regex("^(rate\\([0-9]+ (minute|minutes|hour|hours)\\)|cron\\(.+\\))$", var.settle_schedule))
    error_message = "settle_schedule must be an EventBridge rate(...) or cron(...) expression, or null."
  }
}

variable "access" {
  description = <<-EOT
    What the function reaches (the runtime-policy of platform-control-plane). registry: null
    when the function reads the package's bundle ([registry] dir = "../registry"), else the
    S3 registry (write = false: deploys go through the control plane, not this function).
    audit_prefix: [audit.s3] prefix; the function writes under <audit_prefix>/lambda/.
  EOT
  type = object({
    memory_table_arn = string
    registry = optional(object({
      table_arn       = string
      bucket_arn      = string
      prefix          = string
      write           = optional(bool, false)
      share_artifacts = optional(bool, false)
    }))
    audit_bucket_arn         = string
    audit_prefix             = string
    queue_arn                = optional(string)
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
}

variable "vpc_config" {
  description = "Subnets and security groups to run the function in a VPC (egress then needs a NAT gateway or VPC endpoints for every AWS service above); null: Lambda's own network."
  type = object({
    subnet_ids         = list(string)
    security_group_ids = list(string)
  })
  default = null
}

variable "code_signing_config_arn" {
  description = "A Lambda code signing configuration (AWS Signer) the package must satisfy, or null."
  type        = string
  default     = null
}

variable "permissions_boundary_arn" {
  description = "A permissions boundary for the function's role, or null."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource (the environment's provider default_tags come on top)."
  type        = map(string)
  default     = {}
}
