variable "name_prefix" {
  description = "Prefix of every name, e.g. agenthost-prod: the queue is <name_prefix>-events, its dead-letter queue <name_prefix>-events-dlq, the state machine <name_prefix>-durable-run."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,38}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 4 to 40 characters of a-z, 0-9 and -, starting with a letter."
  }
}

variable "bus_name" {
  description = "Name of the EventBridge bus ([events] bus); null for <name_prefix>."
  type        = string
  default     = null

  validation {
    condition     = var.bus_name == null ? true : can(regex("^[A-Za-z0-9._-]{1,256}$", var.bus_name)) && var.bus_name != "default"
    error_message = "bus_name must be 1 to 256 characters of A-Z, a-z, 0-9, ., _ and -, and not \"default\"."
  }
}

variable "kms_key_arn" {
  description = "The customer key the queues and the workflow's log group are encrypted with (its policy must let events.amazonaws.com and CloudWatch Logs use it, as the platform key's does)."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:kms:[a-z0-9-]+:[0-9]{12}:key/[a-f0-9-]+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (not an alias)."
  }
}

variable "max_receive_count" {
  description = "Receives before a message moves to the dead-letter queue. The host brings a failed message back after 1 s, 2 s, 4 s ... up to 15 minutes, so 8 receives span about four minutes of retries."
  type        = number
  default     = 8

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000 && floor(var.max_receive_count) == var.max_receive_count
    error_message = "max_receive_count must be a whole number from 1 to 1000."
  }
}

variable "visibility_timeout_seconds" {
  description = "The queue's default visibility timeout. Lambda's event source mapping keeps it; set it to at least six times the function's timeout. The serve poller sets its own per message."
  type        = number
  default     = 360

  validation {
    condition     = var.visibility_timeout_seconds >= 0 && var.visibility_timeout_seconds <= 43200 && floor(var.visibility_timeout_seconds) == var.visibility_timeout_seconds
    error_message = "visibility_timeout_seconds must be a whole number from 0 to 43200."
  }
}

variable "message_retention_seconds" {
  description = "How long the events queue keeps a message (the dead-letter queue keeps them 14 days)."
  type        = number
  default     = 345600

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds must be from 60 to 1209600."
  }
}

variable "sender_role_arns" {
  description = "IAM roles allowed to send to the events queue besides the bus's rule and the workflow: the runtimes' roles (they publish with [events] backend = \"sqs\"). Every other sender is denied, whatever its own policy says."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.sender_role_arns : can(regex("^arn:[a-z-]+:iam::[0-9]{12}:role/.+$", a))])
    error_message = "Every sender_role_arns entry must be an IAM role ARN."
  }
}

variable "archive_retention_days" {
  description = "Days the bus's archive keeps agenthost events for replay."
  type        = number
  default     = 30

  validation {
    condition     = var.archive_retention_days >= 1 && var.archive_retention_days <= 3650 && floor(var.archive_retention_days) == var.archive_retention_days
    error_message = "archive_retention_days must be a whole number from 1 to 3650."
  }
}

variable "durable_runs" {
  description = <<-EOT
    The Step Functions state machine for durable runs. asl_path: an Amazon States Language
    template (null for asl/durable-run-sqs.asl.json, which sends the call to the events
    queue); it is rendered with partition, queue_url, queue_arn, bus_name and
    timeout_seconds, plus substitutions (e.g. function_arn for
    asl/durable-run-lambda.asl.json). invoke_function_arns: functions the workflow may
    invoke. null: no state machine.
  EOT
  type = object({
    asl_path               = optional(string)
    substitutions          = optional(map(string), {})
    invoke_function_arns   = optional(list(string), [])
    timeout_seconds        = optional(number, 90000)
    log_level              = optional(string, "ERROR")
    include_execution_data = optional(bool, false)
  })
  default = {}

  validation {
    condition = var.durable_runs == null ? true : (
      (var.durable_runs.asl_path == null ? true : fileexists(var.durable_runs.asl_path)) &&
      contains(["ALL", "ERROR", "FATAL"], var.durable_runs.log_level) &&
      var.durable_runs.timeout_seconds >= 60 && var.durable_runs.timeout_seconds <= 31536000 &&
      alltrue([for a in var.durable_runs.invoke_function_arns : can(regex("^arn:[a-z-]+:lambda:[a-z0-9-]+:[0-9]{12}:function:[A-Za-z0-9_-]+(:[A-Za-z0-9_$-]+)?$", a))])
    )
    error_message = "durable_runs: asl_path must name an existing file, log_level is ALL, ERROR or FATAL (logging is never OFF), timeout_seconds is 60 to 31536000, invoke_function_arns are Lambda function ARNs."
  }
}

variable "log_retention_days" {
  description = "Retention of the workflow's log group, in days (a value CloudWatch Logs accepts)."
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
