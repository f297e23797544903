//! OpenAI-compatible chat completions over HTTP: the API that llama.cpp's
//! server, Ollama, vLLM and others speak (`POST {endpoint}/chat/completions`).
//!
//! Tools are mapped both ways: WIT tool definitions become `tools` of type
//! `function` (the input schema as `parameters`), the choice becomes
//! `tool_choice` (`auto`, `required`, or the named function); an answer's
//! `tool_calls` become `tool-use` blocks (their `arguments` string parsed as
//! JSON), and `tool-result` blocks go back as `tool` messages with their
//! `tool_call_id`. A 429 or 5xx is retried with backoff; what still fails is
//! mapped to the WIT error cases.

use std::time::Duration;

use serde_json::{Value, json};

use crate::bindings::model::{
    ContentBlock, ConverseRequest, ConverseResponse, Message, Role, StopReason, TokenUsage, ToolChoice,
    ToolResultContent, ToolUse,
};
use crate::bindings::types::{Error, TraceContext};

use super::{BoxFuture, ModelBackend};

pub struct OpenAiModel {
    http: reqwest::Client,
    endpoint: String,
    api_key: Option<String>,
    default_model: String,
    max_attempts: u32,
}

impl std::fmt::Debug for OpenAiModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiModel").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl OpenAiModel {
    /// A client of `endpoint` (the API root, e.g. `http://127.0.0.1:8080/v1`).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        endpoint: &str,
        api_key: Option<String>,
        default_model: impl Into<String>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(OpenAiModel {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            api_key,
            default_model: default_model.into(),
            max_attempts: 3,
        })
    }
}

impl ModelBackend for OpenAiModel {
    fn name(&self) -> &str {
        "openai"
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

/// The chat-completions request for a Converse-shaped one.
///
/// # Errors
/// `invalid-input` when a tool input, result or schema is not JSON.
pub fn request_body(request: &ConverseRequest, model: &str) -> Result<Value, Error> {
    let mut messages: Vec<Value> =
        request.system.iter().map(|s| json!({ "role": "system", "content": s })).collect();
    for message in &request.messages {
        let mut text = Vec::new();
        let mut calls = Vec::new();
        let mut results = Vec::new();
        for block in &message.content {
            match block {
                ContentBlock::Text(t) => text.push(t.clone()),
                ContentBlock::ToolUse(u) => calls.push(json!({
                    "id": u.id,
                    "type": "function",
                    "function": { "name": u.name, "arguments": u.input },
                })),
                ContentBlock::ToolResult(r) => {
                    let content: Vec<&str> = r
                        .content
                        .iter()
                        .map(|c| match c {
                            ToolResultContent::Text(t) | ToolResultContent::Json(t) => t.as_str(),
                        })
                        .collect();
                    results
                        .push(json!({ "role": "tool", "tool_call_id": r.id, "content": content.join("\n") }));
                }
            }
        }
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        // Tool results answer the assistant's calls first, then any text.
        messages.extend(results);
        if !text.is_empty() || !calls.is_empty() {
            let mut m = json!({ "role": role, "content": if text.is_empty() { Value::Null } else { Value::String(text.join("\n")) } });
            if !calls.is_empty() {
                m["tool_calls"] = Value::Array(calls);
            }
            messages.push(m);
        }
    }
    let mut body = json!({ "model": model, "messages": messages });
    if let Some(config) = &request.tool_config {
        let mut tools = Vec::new();
        for tool in &config.tools {
            let parameters: Value = serde_json::from_str(&tool.input_schema).map_err(|e| {
                Error::InvalidInput(format!("the input schema of tool `{}` is not JSON: {e}", tool.name))
            })?;
            tools.push(json!({
                "type": "function",
                "function": { "name": tool.name, "description": tool.description, "parameters": parameters },
            }));
        }
        body["tools"] = Value::Array(tools);
        body["tool_choice"] = match &config.choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::Any => json!("required"),
            ToolChoice::Tool(name) => json!({ "type": "function", "function": { "name": name } }),
        };
    }
    if let Some(inference) = &request.inference {
        if let Some(max) = inference.max_tokens {
            body["max_tokens"] = json!(max);
        }
        if let Some(t) = inference.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(p) = inference.top_p {
            body["top_p"] = json!(p);
        }
        if !inference.stop_sequences.is_empty() {
            body["stop"] = json!(inference.stop_sequences);
        }
    }
    Ok(body)
}

/// The Converse-shaped answer of a chat-completions response.
///
/// # Errors
/// `internal` when the response lacks what the API promises.
pub fn response_of(body: &Value, model: &str) -> Result<ConverseResponse, Error> {
    let bad = |what: &str| Error::Internal(format!("the model server's answer lacks {what}"));
    let choice = body.get("choices").and_then(|c| c.get(0)).ok_or_else(|| bad("`choices[0]`"))?;
    let message = choice.get("message").ok_or_else(|| bad("`choices[0].message`"))?;
    let mut content = Vec::new();
    if let Some(text) = message.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        content.push(ContentBlock::Text(text.to_owned()));
    }
    for call in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let function = call.get("function").ok_or_else(|| bad("`tool_calls[].function`"))?;
        let arguments = function.get("arguments").and_then(Value::as_str).unwrap_or("{}");
        let input: Value = serde_json::from_str(arguments)
            .map_err(|e| Error::Internal(format!("the model's tool call arguments are not JSON: {e}")))?;
        content.push(ContentBlock::ToolUse(ToolUse {
            id: call.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(),
            name: function
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("a tool call's name"))?
                .to_owned(),
            input: input.to_string(),
        }));
    }
    let stop_reason = match choice.get("finish_reason").and_then(Value::as_str) {
        Some("tool_calls" | "function_call") => StopReason::ToolUse,
        Some("length") => StopReason::MaxTokens,
        Some("content_filter") => StopReason::ContentFiltered,
        _ if content.iter().any(|c| matches!(c, ContentBlock::ToolUse(_))) => StopReason::ToolUse,
        _ => StopReason::EndTurn,
    };
    let usage = body.get("usage");
    let count = |name: &str| {
        usage
            .and_then(|u| u.get(name))
            .and_then(Value::as_u64)
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
    };
    let (input_tokens, output_tokens) = (count("prompt_tokens"), count("completion_tokens"));
    Ok(ConverseResponse {
        message: Message { role: Role::Assistant, content },
        stop_reason,
        usage: TokenUsage { input_tokens, output_tokens, total_tokens: input_tokens + output_tokens },
        model_id: body.get("model").and_then(Value::as_str).unwrap_or(model).to_owned(),
    })
}

