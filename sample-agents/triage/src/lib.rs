//! `triage`: an agent that asks the model, follows its tool-use requests by
//! calling tools through the host, and returns the model's final answer.
//!
//! Input: `{"question": "..."}` (or a bare JSON string). Output:
//! `{"answer": "...", "model_turns": N, "tool_calls": [{"name", "input", "output"|"error"}]}`.

use agenthost_guest_sdk::model::{
    ContentBlock, ConverseRequest, Message, Role, StopReason, ToolChoice, ToolConfig, ToolDefinition,
    ToolResult, ToolResultContent, ToolResultStatus,
};
use agenthost_guest_sdk::{Agent, AgentSpec, Error, Task, Value, export_agent, json, log, model, tools};
use serde_json::json;

/// A run that has not ended after this many model turns is stopped.
const MAX_TURNS: u32 = 8;

struct Triage;

impl Agent for Triage {
    fn spec() -> AgentSpec {
        AgentSpec {
            name: "triage".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Answers a question, calling tools when the model asks for them.".into(),
        }
    }

    fn run(task: Task) -> Result<Value, Error> {
        let question = match &task.input {
            Value::String(text) => text.clone(),
            other => json::str_field(other, "question")?.to_owned(),
        };
        log::info("triage started", &[("run_id", &task.context.run_id)]);

        let definitions: Vec<ToolDefinition> = tools::list().iter().map(ToolDefinition::from).collect();
        let mut request = ConverseRequest::new(vec![Message::user_text(question)]);
        request.system = vec!["You are a triage agent. Use a tool when one fits the question.".into()];
        if !definitions.is_empty() {
            request.tool_config = Some(ToolConfig { tools: definitions, choice: ToolChoice::Auto });
        }

        let mut calls = Vec::new();
        for turn in 1..=MAX_TURNS {
            let response = model::converse(&request)?;
            let reply = response.message;
            if response.stop_reason != StopReason::ToolUse {
                return Ok(json!({
                    "answer": reply.text(),
                    "model_turns": turn,
                    "tool_calls": calls,
                }));
            }
            let mut results = Vec::new();
            for tool_use in reply.tool_uses() {
                let input = json::parse(&tool_use.input)?;
                let (content, status, record) = match tools::invoke(&tool_use.name, &input) {
                    Ok(output) => (
                        ToolResultContent::Json(output.to_string()),
                        ToolResultStatus::Success,
                        json!({ "name": tool_use.name, "input": input, "output": output }),
                    ),
                    // The model sees the tool's error and can recover from it;
                    // an approval requirement must reach the caller instead.
                    Err(e @ Error::ApprovalRequired(_)) => return Err(e),
                    Err(e) => (
                        ToolResultContent::Text(e.summary()),
                        ToolResultStatus::Error,
                        json!({ "name": tool_use.name, "input": input, "error": e.summary() }),
                    ),
                };
                calls.push(record);
                results.push(ContentBlock::ToolResult(ToolResult {
                    id: tool_use.id.clone(),
                    content: vec![content],
                    status,
                }));
            }
            request.messages.push(reply);
            request.messages.push(Message { role: Role::User, content: results });
        }
        Err(Error::LimitExceeded(format!("no final answer after {MAX_TURNS} model turns")))
    }
}

export_agent!(Triage);
