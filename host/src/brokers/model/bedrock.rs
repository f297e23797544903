//! AWS Bedrock through the Converse API (`aws-sdk-bedrockruntime`).
//!
//! The WIT `model` interface is shaped after Converse, so the mapping is
//! one to one: messages, system blocks, tool config (tools, choice),
//! tool-use and tool-result blocks, inference settings, stop reasons and
//! usage. `requestMetadata` carries the tenant, trace, run and agent, so the
//! account's model invocation logs can be filtered by them. Throttling and
//! 5xx answers are retried with backoff by the SDK's standard retry policy
//! (`[aws] max_attempts`); what still fails is mapped to the WIT error cases.

use std::collections::HashMap;

use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_bedrockruntime::operation::converse::ConverseError;
use aws_sdk_bedrockruntime::types as br;
use aws_smithy_types::{Document, Number};
use serde_json::Value;

use crate::bindings::model::{
    ContentBlock, ConverseRequest, ConverseResponse, Message, Role, StopReason, TokenUsage, ToolChoice,
    ToolResultContent, ToolResultStatus, ToolUse,
};
use crate::bindings::types::{Error, TraceContext};

use super::{BoxFuture, ModelBackend};

pub struct BedrockModel {
    client: Client,
    default_model: String,
}

impl std::fmt::Debug for BedrockModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BedrockModel").field("default_model", &self.default_model).finish_non_exhaustive()
    }
}

impl BedrockModel {
    pub fn new(client: Client, default_model: impl Into<String>) -> Self {
        BedrockModel { client, default_model: default_model.into() }
    }
}

impl ModelBackend for BedrockModel {
    fn name(&self) -> &str {
        "bedrock"
    }

    fn default_model(&self) -> &str {
        &self.default_model
    }

    fn converse<'a>(
        &'a self,
        request: &'a ConverseRequest,
        trace: &'a TraceContext,
    ) -> BoxFuture<'a, Result<ConverseResponse, Error>> {
        Box::pin(self.call(request, trace))
    }
}

impl BedrockModel {
    async fn call(&self, request: &ConverseRequest, trace: &TraceContext) -> Result<ConverseResponse, Error> {
        let model_id = request.model_id.clone().unwrap_or_else(|| self.default_model.clone());
        let messages = request.messages.iter().map(message_to).collect::<Result<Vec<_>, _>>()?;
        let system: Vec<br::SystemContentBlock> =
            request.system.iter().map(|s| br::SystemContentBlock::Text(s.clone())).collect();
        let mut call = self
            .client
            .converse()
            .model_id(&model_id)
            .set_messages(Some(messages))
            .set_system((!system.is_empty()).then_some(system))
            .request_metadata("tenant", &trace.tenant_id)
            .request_metadata("trace_id", &trace.trace_id)
            .request_metadata("run_id", &trace.run_id)
            .request_metadata("agent", &trace.agent_id);
        if let Some(config) = &request.tool_config {
            call = call.tool_config(tool_config(config)?);
        }
        if let Some(inference) = &request.inference {
            let mut config = br::InferenceConfiguration::builder()
                .set_max_tokens(inference.max_tokens.map(|t| i32::try_from(t).unwrap_or(i32::MAX)))
                .set_temperature(inference.temperature)
                .set_top_p(inference.top_p);
            for stop in &inference.stop_sequences {
                config = config.stop_sequences(stop);
            }
            call = call.inference_config(config.build());
        }
        let output = call.send().await.map_err(|e| map_error(&model_id, &e))?;
        let message = match output.output() {
            Some(br::ConverseOutput::Message(message)) => message_from(message)?,
            _ => return Err(Error::Internal(format!("Bedrock returned no message for model `{model_id}`"))),
        };
        let stop_reason = stop_reason(output.stop_reason())?;
        let usage =
            output.usage().map_or(TokenUsage { input_tokens: 0, output_tokens: 0, total_tokens: 0 }, |u| {
                TokenUsage {
                    input_tokens: u32::try_from(u.input_tokens()).unwrap_or(0),
                    output_tokens: u32::try_from(u.output_tokens()).unwrap_or(0),
                    total_tokens: u32::try_from(u.total_tokens()).unwrap_or(0),
                }
            });
        Ok(ConverseResponse { message, stop_reason, usage, model_id })
    }
}

fn invalid(e: impl std::fmt::Display) -> Error {
    Error::InvalidInput(e.to_string())
}

fn parse_json(text: &str, what: &str) -> Result<Value, Error> {
    serde_json::from_str(text).map_err(|e| Error::InvalidInput(format!("{what} is not JSON: {e}")))
}

