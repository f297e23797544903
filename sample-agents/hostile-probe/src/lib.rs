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
//! `tools_list`, `converse {system}`, `publish {topic}`.

use agenthost_guest_sdk::memory::{self, Classification, Governance, PutOptions};
use agenthost_guest_sdk::model::{ConverseRequest, Message};
use agenthost_guest_sdk::{Agent, AgentSpec, Error, Task, Value, events, export_agent, json, model, tools};
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
                    expected_version: None,
                    ttl_seconds: None,
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
            other => return Err(Error::InvalidInput(format!("unknown op `{other}`"))),
        })
    }
}

export_agent!(Probe);
