output "kms_key_arn" {
  description = "ARN of the platform key (registry, configuration, memory table, events queues, log groups)."
  value       = aws_kms_key.platform.arn
}

output "kms_key_alias" {
  description = "Alias of the platform key."
  value       = aws_kms_alias.platform.name
}

output "registry_bucket_name" {
  description = "The registry bucket ([registry] bucket)."
  value       = aws_s3_bucket.this["registry"].id
}

output "registry_bucket_arn" {
  description = "ARN of the registry bucket."
  value       = aws_s3_bucket.this["registry"].arn
}

output "registry_prefix" {
  description = "Key prefix of component objects in the registry bucket ([registry] prefix)."
  value       = var.registry_prefix
}

output "registry_table_name" {
  description = "The registry index table ([registry] table)."
  value       = aws_dynamodb_table.registry.name
}

output "registry_table_arn" {
  description = "ARN of the registry index table."
  value       = aws_dynamodb_table.registry.arn
}

output "config_bucket_name" {
  description = "The configuration bucket (host.toml, tenants/, releases/current.json)."
  value       = aws_s3_bucket.this["config"].id
}

output "config_bucket_arn" {
  description = "ARN of the configuration bucket."
  value       = aws_s3_bucket.this["config"].arn
}

output "release_record_key" {
  description = "Key of this environment's release record in the configuration bucket, or null when no release is given."
  value       = one(aws_s3_object.release[*].key)
}

output "policy_store_id" {
  description = "The Verified Permissions policy store's id, or null when verified_permissions is false."
  value       = one(aws_verifiedpermissions_policy_store.this[*].policy_store_id)
}

output "account_id" {
  description = "The account the control plane is in (runtimes' policies and trust conditions are built for it)."
  value       = local.account_id
}

output "region" {
  description = "The region the control plane is in."
  value       = local.region
}
