//! The settings of a host, parsed from `<config>/host.toml`: one struct per
//! section. Only data lives here; each section is put to work by the module
//! that owns it (`backends` opens the audit trail and the brokers from
//! theirs; `keystore`, `governance` and `aws` read their own), all from this
//! one place.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::aws::AwsSettings;

/// `<config>/host.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSettings {
    /// Public keys (SPKI PEM, relative to the config dir) whose signatures
    /// on policy manifests and component manifests this host accepts.
    #[serde(default)]
    pub trusted_keys: Vec<PathBuf>,
    /// Refuse components whose manifest is not signed by a trusted key.
    #[serde(default)]
    pub require_signed_manifests: bool,
    /// The tenant a call runs for when none is named.
    #[serde(default)]
    pub default_tenant: Option<String>,
    /// Where AWS clients send their calls (endpoint, region, timeouts).
    #[serde(default)]
    pub aws: AwsSettings,
    /// The audit trail: checkpoints, segments, the S3 Object Lock sink.
    #[serde(default)]
    pub audit: AuditSettings,
    /// The memory backend.
    #[serde(default)]
    pub memory: MemorySettings,
    /// The model backend.
    #[serde(default)]
    pub model: ModelSettings,
    /// The events backend.
    #[serde(default)]
    pub events: EventSettings,
    /// Guests' outgoing HTTPS.
    #[serde(default)]
    pub egress: EgressSettings,
    /// Where the host's own keys (audit signing, cache) come from.
    #[serde(default)]
    pub keys: KeySettings,
    /// `agenthost serve`: listening, limits and who may call.
    #[serde(default)]
    pub server: ServerSettings,
    /// Where component versions are kept.
    #[serde(default)]
    pub registry: RegistrySettings,
    /// Every call's limits on a server or a Lambda function (`serve`,
    /// `lambda`); a component's manifest and its tenant's quotas may only
    /// lower them.
    #[serde(default)]
    pub limits: LimitSettings,
}

/// `[limits]` in host.toml: the host's default per-call limits. Each is
/// optional; an absent one keeps the built-in default.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Wall-clock time of one call, in milliseconds [default: 10 000].
    pub timeout_ms: Option<u64>,
    /// Fuel (about one unit per wasm instruction) of one call [default: 2e9].
    pub fuel: Option<u64>,
    /// Linear memory of one instance, in bytes [default: 64 MiB].
    pub memory_bytes: Option<u64>,
    /// Largest output of one call, in bytes [default: 1 MiB].
    pub output_bytes: Option<u64>,
    /// Host calls one call may make [default: 10 000].
    pub host_calls: Option<u64>,
}

impl LimitSettings {
    /// A zero budget would fail every call: refused when the host starts.
    ///
    /// # Errors
    /// Names the key that is zero.
    pub fn check(&self) -> Result<(), String> {
        let keys = [
            ("timeout_ms", self.timeout_ms),
            ("fuel", self.fuel),
            ("memory_bytes", self.memory_bytes),
            ("output_bytes", self.output_bytes),
            ("host_calls", self.host_calls),
        ];
        match keys.iter().find(|(_, value)| *value == Some(0)) {
            Some((key, _)) => {
                Err(format!("[limits] {key} = 0 would fail every call; leave it out for the default"))
            }
            None => Ok(()),
        }
    }
}

/// `[egress]` in host.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressSettings {
    /// PEM CA certificates (relative to the config dir) that guests' HTTPS
    /// servers may chain to besides the web PKI roots, e.g. a corporate CA.
    #[serde(default)]
    pub ca_files: Vec<PathBuf>,
}

/// `[audit]` in host.toml.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Keep an audit trail under `<data-dir>/audit` (default true).
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// This host's stream name [default: `host`].
    #[serde(default)]
    pub stream: Option<String>,
    #[serde(default)]
    pub checkpoint_every: Option<u64>,
    #[serde(default)]
    pub checkpoint_interval_ms: Option<u64>,
    #[serde(default)]
    pub segment_bytes: Option<u64>,
    /// Copy sealed segments to S3 with Object Lock.
    #[serde(default)]
    pub s3: Option<S3Settings>,
}

