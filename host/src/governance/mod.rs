//! Governance: tenants, component manifests, effective grants, risk tiers,
//! approvals and policy.
//!
//! What a component gets is the intersection of four things, computed once
//! at load ([`effective_grant`]) and re-checked on every call:
//!
//! 1. its tenant's grants (`<config>/tenants/<id>.toml`);
//! 2. what its manifest requests (`<stem>.manifest.toml`);
//! 3. the ceiling of its risk tier (a `read` tool cannot publish events or
//!    write memory);
//! 4. the constraints of its policy pack stack (allowed models, egress
//!    ceiling, highest tier).
//!
//! Without `--config` the host runs one development tenant that grants
//! every interface and name (but still no files, env or network), and a
//! component needs no manifest.

pub mod approval_store;
pub mod approvals;
pub mod egress;
pub mod error;
pub mod grant;
pub mod manifest;
pub mod names;
pub mod packs;
pub mod policy;
pub mod tenant;
pub mod tier;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Semaphore;

pub use crate::keys::{KeyPair, PublicKey};
pub use crate::settings::{EgressSettings, HostSettings};
pub use approval_store::{ApprovalRecords, ApprovalStore};
pub use approvals::{ApprovalRequest, ApprovalToken};
pub use egress::EgressPolicy;
pub use error::{ApprovalError, ManifestError, PackError, PolicyError, TenantError};
pub use manifest::ComponentManifest;
pub use names::{Names, Patterns};
pub use packs::LoadedPolicy;
pub use policy::{Decision, PolicyEngine};
pub use tenant::{Isolation, QuotaLedger, TenantConfig};
pub use tier::Tier;

pub use grant::{Grant, Mount};

use crate::limits::MemoryPool;
use crate::vocab::{Capability, World};
use tenant::RateWindow;

impl Governance {
    /// The `[egress] ca_files`, read: (file name, PEM bytes).
    ///
    /// # Errors
    ///
    /// A file that cannot be read, named.
    pub fn egress_ca(&self) -> Result<Vec<(String, Vec<u8>)>, String> {
        let dir = self.config_dir.as_deref().unwrap_or(Path::new("."));
        self.settings
            .egress
            .ca_files
            .iter()
            .map(|file| {
                let path = dir.join(file);
                std::fs::read(&path)
                    .map(|pem| (path.display().to_string(), pem))
                    .map_err(|e| format!("[egress] ca_files: cannot read {}: {e}", path.display()))
            })
            .collect()
    }
}

/// A tenant as the host runs it: its configuration, approvers' keys,
/// policy, and the live state of its quotas.
#[derive(Debug)]
pub struct Tenant {
    pub config: TenantConfig,
    pub approvers: BTreeMap<String, PublicKey>,
    /// Who may call as themselves, by key (`[principals]`).
    pub principals: BTreeMap<String, PublicKey>,
    /// Who may publish component versions, by key (`[publishers]`).
    pub publishers: BTreeMap<String, PublicKey>,
    pub policy: Option<Arc<LoadedPolicy>>,
    /// Top-level invocations running at once.
    pub concurrency: Option<Arc<Semaphore>>,
    pub fuel: RateWindow,
    pub tokens: RateWindow,
    pub write_low: RateWindow,
    pub host_calls: RateWindow,
    /// Where this tenant's data lives (its own under `namespace` isolation).
    pub data_dir: Option<PathBuf>,
    /// Linear memory shared by the tenant's live instances.
    pub memory_pool: Option<Arc<MemoryPool>>,
    /// The tenant's own worker threads (`namespace` isolation).
    workers: Option<tokio::runtime::Runtime>,
}

impl Drop for Tenant {
    fn drop(&mut self) {
        // A runtime may not be dropped (blocking) inside another runtime.
        if let Some(workers) = self.workers.take() {
            workers.shutdown_background();
        }
    }
}

