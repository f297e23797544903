#![allow(clippy::expect_used)] // a bench that cannot set up has nothing to measure
//! `invoke`: what agenthost adds to a tool call, against plain wasmtime.
//!
//! * `invoke/plain-wasmtime`: the calculator's `invoke` through plain
//!   wasmtime on the host's own engine (component model, epoch interruption,
//!   fuel, pooling allocator with resident pages), an `InstancePre` and a
//!   bare WASI context: new store, fuel, epoch deadline, instantiate, call,
//!   drop.
//! * `invoke/agenthost`: the same call through `Host::invoke_tool`, which
//!   adds the input-schema check, the trace context, the limits (resource
//!   limiter, fuel, deadline callback, backstop timer), output checks and
//!   JSON parsing of the output.
//! * `load/compile` vs `load/precompiled-cache`: loading the calculator
//!   (compile or verify + deserialize, link, `describe`) with the in-process
//!   copy evicted each time.
//!
//! Run: `cargo bench -p agenthost-benches --bench invoke`. The issue's
//! target is agenthost ≤ 1.5× the plain baseline.

use std::hint::black_box;
use std::sync::Arc;

use agenthost::{Host, HostConfig, Limits, LoadOptions};
use agenthost_benches::{PlainTool, runtime};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

const INPUT: &str = r#"{"expression":"12 * (3 + 4) - 5"}"#;

fn invoke(c: &mut Criterion) {
    let rt = runtime();
    let bytes = std::fs::read(agenthost_artifacts::CALCULATOR).expect("calculator.wasm");
    let limits = Limits::default();

    let host = Host::new(HostConfig::default()).expect("host");
    // Plain wasmtime on the host's own engine: same settings, same pool.
    let plain = PlainTool::new(host.engine(), &bytes);

    let calculator = rt.block_on(host.load(&bytes, LoadOptions::default())).expect("load");
    let input = json!({ "expression": "12 * (3 + 4) - 5" });
    let input_text = INPUT.to_owned();

    let mut group = c.benchmark_group("invoke");
    group.bench_function("plain-wasmtime", |b| {
        b.iter(|| black_box(rt.block_on(plain.invoke(&input_text, limits.fuel))));
    });
    group.bench_function("agenthost", |b| {
        b.iter(|| black_box(rt.block_on(host.invoke_tool(&calculator, &input)).expect("invoke")));
    });
    group.finish();
}

fn load(c: &mut Criterion) {
    let rt = runtime();
    let bytes = Arc::new(std::fs::read(agenthost_artifacts::CALCULATOR).expect("calculator.wasm"));
    let dir = tempfile::tempdir().expect("temp dir");
    let cached = Host::new(HostConfig { cache_dir: Some(dir.path().to_path_buf()), ..HostConfig::default() })
        .expect("host");
    let uncached = Host::new(HostConfig::default()).expect("host");
    let digest = rt.block_on(cached.load(&bytes, LoadOptions::default())).expect("load").id().digest.clone();

    let mut group = c.benchmark_group("load");
    group.sample_size(20);
    group.bench_function("compile", |b| {
        b.iter(|| {
            uncached.evict(&digest);
            black_box(rt.block_on(uncached.load(&bytes, LoadOptions::default())).expect("load"))
        });
    });
    group.bench_function("precompiled-cache", |b| {
        b.iter(|| {
            cached.evict(&digest);
            let loaded = rt.block_on(cached.load(&bytes, LoadOptions::default())).expect("load");
            assert_eq!(loaded.source(), &agenthost::LoadSource::DiskCache);
            black_box(loaded)
        });
    });
    group.finish();
}

criterion_group!(benches, invoke, load);
criterion_main!(benches);
