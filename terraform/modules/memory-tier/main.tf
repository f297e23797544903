# The memory table. agenthost keeps every record replicas must share in
# this one table (host/src/brokers/memory/dynamo.rs): tenants' memory under
# pk = t#<tenant>#n#<namespace>, and the host's own records under scopes no
# tenant can name (README.md of this module lists them). Expiry is the
# `expires_at` attribute, which TTL deletes.

resource "aws_dynamodb_table" "memory" {
  name                        = coalesce(var.table_name, "${var.name_prefix}-memory")
  billing_mode                = var.billing_mode
  read_capacity               = var.billing_mode == "PROVISIONED" ? var.provisioned_capacity.read : null
  write_capacity              = var.billing_mode == "PROVISIONED" ? var.provisioned_capacity.write : null
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = var.tags
}
