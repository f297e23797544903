variable "name_prefix" {
  description = "Prefix of every name, e.g. agenthost-prod: the table is <name_prefix>-memory unless table_name says otherwise."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,38}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 4 to 40 characters of a-z, 0-9 and -, starting with a letter."
  }
}

variable "table_name" {
  description = "Name of the memory table ([memory] table); null for <name_prefix>-memory."
  type        = string
  default     = null

  validation {
    condition     = var.table_name == null ? true : can(regex("^[A-Za-z0-9_.-]{3,255}$", var.table_name))
    error_message = "table_name must be 3 to 255 characters of A-Z, a-z, 0-9, _, . and -."
  }
}

variable "kms_key_arn" {
  description = "The customer key the table (and the semantic memory collection) is encrypted with: the platform key."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:kms:[a-z0-9-]+:[0-9]{12}:key/[a-f0-9-]+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (not an alias)."
  }
}

variable "billing_mode" {
  description = "PAY_PER_REQUEST (default: no capacity to plan, no throttling by a forgotten limit) or PROVISIONED."
  type        = string
  default     = "PAY_PER_REQUEST"

  validation {
    condition     = contains(["PAY_PER_REQUEST", "PROVISIONED"], var.billing_mode)
    error_message = "billing_mode must be PAY_PER_REQUEST or PROVISIONED."
  }
}

variable "provisioned_capacity" {
  description = "Read and write capacity units, used only with billing_mode = PROVISIONED."
  type = object({
    read  = number
    write = number
  })
  default = { read = 5, write = 5 }

  validation {
    condition     = var.provisioned_capacity.read >= 1 && var.provisioned_capacity.write >= 1
    error_message = "provisioned_capacity read and write must be at least 1."
  }
}

variable "deletion_protection" {
  description = "DynamoDB deletion protection on the memory table (it holds approvals and spent tokens as well as memory)."
  type        = bool
  default     = true
}

variable "semantic_memory" {
  description = <<-EOT
    An OpenSearch Serverless vector collection for semantic memory, or null (default) for none.
    agenthost itself does not read it: it is for tools granted access to it. Reached only
    through the given VPC endpoints (no public access); the listed principals get
    document and index access.
  EOT
  type = object({
    collection_name  = string
    vpc_endpoint_ids = list(string)
    principal_arns   = list(string)
    standby_replicas = optional(bool, true)
  })
  default = null

  validation {
    condition = var.semantic_memory == null ? true : (
      can(regex("^[a-z][a-z0-9-]{2,27}$", var.semantic_memory.collection_name)) &&
      length(var.semantic_memory.vpc_endpoint_ids) > 0 &&
      alltrue([for id in var.semantic_memory.vpc_endpoint_ids : can(regex("^vpce-[0-9a-f]+$", id))]) &&
      length(var.semantic_memory.principal_arns) > 0 &&
      alltrue([for p in var.semantic_memory.principal_arns : can(regex("^arn:[a-z-]+:iam::[0-9]{12}:(role|user)/.+$", p))])
    )
    error_message = "semantic_memory: collection_name is 3 to 28 characters of a-z, 0-9 and - starting with a letter; at least one vpce- endpoint id and one IAM role or user ARN."
  }
}

variable "tags" {
  description = "Tags added to every resource (the environment's provider default_tags come on top)."
  type        = map(string)
  default     = {}
}
