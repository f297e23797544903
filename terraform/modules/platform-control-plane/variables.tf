variable "name_prefix" {
  description = "Prefix of every name, e.g. agenthost-prod: the tables, buckets and key alias are <name_prefix>-registry, <name_prefix>-config, alias/<name_prefix>-platform."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,38}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 4 to 40 characters of a-z, 0-9 and -, starting with a letter."
  }
}

variable "registry_bucket_name" {
  description = "Name of the registry's S3 bucket ([registry] bucket); null for <name_prefix>-registry. S3 names are global: add an account or region suffix where that one is taken."
  type        = string
  default     = null

  validation {
    condition     = var.registry_bucket_name == null ? true : can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.registry_bucket_name))
    error_message = "registry_bucket_name must be a valid S3 bucket name."
  }
}

variable "registry_prefix" {
  description = "Key prefix of component objects in the registry bucket ([registry] prefix)."
  type        = string
  default     = "components"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]*$", var.registry_prefix))
    error_message = "registry_prefix must be one path segment of A-Z, a-z, 0-9, ., _ and - (or empty)."
  }
}

variable "config_bucket_name" {
  description = "Name of the configuration bucket (host.toml, tenant files and release records per environment); null for <name_prefix>-config."
  type        = string
  default     = null

  validation {
    condition     = var.config_bucket_name == null ? true : can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.config_bucket_name))
    error_message = "config_bucket_name must be a valid S3 bucket name."
  }
}

variable "noncurrent_version_days" {
  description = "Days an overwritten or deleted object's previous version is kept in the registry and config buckets."
  type        = number
  default     = 90

  validation {
    condition     = var.noncurrent_version_days >= 1 && var.noncurrent_version_days <= 3650 && floor(var.noncurrent_version_days) == var.noncurrent_version_days
    error_message = "noncurrent_version_days must be a whole number from 1 to 3650."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` empty the buckets (dev only: it deletes every component and configuration version)."
  type        = bool
  default     = false
}

variable "table_deletion_protection" {
  description = "DynamoDB deletion protection on the registry index table."
  type        = bool
  default     = true
}

variable "kms_deletion_window_days" {
  description = "Days a scheduled deletion of the platform key waits (7 to 30)."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30 && floor(var.kms_deletion_window_days) == var.kms_deletion_window_days
    error_message = "kms_deletion_window_days must be a whole number from 7 to 30."
  }
}

variable "release" {
  description = <<-EOT
    The application release this environment runs (release.auto.tfvars), written to
    releases/current.json in the configuration bucket so release gates can compare
    environments: the agent manifest version, the component digests by name, the Lambda
    package digest and the container image digest. null writes no record.
  EOT
  type = object({
    manifest_version       = string
    component_digests      = map(string)
    lambda_package_digest  = optional(string)
    container_image_digest = optional(string)
  })
  default = null

  validation {
    condition = var.release == null ? true : (
      can(regex("^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$", var.release.manifest_version)) &&
      alltrue([for d in values(var.release.component_digests) : can(regex("^sha256:[0-9a-f]{64}$", d))]) &&
      alltrue([for n in keys(var.release.component_digests) : can(regex("^[a-z0-9][a-z0-9-]{0,63}$", n))]) &&
      (var.release.lambda_package_digest == null ? true : can(regex("^sha256:[0-9a-f]{64}$", var.release.lambda_package_digest))) &&
      (var.release.container_image_digest == null ? true : can(regex("^sha256:[0-9a-f]{64}$", var.release.container_image_digest)))
    )
    error_message = "release: manifest_version is a version string; component names are [a-z0-9-]; every digest matches ^sha256:[0-9a-f]{64}$."
  }
}

variable "verified_permissions" {
  description = "Create an Amazon Verified Permissions policy store holding agenthost's Cedar schema (for policy authoring and analysis outside the host; the host evaluates its packs itself)."
  type        = bool
  default     = false
}

variable "cedar_schema_json" {
  description = "The Cedar schema, in Cedar's JSON schema format; null for the copy of the host's schema in cedar/agenthost.cedarschema.json."
  type        = string
  default     = null

  validation {
    condition     = var.cedar_schema_json == null ? true : can(keys(jsondecode(var.cedar_schema_json)))
    error_message = "cedar_schema_json must be a JSON object (Cedar's JSON schema format)."
  }
}

variable "tags" {
  description = "Tags added to every resource (the environment's provider default_tags come on top)."
  type        = map(string)
  default     = {}
}
