# Optional: an Amazon Verified Permissions policy store with the host's
# Cedar schema, so policy packs can be authored and analysed against it
# in AWS. The host evaluates its packs itself (host/src/governance); this
# store is not on any request's path.

locals {
  cedar_schema_json = coalesce(var.cedar_schema_json, file("${path.module}/cedar/agenthost.cedarschema.json"))
}

resource "aws_verifiedpermissions_policy_store" "this" {
  count       = var.verified_permissions ? 1 : 0
  description = "${var.name_prefix}: agenthost Cedar schema"
  validation_settings {
    mode = "STRICT"
  }
  tags = var.tags
}

resource "aws_verifiedpermissions_schema" "this" {
  count           = var.verified_permissions ? 1 : 0
  policy_store_id = aws_verifiedpermissions_policy_store.this[0].policy_store_id
  definition {
    value = jsonencode(jsondecode(local.cedar_schema_json))
  }
}
