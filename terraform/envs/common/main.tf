# One environment of agenthost: the seven modules composed. This file is
# the same in dev, stg and prod (each environment's main.tf is a link to
# envs/common/main.tf); what differs is terraform.tfvars (infrastructure)
# and release.auto.tfvars (the application release), and the floors below
# hold each environment to its minimum.

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

locals {
  name_prefix   = "agenthost-${var.environment}"
  function_name = "${local.name_prefix}-runtime"
  with_lambda   = contains(var.runtimes, "lambda")
  with_rosa     = contains(var.runtimes, "rosa")
  log_retention = var.log_retention_days

  # A model id with a geography in front (us., eu., apac., global.) is a
  # cross-region inference profile, which newer models need: the profile in
  # this account, and the model it routes to in whichever region serves it.
  bedrock_model_arns = flatten([for id in var.bedrock_model_ids :
    can(regex("^(us|eu|apac|us-gov|global)\\.", id)) ? [
      "arn:${data.aws_partition.current.partition}:bedrock:${var.region}:${data.aws_caller_identity.current.account_id}:inference-profile/${id}",
      "arn:${data.aws_partition.current.partition}:bedrock:*::foundation-model/${replace(id, "/^[a-z-]+\\./", "")}",
      ] : [
      "arn:${data.aws_partition.current.partition}:bedrock:${var.region}::foundation-model/${id}",
  ]])

  # What each environment must at least have. Higher environments only
  # ever raise these.
  floors = {
    dev = {
      deletion_protection     = false, compliance = false, retention_days = 1, log_retention_days = 1
      provisioned_concurrency = 0, alarm_topic = false, no_force_destroy = false, kms_window = 7
    }
    stg = {
      deletion_protection     = true, compliance = true, retention_days = 30, log_retention_days = 90
      provisioned_concurrency = 0, alarm_topic = false, no_force_destroy = true, kms_window = 30
    }
    prod = {
      deletion_protection     = true, compliance = true, retention_days = 365, log_retention_days = 365
      provisioned_concurrency = 1, alarm_topic = true, no_force_destroy = true, kms_window = 30
    }
  }
  floor = local.floors[var.environment]
}

resource "terraform_data" "floors" {
  input = var.environment

  lifecycle {
    precondition {
      condition     = var.deletion_protection || !local.floor.deletion_protection
      error_message = "${var.environment} keeps deletion protection on its tables."
    }
    precondition {
      condition     = var.audit.retention_mode == "COMPLIANCE" || !local.floor.compliance
      error_message = "${var.environment} locks its audit evidence in COMPLIANCE mode."
    }
    precondition {
      condition     = var.audit.retention_days >= local.floor.retention_days
      error_message = "${var.environment} keeps audit evidence at least ${local.floor.retention_days} days."
    }
    precondition {
      condition     = var.log_retention_days >= local.floor.log_retention_days
      error_message = "${var.environment} keeps logs at least ${local.floor.log_retention_days} days."
    }
    precondition {
      condition     = !local.with_lambda || var.lambda.provisioned_concurrency >= local.floor.provisioned_concurrency
      error_message = "${var.environment} keeps at least ${local.floor.provisioned_concurrency} provisioned environments on the live alias."
    }
    precondition {
      condition     = var.alarm_topic || !local.floor.alarm_topic
      error_message = "${var.environment} sends its alarms to the SNS topic."
    }
    precondition {
      condition     = !var.force_destroy || !local.floor.no_force_destroy
      error_message = "${var.environment} never lets destroy empty its buckets."
    }
    precondition {
      condition     = var.kms_deletion_window_days >= local.floor.kms_window
      error_message = "${var.environment} waits at least ${local.floor.kms_window} days before deleting a key."
    }
    precondition {
      condition     = !local.with_rosa || var.rosa != null
      error_message = "runtimes has rosa: set rosa (the cluster's OIDC provider and the namespace)."
    }
    precondition {
      condition     = var.gateway == null || local.with_lambda || try(var.gateway.http_backend, null) != null
      error_message = "Without the lambda runtime the gateway needs gateway.http_backend (the containers' load balancer listener)."
    }
  }
}

module "control_plane" {
  source = "../../modules/platform-control-plane"

  name_prefix               = local.name_prefix
  registry_bucket_name      = "${local.name_prefix}-registry${var.bucket_suffix}"
  config_bucket_name        = "${local.name_prefix}-config${var.bucket_suffix}"
  force_destroy             = var.force_destroy
  table_deletion_protection = var.deletion_protection
  kms_deletion_window_days  = var.kms_deletion_window_days
  verified_permissions      = var.verified_permissions
  release                   = var.release
}

module "memory" {
  source = "../../modules/memory-tier"

  name_prefix         = local.name_prefix
  kms_key_arn         = module.control_plane.kms_key_arn
  deletion_protection = var.deletion_protection
}

module "events" {
  source = "../../modules/event-bus-core"

