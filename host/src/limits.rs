//! The limits every invocation carries, and the resource limiter that
//! enforces the memory and table ones inside the `Store`.
//!
//! Each limit protects the host from a guest: memory and tables from
//! exhaustion of host memory, fuel from a CPU-bound guest, the wall-clock
//! deadline from a guest that never returns, the output cap from a guest
//! that answers with more than a caller can hold.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use wasmtime::ResourceLimiter;

/// Per-invocation limits. [`Limits::default`] suits a small tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Total linear memory of one instance, in bytes.
    pub memory_bytes: u64,
    /// Elements in any one table.
    pub table_elements: u64,
    /// Fuel units (about one per wasm instruction) for one call.
    pub fuel: u64,
    /// Wall-clock time for one call, instantiation included.
    pub timeout: Duration,
    /// Largest output accepted from the guest, in bytes.
    pub output_bytes: u64,
    /// Host calls (memory, model, events, tools, audit, HTTP) one call may
    /// make: each may write audit records and reach a backend, so a guest
    /// gets a bounded number per call even where no per-minute quota is set.
    pub host_calls: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            table_elements: 20_000,
            fuel: 2_000_000_000,
            timeout: Duration::from_secs(10),
            output_bytes: 1 << 20,
            host_calls: 10_000,
        }
    }
}

impl Limits {
    /// These limits with what `[limits]` in host.toml sets (the host
    /// refuses, when it starts, a zero fuel or a limit above the engine's).
    pub fn with_settings(self, settings: &crate::settings::LimitSettings) -> Limits {
        Limits {
            memory_bytes: settings.memory_bytes.unwrap_or(self.memory_bytes),
            fuel: settings.fuel.unwrap_or(self.fuel),
            timeout: settings.timeout_ms.map_or(self.timeout, Duration::from_millis),
            output_bytes: settings.output_bytes.unwrap_or(self.output_bytes),
            host_calls: settings.host_calls.unwrap_or(self.host_calls),
            ..self
        }
    }

    pub fn timeout_ms(&self) -> u64 {
        u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX)
    }
}

/// Enforces [`Limits::memory_bytes`] over all memories of a store and
/// [`Limits::table_elements`] per table, and remembers a refusal so that the
/// trap that follows (a Rust guest aborts when allocation fails) can be
/// reported as `memory-limit` rather than as an anonymous trap.
#[derive(Debug)]
pub struct LimitTracker {
    memory_limit: usize,
    table_limit: usize,
    memory_in_use: usize,
    /// The size a refused memory growth asked for.
    pub memory_refused: Option<usize>,
    /// The tenant's shared memory pool, if it has one.
    pool: Option<Arc<MemoryPool>>,
    /// Set when a growth was refused because the pool was spent.
    pub pool_refused: Option<u64>,
    pub table_refused: Option<usize>,
}

impl LimitTracker {
    pub fn new(limits: &Limits) -> Self {
        LimitTracker {
            memory_limit: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
            table_limit: usize::try_from(limits.table_elements).unwrap_or(usize::MAX),
            memory_in_use: 0,
            memory_refused: None,
            table_refused: None,
            pool: None,
            pool_refused: None,
        }
    }

    /// Draws this instance's memory from a tenant's pool as well.
    #[must_use]
    pub fn with_pool(mut self, pool: Option<Arc<MemoryPool>>) -> Self {
        self.pool = pool;
        self
    }

    /// Peak linear memory of the instance, in bytes.
    pub fn memory_in_use(&self) -> usize {
        self.memory_in_use
    }
}

/// Count caps for one component instance (a Rust component has a handful of
/// core instances, memories and tables).
const MAX_INSTANCES: usize = 64;
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 16;

impl ResourceLimiter for LimitTracker {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let total = self.memory_in_use.saturating_add(growth);
        if total > self.memory_limit || maximum.is_some_and(|max| desired > max) {
            self.memory_refused = Some(total);
            return Ok(false);
        }
        if let Some(pool) = &self.pool
            && !pool.take(growth as u64)
        {
            self.pool_refused = Some(pool.limit);
            return Ok(false);
        }
        self.memory_in_use = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_limit || maximum.is_some_and(|max| desired > max) {
            self.table_refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

impl Drop for LimitTracker {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.give_back(self.memory_in_use as u64);
        }
    }
}

/// Linear memory shared by every live instance of one tenant
/// (`quotas.memory_pool_bytes`): an instance's growth is refused once the
/// tenant's instances together hold the pool, and given back when the
/// instance is dropped.
#[derive(Debug)]
pub struct MemoryPool {
    pub limit: u64,
    used: AtomicU64,
}

impl MemoryPool {
    pub fn new(limit: u64) -> Self {
        MemoryPool { limit, used: AtomicU64::new(0) }
    }

    /// Bytes held by live instances.
    pub fn in_use(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn take(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| Some(used.saturating_sub(bytes)));
    }
}
