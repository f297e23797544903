# Security properties of the memory table, on a mocked AWS provider.

mock_provider "aws" {
  override_during = plan
}

variables {
  name_prefix = "agenthost-test"
  kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
}

run "one_table_with_the_host_schema" {
  command = plan

  assert {
    condition     = aws_dynamodb_table.memory.name == "agenthost-test-memory"
    error_message = "The table is <name_prefix>-memory, the name host.toml's [memory] table gives."
  }
  assert {
    condition = (aws_dynamodb_table.memory.hash_key == "pk" && aws_dynamodb_table.memory.range_key == "sk" &&
    alltrue([for a in aws_dynamodb_table.memory.attribute : a.type == "S"]))
    error_message = "Keys are pk (S, hash) and sk (S, range), as dynamo.rs reads them."
  }
  assert {
    condition     = aws_dynamodb_table.memory.ttl[0].enabled && aws_dynamodb_table.memory.ttl[0].attribute_name == "expires_at"
    error_message = "TTL deletes records on expires_at."
  }
  assert {
    condition     = aws_dynamodb_table.memory.billing_mode == "PAY_PER_REQUEST"
    error_message = "On-demand billing by default."
  }
}

run "encrypted_recoverable_protected" {
  command = plan

  assert {
    condition = (aws_dynamodb_table.memory.server_side_encryption[0].enabled &&
    aws_dynamodb_table.memory.server_side_encryption[0].kms_key_arn == var.kms_key_arn)
    error_message = "The table is encrypted with the given customer key."
  }
  assert {
    condition     = aws_dynamodb_table.memory.point_in_time_recovery[0].enabled
    error_message = "Point-in-time recovery is on."
  }
  assert {
    condition     = aws_dynamodb_table.memory.deletion_protection_enabled
    error_message = "Deletion protection is on by default."
  }
  assert {
    condition     = length(aws_opensearchserverless_collection.semantic) == 0
    error_message = "No semantic memory unless asked for."
  }
}

run "semantic_memory_is_private_and_customer_encrypted" {
  command = plan

  variables {
    semantic_memory = {
      collection_name  = "agenthost-test-sem"
      vpc_endpoint_ids = ["vpce-0123456789abcdef0"]
      principal_arns   = ["arn:aws:iam::123456789012:role/agenthost-test-runtime"]
    }
  }

  assert {
    condition     = aws_opensearchserverless_collection.semantic["this"].type == "VECTORSEARCH"
    error_message = "The collection is a vector search collection."
  }
  assert {
    condition = (jsondecode(aws_opensearchserverless_security_policy.encryption["this"].policy).AWSOwnedKey == false &&
    jsondecode(aws_opensearchserverless_security_policy.encryption["this"].policy).KmsARN == var.kms_key_arn)
    error_message = "The collection is encrypted with the customer key."
  }
  assert {
    condition     = alltrue([for r in jsondecode(aws_opensearchserverless_security_policy.network["this"].policy) : r.AllowFromPublic == false])
    error_message = "The collection is not reachable from the internet."
  }
}
