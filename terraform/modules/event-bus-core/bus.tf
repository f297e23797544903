# The bus agenthost publishes on ([events] backend = "eventbridge": source
# agenthost.<tenant>, detail-type the topic), the rule that sends every
# agenthost event to the events queue, and an archive to replay them from.
# The rule's pattern is the one `agenthost aws bootstrap` writes.
#
# The bus keeps EventBridge's default encryption (an AWS owned key): the
# archive resource of this provider version takes no customer key, and
# what leaves the bus (the queues) is encrypted with the platform key.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id    = data.aws_caller_identity.current.account_id
  partition     = data.aws_partition.current.partition
  bus_name      = coalesce(var.bus_name, var.name_prefix)
  queue_name    = "${var.name_prefix}-events"
  event_pattern = jsonencode({ source = [{ prefix = "agenthost." }] })
}

resource "aws_cloudwatch_event_bus" "this" {
  name = local.bus_name
  tags = var.tags
}

resource "aws_cloudwatch_event_rule" "to_queue" {
  name           = "${local.queue_name}-agenthost-events"
  description    = "Every agenthost event to the events queue"
  event_bus_name = aws_cloudwatch_event_bus.this.name
  event_pattern  = local.event_pattern
  tags           = var.tags
}

resource "aws_cloudwatch_event_target" "queue" {
  rule           = aws_cloudwatch_event_rule.to_queue.name
  event_bus_name = aws_cloudwatch_event_bus.this.name
  target_id      = "agenthost-queue"
  arn            = aws_sqs_queue.events.arn

  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }

  # An event the queue would not take is kept, not dropped.
  dead_letter_config {
    arn = aws_sqs_queue.dlq.arn
  }
}

resource "aws_cloudwatch_event_archive" "this" {
  name             = "${local.bus_name}-agenthost"
  description      = "agenthost events, for replay"
  event_source_arn = aws_cloudwatch_event_bus.this.arn
  event_pattern    = local.event_pattern
  retention_days   = var.archive_retention_days
}
