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
    let value: Value = serde_json::from_slice(&output.stderr)
        .unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {}", String::from_utf8_lossy(&output.stderr)));
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
fn run_takes_the_hosts_limits_and_a_flag_overrides_them() {
    let dir = tempfile::tempdir().unwrap();
    let (config, data) = (dir.path().join("config"), dir.path().join("data"));
    std::fs::create_dir_all(config.join("tenants")).unwrap();
    std::fs::write(config.join("host.toml"), "[limits]\ntimeout_ms = 150\nfuel = 100000000000000\n").unwrap();
    std::fs::write(config.join("tenants/acme.toml"), "id = \"acme\"\n").unwrap();
    let wasm = dir.path().join("spin_forever.wasm");
    std::fs::copy(artifacts::SPIN_FOREVER, &wasm).unwrap();
    let wasm = wasm.to_str().unwrap();
    assert!(governed(&config, &data, &["manifest", "init", wasm]).status.success());
    let output = governed(&config, &data, &["run", wasm]);
    assert_eq!(stderr_error(&output)["limit"], serde_json::json!({ "name": "timeout_ms", "value": 150 }));
    let output = governed(&config, &data, &["run", wasm, "--timeout", "250"]);
    assert_eq!(stderr_error(&output)["limit"], serde_json::json!({ "name": "timeout_ms", "value": 250 }));
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
    assert!(
        report["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"].as_str().unwrap().starts_with("wasi:"))
    );
    assert_eq!(report["tool"]["name"], "calculator");
    assert_eq!(report["tool"]["risk_tier"], "read");
    assert_eq!(report["tool"]["input_schema"]["required"], serde_json::json!(["expression"]));

    let output = agenthost(&["inspect", artifacts::TRIAGE]);
    let report = stdout_json(&output);
    assert_eq!(report["world"], "agenthost:platform/agent@0.1.0");
    assert!(
        report["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "agenthost:platform/model@0.1.0" && i["status"] == "live"),
        "{report}"
    );
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

/// `agenthost` with a config and data directory of the test's own.
fn governed(config: &std::path::Path, data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("run agenthost")
}

#[test]
fn an_approval_round_trip_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (config, data, work) = (dir.path().join("config"), dir.path().join("data"), dir.path().join("work"));
    for d in [&config.join("keys"), &config.join("tenants"), &work] {
        std::fs::create_dir_all(d).unwrap();
    }
    for who in ["alice", "carol"] {
        let out = agenthost(&["keygen", config.join("keys").join(who).to_str().unwrap()]);
        assert!(stdout_json(&out)["key_id"].as_str().unwrap().starts_with("ed25519:"));
    }
    std::fs::write(
        config.join("tenants/acme.toml"),
        "id = \"acme\"\n[grants]\nmemory_namespaces = [\"refunds\"]\n[approvers]\nalice = \"keys/alice.pub\"\ncarol = \"keys/carol.pub\"\n",
    )
    .unwrap();
    let wasm = work.join("refund.wasm");
    std::fs::copy(artifacts::REFUND, &wasm).unwrap();
    let wasm = wasm.to_str().unwrap();

    // Without a manifest, a configured host refuses the component.
    let input = r#"{"order_id":"ORD-7","amount_cents":1250,"currency":"EUR"}"#;
    let err = stderr_error(&governed(&config, &data, &["run", wasm, "--input", input]));
    assert!(err["message"].as_str().unwrap().contains("agenthost manifest init"), "{err}");

    // A starter manifest, then the namespace it needs.
    let out = stdout_json(&governed(&config, &data, &["manifest", "init", wasm]));
    assert_eq!(out["risk_tier"], "write-high");
    let manifest_path = work.join("refund.manifest.toml");
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    assert!(text.contains("risk_tier = \"write-high\"") && text.contains("interfaces = ["), "{text}");
    std::fs::write(
        &manifest_path,
        text.replace("memory_namespaces = []", "memory_namespaces = [\"refunds\"]"),
    )
    .unwrap();

    // The call waits for approval; carol proves who she is with her key.
    let carol_key = config.join("keys/carol.key");
    let run = [
        "run",
        wasm,
        "--tenant",
        "acme",
        "--as",
        "carol",
        "--key",
        carol_key.to_str().unwrap(),
        "--input",
        input,
    ];
    let err = stderr_error(&governed(&config, &data, &run));
    assert_eq!(err["kind"], "approval-required", "{err}");
    let id = err["approval_request"].as_str().unwrap().to_owned();

    let listed = stdout_json(&governed(&config, &data, &["approvals", "list"]));
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["tool"], "refund@0.1.0");
    assert_eq!(listed[0]["approvals"], "0/1");

    // The requester cannot approve; alice can.
    let out = governed(
        &config,
        &data,
        &["approvals", "approve", &id, "--as", "carol", "--key", carol_key.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot approve or deny it"));
    let alice_key = config.join("keys/alice.key");
    let out = governed(
        &config,
        &data,
        &["approvals", "approve", &id, "--as", "alice", "--key", alice_key.to_str().unwrap()],
    );
    let approved = stdout_json(&out);
    assert_eq!(approved["status"], "approved");

    // Re-submitted with the request id, it runs once.
    let mut resubmit = run.to_vec();
    resubmit.extend(["--approval", &id]);
    let out = stdout_json(&governed(&config, &data, &resubmit));
    assert_eq!(out["refunded"]["order_id"], "ORD-7");
    let err = stderr_error(&governed(&config, &data, &resubmit));
    assert_eq!(err["kind"], "denied");
    assert!(err["message"].as_str().unwrap().contains("already used"), "{err}");

    // A token handed over as a file (the output of `approvals approve`) is read too.
    let input8 = r#"{"order_id":"ORD-8","amount_cents":990,"currency":"EUR"}"#;
    let run8 = [
        "run",
        wasm,
        "--tenant",
        "acme",
        "--as",
        "carol",
        "--key",
        carol_key.to_str().unwrap(),
        "--input",
        input8,
    ];
    let id8 = stderr_error(&governed(&config, &data, &run8))["approval_request"].as_str().unwrap().to_owned();
    let out = governed(
        &config,
        &data,
        &["approvals", "approve", &id8, "--as", "alice", "--key", alice_key.to_str().unwrap()],
    );
    let token_file = dir.path().join("token.json");
    std::fs::write(&token_file, &out.stdout).unwrap();
    let mut with_file = run8.to_vec();
    with_file.extend(["--approval", &id8, "--token", token_file.to_str().unwrap()]);
    assert_eq!(stdout_json(&governed(&config, &data, &with_file))["refunded"]["order_id"], "ORD-8");

    // A scoped host refuses every other tenant.
    std::fs::write(config.join("tenants/globex.toml"), "id = \"globex\"\n").unwrap();
    let mut scoped = vec!["--tenant-scope", "globex"];
    scoped.extend(run);
    // (refused while proving who calls: the caller's tenant is not served here)
    let out = governed(&config, &data, &scoped);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("scoped to tenant `globex`"), "{err}");
}

