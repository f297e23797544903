terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Partial configuration: bucket, key, region and the lock table come from
  # `terraform init -backend-config=...` (terraform/README.md, "State").
  # CI validates with `terraform init -backend=false`.
  backend "s3" {}
}
