//! The registry of component versions: each tenant's components, stored by
//! the sha256 digest of their bytes, with their manifest and a publisher's
//! signature, and the aliases (`stable`, `canary` with a weight) that route
//! calls to a version.
//!
//! Trust boundary: the store (a directory under the data dir, or S3 and
//! DynamoDB) is untrusted. Every read checks what it returns against trust
//! roots that live elsewhere: the publisher's signature against the keys
//! the tenant file lists under `[publishers]` (in the config directory),
//! and the bytes against the digest that signature covers. A version is
//! checked this way before its bytes are compiled or a precompiled
//! artifact of it is deserialized, on deploy and again on every load.

pub mod local;
pub mod routing;
pub mod s3;
pub mod warm;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::brokers::BoxFuture;
use crate::governance::{ComponentManifest, Governance, KeyPair, PublicKey};

pub use local::LocalStore;
pub use routing::{Alias, Aliases, Canary};
pub use s3::S3Store;

/// The largest precompiled artifact the registry keeps or hands out.
pub const MAX_ARTIFACT: u64 = 256 << 20;

/// An engine fingerprint, checked before it becomes part of a path or key.
fn check_fingerprint(fingerprint: &str) -> Result<(), RegistryError> {
    if !fingerprint.is_empty()
        && fingerprint.len() <= 128
        && fingerprint.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(RegistryError::Invalid("an engine fingerprint must be letters, digits, `-` or `_`".into()))
    }
}

/// The longest component name, version or tenant id the registry stores.
pub const MAX_NAME: usize = 64;

/// Why the registry refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// No such component, version or alias.
    #[error("{0}")]
    NotFound(String),
    /// The request itself is malformed: a bad name, weight or manifest.
    #[error("{0}")]
    Invalid(String),
    /// A signature or digest check failed: nothing was stored or served.
    #[error("{0}")]
    Refused(String),
    /// The version exists with other bytes, or the aliases changed meanwhile.
    #[error("{0}")]
    Conflict(String),
    /// The store failed (disk, S3, DynamoDB).
    #[error("{0}")]
    Storage(String),
}

impl RegistryError {
    /// The kind a caller sees, stable for scripts: `not-found`,
    /// `invalid-input`, `refused`, `conflict` or `unavailable`.
    pub fn kind(&self) -> &'static str {
        match self {
            RegistryError::NotFound(_) => "not-found",
            RegistryError::Invalid(_) => "invalid-input",
            RegistryError::Refused(_) => "refused",
            RegistryError::Conflict(_) => "conflict",
            RegistryError::Storage(_) => "unavailable",
        }
    }
}

/// A name the registry stores: a tenant id, component name or version.
/// Letters, digits, `.`, `_`, `-` and `+`, not starting with `.`, at most
/// [`MAX_NAME`] bytes, so it is also a safe file name and object key.
///
/// # Errors
///
/// `invalid` naming `what` and the rule.
pub fn check_name(what: &str, name: &str) -> Result<(), RegistryError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "{what} `{}` must be 1 to {MAX_NAME} letters, digits, `.`, `_`, `-` or `+`, not starting with `.`",
            crate::text::clip(name)
        )))
    }
}

/// What a publisher signs: this tenant's component `name` at `version` is
/// the bytes with `digest`, governed by the manifest with
/// `manifest_digest`. Binding the tenant means a signature made for one
/// tenant cannot be replayed into another that lists the same key; binding
/// the manifest means nobody re-sends signed bytes with a manifest of their
/// own (its schema, tier, requests and policy are the publisher's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication<'a> {
    pub tenant: &'a str,
    pub name: &'a str,
    pub version: &'a str,
    pub digest: &'a str,
    /// [`manifest_digest`] of the manifest's text.
    pub manifest_digest: &'a str,
}

