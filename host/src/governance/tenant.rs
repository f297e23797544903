//! Tenant configuration: one TOML file per tenant under `<config>/tenants/`,
//! declaring the isolation model, quotas, and what the tenant's components
//! may be granted. See the README's "Governance" section for a full file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::error::TenantError;
use super::names::Patterns;
use crate::vocab::Capability;

/// How a tenant is separated from the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// Per-tenant stores, quotas and grants in one shared process.
    #[default]
    Shared,
    /// Its own worker pool, concurrency, memory budget and data directory.
    Namespace,
    /// Its own host: served only by a host started with `--tenant-scope <id>`.
    Account,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Shared => "shared",
            Isolation::Namespace => "namespace",
            Isolation::Account => "account",
        }
    }
}

/// A tenant file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub isolation: Isolation,
    #[serde(default)]
    pub quotas: Quotas,
    #[serde(default)]
    pub grants: TenantGrants,
    /// Names that may approve this tenant's calls, with their public keys
    /// (SPKI PEM files, relative to the config directory).
    #[serde(default)]
    pub approvers: BTreeMap<String, PathBuf>,
    /// People and services that may call as themselves (`run --as NAME
    /// --key KEY`), with their public keys. Approvers may call as well.
    #[serde(default)]
    pub principals: BTreeMap<String, PathBuf>,
    /// Who may publish this tenant's component versions to a registry,
    /// with their public keys: a version is served only with a signature
    /// by one of them over its digest, name and version.
    #[serde(default)]
    pub publishers: BTreeMap<String, PathBuf>,
    /// The tenant's signed policy stack (from `agenthost policy resolve
    /// --tenant <id>`), which governs its components.
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// `sha256:` of that file: the one stack this tenant runs under (an
    /// older, still valid one is refused).
    #[serde(default)]
    pub policy_digest: Option<String>,
    /// The tenant's own model backend, instead of the host's `[model]`.
    #[serde(default)]
    pub model: Option<crate::settings::ModelSettings>,
}

/// Per-tenant quotas. Each is optional; an absent one is unlimited (for
/// rates) or the host default (for per-call limits).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Top-level invocations running at once.
    pub concurrent_invocations: Option<u32>,
    /// Fuel for one call (caps the component's own).
    pub fuel_per_call: Option<u64>,
    /// Fuel all the tenant's calls may burn in a minute.
    pub fuel_per_minute: Option<u64>,
    /// Linear memory of one instance, in bytes (caps the component's own).
    pub memory_per_instance: Option<u64>,
    /// Model tokens (input + output, counted from responses) per minute.
    pub model_tokens_per_minute: Option<u64>,
    /// Calls of `write-low` tools per minute.
    pub write_low_per_minute: Option<u64>,
    /// Host calls (memory, events, tools, model, audit) per minute.
    pub host_calls_per_minute: Option<u64>,
    /// Host calls one call may make (caps the host's default of 10 000).
    pub host_calls_per_call: Option<u64>,
    /// Linear memory all the tenant's live instances may hold together.
    pub memory_pool_bytes: Option<u64>,
    /// Worker threads of the tenant's own pool (`namespace` isolation; default 2).
    pub workers: Option<u32>,
    /// Approval requests waiting for decisions at once (default 100): a
    /// call that would make one more is refused (`limit-exceeded`).
    pub pending_approvals: Option<u32>,
}

/// What a tenant's components may be granted at most.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantGrants {
    /// Platform interfaces: log, model, memory, events, tools, audit.
    #[serde(default = "all_interfaces")]
    pub interfaces: Vec<String>,
    #[serde(default)]
    pub memory_namespaces: Patterns,
    #[serde(default)]
    pub topics: Patterns,
    /// Tools (of this tenant) an agent may call.
    #[serde(default)]
    pub tools: Patterns,
    #[serde(default)]
    pub models: Patterns,
    /// Critical tools this tenant explicitly enables (still two approvals each).
    #[serde(default)]
    pub enable_critical: Vec<String>,
    /// Environment variables a component may request, with their values.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub mounts: Vec<MountGrant>,
    #[serde(default)]
    pub network: NetworkGrant,
}

