//! The component manifest: a TOML file next to the component
//! (`<stem>.manifest.toml`) saying what it is (name, version, digest,
//! world), how risky it is (a tool's tier) and what it asks for. The host
//! grants the intersection of this request with the tenant's grants, the
//! tier's ceiling and the policy pack; it never grants more than asked.
//!
//! A manifest may be signed (`agenthost manifest sign`): the signature is
//! ed25519 over the canonical JSON of every other field. A host whose
//! `host.toml` sets `require_signed_manifests` refuses unsigned ones, and
//! every host refuses a signature that does not verify or comes from a key
//! it does not trust.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ManifestError;
use super::names::Patterns;
use super::tier::Tier;
use crate::keys::{KeyPair, PublicKey};
use crate::vocab::{Capability, World};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentManifest {
    pub name: String,
    pub version: String,
    /// `sha256:<hex>` of the component bytes; a different file is refused.
    pub digest: String,
    /// `tool` or `agent`.
    pub world: String,
    /// A tool's tier. Its own `describe()` may declare a higher one (the
    /// host takes the higher), never a lower one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_tier: Option<Tier>,
    /// A signed policy manifest (`agenthost policy resolve`), relative to
    /// this file, to run under instead of the tenant's: only a stack bound
    /// to the tenant that the tenant's own stack lists in
    /// `component_stacks`. When absent the tenant's applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PathBuf>,
    /// `sha256:` of that file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_digest: Option<String>,
    #[serde(default)]
    pub requests: Requests,
    /// The tool's input schema (JSON text); replaces what `describe()` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ManifestSignature>,
}

/// What the component asks to be granted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requests {
    #[serde(default)]
    pub interfaces: Vec<String>,
    #[serde(default)]
    pub memory_namespaces: Patterns,
    #[serde(default)]
    pub topics: Patterns,
    #[serde(default)]
    pub tools: Patterns,
    #[serde(default)]
    pub models: Patterns,
    /// Environment variable names (values come from the tenant).
    #[serde(default)]
    pub env: Vec<String>,
    /// Guest paths of tenant mounts.
    #[serde(default)]
    pub mounts: Vec<String>,
    /// Outgoing rules, as in the tenant's `grants.network.allow`: HTTP(S)
    /// hosts, and `tcp://`/`udp://` addresses for sockets.
    #[serde(default)]
    pub egress: Vec<String>,
    /// Raw TCP/UDP through `wasi:sockets` (the tenant must grant it too).
    #[serde(default)]
    pub sockets: bool,
    /// Name lookups through `wasi:sockets` (the tenant must grant it too).
    #[serde(default)]
    pub dns: bool,
}

/// A signature over a document's canonical JSON (without the signature).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSignature {
    pub key_id: String,
    pub value: String,
}

impl ManifestSignature {
    /// Checks the signature over `content` with the trusted key it names.
    ///
    /// # Errors
    ///
    /// An untrusted key, or content changed after signing; `what` names
    /// the document in the message.
    pub fn verify(&self, content: &Value, trusted: &[PublicKey], what: &str) -> Result<(), String> {
        let Some(key) = trusted.iter().find(|k| k.id() == self.key_id) else {
            return Err(format!(
                "{what} is signed by {}, which this host does not trust (trusted_keys in host.toml)",
                self.key_id
            ));
        };
        key.verify_json(content, &self.value).map_err(|e| format!("{what} fails its signature check: {e}"))
    }
}

impl ComponentManifest {
    /// `foo.wasm` → `foo.manifest.toml`.
    pub fn path_for(component: &Path) -> PathBuf {
        component.with_extension("manifest.toml")
    }

