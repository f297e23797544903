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
        Self::from_component(engine, &Component::new(engine, bytes).expect("compile"))
    }

    /// From a precompiled artifact of `engine`'s settings (written by
    /// `Engine::precompile_component`), as a bare Lambda function ships it.
    ///
    /// # Safety
    ///
    /// `path` must hold what `precompile_component` wrote, unaltered:
    /// wasmtime runs the code in it as it finds it.
    #[allow(unsafe_code)]
    pub unsafe fn precompiled(engine: &Engine, path: &std::path::Path) -> Self {
        // SAFETY: the caller vouches for the file (above).
        let component = unsafe { Component::deserialize_file(engine, path) }.expect("deserialize");
        Self::from_component(engine, &component)
    }

    fn from_component(engine: &Engine, component: &Component) -> Self {
        let mut linker: Linker<Plain> = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi");
        let pre = ToolPre::new(linker.instantiate_pre(component).expect("link")).expect("tool exports");
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

/// A governed host's configuration for the registry benches: tenant `acme`
/// with one publisher key, and one bearer-token issuer.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub governance: std::sync::Arc<agenthost::Governance>,
    pub publisher: agenthost::keys::KeyPair,
    pub issuer: agenthost::keys::KeyPair,
}

impl Fixture {
    /// Writes `host.toml` (with `server` appended under `[server]`) and the
    /// tenant file, and loads them.
    pub fn new(server: &str) -> Fixture {
        use agenthost::keys::KeyPair;
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("config");
        std::fs::create_dir_all(config.join("tenants")).expect("config dir");
        let issuer = KeyPair::generate();
        let publisher = KeyPair::generate();
        std::fs::write(config.join("issuer.pub"), issuer.public().pem().expect("pem")).expect("write");
        std::fs::write(config.join("publisher.pub"), publisher.public().pem().expect("pem")).expect("write");
        std::fs::write(
            config.join("host.toml"),
            format!(
                "default_tenant = \"acme\"\n[server]\n{server}\n[[server.issuers]]\nissuer = \"bench\"\nkeys = [\"issuer.pub\"]\n"
            ),
        )
        .expect("host.toml");
        std::fs::write(
            config.join("tenants/acme.toml"),
            "id = \"acme\"\n[publishers]\nci = \"publisher.pub\"\n",
        )
        .expect("tenant");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let governance =
            std::sync::Arc::new(agenthost::Governance::load(&config, None, Some(&data)).expect("governance"));
        Fixture { dir, governance, publisher, issuer }
    }

    pub fn config(&self) -> std::path::PathBuf {
        self.dir.path().join("config")
    }

    pub fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// A deploy of `wasm` as tool `name`@`version` (read tier) to `acme`:
    /// its manifest and the publisher's signature.
    pub fn deploy(
        &self,
        wasm: &[u8],
        name: &str,
        version: &str,
    ) -> (String, agenthost::registry::PublisherSignature) {
        use sha2::Digest as _;
        let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(wasm)));
        let manifest = format!(
            "name = \"{name}\"\nversion = \"{version}\"\ndigest = \"{digest}\"\nworld = \"tool\"\nrisk_tier = \"read\"\n"
        );
        let manifest_digest = agenthost::registry::manifest_digest(&manifest);
        let signature = agenthost::registry::Publication {
            tenant: "acme",
            name,
            version,
            digest: &digest,
            manifest_digest: &manifest_digest,
        }
        .sign(&self.publisher);
        (manifest, signature)
    }
}
