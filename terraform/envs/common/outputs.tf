output "host_toml" {
  description = "The names host.toml's sections need in this environment ([memory], [events], [registry], [audit.s3], [keys])."
  value = {
    aws      = { region = var.region }
    memory   = { backend = "dynamodb", table = module.memory.table_name }
    events   = { backend = "sqs", queue = module.events.queue_name, bus = module.events.bus_name }
    registry = { backend = "s3", bucket = module.control_plane.registry_bucket_name, table = module.control_plane.registry_table_name, prefix = module.control_plane.registry_prefix }
    audit_s3 = { bucket = module.audit.audit_bucket_name, prefix = var.audit_prefix, retention_mode = var.audit.retention_mode, retention_days = var.audit.retention_days }
    keys     = { source = "secretsmanager", audit_secret = module.audit.host_key_secret_names["audit"], cache_secret = module.audit.host_key_secret_names["cache"] }
  }
}

output "kustomize" {
  description = "What deploy/k8s/overlays/<environment> sets from this stack: the service account's role, the namespace, the KEDA trigger's queue and region, the image digest."
  value = local.with_rosa ? {
    role_arn        = module.rosa["this"].role_arn
    namespace       = module.rosa["this"].namespace
    service_account = module.rosa["this"].service_account
    keda_queue_url  = module.rosa["this"].keda_queue_url
    keda_aws_region = module.rosa["this"].keda_aws_region
    image_digest    = var.release.container_image_digest
  } : null
}

output "lambda" {
  description = "The function: its live alias, the version this apply published, its Function URL (if any)."
  value = local.with_lambda ? {
    function_name     = module.lambda["this"].function_name
    alias_arn         = module.lambda["this"].alias_arn
    published_version = module.lambda["this"].published_version
    function_url      = module.lambda["this"].function_url
  } : null
}

output "api_endpoint" {
  description = "The tool gateway's URL, or null without one."
  value       = one([for g in module.gateway : g.api_endpoint])
}

output "release_record" {
  description = "Where this environment's release record is (s3://<config bucket>/<key>), for release gates."
  value       = "s3://${module.control_plane.config_bucket_name}/${module.control_plane.release_record_key}"
}

output "state_machine_arn" {
  description = "The durable-run state machine."
  value       = module.events.state_machine_arn
}

output "dashboard_name" {
  description = "The CloudWatch dashboard."
  value       = module.audit.dashboard_name
}
