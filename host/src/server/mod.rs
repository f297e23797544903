//! `agenthost serve`: the HTTP API over one host. Tenants invoke tools and
//! run agents, deployers push signed versions and move aliases, operators
//! watch health and metrics, all through one authenticated router.
//!
//! Trust boundary: every byte of a request is untrusted. The accept loop
//! bounds the request head (size and time), the router bounds the body and
//! the time to answer, admission bounds how many calls run, and each route
//! checks the caller's role in the tenant it names before anything else,
//! answering 403 alike whether or not the tenant or resource exists.

pub mod admission;
mod approvals;
mod audit_route;
pub mod auth;
mod conn;
mod control;
mod data;
mod ops;
pub mod problem;
mod queue;
mod routes;
mod runs;
mod tasks;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::audit::{self, AuditLog};
use crate::governance::Governance;
use crate::registry::Registry;
use crate::registry::warm::WarmSet;
use crate::runtime::Host;
use crate::settings::ServerSettings;

use admission::Admission;
pub use auth::{Caller, Role, Verifier};
pub use data::{DIRECT_PRINCIPAL, DirectCall};
use problem::Problem;
pub use tasks::Sweep;

/// How long a server trusts the aliases it read: changes made by another
/// host sharing the registry reach its routing within this.
pub const ALIAS_TTL: Duration = Duration::from_secs(2);

/// Audit queries read from disk at the same time, across tenants.
pub const AUDIT_QUERIES: usize = 2;

/// How long a stable version that failed to load waits before another try.
pub const RETRY_FAILED: Duration = Duration::from_secs(30);

/// Components the follow loop re-reads and loads at the same time.
const FOLLOW_AT_ONCE: usize = 8;

/// What a host serves for a component's stable version.
#[derive(Debug, Clone)]
struct Reconciled {
    version: String,
    /// A tool: the version agents reach through `tools.invoke`.
    tool: bool,
    /// When its load failed (then it is retried after [`RETRY_FAILED`]).
    failed_at: Option<std::time::Instant>,
}

impl Reconciled {
    fn failed(version: &str) -> Self {
        Reconciled { version: version.to_owned(), tool: false, failed_at: Some(std::time::Instant::now()) }
    }
}

/// Aliases by (tenant, component), with when they were read.
type AliasCache =
    std::collections::HashMap<(String, String), (std::time::Instant, Arc<crate::registry::Aliases>)>;

/// A running server's state, shared by every request.
pub struct Server {
    host: Arc<Host>,
    warm: Arc<WarmSet>,
    verifier: Verifier,
    governance: Arc<Governance>,
    settings: ServerSettings,
    admission: Admission,
    audit: Option<Arc<AuditLog>>,
    /// The key the host signs approval requests with (to show whether a
    /// request still reads as the host made it).
    request_key: Option<crate::keys::PublicKey>,
    http: ops::HttpMetrics,
    runs: runs::Runs,
    /// Each component's aliases, as this server last wrote or read them, for
    /// [`ALIAS_TTL`]: a call routes without touching the store, and a change
    /// made by another host sharing the registry applies within the TTL.
    aliases: std::sync::RwLock<AliasCache>,
    /// What this host serves for each component's stable: the version
    /// installed (for a tool, the one agents reach) or a load that failed.
    reconciled: std::sync::Mutex<std::collections::HashMap<(String, String), Reconciled>>,
    memory: Option<Arc<dyn crate::brokers::memory::MemoryStore>>,
    events: Option<Arc<dyn crate::brokers::events::EventBus>>,
    /// Where paused workflows get their answers (Step Functions).
    callbacks: Option<Arc<dyn crate::brokers::callbacks::TaskCallbacks>>,
    /// When parked workflows were last looked for (Unix seconds).
    tasks_settled: std::sync::atomic::AtomicU64,
    /// Audit queries read the trail from disk: [`AUDIT_QUERIES`] at a time…
    audit_queries: Arc<tokio::sync::Semaphore>,
    /// …and one per tenant.
    audit_tenants: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// When the registry last answered, and whether it did.
    reachable: tokio::sync::Mutex<Option<(std::time::Instant, bool)>>,
    draining: AtomicBool,
}

