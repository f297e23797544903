//! The host: loads components (once per digest), and runs tools and agents
//! in a fresh `Store` per invocation under the component's limits.
//!
//! Trust boundary: everything a guest controls (its bytes, its exports, its
//! output, its traps, how long it runs, how much memory it asks for) is
//! turned into a structured [`InvokeError`] here; no guest behaviour can
//! panic the host or hold a worker past the call's deadline.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Store, Trap, UpdateDeadline, WasmBacktrace};

use crate::bindings::types::{RiskTier, ToolSpec, TraceContext};
use crate::bindings::{AgentPre, AgentSpec, Task, ToolPre};
use crate::brokers::model::{BuiltinModel, ModelBackend};
use crate::cache::{ArtifactCache, Lookup};
use crate::capabilities::{self, CallContext, Capability, Grant, InstanceState, ToolGrant, World};
use crate::engine::{AllocatorKind, EngineConfig, HostEngine};
use crate::error::{ComponentRef, ErrorKind, InvokeError};
use crate::limits::{LimitTracker, Limits};
use crate::schema::InputSchema;
use crate::trace::{self, Transcript};

/// How a host is set up.
#[derive(Clone)]
pub struct HostConfig {
    pub engine: EngineConfig,
    /// Limits given to components loaded without limits of their own.
    pub limits: Limits,
    /// Where precompiled artifacts are kept; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// The tenant top-level calls run for.
    pub tenant: String,
    pub model: Arc<dyn ModelBackend>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            engine: EngineConfig::default(),
            limits: Limits::default(),
            cache_dir: None,
            tenant: "default".to_owned(),
            model: Arc::new(BuiltinModel),
        }
    }
}

/// Counters a caller (a test, `/metrics`) can read.
#[derive(Debug, Default)]
struct Counters {
    compiled: AtomicU64,
    cache_hits: AtomicU64,
    cache_rejected: AtomicU64,
    memory_hits: AtomicU64,
    instantiations: AtomicU64,
}

/// A snapshot of the host's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Components compiled from wasm.
    pub compiled: u64,
    /// Components loaded from the precompiled cache on disk.
    pub cache_hits: u64,
    /// Cache files rejected (tampered, truncated, from another engine).
    pub cache_rejected: u64,
    /// Loads served by a component already compiled in this process.
    pub memory_hits: u64,
    /// Component instances created (one per invocation, plus `describe`).
    pub instantiations: u64,
}

/// Where a load got its compiled code from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "source", content = "reason")]
pub enum LoadSource {
    /// Compiled from the wasm bytes (and stored in the disk cache).
    Compiled,
    /// Deserialized from the disk cache after its checks passed.
    DiskCache,
    /// A cache file failed its checks and was replaced by a fresh compile.
    Recompiled(String),
    /// Already compiled in this process.
    Memory,
}

/// Options for [`Host::load`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// What the component may use; `None` grants its whole world (and, for
    /// an agent, every loaded tool).
    pub grant: Option<Grant>,
    /// Its limits; `None` takes the host's defaults.
    pub limits: Option<Limits>,
    /// A name for errors raised before the component has described itself
    /// (usually the file name).
    pub name_hint: Option<String>,
}

// One per loaded component, never per call: the size difference is harmless.
#[allow(clippy::large_enum_variant)]
enum Kind {
    Tool { pre: ToolPre<InstanceState>, spec: ToolSpec, schema: InputSchema },
    Agent { pre: AgentPre<InstanceState>, spec: AgentSpec },
}

