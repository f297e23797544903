provider "aws" {
  region = var.region

  # A plan against the wrong account stops here, before anything is read.
  allowed_account_ids = var.allowed_account_ids

  default_tags {
    tags = {
      "agenthost:environment" = var.environment
      "agenthost:stack"       = "terraform/envs/${var.environment}"
      "agenthost:managed-by"  = "terraform"
    }
  }
}