/// What a server is built from.
pub struct ServerParts {
    /// The memory and events backends `/readyz` asks (`None`: nothing to ask).
    pub memory: Option<Arc<dyn crate::brokers::memory::MemoryStore>>,
    pub events: Option<Arc<dyn crate::brokers::events::EventBus>>,
    /// Where paused workflows get their answers (`None`: a task token is refused).
    pub callbacks: Option<Arc<dyn crate::brokers::callbacks::TaskCallbacks>>,
    pub host: Arc<Host>,
    pub registry: Registry,
    pub audit: Option<Arc<AuditLog>>,
    pub settings: ServerSettings,
    pub verifier: Verifier,
    pub request_key: Option<crate::keys::PublicKey>,
}

impl Server {
    pub fn new(parts: ServerParts) -> Arc<Server> {
        let governance = parts.host.governance().clone();
        let warm = Arc::new(WarmSet::new(parts.host.clone(), parts.registry));
        Arc::new(Server {
            admission: Admission::new(parts.settings.max_in_flight, parts.settings.tenant_in_flight),
            runs: match (&parts.memory, governance.settings().memory.backend) {
                // Replicas share the backend: a poll may reach any of them.
                (Some(store), crate::settings::MemoryBackend::Dynamodb) => runs::Runs::shared(
                    parts.settings.runs_kept,
                    store.clone(),
                    // No run outlives the host's wall-clock limit; a margin for the answer.
                    parts.host.default_limits().timeout.as_secs().saturating_add(300),
                ),
                _ => runs::Runs::new(parts.settings.runs_kept),
            },
            host: parts.host,
            warm,
            verifier: parts.verifier,
            governance,
            settings: parts.settings,
            audit: parts.audit,
            request_key: parts.request_key,
            http: ops::HttpMetrics::new(),

            aliases: std::sync::RwLock::new(std::collections::HashMap::new()),
            reconciled: std::sync::Mutex::new(std::collections::HashMap::new()),
            reachable: tokio::sync::Mutex::new(None),
            audit_queries: Arc::new(tokio::sync::Semaphore::new(AUDIT_QUERIES)),
            audit_tenants: Arc::default(),
            memory: parts.memory,
            events: parts.events,
            callbacks: parts.callbacks,
            tasks_settled: std::sync::atomic::AtomicU64::new(0),
            draining: AtomicBool::new(false),
        })
    }

    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    pub fn registry(&self) -> &Registry {
        self.warm.registry()
    }

    /// The routes, with their limits.
    pub fn router(self: &Arc<Self>) -> Router {
        let mut api = Router::new();
        for route in routes::table(self.settings.deploy_limit_bytes) {
            api = api.route(route.pattern, route.handler);
        }
        let api = api.fallback(ops::fallback).method_not_allowed_fallback(ops::method_not_allowed);
        api.layer(axum::middleware::from_fn_with_state(self.clone(), ops::around))
            .layer(DefaultBodyLimit::max(self.settings.body_limit_bytes))
            .with_state(self.clone())
    }

    /// Loads the stable version of every tenant's components, so the first
    /// call finds them warm and agents find their tools. A version that
    /// fails its checks is reported and skipped: the others still serve.
    pub async fn warm_up(&self) {
        for tenant in self.governance.tenants() {
            let tenant = tenant.id();
            let names = match self.registry().store().list_components(tenant).await {
                Ok(names) => names,
                Err(e) => {
                    tracing::warn!(target: "agenthost::server", tenant, error = %e, "cannot list the registry");
                    continue;
                }
            };
            for name in names {
                if let Err(e) = self.refresh(tenant, &name).await {
                    tracing::warn!(target: "agenthost::server", tenant, component = %name, error = %e.detail, "not warmed");
                }
            }
        }
    }