/// `sha256:<hex>` of a manifest's text, as a publisher signs it.
pub fn manifest_digest(text: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

/// The longest manifest the registry takes, in bytes.
/// The most components one tenant may have: every host lists them, keeps
/// their aliases and loads their stable versions.
pub const MAX_COMPONENTS: usize = 1000;

pub const MAX_MANIFEST: usize = 64 * 1024;

/// A publisher's signature over a [`Publication`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublisherSignature {
    /// The signing key's id (`ed25519:<16 hex>`).
    pub key_id: String,
    /// The ed25519 signature over the statement's canonical JSON, as hex.
    pub value: String,
}

impl Publication<'_> {
    /// The signed statement.
    pub fn statement(&self) -> Value {
        json!({
            "type": "agenthost.publication/v1",
            "tenant": self.tenant,
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "manifest_digest": self.manifest_digest,
        })
    }

    pub fn sign(&self, key: &KeyPair) -> PublisherSignature {
        PublisherSignature { key_id: key.id(), value: key.sign_json(&self.statement()) }
    }

    /// Checks `signature` against the tenant's publishers; returns the
    /// publisher's name.
    ///
    /// # Errors
    ///
    /// `refused`: a key the tenant does not list, or a signature that does
    /// not verify.
    pub fn verify(
        &self,
        signature: &PublisherSignature,
        publishers: &BTreeMap<String, PublicKey>,
    ) -> Result<String, RegistryError> {
        let label = format!("{}@{} of tenant `{}`", self.name, self.version, self.tenant);
        let Some((name, key)) = publishers.iter().find(|(_, key)| key.id() == signature.key_id) else {
            return Err(RegistryError::Refused(format!(
                "{label} is signed by {}, which is not a publisher of tenant `{}` ([publishers] in its tenant file)",
                crate::text::clip(&signature.key_id),
                self.tenant
            )));
        };
        key.verify_json(&self.statement(), &signature.value).map_err(|e| {
            RegistryError::Refused(format!(
                "{label}: the publisher signature of `{name}` ({}) does not verify ({e}); the bytes, name, version or manifest changed after signing",
                signature.key_id
            ))
        })?;
        Ok(name.clone())
    }
}

/// One stored version: what a deploy wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionRecord {
    pub tenant: String,
    pub name: String,
    pub version: String,
    /// `sha256:<hex>` of the component bytes.
    pub digest: String,
    /// The component manifest, as TOML text.
    pub manifest: String,
    pub signature: PublisherSignature,
    /// The publisher whose key made the signature.
    pub publisher: String,
    /// Who deployed it (the authenticated caller).
    pub deployed_by: String,
    /// Seconds since the epoch.
    pub deployed_at: u64,
}

impl VersionRecord {
    /// What the record's signature covers; `manifest_digest` is computed
    /// by the caller from the stored manifest text.
    pub fn publication<'a>(&'a self, manifest_digest: &'a str) -> Publication<'a> {
        Publication {
            tenant: &self.tenant,
            name: &self.name,
            version: &self.version,
            digest: &self.digest,
            manifest_digest,
        }
    }

    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// Where versions, blobs and aliases are kept. Implementations store and
/// fetch; they check nothing ([`Registry`] does).
pub trait Store: Send + Sync {
    /// Stores component bytes under their digest (idempotent).
    fn put_blob<'a>(
        &'a self,
        tenant: &'a str,
        digest: &'a str,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, Result<(), RegistryError>>;
    /// The bytes stored under a digest, at most `limit` of them.
    fn get_blob<'a>(
        &'a self,
        tenant: &'a str,
        digest: &'a str,
        limit: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, RegistryError>>;
    /// Stores a version record unless one exists; returns the existing one
    /// if it does (the caller decides whether that is a conflict).
    fn create_version<'a>(
        &'a self,
        record: &'a VersionRecord,
    ) -> BoxFuture<'a, Result<Option<VersionRecord>, RegistryError>>;
    fn get_version<'a>(
        &'a self,
        tenant: &'a str,
        name: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<VersionRecord, RegistryError>>;
    /// The versions of a component, oldest deploy first.
    fn list_versions<'a>(
        &'a self,
        tenant: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<VersionRecord>, RegistryError>>;
    /// The tenant's component names.
    fn list_components<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, Result<Vec<String>, RegistryError>>;
    /// A component's aliases (empty when none was ever set).
    fn get_aliases<'a>(
        &'a self,
        tenant: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Aliases, RegistryError>>;
    /// Stores a sealed precompiled artifact of `digest` for an engine
    /// fingerprint (opaque here: the host checks its seal).
    fn put_artifact<'a>(
        &'a self,
        tenant: &'a str,
        digest: &'a str,
        fingerprint: &'a str,
        sealed: &'a [u8],
    ) -> BoxFuture<'a, Result<(), RegistryError>>;
    /// The sealed artifact stored for `digest` and a fingerprint, if any.
    fn get_artifact<'a>(
        &'a self,
        tenant: &'a str,
        digest: &'a str,
        fingerprint: &'a str,
        limit: u64,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, RegistryError>>;
    /// Replaces the aliases if their revision is still `expected`.
    fn put_aliases<'a>(
        &'a self,
        tenant: &'a str,
        name: &'a str,
        aliases: &'a Aliases,
        expected: u64,
    ) -> BoxFuture<'a, Result<(), RegistryError>>;
}