fn all_interfaces() -> Vec<String> {
    Capability::ALL.iter().map(|c| c.interface().to_owned()).collect()
}

impl Default for TenantGrants {
    fn default() -> Self {
        TenantGrants {
            interfaces: all_interfaces(),
            memory_namespaces: Patterns::default(),
            topics: Patterns::default(),
            tools: Patterns::default(),
            models: Patterns::default(),
            enable_critical: Vec::new(),
            env: BTreeMap::new(),
            mounts: Vec::new(),
            network: NetworkGrant::default(),
        }
    }
}

/// A host directory offered to the tenant's components at a guest path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountGrant {
    /// Host directory; relative paths are under the config directory.
    pub host: PathBuf,
    /// Absolute path the guest sees, e.g. `/docs`.
    pub guest: String,
    /// Read-only unless set.
    #[serde(default)]
    pub writable: bool,
}

/// Outbound network the tenant's components may use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkGrant {
    /// Outgoing HTTP allow-list: `scheme://host[:port]`, where host may be
    /// `*.example.com` and port `*`; no port means the scheme's default.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Address ranges (CIDR) that may be reached even though they are
    /// loopback, private or link-local. Empty: none of those, ever.
    #[serde(default)]
    pub allow_addresses: Vec<String>,
    /// Name lookups through `wasi:sockets/ip-name-lookup`.
    #[serde(default)]
    pub dns: bool,
    /// Raw TCP/UDP through `wasi:sockets`, to what `tcp://`/`udp://` rules
    /// in `allow` (and the manifest's and the pack's) let through.
    #[serde(default)]
    pub sockets: bool,
    /// HTTP methods a read-tier component may send [default: GET, HEAD].
    #[serde(default)]
    pub read_tier_methods: Option<Vec<String>>,
}

impl TenantConfig {
    /// The development tenant used when no `--config` is given: every
    /// interface, every name, no mounts, no env, no network.
    pub fn development(id: &str) -> Self {
        TenantConfig {
            id: id.to_owned(),
            description: "development default (no --config)".to_owned(),
            isolation: Isolation::Shared,
            quotas: Quotas::default(),
            grants: TenantGrants {
                memory_namespaces: Patterns::everything(),
                topics: Patterns::everything(),
                tools: Patterns::everything(),
                models: Patterns::everything(),
                ..TenantGrants::default()
            },
            approvers: BTreeMap::new(),
            principals: BTreeMap::new(),
            publishers: BTreeMap::new(),
            policy: None,
            policy_digest: None,
            model: None,
        }
    }

