//! What is refused at load, and how the refusal reads.

use agenthost::{Capability, ErrorKind, Grant, InvokeError, LoadOptions, World};
use agenthost_artifacts as artifacts;

use crate::common::{bytes, host, load, try_load};

/// Asserts a load-failed error whose message holds every one of `phrases`.
fn refused(result: Result<impl std::fmt::Debug, InvokeError>, phrases: &[&str]) -> InvokeError {
    let error = result.expect_err("the load must fail");
    assert_eq!(error.kind, ErrorKind::LoadFailed, "{error}");
    for phrase in phrases {
        assert!(error.message.contains(phrase), "missing {phrase:?} in: {error}");
    }
    error
}

fn with_grant(grant: Grant) -> LoadOptions {
    LoadOptions { grant: Some(grant), ..LoadOptions::default() }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_outside_the_world_fails_naming_it() {
    let host = host();
    let error = refused(
        try_load(&host, artifacts::GREEDY_IMPORT, LoadOptions::default()).await,
        &["`agenthost:platform/model@0.1.0`", "not part of the agenthost:platform/tool@0.1.0 world"],
    );
    assert_eq!(error.component.unwrap().name, "greedy_import");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_that_is_not_granted_is_denied_at_call_time() {
    let host = host();
    let grant = Grant::world(World::Agent).without(Capability::Model);
    let triage = try_load(&host, artifacts::TRIAGE, with_grant(grant)).await.unwrap();
    let model = triage.import_status().iter().find(|i| i.name == "agenthost:platform/model@0.1.0").unwrap();
    assert_eq!(model.status, "denied");
    let err = host.run_agent(&triage, &serde_json::json!({"question": "2 + 2?"})).await.unwrap_err();
    assert!(err.message.contains("may not use `model`"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_grant_leaves_every_platform_interface_denied() {
    let host = host();
    // The calculator imports no platform interface, so it loads with nothing.
    try_load(&host, artifacts::CALCULATOR, with_grant(Grant::default())).await.unwrap();
    // The triage agent logs and asks the model: it loads, every import denied.
    let triage = try_load(&host, artifacts::TRIAGE, with_grant(Grant::default())).await.unwrap();
    assert!(
        triage
            .import_status()
            .iter()
            .filter(|i| i.name.starts_with("agenthost:platform/") && !i.name.contains("/types@"))
            .all(|i| i.status == "denied"),
        "{:?}",
        triage.import_status()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_bytes_are_a_clear_load_error() {
    let host = host();
    refused(host.load(b"this is not wasm", LoadOptions::default()).await, &["not a WebAssembly binary"]);

    let mut truncated = bytes(artifacts::CALCULATOR);
    truncated.truncate(4096);
    let error = refused(host.load(&truncated, LoadOptions::default()).await, &["not a valid component"]);
    assert!(error.component.unwrap().digest.starts_with("sha256:"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_core_module_is_refused_as_not_a_component() {
    let host = host();
    // The smallest valid core module: magic and version 1.
    refused(
        host.load(b"\0asm\x01\0\0\0", LoadOptions::default()).await,
        &["core WebAssembly module, not a component", "wasm32-wasip2"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_of_another_world_is_refused() {
    let host = host();
    refused(
        try_load(&host, artifacts::CLI_COMMAND, LoadOptions::default()).await,
        // It names what the component does export.
        &["wasi:cli/run@0.2", "neither the agenthost:platform/tool@0.1.0 world"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_is_not_an_agent() {
    let host = host();
    let calculator = load(&host, artifacts::CALCULATOR).await;
    let error = host.run_agent(&calculator, &serde_json::json!({})).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidInput);
    assert!(error.message.contains("is a tool, not an agent"), "{error}");
    let triage = load(&host, artifacts::TRIAGE).await;
    let error = host.register_tool(triage).unwrap_err();
    assert!(error.message.contains("is an agent, not a tool"), "{error}");
}