impl OpenAiModel {
    async fn call(&self, request: &ConverseRequest, trace: &TraceContext) -> Result<ConverseResponse, Error> {
        let model = request.model_id.clone().unwrap_or_else(|| self.default_model.clone());
        let body = request_body(request, &model)?;
        let url = format!("{}/chat/completions", self.endpoint);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut post = self
                .http
                .post(&url)
                .json(&body)
                // W3C trace context, so the model server's own traces join the run's.
                .header(
                    "traceparent",
                    format!("00-{}-{:016x}-01", trace.trace_id, rand::random::<u64>() | 1),
                );
            if let Some(key) = &self.api_key {
                post = post.bearer_auth(key);
            }
            let outcome = post.send().await;
            let retry = match &outcome {
                Err(e) => e.is_connect() || e.is_timeout(),
                Ok(response) => response.status().as_u16() == 429 || response.status().is_server_error(),
            };
            if retry && attempt < self.max_attempts {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                continue;
            }
            let response = outcome.map_err(|e| {
                Error::Unavailable(format!("the model server at {} is unavailable: {e}", self.endpoint))
            })?;
            let status = response.status();
            let text = response.text().await.map_err(|e| Error::Unavailable(format!("{url}: {e}")))?;
            if !status.is_success() {
                let detail: String = text.chars().take(300).collect();
                let message = format!("model server {url} answered {status} for model `{model}`: {detail}");
                return Err(match status.as_u16() {
                    400 | 422 => Error::InvalidInput(message),
                    401 | 403 => Error::Denied(message),
                    404 => Error::NotFound(message),
                    429 => Error::LimitExceeded(message),
                    _ => Error::Unavailable(message),
                });
            }
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| Error::Internal(format!("the model server's answer is not JSON: {e}")))?;
            return response_of(&value, &model);
        }
    }
}
