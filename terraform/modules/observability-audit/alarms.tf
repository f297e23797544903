# Alarms on what an operator must act on, a dashboard of the same
# metrics, the containers' log group and an X-Ray group.

resource "aws_sns_topic" "alarms" {
  count             = var.create_alarm_topic ? 1 : 0
  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = aws_kms_key.audit.arn
  tags              = var.tags
}

locals {
  alarm_actions = concat(aws_sns_topic.alarms[*].arn, var.alarm_action_arns)
  lambda        = var.lambda_function_name == null ? {} : { this = var.lambda_function_name }
}

resource "aws_cloudwatch_log_group" "containers" {
  name              = "/agenthost/${var.name_prefix}/containers"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.audit.arn
  tags              = var.tags
}

resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  for_each            = local.lambda
  alarm_name          = "${var.name_prefix}-lambda-errors"
  alarm_description   = "The function failed more than ${var.lambda_alarms.errors_per_minute} invocations a minute in 3 of 5 minutes (direct invokes answered with a problem count too)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = var.lambda_alarms.errors_per_minute
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "lambda_throttles" {
  for_each            = local.lambda
  alarm_name          = "${var.name_prefix}-lambda-throttles"
  alarm_description   = "Invocations were throttled: reserved concurrency is spent."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.lambda_alarms.throttles
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "lambda_p95_duration" {
  for_each            = local.lambda
  alarm_name          = "${var.name_prefix}-lambda-p95-duration"
  alarm_description   = "p95 duration above ${var.lambda_alarms.p95_duration_ms} ms for 5 minutes."
  namespace           = "AWS/Lambda"
  metric_name         = "Duration"
  dimensions          = { FunctionName = each.value }
  extended_statistic  = "p95"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.lambda_alarms.p95_duration_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "dlq_depth" {
  for_each            = toset(var.dlq_names)
  alarm_name          = "${each.value}-depth"
  alarm_description   = "Messages in ${each.value}: events or calls that failed every retry. Inspect, fix, then redrive."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "approvals_pending" {
  count               = var.approvals_pending == null ? 0 : 1
  alarm_name          = "${var.name_prefix}-approvals-pending"
  alarm_description   = "More than ${var.approvals_pending.threshold} approval requests waiting for 15 minutes. Published by the operator from agenthost_approvals_pending (${var.approvals_pending.namespace}/${var.approvals_pending.metric_name}, Environment=${var.name_prefix}); INSUFFICIENT_DATA means nobody publishes it."
  namespace           = var.approvals_pending.namespace
  metric_name         = var.approvals_pending.metric_name
  dimensions          = { Environment = var.name_prefix }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  threshold           = var.approvals_pending.threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "missing"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_xray_group" "this" {
  group_name        = var.name_prefix
  filter_expression = join(" OR ", [for s in var.xray_service_names : "service(\"${s}\")"])
  insights_configuration {
    insights_enabled      = true
    notifications_enabled = false
  }
  tags = var.tags
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name_prefix
  dashboard_body = jsonencode({
    widgets = concat(
      var.lambda_function_name == null ? [] : [
        {
          type = "metric", x = 0, y = 0, width = 12, height = 6
          properties = {
            title   = "Lambda invocations, errors, throttles"
            region  = local.region
            stat    = "Sum"
            period  = 60
            metrics = [for m in ["Invocations", "Errors", "Throttles"] : ["AWS/Lambda", m, "FunctionName", var.lambda_function_name]]
          }
        },
      ],
      # One widget per conditional list: each branch of a conditional must
      # have one type, and these widgets differ.
      var.lambda_function_name == null ? [] : [
        {
          type = "metric", x = 12, y = 0, width = 12, height = 6
          properties = {
            title   = "Lambda duration p50 / p95 / p99 (ms)"
            region  = local.region
            period  = 60
            metrics = [for p in ["p50", "p95", "p99"] : ["AWS/Lambda", "Duration", "FunctionName", var.lambda_function_name, { stat = p }]]
          }
        },
      ],
      length(var.dlq_names) == 0 ? [] : [{
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title   = "Dead-letter queue depth"
          region  = local.region
          stat    = "Maximum"
          period  = 300
          metrics = [for q in var.dlq_names : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q]]
        }
      }],
      var.approvals_pending == null ? [] : [{
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title   = "Approval requests waiting"
          region  = local.region
          stat    = "Maximum"
          period  = 300
          metrics = [[var.approvals_pending.namespace, var.approvals_pending.metric_name, "Environment", var.name_prefix]]
        }
      }],
    )
  })
}
