//! The sandbox of one call: a fresh store with the component's limits, its
//! fuel and the call's deadline; the guest export called in it; whatever
//! happens there (a trap, a limit, a deadline, a guest error, an output too
//! large) turned into an [`InvokeError`] naming it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;
use wasmtime::{Store, Trap, UpdateDeadline, WasmBacktrace};

use crate::bindings::types::{Error as WitError, ToolSpec};
use crate::bindings::{AgentPre, AgentSpec, Outcome, Task, ToolPre};
use crate::capabilities::{CallContext, InstanceState};
use crate::engine::EngineConfig;
use crate::error::{ComponentRef, ErrorKind, InvokeError};
use crate::governance::Tenant;
use crate::limits::{LimitTracker, Limits};

use super::{HostInner, LoadedComponent, MAX_TIMEOUT, Subject};

/// The error the epoch callback raises when a call's deadline has passed.
#[derive(Debug)]
struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("wall-clock deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// Grace given to the deadline backstop beyond the epoch-based deadline.
const BACKSTOP_GRACE: Duration = Duration::from_millis(50);

/// The error a guest returned, as the host passes it on: its message
/// capped, and an `approval-required` accepted only for a request the host
/// issued in this run (a guest cannot send a caller to approve something
/// it made up).
pub(super) fn guest_error(
    error: crate::bindings::types::Error,
    id: &ComponentRef,
    call: &CallContext,
) -> InvokeError {
    let e = InvokeError::from_guest(error, id);
    match &e.approval_request {
        Some(request) if !call.was_issued(request) => InvokeError::new(
            ErrorKind::InvalidOutput,
            format!(
                "it answered approval-required naming request `{}`, which the host did not issue in this run; the answer is refused",
                crate::text::clip(request)
            ),
        )
        .with_component(id),
        _ => e,
    }
}

fn backstop(call: &CallContext) -> Duration {
    call.deadline.saturating_duration_since(Instant::now()) + BACKSTOP_GRACE
}

/// Most frames kept in an error's backtrace.
const MAX_FRAMES: usize = 24;

/// Guest frames, innermost first, demangled, with runs of the same frame
/// (deep recursion) folded into one line.
fn render_backtrace(backtrace: &WasmBacktrace) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut last: Option<(String, usize)> = None;
    let flush = |lines: &mut Vec<String>, (frame, count): (String, usize)| {
        lines.push(if count > 1 { format!("{frame} (×{count})") } else { frame });
    };
    for frame in backtrace.frames() {
        let module = frame.module().name().unwrap_or("<module>");
        let func = frame.func_name().map_or_else(
            || format!("<function {}>", frame.func_index()),
            |name| format!("{:#}", rustc_demangle::demangle(name)),
        );
        let rendered = format!("{module}!{func}");
        match &mut last {
            Some((previous, count)) if *previous == rendered => *count += 1,
            _ => {
                if let Some(done) = last.take() {
                    flush(&mut lines, done);
                }
                last = Some((rendered, 1));
            }
        }
    }
    if let Some(done) = last {
        flush(&mut lines, done);
    }
    if lines.len() > MAX_FRAMES {
        let hidden = lines.len() - MAX_FRAMES;
        lines.truncate(MAX_FRAMES);
        lines.push(format!("… {hidden} more frames"));
    }
    lines
}

fn timeout_error(id: &ComponentRef, limits: &Limits) -> InvokeError {
    let ms = limits.timeout_ms();
    InvokeError::new(
        ErrorKind::Timeout,
        format!("the call ran past its wall-clock deadline of {ms} ms (the host's `[limits] timeout_ms` or `--timeout`; a manifest may only lower it)"),
    )
    .with_limit("timeout_ms", ms)
    .with_component(id)
}

pub(super) fn check_limits(limits: &Limits, engine: &EngineConfig) -> Result<(), InvokeError> {
    if limits.memory_bytes > engine.max_memory_bytes {
        return Err(InvokeError::new(
            ErrorKind::InvalidInput,
            format!(
                "a memory limit of {} bytes is above the host's largest instance memory of {} bytes",
                limits.memory_bytes, engine.max_memory_bytes
            ),
        ));
    }
    if limits.timeout > MAX_TIMEOUT {
        return Err(InvokeError::new(
            ErrorKind::InvalidInput,
            format!(
                "a timeout of {} ms is above the host's maximum of {} ms",
                limits.timeout_ms(),
                MAX_TIMEOUT.as_millis()
            ),
        ));
    }
    if limits.timeout.is_zero() || limits.fuel == 0 {
        return Err(InvokeError::new(
            ErrorKind::InvalidInput,
            "the timeout and the fuel budget must be above zero",
        ));
    }
    Ok(())
}