/// A loaded, linked component, ready to be instantiated per call.
pub struct LoadedComponent {
    id: Arc<ComponentRef>,
    world: World,
    grant: Arc<Grant>,
    limits: Limits,
    imports: Vec<String>,
    exports: Vec<String>,
    source: LoadSource,
    kind: Kind,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("id", &self.id)
            .field("world", &self.world)
            .field("grant", &self.grant)
            .field("limits", &self.limits)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl LoadedComponent {
    pub fn id(&self) -> &ComponentRef {
        &self.id
    }

    pub fn world(&self) -> World {
        self.world
    }

    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Import names, e.g. `agenthost:platform/log@0.1.0`, `wasi:io/streams@0.2.4`.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    pub fn exports(&self) -> &[String] {
        &self.exports
    }

    pub fn source(&self) -> &LoadSource {
        &self.source
    }

    /// The tool's spec, for a tool.
    pub fn tool_spec(&self) -> Option<&ToolSpec> {
        match &self.kind {
            Kind::Tool { spec, .. } => Some(spec),
            Kind::Agent { .. } => None,
        }
    }

    /// The agent's spec, for an agent.
    pub fn agent_spec(&self) -> Option<&AgentSpec> {
        match &self.kind {
            Kind::Agent { spec, .. } => Some(spec),
            Kind::Tool { .. } => None,
        }
    }
}

/// What an agent run produced.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub output: Value,
    pub trace: TraceContext,
    pub transcript: Arc<Transcript>,
}

/// The agenthost runtime. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostInner>,
}

pub(crate) struct HostInner {
    engine: HostEngine,
    cache: Option<ArtifactCache>,
    compiled: Mutex<HashMap<String, Component>>,
    tools: RwLock<BTreeMap<String, Arc<LoadedComponent>>>,
    pub(crate) model: Arc<dyn ModelBackend>,
    limits: Limits,
    tenant: String,
    counters: Counters,
}

/// Where a call sits.
enum Parent<'a> {
    /// A top-level call: a trace of its own; an agent run also keeps a transcript.
    Root(Option<Arc<Transcript>>),
    /// A `tools.invoke` from inside another call.
    Caller(&'a CallContext),
}

