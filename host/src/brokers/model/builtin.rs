//! The built-in model: deterministic, offline, and documented, so that the
//! demo and the tests mean something without a cloud account.
//!
//! Rules, applied to the last message of the request:
//!
//! 1. A user message holding tool results: answer `end-turn` with one
//!    sentence per result. For a successful `calculator` result:
//!    "The result of {expression} is {value}."; for another tool:
//!    "The {tool} tool returned {json}."; for a failed call:
//!    "The {tool} tool failed: {text}."
//! 2. A user message whose text holds an arithmetic expression (digits,
//!    `+ - * / % ^`, parentheses; at least one operator between two
//!    numbers), when the request offers a tool named `calculator`: answer
//!    `tool-use` of `calculator` with `{"expression": "<the expression>"}`.
//!    The tool-use id is derived from the expression and the turn, so the
//!    same conversation always gets the same id.
//! 3. Anything else: answer `end-turn` echoing a summary of the user's text.
//!
//! Token usage counts whitespace-separated words: input tokens over the
//! system prompts and every text block of the request, output tokens over
//! the answer. `inference.max-tokens` cuts the answer (stop reason
//! `max-tokens`), and a stop sequence found in the answer cuts it there
//! (`stop-sequence`).

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::bindings::model::{
    ContentBlock, ConverseRequest, ConverseResponse, Message, Role, StopReason, TokenUsage, ToolChoice,
    ToolResult, ToolResultContent, ToolResultStatus, ToolUse,
};
use crate::bindings::types::{Error, TraceContext};

use super::{BoxFuture, ModelBackend};

/// The model id the built-in backend answers to (and reports).
pub const BUILTIN_MODEL_ID: &str = "agenthost.builtin-v1";

/// Longest user text echoed back by rule 3, in characters.
const ECHO_CHARS: usize = 200;

#[derive(Debug, Default, Clone, Copy)]
pub struct BuiltinModel;

impl ModelBackend for BuiltinModel {
    fn name(&self) -> &str {
        "builtin"
    }

    fn converse<'a>(
        &'a self,
        request: &'a ConverseRequest,
        _trace: &'a TraceContext,
    ) -> BoxFuture<'a, Result<ConverseResponse, Error>> {
        Box::pin(async move { answer(request) })
    }
}

