//! Capabilities: what a component may reach outside its own memory.
//!
//! One module per capability (`log`, `model`, `tools`, `memory`, `events`,
//! `audit`, `http` egress and `wasi`), each with its
//! host trait implemented on [`InstanceState`], the per-instance state that
//! lives in the `Store`. A capability reaches the rest of the host only
//! through the [`Services`] it is given (memory, events, models, a
//! [`ToolRunner`], TLS), never the host itself. This module holds the
//! linker wiring and the call context, and enforces the [`Grant`] that
//! governance computed, twice:
//!
//! - at load ([`import_report`]): an import outside the component's world,
//!   or one the host does not provide at all, fails the load naming it; an
//!   interface of its world that its grant removed (and `wasi:http` without
//!   egress, `wasi:sockets` without sockets) is linked to a refusal, so
//!   toolchains that import every interface of a world still load;
//! - at call time ([`InstanceState::enter`]): every platform host call
//!   first checks that its interface is granted (answering `denied` with the
//!   rule that removed it), that the component is not describing itself
//!   (`describe()` gets `log` only: anything else traps and fails the
//!   load), the call's host-call budget and the tenant's rate quota; then
//!   each interface checks its detail (which tools, models, namespaces).

/// Passes [`InstanceState::enter`] (describe mode, grant, budget, quota) or
/// returns its refusal to the guest: the first line of every platform call
/// but `log`.
macro_rules! gate {
    ($state:expr, $capability:expr, $function:literal) => {
        if let Err(refused) = $state.enter($capability, $function)? {
            return Ok(Err(refused));
        }
    };
}

pub mod audit;
pub mod events;
pub mod http;
pub mod http_send;
pub mod log;
pub mod memory;
pub mod model;
pub mod services;
pub mod tools;
pub mod wasi;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::audit::AuditLog;
use crate::bindings::{self, types::TraceContext};
use crate::error::ComponentRef;
use crate::governance::policy::{Action, EntityRef, Query, Value as PolicyValue};
use crate::governance::{ApprovalToken, Decision, PolicyEngine, Tenant};
use crate::limits::LimitTracker;

pub use crate::governance::grant::{Grant, Mount};
use crate::trace::{Transcript, TranscriptEvent};
pub use crate::vocab::{Capability, World};
pub use services::{Models, Services, ToolRunner};

/// Links the host functions of one platform interface.
fn link(capability: Capability, linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    type Me = HasSelf<InstanceState>;
    fn get(s: &mut InstanceState) -> &mut InstanceState {
        s
    }
    match capability {
        Capability::Log => bindings::log::add_to_linker::<_, Me>(linker, get),
        Capability::Model => bindings::model::add_to_linker::<_, Me>(linker, get),
        Capability::Memory => bindings::memory::add_to_linker::<_, Me>(linker, get),
        Capability::Events => bindings::events::add_to_linker::<_, Me>(linker, get),
        Capability::Tools => bindings::tools::add_to_linker::<_, Me>(linker, get),
        Capability::Audit => bindings::audit::add_to_linker::<_, Me>(linker, get),
    }
}

/// How the host serves one import of a component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportStatus {
    /// The import as the component names it, e.g. `agenthost:platform/model@0.1.0`.
    pub name: String,
    /// `live` (granted) or `denied` (linked to a refusal).
    pub status: &'static str,
    /// For a denied import: the rule that removed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// WASI 0.2 packages the host provides (with the empty context of [`wasi`]
/// plus the grant).
const WASI_PROVIDED: &[&str] =
    &["wasi:cli", "wasi:clocks", "wasi:filesystem", "wasi:io", "wasi:random", "wasi:sockets", "wasi:http"];