/// The error the epoch callback raises when a call's deadline has passed.
#[derive(Debug)]
struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("wall-clock deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// The longest wall-clock limit a call may have.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Grace given to the deadline backstop beyond the epoch-based deadline.
const BACKSTOP_GRACE: Duration = Duration::from_millis(50);

impl Host {
    /// Builds a host: the engine (pooling if possible), its epoch ticker and
    /// the precompiled cache.
    ///
    /// # Errors
    ///
    /// When the engine cannot be built, the cache directory cannot be
    /// created, or the default limits do not fit the engine.
    pub fn new(config: HostConfig) -> Result<Self, InvokeError> {
        check_limits(&config.limits, &config.engine)?;
        let engine = HostEngine::new(config.engine.clone())
            .map_err(|e| InvokeError::internal(format!("cannot build the wasm engine: {e}")))?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(ArtifactCache::open(dir, &engine.fingerprint()).map_err(|e| {
                InvokeError::internal(format!("cannot open the artifact cache at {}: {e}", dir.display()))
            })?),
            None => None,
        };
        Ok(Host {
            inner: Arc::new(HostInner {
                engine,
                cache,
                compiled: Mutex::new(HashMap::new()),
                tools: RwLock::new(BTreeMap::new()),
                model: config.model,
                limits: config.limits,
                tenant: config.tenant,
                counters: Counters::default(),
            }),
        })
    }

    pub fn allocator(&self) -> AllocatorKind {
        self.inner.engine.allocator()
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        self.inner.engine.engine()
    }

    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        Stats {
            compiled: c.compiled.load(Ordering::Relaxed),
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            cache_rejected: c.cache_rejected.load(Ordering::Relaxed),
            memory_hits: c.memory_hits.load(Ordering::Relaxed),
            instantiations: c.instantiations.load(Ordering::Relaxed),
        }
    }

    /// Forgets the in-process compiled code of a digest (`sha256:<hex>`), so
    /// the next load of it comes from the disk cache or a fresh compile.
    /// Components already loaded keep working.
    pub fn evict(&self, digest: &str) {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        if let Ok(mut compiled) = self.inner.compiled.lock() {
            compiled.remove(hex);
        }
    }

    /// The precompiled-cache file for a component digest (`sha256:<hex>`), if
    /// the disk cache is on.
    pub fn cache_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.inner.cache.as_ref().map(|c| c.path_for(hex))
    }

    /// Loads a component file. See [`Host::load`].
    ///
    /// # Errors
    ///
    /// `load-failed` naming the file when it cannot be read, else as [`Host::load`].
    pub async fn load_file(
        &self,
        path: &Path,
        mut options: LoadOptions,
    ) -> Result<Arc<LoadedComponent>, InvokeError> {
        let bytes = std::fs::read(path)
            .map_err(|e| InvokeError::load(format!("cannot read {}: {e}", path.display())))?;
        if options.name_hint.is_none() {
            options.name_hint = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        }
        self.load(&bytes, options).await
    }

    /// Loads a component: checks it is a component of the `tool` or `agent`
    /// world, compiles it once per digest (or takes it from the verified
    /// disk cache), links exactly what its world and grant allow, and asks
    /// it to describe itself.
    ///
    /// # Errors
    ///
    /// `load-failed` with a message naming what is wrong: not wasm, a core
    /// module, another world, an import not provided or not granted, a
    /// `describe` that traps, an invalid input schema.
    pub async fn load(
        &self,
        bytes: &[u8],
        options: LoadOptions,
    ) -> Result<Arc<LoadedComponent>, InvokeError> {
        let digest_hex = hex::encode(Sha256::digest(bytes));
        let hint = options.name_hint.clone().unwrap_or_else(|| "component".to_owned());
        let provisional = Arc::new(ComponentRef {
            name: hint.clone(),
            version: "unknown".to_owned(),
            digest: format!("sha256:{digest_hex}"),
        });
        let fail = |message: String| InvokeError::load(message).with_component(&provisional);

        check_header(bytes).map_err(&fail)?;
        let limits = options.limits.unwrap_or(self.inner.limits);
        check_limits(&limits, self.inner.engine.config()).map_err(|e| e.with_component(&provisional))?;

        let (component, source) = self.compile(bytes, &digest_hex).await.map_err(&fail)?;
        let engine = self.engine();
        let component_type = component.component_type();
        let imports: Vec<String> = component_type.imports(engine).map(|(name, _)| name.to_owned()).collect();
        let exports: Vec<String> = component_type.exports(engine).map(|(name, _)| name.to_owned()).collect();
        let world = classify_world(&exports).map_err(&fail)?;
        let grant = Arc::new(options.grant.unwrap_or_else(|| Grant::world(world)));
        check_imports(world, &grant, &imports).map_err(&fail)?;

        let linker = capabilities::linker(engine, world, &grant)
            .map_err(|e| fail(format!("cannot build the linker: {e}")))?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| fail(format!("cannot link the component: {e:#}")))?;

        let (id, kind) = match world {
            World::Tool => {
                let pre = ToolPre::new(pre)
                    .map_err(|e| fail(format!("its exports do not match the {world} world: {e:#}")))?;
                let spec = self.describe_tool(&pre, &provisional, &grant, &limits).await?;
                check_name(&spec.name).map_err(&fail)?;
                let schema = InputSchema::compile(&spec.input_schema).map_err(|e| {
                    fail(format!("the input schema of tool `{}` is not usable: {e}", spec.name))
                })?;
                let id = Arc::new(ComponentRef {
                    name: spec.name.clone(),
                    version: spec.version.clone(),
                    digest: provisional.digest.clone(),
                });
                (id, Kind::Tool { pre, spec, schema })
            }
            World::Agent => {
                let pre = AgentPre::new(pre)
                    .map_err(|e| fail(format!("its exports do not match the {world} world: {e:#}")))?;
                let spec = self.describe_agent(&pre, &provisional, &grant, &limits).await?;
                check_name(&spec.name).map_err(&fail)?;
                let id = Arc::new(ComponentRef {
                    name: spec.name.clone(),
                    version: spec.version.clone(),
                    digest: provisional.digest.clone(),
                });
                (id, Kind::Agent { pre, spec })
            }
        };
        let loaded = LoadedComponent { id, world, grant, limits, imports, exports, source, kind };
        tracing::debug!(component = %loaded.id, world = world.name(), source = ?loaded.source, "loaded component");
        Ok(Arc::new(loaded))
    }

    /// Makes a loaded tool callable by agents (`tools.invoke`) under its name.
    ///
    /// # Errors
    ///
    /// `load-failed` when the component is not a tool or another tool of
    /// that name is registered.
    pub fn register_tool(&self, tool: Arc<LoadedComponent>) -> Result<(), InvokeError> {
        let Some(spec) = tool.tool_spec() else {
            return Err(
                InvokeError::load(format!("{} is an agent, not a tool", tool.id)).with_component(&tool.id)
            );
        };
        let mut tools = self
            .inner
            .tools
            .write()
            .map_err(|_| InvokeError::internal("the tool registry lock is poisoned"))?;
        if let Some(existing) = tools.get(&spec.name)
            && existing.id.digest != tool.id.digest
        {
            return Err(InvokeError::load(format!(
                "a tool named `{}` is already registered ({})",
                spec.name, existing.id
            ))
            .with_component(&tool.id));
        }
        tools.insert(spec.name.clone(), tool);
        Ok(())
    }

    /// The registered tool of that name.
    pub fn tool(&self, name: &str) -> Option<Arc<LoadedComponent>> {
        self.inner.tools.read().ok()?.get(name).cloned()
    }

    /// Invokes a tool with a JSON input under the tool's limits.
    ///
    /// # Errors
    ///
    /// `invalid-input` (the tool does not run), a limit (`timeout`,
    /// `out-of-fuel`, `memory-limit`, `stack-overflow`, `output-too-large`),
    /// `trap`, `invalid-output`, or the tool's own error.
    pub async fn invoke_tool(&self, tool: &LoadedComponent, input: &Value) -> Result<Value, InvokeError> {
        self.inner.invoke_tool(tool, input, Parent::Root(None)).await
    }

    /// Runs an agent on a JSON input under the agent's limits.
    ///
    /// # Errors
    ///
    /// As [`Host::invoke_tool`], for the agent itself; what its tool calls
    /// fail with is returned to the agent, which decides.
    pub async fn run_agent(&self, agent: &LoadedComponent, input: &Value) -> Result<RunOutput, InvokeError> {
        let Kind::Agent { pre, .. } = &agent.kind else {
            return Err(InvokeError::new(
                ErrorKind::InvalidInput,
                format!("{} is a tool, not an agent", agent.id),
            )
            .with_component(&agent.id));
        };
        let transcript = Arc::new(Transcript::default());
        let call = self.inner.call_context(
            &agent.id,
            &agent.grant,
            &agent.limits,
            Parent::Root(Some(transcript.clone())),
        );
        let trace = call.trace.clone();
        let task = Task { input: input.to_string(), context: trace.clone() };
        let mut store = self.inner.new_store(&agent.limits, call.clone());
        let outcome = tokio::time::timeout(backstop(&call), async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_run(&mut store, &task).await
        })
        .await;
        let outcome = self.inner.finish(&store, &agent.id, &agent.limits, outcome)?;
        let outcome = outcome.map_err(|e| InvokeError::from_guest(e, &agent.id))?;
        let output = self.inner.parse_output(agent, &outcome.output)?;
        Ok(RunOutput { output, trace, transcript })
    }

    async fn compile(&self, bytes: &[u8], digest_hex: &str) -> Result<(Component, LoadSource), String> {
        let inner = &self.inner;
        if let Some(component) = inner.compiled.lock().ok().and_then(|m| m.get(digest_hex).cloned()) {
            inner.counters.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok((component, LoadSource::Memory));
        }
        let mut rejected = None;
        if let Some(cache) = &inner.cache {
            match cache.load(self.engine(), digest_hex) {
                Lookup::Hit(component) => {
                    inner.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                    self.remember(digest_hex, &component);
                    return Ok((component, LoadSource::DiskCache));
                }
                Lookup::Miss => {}
                Lookup::Rejected(reason) => {
                    inner.counters.cache_rejected.fetch_add(1, Ordering::Relaxed);
                    rejected = Some(reason);
                }
            }
        }
        // Compiling takes milliseconds of CPU: keep it off the async workers.
        let engine = self.engine().clone();
        let owned = bytes.to_vec();
        let (component, artifact) = tokio::task::spawn_blocking(move || {
            let component =
                Component::new(&engine, &owned).map_err(|e| format!("not a valid component: {e:#}"))?;
            let artifact = engine.precompile_component(&owned).ok();
            Ok::<_, String>((component, artifact))
        })
        .await
        .map_err(|e| format!("the compile task failed: {e}"))??;
        inner.counters.compiled.fetch_add(1, Ordering::Relaxed);
        if let (Some(cache), Some(artifact)) = (&inner.cache, artifact)
            && let Err(e) = cache.store(digest_hex, &artifact)
        {
            tracing::warn!(error = %e, "could not write the precompiled artifact; continuing without it");
        }
        self.remember(digest_hex, &component);
        Ok((component, rejected.map_or(LoadSource::Compiled, LoadSource::Recompiled)))
    }

    fn remember(&self, digest_hex: &str, component: &Component) {
        if let Ok(mut compiled) = self.inner.compiled.lock() {
            compiled.insert(digest_hex.to_owned(), component.clone());
        }
    }

    async fn describe_tool(
        &self,
        pre: &ToolPre<InstanceState>,
        id: &Arc<ComponentRef>,
        grant: &Arc<Grant>,
        limits: &Limits,
    ) -> Result<ToolSpec, InvokeError> {
        let call = self.inner.call_context(id, grant, limits, Parent::Root(None));
        let mut store = self.inner.new_store(limits, call.clone());
        let outcome = tokio::time::timeout(backstop(&call), async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_describe(&mut store).await
        })
        .await;
        self.inner.finish(&store, id, limits, outcome).map_err(describe_failed)
    }

    async fn describe_agent(
        &self,
        pre: &AgentPre<InstanceState>,
        id: &Arc<ComponentRef>,
        grant: &Arc<Grant>,
        limits: &Limits,
    ) -> Result<AgentSpec, InvokeError> {
        let call = self.inner.call_context(id, grant, limits, Parent::Root(None));
        let mut store = self.inner.new_store(limits, call.clone());
        let outcome = tokio::time::timeout(backstop(&call), async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_describe(&mut store).await
        })
        .await;
        self.inner.finish(&store, id, limits, outcome).map_err(describe_failed)
    }
}

