//! `agenthost aws bootstrap`: creates the AWS resources the configured
//! backends use (the same ones the Terraform in `terraform/` declares), so
//! a fresh account or a local emulator is ready in one command.

use anyhow::anyhow;
use clap::Subcommand;
use serde_json::json;

use agenthost::audit::s3;
use agenthost::brokers::memory::{self, DEFAULT_TABLE};
use agenthost::governance::HostSettings;

use crate::{Failure, print_json};

#[derive(Subcommand)]
pub enum AwsCommand {
    /// Create the memory table (DynamoDB, with TTL) and the audit bucket (S3
    /// with Object Lock); existing ones are left as they are
    Bootstrap {
        /// The DynamoDB table [default: [memory] table, or agenthost-memory]
        #[arg(long, value_name = "NAME")]
        memory_table: Option<String>,
        /// The S3 bucket for sealed audit segments [default: [audit.s3] bucket; none if unset]
        #[arg(long, value_name = "NAME")]
        audit_bucket: Option<String>,
    },
}

pub async fn run(command: AwsCommand, settings: &HostSettings) -> Result<(), Failure> {
    match command {
        AwsCommand::Bootstrap { memory_table, audit_bucket } => {
            let config = settings.aws.load().await;
            let table = memory_table
                .or_else(|| settings.memory.table.clone())
                .unwrap_or_else(|| DEFAULT_TABLE.to_owned());
            let dynamo = aws_sdk_dynamodb::Client::new(&config);
            let created = memory::create_table(&dynamo, &table)
                .await
                .map_err(|e| anyhow!("cannot create the memory table `{table}`: {e}"))?;
            let mut report = json!({ "memory_table": { "name": table, "created": created } });
            let bucket = audit_bucket.or_else(|| settings.audit.s3.as_ref().map(|s| s.bucket.clone()));
            if let Some(bucket) = bucket {
                let client = s3::client(&settings.aws).await;
                let created = s3::create_bucket(&client, &bucket).await.map_err(|e| anyhow!(e))?;
                report["audit_bucket"] = json!({ "name": bucket, "created": created, "object_lock": true });
            }
            print_json(&report)
        }
    }
}
