//! Each sample loads, describes itself as expected, and gives the expected
//! JSON.

use agenthost::bindings::types::RiskTier;
use agenthost::trace::TranscriptEvent;
use agenthost::{ErrorKind, Origin, World};
use agenthost_artifacts as artifacts;
use serde_json::{Value, json};

use crate::common::{host, load};

#[tokio::test(flavor = "multi_thread")]
async fn calculator_describes_itself() {
    let host = host();
    let calculator = load(&host, artifacts::CALCULATOR).await;
    assert_eq!(calculator.world(), World::Tool);
    let spec = calculator.tool_spec().expect("a tool");
    assert_eq!(spec.name, "calculator");
    assert_eq!(spec.version, "0.1.0");
    assert_eq!(spec.risk_tier, RiskTier::Read);
    let schema: Value = serde_json::from_str(&spec.input_schema).unwrap();
    assert_eq!(schema["required"], json!(["expression"]));
    assert_eq!(calculator.id().name, "calculator");
    assert!(calculator.id().digest.starts_with("sha256:"));
}

#[tokio::test(flavor = "multi_thread")]
async fn calculator_evaluates_expressions() {
    let host = host();
    let calculator = load(&host, artifacts::CALCULATOR).await;
    for (expression, value) in [
        ("12 * (3 + 4) - 5", json!(79)),
        ("2 ^ 10", json!(1024)),
        ("7 / 2", json!(3.5)),
        ("-(2 + 3) * 2", json!(-10)),
    ] {
        let output = host.invoke_tool(&calculator, &json!({ "expression": expression })).await.unwrap();
        assert_eq!(output, json!({ "expression": expression, "value": value }), "{expression}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn calculator_reports_its_own_errors() {
    let host = host();
    let calculator = load(&host, artifacts::CALCULATOR).await;
    let error = host.invoke_tool(&calculator, &json!({ "expression": "1 / (2 - 2)" })).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidInput);
    assert_eq!(error.origin, Origin::Guest);
    assert!(error.message.contains("division by zero"), "{error}");
    assert_eq!(error.component.as_ref().unwrap().name, "calculator");
}

#[tokio::test(flavor = "multi_thread")]
async fn triage_answers_with_the_calculator() {
    let host = host();
    host.register_tool(load(&host, artifacts::CALCULATOR).await).unwrap();
    let triage = load(&host, artifacts::TRIAGE).await;
    assert_eq!(triage.world(), World::Agent);
    assert_eq!(triage.agent_spec().unwrap().name, "triage");

    let run = host.run_agent(&triage, &json!({ "question": "What is 12 * (3 + 4) - 5?" })).await.unwrap();
    assert_eq!(run.output["answer"], "The result of 12 * (3 + 4) - 5 is 79.");
    assert_eq!(run.output["model_turns"], 2);
    assert_eq!(
        run.output["tool_calls"],
        json!([{ "name": "calculator", "input": { "expression": "12 * (3 + 4) - 5" }, "output": { "expression": "12 * (3 + 4) - 5", "value": 79 } }])
    );

    // Each governed step was decided by the (default) policy.
    let decisions: Vec<String> = run
        .transcript
        .events()
        .iter()
        .filter_map(|e| match e {
            TranscriptEvent::Decision { action, resource, allowed: true, policies, .. } => {
                Some(format!("{action} {resource} {}", policies.join(",")))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        decisions,
        [
            "CallModel Model::\"agenthost.builtin-v1\" agenthost/default-permit",
            "InvokeTool Tool::\"default/calculator\" agenthost/default-permit",
            "CallModel Model::\"agenthost.builtin-v1\" agenthost/default-permit",
        ]
    );

    // The host saw the same conversation: model, tool, model.
    let events: Vec<TranscriptEvent> = run
        .transcript
        .events()
        .into_iter()
        .filter(|e| !matches!(e, TranscriptEvent::Decision { .. }))
        .collect();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(matches!(&events[0], TranscriptEvent::ModelCall { response: Some(_), .. }));
    match &events[1] {
        TranscriptEvent::ToolCall { caller, tool, output, .. } => {
            assert_eq!(caller, "triage@0.1.0");
            assert_eq!(tool, "calculator");
            assert_eq!(output.as_ref().and_then(|o| o.whole()).unwrap()["value"], 79);
        }
        other => panic!("expected a tool call, got {other:?}"),
    }
    assert_eq!(run.trace.trace_id.len(), 32);
    assert!(run.trace.run_id.starts_with("run-"));
}

#[tokio::test(flavor = "multi_thread")]
async fn triage_without_tools_gets_an_echo() {
    let host = host();
    let triage = load(&host, artifacts::TRIAGE).await;
    let run = host.run_agent(&triage, &json!("Tell me about the weather")).await.unwrap();
    let answer = run.output["answer"].as_str().unwrap();
    assert!(answer.starts_with("You said: \"Tell me about the weather\""), "{answer}");
    assert_eq!(run.output["tool_calls"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn triage_sees_a_tool_failure_and_says_so() {
    let host = host();
    host.register_tool(load(&host, artifacts::CALCULATOR).await).unwrap();
    let triage = load(&host, artifacts::TRIAGE).await;
    let run = host.run_agent(&triage, &json!({ "question": "what is 1 / (3 - 3) ?" })).await.unwrap();
    let answer = run.output["answer"].as_str().unwrap();
    assert!(answer.starts_with("The calculator tool failed: invalid-input"), "{answer}");
    assert!(answer.contains("division by zero"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_samples_describe_themselves() {
    let host = host();
    for (path, name) in [
        (artifacts::SPIN_FOREVER, "spin-forever"),
        (artifacts::MEMORY_HOG, "memory-hog"),
        (artifacts::DEEP_RECURSION, "deep-recursion"),
        (artifacts::BIG_OUTPUT, "big-output"),
    ] {
        let tool = load(&host, path).await;
        assert_eq!(tool.tool_spec().unwrap().name, name);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_note_writes_versions_into_tenant_memory() {
    let host = host();
    let note = load(&host, artifacts::KV_NOTE).await;
    let spec = note.tool_spec().unwrap();
    assert_eq!(spec.risk_tier, RiskTier::WriteLow);
    assert!(note.imports().iter().any(|i| i == "agenthost:platform/memory@0.1.0"), "{:?}", note.imports());
    let first = host.invoke_tool(&note, &json!({ "key": "greeting", "note": "hello" })).await.unwrap();
    assert_eq!(first, json!({ "key": "greeting", "version": 1 }));
    let second = host.invoke_tool(&note, &json!({ "key": "greeting", "note": "hello again" })).await.unwrap();
    assert_eq!(second["version"], 2);
}
