//! The `agenthost` binary as a user runs it.

use std::process::{Command, Output};

use agenthost_artifacts as artifacts;
use serde_json::Value;

fn agenthost(args: &[&str]) -> Output {
    let data = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .args(args)
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .expect("run agenthost")
}

fn stdout_json(output: &Output) -> Value {
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

fn stderr_error(output: &Output) -> Value {
    assert_eq!(output.status.code(), Some(1), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let value: Value = serde_json::from_slice(&output.stderr).expect("stderr is JSON");
    value["error"].clone()
}

#[test]
fn run_prints_a_tools_output() {
    let output = agenthost(&["run", artifacts::CALCULATOR, "--input", r#"{"expression":"2 * 21"}"#]);
    assert_eq!(stdout_json(&output)["value"], 42);
}

#[test]
fn run_reads_the_input_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.json");
    std::fs::write(&input, r#"{"expression":"100 - 1"}"#).unwrap();
    let output = agenthost(&["run", artifacts::CALCULATOR, "--input-file", input.to_str().unwrap()]);
    assert_eq!(stdout_json(&output)["value"], 99);
}

#[test]
fn run_an_agent_with_a_tool() {
    let output = agenthost(&[
        "run",
        artifacts::TRIAGE,
        "--tool",
        artifacts::CALCULATOR,
        "--input",
        r#"{"question":"How much is (1 + 2) * 3?"}"#,
    ]);
    assert_eq!(stdout_json(&output)["answer"], "The result of (1 + 2) * 3 is 9.");
}

#[test]
fn run_reports_a_timeout_on_stderr() {
    let output =
        agenthost(&["run", artifacts::SPIN_FOREVER, "--timeout", "200", "--fuel", "100000000000000"]);
    let error = stderr_error(&output);
    assert_eq!(error["kind"], "timeout");
    assert_eq!(error["component"]["name"], "spin-forever");
    assert_eq!(error["limit"], serde_json::json!({ "name": "timeout_ms", "value": 200 }));
    assert!(output.stdout.is_empty());
}

#[test]
fn run_reports_schema_violations() {
    let output = agenthost(&["run", artifacts::CALCULATOR, "--input", r#"{"expression":[1]}"#]);
    let error = stderr_error(&output);
    assert_eq!(error["kind"], "invalid-input");
    assert!(error["message"].as_str().unwrap().contains("/expression"));
}

#[test]
fn run_refuses_input_that_is_not_json() {
    let output = agenthost(&["run", artifacts::CALCULATOR, "--input", "{nope"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("the input from --input is not JSON"));
}

#[test]
fn inspect_shows_world_imports_exports_digest_and_spec() {
    let output = agenthost(&["inspect", artifacts::CALCULATOR]);
    let report = stdout_json(&output);
    assert_eq!(report["world"], "agenthost:platform/tool@0.1.0");
    assert!(report["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(report["exports"], serde_json::json!(["describe", "invoke"]));
    assert!(report["imports"].as_array().unwrap().iter().any(|i| i.as_str().unwrap().starts_with("wasi:")));
    assert_eq!(report["tool"]["name"], "calculator");
    assert_eq!(report["tool"]["risk_tier"], "read");
    assert_eq!(report["tool"]["input_schema"]["required"], serde_json::json!(["expression"]));

    let output = agenthost(&["inspect", artifacts::TRIAGE]);
    let report = stdout_json(&output);
    assert_eq!(report["world"], "agenthost:platform/agent@0.1.0");
    assert!(report["imports"].as_array().unwrap().iter().any(|i| i == "agenthost:platform/model@0.1.0"));
    assert_eq!(report["agent"]["name"], "triage");
}

#[test]
fn demo_shows_the_tool_call_and_the_answer() {
    let output = agenthost(&["demo"]);
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("[user]      What is 12 * (3 + 4) - 5?"), "{text}");
    assert!(text.contains(r#"tool-use calculator {"expression":"12 * (3 + 4) - 5"}"#), "{text}");
    assert!(text.contains(r#"ran tool calculator {"expression":"12 * (3 + 4) - 5"} -> {"expression":"12 * (3 + 4) - 5","value":79}"#), "{text}");
    assert!(text.contains("── answer"), "{text}");
    assert!(text.trim_end().contains("The result of 12 * (3 + 4) - 5 is 79.\n"), "{text}");
}
