# The platform key: the registry and configuration buckets, the registry
# index and (passed to the other modules) the memory table, the events
# queues and the log groups of the runtimes, the gateway and the workflow.
# The audit evidence has a key of its own (observability-audit).

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
}

resource "aws_kms_key" "platform" {
  description             = "${var.name_prefix}: registry, configuration, memory, events and logs"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = jsonencode(local.platform_key_policy)
  tags                    = var.tags
}

resource "aws_kms_alias" "platform" {
  name          = "alias/${var.name_prefix}-platform"
  target_key_id = aws_kms_key.platform.key_id
}

locals {
  platform_key_policy = {
    Version = "2012-10-17"
    Statement = [
      {
        # The account administers the key through IAM; without this
        # statement a key can become unmanageable. Resource "*" in a key
        # policy means this key.
        Sid       = "AccountAdministersThroughIam"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        # Log groups of this account encrypted with the key (Lambda,
        # API Gateway access logs, Step Functions).
        Sid       = "CloudWatchLogsOfThisAccount"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action = [
          "kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo",
          "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey",
        ]
        Resource = "*"
        Condition = {
          ArnLike = { "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*" }
        }
      },
      {
        # EventBridge rules of this account deliver to the encrypted
        # events queue and its dead-letter queue.
        Sid       = "EventBridgeDeliversToQueues"
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
    ]
  }
}
