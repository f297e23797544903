//! Capabilities: what a component may reach outside its own memory.
//!
//! One module per capability (`log`, `model`, `tools`, `memory`, `events`,
//! `audit`, `http` egress and `wasi`), each with its
//! host trait implemented on [`InstanceState`], the per-instance state that
//! lives in the `Store`. This module owns the [`Grant`] and the linker
//! wiring, and gates twice: an interface outside the component's world or
//! its grant is never linked (loading fails naming the import and the rule
//! that removed it), and every host call re-checks its detail (which tools,
//! which models) at call time.

pub mod audit;
pub mod events;
pub mod http;
pub mod log;
pub mod memory;
pub mod model;
pub mod tools;
pub mod wasi;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::audit::AuditLog;

use serde::Serialize;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::{self, types::TraceContext};
use crate::error::ComponentRef;
use crate::governance::packs::Classification;
use crate::governance::policy::{Action, EntityRef, Query, Value as PolicyValue};
use crate::governance::{ApprovalToken, Decision, PolicyEngine, Tenant};
use crate::governance::{EgressPolicy, Names};
use crate::limits::LimitTracker;
use crate::runtime::HostInner;
use crate::trace::{Transcript, TranscriptEvent};

/// A host interface of the `agenthost:platform` package that can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    Log,
    Model,
    Memory,
    Events,
    Tools,
    Audit,
}

impl Capability {
    pub const ALL: [Capability; 6] = [
        Capability::Log,
        Capability::Model,
        Capability::Memory,
        Capability::Events,
        Capability::Tools,
        Capability::Audit,
    ];

    /// The interface name inside the package, e.g. `model`.
    pub fn interface(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::Model => "model",
            Capability::Memory => "memory",
            Capability::Events => "events",
            Capability::Tools => "tools",
            Capability::Audit => "audit",
        }
    }

    /// The full import name, e.g. `agenthost:platform/model@0.1.0`.
    pub fn import_name(self) -> String {
        format!("{}/{}@{}", bindings::PACKAGE, self.interface(), bindings::VERSION)
    }

    pub fn from_interface(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.interface() == name)
    }

    fn link(self, linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
        type Me = HasSelf<InstanceState>;
        fn get(s: &mut InstanceState) -> &mut InstanceState {
            s
        }
        match self {
            Capability::Log => bindings::log::add_to_linker::<_, Me>(linker, get),
            Capability::Model => bindings::model::add_to_linker::<_, Me>(linker, get),
            Capability::Memory => bindings::memory::add_to_linker::<_, Me>(linker, get),
            Capability::Events => bindings::events::add_to_linker::<_, Me>(linker, get),
            Capability::Tools => bindings::tools::add_to_linker::<_, Me>(linker, get),
            Capability::Audit => bindings::audit::add_to_linker::<_, Me>(linker, get),
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.interface())
    }
}

/// The two worlds a component can implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    Tool,
    Agent,
}

impl World {
    /// The platform interfaces the world imports.
    pub fn imports(self) -> &'static [Capability] {
        match self {
            World::Tool => &[Capability::Log, Capability::Memory, Capability::Events, Capability::Audit],
            World::Agent => &Capability::ALL,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            World::Tool => "tool",
            World::Agent => "agent",
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", bindings::PACKAGE, self.name(), bindings::VERSION)
    }
}

/// A host directory a component sees at a guest path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Canonical host path.
    pub host: PathBuf,
    pub guest: String,
    pub writable: bool,
}

/// What a component is granted. [`Grant::nothing`] grants nothing: no
/// platform interface, no name, and (through [`wasi`]) no preopened
/// directory, no environment variable, no socket, no network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub capabilities: BTreeSet<Capability>,
    /// Why each interface of the world that is not granted was removed,
    /// for the load error of a component that imports it.
    pub removed: BTreeMap<Capability, String>,
    /// Tools (of the same tenant) it may call through `tools.invoke`.
    pub tools: Names,
    pub memory_namespaces: Names,
    /// Whether it may put/delete memory (a `read` tool may not).
    pub memory_write: bool,
    /// The most sensitive classification it may write, if capped.
    pub max_classification: Option<Classification>,
    pub topics: Names,
    pub models: Names,
    /// Environment variables it sees, with their values.
    pub env: BTreeMap<String, String>,
    pub mounts: Vec<Mount>,
    pub egress: EgressPolicy,
}

impl Default for Grant {
    fn default() -> Self {
        Grant::nothing()
    }
}

impl Grant {
    /// Nothing at all.
    pub fn nothing() -> Self {
        Grant {
            capabilities: BTreeSet::new(),
            removed: BTreeMap::new(),
            tools: Names::none("its grant (no tools)"),
            memory_namespaces: Names::none("its grant (no memory namespaces)"),
            memory_write: false,
            max_classification: None,
            topics: Names::none("its grant (no topics)"),
            models: Names::none("its grant (no models)"),
            env: BTreeMap::new(),
            mounts: Vec::new(),
            egress: EgressPolicy::none(),
        }
    }

