//! `agenthost aws bootstrap`: creates the AWS resources the configured
//! backends use (the same ones the Terraform in `terraform/` declares), so
//! a fresh account or a local emulator is ready in one command.

use anyhow::anyhow;
use clap::Subcommand;
use serde_json::json;

use agenthost::audit::s3;
use agenthost::brokers::events;
use agenthost::brokers::memory::{self, DEFAULT_TABLE};
use agenthost::governance::HostSettings;
use agenthost::keystore::{DEFAULT_AUDIT_SECRET, DEFAULT_CACHE_SECRET, KeySource, create_secrets};

use crate::{Failure, print_json};

#[derive(Subcommand)]
pub enum AwsCommand {
    /// Create the memory table (DynamoDB, with TTL), the audit bucket (S3 with
    /// Object Lock), the events queue, with `[registry] backend = "s3"` the
    /// registry's bucket and index table, and with `[keys] source =
    /// "secretsmanager"` the host's two key secrets; existing ones are left as they are
    Bootstrap {
        /// The DynamoDB table [default: [memory] table, or agenthost-memory]
        #[arg(long, value_name = "NAME")]
        memory_table: Option<String>,
        /// The S3 bucket for sealed audit segments [default: [audit.s3] bucket; none if unset]
        #[arg(long, value_name = "NAME")]
        audit_bucket: Option<String>,
        /// The SQS queue events are delivered from [default: [events] queue, or agenthost-events]
        #[arg(long, value_name = "NAME")]
        queue: Option<String>,
        /// Also an EventBridge bus with a rule sending agenthost events to the queue [default: [events] bus when backend = "eventbridge"]
        #[arg(long, value_name = "NAME")]
        bus: Option<String>,
    },
}

pub async fn run(command: AwsCommand, settings: &HostSettings) -> Result<(), Failure> {
    match command {
        AwsCommand::Bootstrap { memory_table, audit_bucket, queue, bus } => {
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
            let queue = queue
                .or_else(|| settings.events.queue.clone())
                .unwrap_or_else(|| events::DEFAULT_QUEUE.to_owned());
            let bus = bus.or_else(|| {
                (settings.events.backend == events::EventBackend::Eventbridge)
                    .then(|| settings.events.bus.clone().unwrap_or_else(|| "default".to_owned()))
            });
            let sqs = aws_sdk_sqs::Client::new(&config);
            let eventbridge = aws_sdk_eventbridge::Client::new(&config);
            let url = events::bootstrap(&sqs, Some(&eventbridge), &queue, bus.as_deref())
                .await
                .map_err(|e| anyhow!(e))?;
            report["events"] = json!({ "queue": queue, "queue_url": url, "bus": bus });
            if settings.registry.backend == agenthost::settings::RegistryBackend::S3 {
                let r = &settings.registry;
                let bucket =
                    r.bucket.clone().ok_or_else(|| anyhow!("[registry] backend = \"s3\" needs bucket"))?;
                let table =
                    r.table.clone().unwrap_or_else(|| agenthost::registry::s3::DEFAULT_TABLE.to_owned());
                let store = agenthost::registry::S3Store::new(
                    s3::client(&settings.aws).await,
                    aws_sdk_dynamodb::Client::new(&config),
                    bucket.clone(),
                    r.prefix.clone(),
                    table.clone(),
                );
                let (bucket_created, table_created) = store.create().await.map_err(|e| anyhow!(e))?;
                report["registry"] = json!({
                    "bucket": { "name": bucket, "created": bucket_created },
                    "table": { "name": table, "created": table_created },
                });
            }
            if settings.keys.source == KeySource::Secretsmanager {
                let client = aws_sdk_secretsmanager::Client::new(&config);
                let audit = settings.keys.audit_secret.as_deref().unwrap_or(DEFAULT_AUDIT_SECRET);
                let cache = settings.keys.cache_secret.as_deref().unwrap_or(DEFAULT_CACHE_SECRET);
                let created = create_secrets(&client, audit, cache).await.map_err(|e| anyhow!(e))?;
                report["keys"] = json!({ "audit_secret": audit, "cache_secret": cache, "created": created });
            }
            print_json(&report)
        }
    }
}
