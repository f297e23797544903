# The registry index ([registry] table): versions and aliases of every
# tenant's components, written with conditional PutItem calls
# (host/src/registry/s3.rs). Same key schema as the memory table.

resource "aws_dynamodb_table" "registry" {
  name                        = "${var.name_prefix}-registry"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.table_deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.platform.arn
  }

  tags = var.tags
}