fn enabled() -> bool {
    true
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            enabled: true,
            stream: None,
            checkpoint_every: None,
            checkpoint_interval_ms: None,
            segment_bytes: None,
            s3: None,
        }
    }
}

/// The Object Lock retention mode of uploaded segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum RetentionMode {
    /// Nobody can delete or overwrite the object before the date.
    #[default]
    Compliance,
    /// Users with `s3:BypassGovernanceRetention` can.
    Governance,
}

/// `[audit.s3]` in host.toml.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub retention_mode: RetentionMode,
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

fn default_retention_days() -> u32 {
    365
}

/// `[memory]` in host.toml.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MemorySettings {
    #[serde(default)]
    pub backend: MemoryBackend,
    /// DynamoDB: the table (`agenthost aws bootstrap` creates it).
    #[serde(default)]
    pub table: Option<String>,
    /// Embedded: wait for the disk on every write (default true).
    #[serde(default)]
    pub durable: Option<bool>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryBackend {
    /// redb under `<data-dir>/memory/`.
    #[default]
    Embedded,
    Dynamodb,
    /// This process only; gone when it exits.
    InProcess,
}

/// The default DynamoDB table name.
pub const DEFAULT_TABLE: &str = "agenthost-memory";

/// `[model]` in host.toml, or in a tenant file for that tenant's own backend.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    #[serde(default)]
    pub backend: ModelBackendKind,
    /// The model a request without `model-id` goes to.
    #[serde(default)]
    pub default_model: Option<String>,
    /// `openai`: the API root, e.g. `http://127.0.0.1:8080/v1`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `openai`: the environment variable holding the API key, if the server wants one.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// `openai`: give up on a request after this long.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ModelBackendKind {
    #[default]
    Builtin,
    Bedrock,
    Openai,
}

/// `[events]` in host.toml.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    #[serde(default)]
    pub backend: EventBackend,
    /// SQS (and EventBridge delivery): the queue's name.
    #[serde(default)]
    pub queue: Option<String>,
    /// EventBridge: the bus name (`default` for the account's default bus).
    #[serde(default)]
    pub bus: Option<String>,
    /// Queue messages may also be direct calls (`{"tenant", "tool"|"agent",
    /// "input"}`), run for `lambda:<principal>`: whoever may send to the
    /// queue may then call any tenant's tools, so grant `sqs:SendMessage`
    /// as narrowly as `lambda:InvokeFunction` [default: false].
    #[serde(default)]
    pub direct_calls: bool,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum EventBackend {
    #[default]
    InProcess,
    Sqs,
    Eventbridge,
}

/// The default queue name.
pub const DEFAULT_QUEUE: &str = "agenthost-events";

