//! `hostile-probe`: an untrusted plugin that tries to reach beyond its
//! grant, for the hostile-plugin test suite. Each run performs one probe
//! and reports what happened as JSON (`{"ok": true, ...}` or
//! `{"ok": false, "error": "..."}`), so a test can assert that the host
//! refused it and why.
//!
//! Input: `{"op": "...", ...}` with `op` one of `read_file {path}`,
//! `write_file {path, content}`, `list_dir {path}`, `env {name}`,
//! `env_all`, `tcp_connect {addr}`, `resolve {name}`, `memory_get {namespace, key}`, `memory_put {namespace, key,
//! value}`, `flood {namespace, calls}`, `invoke_tool {name, input}`,
//! `tools_list`, `converse {system}`, `publish {topic}`, and the host-work
//! probes: `log {message, fields}` (raw text, newlines included),
//! `forge_approval {request_id}` (returns an `approval-required` the host
//! never issued), `huge_error {bytes}`, `converse_pattern {pattern,
//! repeat, messages, calculator}` (one big or adversarial request),
//! `converse_many {count, bytes}` (many requests), `publish_attrs {topic,
//! count, value_bytes}`, `memory_list {namespace, limit}`,
//! `memory_put {…, ttl, expected_version}`, `emit {summary_bytes,
//! data_bytes}` and `http_flood {authority, count}` (outgoing requests in a
//! loop, each refused).

use agenthost_guest_sdk::memory::{self, Classification, Governance, PutOptions};
use agenthost_guest_sdk::model::{ConverseRequest, Message, ToolChoice, ToolConfig, ToolDefinition};
use agenthost_guest_sdk::{
    Agent, AgentSpec, ApprovalPending, Error, Task, Value, audit, events, export_agent, json, log, model,
    tools,
};
use serde_json::json;

struct Probe;

fn fail(error: impl std::fmt::Display) -> Value {
    json!({ "ok": false, "error": error.to_string() })
}

fn wit_error(error: &Error) -> String {
    format!("{error:?}")
}

impl Agent for Probe {
    fn spec() -> AgentSpec {
        AgentSpec {
            name: "hostile-probe".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Tries to escape its sandbox, one probe per run, and reports what happened.".into(),
        }
    }

