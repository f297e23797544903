output "policy_json" {
  description = "The runtime's IAM policy document (JSON), for an inline role policy."
  value = jsonencode({
    Version   = "2012-10-17"
    Statement = local.statements
  })
}

output "statement_ids" {
  description = "The Sid of every statement in the document, in order."
  value       = [for s in local.statements : s.Sid]
}
