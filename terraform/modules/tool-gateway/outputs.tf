output "api_id" {
  description = "The HTTP API's id."
  value       = aws_apigatewayv2_api.this.id
}

output "api_endpoint" {
  description = "The API's URL (the $default stage serves at its root)."
  value       = aws_apigatewayv2_api.this.api_endpoint
}

output "execution_arn" {
  description = "The API's execution ARN, for execute-api:Invoke grants on the IAM routes (<execution_arn>/$default/GET/healthz)."
  value       = aws_apigatewayv2_api.this.execution_arn
}

output "access_log_group_name" {
  description = "The access log group."
  value       = aws_cloudwatch_log_group.access.name
}
