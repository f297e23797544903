//! Write agenthost tools and agents in Rust.
//!
//! A guest is a `cdylib` crate compiled for `wasm32-wasip2`. This crate holds
//! the bindings generated from the `agenthost:platform` WIT package (behind
//! readable Rust types), the [`export_tool!`] and [`export_agent!`] macros,
//! JSON helpers, logging, and wrappers for the host interfaces:
//! [`model::converse`], [`tools::invoke`], [`memory`], [`events`], [`audit`].
//!
//! Everything a guest does outside its own memory goes through the host,
//! which checks it against the grant of the guest's tenant and risk tier.
//!
//! # A complete tool
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "word-count"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! agenthost-guest-sdk = { path = "../../guest-sdk" }
//! serde_json = "1"
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! use agenthost_guest_sdk::{export_tool, json, log, Error, RiskTier, Tool, ToolSpec, Value};
//!
//! struct WordCount;
//!
//! impl Tool for WordCount {
//!     fn spec() -> ToolSpec {
//!         ToolSpec::new("word-count", env!("CARGO_PKG_VERSION"))
//!             .description("Counts the words of a text.")
//!             .input_schema(serde_json::json!({
//!                 "type": "object",
//!                 "properties": { "text": { "type": "string", "maxLength": 100000 } },
//!                 "required": ["text"],
//!                 "additionalProperties": false
//!             }))
//!             .risk_tier(RiskTier::Read)
//!     }
//!
//!     fn invoke(input: Value) -> Result<Value, Error> {
//!         // The host has already checked `input` against the schema above.
//!         let text = json::str_field(&input, "text")?;
//!         let words = text.split_whitespace().count();
//!         log::info("counted", &[("words", &words.to_string())]);
//!         Ok(serde_json::json!({ "words": words }))
//!     }
//! }
//!
//! export_tool!(WordCount);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` and run it
//! with `agenthost run target/wasm32-wasip2/release/word_count.wasm --input
//! '{"text":"a b c"}'`.
//!
//! An agent implements [`Agent`] and is exported with [`export_agent!`]; see
//! `sample-agents/triage` for one that asks the model and calls tools.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

pub use serde_json::{self, Value};

/// The generated bindings, for what the readable wrappers below do not
/// cover. Both worlds share one set of interface types.
pub mod bindings {
    /// The `agent` world: every host interface plus the agent exports.
    #[allow(clippy::too_many_arguments)]
    pub mod agent {
        wit_bindgen::generate!({
            path: "../wit",
            world: "agenthost:platform/agent@0.1.0",
            pub_export_macro: true,
            default_bindings_module: "::agenthost_guest_sdk::bindings::agent",
        });
    }

    /// The `tool` world; its interfaces are those of [`agent`].
    pub mod tool {
        wit_bindgen::generate!({
            path: "../wit",
            world: "agenthost:platform/tool@0.1.0",
            pub_export_macro: true,
            default_bindings_module: "::agenthost_guest_sdk::bindings::tool",
            with: {
                "agenthost:platform/types@0.1.0": super::agent::agenthost::platform::types,
                "agenthost:platform/log@0.1.0": super::agent::agenthost::platform::log,
                "agenthost:platform/memory@0.1.0": super::agent::agenthost::platform::memory,
                "agenthost:platform/events@0.1.0": super::agent::agenthost::platform::events,
                "agenthost:platform/audit@0.1.0": super::agent::agenthost::platform::audit,
            },
        });
    }
}

use bindings::agent::agenthost::platform as wit;

pub use wit::types::{ApprovalPending, Error, RiskTier, TraceContext};

impl Error {
    /// The input does not match what the tool expects.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }

    /// Something the guest did not expect; a bug.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal(message.into())
    }

    /// A named thing does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::NotFound(message.into())
    }

    /// The error's message, whatever its kind.
    pub fn message(&self) -> &str {
        match self {
            Error::Denied(m)
            | Error::NotFound(m)
            | Error::InvalidInput(m)
            | Error::LimitExceeded(m)
            | Error::Unavailable(m)
            | Error::Internal(m) => m,
            Error::ApprovalRequired(p) => &p.message,
        }
    }
}

impl Error {
    /// The kind of error as its WIT case name, e.g. `invalid-input`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Denied(_) => "denied",
            Error::NotFound(_) => "not-found",
            Error::InvalidInput(_) => "invalid-input",
            Error::LimitExceeded(_) => "limit-exceeded",
            Error::Unavailable(_) => "unavailable",
            Error::ApprovalRequired(_) => "approval-required",
            Error::Internal(_) => "internal",
        }
    }

    /// `kind: message`, for a person or a model to read.
    pub fn summary(&self) -> String {
        format!("{}: {}", self.kind(), self.message())
    }
}

/// What a tool says about itself. Build one with [`ToolSpec::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub version: String,
    pub description: String,
    pub input_schema: Value,
    pub risk_tier: RiskTier,
}

