//! The model backends against local HTTP servers that check what the real
//! services check: Bedrock Converse (the SigV4 signature, recomputed here
//! with `aws-sigv4`, `x-amz-date`, the path `/model/{id}/converse`, the JSON
//! shape, `requestMetadata`) and an OpenAI-compatible server
//! (`/v1/chat/completions`, bearer key, messages and tools). Each answers a
//! tool-use turn, then an end turn; the triage agent runs the calculator in
//! between. Moto has no Bedrock, so these servers are the edge.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use agenthost::brokers::model::{BedrockModel, ModelBackend, OpenAiModel};
use agenthost::{Host, HostConfig, LoadOptions};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::common;

const MODEL: &str = "anthropic.claude-test-v1:0";

#[derive(Default)]
struct Seen {
    requests: Vec<Value>,
    problems: Vec<String>,
    throttle_first: bool,
    calls: usize,
}

type Shared = Arc<Mutex<Seen>>;

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

fn amz_date(text: &str) -> Option<SystemTime> {
    // 20261126T104500Z
    if text.len() != 16 {
        return None;
    }
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[9..11],
        &text[11..13],
        &text[13..15]
    );
    humantime::parse_rfc3339(&rfc).ok()
}

/// What Bedrock's front door checks: a SigV4 signature by the known test
/// key over exactly the signed headers, for service `bedrock`.
fn check_sigv4(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).ok_or("no Authorization header")?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or("not AWS4-HMAC-SHA256")?;
    let field = |name: &str| {
        rest.split(", ")
            .find_map(|p| p.strip_prefix(name))
            .map(str::to_owned)
            .ok_or(format!("no {name} in Authorization"))
    };
    let credential = field("Credential=")?;
    let signed = field("SignedHeaders=")?;
    let signature = field("Signature=")?;
    let parts: Vec<&str> = credential.split('/').collect();
    if parts.len() != 5
        || parts[0] != "testing"
        || parts[2] != "us-east-1"
        || parts[3] != "bedrock"
        || parts[4] != "aws4_request"
    {
        return Err(format!("bad credential scope {credential}"));
    }
    let date = headers.get("x-amz-date").and_then(|v| v.to_str().ok()).ok_or("no x-amz-date")?;
    let time = amz_date(date).ok_or("x-amz-date is not YYYYMMDDTHHMMSSZ")?;
    if !date.starts_with(parts[1]) {
        return Err("the credential date is not the x-amz-date's".into());
    }
    let skew = SystemTime::now().duration_since(time).unwrap_or_else(|e| e.duration());
    if skew > Duration::from_secs(300) {
        return Err("x-amz-date is more than 5 minutes off".into());
    }
    let names: Vec<&str> = signed.split(';').collect();
    if !names.contains(&"host") || !names.contains(&"x-amz-date") {
        return Err(format!("host and x-amz-date must be signed, got {signed}"));
    }
    let values: Vec<(&str, String)> = names
        .iter()
        .map(|n| (*n, headers.get(*n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()))
        .collect();
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let url = format!("http://{host}{}", uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let identity = aws_credential_types::Credentials::new("testing", "testing", None, None, "test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("bedrock")
        .time(time)
        .settings(aws_sigv4::http_request::SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let request = aws_sigv4::http_request::SignableRequest::new(
        method.as_str(),
        url,
        values.iter().map(|(n, v)| (*n, v.as_str())),
        aws_sigv4::http_request::SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let expected = aws_sigv4::http_request::sign(request, &params).map_err(|e| e.to_string())?;
    if expected.signature() != signature {
        return Err("the signature does not match the request".into());
    }
    Ok(())
}

fn bedrock_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [("x-amzn-errortype", kind.to_owned()), ("content-type", "application/json".to_owned())],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

async fn bedrock(
    State(seen): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut seen = seen.lock().unwrap();
    seen.calls += 1;
    if let Err(problem) = check_sigv4(&method, &uri, &headers, &body) {
        seen.problems.push(problem.clone());
        return bedrock_error(StatusCode::FORBIDDEN, "AccessDeniedException", &problem);
    }
    let expected_path = format!("/model/{}/converse", MODEL.replace(':', "%3A"));
    if uri.path() != expected_path {
        seen.problems.push(format!("path {}", uri.path()));
        return bedrock_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", "no such model");
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return bedrock_error(StatusCode::BAD_REQUEST, "ValidationException", "not JSON");
    };
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let shape_ok = !messages.is_empty()
        && messages.iter().all(|m| {
            matches!(m["role"].as_str(), Some("user" | "assistant"))
                && m["content"].as_array().is_some_and(|c| !c.is_empty())
        })
        && request["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"].is_object()
        && request["requestMetadata"]["tenant"].is_string()
        && request["requestMetadata"]["trace_id"].as_str().is_some_and(|t| t.len() == 32)
        && request["requestMetadata"]["run_id"].is_string();
    if !shape_ok {
        seen.problems.push(format!("bad request shape: {request}"));
        return bedrock_error(StatusCode::BAD_REQUEST, "ValidationException", "bad shape");
    }
    if seen.throttle_first {
        seen.throttle_first = false;
        return bedrock_error(StatusCode::TOO_MANY_REQUESTS, "ThrottlingException", "Rate exceeded");
    }
    seen.requests.push(request.clone());
    let last = messages.last().cloned().unwrap_or_default();
    let result = last["content"].as_array().and_then(|c| c.iter().find_map(|b| b.get("toolResult").cloned()));
    let answer = match result {
        None => json!({
            "output": { "message": { "role": "assistant", "content": [
                { "text": "Let me compute that." },
                { "toolUse": { "toolUseId": "tu-1", "name": "calculator", "input": { "expression": "6 * 7" } } }
            ] } },
            "stopReason": "tool_use",
            "usage": { "inputTokens": 20, "outputTokens": 9, "totalTokens": 29 },
            "metrics": { "latencyMs": 3 }
        }),
        Some(result) => {
            let value = &result["content"][0]["json"]["value"];
            json!({
                "output": { "message": { "role": "assistant", "content": [ { "text": format!("The answer is {value}.") } ] } },
                "stopReason": "end_turn",
                "usage": { "inputTokens": 40, "outputTokens": 6, "totalTokens": 46 },
                "metrics": { "latencyMs": 3 }
            })
        }
    };
    (StatusCode::OK, [("content-type", "application/json")], answer.to_string()).into_response()
}

async fn triage_on(model: Arc<dyn ModelBackend>) -> agenthost::RunOutput {
    let host =
        Host::new(HostConfig { engine: common::engine_config(), model, ..HostConfig::default() }).unwrap();
    let calculator = common::load(&host, agenthost_artifacts::CALCULATOR).await;
    host.register_tool(calculator).unwrap();
    let triage =
        host.load(&common::bytes(agenthost_artifacts::TRIAGE), LoadOptions::default()).await.unwrap();
    host.run_agent(&triage, &json!({ "question": "What is six times seven?" })).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn bedrock_converse_runs_a_tool_turn_signed_and_retried() {
    let seen: Shared = Arc::new(Mutex::new(Seen { throttle_first: true, ..Seen::default() }));
    let endpoint =
        serve(Router::new().route("/{*path}", axum::routing::post(bedrock)).with_state(seen.clone())).await;
    let config = common::aws::config_for(&endpoint).await;
    let model = Arc::new(BedrockModel::new(aws_sdk_bedrockruntime::Client::new(&config), MODEL));
    let run = triage_on(model).await;

    let seen = seen.lock().unwrap();
    assert!(seen.problems.is_empty(), "{:?}", seen.problems);
    assert_eq!(seen.calls, 3, "one throttled attempt, retried, then the second turn");
    assert_eq!(run.output["answer"].as_str(), Some("The answer is 42."), "{}", run.output);
    // The tool result went back as a toolResult block with the tool's JSON.
    let second = &seen.requests[1];
    let result = second["messages"].as_array().unwrap().last().unwrap()["content"][0]["toolResult"].clone();
    assert_eq!(result["toolUseId"], "tu-1");
    assert_eq!(result["status"], "success");
    assert_eq!(result["content"][0]["json"]["value"], 42);
    assert_eq!(second["requestMetadata"]["trace_id"], run.trace.trace_id);
    assert_eq!(second["requestMetadata"]["run_id"], run.trace.run_id);
    assert_eq!(second["requestMetadata"]["tenant"], run.trace.tenant_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn bedrock_errors_become_the_wit_cases() {
    use agenthost::bindings::model::{ContentBlock, ConverseRequest, Message, Role};
    use agenthost::bindings::types::Error;
    async fn answer(State(kind): State<&'static str>) -> Response {
        match kind {
            "ValidationException" => bedrock_error(StatusCode::BAD_REQUEST, kind, "messages: too long"),
            "AccessDeniedException" => bedrock_error(StatusCode::FORBIDDEN, kind, "no access to this model"),
            "ResourceNotFoundException" => bedrock_error(StatusCode::NOT_FOUND, kind, "no such model"),
            "ThrottlingException" => bedrock_error(StatusCode::TOO_MANY_REQUESTS, kind, "Rate exceeded"),
            _ => bedrock_error(StatusCode::SERVICE_UNAVAILABLE, kind, "try later"),
        }
    }
    let request = ConverseRequest {
        model_id: None,
        messages: vec![Message { role: Role::User, content: vec![ContentBlock::Text("hi".into())] }],
        system: Vec::new(),
        tool_config: None,
        inference: None,
    };
    let trace = agenthost::trace::new_trace("acme", "t@1");
    for (kind, case) in [
        ("ValidationException", "invalid-input"),
        ("AccessDeniedException", "denied"),
        ("ResourceNotFoundException", "not-found"),
        ("ThrottlingException", "limit-exceeded"),
        ("ServiceUnavailableException", "unavailable"),
    ] {
        let endpoint =
            serve(Router::new().route("/{*path}", axum::routing::post(answer)).with_state(kind)).await;
        let config = common::aws::config_for(&endpoint).await;
        let model = BedrockModel::new(aws_sdk_bedrockruntime::Client::new(&config), MODEL);
        let error = model.converse(&request, &trace).await.unwrap_err();
        let got = match &error {
            Error::InvalidInput(_) => "invalid-input",
            Error::Denied(_) => "denied",
            Error::NotFound(_) => "not-found",
            Error::LimitExceeded(_) => "limit-exceeded",
            Error::Unavailable(_) => "unavailable",
            _ => "other",
        };
        assert_eq!(got, case, "{kind}: {error:?}");
    }
    // Nobody listening: unavailable, not a hang.
    let config = common::aws::config_for("http://127.0.0.1:9").await;
    let model = BedrockModel::new(aws_sdk_bedrockruntime::Client::new(&config), MODEL);
    assert!(matches!(model.converse(&request, &trace).await, Err(Error::Unavailable(_))));
}

async fn chat(State(seen): State<Shared>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut seen = seen.lock().unwrap();
    seen.calls += 1;
    if uri.path() != "/v1/chat/completions" {
        seen.problems.push(format!("path {}", uri.path()));
        return StatusCode::NOT_FOUND.into_response();
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer sk-local-test") {
        seen.problems.push("missing bearer key".into());
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let shape_ok = request["model"] == "llama-test"
        && messages
            .iter()
            .all(|m| matches!(m["role"].as_str(), Some("system" | "user" | "assistant" | "tool")))
        && request["tools"][0]["type"] == "function"
        && request["tools"][0]["function"]["name"] == "calculator"
        && request["tools"][0]["function"]["parameters"].is_object()
        && request["tool_choice"] == "auto";
    if !shape_ok {
        seen.problems.push(format!("bad request shape: {request}"));
        return StatusCode::BAD_REQUEST.into_response();
    }
    seen.requests.push(request.clone());
    let last = messages.last().cloned().unwrap_or_default();
    let answer = if last["role"] == "tool" {
        let result: Value =
            serde_json::from_str(last["content"].as_str().unwrap_or("{}")).unwrap_or_default();
        json!({
            "id": "chatcmpl-2", "object": "chat.completion", "model": "llama-test",
            "choices": [{ "index": 0, "finish_reason": "stop",
                "message": { "role": "assistant", "content": format!("The answer is {}.", result["value"]) } }],
            "usage": { "prompt_tokens": 30, "completion_tokens": 6, "total_tokens": 36 }
        })
    } else {
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "llama-test",
            "choices": [{ "index": 0, "finish_reason": "tool_calls",
                "message": { "role": "assistant", "content": null, "tool_calls": [
                    { "id": "call_1", "type": "function", "function": { "name": "calculator", "arguments": "{\"expression\":\"6 * 7\"}" } }
                ] } }],
            "usage": { "prompt_tokens": 25, "completion_tokens": 12, "total_tokens": 37 }
        })
    };
    (StatusCode::OK, [("content-type", "application/json")], answer.to_string()).into_response()
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_compatible_chat_maps_tools_both_ways() {
    let seen: Shared = Arc::new(Mutex::new(Seen::default()));
    let endpoint =
        serve(Router::new().route("/{*path}", axum::routing::post(chat)).with_state(seen.clone())).await;
    let model = OpenAiModel::new(
        &format!("{endpoint}/v1"),
        Some("sk-local-test".into()),
        "llama-test",
        Duration::from_secs(10),
    )
    .unwrap();
    let run = triage_on(Arc::new(model)).await;
    let seen = seen.lock().unwrap();
    assert!(seen.problems.is_empty(), "{:?}", seen.problems);
    assert_eq!(run.output["answer"].as_str(), Some("The answer is 42."), "{}", run.output);
    // The tool call went back as an assistant tool_calls message and a tool message.
    let second = seen.requests[1]["messages"].as_array().unwrap();
    let call = second.iter().find(|m| m["tool_calls"].is_array()).unwrap();
    assert_eq!(call["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        serde_json::from_str::<Value>(call["tool_calls"][0]["function"]["arguments"].as_str().unwrap())
            .unwrap(),
        json!({"expression": "6 * 7"})
    );
    let tool = second.last().unwrap();
    assert_eq!((tool["role"].as_str(), tool["tool_call_id"].as_str()), (Some("tool"), Some("call_1")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_can_have_a_model_backend_of_its_own() {
    let text = "id = \"acme\"\n[model]\nbackend = \"openai\"\nendpoint = \"http://127.0.0.1:8080/v1\"\ndefault_model = \"llama-test\"\n";
    let config =
        agenthost::governance::TenantConfig::parse(std::path::Path::new("tenants/acme.toml"), text).unwrap();
    let own = config.model.unwrap();
    assert_eq!(
        (own.backend, own.default_model.as_deref()),
        (agenthost::brokers::model::ModelBackendKind::Openai, Some("llama-test"))
    );

    // The development tenant `default` talks to its own server; the host's
    // backend (the built-in model) is not asked.
    let seen: Shared = Arc::new(Mutex::new(Seen::default()));
    let endpoint =
        serve(Router::new().route("/{*path}", axum::routing::post(chat)).with_state(seen.clone())).await;
    let own = OpenAiModel::new(
        &format!("{endpoint}/v1"),
        Some("sk-local-test".into()),
        "llama-test",
        Duration::from_secs(10),
    )
    .unwrap();
    let host = Host::new(HostConfig {
        engine: common::engine_config(),
        tenant_models: [("default".to_owned(), Arc::new(own) as Arc<dyn ModelBackend>)].into(),
        ..HostConfig::default()
    })
    .unwrap();
    let calculator = common::load(&host, agenthost_artifacts::CALCULATOR).await;
    host.register_tool(calculator).unwrap();
    let triage =
        host.load(&common::bytes(agenthost_artifacts::TRIAGE), LoadOptions::default()).await.unwrap();
    let run = host.run_agent(&triage, &json!({ "question": "What is six times seven?" })).await.unwrap();
    assert_eq!(run.output["answer"].as_str(), Some("The answer is 42."), "{}", run.output);
    assert_eq!(seen.lock().unwrap().requests.len(), 2);
}