    /// Parses and checks one tenant file.
    ///
    /// # Errors
    ///
    /// Names the file and the field that is wrong.
    pub fn parse(path: &Path, text: &str) -> Result<Self, TenantError> {
        let invalid = |e: String| TenantError::Invalid(format!("tenant file {}: {e}", path.display()));
        let config: TenantConfig = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        config.check().map_err(invalid)?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if stem != config.id {
            return Err(TenantError::Invalid(format!(
                "tenant file {}: its id is `{}` but the file is named `{stem}.toml`; name it `{}.toml`",
                path.display(),
                config.id,
                config.id
            )));
        }
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if !valid_id(&self.id) {
            return Err(format!(
                "id `{}` is not of the form [a-z0-9][a-z0-9-]* (at most 63 characters)",
                self.id
            ));
        }
        for name in &self.grants.interfaces {
            if Capability::from_interface(name).is_none() {
                return Err(format!(
                    "grants.interfaces: `{name}` is not a platform interface (log, model, memory, events, tools, audit)"
                ));
            }
        }
        for mount in &self.grants.mounts {
            check_guest_path(&mount.guest).map_err(|e| format!("grants.mounts: {e}"))?;
        }
        for pattern in &self.grants.network.allow {
            super::egress::EgressRule::parse(pattern).map_err(|e| format!("grants.network.allow: {e}"))?;
        }
        for method in self.grants.network.read_tier_methods.iter().flatten() {
            if method.parse::<http::Method>().is_err() || method.is_empty() {
                return Err(format!("grants.network.read_tier_methods: `{method}` is not an HTTP method"));
            }
        }
        for cidr in &self.grants.network.allow_addresses {
            cidr.parse::<ipnet::IpNet>().map_err(|_| {
                format!("grants.network.allow_addresses: `{cidr}` is not a CIDR range such as 127.0.0.0/8")
            })?;
        }
        if self.policy.is_none() && self.policy_digest.is_some() {
            return Err("policy_digest is set but policy (the file it pins) is not".to_owned());
        }
        if self.policy.is_some() && self.policy_digest.is_none() {
            return Err(
                "policy_digest is missing: a tenant's policy stack is pinned by the digest `agenthost policy resolve` prints"
                    .to_owned(),
            );
        }
        if let Some(0) = self.quotas.concurrent_invocations {
            return Err("quotas.concurrent_invocations must be at least 1".to_owned());
        }
        if let Some(workers) = self.quotas.workers
            && !(1..=64).contains(&workers)
        {
            return Err(format!("quotas.workers must be between 1 and 64, not {workers}"));
        }
        if self.quotas.workers.is_some() && self.isolation != Isolation::Namespace {
            return Err(
                "quotas.workers applies only to isolation = \"namespace\" (its own worker pool)".to_owned()
            );
        }
        Ok(())
    }

    pub fn interfaces(&self) -> impl Iterator<Item = Capability> + '_ {
        self.grants.interfaces.iter().filter_map(|name| Capability::from_interface(name))
    }
}

pub(crate) fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && id.len() <= 63
}

/// A guest mount point: absolute, normalised, not `/`.
pub(crate) fn check_guest_path(path: &str) -> Result<(), String> {
    let ok = path.starts_with('/')
        && path.len() > 1
        && !path.ends_with('/')
        && path.split('/').skip(1).all(|part| !part.is_empty() && part != "." && part != "..");
    if ok {
        Ok(())
    } else {
        Err(format!("guest path `{path}` must be absolute, normalised and not `/` (e.g. `/docs`)"))
    }
}

/// Reads every `*.toml` in `dir`.
///
/// # Errors
///
/// The first file that cannot be read or parsed (the file name must be
/// the id, so two files cannot share one).
pub fn load_dir(dir: &Path) -> Result<Vec<TenantConfig>, TenantError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| TenantError::Unreadable { path: dir.to_owned(), source: e })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    let mut tenants = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| TenantError::Unreadable { path: path.clone(), source: e })?;
        tenants.push(TenantConfig::parse(&path, &text)?);
    }
    Ok(tenants)
}

/// A fixed one-minute window counter for a per-minute quota. Windows are
/// wall-clock minutes (Unix seconds / 60), so that every process of a host
/// counts the same window, and what a process used can be kept in a
/// [`QuotaLedger`] between calls and between processes: running the CLI
/// again does not hand a tenant a fresh minute.
#[derive(Debug)]
pub struct RateWindow {
    limit: Option<u64>,
    /// The quota's name, as the ledger keys it.
    name: &'static str,
    state: Mutex<WindowState>,
}

#[derive(Debug, Default)]
struct WindowState {
    /// The minute counted.
    window: u64,
    /// Used in it, as far as this process knows (its own use included).
    used: u64,
    /// Used by this process and not yet added to the ledger.
    unflushed: u64,
}

/// The current wall-clock minute.
fn minute() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() / 60)
}

/// Where per-minute use is kept between calls and processes.
pub trait QuotaLedger: Send + Sync {
    /// Adds `amount` to what `tenant` used of `quota` in `window` and
    /// returns the new total (`amount` 0 reads it).
    fn add<'a>(
        &'a self,
        tenant: &'a str,
        quota: &'a str,
        window: u64,
        amount: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, String>> + Send + 'a>>;
}

