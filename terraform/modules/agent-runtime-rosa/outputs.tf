output "role_arn" {
  description = "The role's ARN: the service account's eks.amazonaws.com/role-arn annotation in the overlay."
  value       = aws_iam_role.runtime.arn
}

output "role_name" {
  description = "The role's name."
  value       = aws_iam_role.runtime.name
}

output "namespace" {
  description = "The namespace the role trusts (the overlay's namespace)."
  value       = var.namespace
}

output "service_account" {
  description = "The service account the role trusts."
  value       = var.service_account
}

output "service_account_annotations" {
  description = "Annotations for the service account, as the overlays patch them."
  value = {
    "eks.amazonaws.com/role-arn"               = aws_iam_role.runtime.arn
    "eks.amazonaws.com/sts-regional-endpoints" = "true"
  }
}

output "keda_queue_url" {
  description = "The events queue URL for the KEDA ScaledObject (aws-sqs-queue trigger, queueURL)."
  value       = var.access.queue_url
}

output "keda_aws_region" {
  description = "The region for the KEDA trigger (awsRegion)."
  value       = data.aws_region.current.name
}

output "policy_statement_ids" {
  description = "Sids of the role's policy statements, in order."
  value       = module.access.statement_ids
}
