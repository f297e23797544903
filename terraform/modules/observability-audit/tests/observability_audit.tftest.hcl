# Properties of the evidence plane, on a mocked AWS provider.

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
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:us-east-1:123456789012:key/99999999-2222-3333-4444-555555555555" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::agenthost-test-audit" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:us-east-1:123456789012:agenthost-test-alarms" }
  }
}

variables {
  name_prefix          = "agenthost-test"
  audit_retention_days = 400
  xray_service_names   = ["agenthost-test-runtime"]
  lambda_function_name = "agenthost-test-runtime"
  dlq_names            = ["agenthost-test-events-dlq"]
}

run "evidence_is_locked_in_compliance_mode" {
  command = plan

  assert {
    condition     = aws_s3_bucket.audit.object_lock_enabled
    error_message = "The bucket is made with Object Lock."
  }
  assert {
    condition = (aws_s3_bucket_object_lock_configuration.audit.rule[0].default_retention[0].mode == "COMPLIANCE" &&
    aws_s3_bucket_object_lock_configuration.audit.rule[0].default_retention[0].days == 400)
    error_message = "Default retention is COMPLIANCE for the given days."
  }
  assert {
    condition     = aws_s3_bucket_versioning.audit.versioning_configuration[0].status == "Enabled"
    error_message = "The bucket is versioned."
  }
  assert {
    condition = (aws_s3_bucket_public_access_block.audit.block_public_acls && aws_s3_bucket_public_access_block.audit.block_public_policy &&
    aws_s3_bucket_public_access_block.audit.ignore_public_acls && aws_s3_bucket_public_access_block.audit.restrict_public_buckets)
    error_message = "All public access is blocked."
  }
  assert {
    condition = (one(aws_s3_bucket_server_side_encryption_configuration.audit.rule).apply_server_side_encryption_by_default[0].sse_algorithm == "aws:kms" &&
    one(aws_s3_bucket_server_side_encryption_configuration.audit.rule).apply_server_side_encryption_by_default[0].kms_master_key_id == aws_kms_key.audit.arn)
    error_message = "Evidence is encrypted with the audit key."
  }
  assert {
    condition = anytrue([for s in jsondecode(aws_s3_bucket_policy.audit.policy).Statement :
    s.Effect == "Deny" && try(s.Condition.Bool["aws:SecureTransport"], "") == "false"])
    error_message = "Requests without TLS are denied."
  }
  assert {
    condition = (one(aws_s3_bucket_lifecycle_configuration.audit.rule[0].transition).storage_class == "GLACIER" &&
    one(aws_s3_bucket_lifecycle_configuration.audit.rule[0].transition).days == 400)
    error_message = "Objects move to Glacier when their retention ends."
  }
  assert {
    condition     = aws_kms_key.audit.enable_key_rotation
    error_message = "The audit key rotates."
  }
}

run "alarms_and_secrets" {
  command = plan

  variables {
    create_alarm_topic    = true
    model_api_key_secrets = { "agenthost-test/openai" = "OpenAI-compatible endpoint key" }
  }

  assert {
    condition     = aws_sns_topic.alarms[0].kms_master_key_id == aws_kms_key.audit.arn
    error_message = "The alarm topic is encrypted."
  }
  assert {
    condition = alltrue([for a in concat(values(aws_cloudwatch_metric_alarm.lambda_errors), values(aws_cloudwatch_metric_alarm.dlq_depth), aws_cloudwatch_metric_alarm.approvals_pending) :
    contains(a.alarm_actions, aws_sns_topic.alarms[0].arn)])
    error_message = "Every alarm notifies the topic."
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.lambda_p95_duration["this"].extended_statistic == "p95"
    error_message = "Latency is alarmed on p95."
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.dlq_depth["agenthost-test-events-dlq"].metric_name == "ApproximateNumberOfMessagesVisible" && aws_cloudwatch_metric_alarm.dlq_depth["agenthost-test-events-dlq"].threshold == 0
    error_message = "Any message in a dead-letter queue alarms."
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.approvals_pending[0].metric_name == "agenthost_approvals_pending" && aws_cloudwatch_metric_alarm.approvals_pending[0].namespace == "Agenthost"
    error_message = "The approvals alarm reads the metric the README tells operators to publish."
  }
  assert {
    condition = (alltrue([for s in values(aws_secretsmanager_secret.host_key) : s.kms_key_id == aws_kms_key.audit.arn]) &&
    aws_secretsmanager_secret.model_api_key["agenthost-test/openai"].kms_key_id == aws_kms_key.audit.arn)
    error_message = "Every secret is encrypted with the audit key."
  }
  assert {
    condition     = toset([for s in values(aws_secretsmanager_secret.host_key) : s.name]) == toset(["agenthost-test/audit-signing-key", "agenthost-test/cache-key"])
    error_message = "The host key secrets have the names host.toml's [keys] gives."
  }
}

run "retention_of_zero_days_is_refused" {
  command = plan

  variables {
    audit_retention_days = 0
  }

  expect_failures = [var.audit_retention_days]
}