/// The public keys a tenant file lists, by role.
#[derive(Default)]
struct TenantKeys {
    approvers: BTreeMap<String, PublicKey>,
    principals: BTreeMap<String, PublicKey>,
    publishers: BTreeMap<String, PublicKey>,
}

impl Tenant {
    fn new(
        config: TenantConfig,
        keys: TenantKeys,
        policy: Option<Arc<LoadedPolicy>>,
        data_dir: Option<PathBuf>,
    ) -> Result<Self, String> {
        let q = &config.quotas;
        let workers = match config.isolation {
            Isolation::Namespace => Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(q.workers.unwrap_or(2) as usize)
                    .thread_name(format!("agenthost-{}", config.id))
                    .enable_all()
                    .build()
                    .map_err(|e| format!("tenant `{}`: cannot start its worker pool: {e}", config.id))?,
            ),
            _ => None,
        };
        Ok(Tenant {
            memory_pool: q.memory_pool_bytes.map(|limit| Arc::new(MemoryPool::new(limit))),
            workers,
            concurrency: q.concurrent_invocations.map(|n| Arc::new(Semaphore::new(n as usize))),
            fuel: RateWindow::new("fuel_per_minute", q.fuel_per_minute),
            tokens: RateWindow::new("model_tokens_per_minute", q.model_tokens_per_minute),
            write_low: RateWindow::new("write_low_per_minute", q.write_low_per_minute),
            host_calls: RateWindow::new("host_calls_per_minute", q.host_calls_per_minute),
            config,
            approvers: keys.approvers,
            principals: keys.principals,
            publishers: keys.publishers,
            policy,
            data_dir,
        })
    }

    /// Authenticates a caller: `key` must be the private half of the key
    /// the tenant lists for `name` (under `[principals]` or `[approvers]`).
    /// Returns the key id, which then stands for the caller in approvals.
    ///
    /// # Errors
    ///
    /// An unknown name, or a key that is not theirs.
    pub fn authenticate(&self, name: &str, key: &KeyPair) -> Result<String, String> {
        let Some(listed) = self.principals.get(name).or_else(|| self.approvers.get(name)) else {
            return Err(format!(
                "tenant `{}` lists no key for `{name}` ([principals] or [approvers] in its tenant file), so nobody can call as `{name}`",
                self.config.id
            ));
        };
        if listed.id() != key.id() {
            return Err(format!(
                "that key ({}) is not `{name}`'s: tenant `{}` lists {} for them",
                key.id(),
                self.config.id,
                listed.id()
            ));
        }
        Ok(key.id())
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// Every per-minute window of the tenant.
    pub fn windows(&self) -> [&RateWindow; 4] {
        [&self.fuel, &self.tokens, &self.write_low, &self.host_calls]
    }

    /// The tenant's own worker pool, under `namespace` isolation.
    pub fn workers(&self) -> Option<&tokio::runtime::Handle> {
        self.workers.as_ref().map(tokio::runtime::Runtime::handle)
    }

    /// Charges one host call against `host_calls_per_minute`.
    ///
    /// # Errors
    ///
    /// A `limit-exceeded` message naming the quota.
    pub fn charge_host_call(&self) -> Result<(), String> {
        self.host_calls.take(1).map_err(|limit| {
            format!(
                "tenant `{}` made more than {limit} host calls this minute (quota host_calls_per_minute)",
                self.config.id
            )
        })
    }
}

/// The approvals store `settings` ask for: with a DynamoDB memory backend
/// the requests are shared there (connected once the backend is open);
/// otherwise they are files under the data directory; none without one.
fn approvals_for(settings: &HostSettings, data_dir: Option<&Path>) -> Result<Option<ApprovalStore>, String> {
    let Some(data_dir) = data_dir else { return Ok(None) };
    if settings.memory.backend == crate::settings::MemoryBackend::Dynamodb {
        return Ok(Some(ApprovalStore::unconnected("the memory backend (dynamodb)")));
    }
    ApprovalStore::open(&data_dir.join("approvals")).map(Some).map_err(|e| e.to_string())
}

