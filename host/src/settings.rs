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
