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
//!   error (`errorType` its kind, `errorMessage` the problem+json).

use std::sync::Arc;

use axum::Router;
use lambda_http::Service as _;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::brokers::events::envelope_of;
use crate::server::{DirectCall, Server};

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
            None => Err(failure(
                "invalid-input",
                "not an event this function takes: an API Gateway, Function URL or ALB request, an SQS batch, or a direct call {\"tenant\", \"tool\"|\"agent\", \"input\"}",
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
                format!("a direct call is {{\"tenant\", \"tool\"|\"agent\", \"input\", \"principal\"?, \"approval_request\"?, \"approvals\"?, \"session\"?}}: {e}"),
            )
        })?;
        self.server
            .call_direct(call)
            .await
            .map_err(|problem| failure(&problem.kind, problem.to_json().to_string()))
    }

    /// Each message in turn; the ones that failed come back to the queue.
    async fn sqs(&self, payload: Value) -> Result<Value, Diagnostic> {
        let batch: SqsBatch = serde_json::from_value(payload)
            .map_err(|e| failure("invalid-input", format!("not an SQS batch: {e}")))?;
        let mut failed = Vec::new();
        for message in batch.records {
            if let Err(why) = self.message(&message.body).await {
                tracing::warn!(target: "agenthost::lambda", message_id = %message.message_id, error = %why, "an SQS message failed; it comes back to the queue");
                failed.push(json!({ "itemIdentifier": message.message_id }));
            }
        }
        Ok(json!({ "batchItemFailures": failed }))
    }

    async fn message(&self, body: &str) -> Result<(), String> {
        let value: Value = serde_json::from_str(body).map_err(|e| format!("the message is not JSON: {e}"))?;
        // An event has a topic (or, from EventBridge, a detail-type); a call names a tool or agent.
        let is_call = value.get("topic").is_none()
            && value.get("detail-type").is_none()
            && (value.get("tool").is_some() || value.get("agent").is_some());
        if is_call {
            let call: DirectCall =
                serde_json::from_value(value).map_err(|e| format!("not a direct call: {e}"))?;
            return self.server.call_direct(call).await.map(|_| ()).map_err(|p| p.to_json().to_string());
        }
        let event = envelope_of(body)?;
        self.server.host().deliver_event(event).await.map(|_| ())
    }
}
