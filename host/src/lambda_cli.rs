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
use crate::server_cli::{BuildOptions, Built, build};

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
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let memory_mb = var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").parse::<u64>().map_err(|_| {
        anyhow!(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE is not a number of MiB: `{}`",
            var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        )
    })?;
    let options = BuildOptions {
        engine: Some(agenthost::lambda::engine_for(memory_mb)),
        audit_stream: Some(agenthost::lambda::stream_for(
            &var("AWS_LAMBDA_FUNCTION_NAME"),
            &var("AWS_LAMBDA_LOG_STREAM_NAME"),
        )),
    };
    if governance.settings().memory.backend != agenthost::settings::MemoryBackend::Dynamodb {
        tracing::warn!(
            target: "agenthost::lambda",
            "[memory] backend is not dynamodb: memory, approval requests, async runs, quotas and delivery claims stay in this execution environment's /tmp, which other environments do not see and Lambda may reclaim at any time"
        );
    }
    let Built { server, backends, .. } = build(options, cache_dir, governance, data, keys).await?;
    // Execution environments share nothing but the backends: deliveries
    // are claimed in the memory backend (DynamoDB).
    server.host().use_delivery_ledger();
    // /tmp is small and scratch: what the bucket holds goes from here.
    backends.prune_after_shipping();
    let backends = Arc::new(backends);
    let function = Arc::new(Function::new(server));
    let evidence = backends.clone();
    crate::startup_phase("function ready: asking for the first event");
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let handler = service_fn(move |event: LambdaEvent<Value>| {
        let (function, evidence, first) = (function.clone(), evidence.clone(), first.clone());
        async move {
            let first = first.swap(false, std::sync::atomic::Ordering::Relaxed);
            if first {
                crate::startup_phase("first event received");
            }
            let deadline = event.context.deadline();
            let answer = function.handle(event.payload, event.context).await;
            if first {
                crate::startup_phase("first event handled");
            }
            // The environment may be frozen or reclaimed once this answer
            // is sent: its /tmp is not evidence, so this invocation's
            // records are sealed and shipped first, within its deadline (a
            // second kept for the answer: a timed-out invocation would be
            // delivered again). A failure is logged, not answered: the calls
            // ran, and a later invocation ships what is missing.
            if let Err(e) = evidence.seal_and_ship_within(agenthost::lambda::time_left(deadline)).await {
                tracing::error!(target: "agenthost::lambda", error = %e, "the audit segment of this invocation is not in S3 yet");
            }
            if first {
                crate::startup_phase("first segment sealed: answering");
            }
            answer
        }
    });
    let ran = lambda_runtime::run(handler).await;
    backends.close().await.map_err(|e| anyhow!("the audit trail was not closed cleanly: {e}"))?;
    ran.map_err(|e| anyhow!("the Lambda runtime stopped: {e}").into())
}
