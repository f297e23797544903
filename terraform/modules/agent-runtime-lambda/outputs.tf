output "function_name" {
  description = "The function's name (alarms, dashboards, X-Ray service name)."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "The function's unqualified ARN."
  value       = aws_lambda_function.this.arn
}

output "published_version" {
  description = "The version this apply published (the canary, when canary is set)."
  value       = aws_lambda_function.this.version
}

output "alias_arn" {
  description = "ARN of the live alias: what queues, schedules, workflows and callers invoke."
  value       = aws_lambda_alias.live.arn
}

output "alias_invoke_arn" {
  description = "Invoke ARN of the live alias, for an API Gateway integration (tool-gateway)."
  value       = aws_lambda_alias.live.invoke_arn
}

output "alias_name" {
  description = "Name of the alias (live)."
  value       = aws_lambda_alias.live.name
}

output "role_arn" {
  description = "ARN of the function's role (an allowed sender on the events queue)."
  value       = aws_iam_role.function.arn
}

output "log_group_name" {
  description = "The function's log group."
  value       = aws_cloudwatch_log_group.function.name
}

output "function_url" {
  description = "The Function URL of the live alias (the host's bearer tokens authenticate), or null."
  value       = one(aws_lambda_function_url.live[*].function_url)
}

output "settle_rule_arn" {
  description = "ARN of the settle schedule rule, or null."
  value       = one(aws_cloudwatch_event_rule.settle[*].arn)
}

output "policy_statement_ids" {
  description = "Sids of the role's policy statements, in order."
  value       = module.access.statement_ids
}