/// `[keys]` in host.toml.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    /// Where the keys come from [default: a key directory].
    #[serde(default)]
    pub source: KeySource,
    /// The key directory [default: `<data-dir>/keys`].
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Secrets Manager: the secret holding the audit signing key (PKCS#8 PEM).
    #[serde(default)]
    pub audit_secret: Option<String>,
    /// Secrets Manager: the secret holding the cache key (64 hex digits).
    #[serde(default)]
    pub cache_secret: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum KeySource {
    #[default]
    Dir,
    Secretsmanager,
}

/// The default names of the two secrets in Secrets Manager.
pub const DEFAULT_AUDIT_SECRET: &str = "agenthost/audit-signing-key";
pub const DEFAULT_CACHE_SECRET: &str = "agenthost/cache-key";

/// `[server]` in host.toml: what `agenthost serve` listens on, the bounds
/// it puts on every request, and the token issuers it trusts.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// The address to listen on [default: `127.0.0.1:8080`].
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The largest request body but a deploy's, in bytes [default: 1 MiB].
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// The largest request head (request line and headers), in bytes [default: 16 KiB].
    #[serde(default = "default_header_limit")]
    pub header_limit_bytes: usize,
    /// A client must send its whole request head within this [default: 5 s].
    #[serde(default = "default_header_timeout")]
    pub header_timeout_ms: u64,
    /// A request must be answered within this, or it gets 504 [default: 60 s].
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// Connections open at once [default: 4096]; more wait to be accepted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections one client address may hold [default: 256]; more are
    /// closed at once.
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: usize,
    /// A connection whose client reads nothing of an answer for this long
    /// is closed [default: 10 s].
    #[serde(default = "default_write_stall")]
    pub write_stall_ms: u64,
    /// The largest body of a deploy (`POST .../components`), in bytes
    /// [default: 16 MiB]; every other route takes `body_limit_bytes`.
    #[serde(default = "default_deploy_limit")]
    pub deploy_limit_bytes: usize,
    /// On SIGTERM/SIGINT, keep serving this long while `/readyz` answers
    /// 503, so load balancers stop sending first [default: 0; on Kubernetes
    /// a few seconds].
    #[serde(default)]
    pub shutdown_delay_ms: u64,
    /// On SIGTERM/SIGINT, calls in flight get this long to finish [default: 20 s].
    #[serde(default = "default_drain")]
    pub drain_timeout_ms: u64,
    /// Calls (invoke, run) running at once across all tenants [default: 256].
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    /// Calls running at once for one tenant [default: 64]. A tenant's own
    /// `quotas.concurrent_invocations` is enforced as well.
    #[serde(default = "default_tenant_in_flight")]
    pub tenant_in_flight: u32,
    /// The `Retry-After` a refused call is told, in seconds [default: 1].
    #[serde(default = "default_retry_after")]
    pub retry_after_secs: u64,
    /// Component versions not called for this long are unloaded [default: 15 min].
    #[serde(default = "default_idle_unload")]
    pub idle_unload_secs: u64,
    /// Runs kept for `GET .../runs/{id}` [default: 10 000]; the oldest go first.
    #[serde(default = "default_runs_kept")]
    pub runs_kept: usize,
    /// Token issuers whose bearer JWTs the server accepts. None: every
    /// request but `/healthz` is refused.
    #[serde(default)]
    pub issuers: Vec<IssuerSettings>,
    /// Agents that run for events (`[[server.subscriptions]]`), resolved
    /// through the registry (the agent's `stable` version) per event.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionSettings>,
}

/// `[[server.subscriptions]]`: an agent of a tenant, run for each event of
/// that tenant whose topic matches.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSettings {
    pub tenant: String,
    /// A topic name or a `prefix.*` pattern.
    pub topic: String,
    /// The agent's component name in the registry.
    pub agent: String,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: default_listen(),
            body_limit_bytes: default_body_limit(),
            header_limit_bytes: default_header_limit(),
            header_timeout_ms: default_header_timeout(),
            request_timeout_ms: default_request_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_client: default_max_connections_per_client(),
            write_stall_ms: default_write_stall(),
            deploy_limit_bytes: default_deploy_limit(),
            shutdown_delay_ms: 0,
            drain_timeout_ms: default_drain(),
            max_in_flight: default_max_in_flight(),
            tenant_in_flight: default_tenant_in_flight(),
            retry_after_secs: default_retry_after(),
            idle_unload_secs: default_idle_unload(),
            runs_kept: default_runs_kept(),
            issuers: Vec::new(),
            subscriptions: Vec::new(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}
fn default_body_limit() -> usize {
    1 << 20
}
fn default_header_limit() -> usize {
    16 << 10
}
fn default_header_timeout() -> u64 {
    5_000
}
fn default_request_timeout() -> u64 {
    60_000
}
fn default_max_connections() -> usize {
    4096
}
fn default_max_connections_per_client() -> usize {
    256
}
fn default_write_stall() -> u64 {
    10_000
}
fn default_deploy_limit() -> usize {
    16 << 20
}
fn default_drain() -> u64 {
    20_000
}
fn default_max_in_flight() -> u32 {
    256
}
fn default_tenant_in_flight() -> u32 {
    64
}
fn default_retry_after() -> u64 {
    1
}
fn default_idle_unload() -> u64 {
    900
}
fn default_runs_kept() -> usize {
    10_000
}