/// Everything governance needs at run time.
#[derive(Debug)]
pub struct Governance {
    config_dir: Option<PathBuf>,
    settings: HostSettings,
    trusted_keys: Vec<PublicKey>,
    tenants: BTreeMap<String, Arc<Tenant>>,
    scope: Option<String>,
    default_tenant: String,
    approvals: Option<ApprovalStore>,
    default_policy: Arc<PolicyEngine>,
}

impl Governance {
    /// No configuration: one development tenant named `tenant`.
    ///
    /// # Errors
    ///
    /// When the approvals store cannot be opened under `data_dir`.
    pub fn development(tenant: &str, data_dir: Option<&Path>) -> Result<Self, String> {
        let config = TenantConfig::development(tenant);
        let tenants = BTreeMap::from([(
            tenant.to_owned(),
            Arc::new(Tenant::new(config, TenantKeys::default(), None, None)?),
        )]);
        Ok(Governance {
            config_dir: None,
            settings: HostSettings::default(),
            trusted_keys: Vec::new(),
            tenants,
            scope: None,
            default_tenant: tenant.to_owned(),
            approvals: approvals_for(&HostSettings::default(), data_dir)?,
            default_policy: PolicyEngine::permissive().map_err(|e| e.to_string())?,
        })
    }

    /// The host-wide settings of `host.toml` (defaults without `--config`).
    pub fn settings(&self) -> &HostSettings {
        &self.settings
    }

    /// Loads `<config>/host.toml` (optional) and `<config>/tenants/*.toml`.
    /// With `scope`, the host serves that tenant only.
    ///
    /// # Errors
    ///
    /// Names the file and field that is wrong; an unknown scope tenant; a
    /// policy manifest that fails verification.
    pub fn load(config_dir: &Path, scope: Option<&str>, data_dir: Option<&Path>) -> Result<Self, String> {
        let settings: HostSettings = match std::fs::read_to_string(config_dir.join("host.toml")) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| format!("{}: {e}", config_dir.join("host.toml").display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HostSettings::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", config_dir.join("host.toml").display())),
        };
        settings.limits.check().map_err(|e| format!("{}: {e}", config_dir.join("host.toml").display()))?;
        if settings.registry.dir.is_some()
            && settings.registry.backend != crate::settings::RegistryBackend::Local
        {
            return Err(format!(
                "{}: [registry] dir is for the local backend; an s3 registry has bucket, prefix and table",
                config_dir.join("host.toml").display()
            ));
        }
        let trusted_keys = settings
            .trusted_keys
            .iter()
            .map(|p| PublicKey::read(&config_dir.join(p)))
            .collect::<Result<Vec<_>, _>>()?;
        let configs = tenant::load_dir(&config_dir.join("tenants")).map_err(|e| e.to_string())?;
        if configs.is_empty() {
            return Err(format!("{} has no tenant files (*.toml)", config_dir.join("tenants").display()));
        }
        if let Some(scope) = scope
            && !configs.iter().any(|c| c.id == scope)
        {
            return Err(format!(
                "--tenant-scope `{scope}`: no such tenant in {}",
                config_dir.join("tenants").display()
            ));
        }
        check_mounts(config_dir, data_dir, &configs)?;
        let mut tenants = BTreeMap::new();
        for config in configs {
            let keys_of = |listed: &BTreeMap<String, PathBuf>, role: &str| {
                listed
                    .iter()
                    .map(|(name, path)| {
                        PublicKey::read(&config_dir.join(path))
                            .map(|key| (name.clone(), key))
                            .map_err(|e| format!("tenant `{}`: {role} `{name}`: {e}", config.id))
                    })
                    .collect::<Result<BTreeMap<_, _>, _>>()
            };
            let approvers = keys_of(&config.approvers, "approver")?;
            let keys = TenantKeys {
                approvers,
                principals: keys_of(&config.principals, "principal")?,
                publishers: keys_of(&config.publishers, "publisher")?,
            };
            let policy = match (&config.policy, &config.policy_digest) {
                (Some(path), Some(pinned)) => {
                    let loaded = LoadedPolicy::read(&config_dir.join(path), pinned, &trusted_keys)
                        .and_then(|p| p.check_bound_to(&config.id).map(|()| p))
                        .map_err(|e| format!("tenant `{}`: {e}", config.id))?;
                    Some(Arc::new(loaded))
                }
                _ => None,
            };
            let tenant_dir = match (config.isolation, data_dir) {
                (Isolation::Namespace, Some(dir)) => {
                    let own = dir.join("tenants").join(&config.id);
                    std::fs::create_dir_all(&own)
                        .map_err(|e| format!("cannot create {}: {e}", own.display()))?;
                    Some(own)
                }
                (_, dir) => dir.map(Path::to_owned),
            };
            tenants.insert(config.id.clone(), Arc::new(Tenant::new(config, keys, policy, tenant_dir)?));
        }
        let default_tenant = scope
            .map(str::to_owned)
            .or_else(|| settings.default_tenant.clone())
            .or_else(|| tenants.keys().next().cloned())
            .unwrap_or_default();
        let approvals = approvals_for(&settings, data_dir)?;
        Ok(Governance {
            config_dir: Some(config_dir.to_owned()),
            settings,
            trusted_keys,
            tenants,
            scope: scope.map(str::to_owned),
            default_tenant,
            approvals,
            default_policy: PolicyEngine::permissive().map_err(|e| e.to_string())?,
        })
    }