/// The first gate: every import must be one the host provides, in the
/// component's world; each is reported live or denied (with the rule).
///
/// # Errors
///
/// An import outside the world or not provided at all, naming it.
pub fn import_report(world: World, grant: &Grant, imports: &[String]) -> Result<Vec<ImportStatus>, String> {
    let mut report = Vec::with_capacity(imports.len());
    for import in imports {
        let live = || ImportStatus { name: import.clone(), status: "live", why: None };
        let denied = |why: String| ImportStatus { name: import.clone(), status: "denied", why: Some(why) };
        if let Some(rest) = import.strip_prefix(&format!("{}/", bindings::PACKAGE)) {
            let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
            if version != bindings::VERSION {
                return Err(format!(
                    "it imports `{import}`, but this host provides {}@{}; rebuild it against guest-sdk {}",
                    bindings::PACKAGE,
                    bindings::VERSION,
                    bindings::VERSION
                ));
            }
            if interface == "types" {
                report.push(live());
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
            report.push(if grant.has(capability) { live() } else { denied(grant.why_not(capability)) });
            continue;
        }
        let package = import.split('/').next().unwrap_or(import);
        let package = package.split('@').next().unwrap_or(package);
        if !WASI_PROVIDED.contains(&package) {
            return Err(format!(
                "it imports `{import}`, which this host does not provide (it provides {} and {})",
                WASI_PROVIDED.join(", "),
                bindings::PACKAGE
            ));
        }
        report.push(match package {
            "wasi:http" if !grant.egress.any_http() => {
                denied(format!("no outgoing HTTP is granted to it: {}", grant.egress.why_none()))
            }
            "wasi:sockets" if import.contains("/ip-name-lookup") && !grant.egress.dns => {
                denied(grant.egress.why_no_dns())
            }
            "wasi:sockets" if !import.contains("/ip-name-lookup") && !grant.egress.sockets_granted() => {
                denied(grant.egress.why_no_sockets())
            }
            _ => live(),
        });
    }
    Ok(report)
}

/// Builds the linker for components of `world`: WASI (served from the
/// empty context of [`wasi`] plus the grant), `wasi:http` (behind the
/// egress hook, which refuses everything when no egress is granted), the
/// `types` interface and every platform interface of the world. What a
/// component may actually use is decided per call ([`InstanceState::enter`]),
/// so one linker serves every component of a world.
pub(crate) fn linker(engine: &wasmtime::Engine, world: World) -> wasmtime::Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    bindings::types::add_to_linker::<_, HasSelf<InstanceState>>(&mut linker, |s: &mut InstanceState| s)?;
    for capability in world.imports() {
        link(*capability, &mut linker)?;
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
    /// The key id that authenticated `requested_by`, if one did.
    pub requested_by_key: Option<String>,
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
    /// `describe()` at load: every platform call but `log` traps.
    pub describing: bool,
    /// What a describing component tried (each attempt was refused).
    pub(crate) violations: Mutex<Vec<String>>,
    /// Host calls made by this call, against `host_call_budget`.
    pub(crate) host_calls: AtomicU64,
    /// The most host calls one call may make.
    pub host_call_budget: u64,
    /// Approval requests the host issued in this run: a guest's
    /// `approval-required` must name one of them.
    pub(crate) issued_approvals: Arc<Mutex<Vec<String>>>,
    /// The grant's mounts, opened when the component was loaded.
    pub(crate) mounts: Arc<[wasi::OpenMount]>,
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
        audit.append_owned(self.event(kind, outcome, what, why)).map(|_| ()).map_err(|e| e.to_string())
    }

    /// An audit record of this call: by whom, which component, which trace
    /// and run, from the context.
    pub(crate) fn event(
        &self,
        kind: crate::audit::Kind,
        outcome: &str,
        what: serde_json::Value,
        why: Option<String>,
    ) -> crate::audit::Event {
        crate::audit::Event::new(kind, self.tenant.id(), outcome, what)
            .on_behalf_of(self.requested_by.clone())
            .about(&self.component)
            .in_run(Some(self.trace.trace_id.clone()), Some(self.trace.run_id.clone()))
            .because(why)
    }

    /// `name@version` of the component, for logs and transcripts.
    pub fn caller(&self) -> String {
        self.component.label()
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
            resource = ?query.resource.to_string(),
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

    /// Charges one host call against this call's budget and the tenant's
    /// rate quota.
    pub(crate) fn charge(&self) -> Result<(), bindings::types::Error> {
        let made = self.host_calls.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if made > self.host_call_budget {
            return Err(bindings::types::Error::LimitExceeded(format!(
                "{} made more than {} host calls in one call (limit host_calls_per_call)",
                self.caller(),
                self.host_call_budget
            )));
        }
        self.tenant.charge_host_call().map_err(bindings::types::Error::LimitExceeded)
    }

    /// Whether the call's deadline has passed: a backend call cut off then
    /// may still have taken effect, so its record says `unknown`.
    pub(crate) fn past_deadline(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Whether this call is still within its host-call budget.
    pub(crate) fn within_budget(&self) -> bool {
        self.host_calls.load(Ordering::Relaxed) <= self.host_call_budget
    }

    /// Notes something a describing component tried, for its load error.
    pub(crate) fn note_violation(&self, what: String) {
        if let Ok(mut violations) = self.violations.lock() {
            violations.push(what);
        }
    }

    /// What a describing component tried, if anything.
    pub(crate) fn violations(&self) -> Vec<String> {
        self.violations.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Remembers an approval request the host issued in this run.
    pub(crate) fn issued(&self, request: &str) {
        if let Ok(mut issued) = self.issued_approvals.lock() {
            issued.push(request.to_owned());
        }
    }

    /// Whether the host issued this approval request in this run.
    pub(crate) fn was_issued(&self, request: &str) -> bool {
        self.issued_approvals.lock().is_ok_and(|issued| issued.iter().any(|r| r == request))
    }

    /// Waits for a backend (memory, model, events) at most until this
    /// call's deadline; past it the guest gets `limit-exceeded`.
    pub(crate) async fn before_deadline<T>(
        &self,
        what: &str,
        work: impl Future<Output = Result<T, bindings::types::Error>>,
    ) -> Result<T, bindings::types::Error> {
        match tokio::time::timeout_at(tokio::time::Instant::from_std(self.deadline), work).await {
            Ok(result) => result,
            Err(_) => Err(bindings::types::Error::LimitExceeded(format!(
                "{} reached its call deadline while the host waited for {what} (limit timeout_ms)",
                self.caller()
            ))),
        }
    }
}

/// The error a platform call raises when a component uses it while
/// describing itself: it traps the guest and fails the load.
#[derive(Debug)]
pub(crate) struct UsedWhileDescribing(pub String);

impl fmt::Display for UsedWhileDescribing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsedWhileDescribing {}

/// Why the policy stopped a call.
pub(crate) enum Refusal {
    /// Denied, with the explanation and the deciding policies.
    Denied { reason: String, policies: Vec<String> },
    /// The engine could not decide.
    Failed(crate::governance::PolicyError),
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
        principal = ?query.principal.to_string(),
        action = query.action.as_str(),
        resource = ?query.resource.to_string(),
        allowed = decision.allowed,
        enforced = decision.enforced,
        policies = ?decision.policies,
        "policy decision"
    );
    if let Some(transcript) = &call.transcript {
        // A full transcript refuses the call that fills it; a decision
        // record that does not fit is dropped (the audit trail has it).
        let _ = transcript.push(TranscriptEvent::Decision {
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
    pub(crate) services: Arc<Services>,
    pub(crate) log: log::LogState,
}

impl InstanceState {
    /// The call-time gate every platform host call passes first: not while
    /// describing (that traps), the interface granted (else `denied` naming
    /// the rule that removed it), then the host-call budget and quota.
    ///
    /// # Errors
    ///
    /// The outer error traps the guest (a platform call during
    /// `describe()`); the inner one is what the guest sees.
    pub(crate) fn enter(
        &self,
        capability: Capability,
        function: &str,
    ) -> wasmtime::Result<Result<(), bindings::types::Error>> {
        let call = &self.call;
        if call.describing {
            let what = format!("`{capability}.{function}`");
            call.note_violation(what.clone());
            return Err(wasmtime::Error::new(UsedWhileDescribing(format!(
                "it called {what} while describing itself; describe() runs with `log` only"
            ))));
        }
        if !call.grant.has(capability) {
            return Ok(Err(bindings::types::Error::Denied(format!(
                "{} may not use `{capability}`: {}",
                call.caller(),
                call.grant.why_not(capability)
            ))));
        }
        Ok(call.charge())
    }

    pub(crate) fn new(services: Arc<Services>, call: Arc<CallContext>, limits: LimitTracker) -> Self {
        let hooks = http::EgressHooks { call: call.clone(), denials: None, tls: services.tls.clone() };
        InstanceState {
            wasi: wasi::context(&call),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            hooks,
            limits,
            call,
            services,
            log: log::LogState::default(),
        }
    }

    /// Egress refusals during this call (the first few, and a count), for its error.
    pub(crate) fn egress_denials(&self) -> Vec<String> {
        self.hooks.denials.as_ref().and_then(|d| d.lock().ok().map(|d| d.summary())).unwrap_or_default()
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

#[cfg(test)]
mod tests;
