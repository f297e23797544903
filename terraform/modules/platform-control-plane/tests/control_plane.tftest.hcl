# Security properties of the control plane, on a mocked AWS provider:
# nothing is created, the assertions read the plan.

mock_provider "aws" {
  # Mocked computed values (ARNs) are known at plan, so assertions can
  # compare them.
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
    defaults = { arn = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::agenthost-test-bucket" }
  }
}

variables {
  name_prefix = "agenthost-test"
}

run "buckets_are_private_versioned_and_encrypted" {
  command = plan

  assert {
    condition     = toset(keys(aws_s3_bucket.this)) == toset(["registry", "config"])
    error_message = "The module makes exactly the registry and config buckets."
  }
  assert {
    condition = alltrue([for b in aws_s3_bucket_public_access_block.this :
    b.block_public_acls && b.block_public_policy && b.ignore_public_acls && b.restrict_public_buckets])
    error_message = "Every bucket blocks all public access."
  }
  assert {
    condition     = alltrue([for v in aws_s3_bucket_versioning.this : v.versioning_configuration[0].status == "Enabled"])
    error_message = "Every bucket is versioned."
  }
  assert {
    condition = alltrue([for e in aws_s3_bucket_server_side_encryption_configuration.this :
      one(one(e.rule).apply_server_side_encryption_by_default).sse_algorithm == "aws:kms" &&
    one(one(e.rule).apply_server_side_encryption_by_default).kms_master_key_id == aws_kms_key.platform.arn])
    error_message = "Every bucket is encrypted with the platform key (SSE-KMS)."
  }
  assert {
    condition     = alltrue([for o in aws_s3_bucket_ownership_controls.this : one(o.rule).object_ownership == "BucketOwnerEnforced"])
    error_message = "ACLs are disabled on every bucket."
  }
  assert {
    condition = alltrue([for p in aws_s3_bucket_policy.tls_only :
      anytrue([for s in jsondecode(p.policy).Statement :
    s.Effect == "Deny" && s.Condition.Bool["aws:SecureTransport"] == "false"])])
    error_message = "Every bucket policy denies requests without TLS."
  }
  assert {
    condition     = aws_s3_bucket.this["registry"].bucket == "agenthost-test-registry" && !aws_s3_bucket.this["registry"].force_destroy
    error_message = "The registry bucket is named after the prefix and is not force-destroyed by default."
  }
}

run "registry_index_and_key" {
  command = plan

  assert {
    condition     = aws_dynamodb_table.registry.hash_key == "pk" && aws_dynamodb_table.registry.range_key == "sk"
    error_message = "The registry index has the host's key schema (pk, sk)."
  }
  assert {
    condition     = alltrue([for a in aws_dynamodb_table.registry.attribute : a.type == "S"])
    error_message = "pk and sk are strings."
  }
  assert {
    condition     = aws_dynamodb_table.registry.point_in_time_recovery[0].enabled
    error_message = "The registry index has point-in-time recovery."
  }
  assert {
    condition = (aws_dynamodb_table.registry.server_side_encryption[0].enabled &&
    aws_dynamodb_table.registry.server_side_encryption[0].kms_key_arn == aws_kms_key.platform.arn)
    error_message = "The registry index is encrypted with the platform key."
  }
  assert {
    condition     = aws_dynamodb_table.registry.deletion_protection_enabled
    error_message = "Deletion protection is on by default."
  }
  assert {
    condition     = aws_kms_key.platform.enable_key_rotation
    error_message = "The platform key rotates."
  }
  assert {
    condition     = !anytrue([for s in jsondecode(aws_kms_key.platform.policy).Statement : try(s.Principal.AWS, "") == "*" || try(s.Principal, "") == "*"])
    error_message = "The key policy names its principals (no wildcard principal)."
  }
}

run "no_policy_store_and_no_release_by_default" {
  command = plan

  assert {
    condition     = length(aws_verifiedpermissions_policy_store.this) == 0 && length(aws_s3_object.release) == 0
    error_message = "Verified Permissions and the release record are off unless asked for."
  }
}

run "policy_store_holds_the_host_schema" {
  command = plan

  variables {
    verified_permissions = true
  }

  assert {
    condition     = one(aws_verifiedpermissions_policy_store.this[0].validation_settings[*]).mode == "STRICT"
    error_message = "The policy store validates policies strictly against the schema."
  }
  assert {
    condition     = contains(keys(jsondecode(one(aws_verifiedpermissions_schema.this[0].definition[*]).value).AgentHost.actions), "InvokeTool")
    error_message = "The schema is agenthost's (namespace AgentHost, action InvokeTool)."
  }
}

run "release_record_is_encrypted" {
  command = plan

  variables {
    release = {
      manifest_version      = "2025.1.0"
      component_digests     = { triage = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
      lambda_package_digest = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
    }
  }

  assert {
    condition     = aws_s3_object.release[0].server_side_encryption == "aws:kms" && jsondecode(aws_s3_object.release[0].content).manifest_version == "2025.1.0"
    error_message = "The release record holds the release and is encrypted with KMS."
  }
}

run "a_digest_that_is_not_sha256_is_refused" {
  command = plan

  variables {
    release = {
      manifest_version  = "2025.1.0"
      component_digests = { triage = "md5:abc" }
    }
  }

  expect_failures = [var.release]
}
