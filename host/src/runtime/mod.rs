//! The host: loads components (once per digest), and runs tools and agents
//! in a fresh `Store` per invocation under the component's limits.
//!
//! Trust boundary: everything a guest controls (its bytes, its exports, its
//! output, its traps, how long it runs, how much memory it asks for) is
//! turned into a structured [`InvokeError`] here; no guest behaviour can
//! panic the host or hold a worker past the call's deadline.
//!
//! This file is the front door ([`Host`], [`HostConfig`],
//! [`LoadedComponent`], [`RunOutput`]); each stage of a call has a file of
//! its own: `load`, `context`, `call`, `gate`, `sandbox`, `evidence`, and
//! the tool `registry` and event subscriptions (`events`). See
//! `docs/architecture.md` for the path of one governed call through them.

mod call;
mod context;
mod events;
mod evidence;
mod gate;
mod load;
mod registry;
mod sandbox;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use wasmtime::component::Component;

use crate::audit::AuditLog;
use crate::bindings::types::{ToolSpec, TraceContext};
use crate::bindings::{AgentPre, AgentSpec, ToolPre};
use crate::brokers::events::{Dispatcher, EventBus, InProcessBus};
use crate::brokers::memory::{InProcessMemory, MemoryStore};
use crate::brokers::model::{BuiltinModel, ModelBackend};
use crate::cache::ArtifactCache;
use crate::capabilities::wasi::OpenMount;
use crate::capabilities::{self, Grant, ImportStatus, InstanceState, Services, World};
use crate::engine::{AllocatorKind, EngineConfig, HostEngine};
use crate::error::{ComponentRef, InvokeError};
use crate::governance::approvals::{self, Status};
use crate::governance::{
    self, ApprovalToken, ComponentManifest, Governance, KeyPair, LoadedPolicy, PolicyEngine, Tenant, Tier,
};
use crate::limits::Limits;
use crate::schema::InputSchema;
use crate::telemetry::Metrics;
use crate::trace::Transcript;
use registry::RegisteredTools;
use sandbox::check_limits;

pub use load::tier_name;

/// How a host is set up.
#[derive(Clone)]
pub struct HostConfig {
    pub engine: EngineConfig,
    /// Limits given to components loaded without limits of their own.
    pub limits: Limits,
    /// Where precompiled artifacts are kept; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// The key that authenticates cached artifacts (from the host's key
    /// directory, see [`crate::keystore`]); `None` uses a key made for this
    /// process, so the disk cache then serves this process only.
    pub cache_key: Option<[u8; 32]>,
    /// Offer precompiled artifacts to other nodes through the registry (and
    /// take theirs): only when every node is given the same `cache_key`
    /// (Secrets Manager), else each node's artifacts are of use to nobody.
    pub share_artifacts: bool,
    /// The development tenant's name, when `governance` is `None`.
    pub tenant: String,
    /// Tenants, grants, approvals and policy; `None` runs one development
    /// tenant (see [`Governance::development`]).
    pub governance: Option<Arc<Governance>>,
    pub model: Arc<dyn ModelBackend>,
    /// Tenants whose calls go to a model backend of their own.
    pub tenant_models: BTreeMap<String, Arc<dyn ModelBackend>>,
    /// The evidence plane; `None` runs without an audit trail (tests, benches).
    pub audit: Option<Arc<AuditLog>>,
    /// The memory backend; `None` keeps records in this process only.
    pub memory: Option<Arc<dyn MemoryStore>>,
    /// Where published events go; `None` is an in-process bus whose
    /// subscribers ([`Host::subscribe`]) run in this host.
    pub events: Option<Arc<dyn EventBus>>,
    /// CA certificates (name, PEM) that guests' HTTPS may chain to besides
    /// the web PKI roots, e.g. a corporate CA (`[egress] ca_files`).
    pub egress_ca: Vec<(String, Vec<u8>)>,
    /// The host's key, to sign the approval requests it records (so an
    /// approver can tell a request the host made from an edited file).
    pub request_key: Option<KeyPair>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            engine: EngineConfig::default(),
            limits: Limits::default(),
            cache_dir: None,
            cache_key: None,
            share_artifacts: false,
            tenant: "default".to_owned(),
            governance: None,
            model: Arc::new(BuiltinModel),
            tenant_models: BTreeMap::new(),
            audit: None,
            memory: None,
            events: None,
            egress_ca: Vec::new(),
            request_key: None,
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
    /// The tenant it is loaded for; `None` takes the host's default tenant.
    pub tenant: Option<String>,
    /// Its manifest ([`Host::load_file`] reads `<stem>.manifest.toml`).
    pub manifest: Option<ComponentManifest>,
    /// The verified policy manifest its manifest names.
    pub policy: Option<Arc<LoadedPolicy>>,
}

