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
use tracing::Instrument as _;
use wasmtime::component::Component;
use wasmtime::{Store, Trap, UpdateDeadline, WasmBacktrace};

use crate::audit::{self, AuditLog};
use crate::bindings::types::{RiskTier, ToolSpec, TraceContext};
use crate::bindings::{AgentPre, AgentSpec, Task, ToolPre};
use crate::brokers::events::{Dispatcher, Envelope, EventBus, InProcessBus, Subscription};
use crate::brokers::memory::{InProcessMemory, MemoryStore};
use crate::brokers::model::{BuiltinModel, ModelBackend};
use crate::cache::{ArtifactCache, Lookup};
use crate::capabilities::wasi::OpenMount;
use crate::capabilities::{self, CallContext, Grant, ImportStatus, InstanceState, Refusal, Services, World};
use crate::engine::{AllocatorKind, EngineConfig, HostEngine};
use crate::error::{ComponentRef, ErrorKind, InvokeError};
use crate::governance::approvals::{self, ApprovalRequest, CallBinding, Status};
use crate::governance::policy::{Action, EntityRef, Query, Value as PolicyValue, tier_rank};
use crate::governance::{
    self, ApprovalToken, ComponentManifest, Governance, KeyPair, LoadedPolicy, Names, PolicyEngine, Tenant,
    Tier,
};
use crate::keys::{canonical_json, digest};
use crate::limits::{LimitTracker, Limits};
use crate::schema::InputSchema;
use crate::telemetry::{self, Metrics};
use crate::trace::{self, Transcript};

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
    compiled: Mutex<HashMap<String, Component>>,
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
    counters: Counters,
}

/// The tools registered with a host, as `tools.invoke` reaches them.
struct RegisteredTools(std::sync::Weak<HostInner>);

impl capabilities::ToolRunner for RegisteredTools {
    fn specs(&self, tenant: &str, allowed: &Names) -> Vec<ToolSpec> {
        self.0.upgrade().map(|host| host.tool_specs(tenant, allowed)).unwrap_or_default()
    }

    fn invoke<'a>(
        &'a self,
        name: &'a str,
        input: &'a Value,
        caller: &'a CallContext,
    ) -> capabilities::services::BoxFuture<'a, Result<Value, InvokeError>> {
        // Boxed: a tool call runs a component, which could call a tool.
        Box::pin(async move {
            let Some(host) = self.0.upgrade() else {
                return Err(InvokeError::internal("the host is shutting down"));
            };
            host.invoke_tool_from_guest(name, input, caller).await
        })
    }
}

