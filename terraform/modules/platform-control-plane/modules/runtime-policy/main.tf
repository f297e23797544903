# The one definition of what an agenthost runtime may do on AWS, used by the
# Lambda function's role and the containers' IRSA role alike. Each statement
# names the calls the host makes (host/src: brokers/memory/dynamo.rs,
# registry/s3.rs, audit/s3.rs, brokers/events.rs, brokers/callbacks.rs,
# keystore.rs, brokers/model/bedrock.rs) and the resources they touch; no
# action is a wildcard. Built with jsonencode, not aws_iam_policy_document,
# so that `terraform test` can read the document a plan would send.

locals {
  registry_root = var.registry == null ? "" : (
    trim(var.registry.prefix, "/") == "" ? "" : "${trim(var.registry.prefix, "/")}/"
  )

  memory = [{
    Sid    = "MemoryTable"
    Effect = "Allow"
    # Puts are conditional UpdateItem calls (compare-and-set on `version`);
    # reads and Query are consistent; DescribeTable is the /readyz probe.
    # PutItem is never called on this table.
    Action   = ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:DescribeTable"]
    Resource = [var.memory_table_arn]
  }]

  registry_read = var.registry == null ? [] : [
    {
      Sid      = "RegistryIndexRead"
      Effect   = "Allow"
      Action   = ["dynamodb:GetItem", "dynamodb:Query"]
      Resource = [var.registry.table_arn]
    },
    {
      Sid    = "RegistryObjectsRead"
      Effect = "Allow"
      Action = ["s3:GetObject"]
      Resource = [
        "${var.registry.bucket_arn}/${local.registry_root}*/blobs/*",
        "${var.registry.bucket_arn}/${local.registry_root}*/artifacts/*",
      ]
    },
    {
      # Without ListBucket, S3 answers a missing key with 403 instead of
      # 404, and the host would take an artifact nobody compiled yet for a
      # failure. The request for a key carries no s3:prefix, so a prefix
      # condition here would not let the 404 through.
      Sid      = "RegistryBucketList"
      Effect   = "Allow"
      Action   = ["s3:ListBucket"]
      Resource = [var.registry.bucket_arn]
    },
  ]

  registry_write = var.registry == null ? [] : !var.registry.write ? [] : [
    {
      Sid      = "RegistryIndexWrite"
      Effect   = "Allow"
      Action   = ["dynamodb:PutItem"]
      Resource = [var.registry.table_arn]
    },
    {
      Sid      = "RegistryBlobsWrite"
      Effect   = "Allow"
      Action   = ["s3:PutObject"]
      Resource = ["${var.registry.bucket_arn}/${local.registry_root}*/blobs/*"]
    },
  ]

  registry_artifacts = var.registry == null ? [] : !var.registry.share_artifacts ? [] : [{
    Sid      = "RegistryArtifactsWrite"
    Effect   = "Allow"
    Action   = ["s3:PutObject"]
    Resource = ["${var.registry.bucket_arn}/${local.registry_root}*/artifacts/*"]
  }]

  audit_write = var.audit == null ? [] : [{
    Sid    = "AuditSegmentsWrite"
    Effect = "Allow"
    # Sealed segments are put with an Object Lock mode and retain-until
    # date, which needs PutObjectRetention as well as PutObject.
    Action   = ["s3:PutObject", "s3:PutObjectRetention"]
    Resource = ["${var.audit.bucket_arn}/${var.audit.write_prefix}/*"]
  }]

  audit_list = var.audit == null ? [] : [{
    # A restarted writer lists what the bucket already holds before it
    # uploads what is missing (S3Sink::backfill).
    Sid       = "AuditSegmentsList"
    Effect    = "Allow"
    Action    = ["s3:ListBucket"]
    Resource  = [var.audit.bucket_arn]
    Condition = { StringLike = { "s3:prefix" = ["${var.audit.write_prefix}/*"] } }
  }]

  queue = var.events == null ? [] : [{
    Sid    = "EventsQueue"
    Effect = "Allow"
    # The poller (and Lambda's event source mapping) receive, delete and
    # hold messages; SendMessage publishes with [events] backend = "sqs".
    Action = [
      "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
      "sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:SendMessage",
    ]
    Resource = [var.events.queue_arn]
  }]

  bus_publish = try(var.events.bus_arn, null) == null ? [] : [{
    Sid       = "EventsBusPublish"
    Effect    = "Allow"
    Action    = ["events:PutEvents"]
    Resource  = [var.events.bus_arn]
    Condition = { StringLike = { "events:source" = ["agenthost.*"] } }
  }]

  bus_describe = try(var.events.bus_arn, null) == null ? [] : [{
    Sid      = "EventsBusProbe"
    Effect   = "Allow"
    Action   = ["events:DescribeEventBus"]
    Resource = [var.events.bus_arn]
  }]

  task_tokens = !var.step_functions_callbacks ? [] : [{
    # SendTaskSuccess and SendTaskFailure take no resource type in the
    # Service Authorization Reference: the task token is the only
    # authority. The exposure: whoever may send a direct call (with
    # task_token) to a queue read with direct_calls = true can make the
    # host answer a token they learned; grant sqs:SendMessage narrowly.
    Sid      = "StepFunctionsTaskTokens"
    Effect   = "Allow"
    Action   = ["states:SendTaskSuccess", "states:SendTaskFailure"]
    Resource = ["*"]
  }]

  secrets = length(var.secret_arns) == 0 ? [] : [{
    Sid      = "Secrets"
    Effect   = "Allow"
    Action   = ["secretsmanager:GetSecretValue"]
    Resource = var.secret_arns
  }]

  kms = length(var.kms_key_arns) == 0 ? [] : [{
    Sid    = "Keys"
    Effect = "Allow"
    # Only through the services whose data the keys protect; Encrypt is
    # never called directly (S3 and SQS use GenerateDataKey).
    Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
    Resource = var.kms_key_arns
    Condition = { StringEquals = { "kms:ViaService" = [
      for service in ["dynamodb", "s3", "sqs", "secretsmanager"] : "${service}.${var.region}.amazonaws.com"
    ] } }
  }]

  bedrock = length(var.bedrock_model_arns) == 0 ? [] : [{
    # Converse is authorised as InvokeModel.
    Sid      = "BedrockModels"
    Effect   = "Allow"
    Action   = ["bedrock:InvokeModel"]
    Resource = var.bedrock_model_arns
  }]

  xray = !var.xray ? [] : [{
    # PutTraceSegments and PutTelemetryRecords take no resource type.
    Sid      = "XRayTraces"
    Effect   = "Allow"
    Action   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    Resource = ["*"]
  }]

  logs = var.log_group_arn == null ? [] : [{
    Sid      = "OwnLogGroup"
    Effect   = "Allow"
    Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    Resource = ["${var.log_group_arn}:*"]
  }]

  statements = concat(
    local.memory, local.registry_read, local.registry_write, local.registry_artifacts,
    local.audit_write, local.audit_list, local.queue, local.bus_publish, local.bus_describe,
    local.task_tokens, local.secrets, local.kms, local.bedrock, local.xray, local.logs,
  )
}