/// `[[server.issuers]]`: one issuer of bearer tokens, its keys, and where
/// its claims put the tenants and roles.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IssuerSettings {
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// The `aud` its tokens must carry [default: `agenthost`].
    #[serde(default = "default_audience")]
    pub audience: String,
    /// Public keys (PEM: Ed25519, RSA or EC P-256; relative to the config dir).
    #[serde(default)]
    pub keys: Vec<PathBuf>,
    /// A JWKS file (relative to the config dir), read at start.
    #[serde(default)]
    pub jwks: Option<PathBuf>,
    /// The claim listing the caller's tenants [default: `tenants`].
    #[serde(default = "default_tenants_claim")]
    pub tenants_claim: String,
    /// The claim listing the caller's roles [default: `roles`].
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds [default: 30].
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Put before each `sub` of this issuer to make the principal, e.g.
    /// `okta:`. Required, and distinct, when several issuers are trusted:
    /// one issuer must not be able to speak for another's subjects.
    #[serde(default)]
    pub subject_prefix: Option<String>,
    /// The tenants this issuer may name (`*` only if listed); others in
    /// its tokens are ignored [default: any].
    #[serde(default)]
    pub tenants: Option<Vec<String>>,
    /// The roles this issuer may grant; others in its tokens are ignored
    /// [default: any].
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

fn default_audience() -> String {
    "agenthost".to_owned()
}
fn default_tenants_claim() -> String {
    "tenants".to_owned()
}
fn default_roles_claim() -> String {
    "roles".to_owned()
}
fn default_leeway() -> u64 {
    30
}

/// `[registry]` in host.toml: where component versions are kept.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    #[serde(default)]
    pub backend: RegistryBackend,
    /// `local`: the registry's directory, relative to the config directory
    /// [default: `<data-dir>/registry`]. A bundle that `agenthost bundle`
    /// wrote (a Lambda package's `registry/`) is such a directory; it may be
    /// read-only.
    #[serde(default)]
    pub dir: Option<std::path::PathBuf>,
    /// `s3`: the bucket for component bytes.
    #[serde(default)]
    pub bucket: Option<String>,
    /// `s3`: a key prefix inside the bucket.
    #[serde(default)]
    pub prefix: String,
    /// `s3`: the DynamoDB table of versions and aliases [default: agenthost-registry].
    #[serde(default)]
    pub table: Option<String>,
    /// Put precompiled artifacts in the registry for other hosts, and take
    /// theirs: turn on only when every host gets the same cache key from
    /// Secrets Manager ([keys] source = "secretsmanager") [default: false].
    #[serde(default)]
    pub share_artifacts: bool,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RegistryBackend {
    /// `<data-dir>/registry/`.
    #[default]
    Local,
    /// S3 for the bytes, DynamoDB for the index: shared by several hosts.
    S3,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_limit_is_refused_by_name_and_an_absent_one_is_the_default() {
        let none = LimitSettings::default();
        assert!(none.check().is_ok());
        let zero = LimitSettings { host_calls: Some(0), ..LimitSettings::default() };
        let err = zero.check().unwrap_err();
        assert!(err.contains("host_calls"), "{err}");
        let parsed: HostSettings = toml::from_str("[limits]\ntimeout_ms = 250\nfuel = 7\n").unwrap();
        assert_eq!((parsed.limits.timeout_ms, parsed.limits.fuel), (Some(250), Some(7)));
        assert!(
            toml::from_str::<HostSettings>("[limits]\ntimeout = 1\n").is_err(),
            "unknown keys are errors"
        );
    }
}