fn message_to(message: &Message) -> Result<br::Message, Error> {
    let role = match message.role {
        Role::User => br::ConversationRole::User,
        Role::Assistant => br::ConversationRole::Assistant,
    };
    let mut builder = br::Message::builder().role(role);
    for block in &message.content {
        builder = builder.content(match block {
            ContentBlock::Text(text) => br::ContentBlock::Text(text.clone()),
            ContentBlock::ToolUse(tool_use) => br::ContentBlock::ToolUse(
                br::ToolUseBlock::builder()
                    .tool_use_id(&tool_use.id)
                    .name(&tool_use.name)
                    .input(to_document(&parse_json(&tool_use.input, "a tool-use input")?))
                    .build()
                    .map_err(invalid)?,
            ),
            ContentBlock::ToolResult(result) => {
                let mut b =
                    br::ToolResultBlock::builder().tool_use_id(&result.id).status(match result.status {
                        ToolResultStatus::Success => br::ToolResultStatus::Success,
                        ToolResultStatus::Error => br::ToolResultStatus::Error,
                    });
                for content in &result.content {
                    b = b.content(match content {
                        ToolResultContent::Text(text) => br::ToolResultContentBlock::Text(text.clone()),
                        ToolResultContent::Json(json) => {
                            br::ToolResultContentBlock::Json(to_document(&parse_json(json, "a tool result")?))
                        }
                    });
                }
                br::ContentBlock::ToolResult(b.build().map_err(invalid)?)
            }
        });
    }
    builder.build().map_err(invalid)
}

fn message_from(message: &br::Message) -> Result<Message, Error> {
    let role = match message.role() {
        br::ConversationRole::Assistant => Role::Assistant,
        _ => Role::User,
    };
    let mut content = Vec::new();
    for block in message.content() {
        match block {
            br::ContentBlock::Text(text) => content.push(ContentBlock::Text(text.clone())),
            br::ContentBlock::ToolUse(tool_use) => content.push(ContentBlock::ToolUse(ToolUse {
                id: tool_use.tool_use_id().to_owned(),
                name: tool_use.name().to_owned(),
                input: from_document(tool_use.input()).to_string(),
            })),
            // Reasoning, images, citations…: not part of the WIT contract yet.
            _ => {}
        }
    }
    Ok(Message { role, content })
}

fn tool_config(config: &crate::bindings::model::ToolConfig) -> Result<br::ToolConfiguration, Error> {
    let mut builder = br::ToolConfiguration::builder();
    for tool in &config.tools {
        let schema = parse_json(&tool.input_schema, &format!("the input schema of tool `{}`", tool.name))?;
        builder = builder.tools(br::Tool::ToolSpec(
            br::ToolSpecification::builder()
                .name(&tool.name)
                .description(&tool.description)
                .input_schema(br::ToolInputSchema::Json(to_document(&schema)))
                .build()
                .map_err(invalid)?,
        ));
    }
    let choice = match &config.choice {
        ToolChoice::Auto => br::ToolChoice::Auto(br::AutoToolChoice::builder().build()),
        ToolChoice::Any => br::ToolChoice::Any(br::AnyToolChoice::builder().build()),
        ToolChoice::Tool(name) => {
            br::ToolChoice::Tool(br::SpecificToolChoice::builder().name(name).build().map_err(invalid)?)
        }
    };
    builder.tool_choice(choice).build().map_err(invalid)
}

fn stop_reason(reason: &br::StopReason) -> Result<StopReason, Error> {
    Ok(match reason {
        br::StopReason::EndTurn => StopReason::EndTurn,
        br::StopReason::ToolUse => StopReason::ToolUse,
        br::StopReason::MaxTokens | br::StopReason::ModelContextWindowExceeded => StopReason::MaxTokens,
        br::StopReason::StopSequence => StopReason::StopSequence,
        br::StopReason::GuardrailIntervened => StopReason::GuardrailIntervened,
        br::StopReason::ContentFiltered => StopReason::ContentFiltered,
        other => return Err(Error::Internal(format!("the model stopped with `{}`", other.as_str()))),
    })
}

/// A Converse failure as the WIT error the guest sees.
fn map_error(
    model: &str,
    error: &SdkError<ConverseError, aws_sdk_bedrockruntime::config::http::HttpResponse>,
) -> Error {
    let detail = crate::aws::describe(error);
    let Some(service) = error.as_service_error() else {
        return Error::Unavailable(format!("Bedrock is unavailable for model `{model}`: {detail}"));
    };
    let message = format!("Bedrock, model `{model}`: {detail}");
    match service {
        ConverseError::ValidationException(_) => Error::InvalidInput(message),
        ConverseError::AccessDeniedException(_) => Error::Denied(message),
        ConverseError::ResourceNotFoundException(_) => Error::NotFound(message),
        ConverseError::ThrottlingException(_) => Error::LimitExceeded(message),
        ConverseError::ServiceUnavailableException(_)
        | ConverseError::InternalServerException(_)
        | ConverseError::ModelNotReadyException(_)
        | ConverseError::ModelTimeoutException(_) => Error::Unavailable(message),
        _ if service.code() == Some("ThrottlingException") => Error::LimitExceeded(message),
        _ => Error::Internal(message),
    }
}

/// JSON to the SDK's document type.
pub fn to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or(0.0))
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(to_document).collect()),
        Value::Object(map) => {
            Document::Object(map.iter().map(|(k, v)| (k.clone(), to_document(v))).collect::<HashMap<_, _>>())
        }
    }
}

/// The SDK's document type to JSON.
pub fn from_document(document: &Document) -> Value {
    match document {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(from_document).collect()),
        Document::Object(map) => {
            let mut entries: Vec<(&String, &Document)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), from_document(v))).collect())
        }
    }
}
