# prod: infrastructure settings. Replace the placeholder account and
# cluster ids (000000000000) with the production account's. The floors in
# main.tf refuse anything below prod's minimum.

environment         = "prod"
region              = "us-east-1"
allowed_account_ids = ["000000000000"]
runtimes            = ["lambda", "rosa"]

lambda = {
  memory_size             = 2048
  timeout                 = 60
  reserved_concurrency    = 200
  provisioned_concurrency = 5
}

rosa = {
  oidc_provider_arn = "arn:aws:iam::000000000000:oidc-provider/rh-oidc.s3.us-east-1.amazonaws.com/00000000000000000000000000000000"
  namespace         = "agenthost-prod"
}

gateway = {
  jwt_issuer    = "https://login.example.com"
  jwt_audiences = ["agenthost"]
  rate_limit    = 500
  burst_limit   = 1000
}

events = {
  max_receive_count      = 8
  archive_retention_days = 365
}

# As deploy/k8s/overlays/prod/config/host.toml: COMPLIANCE, 365 days.
audit = {
  retention_mode = "COMPLIANCE"
  retention_days = 365
}

log_retention_days       = 400
deletion_protection      = true
kms_deletion_window_days = 30
alarm_topic              = true
bedrock_model_ids        = ["anthropic.claude-3-5-sonnet-20240620-v1:0"]