/// Who makes a top-level call and what they present.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// The caller, a person or service of the tenant (`User::"<tenant>/<name>"`
    /// to policies; the requester of any approval). Default `anonymous`.
    pub principal: Option<String>,
    /// The key id that authenticated `principal` (the CLI's `--as NAME
    /// --key KEY`); with it, nobody approves their own request even under
    /// another name. An embedder that authenticates callers its own way
    /// leaves it `None` and vouches for `principal`.
    pub principal_key: Option<String>,
    /// Approval tokens presented with the call.
    pub approvals: Vec<ApprovalToken>,
    /// Re-submits the call of a pending approval request: the call runs in
    /// that request's run, with the tokens its approvers signed.
    pub approval_request: Option<String>,
    /// Continues this W3C trace (32 hex digits) instead of starting one: an
    /// event's subscriber runs in the trace of the run that published it.
    pub trace_id: Option<String>,
}

/// The governed identity of a component: what every call of it carries.
#[derive(Clone)]
pub(crate) struct Subject {
    id: Arc<ComponentRef>,
    grant: Arc<Grant>,
    tenant: Arc<Tenant>,
    policy: Arc<PolicyEngine>,
    prompts: Arc<[String]>,
    /// The grant's mounts, opened once at load.
    mounts: Arc<[OpenMount]>,
}

// One per loaded component, never per call: the size difference is harmless.
#[allow(clippy::large_enum_variant)]
enum Kind {
    Tool {
        pre: ToolPre<InstanceState>,
        spec: ToolSpec,
        schema: InputSchema,
        /// Input fields redacted in approval previews: the paths its schema
        /// marks sensitive, and the names its policy stack does.
        sensitive: (Vec<Vec<String>>, Vec<String>),
    },
    Agent {
        pre: AgentPre<InstanceState>,
        spec: AgentSpec,
    },
}