    /// Every platform interface of the component's world and every name
    /// (but no files, env or network): the development default.
    pub fn world(world: World) -> Self {
        Grant {
            capabilities: world.imports().iter().copied().collect(),
            tools: if world == World::Agent {
                Names::all()
            } else {
                Names::none("the tool world (no tools)")
            },
            memory_namespaces: Names::all(),
            memory_write: true,
            topics: Names::all(),
            models: Names::all(),
            ..Grant::nothing()
        }
    }

    #[must_use]
    pub fn with(mut self, capability: Capability) -> Self {
        self.capabilities.insert(capability);
        self.removed.remove(&capability);
        self
    }

    #[must_use]
    pub fn without(mut self, capability: Capability) -> Self {
        self.capabilities.remove(&capability);
        self
    }

    pub fn has(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }
}

/// Builds the linker for a component of `world` with `grant`: WASI (with
/// the empty context of [`wasi`]), the `types` interface, and exactly the
/// platform interfaces in both the world and the grant.
pub(crate) fn linker(
    engine: &wasmtime::Engine,
    world: World,
    grant: &Grant,
) -> wasmtime::Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    if grant.egress.any_http() {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    }
    bindings::types::add_to_linker::<_, HasSelf<InstanceState>>(&mut linker, |s: &mut InstanceState| s)?;
    for capability in world.imports() {
        if grant.has(*capability) {
            capability.link(&mut linker)?;
        }
    }
    Ok(linker)
}

/// What every host call of one invocation knows about it.
pub struct CallContext {
    pub trace: TraceContext,
    pub component: Arc<ComponentRef>,
    pub grant: Arc<Grant>,
    pub tenant: Arc<Tenant>,
    pub policy: Arc<PolicyEngine>,
    /// System-prompt layers of the component's policy packs, base first.
    pub prompts: Arc<[String]>,
    /// Who started the run (a person or service), for approvals.
    pub requested_by: String,
    /// Approval tokens presented for this run.
    pub approvals: Arc<[ApprovalToken]>,
    /// The wall-clock deadline of this call (and of every call it makes).
    pub deadline: Instant,
    /// How many `tools.invoke` hops led here (0 for a top-level call).
    pub depth: u32,
    pub transcript: Option<Arc<Transcript>>,
    /// Where this call's evidence goes; `None` runs without an audit trail.
    pub audit: Option<Arc<AuditLog>>,
    pub metrics: Arc<crate::telemetry::Metrics>,
}

impl CallContext {
    /// Queues an audit record of this call: the caller, component, trace and
    /// run come from the context, the rest from the arguments.
    ///
    /// # Errors
    ///
    /// When the audit trail has failed: the caller must not go on as if the
    /// side effect were recorded.
    pub(crate) fn evidence(
        &self,
        kind: crate::audit::Kind,
        outcome: &str,
        what: serde_json::Value,
        why: Option<String>,
    ) -> Result<(), String> {
        let Some(audit) = &self.audit else { return Ok(()) };
        let event = crate::audit::Event {
            kind,
            tenant: self.tenant.id().to_owned(),
            principal: Some(self.requested_by.clone()),
            agent: Some(self.trace.agent_id.clone()),
            component: Some(self.component.digest.clone()),
            trace_id: Some(self.trace.trace_id.clone()),
            run_id: Some(self.trace.run_id.clone()),
            outcome: outcome.to_owned(),
            what,
            why,
        };
        audit.append_owned(event).map(|_| ()).map_err(|e| e.to_string())
    }

    /// `name@version` of the component, for logs and transcripts.
    pub fn caller(&self) -> String {
        format!("{}@{}", self.component.name, self.component.version)
    }

    /// The component as a policy principal: `Agent::"<tenant>/<name>"`.
    pub fn principal(&self) -> EntityRef {
        EntityRef::new("Agent", format!("{}/{}", self.tenant.id(), self.component.name))
    }

    /// Puts a query to the policy engine and records the decision. The
    /// built-in permit-all policy allows everything, so under it the query
    /// is built (and recorded) only when a run transcript keeps it.
    ///
    /// # Errors
    ///
    /// The decision, when it stops the call (a denial in enforce mode), or
    /// why the engine could not decide.
    pub(crate) fn judge(&self, query: impl FnOnce() -> Query) -> Result<(), Refusal> {
        if self.policy.permits_all() && self.transcript.is_none() && self.audit.is_none() {
            return Ok(());
        }
        let query = query();
        let _span = tracing::info_span!(
            "policy.decision",
            action = query.action.as_str(),
            resource = %query.resource,
            allowed = tracing::field::Empty,
        )
        .entered();
        let decision = self.policy.decide(&query).map_err(Refusal::Failed)?;
        _span.record("allowed", decision.allowed);
        if !decision.allowed {
            self.metrics.denial(self.tenant.id(), query.action.as_str());
        }
        record_decision(self, &query, &decision);
        if decision.permits() {
            Ok(())
        } else {
            Err(Refusal::Denied { reason: decision.explain(&query), policies: decision.policies })
        }
    }