fn describe_failed(e: InvokeError) -> InvokeError {
    InvokeError {
        kind: ErrorKind::LoadFailed,
        message: format!("`describe` failed ({}): {}", e.kind, e.message),
        ..e
    }
}

fn backstop(call: &CallContext) -> Duration {
    call.deadline.saturating_duration_since(Instant::now()) + BACKSTOP_GRACE
}

impl HostInner {
    /// The context of one call of component `id`: a trace of its own at the
    /// top, or the caller's trace, run, transcript and (at most) deadline
    /// one hop deeper.
    fn call_context(
        &self,
        id: &Arc<ComponentRef>,
        grant: &Arc<Grant>,
        limits: &Limits,
        parent: Parent<'_>,
    ) -> Arc<CallContext> {
        let agent_id = format!("{}@{}", id.name, id.version);
        let own_deadline = Instant::now() + limits.timeout;
        let (trace, deadline, depth, transcript) = match parent {
            Parent::Root(transcript) => {
                (trace::new_trace(&self.tenant, &agent_id), own_deadline, 0, transcript)
            }
            Parent::Caller(caller) => (
                TraceContext { agent_id, ..caller.trace.clone() },
                caller.deadline.min(own_deadline),
                caller.depth + 1,
                caller.transcript.clone(),
            ),
        };
        Arc::new(CallContext {
            trace,
            component: Arc::clone(id),
            grant: Arc::clone(grant),
            deadline,
            depth,
            transcript,
        })
    }