/// A deploy request: bytes, manifest and signature, as a client sends them.
pub struct Deploy<'a> {
    pub tenant: &'a str,
    pub wasm: &'a [u8],
    /// The component manifest (TOML): its name, version and digest are the
    /// version's.
    pub manifest: &'a str,
    pub signature: PublisherSignature,
    /// The authenticated deployer.
    pub deployer: &'a str,
}

/// A verified version: its record, its bytes and its parsed manifest.
pub struct Verified {
    pub record: VersionRecord,
    pub bytes: Vec<u8>,
    pub manifest: ComponentManifest,
    pub policy: Option<Arc<crate::governance::LoadedPolicy>>,
}

/// A store with the checks: what [`Registry::publish`] accepts and
/// [`Registry::fetch`] returns has passed its tenant's publisher check and
/// the digest check.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn Store>,
    governance: Arc<Governance>,
    /// The largest component accepted.
    max_bytes: u64,
}

impl Registry {
    pub fn new(store: Arc<dyn Store>, governance: Arc<Governance>, max_bytes: u64) -> Self {
        Registry { store, governance, max_bytes }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn publishers(&self, tenant: &str) -> Result<BTreeMap<String, PublicKey>, RegistryError> {
        let tenant = self.governance.tenant(tenant).map_err(|e| RegistryError::NotFound(e.to_string()))?;
        Ok(tenant.publishers.clone())
    }

    /// Checks a deploy and stores it. The signature is checked first,
    /// before the manifest is believed or anything is stored or compiled.
    ///
    /// # Errors
    ///
    /// `invalid` (bad manifest or name), `refused` (unsigned, unknown key,
    /// wrong signature, digest mismatch), `conflict` (that version exists
    /// with other bytes), `storage`.
    pub async fn publish(&self, deploy: Deploy<'_>) -> Result<Verified, RegistryError> {
        check_name("tenant", deploy.tenant)?;
        if deploy.wasm.len() as u64 > self.max_bytes {
            return Err(RegistryError::Invalid(format!(
                "the component is {} bytes; this registry takes at most {}",
                deploy.wasm.len(),
                self.max_bytes
            )));
        }
        if deploy.manifest.len() > MAX_MANIFEST {
            return Err(RegistryError::Invalid(format!(
                "the manifest is {} bytes; this registry takes at most {MAX_MANIFEST}",
                deploy.manifest.len()
            )));
        }
        let publishers = self.publishers(deploy.tenant)?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(deploy.wasm)));
        let signed_manifest = manifest_digest(deploy.manifest);
        // Only the name and version are read before the signature check,
        // to know what the signature should cover.
        let head: ManifestHead = toml::from_str(deploy.manifest)
            .map_err(|e| RegistryError::Invalid(format!("the manifest is not valid TOML: {e}")))?;
        check_name("component name", &head.name)?;
        check_name("version", &head.version)?;
        let publication = Publication {
            tenant: deploy.tenant,
            name: &head.name,
            version: &head.version,
            digest: &digest,
            manifest_digest: &signed_manifest,
        };
        let publisher = publication.verify(&deploy.signature, &publishers)?;
        if head.digest != digest {
            return Err(RegistryError::Refused(format!(
                "{}@{}: the manifest is for {} but the bytes are {digest}",
                head.name,
                head.version,
                crate::text::clip(&head.digest)
            )));
        }
        let (manifest, policy) = self
            .governance
            .parse_manifest(deploy.manifest, &format!("the manifest of {}@{}", head.name, head.version))
            .map_err(|e| RegistryError::Invalid(e.to_string()))?;
        let record = VersionRecord {
            tenant: deploy.tenant.to_owned(),
            name: head.name,
            version: head.version,
            digest,
            manifest: deploy.manifest.to_owned(),
            signature: deploy.signature,
            publisher,
            deployed_by: deploy.deployer.to_owned(),
            deployed_at: crate::governance::approvals::now_secs(),
        };
        // The same version again: nothing to write when it is the same
        // bytes and manifest; refused when anything it runs with differs.
        let same = |existing: VersionRecord| {
            if existing.digest == record.digest && existing.manifest == record.manifest {
                // What is stored must still verify: a record signed before
                // manifests were signed, or altered, is not "the same".
                let stored = manifest_digest(&existing.manifest);
                existing.publication(&stored).verify(&existing.signature, &publishers).map_err(|e| {
                    RegistryError::Conflict(format!(
                        "{} of tenant `{}` is stored with a signature that no longer verifies ({e}); deploy a new version",
                        record.label(),
                        record.tenant
                    ))
                })?;
                Ok(existing)
            } else {
                let what = if existing.digest == record.digest { "another manifest" } else { "other bytes" };
                Err(RegistryError::Conflict(format!(
                    "{} of tenant `{}` is already deployed with {what} ({}); versions are immutable, deploy a new version",
                    record.label(),
                    record.tenant,
                    existing.digest
                )))
            }
        };
        if let Ok(existing) = self.store.get_version(&record.tenant, &record.name, &record.version).await {
            let existing = same(existing)?;
            return Ok(Verified { record: existing, bytes: deploy.wasm.to_vec(), manifest, policy });
        }
        let known = self.store.list_components(&record.tenant).await?;
        if known.len() >= MAX_COMPONENTS && !known.contains(&record.name) {
            return Err(RegistryError::Invalid(format!(
                "tenant `{}` has {MAX_COMPONENTS} components, the most it may have; `{}` would be one more",
                record.tenant, record.name
            )));
        }
        self.store.put_blob(&record.tenant, &record.digest, deploy.wasm).await?;
        if let Some(existing) = self.store.create_version(&record).await? {
            let existing = same(existing)?;
            return Ok(Verified { record: existing, bytes: deploy.wasm.to_vec(), manifest, policy });
        }
        Ok(Verified { record, bytes: deploy.wasm.to_vec(), manifest, policy })
    }

    /// A stored version with its bytes, checked again: the record must be
    /// the one asked for, signed by a current publisher of the tenant, and
    /// the bytes must have the signed digest.
    ///
    /// # Errors
    ///
    /// `not-found`, `refused` (a check failed: the store was tampered
    /// with, or the publisher's key was removed), `storage`.
    pub async fn fetch(&self, tenant: &str, name: &str, version: &str) -> Result<Verified, RegistryError> {
        check_name("tenant", tenant)?;
        check_name("component name", name)?;
        check_name("version", version)?;
        let publishers = self.publishers(tenant)?;
        let record = self.store.get_version(tenant, name, version).await?;
        if record.tenant != tenant || record.name != name || record.version != version {
            return Err(RegistryError::Refused(format!(
                "the registry's record for {name}@{version} of tenant `{tenant}` describes {}@{} of tenant `{}`: the store was altered",
                crate::text::clip(&record.name),
                crate::text::clip(&record.version),
                crate::text::clip(&record.tenant)
            )));
        }
        if record.manifest.len() > MAX_MANIFEST {
            return Err(RegistryError::Refused(format!(
                "the stored manifest of {} of tenant `{tenant}` is larger than {MAX_MANIFEST} bytes: the store was altered",
                record.label()
            )));
        }
        let stored_manifest = manifest_digest(&record.manifest);
        record.publication(&stored_manifest).verify(&record.signature, &publishers)?;
        let bytes = self.store.get_blob(tenant, &record.digest, self.max_bytes).await?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if actual != record.digest {
            return Err(RegistryError::Refused(format!(
                "the stored bytes of {} of tenant `{tenant}` are {actual}, not the signed {}: the store was altered",
                record.label(),
                record.digest
            )));
        }
        let (manifest, policy) = self
            .governance
            .parse_manifest(&record.manifest, &format!("the manifest of {}", record.label()))
            .map_err(|e| RegistryError::Refused(e.to_string()))?;
        if manifest.digest != record.digest || manifest.name != name || manifest.version != version {
            return Err(RegistryError::Refused(format!(
                "the stored manifest of {} of tenant `{tenant}` is not the one deployed: the store was altered",
                record.label()
            )));
        }
        Ok(Verified { record, bytes, manifest, policy })
    }

    /// A component's aliases.
    ///
    /// # Errors
    ///
    /// `invalid` names, `storage`.
    pub async fn aliases(&self, tenant: &str, name: &str) -> Result<Aliases, RegistryError> {
        check_name("tenant", tenant)?;
        check_name("component name", name)?;
        self.store.get_aliases(tenant, name).await
    }

    /// Applies `change` to a component's aliases and stores them, retrying
    /// when another writer got there first. Every version an alias names
    /// must exist.
    ///
    /// # Errors
    ///
    /// What `change` returns, `not-found` for an unknown version, `storage`.
    pub async fn update_aliases(
        &self,
        tenant: &str,
        name: &str,
        change: impl Fn(&mut Aliases) -> Result<(), RegistryError>,
    ) -> Result<Aliases, RegistryError> {
        check_name("tenant", tenant)?;
        check_name("component name", name)?;
        for _ in 0..8 {
            let mut aliases = self.store.get_aliases(tenant, name).await?;
            let expected = aliases.revision;
            change(&mut aliases)?;
            for version in aliases.versions() {
                self.store.get_version(tenant, name, version).await?;
            }
            aliases.revision = expected + 1;
            match self.store.put_aliases(tenant, name, &aliases, expected).await {
                Ok(()) => return Ok(aliases),
                Err(RegistryError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(RegistryError::Conflict(format!(
            "the aliases of {name} of tenant `{tenant}` kept changing under this update; try again"
        )))
    }
}

/// The fields of a manifest read before its signature is checked.
#[derive(Deserialize)]
struct ManifestHead {
    name: String,
    version: String,
    digest: String,
}

/// The store `[registry]` in host.toml asks for: the data directory's
/// `registry/`, or S3 and DynamoDB.
///
/// # Errors
///
/// `invalid` for an `s3` backend without a bucket; `storage` when the
/// local directory cannot be created.
pub async fn open_store(
    settings: &crate::settings::RegistrySettings,
    aws: &crate::aws::AwsSettings,
    config_dir: Option<&std::path::Path>,
    data: &std::path::Path,
) -> Result<Arc<dyn Store>, RegistryError> {
    use crate::settings::RegistryBackend;
    Ok(match settings.backend {
        RegistryBackend::Local => {
            let dir = match (&settings.dir, config_dir) {
                (Some(dir), Some(config)) => config.join(dir),
                (Some(dir), None) => dir.clone(),
                (None, _) => data.join("registry"),
            };
            Arc::new(LocalStore::open(&dir)?)
        }
        RegistryBackend::S3 => {
            let bucket = settings
                .bucket
                .clone()
                .ok_or_else(|| RegistryError::Invalid("[registry] backend = \"s3\" needs bucket".into()))?;
            let table = settings.table.clone().unwrap_or_else(|| s3::DEFAULT_TABLE.to_owned());
            let dynamo = aws_sdk_dynamodb::Client::new(&aws.load().await);
            let client = crate::audit::s3::client(aws).await;
            Arc::new(S3Store::new(client, dynamo, bucket, settings.prefix.clone(), table))
        }
    })
}