/// The future of one export call, borrowing its store.
pub(super) type StoreFuture<'s, T> = Pin<Box<dyn Future<Output = wasmtime::Result<T>> + Send + 's>>;

/// A guest export, called once on a fresh instance in a fresh store.
pub(super) trait Export: Send {
    type Output: Send;

    /// Instantiates the component in `store` and calls the export. (Boxed:
    /// an `impl Future` here cannot yet be proven `Send` where the call is
    /// spawned, rust-lang/rust#100013; one allocation per call.)
    fn call<'s>(self, store: &'s mut Store<InstanceState>) -> StoreFuture<'s, Self::Output>
    where
        Self: 's;
}

/// A tool's `describe`.
pub(super) struct DescribeTool<'a>(pub &'a ToolPre<InstanceState>);
/// An agent's `describe`.
pub(super) struct DescribeAgent<'a>(pub &'a AgentPre<InstanceState>);
/// A tool's `invoke`, with the input as JSON text.
pub(super) struct Invoke<'a>(pub &'a ToolPre<InstanceState>, pub &'a String);
/// An agent's `run`.
pub(super) struct Run<'a>(pub &'a AgentPre<InstanceState>, pub &'a Task);

impl Export for DescribeTool<'_> {
    type Output = ToolSpec;

    fn call<'s>(self, store: &'s mut Store<InstanceState>) -> StoreFuture<'s, Self::Output>
    where
        Self: 's,
    {
        Box::pin(async move { self.0.instantiate_async(&mut *store).await?.call_describe(&mut *store).await })
    }
}

impl Export for DescribeAgent<'_> {
    type Output = AgentSpec;

    fn call<'s>(self, store: &'s mut Store<InstanceState>) -> StoreFuture<'s, Self::Output>
    where
        Self: 's,
    {
        Box::pin(async move { self.0.instantiate_async(&mut *store).await?.call_describe(&mut *store).await })
    }
}

impl Export for Invoke<'_> {
    type Output = Result<String, WitError>;

    fn call<'s>(self, store: &'s mut Store<InstanceState>) -> StoreFuture<'s, Self::Output>
    where
        Self: 's,
    {
        Box::pin(async move {
            self.0.instantiate_async(&mut *store).await?.call_invoke(&mut *store, self.1).await
        })
    }
}

impl Export for Run<'_> {
    type Output = Result<Outcome, WitError>;

    fn call<'s>(self, store: &'s mut Store<InstanceState>) -> StoreFuture<'s, Self::Output>
    where
        Self: 's,
    {
        Box::pin(
            async move { self.0.instantiate_async(&mut *store).await?.call_run(&mut *store, self.1).await },
        )
    }
}

impl HostInner {
    /// Calls `export` of `subject` in a fresh store under `limits` and the
    /// call's deadline (the epoch first, a timer as the backstop), charges
    /// the fuel it burnt to the tenant (a `describe()` included), and turns
    /// what happened into the export's answer or an [`InvokeError`]. The
    /// store comes back for what the call left in it (its cost, egress
    /// refusals).
    pub(super) async fn run_in_store<E: Export>(
        self: &Arc<Self>,
        subject: &Subject,
        limits: &Limits,
        call: &Arc<CallContext>,
        export: E,
    ) -> (Result<E::Output, InvokeError>, Store<InstanceState>) {
        let mut store = self.new_store(limits, call.clone());
        let outcome = tokio::time::timeout(backstop(call), export.call(&mut store)).await;
        self.charge_fuel(&store, &subject.tenant, limits);
        let result = self.finish(&store, &subject.id, limits, outcome);
        (result, store)
    }

    /// Counts the fuel a call burnt against its tenant's per-minute budget.
    fn charge_fuel(&self, store: &Store<InstanceState>, tenant: &Tenant, limits: &Limits) {
        if tenant.fuel.limit().is_some() {
            let left = store.get_fuel().unwrap_or(0);
            tenant.fuel.record(limits.fuel.saturating_sub(left));
        }
    }

