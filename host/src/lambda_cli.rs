//! `agenthost lambda`: runs as a Lambda function (also chosen when the
//! binary starts with no arguments and `AWS_LAMBDA_RUNTIME_API` is set, as
//! a `bootstrap` on `provided.al2023` does).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::anyhow;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

use agenthost::governance::Governance;
use agenthost::lambda::Function;

use crate::Failure;
use crate::server_cli::{Built, build};

/// What the Runtime API client needs from the environment Lambda sets.
pub const LAMBDA_ENV: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

pub async fn lambda(
    cache_dir: Option<PathBuf>,
    governance: Arc<Governance>,
    data: &Path,
    keys: &agenthost::keystore::HostKeys,
) -> Result<(), Failure> {
    let missing: Vec<&str> = LAMBDA_ENV.iter().copied().filter(|v| std::env::var_os(v).is_none()).collect();
    if !missing.is_empty() {
        return Err(anyhow!(
            "`agenthost lambda` runs inside AWS Lambda (or under `cargo lambda watch`): {} not set",
            missing.join(", ")
        )
        .into());
    }
    let Built { server, backends, .. } = build(cache_dir, governance, data, keys).await?;
    // Execution environments share nothing but the backends: deliveries
    // are claimed in the memory backend (DynamoDB).
    server.host().use_delivery_ledger();
    let function = Arc::new(Function::new(server));
    let handler = service_fn(move |event: LambdaEvent<Value>| {
        let function = function.clone();
        async move { function.handle(event.payload, event.context).await }
    });
    let ran = lambda_runtime::run(handler).await;
    backends.close().await.map_err(|e| anyhow!("the audit trail was not closed cleanly: {e}"))?;
    ran.map_err(|e| anyhow!("the Lambda runtime stopped: {e}").into())
}
