//! `agenthost lambda`: the server of `agenthost serve`, driven by the
//! Lambda Runtime API instead of a socket. One function takes every event
//! its triggers send:
//!
//! - API Gateway (REST and HTTP APIs), Function URLs and ALB: the request
//!   goes through the very router `serve` uses (routes, bearer tokens,
//!   problem+json), and its answer back in the shape the trigger expects;
//! - SQS batches: each message is an agenthost event (delivered to the
//!   subscribers, at most once each, claimed in the delivery ledger) or a
//!   direct call; failed messages come back in `batchItemFailures`;
//! - a direct invoke (`{tenant, tool|agent, input, …}`, a
//!   [`DirectCall`]): IAM decided who may invoke, so no token; the answer
//!   is the body an HTTP 200 carries, and a problem becomes the function's
//!   error (`errorType` its kind, `errorMessage` the problem+json). With
//!   a `task_token` (a Step Functions `.waitForTaskToken` task) the
//!   workflow gets the outcome through the token (`server::tasks`);
//! - a scheduled event (an EventBridge schedule rule, or `{"settle":
//!   true}`): paused workflows whose approval was decided elsewhere (the
//!   CLI on the shared store) or expired are answered, as `serve`'s own
//!   sweep does every 30 s. A deployment of Lambda alone needs the
//!   schedule (the Terraform module makes it).

use std::sync::Arc;

use axum::Router;
use lambda_http::Service as _;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::EngineConfig;
use crate::server::{DirectCall, Server};

/// The engine for a function with `memory_mb` MiB: a pool of one instance
/// per 64 MiB (at least 4, for an agent and the tools it calls; at most
/// 64), no guest memory larger than half the function (an agent and a tool
/// at their largest still leave the host room) nor than 1 GiB. Where the
/// pool's address space cannot be reserved the engine falls back to
/// on-demand allocation by itself.
pub fn engine_for(memory_mb: u64) -> EngineConfig {
    let memory_mb = memory_mb.clamp(128, 10_240);
    let instances = u32::try_from((memory_mb / 64).clamp(4, 64)).unwrap_or(4);
    EngineConfig {
        pool_instances: instances,
        max_memory_bytes: ((memory_mb / 2) << 20).min(EngineConfig::default().max_memory_bytes),
        ..EngineConfig::default()
    }
}

/// The audit stream of one execution environment, from the function's
/// name and its log stream (`2026/12/01/[$LATEST]0123abcd…`): environments
/// never share a stream, so their chains stay apart in the bucket. Only
/// `[A-Za-z0-9._-]`, at most 96 characters.
pub fn stream_for(function: &str, log_stream: &str) -> String {
    let environment = log_stream.rsplit(']').next().unwrap_or(log_stream);
    // Without a log stream (an emulator), an id of its own: environments
    // must never share a stream.
    let random;
    let environment = if environment.trim().is_empty() {
        random = format!("{:016x}", rand::random::<u64>());
        random.as_str()
    } else {
        environment
    };
    let keep = |text: &str, at_most: usize| -> String {
        text.chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
            .take(at_most)
            .collect()
    };
    format!("lambda-{}-{}", keep(function, 40), keep(environment, 48))
}

/// The function: a server and its router.
pub struct Function {
    server: Arc<Server>,
    router: Router,
}

/// What kind of event a payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Http,
    Sqs,
    Direct,
    Schedule,
}

/// Tells the triggers apart by their shape.
pub fn trigger_of(payload: &Value) -> Option<Trigger> {
    let records = payload.get("Records").and_then(Value::as_array);
    if records
        .is_some_and(|r| r.iter().all(|m| m.get("eventSource").and_then(Value::as_str) == Some("aws:sqs")))
    {
        return Some(Trigger::Sqs);
    }
    if payload.get("requestContext").is_some() {
        return Some(Trigger::Http);
    }
    if payload.get("tenant").is_some() {
        return Some(Trigger::Direct);
    }
    let scheduled = payload.get("source").and_then(Value::as_str) == Some("aws.events")
        && payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event");
    if scheduled || payload.get("settle").and_then(Value::as_bool) == Some(true) {
        return Some(Trigger::Schedule);
    }
    None
}