/// Where a call sits.
enum Parent<'a> {
    /// A top-level call: a trace of its own (or the run of the approval
    /// request it re-submits); an agent run also keeps a transcript.
    Root(Option<Arc<Transcript>>, &'a Root),
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

/// Who makes a tool call, for the policy.
enum Principal<'a> {
    /// A person or service, at the top.
    User(&'a str),
    /// The component whose `tools.invoke` this is.
    Component(&'a CallContext),
}

impl Principal<'_> {
    fn entity(&self, tenant: &str) -> EntityRef {
        match self {
            Principal::User(name) => EntityRef::new("User", format!("{tenant}/{name}")),
            Principal::Component(caller) => caller.principal(),
        }
    }
}

/// A top-level call's caller, run and tokens, resolved from [`CallOptions`].
pub(crate) struct Root {
    principal: String,
    requested_by: String,
    requested_by_key: Option<String>,
    run_id: Option<String>,
    trace_id: Option<String>,
    approvals: Arc<[ApprovalToken]>,
    /// Approval requests the host issues in this run.
    issued: Arc<Mutex<Vec<String>>>,
}

impl Root {
    /// `describe` calls at load time.
    fn host() -> Self {
        Root {
            principal: "agenthost".into(),
            requested_by: "agenthost".into(),
            requested_by_key: None,
            run_id: None,
            trace_id: None,
            approvals: Arc::from([]),
            issued: Arc::default(),
        }
    }
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
                compiled: Mutex::new(HashMap::new()),
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
                counters: Counters::default(),
            }),
        })
    }

    pub fn governance(&self) -> &Arc<Governance> {
        &self.inner.governance
    }

    /// The host's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Every metric in the Prometheus text format, approvals pending included.
    pub fn metrics_text(&self) -> String {
        if let Some(store) = self.inner.governance.approvals()
            && let Ok(requests) = store.list(None)
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
        if options.manifest.is_none() && options.grant.is_none() {
            let manifest_path = ComponentManifest::path_for(path);
            if manifest_path.exists() {
                let (manifest, policy) =
                    self.inner.governance.read_manifest(&manifest_path).map_err(InvokeError::load)?;
                options.manifest = Some(manifest);
                if options.policy.is_none() {
                    options.policy = policy;
                }
            } else if self.inner.governance.is_configured() {
                return Err(InvokeError::load(format!(
                    "{} has no manifest ({} is missing); write one with `agenthost manifest init {}` and review it",
                    path.display(),
                    manifest_path.display(),
                    path.display()
                )));
            }
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
        let governance = &self.inner.governance;
        let tenant_id = options.tenant.as_deref().unwrap_or(governance.default_tenant());
        let tenant = governance.tenant(tenant_id).map_err(&fail)?.clone();

        check_header(bytes).map_err(&fail)?;
        let manifest = options.manifest.as_ref();
        if let Some(manifest) = manifest
            && manifest.digest != provisional.digest
        {
            return Err(fail(format!(
                "its manifest is for {} but this file is {}: the component changed since the manifest was written",
                manifest.digest, provisional.digest
            )));
        }
        let (policy, loaded_policy) =
            governance.policy_for(&tenant, options.policy.as_ref()).map_err(&fail)?;
        let mut limits = options.limits.unwrap_or(self.inner.limits);
        apply_quotas(&mut limits, &tenant, loaded_policy.as_deref());
        check_limits(&limits, self.inner.engine.config()).map_err(|e| e.with_component(&provisional))?;

        let (component, source) = self.compile(bytes, &digest_hex).await.map_err(&fail)?;
        let engine = self.engine();
        let component_type = component.component_type();
        let imports: Vec<String> = component_type.imports(engine).map(|(name, _)| name.to_owned()).collect();
        let exports: Vec<String> = component_type.exports(engine).map(|(name, _)| name.to_owned()).collect();
        let world = classify_world(&exports).map_err(&fail)?;
        if let Some(manifest) = manifest
            && manifest.world() != world
        {
            return Err(fail(format!(
                "its manifest says world `{}` but it implements the {world} world",
                manifest.world
            )));
        }
        // An agent's tier comes from its manifest alone (its describe()
        // declares none); a tool's from its manifest, raised (never
        // lowered) by what it declares once described.
        let manifest_tier = match world {
            World::Tool => manifest.and_then(|m| m.risk_tier),
            World::Agent => Some(manifest.and_then(|m| m.risk_tier).unwrap_or(Tier::WriteLow)),
        };
        let explicit_grant = options.grant;
        let grant_for = |tier: Option<Tier>| match &explicit_grant {
            Some(grant) => Ok(grant.clone()),
            None => governance::effective_grant(
                &tenant,
                manifest,
                world,
                tier,
                loaded_policy.as_deref(),
                governance.config_dir(),
            ),
        };
        let grant = grant_for(manifest_tier).map_err(&fail)?;
        // Imports outside the world fail here; inside it, every interface
        // is linked and the grant decides per call.
        capabilities::import_report(world, &grant, &imports).map_err(&fail)?;
        let linker = match world {
            World::Tool => &self.inner.tool_linker,
            World::Agent => &self.inner.agent_linker,
        };
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| fail(format!("cannot link the component: {e:#}")))?;
        let prompts: Arc<[String]> =
            loaded_policy.as_ref().map_or_else(|| Arc::from([]), |p| p.prompts().into());
        // describe() runs before any gate has seen a call: with `log` only.
        let describer = Subject {
            id: provisional.clone(),
            grant: Arc::new(grant.for_describe()),
            tenant: tenant.clone(),
            policy: policy.clone(),
            prompts: prompts.clone(),
            mounts: Arc::from([]),
        };

        let (kind, tier, name, version) = match world {
            World::Tool => {
                let pre = ToolPre::new(pre)
                    .map_err(|e| fail(format!("its exports do not match the {world} world: {e:#}")))?;
                let spec = self.describe_tool(&pre, &describer, &limits).await?;
                let declared = Tier::from(spec.risk_tier);
                let tier = match manifest_tier {
                    Some(signed) if declared < signed => {
                        return Err(fail(format!(
                            "it declares risk tier {declared} in describe(), lower than the {signed} of its manifest; a tool may raise its tier, never lower it"
                        )));
                    }
                    Some(signed) => signed.max(declared),
                    None => declared,
                };
                let schema_text = manifest
                    .and_then(|m| m.input_schema.clone())
                    .unwrap_or_else(|| spec.input_schema.clone());
                let schema = InputSchema::compile(&schema_text).map_err(|e| {
                    fail(format!("the input schema of tool `{}` is not usable: {e}", spec.name))
                })?;
                let sensitive = (
                    serde_json::from_str::<Value>(&schema_text)
                        .map(|s| approvals::sensitive_paths(&s))
                        .unwrap_or_default(),
                    loaded_policy
                        .as_ref()
                        .and_then(|p| p.manifest.constraints.sensitive_fields.clone())
                        .unwrap_or_default(),
                );
                let (name, version) = (spec.name.clone(), spec.version.clone());
                (Kind::Tool { pre, spec, schema, sensitive }, tier, name, version)
            }
            World::Agent => {
                let pre = AgentPre::new(pre)
                    .map_err(|e| fail(format!("its exports do not match the {world} world: {e:#}")))?;
                let spec = self.describe_agent(&pre, &describer, &limits).await?;
                let (name, version) = (spec.name.clone(), spec.version.clone());
                (Kind::Agent { pre, spec }, manifest_tier.unwrap_or(Tier::WriteLow), name, version)
            }
        };
        check_name(&name).map_err(&fail)?;
        check_version(&version).map_err(&fail)?;
        if let Some(manifest) = manifest
            && (manifest.name != name || manifest.version != version)
        {
            return Err(fail(format!(
                "it describes itself as {name}@{version} but its manifest is for {}@{}",
                manifest.name, manifest.version
            )));
        }
        // Granted (and checked against the stack's max_tier) by the tier it
        // runs at, which its describe() may have raised.
        let grant = if Some(tier) == manifest_tier { grant } else { grant_for(Some(tier)).map_err(&fail)? };
        let import_status = capabilities::import_report(world, &grant, &imports).map_err(&fail)?;
        let mounts = grant
            .mounts
            .iter()
            .map(|m| OpenMount::open(&m.host, &m.guest, m.writable))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(format!("tenant `{}`: {e}", tenant.id())))?;
        let id = Arc::new(ComponentRef { name, version, digest: provisional.digest.clone() });
        let subject = Subject {
            id,
            grant: Arc::new(grant),
            tenant: tenant.clone(),
            policy,
            prompts,
            mounts: mounts.into(),
        };
        let loaded = LoadedComponent {
            subject,
            world,
            tier: Some(tier),
            limits,
            imports,
            import_status,
            exports,
            source,
            kind,
        };
        self.inner.record_load(&loaded).map_err(|e| InvokeError::internal(e).with_component(loaded.id()))?;
        tracing::debug!(component = %loaded.id(), tenant = loaded.tenant(), world = world.name(), source = ?loaded.source, "loaded component");
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
                InvokeError::load(format!("{} is an agent, not a tool", tool.id())).with_component(tool.id())
            );
        };
        let mut tools = self
            .inner
            .tools
            .write()
            .map_err(|_| InvokeError::internal("the tool registry lock is poisoned"))?;
        let key = (tool.tenant().to_owned(), spec.name.clone());
        if let Some(existing) = tools.get(&key)
            && existing.id().digest != tool.id().digest
        {
            return Err(InvokeError::load(format!(
                "tenant `{}` already has a tool named `{}` ({})",
                key.0,
                spec.name,
                existing.id()
            ))
            .with_component(tool.id()));
        }
        tools.insert(key, tool);
        Ok(())
    }

    /// Runs `agent` for every event of its tenant whose topic matches
    /// `topic` (a name or a `prefix.*` pattern), in the publisher's trace.
    /// Its input is `{"event": {id, topic, tenant, source, published_at,
    /// attributes, payload}}` (the payload as JSON when it is JSON, else
    /// base64). A run that fails leaves the event for redelivery; a run that
    /// succeeded is not repeated for the same event id.
    ///
    /// # Errors
    ///
    /// `invalid-input` when the component is not an agent.
    pub fn subscribe(&self, topic: &str, agent: Arc<LoadedComponent>) -> Result<(), InvokeError> {
        if agent.world() != World::Agent {
            return Err(InvokeError::new(
                ErrorKind::InvalidInput,
                format!("{} is a tool; only agents subscribe to events", agent.id()),
            ));
        }
        let host = Arc::downgrade(&self.inner);
        let subscriber = agent.clone();
        let handler: crate::brokers::events::Handler = Arc::new(move |event: Envelope| {
            let host = host.clone();
            let agent = subscriber.clone();
            Box::pin(async move {
                let inner = host.upgrade().ok_or("the host is gone")?;
                let host = Host { inner };
                let payload = event.payload_bytes();
                let payload = serde_json::from_slice::<Value>(&payload)
                    .unwrap_or_else(|_| Value::String(event.payload.clone()));
                let attributes: serde_json::Map<String, Value> =
                    event.attributes.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
                let input = serde_json::json!({ "event": {
                    "id": event.id, "topic": event.topic, "tenant": event.tenant, "source": event.source,
                    "published_at": event.published_at, "attributes": attributes, "payload": payload,
                }});
                let options = CallOptions {
                    principal: Some(format!("event:{}", event.source)),
                    trace_id: Some(event.trace_id.clone()),
                    ..CallOptions::default()
                };
                host.run_agent_with(&agent, &input, &options).await.map(|_| ()).map_err(|e| e.to_string())
            })
        });
        self.inner.dispatcher.subscribe(Subscription {
            tenant: agent.tenant().to_owned(),
            topic: crate::governance::names::Patterns(vec![topic.to_owned()]),
            handler,
        });
        // In-process events are served from the first subscription on.
        let _ = self.inner.dispatcher.serve_in_process(&self.inner.in_process);
        Ok(())
    }

    /// Delivers the events of an SQS queue (fed by the SQS bus or by an
    /// EventBridge rule) to this host's subscribers, until the task is aborted.
    pub fn serve_sqs(&self, client: aws_sdk_sqs::Client, queue_url: String) -> tokio::task::JoinHandle<()> {
        self.inner.dispatcher.serve_sqs(client, queue_url)
    }

    /// The registered tool of that name in the host's default tenant.
    pub fn tool(&self, name: &str) -> Option<Arc<LoadedComponent>> {
        self.tenant_tool(self.inner.governance.default_tenant(), name)
    }

    /// The registered tool of that name in a tenant.
    pub fn tenant_tool(&self, tenant: &str, name: &str) -> Option<Arc<LoadedComponent>> {
        self.inner.tools.read().ok()?.get(&(tenant.to_owned(), name.to_owned())).cloned()
    }

    /// Invokes a tool with a JSON input under the tool's limits, as an
    /// anonymous caller presenting no approval.
    ///
    /// # Errors
    ///
    /// As [`Host::invoke_tool_with`].
    pub async fn invoke_tool(
        &self,
        tool: &Arc<LoadedComponent>,
        input: &Value,
    ) -> Result<Value, InvokeError> {
        self.invoke_tool_with(tool, input, &CallOptions::default()).await
    }

    /// Invokes a tool with a JSON input, governed: the policy decides, the
    /// tier's obligations are met (write quota, approvals), the tenant's
    /// quotas are charged, then it runs under its limits.
    ///
    /// # Errors
    ///
    /// `denied` (policy, tier, tenant scope, a bad approval token),
    /// `approval-required` (with the pending request's id),
    /// `limit-exceeded` (a tenant quota), `invalid-input` (the tool does not
    /// run), a limit (`timeout`, `out-of-fuel`, `memory-limit`,
    /// `stack-overflow`, `output-too-large`), `trap`, `invalid-output`, or
    /// the tool's own error.
    pub async fn invoke_tool_with(
        &self,
        tool: &Arc<LoadedComponent>,
        input: &Value,
        options: &CallOptions,
    ) -> Result<Value, InvokeError> {
        let input = input.clone();
        self.top_level(tool, options, move |inner, tool, root| async move {
            inner.invoke_tool(&tool, &input, Parent::Root(None, &root)).await
        })
        .await
    }

    /// Runs an agent on a JSON input, as an anonymous caller.
    ///
    /// # Errors
    ///
    /// As [`Host::run_agent_with`].
    pub async fn run_agent(
        &self,
        agent: &Arc<LoadedComponent>,
        input: &Value,
    ) -> Result<RunOutput, InvokeError> {
        self.run_agent_with(agent, input, &CallOptions::default()).await
    }

    /// Runs an agent on a JSON input under the agent's limits. Its tool
    /// calls are governed like top-level ones, in the same run, with the
    /// approval tokens presented here.
    ///
    /// # Errors
    ///
    /// As [`Host::invoke_tool_with`], for the agent itself; what its tool
    /// calls fail with is returned to the agent, which decides.
    pub async fn run_agent_with(
        &self,
        agent: &Arc<LoadedComponent>,
        input: &Value,
        options: &CallOptions,
    ) -> Result<RunOutput, InvokeError> {
        let input = input.clone();
        self.top_level(agent, options, move |inner, agent, root| async move {
            inner.run_agent(&agent, &input, &root).await
        })
        .await
    }

    /// A top-level call: resolves the caller and tokens, admits it under
    /// the tenant's quotas, and runs it — on the tenant's own worker pool
    /// under `namespace` isolation.
    async fn top_level<R, F, Fut>(
        &self,
        component: &Arc<LoadedComponent>,
        options: &CallOptions,
        call: F,
    ) -> Result<R, InvokeError>
    where
        F: FnOnce(Arc<HostInner>, Arc<LoadedComponent>, Root) -> Fut,
        Fut: Future<Output = Result<R, InvokeError>> + Send + 'static,
        R: Send + 'static,
    {
        let root = self.inner.root(component, options)?;
        // What other processes used this minute counts before admission.
        self.inner.sync_quotas(&component.subject.tenant).await;
        let permit = match self.inner.admit(component) {
            Ok(permit) => permit,
            Err(e) => {
                self.inner.record_refusal(component, &root, &e);
                self.inner.settle().await?;
                return Err(e);
            }
        };
        let run = call(self.inner.clone(), component.clone(), root);
        let result = match component.subject.tenant.workers() {
            Some(workers) => workers
                .spawn(async move {
                    let _permit = permit;
                    run.await
                })
                .await
                .map_err(|e| InvokeError::internal(format!("the tenant's worker failed: {e}")))?,
            None => {
                let _permit = permit;
                run.await
            }
        };
        self.inner.sync_quotas(&component.subject.tenant).await;
        // The caller learns the outcome only once its evidence is on disk.
        self.inner.settle().await?;
        result
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
        subject: &Subject,
        limits: &Limits,
    ) -> Result<ToolSpec, InvokeError> {
        let root = Root::host();
        let call = self.inner.describe_context(subject, limits, &root);
        let mut store = self.inner.new_store(limits, call.clone());
        let outcome = tokio::time::timeout(backstop(&call), async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_describe(&mut store).await
        })
        .await;
        // What describe() burns counts against the tenant like any call.
        self.inner.charge_fuel(&store, &subject.tenant, limits);
        let outcome = self.inner.finish(&store, &subject.id, limits, outcome);
        described(&call, &subject.id, outcome)
    }

    async fn describe_agent(
        &self,
        pre: &AgentPre<InstanceState>,
        subject: &Subject,
        limits: &Limits,
    ) -> Result<AgentSpec, InvokeError> {
        let root = Root::host();
        let call = self.inner.describe_context(subject, limits, &root);
        let mut store = self.inner.new_store(limits, call.clone());
        let outcome = tokio::time::timeout(backstop(&call), async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_describe(&mut store).await
        })
        .await;
        // What describe() burns counts against the tenant like any call.
        self.inner.charge_fuel(&store, &subject.tenant, limits);
        let outcome = self.inner.finish(&store, &subject.id, limits, outcome);
        described(&call, &subject.id, outcome)
    }
}