    /// A component's aliases, from memory once read. Only set aliases are
    /// remembered, so unknown names cannot grow the map.
    async fn aliases_of(&self, tenant: &str, name: &str) -> Result<Arc<crate::registry::Aliases>, Problem> {
        let key = (tenant.to_owned(), name.to_owned());
        if let Some((at, aliases)) = self.aliases.read().ok().and_then(|m| m.get(&key).cloned())
            && at.elapsed() < ALIAS_TTL
        {
            return Ok(aliases);
        }
        let read = Arc::new(self.registry().aliases(tenant, name).await?);
        Ok(self.remember_aliases(tenant, name, read))
    }

    /// Remembers a component's aliases unless newer ones (a higher
    /// revision) are remembered already: a slow read never undoes a change
    /// that landed meanwhile. Returns the aliases that hold.
    fn remember_aliases(
        &self,
        tenant: &str,
        name: &str,
        aliases: Arc<crate::registry::Aliases>,
    ) -> Arc<crate::registry::Aliases> {
        if aliases.stable.is_none() && aliases.canary.is_none() {
            return aliases;
        }
        let Ok(mut map) = self.aliases.write() else { return aliases };
        let key = (tenant.to_owned(), name.to_owned());
        let now = std::time::Instant::now();
        match map.get_mut(&key) {
            Some((at, held)) if held.revision > aliases.revision => {
                *at = now;
                held.clone()
            }
            Some(entry) => {
                *entry = (now, aliases.clone());
                aliases
            }
            None => {
                map.insert(key, (now, aliases.clone()));
                aliases
            }
        }
    }

    fn remembered_stable(&self, tenant: &str, name: &str) -> Option<String> {
        let map = self.aliases.read().ok()?;
        map.get(&(tenant.to_owned(), name.to_owned())).and_then(|(_, a)| a.stable.clone())
    }

