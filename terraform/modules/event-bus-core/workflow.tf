# The durable-run workflow: a Standard state machine (only Standard
# workflows wait on task tokens) from an ASL template, logging to an
# encrypted log group, traced by X-Ray.

locals {
  workflow = var.durable_runs == null ? {} : { this = var.durable_runs }
  asl_path = try(coalesce(var.durable_runs.asl_path, "${path.module}/asl/durable-run-sqs.asl.json"), null)
}

resource "aws_cloudwatch_log_group" "workflow" {
  for_each          = local.workflow
  name              = "/aws/vendedlogs/states/${var.name_prefix}-durable-run"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_iam_role" "workflow" {
  count = var.durable_runs == null ? 0 : 1
  name  = "${var.name_prefix}-durable-run"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "states.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
    }]
  })
  tags = var.tags
}

locals {
  workflow_statements = concat(
    [
      {
        Sid      = "SendCallsToTheQueue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [aws_sqs_queue.events.arn]
      },
      {
        # The CloudWatch Logs delivery calls and X-Ray's take no resource
        # type, so "*" is the only resource they accept.
        Sid    = "LogDeliveryAndTracing"
        Effect = "Allow"
        Action = [
          "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
          "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
          "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
          "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
        ]
        Resource = ["*"]
      },
    ],
    [{
      Sid       = "EncryptMessagesForTheQueue"
      Effect    = "Allow"
      Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
      Resource  = [var.kms_key_arn]
      Condition = { StringEquals = { "kms:ViaService" = "sqs.${data.aws_region.current.name}.amazonaws.com" } }
    }],
    length(try(var.durable_runs.invoke_function_arns, [])) == 0 ? [] : [{
      Sid      = "InvokeTheRuntime"
      Effect   = "Allow"
      Action   = ["lambda:InvokeFunction"]
      Resource = var.durable_runs.invoke_function_arns
    }],
  )
}

resource "aws_iam_role_policy" "workflow" {
  count  = var.durable_runs == null ? 0 : 1
  name   = "durable-run"
  role   = aws_iam_role.workflow[0].id
  policy = jsonencode({ Version = "2012-10-17", Statement = local.workflow_statements })
}

resource "aws_sfn_state_machine" "durable_run" {
  for_each = local.workflow
  name     = "${var.name_prefix}-durable-run"
  type     = "STANDARD"
  role_arn = aws_iam_role.workflow[0].arn
  definition = templatefile(local.asl_path, merge(
    {
      partition       = local.partition
      queue_url       = aws_sqs_queue.events.url
      queue_arn       = aws_sqs_queue.events.arn
      bus_name        = aws_cloudwatch_event_bus.this.name
      timeout_seconds = each.value.timeout_seconds
    },
    each.value.substitutions,
  ))

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.workflow["this"].arn}:*"
    include_execution_data = each.value.include_execution_data
    level                  = each.value.log_level
  }

  tracing_configuration {
    enabled = true
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.workflow]
}
