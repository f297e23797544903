#![allow(clippy::expect_used)] // a bench that cannot set up has nothing to measure
//! `lifecycle`: from deploy to the first successful call of a new version,
//! as `agenthost serve` does it, without HTTP: the registry checks the
//! publisher's signature and stores the version, `stable` moves to it, the
//! warm set fetches it (digest check, manifest), loads it (compile or
//! precompiled artifact, link, `describe`), and the first call runs.
//!
//! * `deploy-to-first-call/compile`: the bytes were never compiled on this
//!   node (no disk cache; the in-process copy evicted).
//! * `deploy-to-first-call/precompiled`: a precompiled artifact for this
//!   engine is already on the node (the HMAC-checked disk cache), as after
//!   a build step or an earlier deploy of the same bytes.
//! * `plain-wasmtime/compile-and-call`: the baseline, plain wasmtime
//!   compiling the same bytes and making the same call.
//!
//! Each iteration deploys to a fresh registry directory (made outside the
//! timing). Run: `cargo bench -p agenthost-benches --bench lifecycle`. The
//! issue's target for `precompiled`: ≤ 25 ms.

use std::hint::black_box;
use std::sync::Arc;

use agenthost::registry::warm::WarmSet;
use agenthost::registry::{Alias, Deploy, LocalStore, Registry};
use agenthost::{Host, HostConfig};
use agenthost_benches::{Fixture, PlainTool, runtime};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::json;

fn lifecycle(c: &mut Criterion) {
    let rt = runtime();
    let fixture = Fixture::new("");
    let wasm = std::fs::read(agenthost_artifacts::CALCULATOR).expect("calculator.wasm");
    let (manifest, signature) = fixture.deploy(&wasm, "calculator", "0.1.0");
    let input = json!({ "expression": "12 * (3 + 4) - 5" });
    let cache = fixture.data().join("cache");
    let cold = Arc::new(
        Host::new(HostConfig { governance: Some(fixture.governance.clone()), ..HostConfig::default() })
            .expect("host"),
    );
    let warm_cache = Arc::new(
        Host::new(HostConfig {
            governance: Some(fixture.governance.clone()),
            cache_dir: Some(cache),
            ..HostConfig::default()
        })
        .expect("host"),
    );

    // One deploy, alias move, load and call: what a rollout waits for.
    let deploy_and_call = |host: &Arc<Host>, root: &std::path::Path| {
        let registry = Registry::new(
            Arc::new(LocalStore::open(root).expect("store")),
            fixture.governance.clone(),
            16 << 20,
        );
        let warm = WarmSet::new(host.clone(), registry.clone());
        rt.block_on(async {
            let deploy = Deploy {
                tenant: "acme",
                wasm: &wasm,
                manifest: &manifest,
                signature: signature.clone(),
                deployer: "bench",
            };
            let version = registry.publish(deploy).await.expect("publish");
            registry
                .update_aliases("acme", "calculator", |a| a.set(Alias::Stable, &version.record.version, None))
                .await
                .expect("alias");
            let (tool, _) = warm.get("acme", "calculator", "0.1.0").await.expect("load");
            host.invoke_tool(&tool, &input).await.expect("first call")
        })
    };
    let digest = {
        let dir = tempfile::tempdir().expect("dir");
        let out = deploy_and_call(&warm_cache, dir.path());
        assert_eq!(out["value"], 79);
        format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wasm)))
    };

    let mut group = c.benchmark_group("lifecycle");
    group.sample_size(10);
    group.bench_function("deploy-to-first-call/compile", |b| {
        b.iter_batched(
            || {
                cold.evict(&digest);
                tempfile::tempdir().expect("dir")
            },
            |dir| black_box(deploy_and_call(&cold, dir.path())),
            BatchSize::PerIteration,
        );
    });
    group.bench_function("deploy-to-first-call/precompiled", |b| {
        b.iter_batched(
            || {
                warm_cache.evict(&digest);
                tempfile::tempdir().expect("dir")
            },
            |dir| black_box(deploy_and_call(&warm_cache, dir.path())),
            BatchSize::PerIteration,
        );
    });
    let input_text = input.to_string();
    group.bench_function("plain-wasmtime/compile-and-call", |b| {
        b.iter(|| {
            let plain = PlainTool::new(cold.engine(), &wasm);
            black_box(rt.block_on(plain.invoke(&input_text, 100_000_000)))
        });
    });
    group.finish();
}

criterion_group!(benches, lifecycle);
criterion_main!(benches);
