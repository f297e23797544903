variable "region" {
  description = "The region the runtime's AWS clients call (the KMS condition names the services of this region)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-east-1."
  }
}

variable "memory_table_arn" {
  description = "ARN of the memory table ([memory] table): memory, approvals, spent tokens, async runs, quota counters and delivery claims."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]+$", var.memory_table_arn))
    error_message = "memory_table_arn must be a DynamoDB table ARN."
  }
}

variable "registry" {
  description = <<-EOT
    The S3 registry ([registry] backend = "s3"), or null for a runtime that reads a bundle
    (the Lambda package's registry/). write: deploys, aliases, promotions and rollbacks go
    through this runtime's routes. share_artifacts: the runtime stores the artifacts it
    compiles for other hosts ([registry] share_artifacts = true).
  EOT
  type = object({
    table_arn       = string
    bucket_arn      = string
    prefix          = string
    write           = bool
    share_artifacts = bool
  })
  default = null

  validation {
    condition = var.registry == null ? true : (
      can(regex("^arn:[a-z-]+:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]+$", var.registry.table_arn)) &&
      can(regex("^arn:[a-z-]+:s3:::[a-z0-9.-]+$", var.registry.bucket_arn)) &&
      can(regex("^[A-Za-z0-9._/-]*$", var.registry.prefix))
    )
    error_message = "registry needs a DynamoDB table ARN, an S3 bucket ARN and a prefix of [A-Za-z0-9._/-]."
  }
}

variable "audit" {
  description = "The Object Lock bucket sealed audit segments go to ([audit.s3]) and the key prefix this runtime writes under (no trailing slash), or null."
  type = object({
    bucket_arn   = string
    write_prefix = string
  })
  default = null

  validation {
    condition = var.audit == null ? true : (
      can(regex("^arn:[a-z-]+:s3:::[a-z0-9.-]+$", var.audit.bucket_arn)) &&
      can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.audit.write_prefix))
    )
    error_message = "audit needs an S3 bucket ARN and a non-empty write_prefix without leading or trailing slash."
  }
}

variable "events" {
  description = "The events queue ([events] queue) this runtime polls and publishes to, and with [events] backend = \"eventbridge\" the bus it publishes on (else null)."
  type = object({
    queue_arn = string
    bus_arn   = optional(string)
  })
  default = null

  validation {
    condition = var.events == null ? true : (
      can(regex("^arn:[a-z-]+:sqs:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+$", var.events.queue_arn)) &&
      (var.events.bus_arn == null ? true : can(regex("^arn:[a-z-]+:events:[a-z0-9-]+:[0-9]{12}:event-bus/[A-Za-z0-9._-]+$", var.events.bus_arn)))
    )
    error_message = "events needs an SQS queue ARN and, if set, an EventBridge bus ARN."
  }
}

variable "step_functions_callbacks" {
  description = "The runtime answers Step Functions task tokens (SendTaskSuccess, SendTaskFailure): true where workflows call agenthost with .waitForTaskToken."
  type        = bool
  default     = false
}

variable "secret_arns" {
  description = "Secrets the runtime reads: the host keys ([keys] audit_secret, cache_secret) and model API keys."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.secret_arns : can(regex("^arn:[a-z-]+:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", a))])
    error_message = "Every secret_arns entry must be a Secrets Manager secret ARN."
  }
}

variable "kms_key_arns" {
  description = "Customer keys of the resources above (tables, buckets, queue, secrets): Decrypt and GenerateDataKey through those services only."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.kms_key_arns : can(regex("^arn:[a-z-]+:kms:[a-z0-9-]+:[0-9]{12}:key/[a-f0-9-]+$", a))])
    error_message = "Every kms_key_arns entry must be a KMS key ARN (not an alias)."
  }
}

variable "bedrock_model_arns" {
  description = "Bedrock models the runtime may call ([model] backend = \"bedrock\"): foundation-model or inference-profile ARNs."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([for a in var.bedrock_model_arns : can(regex("^arn:[a-z-]+:bedrock:[a-z0-9-]+:([0-9]{12})?:(foundation-model|inference-profile|application-inference-profile|provisioned-model)/.+$", a))
    || can(regex("^arn:[a-z-]+:bedrock:\\*::foundation-model/[^*]+$", a))])
    error_message = "Every bedrock_model_arns entry must be a Bedrock model or inference-profile ARN (a foundation model may name any region, `*`, as a cross-region profile routes to it)."
  }
}

variable "xray" {
  description = "The runtime sends trace segments to X-Ray (a Lambda function with active tracing)."
  type        = bool
  default     = false
}

variable "log_group_arn" {
  description = "The runtime's own CloudWatch Logs group (a Lambda function's), or null where the platform ships logs (containers)."
  type        = string
  default     = null

  validation {
    condition     = var.log_group_arn == null ? true : can(regex("^arn:[a-z-]+:logs:[a-z0-9-]+:[0-9]{12}:log-group:[^*]+$", var.log_group_arn))
    error_message = "log_group_arn must be a log group ARN without a trailing :*."
  }
}