impl ToolSpec {
    /// A spec with an empty description, an input schema that accepts any
    /// object, and the highest risk tier: declare a lower one explicitly.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        ToolSpec {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            input_schema: serde_json::json!({ "type": "object" }),
            risk_tier: RiskTier::Critical,
        }
    }

    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// The JSON Schema the host checks every input against before the tool runs.
    pub fn input_schema(mut self, schema: Value) -> Self {
        self.input_schema = schema;
        self
    }

    pub fn risk_tier(mut self, tier: RiskTier) -> Self {
        self.risk_tier = tier;
        self
    }
}

impl From<ToolSpec> for wit::types::ToolSpec {
    fn from(spec: ToolSpec) -> Self {
        wit::types::ToolSpec {
            name: spec.name,
            version: spec.version,
            description: spec.description,
            input_schema: spec.input_schema.to_string(),
            risk_tier: spec.risk_tier,
        }
    }
}

/// A tool component. Export it with [`export_tool!`].
pub trait Tool {
    /// Name, version, description, input schema and risk tier.
    fn spec() -> ToolSpec;

    /// Runs the tool on an input that already matched the schema.
    ///
    /// # Errors
    ///
    /// Whatever the tool wants its caller to see; return
    /// [`Error::InvalidInput`] for input the schema could not rule out.
    fn invoke(input: Value) -> Result<Value, Error>;
}

/// What an agent says about itself.
pub use bindings::agent::AgentSpec;

/// A task given to an agent.
#[derive(Debug, Clone)]
pub struct Task {
    /// The caller's input.
    pub input: Value,
    /// Trace, run, tenant and agent ids set by the host.
    pub context: TraceContext,
}

/// An agent component. Export it with [`export_agent!`].
pub trait Agent {
    fn spec() -> AgentSpec;

    /// Pursues the task and returns the answer as JSON.
    ///
    /// # Errors
    ///
    /// Whatever the agent wants its caller to see.
    fn run(task: Task) -> Result<Value, Error>;
}

/// Exports a type implementing [`Tool`] as the component's `tool` world.
#[macro_export]
macro_rules! export_tool {
    ($tool:ty) => {
        const _: () = {
            struct __AgenthostToolExport;

            impl $crate::bindings::tool::Guest for __AgenthostToolExport {
                fn describe() -> $crate::bindings::tool::ToolSpec {
                    <$tool as $crate::Tool>::spec().into()
                }

                fn invoke(
                    input: ::std::string::String,
                ) -> ::core::result::Result<::std::string::String, $crate::Error> {
                    $crate::__private::invoke_json(&input, <$tool as $crate::Tool>::invoke)
                }
            }

            $crate::bindings::tool::export!(
                __AgenthostToolExport with_types_in $crate::bindings::tool
            );
        };
    };
}

/// Exports a type implementing [`Agent`] as the component's `agent` world.
#[macro_export]
macro_rules! export_agent {
    ($agent:ty) => {
        const _: () = {
            struct __AgenthostAgentExport;

            impl $crate::bindings::agent::Guest for __AgenthostAgentExport {
                fn describe() -> $crate::bindings::agent::AgentSpec {
                    <$agent as $crate::Agent>::spec()
                }

                fn run(
                    task: $crate::bindings::agent::Task,
                ) -> ::core::result::Result<$crate::bindings::agent::Outcome, $crate::Error> {
                    $crate::__private::run_json(task, <$agent as $crate::Agent>::run)
                }
            }

            $crate::bindings::agent::export!(
                __AgenthostAgentExport with_types_in $crate::bindings::agent
            );
        };
    };
}

#[doc(hidden)]
pub mod __private {
    use super::{Error, Task, Value, bindings};

    pub fn invoke_json(input: &str, invoke: fn(Value) -> Result<Value, Error>) -> Result<String, Error> {
        let input = crate::json::parse(input)?;
        invoke(input).map(|output| output.to_string())
    }

    pub fn run_json(
        task: bindings::agent::Task,
        run: fn(Task) -> Result<Value, Error>,
    ) -> Result<bindings::agent::Outcome, Error> {
        let input = crate::json::parse(&task.input)?;
        let output = run(Task { input, context: task.context })?;
        Ok(bindings::agent::Outcome { output: output.to_string() })
    }
}

/// JSON helpers that turn malformed input into [`Error::InvalidInput`].
pub mod json {
    use super::{Error, Value};
    use serde::de::DeserializeOwned;

    /// Parses a JSON document.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the line and column.
    pub fn parse(text: &str) -> Result<Value, Error> {
        serde_json::from_str(text).map_err(|e| Error::invalid_input(format!("not JSON: {e}")))
    }

    /// Deserializes a value into a Rust type.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the field that did not fit.
    pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
        serde_json::from_value(value).map_err(|e| Error::invalid_input(e.to_string()))
    }

    /// The string field `name` of an object.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when the field is missing or not a string.
    pub fn str_field<'a>(value: &'a Value, name: &str) -> Result<&'a str, Error> {
        value
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| Error::invalid_input(format!("field `{name}` must be a string")))
    }
}

/// Structured logs into the host's telemetry, tagged with the trace context.
pub mod log {
    use super::wit::log::{Level, log};

    fn emit(level: Level, message: &str, fields: &[(&str, &str)]) {
        let fields: Vec<(String, String)> =
            fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        log(level, message, &fields);
    }

