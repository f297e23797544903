//! The engine: pooling when the platform allows it, on-demand otherwise.

use agenthost::{AllocatorKind, EngineConfig, ErrorKind, Host, HostConfig, Limits};
use agenthost_artifacts as artifacts;
use serde_json::json;

use crate::common::load;

#[tokio::test(flavor = "multi_thread")]
async fn the_default_engine_pools_instances() {
    let host = crate::common::host();
    assert_eq!(host.allocator(), AllocatorKind::Pooling);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_impossible_pool_falls_back_to_on_demand_and_still_runs() {
    // Millions of 64 GiB slots: far more address space than a process has.
    let engine =
        EngineConfig { pool_instances: 4_000_000, max_memory_bytes: 64 << 30, ..EngineConfig::default() };
    let host = Host::new(HostConfig { engine, ..HostConfig::default() }).unwrap();
    assert_eq!(host.allocator(), AllocatorKind::OnDemand);
    let calculator = load(&host, artifacts::CALCULATOR).await;
    let output = host.invoke_tool(&calculator, &json!({ "expression": "3 * 3" })).await.unwrap();
    assert_eq!(output["value"], 9);
}

#[test]
fn limits_the_host_cannot_honour_are_refused_up_front() {
    let too_long = Limits { timeout: std::time::Duration::from_secs(400 * 24 * 3600), ..Limits::default() };
    let error = Host::new(HostConfig { limits: too_long, ..HostConfig::default() }).err().unwrap();
    assert_eq!(error.kind, ErrorKind::InvalidInput);
    assert!(error.message.contains("above the host's maximum"), "{error}");

    let too_big = Limits { memory_bytes: 8 << 30, ..Limits::default() };
    let error = Host::new(HostConfig { limits: too_big, ..HostConfig::default() }).err().unwrap();
    assert!(error.message.contains("largest instance memory"), "{error}");
}