    /// Reads and checks a manifest file.
    ///
    /// # Errors
    ///
    /// Names the file and the field.
    pub fn read(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ManifestError::Unreadable { path: path.to_owned(), source: e })?;
        Self::parse(&text, &format!("manifest {}", path.display()), path.parent().unwrap_or(Path::new(".")))
    }

    /// Parses a manifest's TOML text; `what` names it in errors, and a
    /// relative `policy` path is taken from `base`.
    ///
    /// # Errors
    ///
    /// Names `what` and the field.
    pub fn parse(text: &str, what: &str, base: &Path) -> Result<Self, ManifestError> {
        let invalid = |e: String| ManifestError::Invalid(format!("{what}: {e}"));
        let mut manifest: ComponentManifest = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        manifest.check().map_err(invalid)?;
        if let Some(policy) = &manifest.policy
            && policy.is_relative()
        {
            manifest.policy = Some(base.join(policy));
        }
        Ok(manifest)
    }

    fn check(&self) -> Result<(), String> {
        if self.world != "tool" && self.world != "agent" {
            return Err(format!("world `{}` must be `tool` or `agent`", self.world));
        }
        if self.world == "tool" && self.risk_tier.is_none() {
            return Err(
                "a tool's manifest must declare its risk_tier (read, write-low, write-high, critical)".into(),
            );
        }
        if self.policy.is_none() && self.policy_digest.is_some() {
            return Err("policy_digest is set but policy (the file it pins) is not".to_owned());
        }
        if self.policy.is_some() && self.policy_digest.is_none() {
            return Err("policy_digest is missing: a policy stack is pinned by its digest".to_owned());
        }
        if !self.digest.starts_with("sha256:") || self.digest.len() != 71 {
            return Err(format!("digest `{}` is not of the form sha256:<64 hex digits>", self.digest));
        }
        for name in &self.requests.interfaces {
            if Capability::from_interface(name).is_none() {
                return Err(format!("requests.interfaces: `{name}` is not a platform interface"));
            }
        }
        for path in &self.requests.mounts {
            super::tenant::check_guest_path(path).map_err(|e| format!("requests.mounts: {e}"))?;
        }
        for rule in &self.requests.egress {
            super::egress::EgressRule::parse(rule).map_err(|e| format!("requests.egress: {e}"))?;
        }
        if let Some(schema) = &self.input_schema {
            serde_json::from_str::<Value>(schema).map_err(|e| format!("input_schema is not JSON: {e}"))?;
        }
        Ok(())
    }

    pub fn world(&self) -> World {
        if self.world == "agent" { World::Agent } else { World::Tool }
    }

    pub fn interfaces(&self) -> impl Iterator<Item = Capability> + '_ {
        self.requests.interfaces.iter().filter_map(|name| Capability::from_interface(name))
    }

    /// The JSON that a signature covers: every field but `signature`.
    fn signed_content(&self) -> Result<Value, String> {
        let mut unsigned = self.clone();
        unsigned.signature = None;
        serde_json::to_value(&unsigned).map_err(|e| format!("cannot encode the manifest: {e}"))
    }

    /// Signs the manifest with `key`, replacing any signature.
    ///
    /// # Errors
    ///
    /// When the manifest cannot be encoded.
    pub fn sign(&mut self, key: &KeyPair) -> Result<(), String> {
        let content = self.signed_content()?;
        self.signature = Some(ManifestSignature { key_id: key.id(), value: key.sign_json(&content) });
        Ok(())
    }

    /// Checks the signature against the trusted keys.
    ///
    /// # Errors
    ///
    /// `unsigned` (when `required`), an unknown key, or a signature that
    /// does not verify (the manifest was changed after signing).
    pub fn verify(&self, trusted: &[PublicKey], required: bool) -> Result<(), ManifestError> {
        let Some(signature) = &self.signature else {
            return if required {
                Err(ManifestError::Signature(format!(
                    "the manifest of {} is unsigned and this host requires signed manifests (agenthost manifest sign)",
                    self.name
                )))
            } else {
                Ok(())
            };
        };
        let content = self.signed_content().map_err(ManifestError::Invalid)?;
        signature
            .verify(&content, trusted, &format!("the manifest of {}", self.name))
            .map_err(ManifestError::Signature)
    }

    /// TOML text of the manifest.
    ///
    /// # Errors
    ///
    /// When it cannot be encoded.
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string_pretty(self).map_err(|e| format!("cannot encode the manifest: {e}"))
    }
}