/// The outcome of `describe()`: a component that reached for anything but
/// `log` (each such call trapped, so none of it happened) is not loaded.
fn described<T>(
    call: &CallContext,
    id: &ComponentRef,
    outcome: Result<T, InvokeError>,
) -> Result<T, InvokeError> {
    let tried = call.violations();
    if !tried.is_empty() {
        return Err(InvokeError::load(format!(
            "it tried to use {} while describing itself; describe() runs with `log` only and no files, env or network, so it is not loaded (what it tried did not happen)",
            tried.join(", ")
        ))
        .with_component(id));
    }
    outcome.map_err(describe_failed)
}

/// The error a guest returned, as the host passes it on: its message
/// capped, and an `approval-required` accepted only for a request the host
/// issued in this run (a guest cannot send a caller to approve something
/// it made up).
fn guest_error(error: crate::bindings::types::Error, id: &ComponentRef, call: &CallContext) -> InvokeError {
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

fn describe_failed(e: InvokeError) -> InvokeError {
    InvokeError {
        kind: ErrorKind::LoadFailed,
        message: format!("`describe` failed ({}): {}", e.kind, e.message),
        ..e
    }
}

/// The span of one invocation; a top-level one joins the run's W3C trace.
fn invocation_span(call: &CallContext) -> tracing::Span {
    let span = tracing::info_span!(
        "invoke",
        otel.name = %format!("invoke {}", call.trace.agent_id),
        tenant = call.tenant.id(),
        component = %call.trace.agent_id,
        trace_id = %call.trace.trace_id,
        run_id = %call.trace.run_id,
        depth = call.depth,
    );
    if call.depth == 0 {
        telemetry::join_run(&span, &call.trace.trace_id);
    }
    span
}

fn backstop(call: &CallContext) -> Duration {
    call.deadline.saturating_duration_since(Instant::now()) + BACKSTOP_GRACE
}

impl HostInner {
    /// The context of one call of component `id`: a trace of its own at the
    /// top, or the caller's trace, run, transcript and (at most) deadline
    /// one hop deeper.
    fn call_context(&self, subject: &Subject, limits: &Limits, parent: Parent<'_>) -> Arc<CallContext> {
        self.context(subject, limits, parent, false)
    }

    /// The context of `describe()`: the subject's describe grant, and every
    /// platform call but `log` traps.
    fn describe_context(&self, subject: &Subject, limits: &Limits, root: &Root) -> Arc<CallContext> {
        self.context(subject, limits, Parent::Root(None, root), true)
    }

    fn context(
        &self,
        subject: &Subject,
        limits: &Limits,
        parent: Parent<'_>,
        describing: bool,
    ) -> Arc<CallContext> {
        let id = &subject.id;
        let agent_id = id.label();
        let own_deadline = Instant::now() + limits.timeout;
        let (trace, deadline, depth, transcript, (requested_by, requested_by_key), approvals, issued) =
            match parent {
                Parent::Root(transcript, root) => {
                    let mut trace = trace::new_trace(subject.tenant.id(), &agent_id);
                    if let Some(run_id) = &root.run_id {
                        trace.run_id.clone_from(run_id);
                    }
                    if let Some(trace_id) = &root.trace_id {
                        trace.trace_id.clone_from(trace_id);
                    }
                    (
                        trace,
                        own_deadline,
                        0,
                        transcript,
                        (root.requested_by.clone(), root.requested_by_key.clone()),
                        root.approvals.clone(),
                        root.issued.clone(),
                    )
                }
                Parent::Caller(caller) => (
                    TraceContext { agent_id, ..caller.trace.clone() },
                    caller.deadline.min(own_deadline),
                    caller.depth + 1,
                    caller.transcript.clone(),
                    (caller.requested_by.clone(), caller.requested_by_key.clone()),
                    caller.approvals.clone(),
                    caller.issued_approvals.clone(),
                ),
            };
        Arc::new(CallContext {
            trace,
            component: Arc::clone(id),
            grant: Arc::clone(&subject.grant),
            tenant: Arc::clone(&subject.tenant),
            policy: Arc::clone(&subject.policy),
            prompts: Arc::clone(&subject.prompts),
            requested_by,
            requested_by_key,
            approvals,
            deadline,
            depth,
            transcript,
            audit: self.audit.clone(),
            metrics: self.metrics.clone(),
            describing,
            violations: Mutex::default(),
            host_calls: AtomicU64::new(0),
            host_call_budget: limits.host_calls,
            issued_approvals: issued,
            mounts: subject.mounts.clone(),
        })
    }

    async fn run_agent(
        self: &Arc<Self>,
        agent: &LoadedComponent,
        input: &Value,
        root: &Root,
    ) -> Result<RunOutput, InvokeError> {
        let Kind::Agent { pre, .. } = &agent.kind else {
            return Err(InvokeError::new(
                ErrorKind::InvalidInput,
                format!("{} is a tool, not an agent", agent.id()),
            )
            .with_component(agent.id()));
        };
        let transcript = Arc::new(Transcript::default());
        let call =
            self.call_context(&agent.subject, &agent.limits, Parent::Root(Some(transcript.clone()), root));
        let span = invocation_span(&call);
        let started = Instant::now();
        let result = self.run_agent_in(agent, pre, input, &call).instrument(span).await;
        self.observe(&call, agent, started, &result);
        self.record_call(&call, agent, input, &result)?;
        let (output, trace) = result?;
        Ok(RunOutput { output, trace, transcript })
    }

    async fn run_agent_in(
        self: &Arc<Self>,
        agent: &LoadedComponent,
        pre: &AgentPre<InstanceState>,
        input: &Value,
        call: &Arc<CallContext>,
    ) -> Result<(Value, TraceContext), InvokeError> {
        // An agent's tier obliges as a tool's does: write-high and critical
        // agents run only with approvals.
        if agent.tier.is_some_and(|t| t >= Tier::WriteHigh) {
            self.obligations(agent, input, call)?;
        }
        let trace = call.trace.clone();
        let task = Task { input: input.to_string(), context: trace.clone() };
        let mut store = self.new_store(&agent.limits, call.clone());
        let outcome = tokio::time::timeout(backstop(call), async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_run(&mut store, &task).await
        })
        .await;
        self.charge_fuel(&store, &agent.subject.tenant, &agent.limits);
        self.cost(&store, agent);
        let outcome = self.finish(&store, agent.id(), &agent.limits, outcome)?;
        let outcome = outcome.map_err(|e| guest_error(e, agent.id(), call))?;
        let output = self.parse_output(agent, &outcome.output)?;
        Ok((output, trace))
    }

    /// Resolves a top-level call's options: the caller, and for a
    /// re-submission the pending request's run and tokens.
    fn root(&self, component: &LoadedComponent, options: &CallOptions) -> Result<Root, InvokeError> {
        let tenant = component.tenant();
        self.governance.tenant(tenant).map_err(|e| InvokeError::denied(e).with_component(component.id()))?;
        let principal = options.principal.clone().unwrap_or_else(|| "anonymous".to_owned());
        let mut root = Root {
            requested_by: principal.clone(),
            requested_by_key: options.principal_key.clone(),
            principal,
            run_id: None,
            trace_id: options.trace_id.clone().filter(|t| {
                t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) && t.bytes().any(|b| b != b'0')
            }),
            approvals: if options.approvals.is_empty() {
                self.no_approvals.clone()
            } else {
                options.approvals.clone().into()
            },
            issued: Arc::default(),
        };
        if let Some(id) = &options.approval_request {
            let store = self.governance.approvals().ok_or_else(|| {
                InvokeError::internal("this host has no approvals store (it runs without a data directory)")
            })?;
            let request = store.get(id).map_err(|e| InvokeError::new(ErrorKind::NotFound, e))?;
            if request.tenant != tenant {
                return Err(InvokeError::denied(format!(
                    "approval request `{id}` belongs to tenant `{}`, not `{tenant}`",
                    request.tenant
                )));
            }
            if request.status == Status::Denied {
                let who: Vec<&str> =
                    request.decisions.iter().filter(|d| !d.approved).map(|d| d.approver.as_str()).collect();
                return Err(InvokeError::denied(format!(
                    "approval request `{id}` was denied by {}",
                    who.join(", ")
                )));
            }
            let mut tokens: Vec<ApprovalToken> = root.approvals.to_vec();
            tokens.extend(request.tokens.iter().cloned());
            root.approvals = tokens.into();
            root.run_id = Some(request.run_id.clone());
            root.requested_by = request.requested_by.clone();
            root.requested_by_key = request.requested_by_key.clone();
        }
        Ok(root)
    }

    /// Admits a top-level call under its tenant's concurrency and fuel
    /// quotas; the permit is held until the call ends.
    fn admit(
        &self,
        component: &LoadedComponent,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, InvokeError> {
        let tenant = &component.subject.tenant;
        if let Err(limit) = tenant.fuel.check() {
            return Err(InvokeError::new(
                ErrorKind::LimitExceeded,
                format!("tenant `{}` used its fuel budget of {limit} units for this minute (quota fuel_per_minute)", tenant.id()),
            )
            .with_limit("fuel_per_minute", limit)
            .with_component(component.id()));
        }
        let Some(semaphore) = &tenant.concurrency else { return Ok(None) };
        match semaphore.clone().try_acquire_owned() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => {
                let limit = u64::from(tenant.config.quotas.concurrent_invocations.unwrap_or(0));
                Err(InvokeError::new(
                    ErrorKind::LimitExceeded,
                    format!(
                        "tenant `{}` already runs {limit} invocations (quota concurrent_invocations)",
                        tenant.id()
                    ),
                )
                .with_limit("concurrent_invocations", limit)
                .with_component(component.id()))
            }
        }
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
            e.backtrace = render_backtrace(backtrace).into();
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
            .with_component(component.id()));
        }
        serde_json::from_str(output).map_err(|e| {
            InvokeError::new(ErrorKind::InvalidOutput, format!("the output is not JSON: {e}"))
                .with_component(component.id())
        })
    }

    /// The specs of the tenant's registered tools that `grant` allows.
    fn tool_specs(&self, tenant: &str, grant: &Names) -> Vec<ToolSpec> {
        let Ok(tools) = self.tools.read() else {
            return Vec::new();
        };
        tools
            .iter()
            .filter(|((owner, name), _)| owner == tenant && grant.allows(name))
            .filter_map(|(_, tool)| tool.tool_spec().cloned())
            .collect()
    }

    /// `tools.invoke` from a guest: the named tool of the caller's tenant,
    /// within the caller's deadline, in the caller's trace and run.
    async fn invoke_tool_from_guest(
        self: Arc<Self>,
        name: &str,
        input: &Value,
        caller: &CallContext,
    ) -> Result<Value, InvokeError> {
        let key = (caller.tenant.id().to_owned(), name.to_owned());
        let tool = self.tools.read().ok().and_then(|tools| tools.get(&key).cloned());
        let Some(tool) = tool else {
            return Err(InvokeError::new(
                ErrorKind::NotFound,
                format!("tenant `{}` has no tool named `{name}`", caller.tenant.id()),
            ));
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
                format!("{} is an agent, not a tool", tool.id()),
            )
            .with_component(tool.id()));
        };
        let principal = match &parent {
            Parent::Root(_, root) => Principal::User(&root.principal),
            Parent::Caller(caller) => Principal::Component(caller),
        };
        let call = self.call_context(&tool.subject, &tool.limits, parent);
        let span = invocation_span(&call);
        let started = Instant::now();
        let result = self.run_tool(tool, pre, schema, input, &call, principal).instrument(span).await;
        self.observe(&call, tool, started, &result);
        self.record_call(&call, tool, input, &result)?;
        result
    }

    /// Latency and outcome into the metrics.
    fn observe<T>(
        &self,
        call: &CallContext,
        component: &LoadedComponent,
        started: Instant,
        result: &Result<T, InvokeError>,
    ) {
        let outcome = match result {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.kind.to_string(),
        };
        let id = component.id();
        self.metrics.invocation(call.tenant.id(), &id.name, &outcome, started.elapsed().as_secs_f64());
    }

    /// Fuel and memory an instance used, into the metrics.
    fn cost(&self, store: &Store<InstanceState>, component: &LoadedComponent) {
        let used = component.limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let memory = store.data().limits.memory_in_use() as u64;
        self.metrics.cost(component.tenant(), &component.id().name, used, memory);
    }

    async fn run_tool(
        self: &Arc<Self>,
        tool: &LoadedComponent,
        pre: &ToolPre<InstanceState>,
        schema: &InputSchema,
        input: &Value,
        call: &Arc<CallContext>,
        principal: Principal<'_>,
    ) -> Result<Value, InvokeError> {
        schema.check(input).map_err(|message| {
            InvokeError::new(ErrorKind::InvalidInput, message).with_component(tool.id())
        })?;
        self.govern(tool, input, call, principal)?;
        let input = input.to_string();
        let mut store = self.new_store(&tool.limits, call.clone());
        let outcome = tokio::time::timeout(backstop(call), async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_invoke(&mut store, &input).await
        })
        .await;
        self.charge_fuel(&store, &tool.subject.tenant, &tool.limits);
        self.cost(&store, tool);
        let result = self.finish(&store, tool.id(), &tool.limits, outcome)?;
        let output = result.map_err(|e| {
            let mut e = guest_error(e, tool.id(), call);
            let denials = store.data().egress_denials();
            if !denials.is_empty() {
                e.message = format!("{} (host: {})", e.message, denials.join("; "));
            }
            e
        })?;
        self.parse_output(tool, &output)
    }

    /// The audit records of one invocation: the call with its input digest
    /// and status, and the limit it hit, if any.
    fn record_call<T>(
        &self,
        call: &CallContext,
        component: &LoadedComponent,
        input: &Value,
        result: &Result<T, InvokeError>,
    ) -> Result<(), InvokeError> {
        if self.audit.is_none() {
            return Ok(());
        }
        let id = component.id();
        let (outcome, error) = match result {
            Ok(_) => ("ok".to_owned(), None),
            Err(e) => (e.kind.to_string(), Some(e)),
        };
        let what = serde_json::json!({
            "component": id.label(),
            "digest": id.digest,
            "world": component.world.name(),
            "tier": component.tier.map(Tier::as_str),
            "input_digest": digest(canonical_json(input).as_bytes()),
            "depth": call.depth,
            "error": error.map(|e| e.message.clone()),
            "policies": error.map(|e| e.policies.clone()).unwrap_or_default(),
            "approval_request": error.and_then(|e| e.approval_request.clone()),
        });
        let failed = |e: String| InvokeError::internal(e).with_component(id);
        call.evidence(audit::Kind::ToolCall, &outcome, what, None).map_err(failed)?;
        if let Some(limit) = error.and_then(|e| e.limit.as_ref()) {
            let what = serde_json::json!({ "component": id.label(), "limit": limit });
            let why = error.map(|e| e.message.clone());
            call.evidence(audit::Kind::Limit, &outcome, what, why).map_err(failed)?;
        }
        Ok(())
    }

    /// A `deploy` record for every component loaded into this host.
    fn record_load(&self, loaded: &LoadedComponent) -> Result<(), String> {
        let Some(audit) = &self.audit else { return Ok(()) };
        let id = loaded.id();
        let event = audit::Event::new(
            audit::Kind::Deploy,
            loaded.tenant(),
            "loaded",
            serde_json::json!({
                "component": id.label(),
                "digest": id.digest,
                "world": loaded.world.name(),
                "tier": loaded.tier.map(Tier::as_str),
                "source": format!("{:?}", loaded.source),
                "imports": loaded.imports,
            }),
        )
        .about(id);
        audit.append_owned(event).map(|_| ()).map_err(|e| e.to_string())
    }

    /// A top-level call refused before it ran (a tenant quota): its limit record.
    fn record_refusal(&self, component: &LoadedComponent, root: &Root, e: &InvokeError) {
        let Some(audit) = &self.audit else { return };
        let id = component.id();
        let event = audit::Event::new(
            audit::Kind::Limit,
            component.tenant(),
            e.kind.to_string(),
            serde_json::json!({ "component": id.label(), "limit": e.limit }),
        )
        .on_behalf_of(root.principal.clone())
        .about(id)
        .in_run(None, root.run_id.clone())
        .because(Some(e.message.clone()));
        if let Err(e) = audit.append_owned(event) {
            tracing::error!(target: "agenthost::audit", error = %e, "a refused call could not be recorded");
        }
    }

    /// Adds this process's per-minute use to the ledger and takes in what
    /// other processes used; a ledger that cannot be reached leaves the
    /// local counts in force (and the use to add next time).
    async fn sync_quotas(&self, tenant: &Tenant) {
        let Some(ledger) = &self.quota_ledger else { return };
        for window in tenant.windows() {
            if let Err(e) = window.sync(tenant.id(), ledger.as_ref()).await {
                tracing::warn!(tenant = tenant.id(), quota = window.name(), error = %e, "per-minute quota use not shared");
            }
        }
    }

    /// Waits until every record queued so far is durable.
    async fn settle(&self) -> Result<(), InvokeError> {
        let Some(audit) = &self.audit else { return Ok(()) };
        audit
            .durable_ticket(audit.last_ticket())
            .await
            .map_err(|e| InvokeError::new(ErrorKind::Unavailable, e.to_string()))
    }

    /// The per-call gate of a tool invocation: policy, then the obligations
    /// of its tier.
    fn govern(
        &self,
        tool: &LoadedComponent,
        input: &Value,
        call: &CallContext,
        principal: Principal<'_>,
    ) -> Result<(), InvokeError> {
        let tier = tool.tier.unwrap_or(Tier::Critical);
        let tenant = tool.tenant();
        call.judge(|| Query {
            principal: principal.entity(tenant),
            action: Action::InvokeTool,
            resource: EntityRef::new("Tool", format!("{tenant}/{}", tool.id().name)),
            context: [
                ("tenant", PolicyValue::String(tenant.to_owned())),
                ("tier", PolicyValue::String(tier.as_str().to_owned())),
                ("tier_rank", PolicyValue::Long(tier_rank(tier))),
                ("depth", PolicyValue::Long(i64::from(call.depth))),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        })
        .map_err(|refusal| {
            let e = match refusal {
                Refusal::Denied { reason, policies } => {
                    InvokeError { policies: policies.into(), ..InvokeError::denied(reason) }
                }
                Refusal::Failed(e) => InvokeError::internal(format!("the policy check failed: {e}")),
            };
            e.with_component(tool.id())
        })?;
        self.obligations(tool, input, call)
    }

    /// The obligations of the tool's tier, once the policy allowed the call.
    fn obligations(
        &self,
        tool: &LoadedComponent,
        input: &Value,
        call: &CallContext,
    ) -> Result<(), InvokeError> {
        let tier = tool.tier.unwrap_or(Tier::Critical);
        let tenant = &tool.subject.tenant;
        let name = &tool.id().name;
        let fail = |e: InvokeError| e.with_component(tool.id());
        match tier {
            Tier::Read => Ok(()),
            // write_low_per_minute counts tool calls; an agent's run is not one.
            Tier::WriteLow if tool.world == World::Agent => Ok(()),
            Tier::WriteLow => tenant.write_low.take(1).map_err(|limit| {
                fail(
                    InvokeError::new(
                        ErrorKind::LimitExceeded,
                        format!(
                            "tenant `{}` made {limit} write-low calls this minute (quota write_low_per_minute)",
                            tenant.id()
                        ),
                    )
                    .with_limit("write_low_per_minute", limit),
                )
            }),
            Tier::WriteHigh | Tier::Critical => {
                if tier == Tier::Critical && !tenant.config.grants.enable_critical.iter().any(|t| t == name) {
                    return Err(fail(InvokeError::denied(format!(
                        "`{name}` is a critical tool and tenant `{}` has not enabled it (grants.enable_critical); critical tools are denied by default",
                        tenant.id()
                    ))));
                }
                let input_digest = digest(canonical_json(input).as_bytes());
                self.check_approvals(tool, tier, input, &input_digest, call).map_err(fail)
            }
        }
    }

    /// Approval tokens for a write-high (one) or critical (two distinct
    /// approvers) call; none presented records a pending request.
    fn check_approvals(
        &self,
        tool: &LoadedComponent,
        tier: Tier,
        input: &Value,
        input_digest: &str,
        call: &CallContext,
    ) -> Result<(), InvokeError> {
        let tenant = &tool.subject.tenant;
        let tool_ref = tool.id().label();
        let (sensitive, sensitive_names): (&[Vec<String>], &[String]) = match &tool.kind {
            Kind::Tool { sensitive, .. } => (&sensitive.0, &sensitive.1),
            Kind::Agent { .. } => (&[], &[]),
        };
        let binding = CallBinding {
            tenant: tenant.id(),
            tool: &tool_ref,
            tool_digest: &tool.id().digest,
            input_digest,
            run_id: &call.trace.run_id,
            requested_by: &call.requested_by,
            requested_by_key: call.requested_by_key.as_deref(),
        };
        let needed = tier.approvals_needed();
        let mut problems = Vec::new();
        let mut valid: Vec<&ApprovalToken> = Vec::new();
        for token in
            call.approvals.iter().filter(|t| t.claims.tool.split('@').next() == Some(tool.id().name.as_str()))
        {
            let check = approvals::check_binding(token, &binding).and_then(|()| {
                let key = tenant.approvers.get(&token.claims.approver).ok_or_else(|| {
                    format!("`{}` is not an approver of tenant `{}`", token.claims.approver, tenant.id())
                })?;
                token.verify_signature(key)
            });
            match check {
                Ok(()) => valid.push(token),
                Err(problem) => problems.push(problem),
            }
        }
        let store = self.governance.approvals();
        // Distinct people: two names the tenant lists with one key are one
        // person, so approvers are counted by key as well as by name.
        let mut approvers: Vec<&str> = Vec::new();
        let mut keys: Vec<&str> = Vec::new();
        for token in &valid {
            let (name, key) = (token.claims.approver.as_str(), token.claims.key_id.as_str());
            if !approvers.contains(&name) && !keys.contains(&key) {
                approvers.push(name);
                keys.push(key);
            }
        }
        approvers.sort_unstable();
        if approvers.len() >= needed {
            let store = store.ok_or_else(|| {
                InvokeError::internal("this host has no approvals store to record token use")
            })?;
            let chosen: Vec<&ApprovalToken> = approvers
                .iter()
                .take(needed)
                .filter_map(|approver| valid.iter().find(|t| t.claims.approver == *approver).copied())
                .collect();
            // The trail records every use: a token whose marker file was
            // deleted is still spent.
            if let Some(audit) = &self.audit {
                for token in &chosen {
                    let spent = audit
                        .mentions(&token.claims.nonce)
                        .map_err(|e| InvokeError::internal(e.to_string()))?;
                    if spent {
                        return Err(InvokeError::denied(format!(
                            "the approval token of `{}` for request `{}` was already used (the audit trail records its use); a token is good for one call",
                            token.claims.approver, token.claims.request_id
                        )));
                    }
                }
            }
            let mut used = Vec::new();
            let mut nonces = Vec::new();
            for token in &chosen {
                store.consume(token).map_err(InvokeError::denied)?;
                used.push(format!("{} ({})", token.claims.approver, token.claims.request_id));
                nonces.push(token.claims.nonce.clone());
            }
            tracing::info!(target: "agenthost::decision", tenant = tenant.id(), tool = %tool_ref, tier = tier.as_str(), approvals = ?used, "approved call runs");
            let what = serde_json::json!({
                "tool": tool_ref,
                "digest": tool.id().digest,
                "tier": tier.as_str(),
                "input_digest": input_digest,
                "tokens": used,
                "nonces": nonces,
            });
            call.evidence(audit::Kind::Approval, "used", what, None).map_err(InvokeError::internal)?;
            return Ok(());
        }
        if valid.len() > approvers.len() || (!valid.is_empty() && needed > 1) {
            return Err(InvokeError::denied(format!(
                "{tool_ref} is {tier} and needs approvals from {needed} distinct approvers; the valid tokens presented come from {} ({})",
                approvers.len(),
                approvers.join(", ")
            )));
        }
        if let Some(problem) = problems.first() {
            return Err(InvokeError::denied(format!(
                "{tool_ref} needs approval and the token presented is refused: {problem}"
            )));
        }
        let store = store.ok_or_else(|| {
            InvokeError::denied(format!("{tool_ref} is {tier} and needs approval, but this host has no approvals store (no data directory)"))
        })?;
        let now = approvals::now_secs();
        let request = store
            .create_signed(
                ApprovalRequest {
                    id: String::new(),
                    tenant: tenant.id().to_owned(),
                    tool: tool_ref.clone(),
                    tool_digest: tool.id().digest.clone(),
                    tier,
                    input_digest: input_digest.to_owned(),
                    preview: approvals::preview(input, sensitive, sensitive_names),
                    requested_by: call.requested_by.clone(),
                    requested_by_key: call.requested_by_key.clone(),
                    trace_id: call.trace.trace_id.clone(),
                    run_id: call.trace.run_id.clone(),
                    created_at: now,
                    expires_at: now + approvals::REQUEST_TTL_SECS,
                    approvals_needed: needed,
                    status: Status::Pending,
                    decisions: Vec::new(),
                    tokens: Vec::new(),
                    host_signature: None,
                },
                self.request_key.as_ref(),
            )
            .map_err(InvokeError::internal)?;
        call.issued(&request.id);
        let hint = if tenant.approvers.len() < needed {
            format!(
                "; note that tenant `{}` has {} approver(s) configured ([approvers] in its tenant file)",
                tenant.id(),
                tenant.approvers.len()
            )
        } else {
            String::new()
        };
        let what = serde_json::json!({
            "request": request.id,
            "tool": tool_ref,
            "tier": tier.as_str(),
            "input_digest": input_digest,
            "approvals_needed": needed,
        });
        call.evidence(audit::Kind::Approval, "requested", what, None).map_err(InvokeError::internal)?;
        let mut e = InvokeError::new(
            ErrorKind::ApprovalRequired,
            format!(
                "{tool_ref} is {tier}: it runs once {needed} approver(s) approve request {} (agenthost approvals approve {}), then re-submit with --approval {}{hint}",
                request.id, request.id, request.id
            ),
        );
        e.approval_request = Some(request.id);
        Err(e)
    }
}

