# The host's keys ([keys] source = "secretsmanager") and model API keys.
# Terraform makes the secrets, never their values: a value set here would
# be in the state. Put them with `aws secretsmanager put-secret-value`
# (terraform/README.md, "Secrets").

locals {
  host_key_secrets = {
    audit = coalesce(var.audit_secret_name, "${var.name_prefix}/audit-signing-key")
    cache = coalesce(var.cache_secret_name, "${var.name_prefix}/cache-key")
  }
  host_key_descriptions = {
    audit = "agenthost audit signing key (Ed25519, PEM): [keys] audit_secret"
    cache = "agenthost artifact cache key (64 hex digits): [keys] cache_secret"
  }
}

resource "aws_secretsmanager_secret" "host_key" {
  for_each                = local.host_key_secrets
  name                    = each.value
  description             = local.host_key_descriptions[each.key]
  kms_key_id              = aws_kms_key.audit.arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = var.tags
}

resource "aws_secretsmanager_secret" "model_api_key" {
  for_each                = var.model_api_key_secrets
  name                    = each.key
  description             = each.value
  kms_key_id              = aws_kms_key.audit.arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = var.tags
}
