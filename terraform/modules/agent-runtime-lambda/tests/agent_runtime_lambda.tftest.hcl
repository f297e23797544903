# The function, its triggers and its role, on a mocked AWS provider.

mock_provider "aws" {
  override_during = plan

  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/agenthost-test-runtime" }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn     = "arn:aws:lambda:us-east-1:123456789012:function:agenthost-test-runtime"
      version = "8"
    }
  }
  mock_resource "aws_lambda_alias" {
    defaults = { arn = "arn:aws:lambda:us-east-1:123456789012:function:agenthost-test-runtime:live" }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:us-east-1:123456789012:rule/agenthost-test-runtime-settle" }
  }
}

variables {
  name_prefix    = "agenthost-test"
  package        = { s3_bucket = "agenthost-test-registry", s3_key = "lambda/aa122f1ec5b15ae5db34467cc8b8641b84c7055a10784f9cdac5e151c9c0546f.zip" }
  package_digest = "sha256:aa122f1ec5b15ae5db34467cc8b8641b84c7055a10784f9cdac5e151c9c0546f"
  kms_key_arn    = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  queue          = { arn = "arn:aws:sqs:us-east-1:123456789012:agenthost-test-events" }
  access = {
    memory_table_arn   = "arn:aws:dynamodb:us-east-1:123456789012:table/agenthost-test-memory"
    audit_bucket_arn   = "arn:aws:s3:::agenthost-test-audit"
    audit_prefix       = "trail"
    queue_arn          = "arn:aws:sqs:us-east-1:123456789012:agenthost-test-events"
    secret_arns        = ["arn:aws:secretsmanager:us-east-1:123456789012:secret:agenthost-test/audit-signing-key-AbCdEf"]
    kms_key_arns       = ["arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"]
    bedrock_model_arns = ["arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0"]
  }
}

run "the_function_is_the_package_on_arm64" {
  command = plan

  assert {
    condition     = aws_lambda_function.this.architectures == tolist(["arm64"])
    error_message = "The function runs on arm64."
  }
  assert {
    condition     = aws_lambda_function.this.runtime == "provided.al2023" && aws_lambda_function.this.handler == "bootstrap"
    error_message = "The function is the bootstrap binary on provided.al2023."
  }
  assert {
    condition     = aws_lambda_function.this.environment[0].variables["AGENTHOST_CONFIG"] == "/var/task/config"
    error_message = "AGENTHOST_CONFIG points at the package's config/."
  }
  assert {
    condition     = aws_lambda_function.this.tracing_config[0].mode == "Active"
    error_message = "X-Ray tracing is active."
  }
  assert {
    condition     = aws_lambda_function.this.kms_key_arn == var.kms_key_arn && aws_cloudwatch_log_group.function.kms_key_id == var.kms_key_arn
    error_message = "Environment and logs are encrypted with the customer key."
  }
  assert {
    condition     = aws_lambda_function.this.reserved_concurrent_executions == 10 && length(aws_lambda_provisioned_concurrency_config.live) == 0
    error_message = "Concurrency is reserved; none is provisioned by default."
  }
  assert {
    condition     = aws_lambda_function.this.tags["agenthost:package-digest"] == var.package_digest
    error_message = "The function records the release's package digest."
  }
}

run "queue_batches_report_item_failures" {
  command = plan

  assert {
    condition     = aws_lambda_event_source_mapping.queue[0].function_response_types == toset(["ReportBatchItemFailures"])
    error_message = "Only the failed messages of a batch come back."
  }
  assert {
    condition     = aws_lambda_event_source_mapping.queue[0].function_name == aws_lambda_alias.live.arn
    error_message = "The queue invokes the live alias."
  }
}

run "settle_schedule_invokes_the_alias" {
  command = plan

  assert {
    condition     = jsondecode(aws_cloudwatch_event_target.settle[0].input) == { settle = true }
    error_message = "The schedule sends {\"settle\": true}."
  }
  assert {
    condition     = aws_cloudwatch_event_rule.settle[0].schedule_expression == "rate(1 minute)"
    error_message = "The sweep runs every minute by default."
  }
  assert {
    condition = (aws_lambda_permission.settle[0].principal == "events.amazonaws.com" &&
      aws_lambda_permission.settle[0].source_arn == aws_cloudwatch_event_rule.settle[0].arn &&
    aws_lambda_permission.settle[0].qualifier == "live")
    error_message = "Only the settle rule may invoke, and only the live alias."
  }
}

