output "table_name" {
  description = "The memory table ([memory] table)."
  value       = aws_dynamodb_table.memory.name
}

output "table_arn" {
  description = "ARN of the memory table, for the runtimes' policies."
  value       = aws_dynamodb_table.memory.arn
}

output "semantic_collection_arn" {
  description = "ARN of the semantic memory collection, or null when there is none."
  value       = one([for c in aws_opensearchserverless_collection.semantic : c.arn])
}

output "semantic_collection_endpoint" {
  description = "Endpoint of the semantic memory collection, or null when there is none."
  value       = one([for c in aws_opensearchserverless_collection.semantic : c.collection_endpoint])
}