/// One SQS message of a batch: only what is read.
#[derive(Deserialize)]
struct SqsMessage {
    #[serde(rename = "messageId")]
    message_id: String,
    #[serde(default)]
    body: String,
}

#[derive(Deserialize)]
struct SqsBatch {
    #[serde(rename = "Records")]
    records: Vec<SqsMessage>,
}

/// The request with `stage` taken off the front of its path, if it is there.
fn without_stage(mut request: lambda_http::Request, stage: Option<&str>) -> lambda_http::Request {
    let Some(stage) = stage else { return request };
    let uri = request.uri();
    let Some(rest) = uri.path().strip_prefix(stage).filter(|r| r.starts_with('/')) else { return request };
    let path_and_query = match uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// What is left of an invocation due by `deadline`, a second kept for
/// sending the answer.
pub fn time_left(deadline: std::time::SystemTime) -> std::time::Duration {
    deadline
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(std::time::Duration::from_secs(1))
}

fn failure(kind: &str, message: impl Into<String>) -> Diagnostic {
    Diagnostic { error_type: kind.to_owned(), error_message: message.into() }
}

impl Function {
    pub fn new(server: Arc<Server>) -> Self {
        let router = server.router();
        Function { server, router }
    }

    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// One invocation.
    ///
    /// # Errors
    ///
    /// An event of no known shape; a direct call's problem.
    pub async fn handle(&self, payload: Value, context: Context) -> Result<Value, Diagnostic> {
        match trigger_of(&payload) {
            Some(Trigger::Http) => self.http(payload, context).await,
            Some(Trigger::Sqs) => self.sqs(payload).await,
            Some(Trigger::Direct) => self.direct(payload).await,
            Some(Trigger::Schedule) => self.settle(context).await,
            None => Err(failure(
                "invalid-input",
                "not an event this function takes: an API Gateway, Function URL or ALB request, an SQS batch, a direct call {\"tenant\", \"tool\"|\"agent\", \"input\"}, or a scheduled event",
            )),
        }
    }

    async fn http(&self, payload: Value, context: Context) -> Result<Value, Diagnostic> {
        // A REST API puts its stage before the path (`/prod/v1/...`): the
        // routes are the server's, so the stage goes.
        let stage = payload
            .pointer("/requestContext/stage")
            .and_then(Value::as_str)
            .filter(|s| *s != "$default" && !s.is_empty())
            .map(|s| format!("/{s}"));
        let request: lambda_http::request::LambdaRequest = serde_json::from_value(payload)
            .map_err(|e| failure("invalid-input", format!("not an HTTP event this function takes: {e}")))?;
        let router = lambda_http::tower::ServiceExt::map_request(self.router.clone(), move |request| {
            without_stage(request, stage.as_deref())
        });
        let mut adapter = lambda_http::Adapter::from(router);
        let response = match adapter.call(LambdaEvent::new(request, context)).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        serde_json::to_value(response)
            .map_err(|e| failure("internal", format!("cannot encode the answer: {e}")))
    }

    async fn direct(&self, payload: Value) -> Result<Value, Diagnostic> {
        let call: DirectCall = serde_json::from_value(payload).map_err(|e| {
            failure(
                "invalid-input",
                format!("a direct call is {{\"tenant\", \"tool\"|\"agent\", \"input\", \"principal\"?, \"approval_request\"?, \"approvals\"?, \"session\"?, \"transcript\"?, \"task_token\"?}}: {e}"),
            )
        })?;
        self.server
            .call_direct(call)
            .await
            .map_err(|problem| failure(&problem.kind, problem.to_json().to_string()))
    }

    /// A sweep of the paused workflows, none resumed past the deadline.
    async fn settle(&self, context: Context) -> Result<Value, Diagnostic> {
        let until = std::time::Instant::now() + time_left(context.deadline());
        let sweep = self
            .server
            .settle_parked(Some(until))
            .await
            .map_err(|e| failure("unavailable", format!("cannot look for paused workflows: {e}")))?;
        if sweep.deferred > 0 {
            tracing::warn!(target: "agenthost::lambda", deferred = sweep.deferred, "paused workflows left for the next scheduled event: this invocation had not the time to resume them (the function's timeout must exceed the host's [limits] timeout by more than 10 s)");
        }
        serde_json::to_value(sweep).map_err(|e| failure("internal", e.to_string()))
    }

    /// Each message in turn; the ones that failed come back to the queue.
    async fn sqs(&self, payload: Value) -> Result<Value, Diagnostic> {
        let batch: SqsBatch = serde_json::from_value(payload)
            .map_err(|e| failure("invalid-input", format!("not an SQS batch: {e}")))?;
        let mut failed = Vec::new();
        for message in batch.records {
            if let Err(why) = self.server.take_message(&message.message_id, &message.body).await {
                tracing::warn!(target: "agenthost::lambda", message_id = %message.message_id, error = %why, "an SQS message failed; it comes back to the queue");
                failed.push(json!({ "itemIdentifier": message.message_id }));
            }
        }
        Ok(json!({ "batchItemFailures": failed }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_follows_the_functions_memory() {
        let small = engine_for(128);
        assert_eq!((small.pool_instances, small.max_memory_bytes), (4, 64 << 20));
        let mid = engine_for(1024);
        assert_eq!((mid.pool_instances, mid.max_memory_bytes), (16, 512 << 20));
        let large = engine_for(10_240);
        assert_eq!((large.pool_instances, large.max_memory_bytes), (64, 1 << 30));
        // A nonsense size is taken as the nearest one Lambda allows.
        assert_eq!(engine_for(0).pool_instances, 4);
    }

    #[test]
    fn triggers_are_told_apart_by_their_shape() {
        let schedule = json!({ "source": "aws.events", "detail-type": "Scheduled Event", "detail": {} });
        assert_eq!(trigger_of(&schedule), Some(Trigger::Schedule));
        assert_eq!(trigger_of(&json!({ "settle": true })), Some(Trigger::Schedule));
        assert_eq!(trigger_of(&json!({ "settle": "yes" })), None);
        // Another EventBridge event is no schedule.
        assert_eq!(trigger_of(&json!({ "source": "aws.events", "detail-type": "Order Placed" })), None);
        // A direct call stays one, whatever else it carries.
        let call = json!({ "tenant": "acme", "tool": "calculator", "input": {}, "settle": true });
        assert_eq!(trigger_of(&call), Some(Trigger::Direct));
        let batch = json!({ "Records": [{ "eventSource": "aws:sqs", "messageId": "m", "body": "" }] });
        assert_eq!(trigger_of(&batch), Some(Trigger::Sqs));
        assert_eq!(trigger_of(&json!({ "requestContext": {} })), Some(Trigger::Http));
    }

    #[test]
    fn each_environment_has_a_stream_of_its_own_with_a_safe_name() {
        let a = stream_for("agenthost", "2026/12/01/[$LATEST]0123456789abcdef");
        let b = stream_for("agenthost", "2026/12/01/[$LATEST]fedcba9876543210");
        assert_eq!(a, "lambda-agenthost-0123456789abcdef");
        assert_ne!(a, b);
        let odd = stream_for("fn/../x", "../../etc/passwd");
        assert!(odd.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)), "{odd}");
        assert!(!odd.contains('/'));
        assert!(stream_for(&"f".repeat(500), &"e".repeat(500)).len() <= 96);
        // No log stream: still one stream per environment.
        let (x, y) = (stream_for("agenthost", ""), stream_for("agenthost", ""));
        assert_ne!(x, y);
        assert!(x.len() > "lambda-agenthost-".len(), "{x}");
    }
}