run "the_role_names_every_action_and_resource" {
  command = plan

  assert {
    condition = alltrue([for s in jsondecode(aws_iam_role_policy.function.policy).Statement :
    alltrue([for a in s.Action : !strcontains(a, "*")])])
    error_message = "No action is a wildcard."
  }
  assert {
    condition = alltrue([for s in jsondecode(aws_iam_role_policy.function.policy).Statement :
    contains(["StepFunctionsTaskTokens", "XRayTraces"], s.Sid) if contains(s.Resource, "*")])
    error_message = "Resource \"*\" only where the action takes no resource (task tokens, X-Ray)."
  }
  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_role_policy.function.policy).Statement : s.Resource])) == toset([
      "arn:aws:dynamodb:us-east-1:123456789012:table/agenthost-test-memory",
      "arn:aws:s3:::agenthost-test-audit/trail/lambda/*",
      "arn:aws:s3:::agenthost-test-audit",
      "arn:aws:sqs:us-east-1:123456789012:agenthost-test-events",
      "*",
      "arn:aws:secretsmanager:us-east-1:123456789012:secret:agenthost-test/audit-signing-key-AbCdEf",
      "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555",
      "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0",
      "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/agenthost-test-runtime:*",
    ])
    error_message = "The role reaches exactly the resources it was given (a bundle: no registry)."
  }
  assert {
    condition = alltrue([for s in jsondecode(aws_iam_role_policy.function.policy).Statement :
    s.Condition["StringLike"]["s3:prefix"] == ["trail/lambda/*"] if s.Sid == "AuditSegmentsList"])
    error_message = "The function lists only its own trail roots."
  }
  assert {
    condition     = jsondecode(aws_iam_role.function.assume_role_policy).Statement[0].Principal.Service == "lambda.amazonaws.com"
    error_message = "Only Lambda assumes the role."
  }
}

run "an_s3_registry_is_read_only_by_default" {
  command = plan

  variables {
    access = merge(var.access, {
      registry = {
        table_arn  = "arn:aws:dynamodb:us-east-1:123456789012:table/agenthost-test-registry"
        bucket_arn = "arn:aws:s3:::agenthost-test-registry"
        prefix     = "components"
      }
    })
  }

  assert {
    condition     = !contains(module.access.statement_ids, "RegistryIndexWrite") && !contains(module.access.statement_ids, "RegistryBlobsWrite")
    error_message = "The function does not deploy: no PutItem, no blob writes."
  }
  assert {
    condition     = contains(module.access.statement_ids, "RegistryIndexRead") && contains(module.access.statement_ids, "RegistryObjectsRead")
    error_message = "The function reads the registry."
  }
}

run "a_canary_splits_the_alias" {
  command = plan

  variables {
    canary                  = { stable_version = "7", weight = 0.1 }
    provisioned_concurrency = 2
    http_entry              = "function-url"
  }

  assert {
    condition     = aws_lambda_alias.live.function_version == "7" && aws_lambda_alias.live.routing_config[0].additional_version_weights["8"] == 0.1
    error_message = "The alias keeps the stable version and sends the weight to the new one."
  }
  assert {
    condition     = aws_lambda_provisioned_concurrency_config.live[0].provisioned_concurrent_executions == 2 && aws_lambda_provisioned_concurrency_config.live[0].qualifier == "live"
    error_message = "Provisioned concurrency is on the live alias."
  }
  assert {
    condition     = aws_lambda_function_url.live[0].authorization_type == "NONE" && aws_lambda_function_url.live[0].qualifier == "live"
    error_message = "The Function URL leaves authentication to the host's bearer tokens (SigV4 would take their header), on the live alias."
  }
  assert {
    condition     = aws_lambda_permission.url[0].function_url_auth_type == "NONE" && aws_lambda_permission.url[0].qualifier == "live" && aws_lambda_permission.url_invoke[0].action == "lambda:InvokeFunction"
    error_message = "The open URL has the resource policy that lets callers reach it (InvokeFunctionUrl and InvokeFunction)."
  }
}

run "a_local_package_must_be_the_release" {
  command = plan

  variables {
    package        = { file = "tests/fixtures/package.txt" }
    package_digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
  }

  expect_failures = [aws_lambda_function.this]
}

run "a_local_package_with_its_digest" {
  command = plan

  variables {
    package = { file = "tests/fixtures/package.txt" }
  }

  assert {
    condition     = aws_lambda_function.this.filename == "tests/fixtures/package.txt"
    error_message = "The local package is used."
  }
}