    /// A fresh store for one call: the component's memory and table limits,
    /// its fuel budget, and the call's deadline enforced through the epoch.
    fn new_store(self: &Arc<Self>, limits: &Limits, call: Arc<CallContext>) -> Store<InstanceState> {
        self.counters.instantiations.fetch_add(1, Ordering::Relaxed);
        let deadline = call.deadline;
        let state = InstanceState::new(self.clone(), call, LimitTracker::new(limits));
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
        } else if let Some(asked) = state.limits.memory_refused {
            InvokeError::new(
                ErrorKind::MemoryLimit,
                format!(
                    "the guest asked for {asked} bytes of linear memory; its limit is {} bytes (raise it with --memory)",
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
                        "the guest used its whole fuel budget of {} units (raise it with --fuel)",
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
            e.backtrace = render_backtrace(backtrace);
        }
        e.with_component(id)
    }

    fn parse_output(&self, component: &LoadedComponent, output: &str) -> Result<Value, InvokeError> {
        let cap = component.limits.output_bytes;
        if output.len() as u64 > cap {
            return Err(InvokeError::new(
                ErrorKind::OutputTooLarge,
                format!("the output is {} bytes; the cap is {cap} bytes", output.len()),
            )
            .with_limit("output_bytes", cap)
            .with_component(&component.id));
        }
        serde_json::from_str(output).map_err(|e| {
            InvokeError::new(ErrorKind::InvalidOutput, format!("the output is not JSON: {e}"))
                .with_component(&component.id)
        })
    }

    /// The specs of the registered tools `grant` allows.
    pub(crate) fn tool_specs(&self, grant: &ToolGrant) -> Vec<ToolSpec> {
        let Ok(tools) = self.tools.read() else {
            return Vec::new();
        };
        tools
            .iter()
            .filter(|(name, _)| grant.allows(name))
            .filter_map(|(_, tool)| tool.tool_spec().cloned())
            .collect()
    }

    /// `tools.invoke` from a guest: the named tool, within the caller's
    /// deadline, in the caller's trace and run.
    pub(crate) async fn invoke_tool_from_guest(
        self: Arc<Self>,
        name: &str,
        input: &Value,
        caller: &CallContext,
    ) -> Result<Value, InvokeError> {
        let tool = self.tools.read().ok().and_then(|tools| tools.get(name).cloned());
        let Some(tool) = tool else {
            return Err(InvokeError::new(ErrorKind::NotFound, format!("no tool named `{name}` is loaded")));
        };
        self.invoke_tool(&tool, input, Parent::Caller(caller)).await
    }

    async fn invoke_tool(
        self: &Arc<Self>,
        tool: &LoadedComponent,
        input: &Value,
        parent: Parent<'_>,
    ) -> Result<Value, InvokeError> {
        let Kind::Tool { pre, schema, .. } = &tool.kind else {
            return Err(InvokeError::new(
                ErrorKind::InvalidInput,
                format!("{} is an agent, not a tool", tool.id),
            )
            .with_component(&tool.id));
        };
        schema
            .check(input)
            .map_err(|message| InvokeError::new(ErrorKind::InvalidInput, message).with_component(&tool.id))?;
        let call = self.call_context(&tool.id, &tool.grant, &tool.limits, parent);
        let input = input.to_string();
        let mut store = self.new_store(&tool.limits, call.clone());
        let outcome = tokio::time::timeout(backstop(&call), async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_invoke(&mut store, &input).await
        })
        .await;
        let result = self.finish(&store, &tool.id, &tool.limits, outcome)?;
        let output = result.map_err(|e| InvokeError::from_guest(e, &tool.id))?;
        self.parse_output(tool, &output)
    }
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
        format!("the call ran past its wall-clock deadline of {ms} ms (raise it with --timeout)"),
    )
    .with_limit("timeout_ms", ms)
    .with_component(id)
}

