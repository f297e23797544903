# agenthost as a Lambda function: the package of scripts/package-lambda.sh
# on provided.al2023 (arm64), published on every change and served through
# the alias "live", which can hold a canary.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  function_name = coalesce(var.function_name, "${var.name_prefix}-runtime")
  account_id    = data.aws_caller_identity.current.account_id
  partition     = data.aws_partition.current.partition
  region        = data.aws_region.current.name
  digest_hex    = trimprefix(var.package_digest, "sha256:")
  alias_name    = "live"
}

resource "aws_cloudwatch_log_group" "function" {
  name              = "/aws/lambda/${local.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  function_name = local.function_name
  description   = "agenthost (package ${var.package_digest})"
  role          = aws_iam_role.function.arn
  architectures = ["arm64"]
  runtime       = "provided.al2023"
  handler       = "bootstrap"
  publish       = true

  filename          = var.package.file
  source_code_hash  = var.package.file == null ? null : filebase64sha256(var.package.file)
  s3_bucket         = var.package.s3_bucket
  s3_key            = var.package.s3_key
  s3_object_version = var.package.s3_object_version

  memory_size                    = var.memory_size
  timeout                        = var.timeout
  reserved_concurrent_executions = var.reserved_concurrency
  code_signing_config_arn        = var.code_signing_config_arn
  kms_key_arn                    = var.kms_key_arn

  ephemeral_storage {
    size = var.ephemeral_storage_mb
  }

  environment {
    variables = merge(var.environment, {
      # The package's config/ (scripts/package-lambda.sh).
      AGENTHOST_CONFIG = "/var/task/config"
      AGENTHOST_LOG    = var.log_level
    })
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function.name
  }

  dynamic "vpc_config" {
    for_each = var.vpc_config == null ? [] : [var.vpc_config]
    content {
      subnet_ids         = vpc_config.value.subnet_ids
      security_group_ids = vpc_config.value.security_group_ids
    }
  }

  tags = merge(var.tags, { "agenthost:package-digest" = var.package_digest })

  lifecycle {
    precondition {
      condition     = var.package.file == null ? true : filesha256(var.package.file) == local.digest_hex
      error_message = "The package file is not the release's package: its SHA-256 differs from package_digest."
    }
    precondition {
      condition     = var.provisioned_concurrency <= var.reserved_concurrency
      error_message = "provisioned_concurrency cannot exceed reserved_concurrency."
    }
  }

  depends_on = [aws_iam_role_policy.function]
}

resource "aws_lambda_alias" "live" {
  name             = local.alias_name
  description      = "What callers invoke; a canary splits it between the stable and the new version."
  function_name    = aws_lambda_function.this.function_name
  function_version = var.canary == null ? aws_lambda_function.this.version : var.canary.stable_version

  dynamic "routing_config" {
    for_each = var.canary == null ? [] : [var.canary]
    content {
      additional_version_weights = { (aws_lambda_function.this.version) = routing_config.value.weight }
    }
  }

  lifecycle {
    precondition {
      condition     = var.canary == null ? true : var.canary.stable_version != aws_lambda_function.this.version
      error_message = "canary.stable_version is the version this apply publishes: nothing to compare it with."
    }
  }
}

resource "aws_lambda_provisioned_concurrency_config" "live" {
  count                             = var.provisioned_concurrency > 0 ? 1 : 0
  function_name                     = aws_lambda_function.this.function_name
  qualifier                         = aws_lambda_alias.live.name
  provisioned_concurrent_executions = var.provisioned_concurrency
}

# Asynchronous invocations are the settle events: the next one does the
# same work, so a failed one is not retried and an old one is dropped.
resource "aws_lambda_function_event_invoke_config" "live" {
  function_name                = aws_lambda_function.this.function_name
  qualifier                    = aws_lambda_alias.live.name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 60
}