    pub fn debug(message: &str, fields: &[(&str, &str)]) {
        emit(Level::Debug, message, fields);
    }

    pub fn info(message: &str, fields: &[(&str, &str)]) {
        emit(Level::Info, message, fields);
    }

    pub fn warn(message: &str, fields: &[(&str, &str)]) {
        emit(Level::Warn, message, fields);
    }

    pub fn error(message: &str, fields: &[(&str, &str)]) {
        emit(Level::Error, message, fields);
    }
}

/// Conversations with the model the host brokers (agents only).
pub mod model {
    pub use super::wit::model::{
        ContentBlock, ConverseRequest, ConverseResponse, InferenceConfig, Message, Role, StopReason,
        TokenUsage, ToolChoice, ToolConfig, ToolDefinition, ToolResult, ToolResultContent, ToolResultStatus,
        ToolUse,
    };
    use super::{Error, ToolSpec as SdkToolSpec, wit};

    /// Sends one turn of a conversation.
    ///
    /// # Errors
    ///
    /// The host's error: `denied` for a model outside the grant,
    /// `limit-exceeded` for the token quota, `unavailable` for a backend down.
    pub fn converse(request: &ConverseRequest) -> Result<ConverseResponse, Error> {
        wit::model::converse(request)
    }

    impl Message {
        /// A user message holding one text block.
        pub fn user_text(text: impl Into<String>) -> Self {
            Message { role: Role::User, content: vec![ContentBlock::Text(text.into())] }
        }

        /// The text blocks of this message, joined by newlines.
        pub fn text(&self) -> String {
            let parts: Vec<&str> = self
                .content
                .iter()
                .filter_map(|block| match block {
                    ContentBlock::Text(text) => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            parts.join("\n")
        }

        /// The tool-use requests in this message.
        pub fn tool_uses(&self) -> impl Iterator<Item = &ToolUse> {
            self.content.iter().filter_map(|block| match block {
                ContentBlock::ToolUse(tool_use) => Some(tool_use),
                _ => None,
            })
        }
    }

    impl ConverseRequest {
        /// A request with these messages, no tools and the tenant's default model.
        pub fn new(messages: Vec<Message>) -> Self {
            ConverseRequest {
                model_id: None,
                messages,
                system: Vec::new(),
                tool_config: None,
                inference: None,
            }
        }
    }

    impl From<&wit::types::ToolSpec> for ToolDefinition {
        fn from(spec: &wit::types::ToolSpec) -> Self {
            ToolDefinition {
                name: spec.name.clone(),
                description: spec.description.clone(),
                input_schema: spec.input_schema.clone(),
            }
        }
    }

    impl From<&SdkToolSpec> for ToolDefinition {
        fn from(spec: &SdkToolSpec) -> Self {
            ToolDefinition {
                name: spec.name.clone(),
                description: spec.description.clone(),
                input_schema: spec.input_schema.to_string(),
            }
        }
    }
}

/// Calling other tools through the host (agents only).
pub mod tools {
    use super::{Error, Value, wit};

    pub use wit::types::ToolSpec;

    /// The tools this agent may call.
    pub fn list() -> Vec<ToolSpec> {
        wit::tools::list()
    }

    /// Invokes a tool with a JSON input; the host governs the call.
    ///
    /// # Errors
    ///
    /// The host's or the tool's error: `not-found`, `denied`,
    /// `invalid-input` (schema), `approval-required`, a limit.
    pub fn invoke(name: &str, input: &Value) -> Result<Value, Error> {
        let output = wit::tools::invoke(name, &input.to_string())?;
        crate::json::parse(&output).map_err(|e| Error::internal(format!("tool `{name}` returned {e}")))
    }
}

/// Key-value memory scoped to the caller's tenant.
pub mod memory {
    pub use super::wit::memory::{
        Classification, Entry, Governance, ListPage, PutOptions, delete, get, list, put,
    };
}

/// Publishing events.
pub mod events {
    pub use super::wit::events::publish;
}

/// Custom evidence for the audit trail.
pub mod audit {
    pub use super::wit::audit::{Evidence, emit};
}

#[cfg(test)]
mod tests {
    use super::{ApprovalPending, Error};

    /// The SDK names error kinds as the WIT names its cases, in order.
    #[test]
    fn error_kinds_are_the_wit_case_names() {
        let wit = include_str!("../../wit/types.wit");
        let body = wit.split("variant error {").nth(1).and_then(|rest| rest.split('}').next()).unwrap();
        let cases: Vec<&str> = body
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("//"))
            .map(|line| line.split('(').next().unwrap())
            .collect();
        let pending = ApprovalPending { request_id: String::new(), message: String::new() };
        let kinds: Vec<&str> = [
            Error::Denied(String::new()),
            Error::NotFound(String::new()),
            Error::InvalidInput(String::new()),
            Error::LimitExceeded(String::new()),
            Error::Unavailable(String::new()),
            Error::ApprovalRequired(pending),
            Error::Internal(String::new()),
        ]
        .iter()
        .map(Error::kind)
        .collect();
        assert_eq!(kinds, cases);
    }
}
