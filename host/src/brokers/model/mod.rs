//! The model broker: the trait every model backend implements, and the
//! backends: the built-in deterministic model (the offline default), AWS
//! Bedrock Converse, and OpenAI-compatible chat completions.

pub mod bedrock;
mod builtin;
pub mod openai;

pub use crate::settings::{ModelBackendKind, ModelSettings};
pub use bedrock::BedrockModel;
pub use builtin::{BUILTIN_MODEL_ID, BuiltinModel};
pub use openai::OpenAiModel;

use crate::bindings::model::{ConverseRequest, ConverseResponse, StopReason};
use crate::bindings::types::{Error, TraceContext};

/// A boxed future, so backends can be chosen at run time.
pub use crate::brokers::BoxFuture;

/// A model backend answers Converse-shaped requests.
pub trait ModelBackend: Send + Sync {
    /// A short name for logs and errors.
    fn name(&self) -> &str;

    /// The model a request without `model-id` goes to.
    fn default_model(&self) -> &str {
        BUILTIN_MODEL_ID
    }

    /// Answers one turn. Errors use the WIT error cases (`not-found` for an
    /// unknown model, `unavailable` for a backend that is down, ...).
    fn converse<'a>(
        &'a self,
        request: &'a ConverseRequest,
        trace: &'a TraceContext,
    ) -> BoxFuture<'a, Result<ConverseResponse, Error>>;
}

/// The stop reason as its WIT name, e.g. `tool-use`.
pub fn stop_reason_name(reason: StopReason) -> &'static str {
    match reason {
        StopReason::EndTurn => "end-turn",
        StopReason::ToolUse => "tool-use",
        StopReason::MaxTokens => "max-tokens",
        StopReason::StopSequence => "stop-sequence",
        StopReason::GuardrailIntervened => "guardrail-intervened",
        StopReason::ContentFiltered => "content-filtered",
    }
}
