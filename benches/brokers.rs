#![allow(clippy::expect_used)] // a bench that cannot set up has nothing to measure
//! What the host adds to a guest's memory call, beyond the backend's own time.
//!
//! The `memory-loop` sample makes 1000 `memory.get` (or `memory.put`) calls
//! in one invocation, on the embedded (redb) backend without fsync, so the
//! host-call path dominates:
//!
//! - `plain`: plain wasmtime, the same component, `memory` linked straight to
//!   the same backend (no grant, quota, policy or audit) — the baseline;
//! - `agenthost`: the host's governed path (grant, tenant quota, policy);
//! - `agenthost-audited`: the same with the audit trail on (a decision record
//!   per call, a write record per put, group-committed).
//!
//! Per host call beyond the backend = (agenthost − plain) / 1000; the target
//! is ≤ 2 µs. Run: `cargo bench -p agenthost-benches --bench brokers`.

use std::sync::Arc;

use agenthost::backends::Backends;
use agenthost::bindings::memory::{self as wit_memory, Entry, Governance, ListPage, PutOptions};
use agenthost::bindings::types::Error as WitError;
use agenthost::bindings::{ToolPre, types};
use agenthost::brokers::memory::{Classification, EmbeddedMemory, MemoryStore, Put, RecordMeta, Scope};
use agenthost::settings::HostSettings;
use agenthost::{Host, HostConfig, LoadOptions};
use agenthost_benches::runtime;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

const OPS: u64 = 1000;

struct Plain {
    wasi: WasiCtx,
    table: ResourceTable,
    store: Arc<EmbeddedMemory>,
}

impl WasiView for Plain {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for Plain {}

const SCOPE: Scope<'static> = Scope { tenant: "default", namespace: "bench" };

impl wit_memory::Host for Plain {
    async fn get(&mut self, _ns: String, key: String) -> wasmtime::Result<Result<Option<Entry>, WitError>> {
        let found = self.store.get(SCOPE, &key).await.map_err(WitError::from);
        Ok(found.map(|r| {
            r.map(|r| Entry {
                key: r.key,
                value: r.value,
                version: r.version,
                governance: Governance {
                    classification: wit_memory::Classification::Internal,
                    retention_days: None,
                },
                expires_at: r.expires_at,
            })
        }))
    }

    async fn put(
        &mut self,
        _ns: String,
        key: String,
        value: Vec<u8>,
        options: PutOptions,
    ) -> wasmtime::Result<Result<u64, WitError>> {
        let put = Put {
            value,
            expected_version: options.expected_version,
            ttl_seconds: options.ttl_seconds,
            meta: meta(),
        };
        Ok(self.store.put(SCOPE, &key, put).await.map_err(WitError::from))
    }

    async fn delete(
        &mut self,
        _: String,
        _: String,
        _: Option<u64>,
    ) -> wasmtime::Result<Result<bool, WitError>> {
        Ok(Ok(false))
    }

    async fn list(
        &mut self,
        _: String,
        _: String,
        _: Option<String>,
        _: u32,
    ) -> wasmtime::Result<Result<ListPage, WitError>> {
        Ok(Ok(ListPage { keys: Vec::new(), next_cursor: None }))
    }
}

fn meta() -> RecordMeta {
    RecordMeta {
        classification: Classification::Internal,
        retention_days: None,
        writer: "memory-loop@0.1.0".into(),
        run_id: "bench".into(),
        written_at: 0,
    }
}

struct PlainLoop {
    engine: Engine,
    pre: ToolPre<Plain>,
    store: Arc<EmbeddedMemory>,
}

impl PlainLoop {
    fn new(engine: &Engine, bytes: &[u8], store: Arc<EmbeddedMemory>) -> Self {
        let component = Component::new(engine, bytes).expect("compile");
        let mut linker: Linker<Plain> = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi");
        types::add_to_linker::<Plain, HasSelf<Plain>>(&mut linker, |s| s).expect("types");
        wit_memory::add_to_linker::<Plain, HasSelf<Plain>>(&mut linker, |s| s).expect("memory");
        let pre = ToolPre::new(linker.instantiate_pre(&component).expect("link")).expect("tool exports");
        PlainLoop { engine: engine.clone(), pre, store }
    }

    async fn invoke(&self, input: &String) -> String {
        let state = Plain {
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            store: self.store.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.set_fuel(u64::MAX / 2).expect("fuel");
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = self.pre.instantiate_async(&mut store).await.expect("instantiate");
        instance.call_invoke(&mut store, input).await.expect("call").expect("ok")
    }
}

fn brokers(c: &mut Criterion) {
    let rt = runtime();
    let bytes = std::fs::read(agenthost_artifacts::MEMORY_LOOP).expect("memory-loop sample");
    let dir = tempfile::tempdir().expect("dir");
    let backend = |name: &str| Arc::new(EmbeddedMemory::open(&dir.path().join(name), false).expect("redb"));

    let limits = agenthost::Limits {
        fuel: 10_000_000_000,
        timeout: std::time::Duration::from_secs(60),
        ..agenthost::Limits::default()
    };
    // The host's backends as `agenthost run` opens them: embedded memory
    // without fsync, the audit trail off or on.
    let backends_for = |name: &str, audit: bool| {
        let mut settings = HostSettings::default();
        settings.memory.durable = Some(false);
        settings.audit.enabled = audit;
        let key = agenthost::keys::KeyPair::from_seed([7; 32]);
        rt.block_on(Backends::open(&settings, &[], &dir.path().join(name), &key)).expect("backends")
    };
    let host_for = |backends: &Backends| {
        Host::new(backends.host_config(HostConfig { limits, ..HostConfig::default() })).expect("host")
    };
    let plain_store = backend("plain");
    let (unaudited, audited_backends) = (backends_for("host", false), backends_for("audited", true));
    let host = host_for(&unaudited);
    let audited = host_for(&audited_backends);
    let plain = PlainLoop::new(host.engine(), &bytes, plain_store);
    let tool = rt.block_on(host.load(&bytes, LoadOptions::default())).expect("load");
    let audited_tool = rt.block_on(audited.load(&bytes, LoadOptions::default())).expect("load");

    for mode in ["get", "put"] {
        let input = json!({ "ops": OPS, "mode": mode });
        let text = input.to_string();
        // A record to read.
        rt.block_on(plain.invoke(&json!({ "ops": 1, "mode": "put" }).to_string()));
        rt.block_on(host.invoke_tool(&tool, &json!({ "ops": 1, "mode": "put" }))).expect("seed");
        rt.block_on(audited.invoke_tool(&audited_tool, &json!({ "ops": 1, "mode": "put" }))).expect("seed");

        let mut group = c.benchmark_group(format!("brokers/{mode}-{OPS}"));
        group.sample_size(20);
        group.bench_function("plain", |b| b.iter(|| rt.block_on(plain.invoke(&text))));
        group.bench_function("agenthost", |b| {
            b.iter(|| rt.block_on(host.invoke_tool(&tool, &input)).expect("invoke"))
        });
        group.bench_function("agenthost-audited", |b| {
            b.iter(|| rt.block_on(audited.invoke_tool(&audited_tool, &input)).expect("invoke"))
        });
        group.finish();
    }
    rt.block_on(audited_backends.close()).expect("close");
}

criterion_group!(benches, brokers);
criterion_main!(benches);