fn check_limits(limits: &Limits, engine: &EngineConfig) -> Result<(), InvokeError> {
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

/// Tells a component from a core module or anything else by its preamble.
fn check_header(bytes: &[u8]) -> Result<(), String> {
    const COMPONENT: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];
    const CORE_V1: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
    match (bytes.get(..4), bytes.get(4..8)) {
        (Some(b"\0asm"), Some(layer)) if layer == COMPONENT => Ok(()),
        (Some(b"\0asm"), Some(layer)) if layer == CORE_V1 => Err(
            "this is a core WebAssembly module, not a component: build it for the wasm32-wasip2 target (or wrap it with `wasm-tools component new`)"
                .to_owned(),
        ),
        (Some(b"\0asm"), _) => Err("unsupported WebAssembly binary version or layer".to_owned()),
        _ => Err(format!(
            "not a WebAssembly binary: it does not start with `\\0asm` ({} bytes)",
            bytes.len()
        )),
    }
}

fn classify_world(exports: &[String]) -> Result<World, String> {
    let has = |name: &str| exports.iter().any(|e| e == name);
    if has("describe") && has("invoke") {
        return Ok(World::Tool);
    }
    if has("describe") && has("run") {
        return Ok(World::Agent);
    }
    Err(format!(
        "it exports [{}], which is neither the {} world (`describe`, `invoke`) nor the {} world (`describe`, `run`)",
        exports.join(", "),
        World::Tool,
        World::Agent
    ))
}

