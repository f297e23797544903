//! The precompiled cache: used on the second load, and a tampered file is
//! rejected and recompiled, never executed.

use agenthost::{Host, HostConfig, LoadOptions, LoadSource};
use agenthost_artifacts as artifacts;
use serde_json::json;

use crate::common::engine_config;

fn host_in(dir: &std::path::Path) -> Host {
    Host::new(HostConfig {
        engine: engine_config(),
        cache_dir: Some(dir.to_path_buf()),
        ..HostConfig::default()
    })
    .unwrap()
}

async fn load_calculator(host: &Host) -> std::sync::Arc<agenthost::LoadedComponent> {
    host.load_file(artifacts::CALCULATOR.as_ref(), LoadOptions::default()).await.unwrap()
}

async fn works(host: &Host, calculator: &std::sync::Arc<agenthost::LoadedComponent>) {
    let output = host.invoke_tool(calculator, &json!({ "expression": "40 + 2" })).await.unwrap();
    assert_eq!(output["value"], 42);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_second_load_comes_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let first = host_in(dir.path());
    let calculator = load_calculator(&first).await;
    assert_eq!(calculator.source(), &LoadSource::Compiled);
    assert_eq!(first.stats().compiled, 1);
    // The same host keeps the compiled component in memory.
    assert_eq!(load_calculator(&first).await.source(), &LoadSource::Memory);
    assert_eq!(first.stats().compiled, 1);

    let second = host_in(dir.path());
    let calculator = load_calculator(&second).await;
    assert_eq!(calculator.source(), &LoadSource::DiskCache);
    let stats = second.stats();
    assert_eq!((stats.compiled, stats.cache_hits, stats.cache_rejected), (0, 1, 0));
    works(&second, &calculator).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_cache_file_is_rejected_and_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let first = host_in(dir.path());
    let calculator = load_calculator(&first).await;
    let path = first.cache_path(&calculator.id().digest).unwrap();

    // Flip one byte deep in the compiled code.
    let mut artifact = std::fs::read(&path).unwrap();
    let at = artifact.len() / 2;
    artifact[at] ^= 0xff;
    std::fs::write(&path, &artifact).unwrap();

    let second = host_in(dir.path());
    let calculator = load_calculator(&second).await;
    match calculator.source() {
        LoadSource::Recompiled(reason) => assert!(reason.contains("modified"), "{reason}"),
        other => panic!("expected a recompile, got {other:?}"),
    }
    let stats = second.stats();
    assert_eq!((stats.compiled, stats.cache_hits, stats.cache_rejected), (1, 0, 1));
    works(&second, &calculator).await;

    // The rejected file was replaced by a good one.
    let third = host_in(dir.path());
    assert_eq!(load_calculator(&third).await.source(), &LoadSource::DiskCache);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cache_file_for_another_digest_is_never_used() {
    let dir = tempfile::tempdir().unwrap();
    let first = host_in(dir.path());
    let calculator = load_calculator(&first).await;
    let spin = first.load_file(artifacts::SPIN_FOREVER.as_ref(), LoadOptions::default()).await.unwrap();
    // Put the spin-forever artifact where the calculator's should be.
    let calculator_path = first.cache_path(&calculator.id().digest).unwrap();
    std::fs::copy(first.cache_path(&spin.id().digest).unwrap(), &calculator_path).unwrap();

    let second = host_in(dir.path());
    let calculator = load_calculator(&second).await;
    assert!(matches!(calculator.source(), LoadSource::Recompiled(_)), "{:?}", calculator.source());
    assert_eq!(calculator.tool_spec().unwrap().name, "calculator");
    works(&second, &calculator).await;
}
