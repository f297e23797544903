# The containers' role, on a mocked AWS provider.

mock_provider "aws" {
  override_during = plan

  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/agenthost-test-runtime" }
  }
}

variables {
  name_prefix       = "agenthost-test"
  oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/rh-oidc.s3.us-east-1.amazonaws.com/2abcdefghijklmnopqrstuvwxyz"
  namespace         = "agenthost-test"
  access = {
    memory_table_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/agenthost-test-memory"
    registry = {
      table_arn  = "arn:aws:dynamodb:us-east-1:123456789012:table/agenthost-test-registry"
      bucket_arn = "arn:aws:s3:::agenthost-test-registry"
      prefix     = "components"
    }
    audit_bucket_arn = "arn:aws:s3:::agenthost-test-audit"
    audit_prefix     = "trail"
    queue_arn        = "arn:aws:sqs:us-east-1:123456789012:agenthost-test-events"
    queue_url        = "https://sqs.us-east-1.amazonaws.com/123456789012/agenthost-test-events"
    kms_key_arns     = ["arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"]
  }
}

run "trust_names_the_service_account" {
  command = plan

  assert {
    condition     = jsondecode(aws_iam_role.runtime.assume_role_policy).Statement[0].Action == "sts:AssumeRoleWithWebIdentity"
    error_message = "The role is assumed with a web identity token."
  }
  assert {
    condition     = jsondecode(aws_iam_role.runtime.assume_role_policy).Statement[0].Principal.Federated == var.oidc_provider_arn
    error_message = "The cluster's OIDC provider is the only principal."
  }
  assert {
    condition     = jsondecode(aws_iam_role.runtime.assume_role_policy).Statement[0].Condition.StringEquals["rh-oidc.s3.us-east-1.amazonaws.com/2abcdefghijklmnopqrstuvwxyz:sub"] == "system:serviceaccount:agenthost-test:agenthost"
    error_message = "Only the agenthost service account of the namespace may assume the role."
  }
  assert {
    condition     = jsondecode(aws_iam_role.runtime.assume_role_policy).Statement[0].Condition.StringEquals["rh-oidc.s3.us-east-1.amazonaws.com/2abcdefghijklmnopqrstuvwxyz:aud"] == "sts.amazonaws.com"
    error_message = "Only tokens for STS are accepted."
  }
  assert {
    condition     = aws_iam_role.runtime.name == "agenthost-test-runtime"
    error_message = "The role has the name the overlays annotate."
  }
}

run "the_policy_is_least_privilege" {
  command = plan

  assert {
    condition = alltrue([for s in jsondecode(aws_iam_role_policy.runtime.policy).Statement :
    alltrue([for a in s.Action : !strcontains(a, "*")])])
    error_message = "No action is a wildcard."
  }
  assert {
    condition = alltrue([for s in jsondecode(aws_iam_role_policy.runtime.policy).Statement :
    s.Sid == "StepFunctionsTaskTokens" if contains(s.Resource, "*")])
    error_message = "Resource \"*\" only for the task-token calls (containers do not write X-Ray themselves)."
  }
  assert {
    condition     = contains(module.access.statement_ids, "RegistryIndexWrite") && contains(module.access.statement_ids, "RegistryArtifactsWrite")
    error_message = "The server deploys and shares artifacts by default."
  }
  assert {
    condition = anytrue([for s in jsondecode(aws_iam_role_policy.runtime.policy).Statement :
    contains(s.Action, "sqs:GetQueueAttributes") && s.Resource == [var.access.queue_arn]])
    error_message = "KEDA (identityOwner: workload) can read the queue's depth with this role."
  }
  assert {
    condition = alltrue([for s in jsondecode(aws_iam_role_policy.runtime.policy).Statement :
    s.Resource == ["arn:aws:s3:::agenthost-test-audit/trail/*"] if s.Sid == "AuditSegmentsWrite"])
    error_message = "Pods write audit segments under the trail prefix only."
  }
  assert {
    condition     = output.service_account_annotations["eks.amazonaws.com/role-arn"] == aws_iam_role.runtime.arn && output.keda_queue_url == var.access.queue_url
    error_message = "The outputs carry what the overlays need."
  }
}

run "a_namespace_that_is_not_a_label_is_refused" {
  command = plan

  variables {
    namespace = "Agenthost_Prod"
  }

  expect_failures = [var.namespace]
}
