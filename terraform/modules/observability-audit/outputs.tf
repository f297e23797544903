output "kms_key_arn" {
  description = "ARN of the audit key (audit bucket, secrets, containers' log group, alarm topic)."
  value       = aws_kms_key.audit.arn
}

output "audit_bucket_name" {
  description = "The audit bucket ([audit.s3] bucket)."
  value       = aws_s3_bucket.audit.id
}

output "audit_bucket_arn" {
  description = "ARN of the audit bucket, for the runtimes' policies."
  value       = aws_s3_bucket.audit.arn
}

output "audit_retention" {
  description = "The bucket's default retention ([audit.s3] retention_mode and retention_days should say the same)."
  value       = { mode = var.audit_retention_mode, days = var.audit_retention_days }
}

output "host_key_secret_names" {
  description = "Names of the host key secrets: audit ([keys] audit_secret) and cache ([keys] cache_secret)."
  value       = { for k, s in aws_secretsmanager_secret.host_key : k => s.name }
}

output "secret_arns" {
  description = "ARNs of every secret this module makes (host keys and model API keys), for the runtimes' policies."
  value       = concat([for s in aws_secretsmanager_secret.host_key : s.arn], [for s in aws_secretsmanager_secret.model_api_key : s.arn])
}

output "alarm_topic_arn" {
  description = "The alarm topic, or null when create_alarm_topic is false."
  value       = one(aws_sns_topic.alarms[*].arn)
}

output "alarm_names" {
  description = "Names of every alarm made."
  value = concat(
    [for a in aws_cloudwatch_metric_alarm.lambda_errors : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.lambda_throttles : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.lambda_p95_duration : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.dlq_depth : a.alarm_name],
    aws_cloudwatch_metric_alarm.approvals_pending[*].alarm_name,
  )
}

output "containers_log_group_name" {
  description = "Log group the cluster's log forwarder sends the containers' logs to."
  value       = aws_cloudwatch_log_group.containers.name
}

output "dashboard_name" {
  description = "The CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "xray_group_arn" {
  description = "ARN of the X-Ray group."
  value       = aws_xray_group.this.arn
}