impl RateWindow {
    pub fn new(name: &'static str, limit: Option<u64>) -> Self {
        RateWindow {
            limit,
            name,
            state: Mutex::new(WindowState { window: minute(), ..WindowState::default() }),
        }
    }

    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Runs `f` on the amount used in the current window (starting a new
    /// window each minute); `Err(limit)` when there is a limit and `f`
    /// refuses, `Ok` without a limit.
    fn with_used(&self, f: impl FnOnce(&mut WindowState, u64) -> bool) -> Result<(), u64> {
        let Some(limit) = self.limit else { return Ok(()) };
        let Ok(mut state) = self.state.lock() else { return Err(limit) };
        let now = minute();
        if state.window != now {
            *state = WindowState { window: now, ..WindowState::default() };
        }
        if f(&mut state, limit) { Ok(()) } else { Err(limit) }
    }

    /// Takes `amount` if the window has room for it.
    ///
    /// # Errors
    ///
    /// The limit, when the window is full.
    pub fn take(&self, amount: u64) -> Result<(), u64> {
        self.with_used(|state, limit| {
            let fits = state.used.saturating_add(amount) <= limit;
            if fits {
                state.used = state.used.saturating_add(amount);
                state.unflushed = state.unflushed.saturating_add(amount);
            }
            fits
        })
    }

    /// Whether anything is left in the window (for budgets counted after use).
    ///
    /// # Errors
    ///
    /// The limit, when the window is spent.
    pub fn check(&self) -> Result<(), u64> {
        self.with_used(|state, limit| state.used < limit)
    }

    /// Counts what was used, even past the limit (the next check refuses).
    pub fn record(&self, amount: u64) {
        let _ = self.with_used(|state, _| {
            state.used = state.used.saturating_add(amount);
            state.unflushed = state.unflushed.saturating_add(amount);
            true
        });
    }

    /// Adds this process's unflushed use to the ledger and takes the
    /// ledger's total (everyone's use this minute) as what is used.
    ///
    /// # Errors
    ///
    /// When the ledger cannot be reached (the use stays to be flushed).
    pub async fn sync(&self, tenant: &str, ledger: &dyn QuotaLedger) -> Result<(), String> {
        if self.limit.is_none() {
            return Ok(());
        }
        let (window, amount) = match self.state.lock() {
            Ok(mut state) => {
                let now = minute();
                if state.window != now {
                    *state = WindowState { window: now, ..WindowState::default() };
                }
                (state.window, std::mem::take(&mut state.unflushed))
            }
            Err(_) => return Ok(()),
        };
        match ledger.add(tenant, self.name, window, amount).await {
            Ok(total) => {
                if let Ok(mut state) = self.state.lock()
                    && state.window == window
                {
                    state.used = state.used.max(total.saturating_add(state.unflushed));
                }
                Ok(())
            }
            Err(e) => {
                if let Ok(mut state) = self.state.lock()
                    && state.window == window
                {
                    state.unflushed = state.unflushed.saturating_add(amount);
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_file_with_a_typo_names_the_field() {
        let err = TenantConfig::parse(Path::new("acme.toml"), "id = \"acme\"\n[quotas]\nfuel_per_cal = 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("fuel_per_cal"), "{err}");
        let err =
            TenantConfig::parse(Path::new("acme.toml"), "id = \"acme\"\n[grants]\ninterfaces = [\"disk\"]\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("`disk` is not a platform interface"), "{err}");
        let err = TenantConfig::parse(Path::new("other.toml"), "id = \"acme\"\n").unwrap_err().to_string();
        assert!(err.contains("name it `acme.toml`"), "{err}");
    }

    #[test]
    fn a_window_refuses_past_its_limit() {
        let window = RateWindow::new("test", Some(3));
        assert_eq!(window.take(2), Ok(()));
        assert_eq!(window.take(1), Ok(()));
        assert_eq!(window.take(1), Err(3));
        assert_eq!(RateWindow::new("test", None).take(u64::MAX), Ok(()));
    }
}
