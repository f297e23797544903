# The application release prod runs: set by the release job, nothing else.
# Infrastructure settings live in terraform.tfvars. Promotion copies this
# file from the environment before (terraform/README.md, "Promotion").
# Placeholder digests until the first release.

release = {
  manifest_version = "0.1.0"
  component_digests = {
    triage     = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
    calculator = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
  }
  lambda_package_digest  = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
  container_image_digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
}

# During a canary: { stable_version = "<version in service>", weight = 0.1 }
lambda_canary = null