/// A loaded, linked component, ready to be instantiated per call.
pub struct LoadedComponent {
    subject: Subject,
    world: World,
    /// Its effective tier: a tool's manifest tier or the higher one its
    /// `describe()` declares; an agent's manifest tier (default write-low).
    tier: Option<Tier>,
    limits: Limits,
    imports: Vec<String>,
    /// How each import is served: live, or denied with the rule.
    import_status: Vec<ImportStatus>,
    exports: Vec<String>,
    source: LoadSource,
    kind: Kind,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("id", &self.subject.id)
            .field("tenant", &self.subject.tenant.id())
            .field("world", &self.world)
            .field("tier", &self.tier)
            .field("grant", &self.subject.grant)
            .field("limits", &self.limits)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl LoadedComponent {
    pub fn id(&self) -> &ComponentRef {
        &self.subject.id
    }

    /// The tenant it was loaded for.
    pub fn tenant(&self) -> &str {
        self.subject.tenant.id()
    }

    /// Its effective risk tier.
    pub fn tier(&self) -> Option<Tier> {
        self.tier
    }

    /// Where its policy comes from.
    pub fn policy_source(&self) -> &str {
        self.subject.policy.source()
    }

    /// The system-prompt layers its policy packs put before every model call.
    pub fn prompt_layers(&self) -> &[String] {
        &self.subject.prompts
    }

    pub fn world(&self) -> World {
        self.world
    }

    pub fn grant(&self) -> &Grant {
        &self.subject.grant
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

    /// Each import, live or denied (linked to a refusal) and why.
    pub fn import_status(&self) -> &[ImportStatus] {
        &self.import_status
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

struct HostInner {
    engine: HostEngine,
    /// One linker per world: what a component may use is decided per call.
    tool_linker: wasmtime::component::Linker<InstanceState>,
    agent_linker: wasmtime::component::Linker<InstanceState>,
    cache: Option<ArtifactCache>,
    /// Artifacts go to and come from the registry (configured, with a
    /// configured key: one made for this process seals for nobody else).
    shares_artifacts: bool,
    compiled: Mutex<HashMap<String, Component>>,
    /// Artifacts adopted from the registry and already loaded, waiting for
    /// the load they were fetched for.
    adopted: Mutex<HashMap<String, Component>>,
    /// Registered tools by (tenant, name).
    tools: RwLock<BTreeMap<(String, String), Arc<LoadedComponent>>>,
    /// What host calls reach: memory, events, models, tools, TLS.
    services: Arc<Services>,
    in_process: Arc<InProcessBus>,
    dispatcher: Dispatcher,
    /// Where per-minute quota use is kept across processes (the memory
    /// backend, when the host has one of its own).
    quota_ledger: Option<Arc<dyn governance::QuotaLedger>>,
    audit: Option<Arc<AuditLog>>,
    /// Signs the approval requests this host records.
    request_key: Option<KeyPair>,
    metrics: Arc<Metrics>,
    limits: Limits,
    governance: Arc<Governance>,
    /// Shared by every call that presents no approval token.
    no_approvals: Arc<[ApprovalToken]>,
    /// When the pending approvals were last counted for the metrics (Unix seconds).
    pending_counted: AtomicU64,
    counters: Counters,
}

/// How often `/metrics` recounts the pending approvals, in seconds.
pub const PENDING_REFRESH_SECS: u64 = 15;

/// The longest wall-clock limit a call may have.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// A cache key made once per process, for hosts given none.
fn process_cache_key() -> [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    *KEY.get_or_init(rand::random)
}

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
            Some(dir) => Some(
                ArtifactCache::open(
                    dir,
                    &engine.fingerprint(),
                    config.cache_key.unwrap_or_else(process_cache_key),
                )
                .map_err(|e| {
                    InvokeError::internal(format!("cannot open the artifact cache at {}: {e}", dir.display()))
                })?,
            ),
            None => None,
        };
        let governance = match config.governance {
            Some(governance) => governance,
            None => Arc::new(Governance::development(&config.tenant, None).map_err(InvokeError::internal)?),
        };
        let in_process = Arc::new(InProcessBus::default());
        let events: Arc<dyn EventBus> = config.events.unwrap_or_else(|| in_process.clone());
        let dispatcher = Dispatcher::default();
        let linker = |world| {
            capabilities::linker(engine.engine(), world)
                .map_err(|e| InvokeError::internal(format!("cannot build the {world} linker: {e:#}")))
        };
        let tls = capabilities::http_send::tls_config(&config.egress_ca).map_err(InvokeError::internal)?;
        let tool_linker = linker(World::Tool)?;
        let agent_linker = linker(World::Agent)?;
        // Approvals shared through the memory backend get their records now.
        if let (Some(approvals), Some(store)) = (governance.approvals(), &config.memory)
            && !approvals.is_connected()
        {
            approvals
                .connect(Arc::new(crate::brokers::memory::MemoryApprovals::new(store.clone())))
                .map_err(|e| InvokeError::internal(e.to_string()))?;
        }
        let quota_ledger = config.memory.as_ref().map(|store| {
            Arc::new(crate::brokers::memory::MemoryQuotaLedger::new(store.clone()))
                as Arc<dyn governance::QuotaLedger>
        });
        let memory = config.memory.unwrap_or_else(|| Arc::new(InProcessMemory::default()));
        let models = capabilities::Models::new(config.model, config.tenant_models);
        Ok(Host {
            // The services hold the host weakly (for `tools.invoke`): the
            // host owns them, not the other way round.
            inner: Arc::new_cyclic(|host| HostInner {
                engine,
                tool_linker,
                agent_linker,
                cache,
                shares_artifacts: config.share_artifacts && config.cache_key.is_some(),
                compiled: Mutex::new(HashMap::new()),
                adopted: Mutex::new(HashMap::new()),
                tools: RwLock::new(BTreeMap::new()),
                services: Arc::new(Services {
                    memory,
                    events,
                    models,
                    tools: Arc::new(RegisteredTools(host.clone())),
                    tls,
                }),
                quota_ledger,
                in_process,
                dispatcher,
                audit: config.audit,
                request_key: config.request_key,
                metrics: Arc::new(Metrics::new()),
                limits: config.limits,
                governance,
                no_approvals: Arc::from([]),
                pending_counted: AtomicU64::new(0),
                counters: Counters::default(),
            }),
        })
    }

    pub fn governance(&self) -> &Arc<Governance> {
        &self.inner.governance
    }

    /// Every call's limits on this host, before a manifest lowers them.
    pub fn default_limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The host's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Every metric in the Prometheus text format, approvals pending included.
    /// The pending count is read from the approvals store at most every
    /// [`PENDING_REFRESH_SECS`] (a shared store answers a listing with many
    /// reads); scrapes in between see the last count.
    pub async fn metrics_text(&self) -> String {
        let now = approvals::now_secs();
        let last = self.inner.pending_counted.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= PENDING_REFRESH_SECS;
        if due
            && self
                .inner
                .pending_counted
                .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            && let Some(store) = self.inner.governance.approvals()
            && let Ok(requests) = store.list(None).await
        {
            let now = approvals::now_secs();
            let pending =
                requests.iter().filter(|r| r.status == Status::Pending && r.expires_at > now).count();
            self.inner.metrics.set_approvals_pending(i64::try_from(pending).unwrap_or(i64::MAX));
        }
        self.inner.metrics.encode()
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
        if let Ok(mut adopted) = self.inner.adopted.lock() {
            adopted.remove(hex);
        }
    }

    /// The engine fingerprint precompiled artifacts are made for, when the
    /// disk cache is on.
    pub fn artifact_fingerprint(&self) -> Option<String> {
        if !self.inner.shares_artifacts {
            return None;
        }
        let cache = self.inner.cache.as_ref()?;
        // The key's id in the name: nodes with different keys keep apart
        // instead of overwriting each other's artifacts.
        Some(format!("{}-{}", cache.fingerprint()?, cache.key_id()))
    }

    /// The sealed precompiled artifact of a digest in this host's cache,
    /// for another node holding the same cache key (at most `limit` bytes).
    pub fn sealed_artifact(&self, digest: &str, limit: u64) -> Option<Vec<u8>> {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.inner.cache.as_ref().and_then(|c| c.sealed(hex, limit))
    }

    /// Whether this host's cache holds an artifact for a digest.
    pub fn has_artifact(&self, digest: &str) -> bool {
        self.cache_path(digest).is_some_and(|p| p.is_file())
    }

    /// Takes a sealed artifact made by another node: kept only if it
    /// verifies with this host's cache key for this digest and engine.
    ///
    /// # Errors
    ///
    /// No disk cache, or why the artifact was refused.
    pub fn adopt_artifact(&self, digest: &str, sealed: &[u8]) -> Result<(), String> {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        let cache = self.inner.cache.as_ref().ok_or("this host keeps no artifact cache")?;
        // Loaded now, from the bytes just checked: the load that follows
        // finds it in memory instead of reading and checking it again.
        let component = cache.adopt_and_load(self.engine(), hex, sealed)?;
        if let Ok(mut adopted) = self.inner.adopted.lock() {
            adopted.insert(hex.to_owned(), component);
        }
        Ok(())
    }

    /// The precompiled-cache file for a component digest (`sha256:<hex>`), if
    /// the disk cache is on.
    pub fn cache_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.inner.cache.as_ref().map(|c| c.path_for(hex))
    }
}
