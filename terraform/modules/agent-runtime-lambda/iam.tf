# The function's role: assumed by Lambda for this account only, with the
# runtime policy shared with the containers (platform-control-plane's
# runtime-policy), plus its own log group and X-Ray.

resource "aws_iam_role" "function" {
  # Not the function's own name: agent-runtime-rosa's role is
  # <name_prefix>-runtime, the function's default name.
  name                 = "${local.function_name}-lambda"
  permissions_boundary = var.permissions_boundary_arn
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
    }]
  })
  tags = var.tags
}

module "access" {
  source = "../platform-control-plane/modules/runtime-policy"

  region           = local.region
  memory_table_arn = var.access.memory_table_arn
  registry = var.access.registry == null ? null : {
    table_arn       = var.access.registry.table_arn
    bucket_arn      = var.access.registry.bucket_arn
    prefix          = var.access.registry.prefix
    write           = var.access.registry.write
    share_artifacts = var.access.registry.share_artifacts
  }
  # Each execution environment writes its own trail root under
  # <prefix>/lambda/<stream>/ (host/src/lambda).
  audit = {
    bucket_arn   = var.access.audit_bucket_arn
    write_prefix = "${trim(var.access.audit_prefix, "/")}/lambda"
  }
  events                   = var.access.queue_arn == null ? null : { queue_arn = var.access.queue_arn, bus_arn = var.access.bus_arn }
  step_functions_callbacks = var.access.step_functions_callbacks
  secret_arns              = var.access.secret_arns
  kms_key_arns             = var.access.kms_key_arns
  bedrock_model_arns       = var.access.bedrock_model_arns
  xray                     = true
  log_group_arn            = aws_cloudwatch_log_group.function.arn
}

resource "aws_iam_role_policy" "function" {
  name   = "agenthost-runtime"
  role   = aws_iam_role.function.id
  policy = module.access.policy_json
}

# In a VPC, Lambda manages the function's network interfaces with the
# role's permissions; the managed policy is scoped by AWS.
resource "aws_iam_role_policy_attachment" "vpc" {
  count      = var.vpc_config == null ? 0 : 1
  role       = aws_iam_role.function.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}
