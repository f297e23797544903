//! Trace contexts and run transcripts.
//!
//! Every invocation carries a W3C-shaped trace id, a run id, the tenant and
//! the caller's identity; nested tool calls keep the trace and run ids of
//! the agent run they belong to. A [`Transcript`] records what a run did
//! (model turns, tool calls) for the caller to show or keep.

use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

use crate::bindings::model::{ConverseRequest, ConverseResponse};
use crate::bindings::types::TraceContext;
use crate::error::InvokeError;

/// A fresh trace context for a top-level call.
pub fn new_trace(tenant: &str, agent_id: &str) -> TraceContext {
    TraceContext {
        trace_id: random_hex::<16>(),
        run_id: format!("run-{}", random_hex::<8>()),
        tenant_id: tenant.to_owned(),
        agent_id: agent_id.to_owned(),
    }
}

fn random_hex<const N: usize>() -> String {
    let mut bytes: [u8; N] = rand::random();
    // An all-zero trace id is invalid in W3C trace context.
    if bytes.iter().all(|b| *b == 0) {
        bytes[0] = 1;
    }
    hex::encode(bytes)
}

/// One thing a run did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum TranscriptEvent {
    /// A policy decision taken during the run.
    Decision {
        principal: String,
        action: String,
        resource: String,
        allowed: bool,
        enforced: bool,
        policies: Vec<String>,
    },
    /// A `model.converse` call and its answer (or error).
    ModelCall {
        caller: String,
        request: ConverseRequest,
        #[serde(skip_serializing_if = "Option::is_none")]
        response: Option<ConverseResponse>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A `tools.invoke` call made by a guest.
    ToolCall {
        caller: String,
        tool: String,
        input: Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        output: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<InvokeError>,
    },
}

/// The events of one run, in order.
#[derive(Debug, Default)]
pub struct Transcript {
    events: Mutex<Vec<TranscriptEvent>>,
}

impl Transcript {
    pub fn push(&self, event: TranscriptEvent) {
        if let Ok(mut events) = self.events.lock() {
            events.push(event);
        }
    }

    /// A copy of the events so far.
    pub fn events(&self) -> Vec<TranscriptEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}