/// A cache key made once per process, for hosts given none.
fn process_cache_key() -> [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    *KEY.get_or_init(rand::random)
}

/// Caps a component's limits by its tenant's quotas and its policy pack's
/// tool defaults.
fn apply_quotas(limits: &mut Limits, tenant: &Tenant, policy: Option<&LoadedPolicy>) {
    let quotas = &tenant.config.quotas;
    if let Some(fuel) = quotas.fuel_per_call {
        limits.fuel = limits.fuel.min(fuel);
    }
    if let Some(memory) = quotas.memory_per_instance {
        limits.memory_bytes = limits.memory_bytes.min(memory);
    }
    if let Some(calls) = quotas.host_calls_per_call {
        limits.host_calls = limits.host_calls.min(calls);
    }
    if let Some(defaults) = policy.map(|p| &p.manifest.constraints.tool_defaults) {
        if let Some(fuel) = defaults.fuel {
            limits.fuel = limits.fuel.min(fuel);
        }
        if let Some(ms) = defaults.timeout_ms {
            limits.timeout = limits.timeout.min(Duration::from_millis(ms));
        }
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

/// A version: what a guest says about itself travels into logs and
/// records, so it is held to a plain form.
fn check_version(version: &str) -> Result<(), String> {
    let valid = !version.is_empty()
        && version.len() <= 64
        && version.bytes().all(|b| b.is_ascii_alphanumeric() || b".+-_".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "its version `{}` is not of the form [0-9A-Za-z.+-_] (at most 64 characters)",
            crate::text::clip(version)
        ))
    }
}

/// The risk tier as its WIT name.
pub fn tier_name(tier: RiskTier) -> &'static str {
    Tier::from(tier).as_str()
}