    /// Whether it came from a `--config` directory (not the development default).
    pub fn is_configured(&self) -> bool {
        self.config_dir.is_some()
    }

    pub fn default_tenant(&self) -> &str {
        &self.default_tenant
    }

    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    pub fn trusted_keys(&self) -> &[PublicKey] {
        &self.trusted_keys
    }

    pub fn require_signed_manifests(&self) -> bool {
        self.settings.require_signed_manifests
    }

    pub fn approvals(&self) -> Option<&ApprovalStore> {
        self.approvals.as_ref()
    }

    pub fn tenants(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.tenants.values()
    }

    /// The tenant a call may run for on this host.
    ///
    /// # Errors
    ///
    /// An unknown tenant; another tenant than `--tenant-scope`; an
    /// `account`-isolated tenant on a host not scoped to it.
    pub fn tenant(&self, id: &str) -> Result<&Arc<Tenant>, TenantError> {
        if let Some(scope) = &self.scope
            && scope != id
        {
            return Err(TenantError::OutOfScope(format!(
                "this host is scoped to tenant `{scope}` (--tenant-scope) and refuses tenant `{}`",
                crate::text::clip(id)
            )));
        }
        let tenant = self.tenants.get(id).ok_or_else(|| TenantError::Unknown {
            id: crate::text::clip(id),
            known: self.tenants.keys().cloned().collect(),
        })?;
        if tenant.config.isolation == Isolation::Account && self.scope.is_none() {
            return Err(TenantError::OutOfScope(format!(
                "tenant `{id}` has account isolation: it is served only by its own host, started with --tenant-scope {id}"
            )));
        }
        Ok(tenant)
    }

