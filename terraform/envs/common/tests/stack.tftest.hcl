# The whole environment planned on a mocked AWS provider, with the
# environment's own terraform.tfvars and release.auto.tfvars: the seven
# modules compose without a cycle, the floors hold, and the names agree
# with what host.toml and the kustomize overlays expect. Run from an
# environment's directory: terraform test -test-directory=../common/tests

mock_provider "aws" {
  override_during = plan

  mock_data "aws_caller_identity" {
    defaults = { account_id = "000000000000" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:us-east-1:000000000000:key/11111111-2222-3333-4444-555555555555" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::agenthost-bucket" }
  }
  mock_resource "aws_dynamodb_table" {
    defaults = { arn = "arn:aws:dynamodb:us-east-1:000000000000:table/agenthost-table" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = {
      arn = "arn:aws:sqs:us-east-1:000000000000:agenthost-queue"
      url = "https://sqs.us-east-1.amazonaws.com/000000000000/agenthost-queue"
    }
  }
  mock_resource "aws_cloudwatch_event_bus" {
    defaults = { arn = "arn:aws:events:us-east-1:000000000000:event-bus/agenthost" }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:us-east-1:000000000000:rule/agenthost" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::000000000000:role/agenthost-role" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:000000000000:log-group:agenthost" }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:agenthost-AbCdEf" }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn     = "arn:aws:lambda:us-east-1:000000000000:function:agenthost-runtime"
      version = "2"
    }
  }
  mock_resource "aws_lambda_alias" {
    defaults = {
      arn        = "arn:aws:lambda:us-east-1:000000000000:function:agenthost-runtime:live"
      invoke_arn = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:000000000000:function:agenthost-runtime:live/invocations"
    }
  }
  mock_resource "aws_apigatewayv2_api" {
    defaults = { execution_arn = "arn:aws:execute-api:us-east-1:000000000000:abcdef1234" }
  }
}

run "the_environment_plans" {
  command = plan

  assert {
    condition     = output.host_toml.memory.table == "agenthost-${var.environment}-memory" && output.host_toml.events.queue == "agenthost-${var.environment}-events"
    error_message = "The table and queue have the names deploy/k8s's host.toml uses."
  }
  assert {
    condition     = output.host_toml.keys.audit_secret == "agenthost-${var.environment}/audit-signing-key" && output.host_toml.keys.cache_secret == "agenthost-${var.environment}/cache-key"
    error_message = "The key secrets have the names deploy/k8s's host.toml uses."
  }
  assert {
    condition     = !contains(var.runtimes, "rosa") || module.rosa["this"].role_name == "agenthost-${var.environment}-runtime"
    error_message = "The containers' role has the name the overlay annotates the service account with."
  }
  assert {
    condition     = !contains(var.runtimes, "lambda") || module.lambda["this"].function_name == "agenthost-${var.environment}-runtime"
    error_message = "The function is agenthost-<environment>-runtime."
  }
  assert {
    condition     = module.audit.audit_retention.mode == var.audit.retention_mode && module.audit.audit_retention.days == var.audit.retention_days
    error_message = "The audit bucket's default retention is the environment's."
  }
}

run "prod_refuses_evidence_that_can_be_deleted" {
  command = plan

  variables {
    environment = "prod"
    audit       = { retention_mode = "GOVERNANCE", retention_days = 365 }
  }

  expect_failures = [terraform_data.floors]
}

run "prod_refuses_short_retention" {
  command = plan

  variables {
    environment = "prod"
    audit       = { retention_mode = "COMPLIANCE", retention_days = 30 }
  }

  expect_failures = [terraform_data.floors]
}

run "an_inference_profile_grants_the_profile_and_its_model" {
  command = plan

  variables {
    bedrock_model_ids = ["anthropic.claude-3-5-sonnet-20240620-v1:0", "us.anthropic.claude-sonnet-4-20250514-v1:0"]
  }

  assert {
    condition = local.bedrock_model_arns == [
      "arn:aws:bedrock:${var.region}::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0",
      "arn:aws:bedrock:${var.region}:000000000000:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0",
      "arn:aws:bedrock:*::foundation-model/anthropic.claude-sonnet-4-20250514-v1:0",
    ]
    error_message = "A foundation model is granted in this region; a cross-region profile as itself and as the model it routes to."
  }
}
