//! The one wasmtime [`Engine`] of a host: component model, async calls,
//! epoch interruption for wall-clock deadlines, fuel for CPU budgets, and the
//! pooling allocator when the platform lets it reserve its slots.
//!
//! The epoch ticker lives here too: a thread that advances the engine's
//! epoch every [`EngineConfig::epoch_tick`], which is what lets a deadline
//! interrupt a guest that makes no host call.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How the engine is built. The defaults suit a server with many small
/// concurrent invocations.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Use the pooling allocator if its reservation succeeds.
    pub pooling: bool,
    /// Concurrent component instances the pool holds.
    pub pool_instances: u32,
    /// Largest linear memory any one instance may have; every per-call
    /// memory limit must fit in it.
    pub max_memory_bytes: u64,
    /// Granularity of wall-clock deadlines.
    pub epoch_tick: Duration,
    /// Guest stack size; a deeper guest gets `stack-overflow`.
    pub max_wasm_stack: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            pooling: true,
            pool_instances: 256,
            max_memory_bytes: 1 << 30,
            epoch_tick: Duration::from_millis(5),
            max_wasm_stack: 1 << 20,
        }
    }
}

/// Which instance allocator the engine ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocatorKind {
    Pooling,
    OnDemand,
}

/// The engine, its allocator and its epoch ticker. Dropping it stops the
/// ticker.
pub struct HostEngine {
    engine: Engine,
    allocator: AllocatorKind,
    config: EngineConfig,
    ticker: Option<Ticker>,
}

impl HostEngine {
    /// Builds the engine, falling back from pooling to on-demand allocation
    /// (with one log line) when the pool's reservation fails.
    ///
    /// # Errors
    ///
    /// When even the on-demand engine cannot be built.
    pub fn new(config: EngineConfig) -> wasmtime::Result<Self> {
        let (engine, allocator) = if config.pooling {
            match Engine::new(&base_config(&config, Some(pooling_config(&config)))) {
                Ok(engine) => (engine, AllocatorKind::Pooling),
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "pooling allocator unavailable (its reservation failed); using on-demand allocation"
                    );
                    (Engine::new(&base_config(&config, None))?, AllocatorKind::OnDemand)
                }
            }
        } else {
            (Engine::new(&base_config(&config, None))?, AllocatorKind::OnDemand)
        };
        let ticker = Ticker::start(engine.clone(), config.epoch_tick)?;
        Ok(HostEngine { engine, allocator, config, ticker: Some(ticker) })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn allocator(&self) -> AllocatorKind {
        self.allocator
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// A stable fingerprint of everything that makes a precompiled artifact
    /// loadable by this engine: wasmtime's own compatibility hash plus the
    /// wasmtime version.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        use std::hash::{Hash, Hasher};

        struct ShaHasher(Sha256);
        impl Hasher for ShaHasher {
            fn finish(&self) -> u64 {
                0
            }
            fn write(&mut self, bytes: &[u8]) {
                self.0.update(bytes);
            }
        }
        let mut hasher = ShaHasher(Sha256::new());
        self.engine.precompile_compatibility_hash().hash(&mut hasher);
        hasher.0.update(b"wasmtime-48.0.8");
        hex::encode(&hasher.0.finalize()[..16])
    }
}

impl Drop for HostEngine {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.stop();
        }
    }
}

fn base_config(config: &EngineConfig, pooling: Option<PoolingAllocationConfig>) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(true)
        .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(64))
        .max_wasm_stack(config.max_wasm_stack);
    if let Some(pool) = pooling {
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}

fn pooling_config(config: &EngineConfig) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    let instances = config.pool_instances.max(1);
    // A Rust component is a handful of core instances (the program plus
    // wit-component's shims), one or two memories and a few tables.
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(8))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(8))
        .total_stacks(instances)
        .max_memory_size(usize::try_from(config.max_memory_bytes).unwrap_or(usize::MAX))
        // Keeping the pages an instance touched resident (and resetting
        // them in place) avoids giving them back to the kernel and faulting
        // them in again on every instance. With PAGEMAP_SCAN (Linux 6.7+)
        // only the pages actually dirtied are reset.
        .linear_memory_keep_resident(2 << 20)
        .table_keep_resident(64 << 10)
        .async_stack_keep_resident(128 << 10)
        .pagemap_scan(Enabled::Auto);
    pool
}

struct Ticker {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Ticker {
    fn start(engine: Engine, tick: Duration) -> wasmtime::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new().name("agenthost-epoch".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                engine.increment_epoch();
            }
        })?;
        Ok(Ticker { stop, handle })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
    }
}
