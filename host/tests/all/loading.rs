//! What is refused at load, and how the refusal reads.

use agenthost::{Capability, ErrorKind, Grant, LoadOptions, World};
use agenthost_artifacts as artifacts;

use crate::common::{bytes, host, try_load};

#[tokio::test(flavor = "multi_thread")]
async fn an_import_outside_the_world_fails_naming_it() {
    let host = host();
    let error = try_load(&host, artifacts::GREEDY_IMPORT, LoadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::LoadFailed);
    assert!(
        error.message.contains("`agenthost:platform/model@0.1.0`"),
        "{error}"
    );
    assert!(
        error
            .message
            .contains("not part of the agenthost:platform/tool@0.1.0 world"),
        "{error}"
    );
    assert_eq!(error.component.unwrap().name, "greedy_import");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_that_is_not_granted_fails_naming_it() {
    let host = host();
    let grant = Grant::world(World::Agent).without(Capability::Model);
    let options = LoadOptions {
        grant: Some(grant),
        ..LoadOptions::default()
    };
    let error = try_load(&host, artifacts::TRIAGE, options)
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::LoadFailed);
    assert!(
        error.message.contains("`agenthost:platform/model@0.1.0`"),
        "{error}"
    );
    assert!(error.message.contains("not granted"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_grant_links_no_platform_interface() {
    let host = host();
    let options = LoadOptions {
        grant: Some(Grant::default()),
        ..LoadOptions::default()
    };
    // The calculator imports no platform interface, so it loads with nothing.
    try_load(&host, artifacts::CALCULATOR, options.clone())
        .await
        .unwrap();
    // The triage agent logs and asks the model: refused.
    let error = try_load(&host, artifacts::TRIAGE, options)
        .await
        .unwrap_err();
    assert!(
        error.message.contains("not granted to it (granted: [])"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_bytes_are_a_clear_load_error() {
    let host = host();
    let error = host
        .load(b"this is not wasm", LoadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::LoadFailed);
    assert!(
        error.message.contains("not a WebAssembly binary"),
        "{error}"
    );

    let mut truncated = bytes(artifacts::CALCULATOR);
    truncated.truncate(4096);
    let error = host
        .load(&truncated, LoadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::LoadFailed);
    assert!(error.message.contains("not a valid component"), "{error}");
    assert!(error.component.unwrap().digest.starts_with("sha256:"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_core_module_is_refused_as_not_a_component() {
    let host = host();
    // The smallest valid core module: magic and version 1.
    let core = b"\0asm\x01\0\0\0";
    let error = host.load(core, LoadOptions::default()).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::LoadFailed);
    assert!(
        error
            .message
            .contains("core WebAssembly module, not a component"),
        "{error}"
    );
    assert!(error.message.contains("wasm32-wasip2"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_of_another_world_is_refused() {
    let host = host();
    let error = try_load(&host, artifacts::CLI_COMMAND, LoadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::LoadFailed);
    assert!(
        error.message.contains("wasi:cli/run@0.2"),
        "names what it does export: {error}"
    );
    assert!(
        error
            .message
            .contains("neither the agenthost:platform/tool@0.1.0 world"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_is_not_an_agent() {
    let host = host();
    let calculator = crate::common::load(&host, artifacts::CALCULATOR).await;
    let error = host
        .run_agent(&calculator, &serde_json::json!({}))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidInput);
    assert!(error.message.contains("is a tool, not an agent"), "{error}");
    let triage = crate::common::load(&host, artifacts::TRIAGE).await;
    let error = host.register_tool(triage).unwrap_err();
    assert!(error.message.contains("is an agent, not a tool"), "{error}");
}
