#![allow(clippy::expect_used)] // a bench that cannot set up has nothing to measure
//! Criterion benchmarks for agenthost (`invoke.rs`, `governance.rs`) and
//! what they share: the plain-wasmtime baseline every bench compares with.

use agenthost::bindings::ToolPre;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// A current-thread runtime, as a CLI call would use.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

struct Plain {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Plain {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// A tool called through plain wasmtime on the host's own engine (same
/// settings, same pool): an `InstancePre` and a bare WASI context; per call
/// a new store, fuel, an epoch deadline, instantiate, `invoke`, drop.
pub struct PlainTool {
    engine: Engine,
    pre: ToolPre<Plain>,
}

impl PlainTool {
    pub fn new(engine: &Engine, bytes: &[u8]) -> Self {
        let component = Component::new(engine, bytes).expect("compile");
        let mut linker: Linker<Plain> = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi");
        let pre = ToolPre::new(linker.instantiate_pre(&component).expect("link")).expect("tool exports");
        PlainTool { engine: engine.clone(), pre }
    }

    pub async fn invoke(&self, input: &String, fuel: u64) -> String {
        let mut store = Store::new(
            &self.engine,
            Plain { wasi: WasiCtxBuilder::new().build(), table: ResourceTable::new() },
        );
        store.set_fuel(fuel).expect("fuel");
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
        let instance = self.pre.instantiate_async(&mut store).await.expect("instantiate");
        instance.call_invoke(&mut store, input).await.expect("call").expect("ok")
    }
}
