# stg: infrastructure settings. Replace the placeholder account and
# cluster ids (000000000000) with the staging account's.

environment         = "stg"
region              = "us-east-1"
allowed_account_ids = ["000000000000"]
runtimes            = ["lambda", "rosa"]

lambda = {
  memory_size             = 1024
  timeout                 = 60
  reserved_concurrency    = 50
  provisioned_concurrency = 0
}

rosa = {
  oidc_provider_arn = "arn:aws:iam::000000000000:oidc-provider/rh-oidc.s3.us-east-1.amazonaws.com/00000000000000000000000000000000"
  namespace         = "agenthost-stg"
}

gateway = {
  jwt_issuer    = "https://login.example.com"
  jwt_audiences = ["agenthost"]
  rate_limit    = 100
  burst_limit   = 200
}

events = {
  max_receive_count      = 8
  archive_retention_days = 30
}

audit = {
  retention_mode = "COMPLIANCE"
  retention_days = 90
}

log_retention_days       = 90
deletion_protection      = true
kms_deletion_window_days = 30
alarm_topic              = false
bedrock_model_ids        = ["anthropic.claude-3-5-sonnet-20240620-v1:0"]