/// Answers a request by the rules in the module documentation.
///
/// # Errors
///
/// `not-found` when the request names a model other than [`BUILTIN_MODEL_ID`];
/// `invalid-input` when it has no messages.
pub fn answer(request: &ConverseRequest) -> Result<ConverseResponse, Error> {
    if let Some(model) = &request.model_id
        && model != BUILTIN_MODEL_ID
    {
        return Err(Error::NotFound(format!(
            "model `{model}` is not served by the built-in backend (it serves `{BUILTIN_MODEL_ID}`)"
        )));
    }
    let last = request
        .messages
        .last()
        .ok_or_else(|| Error::InvalidInput("the request has no messages".to_owned()))?;

    let results: Vec<&ToolResult> = last
        .content
        .iter()
        .filter_map(|block| match block {
            ContentBlock::ToolResult(result) => Some(result),
            _ => None,
        })
        .collect();

    let (content, mut stop_reason) = if last.role == Role::User && !results.is_empty() {
        let uses = tool_uses(&request.messages);
        let sentences: Vec<String> = results.iter().map(|r| describe_result(r, &uses)).collect();
        (vec![ContentBlock::Text(sentences.join(" "))], StopReason::EndTurn)
    } else {
        let text = text_of(last);
        match (offers_calculator(request), find_expression(&text)) {
            (true, Some(expression)) if last.role == Role::User => {
                let id = tool_use_id(&expression, request.messages.len());
                let input = serde_json::json!({ "expression": expression }).to_string();
                (
                    vec![
                        ContentBlock::Text(format!("I will compute {expression} with the calculator.")),
                        ContentBlock::ToolUse(ToolUse { id, name: "calculator".to_owned(), input }),
                    ],
                    StopReason::ToolUse,
                )
            }
            _ => (vec![ContentBlock::Text(echo(&text))], StopReason::EndTurn),
        }
    };

    let mut content = content;
    if let Some(ContentBlock::Text(text)) = content.first_mut()
        && stop_reason == StopReason::EndTurn
        && let Some(inference) = &request.inference
    {
        if let Some(cut) = inference.stop_sequences.iter().filter_map(|s| text.find(s.as_str())).min() {
            text.truncate(cut);
            stop_reason = StopReason::StopSequence;
        }
        if let Some(max) = inference.max_tokens {
            let max = usize::try_from(max).unwrap_or(usize::MAX);
            if words(text) > max {
                *text = text.split_whitespace().take(max).collect::<Vec<_>>().join(" ");
                stop_reason = StopReason::MaxTokens;
            }
        }
    }

    let input_tokens = request.system.iter().map(|s| words(s)).sum::<usize>()
        + request.messages.iter().map(|m| words(&text_of(m))).sum::<usize>();
    let output_tokens: usize = content
        .iter()
        .map(|block| match block {
            ContentBlock::Text(text) => words(text),
            ContentBlock::ToolUse(tool_use) => words(&tool_use.input),
            ContentBlock::ToolResult(_) => 0,
        })
        .sum();
    let input_tokens = u32::try_from(input_tokens).unwrap_or(u32::MAX);
    let output_tokens = u32::try_from(output_tokens).unwrap_or(u32::MAX);
    Ok(ConverseResponse {
        message: Message { role: Role::Assistant, content },
        stop_reason,
        usage: TokenUsage {
            input_tokens,
            output_tokens,
            total_tokens: input_tokens.saturating_add(output_tokens),
        },
        model_id: BUILTIN_MODEL_ID.to_owned(),
    })
}

fn offers_calculator(request: &ConverseRequest) -> bool {
    request.tool_config.as_ref().is_some_and(|config| {
        let named = match &config.choice {
            ToolChoice::Tool(name) => name == "calculator",
            ToolChoice::Auto | ToolChoice::Any => true,
        };
        named && config.tools.iter().any(|t| t.name == "calculator")
    })
}

fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

fn text_of(message: &Message) -> String {
    let parts: Vec<&str> = message
        .content
        .iter()
        .filter_map(|block| match block {
            ContentBlock::Text(text) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    parts.join("\n")
}

fn echo(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return "You sent no text. I am agenthost's built-in model; ask me an arithmetic question and offer me the calculator tool.".to_owned();
    }
    let mut summary: String = trimmed.chars().take(ECHO_CHARS).collect();
    if trimmed.chars().count() > ECHO_CHARS {
        summary.push('…');
    }
    format!(
        "You said: \"{summary}\" ({} words). I am agenthost's built-in model: offer me the calculator tool with an arithmetic question and I will use it.",
        words(trimmed)
    )
}

fn tool_use_id(expression: &str, turn: usize) -> String {
    let digest = Sha256::new_with_prefix(expression.as_bytes()).chain_update(turn.to_le_bytes()).finalize();
    format!("tooluse-{}", hex::encode(&digest[..6]))
}

/// Finds the longest arithmetic expression in `text`: a run of digits,
/// operators, dots, parentheses and spaces with balanced parentheses, at
/// least two numbers and an operator between them.
pub fn find_expression(text: &str) -> Option<String> {
    let is_expr_char = |c: char| c.is_ascii_digit() || " .+-*/%^()".contains(c);
    let mut best: Option<String> = None;
    let mut current = String::new();
    for c in text.chars().chain(std::iter::once('\n')) {
        if is_expr_char(c) {
            current.push(c);
            continue;
        }
        if let Some(candidate) = clean_expression(&current)
            && best.as_ref().is_none_or(|b| candidate.len() > b.len())
        {
            best = Some(candidate);
        }
        current.clear();
    }
    best
}

fn clean_expression(run: &str) -> Option<String> {
    // Linear in the run's length whatever it holds: a guest chooses the
    // text, and this runs on a host thread the call's deadline cannot stop.
    let mut s = run.trim().trim_end_matches(['+', '-', '*', '/', '%', '^', '.', ' ']).trim();
    let mut open = s.bytes().filter(|&b| b == b'(').count();
    let mut close = s.bytes().filter(|&b| b == b')').count();
    // Drop parentheses that have no partner at the ends of the run.
    loop {
        if open > close && s.starts_with('(') {
            s = s[1..].trim_start();
            open -= 1;
        } else if close > open && s.ends_with(')') {
            s = s[..s.len() - 1].trim_end();
            close -= 1;
        } else {
            break;
        }
    }
    let mut depth = 0i64;
    for c in s.bytes() {
        depth += match c {
            b'(' => 1,
            b')' => -1,
            _ => 0,
        };
        if depth < 0 {
            return None;
        }
    }
    if depth != 0 {
        return None;
    }
    let numbers = s
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|n| n.chars().any(|c| c.is_ascii_digit()))
        .count();
    // An operator with an operand (a digit or a closing parenthesis) before it.
    let mut operand_seen = false;
    let mut has_binary_operator = false;
    for c in s.chars() {
        if "+-*/%^".contains(c) && operand_seen {
            has_binary_operator = true;
            break;
        }
        if c.is_ascii_digit() || c == ')' {
            operand_seen = true;
        }
    }
    (numbers >= 2 && has_binary_operator).then(|| s.to_owned())
}