    /// The policy engine for a component: its tenant's stack, else the
    /// built-in permissive one; or the stack its manifest names, if the
    /// tenant's own stack allows exactly that one. A component never picks
    /// the stack it runs under on its own.
    ///
    /// # Errors
    ///
    /// A named stack bound to another tenant, one the tenant's stack does
    /// not list in `component_stacks` (or a tenant without a stack), or a
    /// log-only stack under an enforcing tenant.
    pub fn policy_for(
        &self,
        tenant: &Tenant,
        own: Option<&Arc<LoadedPolicy>>,
    ) -> Result<(Arc<PolicyEngine>, Option<Arc<LoadedPolicy>>), PackError> {
        let Some(own) = own else {
            return Ok(match &tenant.policy {
                Some(loaded) => (loaded.engine.clone(), Some(loaded.clone())),
                None => (self.default_policy.clone(), None),
            });
        };
        own.check_bound_to(tenant.id())?;
        let Some(theirs) = &tenant.policy else {
            return Err(PackError::Refused(format!(
                "its manifest names the policy stack {}, but tenant `{}` runs under no stack of its own to allow it (a component may name only a stack its tenant's stack lists in component_stacks)",
                own.path.display(),
                tenant.id()
            )));
        };
        if !theirs.manifest.component_stacks.iter().any(|d| *d == own.digest) {
            return Err(PackError::Refused(format!(
                "its manifest names the policy stack {} ({}), which tenant `{}`'s stack {} does not list in component_stacks; a component may not choose its own stack",
                own.path.display(),
                own.digest,
                tenant.id(),
                theirs.path.display()
            )));
        }
        if own.manifest.mode == policy::Mode::LogOnly && theirs.manifest.mode == policy::Mode::Enforce {
            return Err(PackError::Refused(format!(
                "its manifest names the log-only policy stack {}, but tenant `{}` enforces its policy; a component may not turn enforcement off",
                own.path.display(),
                tenant.id()
            )));
        }
        Ok((own.engine.clone(), Some(own.clone())))
    }

    /// Reads a component's manifest, verifying its signature and (if it
    /// names one) its policy manifest.
    ///
    /// # Errors
    ///
    /// As [`ComponentManifest::read`], [`ComponentManifest::verify`] and
    /// [`LoadedPolicy::read`].
    pub fn read_manifest(
        &self,
        path: &Path,
    ) -> Result<(ComponentManifest, Option<Arc<LoadedPolicy>>), ManifestError> {
        self.accept_manifest(ComponentManifest::read(path)?)
    }

    /// A manifest that did not come from a file beside its component (a
    /// registry's): its signature checked as [`Governance::read_manifest`]
    /// does, a relative `policy` path taken from the config directory.
    ///
    /// # Errors
    ///
    /// As [`Governance::read_manifest`], naming `what`.
    pub fn parse_manifest(
        &self,
        text: &str,
        what: &str,
    ) -> Result<(ComponentManifest, Option<Arc<LoadedPolicy>>), ManifestError> {
        // Peek at the raw `policy` before it is joined to the base: a
        // deployer names a stack in the config directory, never a path of
        // its own choosing on this host.
        if let Some(policy) = toml::from_str::<toml::Table>(text)
            .ok()
            .and_then(|t| t.get("policy").and_then(|p| p.as_str().map(PathBuf::from)))
            && !policy.components().all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            return Err(ManifestError::Invalid(format!(
                "{what}: policy `{}` must be a path inside the host's config directory (relative, without `..`)",
                policy.display()
            )));
        }
        let base = self.config_dir.as_deref().unwrap_or(Path::new("."));
        self.accept_manifest(ComponentManifest::parse(text, what, base)?)
    }

    fn accept_manifest(
        &self,
        manifest: ComponentManifest,
    ) -> Result<(ComponentManifest, Option<Arc<LoadedPolicy>>), ManifestError> {
        manifest.verify(&self.trusted_keys, self.settings.require_signed_manifests)?;
        let policy = match (&manifest.policy, &manifest.policy_digest) {
            (Some(p), Some(pinned)) => Some(Arc::new(LoadedPolicy::read(p, pinned, &self.trusted_keys)?)),
            _ => None,
        };
        Ok((manifest, policy))
    }

    pub fn config_dir(&self) -> Option<&Path> {
        self.config_dir.as_deref()
    }
}

