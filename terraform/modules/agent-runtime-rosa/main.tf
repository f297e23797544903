# The containers' AWS identity: one IAM role for the agenthost service
# account (IRSA on EKS; the same annotation on ROSA with STS), trusted only
# for system:serviceaccount:<namespace>:<service account> with the STS
# audience, and given the runtime policy shared with the Lambda function.
#
# KEDA reads the queue's depth with this same role: the keda-sqs component
# (deploy/k8s/components/keda-sqs) authenticates with podIdentity
# identityOwner: workload, and the policy already holds
# sqs:GetQueueAttributes on the queue. A role of KEDA's own would have to
# trust KEDA's operator service account instead, for no less access.

data "aws_region" "current" {}

locals {
  # The issuer as IAM condition keys name it: the provider ARN after
  # "oidc-provider/" (host and path, no scheme).
  issuer  = element(split("oidc-provider/", var.oidc_provider_arn), 1)
  subject = "system:serviceaccount:${var.namespace}:${var.service_account}"
}

resource "aws_iam_role" "runtime" {
  name                 = "${var.name_prefix}-runtime"
  description          = "agenthost containers: ${local.subject}"
  max_session_duration = var.max_session_hours * 3600
  permissions_boundary = var.permissions_boundary_arn
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Federated = var.oidc_provider_arn }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "${local.issuer}:sub" = local.subject
          "${local.issuer}:aud" = "sts.amazonaws.com"
        }
      }
    }]
  })
  tags = var.tags
}

module "access" {
  source = "../platform-control-plane/modules/runtime-policy"

  region           = data.aws_region.current.name
  memory_table_arn = var.access.memory_table_arn
  registry         = var.access.registry
  audit = {
    bucket_arn   = var.access.audit_bucket_arn
    write_prefix = trim(var.access.audit_prefix, "/")
  }
  events                   = { queue_arn = var.access.queue_arn, bus_arn = var.access.bus_arn }
  step_functions_callbacks = var.access.step_functions_callbacks
  secret_arns              = var.access.secret_arns
  kms_key_arns             = var.access.kms_key_arns
  bedrock_model_arns       = var.access.bedrock_model_arns
  # Containers export spans over OTLP to the cluster's collector, which
  # holds its own X-Ray permission; logs go through the log forwarder.
  xray          = false
  log_group_arn = null
}

resource "aws_iam_role_policy" "runtime" {
  name   = "agenthost-runtime"
  role   = aws_iam_role.runtime.id
  policy = module.access.policy_json
}
