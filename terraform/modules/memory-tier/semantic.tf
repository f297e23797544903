# Optional semantic memory: an OpenSearch Serverless vector collection,
# encrypted with the platform key and reachable only through VPC endpoints.

locals {
  semantic = var.semantic_memory == null ? {} : { this = var.semantic_memory }
}

resource "aws_opensearchserverless_security_policy" "encryption" {
  for_each = local.semantic
  name     = "${each.value.collection_name}-enc"
  type     = "encryption"
  policy = jsonencode({
    Rules       = [{ ResourceType = "collection", Resource = ["collection/${each.value.collection_name}"] }]
    AWSOwnedKey = false
    KmsARN      = var.kms_key_arn
  })
}

resource "aws_opensearchserverless_security_policy" "network" {
  for_each = local.semantic
  name     = "${each.value.collection_name}-net"
  type     = "network"
  policy = jsonencode([{
    Rules = [
      { ResourceType = "collection", Resource = ["collection/${each.value.collection_name}"] },
      { ResourceType = "dashboard", Resource = ["collection/${each.value.collection_name}"] },
    ]
    AllowFromPublic = false
    SourceVPCEs     = each.value.vpc_endpoint_ids
  }])
}

resource "aws_opensearchserverless_access_policy" "data" {
  for_each = local.semantic
  name     = "${each.value.collection_name}-data"
  type     = "data"
  policy = jsonencode([{
    Rules = [{
      ResourceType = "index"
      Resource     = ["index/${each.value.collection_name}/*"]
      Permission   = ["aoss:ReadDocument", "aoss:WriteDocument", "aoss:CreateIndex", "aoss:DescribeIndex", "aoss:UpdateIndex"]
    }]
    Principal = each.value.principal_arns
  }])
}

resource "aws_opensearchserverless_collection" "semantic" {
  for_each         = local.semantic
  name             = each.value.collection_name
  type             = "VECTORSEARCH"
  standby_replicas = each.value.standby_replicas ? "ENABLED" : "DISABLED"
  tags             = var.tags

  depends_on = [
    aws_opensearchserverless_security_policy.encryption,
    aws_opensearchserverless_security_policy.network,
  ]
}