/// Checks every tenant's mounts before anything runs: each must exist;
/// none may nest in another (of any tenant) — a guest with write access to
/// the outer one could swap the inner one's path for a symlink before it
/// is opened; two tenants may share a directory only read-only (else it is
/// a channel between them); and none may reach into the host's own config
/// or data directory, or contain them.
fn check_mounts(config_dir: &Path, data_dir: Option<&Path>, configs: &[TenantConfig]) -> Result<(), String> {
    let mut roots: Vec<(PathBuf, String, &str, bool)> = Vec::new();
    for config in configs {
        for mount in &config.grants.mounts {
            let host =
                if mount.host.is_relative() { config_dir.join(&mount.host) } else { mount.host.clone() };
            let name = format!("tenant `{}` mount `{}`", config.id, mount.guest);
            let resolved = host
                .canonicalize()
                .map_err(|e| format!("{name} ({}) cannot be used: {e} (grants.mounts)", host.display()))?;
            roots.push((resolved, name, config.id.as_str(), mount.writable));
        }
    }
    let own: Vec<(PathBuf, &str)> =
        [(Some(config_dir), "the config directory"), (data_dir, "the data directory")]
            .into_iter()
            .filter_map(|(dir, what)| dir.and_then(|d| d.canonicalize().ok()).map(|d| (d, what)))
            .collect();
    for (root, name, _, _) in &roots {
        for (dir, what) in &own {
            if root.starts_with(dir) || dir.starts_with(root) {
                return Err(format!(
                    "{name} ({}) overlaps {what} ({}): a guest may never see the host's own files (grants.mounts)",
                    root.display(),
                    dir.display()
                ));
            }
        }
    }
    for (i, (a, a_name, a_tenant, a_writable)) in roots.iter().enumerate() {
        for (b, b_name, b_tenant, b_writable) in roots.iter().skip(i + 1) {
            if a == b {
                if a_tenant != b_tenant && (*a_writable || *b_writable) {
                    return Err(format!(
                        "{a_name} and {b_name} share {} and one of them may write it: tenants may share a directory only read-only (grants.mounts)",
                        a.display()
                    ));
                }
                continue;
            }
            let (inner, inner_name, outer_name) = if a.starts_with(b) {
                (a, a_name, b_name)
            } else if b.starts_with(a) {
                (b, b_name, a_name)
            } else {
                continue;
            };
            return Err(format!(
                "{inner_name} ({}) lies inside {outer_name}: mounts may not nest (grants.mounts)",
                inner.display()
            ));
        }
    }
    Ok(())
}