#[test]
fn policy_test_and_resolve_on_the_sample_packs() {
    let packs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let (base, domain, intent) =
        (packs.join("base"), packs.join("domain-support"), packs.join("intent-refunds"));
    let out = agenthost(&[
        "policy",
        "test",
        base.to_str().unwrap(),
        domain.to_str().unwrap(),
        intent.to_str().unwrap(),
    ]);
    let summary = stdout_json(&out);
    assert_eq!(summary["failed"], 0);
    assert!(summary["passed"].as_u64().unwrap() >= 12);

    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("security");
    stdout_json(&agenthost(&["keygen", key.to_str().unwrap()]));
    let manifest = dir.path().join("manifest.json");
    let out = agenthost(&[
        "policy",
        "resolve",
        "--base",
        base.to_str().unwrap(),
        "--domain",
        domain.to_str().unwrap(),
        "--intent",
        intent.to_str().unwrap(),
        "--sign-key",
        dir.path().join("security.key").to_str().unwrap(),
        "--mode",
        "log-only",
        "--tenant",
        "acme",
        "-o",
        manifest.to_str().unwrap(),
    ]);
    let report = stdout_json(&out);
    assert_eq!(report["mode"], "log-only");
    assert_eq!(report["tenants"], serde_json::json!(["acme"]));
    let written_bytes = std::fs::read(&manifest).unwrap();
    assert_eq!(report["digest"], agenthost::keys::digest(&written_bytes));
    assert_eq!(report["layers"].as_array().unwrap().len(), 3);
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    assert_eq!(written["prompts"][0]["layer"], "base");
    assert!(written["signature"]["value"].as_str().unwrap().len() == 128);

    // Packs given in the wrong slot are refused.
    let out = agenthost(&[
        "policy",
        "resolve",
        "--base",
        domain.to_str().unwrap(),
        "--sign-key",
        dir.path().join("security.key").to_str().unwrap(),
        "--tenant",
        "acme",
        "-o",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a domain pack, given as --base"));
}

#[test]
fn aws_bootstrap_then_a_run_on_dynamodb_audited_to_s3_verifies_from_the_bucket() {
    let Some(endpoint) = crate::common::aws::endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (config, data, work) = (dir.path().join("config"), dir.path().join("data"), dir.path().join("work"));
    for d in [&config.join("tenants"), &work] {
        std::fs::create_dir_all(d).unwrap();
    }
    let suffix = format!("{:08x}", rand::random::<u32>());
    std::fs::write(
        config.join("host.toml"),
        format!(
            "[aws]\nendpoint_url = \"{endpoint}\"\nregion = \"us-east-1\"\n\
             [memory]\nbackend = \"dynamodb\"\ntable = \"cli-{suffix}\"\n\
             [audit.s3]\nbucket = \"cli-audit-{suffix}\"\nprefix = \"prod\"\nretention_mode = \"GOVERNANCE\"\nretention_days = 7\n"
        ),
    )
    .unwrap();
    std::fs::write(
        config.join("tenants/acme.toml"),
        "id = \"acme\"\n[grants]\nmemory_namespaces = [\"notes\"]\n",
    )
    .unwrap();

    let out = stdout_json(&governed(&config, &data, &["aws", "bootstrap"]));
    assert_eq!(out["memory_table"]["created"], true, "{out}");
    assert_eq!(out["audit_bucket"]["object_lock"], true, "{out}");
    assert!(out["events"]["queue_url"].as_str().is_some(), "{out}");

    let wasm = work.join("kv_note.wasm");
    std::fs::copy(artifacts::KV_NOTE, &wasm).unwrap();
    let wasm = wasm.to_str().unwrap();
    stdout_json(&governed(&config, &data, &["manifest", "init", wasm]));
    let manifest = work.join("kv_note.manifest.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("memory_namespaces = []", "memory_namespaces = [\"notes\"]"))
        .unwrap();
    let run = ["run", wasm, "--tenant", "acme", "--input", r#"{"key":"k1","note":"hello"}"#];
    assert_eq!(stdout_json(&governed(&config, &data, &run))["version"], 1);
    // The second write finds the first in DynamoDB, not in this process.
    assert_eq!(stdout_json(&governed(&config, &data, &run))["version"], 2);

    // Both runs sealed their segments into the bucket under Object Lock.
    let out = governed(
        &config,
        &data,
        &["audit", "verify", "--from", &format!("s3://cli-audit-{suffix}/prod"), "--json"],
    );
    let report = stdout_json(&out);
    assert_eq!(report["ok"], true, "{report}");
    let retention = report["retention"].as_array().unwrap();
    assert!(retention.len() >= 2 && retention.iter().all(|r| r["mode"] == "GOVERNANCE"), "{report}");
    let out = governed(&config, &data, &["audit", "query", "--tenant", "acme", "--kind", "memory_write"]);
    assert!(out.status.success());
    let writes: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert_eq!(writes[1]["record"]["what"]["backend"], "dynamodb");
}

#[test]
fn the_readmes_host_toml_example_parses() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme.split("## Backends and configuration").nth(1).unwrap();
    let example = section.split("```toml").nth(1).unwrap().split("```").next().unwrap();
    let settings: agenthost::governance::HostSettings = toml::from_str(example).unwrap();
    assert_eq!(settings.memory.backend, agenthost::brokers::memory::MemoryBackend::Dynamodb);
    assert_eq!(settings.audit.s3.unwrap().retention_days, 365);
    assert_eq!(settings.events.backend, agenthost::brokers::events::EventBackend::Sqs);
}

#[test]
fn run_writes_prometheus_metrics_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("metrics.txt");
    let output = agenthost(&[
        "run",
        artifacts::CALCULATOR,
        "--input",
        r#"{"expression":"2 * 21"}"#,
        "--metrics",
        metrics.to_str().unwrap(),
    ]);
    assert_eq!(stdout_json(&output)["value"], 42);
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        text.contains(r#"agenthost_invocation_duration_seconds_count{tenant="default",component="calculator",outcome="ok"} 1"#),
        "{text}"
    );
}
