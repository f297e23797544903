# The events queue both runtimes read (serve's poller, Lambda's event
# source mapping) and its dead-letter queue. Encrypted with the platform
# key; only the bus's rule, the durable-run workflow and the runtimes'
# roles may send.

resource "aws_sqs_queue" "dlq" {
  name                              = "${local.queue_name}-dlq"
  message_retention_seconds         = 1209600
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
  tags                              = var.tags
}

resource "aws_sqs_queue" "events" {
  name                              = local.queue_name
  visibility_timeout_seconds        = var.visibility_timeout_seconds
  message_retention_seconds         = var.message_retention_seconds
  receive_wait_time_seconds         = 20
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
  tags = var.tags
}

resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.events.arn]
  })
}

locals {
  # Roles that may send besides the rule: the runtimes, and the workflow
  # (sqs:sendMessage.waitForTaskToken).
  sender_role_arns = concat(var.sender_role_arns, aws_iam_role.workflow[*].arn)

  # Deny SendMessage to anyone who is neither the rule (aws:SourceArn) nor
  # a listed role (aws:PrincipalArn). A key a request does not carry makes
  # a negated condition true, so each sender fails exactly one of the two.
  not_a_sender = merge(
    { ArnNotEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.to_queue.arn } },
    length(local.sender_role_arns) == 0 ? {} : { ArnNotLike = { "aws:PrincipalArn" = local.sender_role_arns } },
  )
}

resource "aws_sqs_queue_policy" "events" {
  queue_url = aws_sqs_queue.events.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "RuleDelivers"
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.events.arn
        Condition = { ArnEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.to_queue.arn } }
      },
      {
        Sid       = "OnlyTheRuleAndTheListedRolesSend"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.events.arn
        Condition = local.not_a_sender
      },
      {
        Sid       = "TlsOnly"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:*"
        Resource  = aws_sqs_queue.events.arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}

resource "aws_sqs_queue_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # Events the rule could not deliver; messages the events queue
        # gives up on arrive by its redrive policy, not by SendMessage.
        Sid       = "RuleDeadLetters"
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.dlq.arn
        Condition = { ArnEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.to_queue.arn } }
      },
      {
        Sid       = "NobodyElseSends"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.dlq.arn
        Condition = { ArnNotEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.to_queue.arn } }
      },
      {
        Sid       = "TlsOnly"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:*"
        Resource  = aws_sqs_queue.dlq.arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}
