//! Trace contexts and run transcripts.
//!
//! Every invocation carries a W3C-shaped trace id, a run id, the tenant and
//! the caller's identity; nested tool calls keep the trace and run ids of
//! the agent run they belong to. A [`Transcript`] records what a run did
//! (model turns, tool calls) for the caller to show or keep.
//!
//! A transcript is host memory a guest fills, so it is bounded: a request,
//! response, input or output above [`KEEP_WHOLE_BYTES`] is kept as its
//! digest and size, and a run whose transcript would pass
//! [`TRANSCRIPT_BUDGET_BYTES`] gets `limit-exceeded` for the call that
//! would overflow it.

use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

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

/// The largest request, response, input or output a transcript keeps whole.
pub const KEEP_WHOLE_BYTES: usize = 16 * 1024;
/// The most a run's transcript holds, in bytes of JSON.
pub const TRANSCRIPT_BUDGET_BYTES: usize = 4 << 20;

/// A value kept whole, or (above [`KEEP_WHOLE_BYTES`]) its digest and size.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Kept<T> {
    Whole(T),
    Summary {
        /// `sha256:<hex>` of the value's JSON.
        digest: String,
        bytes: usize,
    },
}

impl<T: Serialize> Kept<T> {
    /// Keeps `value` whole if its JSON is small enough.
    pub fn of(value: T) -> Self {
        match serde_json::to_vec(&value) {
            Ok(json) if json.len() > KEEP_WHOLE_BYTES => Kept::Summary {
                digest: format!("sha256:{}", hex::encode(Sha256::digest(&json))),
                bytes: json.len(),
            },
            _ => Kept::Whole(value),
        }
    }

    /// The value, when it was kept whole.
    pub fn whole(&self) -> Option<&T> {
        match self {
            Kept::Whole(value) => Some(value),
            Kept::Summary { .. } => None,
        }
    }
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
        request: Kept<ConverseRequest>,
        #[serde(skip_serializing_if = "Option::is_none")]
        response: Option<Kept<ConverseResponse>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A `tools.invoke` call made by a guest.
    ToolCall {
        caller: String,
        tool: String,
        input: Kept<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        output: Option<Kept<Value>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<InvokeError>,
    },
}

impl TranscriptEvent {
    /// A model call, with request and response kept whole only when small.
    pub fn model_call(
        caller: String,
        request: ConverseRequest,
        response: Option<ConverseResponse>,
        error: Option<String>,
    ) -> Self {
        TranscriptEvent::ModelCall {
            caller,
            request: Kept::of(request),
            response: response.map(Kept::of),
            error: error.map(|e| crate::text::clip(&e)),
        }
    }

    /// A tool call, with input and output kept whole only when small.
    pub fn tool_call(
        caller: String,
        tool: String,
        input: Value,
        output: Option<Value>,
        error: Option<InvokeError>,
    ) -> Self {
        TranscriptEvent::ToolCall {
            caller,
            tool,
            input: Kept::of(input),
            output: output.map(Kept::of),
            error,
        }
    }
}

/// The events of one run, in order, within [`TRANSCRIPT_BUDGET_BYTES`].
#[derive(Debug, Default)]
pub struct Transcript {
    events: Mutex<(Vec<TranscriptEvent>, usize)>,
}

impl Transcript {
    /// Adds an event, unless it would pass the budget.
    ///
    /// # Errors
    ///
    /// The `limit-exceeded` message when the transcript is full (the event
    /// is not kept).
    pub fn push(&self, event: TranscriptEvent) -> Result<(), String> {
        let size = serde_json::to_vec(&event).map_or(0, |json| json.len());
        let Ok(mut state) = self.events.lock() else { return Ok(()) };
        let (events, used) = &mut *state;
        if used.saturating_add(size) > TRANSCRIPT_BUDGET_BYTES {
            return Err(full(*used));
        }
        *used += size;
        events.push(event);
        Ok(())
    }

    /// Checks, before a tool call, that a record of `input_bytes` would fit.
    ///
    /// # Errors
    ///
    /// The `limit-exceeded` message when it would not.
    pub fn has_room(&self, input_bytes: usize) -> Result<(), String> {
        let kept = input_bytes.min(KEEP_WHOLE_BYTES) * 2 + 1024;
        let used = self.events.lock().map_or(0, |state| state.1);
        if used.saturating_add(kept) > TRANSCRIPT_BUDGET_BYTES { Err(full(used)) } else { Ok(()) }
    }

    /// Checks, before a model call, that its record would fit.
    ///
    /// # Errors
    ///
    /// The `limit-exceeded` message when it would not.
    pub fn reserve(&self, request: &ConverseRequest) -> Result<(), String> {
        let kept = request.text_bytes().min(KEEP_WHOLE_BYTES) + 512;
        let used = self.events.lock().map_or(0, |state| state.1);
        if used.saturating_add(kept) > TRANSCRIPT_BUDGET_BYTES { Err(full(used)) } else { Ok(()) }
    }

    /// Bytes of JSON held so far.
    pub fn bytes(&self) -> usize {
        self.events.lock().map_or(0, |state| state.1)
    }

    /// A copy of the events so far.
    pub fn events(&self) -> Vec<TranscriptEvent> {
        self.events.lock().map(|e| e.0.clone()).unwrap_or_default()
    }
}

fn full(used: usize) -> String {
    format!(
        "the run's transcript holds {used} bytes and its budget is {TRANSCRIPT_BUDGET_BYTES} (limit transcript bytes): the run made too many or too large calls"
    )
}