    /// [`CallContext::judge`] for a host call by this component, as the WIT
    /// error the guest sees.
    pub(crate) fn decide(
        &self,
        action: Action,
        resource: EntityRef,
        context: Vec<(&str, PolicyValue)>,
    ) -> Result<(), bindings::types::Error> {
        self.judge(|| {
            let mut query =
                Query { principal: self.principal(), action, resource, context: Default::default() };
            query.context.insert("tenant".to_owned(), PolicyValue::String(self.tenant.id().to_owned()));
            for (k, v) in context {
                query.context.insert(k.to_owned(), v);
            }
            query
        })
        .map_err(|refusal| match refusal {
            Refusal::Denied { reason, .. } => bindings::types::Error::Denied(reason),
            Refusal::Failed(e) => bindings::types::Error::Internal(format!("the policy check failed: {e}")),
        })
    }

    /// Charges one host call against the tenant's rate quota.
    pub(crate) fn charge(&self) -> Result<(), bindings::types::Error> {
        self.tenant.charge_host_call().map_err(bindings::types::Error::LimitExceeded)
    }
}

/// The WIT case of an error, as the audit trail names outcomes.
pub(crate) fn error_case(error: &bindings::types::Error) -> &'static str {
    use bindings::types::Error;
    match error {
        Error::Denied(_) => "denied",
        Error::NotFound(_) => "not-found",
        Error::InvalidInput(_) => "invalid-input",
        Error::LimitExceeded(_) => "limit-exceeded",
        Error::Unavailable(_) => "unavailable",
        Error::ApprovalRequired(_) => "approval-required",
        Error::Internal(_) => "internal",
    }
}

/// Why the policy stopped a call.
pub(crate) enum Refusal {
    /// Denied, with the explanation and the deciding policies.
    Denied { reason: String, policies: Vec<String> },
    /// The engine could not decide.
    Failed(String),
}

/// Logs a decision, appends it to the audit trail and adds it to the run's
/// transcript.
pub(crate) fn record_decision(call: &CallContext, query: &Query, decision: &Decision) {
    if call.audit.is_some() {
        let outcome = match (decision.allowed, decision.enforced) {
            (true, _) => "allowed",
            (false, true) => "denied",
            (false, false) => "denied (log-only)",
        };
        let what = serde_json::json!({
            "principal": query.principal.to_string(),
            "action": query.action.as_str(),
            "resource": query.resource.to_string(),
            "policies": decision.policies,
            "source": decision.source,
            "enforced": decision.enforced,
        });
        let why = (!decision.allowed).then(|| decision.explain(query));
        if let Err(e) = call.evidence(crate::audit::Kind::Decision, outcome, what, why) {
            tracing::error!(target: "agenthost::audit", error = %e, "a policy decision could not be recorded");
        }
    }
    tracing::info!(
        target: "agenthost::decision",
        tenant = call.tenant.id(),
        trace_id = %call.trace.trace_id,
        run_id = %call.trace.run_id,
        principal = %query.principal,
        action = query.action.as_str(),
        resource = %query.resource,
        allowed = decision.allowed,
        enforced = decision.enforced,
        policies = ?decision.policies,
        "policy decision"
    );
    if let Some(transcript) = &call.transcript {
        transcript.push(TranscriptEvent::Decision {
            principal: query.principal.to_string(),
            action: query.action.as_str().to_owned(),
            resource: query.resource.to_string(),
            allowed: decision.allowed,
            enforced: decision.enforced,
            policies: decision.policies.clone(),
        });
    }
}

/// The state of one component instance: the `T` of its `Store`.
pub struct InstanceState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http: WasiHttpCtx,
    pub(crate) hooks: http::EgressHooks,
    pub(crate) limits: LimitTracker,
    pub(crate) call: Arc<CallContext>,
    pub(crate) host: Arc<HostInner>,
    pub(crate) log: log::LogState,
}

impl InstanceState {
    pub(crate) fn new(host: Arc<HostInner>, call: Arc<CallContext>, limits: LimitTracker) -> Self {
        let hooks = http::EgressHooks { call: call.clone(), denials: None };
        InstanceState {
            wasi: wasi::context(&call.grant),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            hooks,
            limits,
            call,
            host,
            log: log::LogState::default(),
        }
    }

    /// Egress refusals during this call, for its error.
    pub(crate) fn egress_denials(&self) -> Vec<String> {
        self.hooks.denials.as_ref().and_then(|d| d.lock().ok().map(|d| d.clone())).unwrap_or_default()
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

impl bindings::types::Host for InstanceState {}