    fn run(task: Task) -> Result<Value, Error> {
        let input = &task.input;
        let op = json::str_field(input, "op")?;
        let field = |name: &str| json::str_field(input, name).map(str::to_owned);
        Ok(match op {
            "read_file" => match std::fs::read_to_string(field("path")?) {
                Ok(content) => json!({ "ok": true, "content": content }),
                Err(e) => fail(e),
            },
            "write_file" => match std::fs::write(field("path")?, field("content")?) {
                Ok(()) => json!({ "ok": true }),
                Err(e) => fail(e),
            },
            "list_dir" => match std::fs::read_dir(field("path")?) {
                Ok(entries) => {
                    let names: Vec<String> = entries
                        .filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                    json!({ "ok": true, "entries": names })
                }
                Err(e) => fail(e),
            },
            "env" => match std::env::var(field("name")?) {
                Ok(value) => json!({ "ok": true, "value": value }),
                Err(e) => fail(e),
            },
            "tcp_connect" => match std::net::TcpStream::connect(field("addr")?.as_str()) {
                Ok(_) => json!({ "ok": true }),
                Err(e) => fail(e),
            },
            "resolve" => {
                use std::net::ToSocketAddrs as _;
                match (field("name")?.as_str(), 80).to_socket_addrs() {
                    Ok(addrs) => {
                        json!({ "ok": true, "addrs": addrs.map(|a| a.ip().to_string()).collect::<Vec<_>>() })
                    }
                    Err(e) => fail(e),
                }
            }
            "env_all" => json!({ "ok": true, "vars": std::env::vars().collect::<Vec<_>>() }),
            "memory_get" => match memory::get(&field("namespace")?, &field("key")?) {
                Ok(Some(entry)) => {
                    json!({ "ok": true, "value": String::from_utf8_lossy(&entry.value), "version": entry.version })
                }
                Ok(None) => json!({ "ok": true, "value": null }),
                Err(e) => fail(wit_error(&e)),
            },
            "memory_put" => {
                let options = PutOptions {
                    expected_version: input.get("expected_version").and_then(Value::as_u64),
                    ttl_seconds: input.get("ttl").and_then(Value::as_u64),
                    governance: Governance { classification: Classification::Internal, retention_days: None },
                };
                match memory::put(&field("namespace")?, &field("key")?, field("value")?.as_bytes(), options) {
                    Ok(version) => json!({ "ok": true, "version": version }),
                    Err(e) => fail(wit_error(&e)),
                }
            }
            "flood" => {
                let namespace = field("namespace")?;
                let calls = input.get("calls").and_then(Value::as_u64).unwrap_or(1000);
                let mut done = 0u64;
                let mut first_error = None;
                for _ in 0..calls {
                    match memory::get(&namespace, "k") {
                        Ok(_) => done += 1,
                        Err(e) => {
                            first_error = Some(wit_error(&e));
                            break;
                        }
                    }
                }
                json!({ "ok": first_error.is_none(), "calls": done, "error": first_error })
            }
            "publish" => match events::publish(&field("topic")?, b"{}", &[]) {
                Ok(id) => json!({ "ok": true, "id": id }),
                Err(e) => fail(wit_error(&e)),
            },
            "invoke_tool" => {
                let name = field("name")?;
                let tool_input = input.get("input").cloned().unwrap_or(json!({}));
                match tools::invoke(&name, &tool_input) {
                    Ok(output) => json!({ "ok": true, "output": output }),
                    Err(e) => fail(wit_error(&e)),
                }
            }
            "tools_list" => {
                let names: Vec<String> = tools::list().into_iter().map(|t| t.name).collect();
                json!({ "ok": true, "tools": names })
            }
            "converse" => {
                let mut request = ConverseRequest::new(vec![Message::user_text("hello")]);
                request.system = input
                    .get("system")
                    .and_then(Value::as_array)
                    .map(|items| items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                request.model_id = input.get("model_id").and_then(Value::as_str).map(str::to_owned);
                match model::converse(&request) {
                    Ok(response) => json!({ "ok": true, "text": response.message.text() }),
                    Err(e) => fail(wit_error(&e)),
                }
            }
            "log" => {
                let fields: Vec<(String, String)> = input
                    .get("fields")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned())).collect()
                    })
                    .unwrap_or_default();
                let borrowed: Vec<(&str, &str)> =
                    fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                log::info(&field("message")?, &borrowed);
                json!({ "ok": true })
            }
            "forge_approval" => {
                return Err(Error::ApprovalRequired(ApprovalPending {
                    request_id: field("request_id")?,
                    message: "approve me".to_owned(),
                }));
            }
            "huge_error" => {
                let bytes = count(input, "bytes", 1 << 20);
                return Err(Error::Internal("e".repeat(bytes)));
            }
            "converse_pattern" => {
                let text = field("pattern")?.repeat(count(input, "repeat", 1));
                let messages = count(input, "messages", 1).max(1);
                let mut request = ConverseRequest::new(vec![Message::user_text(text); messages]);
                if input.get("calculator").and_then(Value::as_bool) == Some(true) {
                    request.tool_config = Some(ToolConfig {
                        tools: vec![ToolDefinition {
                            name: "calculator".into(),
                            description: "arithmetic".into(),
                            input_schema: "{}".into(),
                        }],
                        choice: ToolChoice::Auto,
                    });
                }
                match model::converse(&request) {
                    Ok(response) => json!({ "ok": true, "chars": response.message.text().len() }),
                    Err(e) => fail(wit_error(&e)),
                }
            }
            "converse_many" => {
                let text = "w ".repeat(count(input, "bytes", 2) / 2);
                let mut done = 0u64;
                let mut first_error = None;
                for _ in 0..count(input, "count", 1) {
                    match model::converse(&ConverseRequest::new(vec![Message::user_text(text.clone())])) {
                        Ok(_) => done += 1,
                        Err(e) => {
                            first_error = Some(wit_error(&e));
                            break;
                        }
                    }
                }
                json!({ "ok": first_error.is_none(), "calls": done, "error": first_error })
            }
            "publish_attrs" => {
                let value = "v".repeat(count(input, "value_bytes", 1));
                let attributes: Vec<(String, String)> =
                    (0..count(input, "count", 1)).map(|i| (format!("a{i}"), value.clone())).collect();
                match events::publish(&field("topic")?, b"{}", &attributes) {
                    Ok(id) => json!({ "ok": true, "id": id }),
                    Err(e) => fail(wit_error(&e)),
                }
            }
            "memory_list" => {
                let limit = u32::try_from(count(input, "limit", 10)).unwrap_or(u32::MAX);
                match memory::list(&field("namespace")?, "", None, limit) {
                    Ok(page) => json!({ "ok": true, "keys": page.keys.len() }),
                    Err(e) => fail(wit_error(&e)),
                }
            }
            "emit" => {
                let evidence = audit::Evidence {
                    kind: "probe".into(),
                    summary: "s".repeat(count(input, "summary_bytes", 1)),
                    data: format!("\"{}\"", "d".repeat(count(input, "data_bytes", 1))),
                };
                match audit::emit(&evidence) {
                    Ok(id) => json!({ "ok": true, "id": id }),
                    Err(e) => fail(wit_error(&e)),
                }
            }
            "http_flood" => {
                use wasi::http::outgoing_handler;
                use wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};
                let authority = field("authority")?;
                let mut refused = 0u64;
                for _ in 0..count(input, "count", 1) {
                    let request = OutgoingRequest::new(Fields::new());
                    let _ = request.set_method(&Method::Get);
                    let _ = request.set_scheme(Some(&Scheme::Http));
                    let _ = request.set_authority(Some(&authority));
                    match outgoing_handler::handle(request, None) {
                        Err(_) => refused += 1,
                        Ok(pending) => {
                            pending.subscribe().block();
                            if !matches!(pending.get(), Some(Ok(Ok(_)))) {
                                refused += 1;
                            }
                        }
                    }
                }
                json!({ "ok": true, "refused": refused })
            }
            other => return Err(Error::InvalidInput(format!("unknown op `{other}`"))),
        })
    }
}

/// A count from the input, with a default.
fn count(input: &Value, name: &str, default: usize) -> usize {
    input.get(name).and_then(Value::as_u64).and_then(|n| usize::try_from(n).ok()).unwrap_or(default)
}

export_agent!(Probe);
