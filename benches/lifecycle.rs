#![allow(clippy::expect_used)] // a bench that cannot set up has nothing to measure
//! `lifecycle`: from deploy to the first successful call of a new version,
//! as `agenthost serve` does it, without HTTP: the registry checks the
//! publisher's signature and stores the version, `stable` moves to it, the
//! warm set fetches it (digest check, manifest), loads it (compile or
//! precompiled artifact, link, `describe`), and the first call runs.
//!
//! * `deploy-to-first-call/compile`: the bytes were never compiled on this
//!   node (no disk cache; the in-process copy evicted).
//! * `deploy-to-first-call/precompiled-in-registry`: the node has never
//!   seen the bytes, but another node with the same cache key compiled
//!   them and shared the sealed artifact through the registry: the node
//!   fetches it, checks its seal and loads it.
//! * `deploy-to-first-call/precompiled-on-node`: the artifact is already in
//!   the node's own checked disk cache.
//! * `plain-wasmtime/compile-and-call`: the baseline, plain wasmtime
//!   compiling the same bytes and making the same call.
//!
//! Each iteration deploys to a fresh registry directory (made outside the
//! timing). Run: `cargo bench -p agenthost-benches --bench lifecycle`. The
//! issue's target for a precompiled artifact in the registry: ≤ 25 ms.

use std::hint::black_box;
use std::sync::Arc;

use agenthost::registry::warm::WarmSet;
use agenthost::registry::{Alias, Deploy, LocalStore, Registry, Store};
use agenthost::{Host, HostConfig, LoadSource};
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
            // A configured key, as a fleet shares: only such artifacts go to the registry.
            cache_key: Some([5; 32]),
            share_artifacts: true,
            ..HostConfig::default()
        })
        .expect("host"),
    );

    // One deploy, alias move, load and call: what a rollout waits for.
    let deploy_and_call = |host: &Arc<Host>, store: Arc<dyn Store>| {
        let registry = Registry::new(store, fixture.governance.clone(), 16 << 20);
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
            (host.invoke_tool(&tool, &input).await.expect("first call"), tool.source().clone())
        })
    };
    let store_in = |dir: &tempfile::TempDir| -> Arc<dyn Store> {
        Arc::new(LocalStore::open(dir.path()).expect("store"))
    };
    let digest = format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wasm)));
    // A first deploy compiles; its sealed artifact is what the registry hands out.
    let (sealed, fingerprint) = {
        let dir = tempfile::tempdir().expect("dir");
        let (out, source) = deploy_and_call(&warm_cache, store_in(&dir));
        assert_eq!(out["value"], 79);
        assert_eq!(source, LoadSource::Compiled);
        let fingerprint = warm_cache.artifact_fingerprint().expect("fingerprint");
        (warm_cache.sealed_artifact(&digest, 1 << 30).expect("sealed artifact"), fingerprint)
    };
    let forget = |host: &Host| {
        host.evict(&digest);
        if let Some(path) = host.cache_path(&digest) {
            let _ = std::fs::remove_file(path);
        }
    };

    let mut group = c.benchmark_group("lifecycle");
    group.sample_size(10);
    group.bench_function("deploy-to-first-call/compile", |b| {
        b.iter_batched(
            || {
                cold.evict(&digest);
                tempfile::tempdir().expect("dir")
            },
            |dir| black_box(deploy_and_call(&cold, store_in(&dir))),
            BatchSize::PerIteration,
        );
    });
    group.bench_function("deploy-to-first-call/precompiled-in-registry", |b| {
        b.iter_batched(
            || {
                forget(&warm_cache);
                let dir = tempfile::tempdir().expect("dir");
                let store = store_in(&dir);
                rt.block_on(store.put_artifact("acme", &digest, &fingerprint, &sealed)).expect("artifact");
                (dir, store)
            },
            |(_dir, store)| {
                let (out, source) = deploy_and_call(&warm_cache, store);
                assert_eq!(source, LoadSource::DiskCache, "the artifact from the registry was not used");
                black_box(out)
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("deploy-to-first-call/precompiled-on-node", |b| {
        b.iter_batched(
            || {
                warm_cache.evict(&digest);
                tempfile::tempdir().expect("dir")
            },
            |dir| black_box(deploy_and_call(&warm_cache, store_in(&dir))),
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