    /// Loads a stable version and, for a tool, makes it the one agents
    /// reach, unless the aliases moved on while it loaded: the check and
    /// the switch happen under one lock, so an older version never replaces
    /// a newer one. Records what this host now serves for the component.
    async fn install_stable(&self, tenant: &str, name: &str, version: &str) -> Result<(), Problem> {
        let key = (tenant.to_owned(), name.to_owned());
        let loaded = self.warm.get(tenant, name, version).await.map_err(data::load_problem);
        let Ok(mut reconciled) = self.reconciled.lock() else {
            return Err(Problem::internal("the reconciliation lock is poisoned"));
        };
        let (component, _) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                reconciled.insert(key, Reconciled::failed(version));
                return Err(e);
            }
        };
        let tool = component.tool_spec().is_some();
        if self.remembered_stable(tenant, name).as_deref() == Some(version) {
            if tool {
                self.host.set_tool(component)?;
            }
            reconciled.insert(key, Reconciled { version: version.to_owned(), tool, failed_at: None });
        }
        Ok(())
    }

    /// Keeps the tools agents reach in step with the registry, whoever
    /// changed it: re-reads a tool's aliases once they are older than
    /// [`ALIAS_TTL`], and installs every remembered stable this host does
    /// not serve yet (a failed load is retried after [`RETRY_FAILED`]).
    /// Agents need none of this: each call and event routes afresh.
    /// Several components at a time, at most [`FOLLOW_AT_ONCE`].
    async fn follow(self: &Arc<Self>) {
        // One lock at a time (install_stable takes them in the other order).
        let Ok(reconciled) = self.reconciled.lock().map(|r| r.clone()) else { return };
        let due: Vec<(String, String)> = match self.aliases.read() {
            Ok(remembered) => remembered
                .iter()
                .filter(|(key, (at, aliases))| {
                    let Some(stable) = &aliases.stable else { return false };
                    match reconciled.get(*key) {
                        // Not installed yet, or moved on.
                        None => true,
                        Some(r) if &r.version != stable => true,
                        // A failed load, once its wait is over.
                        Some(Reconciled { failed_at: Some(at), .. }) => at.elapsed() >= RETRY_FAILED,
                        // A tool: its aliases re-read once stale.
                        Some(r) => r.tool && at.elapsed() >= ALIAS_TTL,
                    }
                })
                .map(|(key, _)| key.clone())
                .collect(),
            Err(_) => return,
        };
        let mut tasks = tokio::task::JoinSet::new();
        for (tenant, name) in due {
            while tasks.len() >= FOLLOW_AT_ONCE {
                let _ = tasks.join_next().await;
            }
            let server = self.clone();
            tasks.spawn(async move {
                let aliases = match server.aliases_of(&tenant, &name).await {
                    Ok(aliases) => aliases,
                    Err(e) => {
                        tracing::warn!(target: "agenthost::server", tenant, component = name, error = %e.detail, "cannot re-read aliases");
                        return;
                    }
                };
                let Some(stable) = aliases.stable.clone() else { return };
                let current = server.reconciled.lock().ok().and_then(|r| r.get(&(tenant.clone(), name.clone())).cloned());
                if current.is_some_and(|r| r.version == stable && r.failed_at.is_none()) {
                    return;
                }
                if let Err(e) = server.install_stable(&tenant, &name, &stable).await {
                    tracing::warn!(target: "agenthost::server", tenant, component = name, version = %stable, error = %e.detail, "the stable version does not load; retrying later");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Whether the registry answers a listing and the memory and events
    /// backends their probes, each within a second; asked at most once a
    /// second.
    async fn backends_reachable(&self) -> bool {
        // Held across the probes: concurrent readiness checks wait for the
        // one under way instead of probing again (single flight).
        let mut last = self.reachable.lock().await;
        if let Some((at, ok)) = *last
            && at.elapsed() < Duration::from_secs(1)
        {
            return ok;
        }
        let second = Duration::from_secs(1);
        let within = |ok: Option<bool>| ok.unwrap_or(false);
        let registry = async {
            match self.governance.tenants().next() {
                Some(tenant) => within(
                    tokio::time::timeout(second, self.registry().store().list_components(tenant.id()))
                        .await
                        .ok()
                        .map(|r| r.is_ok()),
                ),
                None => true,
            }
        };
        let memory = async {
            match &self.memory {
                Some(memory) => {
                    within(tokio::time::timeout(second, memory.probe()).await.ok().map(|r| r.is_ok()))
                }
                None => true,
            }
        };
        let events = async {
            match &self.events {
                Some(events) => {
                    within(tokio::time::timeout(second, events.probe()).await.ok().map(|r| r.is_ok()))
                }
                None => true,
            }
        };
        // Together: one slow backend costs a second, not three.
        let (registry, memory, events) = tokio::join!(registry, memory, events);
        let ok = registry && memory && events;
        *last = Some((std::time::Instant::now(), ok));
        ok
    }

    /// Loads a component's stable (and canary) version; a tool's stable
    /// becomes the one agents reach through `tools.invoke`.
    async fn refresh(&self, tenant: &str, name: &str) -> Result<(), Problem> {
        let read = Arc::new(self.registry().aliases(tenant, name).await?);
        let aliases = self.remember_aliases(tenant, name, read);
        if let Some(canary) = &aliases.canary {
            self.warm.get(tenant, name, &canary.version).await.map_err(data::load_problem)?;
        }
        if let Some(stable) = &aliases.stable {
            self.install_stable(tenant, name, stable).await?;
        }
        Ok(())
    }

    /// Appends a control-plane record (deploy, alias, promotion, rollback)
    /// with the caller as its principal, and waits until it is durable: an
    /// intent is on disk before the change it announces is made, an outcome
    /// before the client hears of it.
    async fn record(
        &self,
        caller: &Caller,
        tenant: &str,
        outcome: &str,
        what: serde_json::Value,
    ) -> Result<(), audit::AuditError> {
        let Some(audit) = &self.audit else {
            return Ok(());
        };
        let event = audit::Event::new(audit::Kind::Deploy, tenant, outcome, what)
            .on_behalf_of(caller.subject.clone());
        let receipt = audit.append_owned(event)?;
        audit.durable(&receipt).await
    }

    /// [`Server::record`] for an intent: a change the trail cannot record
    /// is not made.
    async fn record_intent(
        &self,
        caller: &Caller,
        tenant: &str,
        what: serde_json::Value,
    ) -> Result<(), Problem> {
        self.record(caller, tenant, "requested", what).await.map_err(|e| {
            Problem::internal(format!("the audit trail cannot record this change, so it was not made: {e}"))
        })
    }

    /// Serves `[[server.subscriptions]]`: each event runs the subscribed
    /// agent's version as the aliases route it when the event arrives.
    ///
    /// # Errors
    ///
    /// A subscription naming an unknown tenant or a malformed name.
    pub fn subscribe_all(self: &Arc<Self>) -> Result<(), String> {
        for sub in &self.settings.subscriptions {
            self.governance.tenant(&sub.tenant).map_err(|e| format!("[[server.subscriptions]]: {e}"))?;
            crate::registry::check_name("agent", &sub.agent)
                .map_err(|e| format!("[[server.subscriptions]]: {e}"))?;
            let server = Arc::downgrade(self);
            let (tenant, name) = (sub.tenant.clone(), sub.agent.clone());
            self.host.subscribe_resolved(
                &sub.tenant,
                &sub.topic,
                &sub.agent,
                Arc::new(move || {
                    let (server, tenant, name) = (server.clone(), tenant.clone(), name.clone());
                    Box::pin(async move {
                        let unavailable = |detail: String| {
                            crate::error::InvokeError::new(crate::error::ErrorKind::Unavailable, detail)
                        };
                        let server =
                            server.upgrade().ok_or_else(|| unavailable("the server is stopping".into()))?;
                        let aliases =
                            server.aliases_of(&tenant, &name).await.map_err(|p| unavailable(p.detail))?;
                        let (version, _) = aliases.route(&name, None).ok_or_else(|| {
                            unavailable(format!(
                                "tenant `{tenant}` has no agent `{name}` with a stable version"
                            ))
                        })?;
                        let version = version.to_owned();
                        let (agent, _) = server
                            .warm
                            .get(&tenant, &name, &version)
                            .await
                            .map_err(|e| unavailable(e.to_string()))?;
                        Ok(agent)
                    })
                }),
            );
        }
        Ok(())
    }

    /// Unloads versions idle for `[server] idle_unload_secs`, keeping what
    /// the aliases point at.
    pub async fn sweep(&self) -> Vec<String> {
        let mut keep = std::collections::HashSet::new();
        for tenant in self.governance.tenants() {
            let tenant = tenant.id();
            for name in self.registry().store().list_components(tenant).await.unwrap_or_default() {
                if let Ok(aliases) = self.registry().aliases(tenant, &name).await {
                    for version in aliases.versions() {
                        keep.insert((tenant.to_owned(), name.clone(), version.to_owned()));
                    }
                    // Components deployed through another host show up
                    // here; `follow` installs them.
                    self.remember_aliases(tenant, &name, Arc::new(aliases));
                }
            }
        }
        let idle = Duration::from_secs(self.settings.idle_unload_secs);
        self.warm.sweep(idle, &|t, n, v| keep.contains(&(t.to_owned(), n.to_owned(), v.to_owned())))
    }
}

impl FromRequestParts<Arc<Server>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, server: &Arc<Server>) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(Problem::unauthorized("this route needs `Authorization: Bearer <token>`"));
        };
        // The scheme is case-insensitive (RFC 9110).
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or_else(|| Problem::unauthorized("the Authorization header is not `Bearer <token>`"))?;
        server.verifier.verify(token.trim()).map_err(|e| Problem::unauthorized(e.0))
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every connection finished its last request.
    Clean,
    /// The drain deadline passed with connections still open.
    TimedOut,
}

/// Serves `server` on `listener` until `shutdown` resolves, then stops
/// accepting, lets requests in flight finish (up to `[server]
/// drain_timeout_ms`) and returns.
pub async fn serve(
    server: Arc<Server>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Drained {
    let app = server.router();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(server.settings.header_timeout_ms))
        .max_buf_size(server.settings.header_limit_bytes.max(8192))
        .keep_alive(true);
    let sweeper = {
        let server = server.clone();
        tokio::spawn(async move {
            let every = Duration::from_secs((server.settings.idle_unload_secs / 4).clamp(1, 60));
            let mut last_sweep = std::time::Instant::now();
            loop {
                tokio::time::sleep(ALIAS_TTL.min(every)).await;
                server.follow().await;
                // Resumed calls may take their whole deadline: not in this loop.
                let settler = server.clone();
                tokio::spawn(async move { settler.settle_due_tasks().await });
                if last_sweep.elapsed() >= every {
                    last_sweep = std::time::Instant::now();
                    for gone in server.sweep().await {
                        tracing::info!(target: "agenthost::server", version = %gone, "unloaded an idle version");
                    }
                }
            }
        })
    };
    // On the signal, first answer not-ready for `shutdown_delay_ms` while
    // still serving, so load balancers stop sending before the port closes.
    let delay = Duration::from_millis(server.settings.shutdown_delay_ms);
    let flag = server.clone();
    let shutdown = async move {
        shutdown.await;
        flag.draining.store(true, Ordering::SeqCst);
        tokio::time::sleep(delay).await;
    };
    tokio::pin!(shutdown);
    // Open connections are bounded: past the limit, new ones wait in the
    // listen backlog instead of taking file descriptors and memory.
    let connections = Arc::new(tokio::sync::Semaphore::new(server.settings.max_connections.max(1)));
    // And per client address, so one client cannot take them all.
    let per_peer: Arc<std::sync::Mutex<HashMap<std::net::IpAddr, usize>>> = Arc::default();
    let stall = Duration::from_millis(server.settings.write_stall_ms.max(1));
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, most likely: back off, keep serving.
                    tracing::warn!(target: "agenthost::server", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let ip = peer.ip();
        let admitted = per_peer.lock().is_ok_and(|mut map| {
            let open = map.entry(ip).or_insert(0);
            if *open >= server.settings.max_connections_per_client.max(1) {
                false
            } else {
                *open += 1;
                true
            }
        });
        if !admitted {
            // Closed at once: this client already holds its share.
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(conn::Bounded::new(stream, stall));
        let connection = http.serve_connection(io, TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        // Released when the task ends, even by a panic.
        let held = PeerSlot { per_peer: per_peer.clone(), ip, _permit: permit };
        tokio::spawn(async move {
            let _ = connection.await;
            drop(held);
        });
    }
    drop(listener);
    sweeper.abort();
    server.draining.store(true, Ordering::SeqCst);
    let deadline = Duration::from_millis(server.settings.drain_timeout_ms);
    // Connections finish their last request; async runs finish too.
    let everything = async {
        graceful.shutdown().await;
        server.runs.drained().await;
    };
    match tokio::time::timeout(deadline, everything).await {
        Ok(()) => Drained::Clean,
        Err(_) => Drained::TimedOut,
    }
}

/// One open connection of a client address, with its share of
/// `max_connections`; both are given back when dropped.
struct PeerSlot {
    per_peer: Arc<std::sync::Mutex<HashMap<std::net::IpAddr, usize>>>,
    ip: std::net::IpAddr,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.per_peer.lock()
            && let Some(open) = map.get_mut(&self.ip)
        {
            *open = open.saturating_sub(1);
            if *open == 0 {
                map.remove(&self.ip);
            }
        }
    }
}
