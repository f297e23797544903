# dev: infrastructure settings. Replace the placeholder account and
# cluster ids (000000000000) with the dev account's.

environment         = "dev"
region              = "us-east-1"
allowed_account_ids = ["000000000000"]
runtimes            = ["lambda", "rosa"]

lambda = {
  memory_size             = 1024
  timeout                 = 60
  reserved_concurrency    = 10
  provisioned_concurrency = 0
}

rosa = {
  oidc_provider_arn = "arn:aws:iam::000000000000:oidc-provider/rh-oidc.s3.us-east-1.amazonaws.com/00000000000000000000000000000000"
  namespace         = "agenthost-dev"
}

gateway = {
  jwt_issuer    = "https://login.example.com"
  jwt_audiences = ["agenthost"]
  rate_limit    = 20
  burst_limit   = 40
}

events = {
  max_receive_count      = 8
  archive_retention_days = 7
}

# As deploy/k8s/base/config/host.toml: GOVERNANCE, 30 days.
audit = {
  retention_mode = "GOVERNANCE"
  retention_days = 30
}

log_retention_days       = 14
deletion_protection      = false
force_destroy            = true
kms_deletion_window_days = 7
alarm_topic              = false
bedrock_model_ids        = ["anthropic.claude-3-5-sonnet-20240620-v1:0"]