/// Computes what a component is granted. See the module docs.
///
/// # Errors
///
/// A requested mount the tenant does not offer (or whose host directory
/// is missing), a tool tier above the pack's `max_tier`.
pub fn effective_grant(
    tenant: &Tenant,
    manifest: Option<&ComponentManifest>,
    world: World,
    tier: Option<Tier>,
    policy: Option<&LoadedPolicy>,
    config_dir: Option<&Path>,
) -> Result<Grant, String> {
    let id = tenant.id();
    let config = &tenant.config;
    let constraints = policy.map(|p| &p.manifest.constraints);
    if let (Some(tier), Some(max)) = (tier, constraints.and_then(|c| c.max_tier))
        && tier > max
    {
        return Err(format!(
            "its risk tier {tier} is above the policy pack's max_tier {max} ({})",
            policy.map_or("", |p| p.engine.source())
        ));
    }
    let mut grant = Grant::nothing();
    for capability in world.imports() {
        let reason = if !config.interfaces().any(|c| c == *capability) {
            Some(format!("tenant `{id}` does not grant it (grants.interfaces)"))
        } else if manifest.is_some_and(|m| !m.interfaces().any(|c| c == *capability)) {
            Some("its manifest does not request it (requests.interfaces)".to_owned())
        } else if tier == Some(Tier::Read) && *capability == Capability::Events {
            Some(format!("a read-tier {} may not publish events (tier ceiling)", world.name()))
        } else {
            None
        };
        match reason {
            Some(reason) => {
                grant.removed.insert(*capability, reason);
            }
            None => {
                grant.capabilities.insert(*capability);
            }
        }
    }
    let requests = manifest.map(|m| &m.requests);
    let names = |tenant_patterns: &Patterns, field: &str, requested: Option<&Patterns>| {
        let mut names = Names::all().and(format!("tenant `{id}` (grants.{field})"), tenant_patterns.clone());
        if let Some(requested) = requested {
            names = names.and(format!("the component's manifest (requests.{field})"), requested.clone());
        }
        names
    };
    grant.tools = names(&config.grants.tools, "tools", requests.map(|r| &r.tools));
    grant.memory_namespaces =
        names(&config.grants.memory_namespaces, "memory_namespaces", requests.map(|r| &r.memory_namespaces));
    grant.topics = names(&config.grants.topics, "topics", requests.map(|r| &r.topics));
    grant.models = names(&config.grants.models, "models", requests.map(|r| &r.models));
    if let Some(models) = constraints.and_then(|c| c.allowed_models.as_ref()) {
        grant.models = grant.models.and("the policy pack (constraints.allowed_models)", models.clone());
    }
    grant.memory_write = tier != Some(Tier::Read);
    grant.max_classification = constraints.and_then(|c| c.max_classification);
    if let Some(requests) = requests {
        for key in &requests.env {
            if let Some(value) = config.grants.env.get(key) {
                grant.env.insert(key.clone(), value.clone());
            }
        }
        for guest in &requests.mounts {
            let Some(offer) = config.grants.mounts.iter().find(|m| &m.guest == guest) else {
                return Err(format!(
                    "its manifest requests the mount `{guest}`, which tenant `{id}` does not grant (grants.mounts)"
                ));
            };
            let host = match config_dir {
                Some(dir) if offer.host.is_relative() => dir.join(&offer.host),
                _ => offer.host.clone(),
            };
            // Not canonicalized: the path is opened as written, component
            // by component, and refused if any of them is a symlink.
            if !host.is_absolute() {
                return Err(format!(
                    "tenant `{id}` mounts {} at `{guest}`, which is not an absolute path",
                    host.display()
                ));
            }
            grant.mounts.push(Mount {
                host,
                guest: guest.clone(),
                writable: offer.writable && tier != Some(Tier::Read),
            });
        }
    }
    let mut egress = EgressPolicy::from_tenant(&format!("tenant `{id}`"), &config.grants.network)?;
    if requests.is_none() {
        // Raw network is asked for, never assumed.
        egress.without_sockets("no manifest requests sockets (requests.sockets)".to_owned());
        egress.without_dns("no manifest requests name lookups (requests.dns)".to_owned());
    }
    if let Some(r) = requests {
        egress = egress.and("the component's manifest (requests.egress)", &r.egress)?;
        if !r.sockets {
            egress.without_sockets("its manifest does not request sockets (requests.sockets)".to_owned());
        }
        if !r.dns {
            egress.without_dns("its manifest does not request name lookups (requests.dns)".to_owned());
        }
    }
    if let Some(ceiling) = constraints.and_then(|c| c.egress_ceiling.as_ref()) {
        egress = egress.and("the policy pack (constraints.egress_ceiling)", ceiling)?;
    }
    if constraints.and_then(|c| c.dns) == Some(false) {
        egress.without_dns("the policy pack turns name lookups off (constraints.dns)".to_owned());
    }
    // A guest's own name lookups only serve its raw sockets (the host
    // resolves HTTP itself): with no socket destination left after every
    // layer, the ceiling included, lookups go too.
    if egress.dns && !egress.sockets_granted() {
        let why = format!("name lookups serve raw sockets, and {}", egress.why_no_sockets());
        egress.without_dns(why);
    }
    if tier == Some(Tier::Read) {
        egress.methods = Some(
            config
                .grants
                .network
                .read_tier_methods
                .clone()
                .unwrap_or_else(|| vec!["GET".into(), "HEAD".into()]),
        );
    }
    grant.egress = egress;
    Ok(grant)
}
