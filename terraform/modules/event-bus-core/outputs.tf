output "bus_name" {
  description = "The EventBridge bus ([events] bus)."
  value       = aws_cloudwatch_event_bus.this.name
}

output "bus_arn" {
  description = "ARN of the bus, for the runtimes' PutEvents permission."
  value       = aws_cloudwatch_event_bus.this.arn
}

output "queue_name" {
  description = "The events queue ([events] queue)."
  value       = aws_sqs_queue.events.name
}

output "queue_url" {
  description = "URL of the events queue (KEDA's queueURL)."
  value       = aws_sqs_queue.events.url
}

output "queue_arn" {
  description = "ARN of the events queue (Lambda's event source, the runtimes' policies)."
  value       = aws_sqs_queue.events.arn
}

output "dlq_name" {
  description = "The dead-letter queue (alarmed on by observability-audit)."
  value       = aws_sqs_queue.dlq.name
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "rule_arn" {
  description = "ARN of the rule that sends agenthost events to the queue."
  value       = aws_cloudwatch_event_rule.to_queue.arn
}

output "archive_arn" {
  description = "ARN of the bus's archive (start a replay from it)."
  value       = aws_cloudwatch_event_archive.this.arn
}

output "state_machine_arn" {
  description = "ARN of the durable-run state machine, or null without one."
  value       = one([for m in aws_sfn_state_machine.durable_run : m.arn])
}

output "workflow_role_arn" {
  description = "ARN of the state machine's role, or null without one."
  value       = one(aws_iam_role.workflow[*].arn)
}