/// WASI 0.2 packages the host links (with the empty context of
/// `capabilities::wasi`).
const WASI_PROVIDED: &[&str] =
    &["wasi:cli", "wasi:clocks", "wasi:filesystem", "wasi:io", "wasi:random", "wasi:sockets"];

/// The first gate: every import must be one the host provides, in the
/// component's world, and granted; the error names the import and the rule.
fn check_imports(world: World, grant: &Grant, imports: &[String]) -> Result<(), String> {
    for import in imports {
        if let Some(rest) = import.strip_prefix(&format!("{}/", crate::bindings::PACKAGE)) {
            let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
            if version != crate::bindings::VERSION {
                return Err(format!(
                    "it imports `{import}`, but this host provides {}@{}; rebuild it against guest-sdk {}",
                    crate::bindings::PACKAGE,
                    crate::bindings::VERSION,
                    crate::bindings::VERSION
                ));
            }
            if interface == "types" {
                continue;
            }
            let Some(capability) = Capability::from_interface(interface) else {
                return Err(format!("it imports `{import}`, which this host does not provide"));
            };
            if !world.imports().contains(&capability) {
                return Err(format!(
                    "it imports `{import}`, which is not part of the {world} world: a {} cannot use `{capability}`",
                    world.name()
                ));
            }
            if !grant.has(capability) {
                let granted: Vec<&str> = grant.capabilities.iter().map(|c| c.interface()).collect();
                return Err(format!(
                    "it imports `{import}`, which is not granted to it (granted: [{}])",
                    granted.join(", ")
                ));
            }
        } else {
            let package = import.split('/').next().unwrap_or(import);
            if !WASI_PROVIDED.contains(&package) {
                return Err(format!(
                    "it imports `{import}`, which this host does not provide (it provides {} and {})",
                    WASI_PROVIDED.join(", "),
                    crate::bindings::PACKAGE
                ));
            }
        }
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.len() <= 64;
    if valid {
        Ok(())
    } else {
        Err(format!("its name `{name}` is not of the form [a-z][a-z0-9-]* (at most 64 characters)"))
    }
}

/// The risk tier as its WIT name.
pub fn tier_name(tier: RiskTier) -> &'static str {
    match tier {
        RiskTier::Read => "read",
        RiskTier::WriteLow => "write-low",
        RiskTier::WriteHigh => "write-high",
        RiskTier::Critical => "critical",
    }
}