    /// A fresh store for one call: the component's memory and table limits,
    /// its fuel budget, and the call's deadline enforced through the epoch.
    fn new_store(self: &Arc<Self>, limits: &Limits, call: Arc<CallContext>) -> Store<InstanceState> {
        self.counters.instantiations.fetch_add(1, Ordering::Relaxed);
        let deadline = call.deadline;
        let tracker = LimitTracker::new(limits).with_pool(call.tenant.memory_pool.clone());
        let state = InstanceState::new(self.services.clone(), call, tracker);
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|s| &mut s.limits);
        // Fuel is enabled on the engine, so this cannot fail.
        let _ = store.set_fuel(limits.fuel);
        store.set_epoch_deadline(1);
        // Every epoch tick the guest yields to the executor (so a spinning
        // guest never holds a worker thread) and is stopped once the
        // deadline has passed.
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Turns the outcome of a call into the result or a structured error.
    fn finish<R>(
        &self,
        store: &Store<InstanceState>,
        id: &ComponentRef,
        limits: &Limits,
        outcome: Result<wasmtime::Result<R>, tokio::time::error::Elapsed>,
    ) -> Result<R, InvokeError> {
        let dropped = store.data().log.dropped();
        if dropped > 0 {
            tracing::warn!(component = %id, dropped, "dropped guest log events over the per-call budget");
        }
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.classify(&e, store.data(), id, limits)),
            Err(_elapsed) => Err(timeout_error(id, limits)),
        }
    }

    fn classify(
        &self,
        error: &wasmtime::Error,
        state: &InstanceState,
        id: &ComponentRef,
        limits: &Limits,
    ) -> InvokeError {
        let trap = error.downcast_ref::<Trap>().copied();
        let mut e = if error.downcast_ref::<DeadlineExceeded>().is_some() || trap == Some(Trap::Interrupt) {
            timeout_error(id, limits)
        } else if let Some(pool) = state.limits.pool_refused {
            InvokeError::new(
                ErrorKind::MemoryLimit,
                format!(
                    "tenant `{}`'s instances already hold its memory pool of {pool} bytes (quota memory_pool_bytes)",
                    state.call.tenant.id()
                ),
            )
            .with_limit("memory_pool_bytes", pool)
        } else if let Some(asked) = state.limits.memory_refused {
            InvokeError::new(
                ErrorKind::MemoryLimit,
                format!(
                    "the guest asked for {asked} bytes of linear memory; its limit is {} bytes (the host's `[limits] memory_bytes` or `--memory`)",
                    limits.memory_bytes
                ),
            )
            .with_limit("memory_bytes", limits.memory_bytes)
        } else if let Some(asked) = state.limits.table_refused {
            InvokeError::new(
                ErrorKind::MemoryLimit,
                format!(
                    "the guest asked for a table of {asked} elements; its limit is {}",
                    limits.table_elements
                ),
            )
            .with_limit("table_elements", limits.table_elements)
        } else {
            match trap {
                Some(Trap::OutOfFuel) => InvokeError::new(
                    ErrorKind::OutOfFuel,
                    format!(
                        "the guest used its whole fuel budget of {} units (the host's `[limits] fuel` or `--fuel`)",
                        limits.fuel
                    ),
                )
                .with_limit("fuel", limits.fuel),
                Some(Trap::StackOverflow) => {
                    let stack = self.engine.config().max_wasm_stack as u64;
                    InvokeError::new(
                        ErrorKind::StackOverflow,
                        format!("the guest overflowed its {stack}-byte stack"),
                    )
                    .with_limit("max_wasm_stack_bytes", stack)
                }
                Some(trap) => InvokeError::new(ErrorKind::Trap, format!("the guest trapped: {trap}")),
                None => match error.downcast_ref::<InvokeError>() {
                    Some(inner) => inner.clone(),
                    None => InvokeError::new(ErrorKind::Trap, format!("the call failed: {error:#}")),
                },
            }
        };
        if let Some(backtrace) = error.downcast_ref::<WasmBacktrace>() {
            e.backtrace = render_backtrace(backtrace).into();
        }
        e.with_component(id)
    }

    pub(super) fn parse_output(
        &self,
        component: &LoadedComponent,
        output: &str,
    ) -> Result<Value, InvokeError> {
        let cap = component.limits.output_bytes;
        if output.len() as u64 > cap {
            return Err(InvokeError::new(
                ErrorKind::OutputTooLarge,
                format!("the output is {} bytes; the cap is {cap} bytes", output.len()),
            )
            .with_limit("output_bytes", cap)
            .with_component(component.id()));
        }
        serde_json::from_str(output).map_err(|e| {
            InvokeError::new(ErrorKind::InvalidOutput, format!("the output is not JSON: {e}"))
                .with_component(component.id())
        })
    }
}