/// The tool-uses of a conversation by id (the first of each id), built
/// once per answer so that matching results to them stays linear.
fn tool_uses(history: &[Message]) -> HashMap<&str, &ToolUse> {
    let mut uses = HashMap::new();
    for block in history.iter().filter(|m| m.role == Role::Assistant).flat_map(|m| m.content.iter()) {
        if let ContentBlock::ToolUse(tool_use) = block {
            uses.entry(tool_use.id.as_str()).or_insert(tool_use);
        }
    }
    uses
}

/// One sentence about a tool result, naming the tool and, for the
/// calculator, the expression from the matching tool-use.
fn describe_result(result: &ToolResult, uses: &HashMap<&str, &ToolUse>) -> String {
    let tool_use = uses.get(result.id.as_str()).copied();
    let tool = tool_use.map_or("unknown", |t| t.name.as_str());
    let content: Vec<String> = result
        .content
        .iter()
        .map(|c| match c {
            ToolResultContent::Text(text) => text.clone(),
            ToolResultContent::Json(json) => json.clone(),
        })
        .collect();
    let content = content.join(" ");
    if result.status == ToolResultStatus::Error {
        return format!("The {tool} tool failed: {content}.");
    }
    if tool == "calculator"
        && let Some(value) = result.content.iter().find_map(|c| match c {
            ToolResultContent::Json(json) => serde_json::from_str::<serde_json::Value>(json).ok(),
            ToolResultContent::Text(_) => None,
        })
        && let Some(number) = value.get("value")
    {
        let expression = value
            .get("expression")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                tool_use.and_then(|t| {
                    serde_json::from_str::<serde_json::Value>(&t.input)
                        .ok()?
                        .get("expression")?
                        .as_str()
                        .map(str::to_owned)
                })
            })
            .unwrap_or_else(|| "the expression".to_owned());
        return format!("The result of {expression} is {number}.");
    }
    format!("The {tool} tool returned {content}.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_expressions_in_prose() {
        assert_eq!(find_expression("What is 12 * (3 + 4) - 5?").as_deref(), Some("12 * (3 + 4) - 5"));
        assert_eq!(find_expression("compute (2+3)*4 please").as_deref(), Some("(2+3)*4"));
        assert_eq!(find_expression("a well-known fact: 42"), None);
        assert_eq!(find_expression("in 2024 we had -3 degrees"), None);
        assert_eq!(find_expression("(1 + 2"), Some("1 + 2".to_owned()));
    }
}