  name_prefix            = local.name_prefix
  kms_key_arn            = module.control_plane.kms_key_arn
  max_receive_count      = var.events.max_receive_count
  archive_retention_days = var.events.archive_retention_days
  # Lambda's event source mapping keeps a batch invisible for the queue's
  # timeout: six times the function's, as AWS advises.
  visibility_timeout_seconds = 6 * var.lambda.timeout
  sender_role_arns = concat(
    [for m in module.lambda : m.role_arn],
    [for m in module.rosa : m.role_arn],
  )
  durable_runs       = {}
  log_retention_days = local.log_retention
}

module "audit" {
  source = "../../modules/observability-audit"

  name_prefix              = local.name_prefix
  audit_bucket_name        = "${local.name_prefix}-audit${var.bucket_suffix}"
  audit_retention_mode     = var.audit.retention_mode
  audit_retention_days     = var.audit.retention_days
  kms_deletion_window_days = var.kms_deletion_window_days
  log_retention_days       = local.log_retention
  lambda_function_name     = local.with_lambda ? local.function_name : null
  dlq_names                = [module.events.dlq_name]
  create_alarm_topic       = var.alarm_topic
  alarm_action_arns        = var.alarm_action_arns
  xray_service_names       = [local.function_name]
  model_api_key_secrets    = var.model_api_key_secrets
}

locals {
  # The keys the runtimes decrypt with: the platform key (tables, queue)
  # and the audit key (evidence, secrets).
  runtime_kms_keys = [module.control_plane.kms_key_arn, module.audit.kms_key_arn]
}

module "lambda" {
  source   = "../../modules/agent-runtime-lambda"
  for_each = local.with_lambda ? toset(["this"]) : toset([])

  name_prefix   = local.name_prefix
  function_name = local.function_name
  # Packages are kept in the registry bucket by digest.
  package = {
    s3_bucket = module.control_plane.registry_bucket_name
    s3_key    = "lambda/${trimprefix(var.release.lambda_package_digest, "sha256:")}.zip"
  }
  package_digest          = var.release.lambda_package_digest
  canary                  = var.lambda_canary
  memory_size             = var.lambda.memory_size
  timeout                 = var.lambda.timeout
  reserved_concurrency    = var.lambda.reserved_concurrency
  provisioned_concurrency = var.lambda.provisioned_concurrency
  http_entry              = var.gateway == null ? var.lambda.http_entry : "api-gateway"
  kms_key_arn             = module.control_plane.kms_key_arn
  log_retention_days      = local.log_retention
  queue                   = { arn = module.events.queue_arn }

  access = {
    memory_table_arn   = module.memory.table_arn
    registry           = null # the package's bundle: [registry] dir = "../registry"
    audit_bucket_arn   = module.audit.audit_bucket_arn
    audit_prefix       = var.audit_prefix
    queue_arn          = module.events.queue_arn
    bus_arn            = module.events.bus_arn
    secret_arns        = module.audit.secret_arns
    kms_key_arns       = local.runtime_kms_keys
    bedrock_model_arns = local.bedrock_model_arns
  }

  tags = { "agenthost:release" = var.release.manifest_version }
}

module "rosa" {
  source   = "../../modules/agent-runtime-rosa"
  for_each = local.with_rosa ? toset(["this"]) : toset([])

  name_prefix       = local.name_prefix
  oidc_provider_arn = var.rosa.oidc_provider_arn
  namespace         = var.rosa.namespace
  service_account   = var.rosa.service_account

  access = {
    memory_table_arn = module.memory.table_arn
    registry = {
      table_arn  = module.control_plane.registry_table_arn
      bucket_arn = module.control_plane.registry_bucket_arn
      prefix     = module.control_plane.registry_prefix
    }
    audit_bucket_arn   = module.audit.audit_bucket_arn
    audit_prefix       = var.audit_prefix
    queue_arn          = module.events.queue_arn
    queue_url          = module.events.queue_url
    bus_arn            = module.events.bus_arn
    secret_arns        = module.audit.secret_arns
    kms_key_arns       = local.runtime_kms_keys
    bedrock_model_arns = local.bedrock_model_arns
  }
}

module "gateway" {
  source   = "../../modules/tool-gateway"
  for_each = var.gateway == null ? toset([]) : toset(["this"])

  name_prefix = local.name_prefix
  backend = local.with_lambda ? {
    lambda = {
      function_name = module.lambda["this"].function_name
      qualifier     = module.lambda["this"].alias_name
      invoke_arn    = module.lambda["this"].alias_invoke_arn
    }
    http = null
    } : {
    lambda = null
    http   = var.gateway.http_backend
  }
  jwt                = { issuer = var.gateway.jwt_issuer, audiences = var.gateway.jwt_audiences }
  throttling         = { rate_limit = var.gateway.rate_limit, burst_limit = var.gateway.burst_limit }
  kms_key_arn        = module.control_plane.kms_key_arn
  log_retention_days = local.log_retention
}
