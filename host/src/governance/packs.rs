//! Layered policy packs and the signed policy manifest.
//!
//! A pack is a directory:
//!
//! - `pack.toml`: `name`, `version`, `layer` (`base`, `domain` or
//!   `intent`) and `[constraints]`;
//! - `*.cedar`: policies (an `@id("...")` annotation names each one);
//! - `prompt.md` (optional): the layer's system-prompt fragment;
//! - `tests.toml` (optional): `[[case]]`s, each a query and the expected
//!   decision.
//!
//! `agenthost policy resolve` stacks base → domain → intent: all policies
//! go into one set (a base `forbid` beats any lower `permit`, by Cedar's
//! semantics), constraints merge most-restrictive-wins and a lower layer
//! that tries to loosen one is an error naming the layer, the field and
//! both values; every layer's cases are run against the stack up to that
//! layer; then the result is signed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::PolicySet;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::egress::EgressRule;
use super::error::PackError;
use super::names::Patterns;
use super::policy::{self, Mode, PolicyEngine, Query};
use super::tier::Tier;
use crate::keys::{self, KeyPair, PublicKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    Base,
    Domain,
    Intent,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Base => "base",
            Layer::Domain => "domain",
            Layer::Intent => "intent",
        }
    }
}

/// Data classifications, least to most sensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Classification {
    Public,
    Internal,
    Confidential,
    Restricted,
}

impl Classification {
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Public => "public",
            Classification::Internal => "internal",
            Classification::Confidential => "confidential",
            Classification::Restricted => "restricted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Public, Self::Internal, Self::Confidential, Self::Restricted]
            .into_iter()
            .find(|c| c.as_str() == text)
    }
}

/// What a layer constrains. An absent field leaves the layer above in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    /// The riskiest tool tier components under this pack may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tier: Option<Tier>,
    /// Model ids (patterns) the agent may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_models: Option<Patterns>,
    /// The most sensitive data classification that may be written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_classification: Option<Classification>,
    /// Every decision and call must be recorded (cannot be turned off below).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mandatory_logging: Option<bool>,
    /// The outgoing rules any grant is cut down to: HTTP(S) hosts, and
    /// `tcp://`/`udp://` addresses for sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_ceiling: Option<Vec<String>>,
    /// Whether name lookups through `wasi:sockets` may be granted at all
    /// (a lower layer may only turn them off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<bool>,
    /// Input field names redacted in approval previews, wherever they
    /// appear (lower layers may only add).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive_fields: Option<Vec<String>>,
    /// Defaults for tools under the pack (lower layers may only tighten).
    #[serde(default, skip_serializing_if = "ToolDefaults::is_empty")]
    pub tool_defaults: ToolDefaults,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
}

impl ToolDefaults {
    fn is_empty(&self) -> bool {
        self.timeout_ms.is_none() && self.fuel.is_none()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackFile {
    name: String,
    version: String,
    layer: Layer,
    #[serde(default)]
    description: String,
    #[serde(default)]
    constraints: Constraints,
}

/// A regression case. (`deny_unknown_fields` does not work with the
/// flattened query; a misspelt field fails the query's own parse instead.)
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    pub name: String,
    #[serde(flatten)]
    pub query: Query,
    /// `allow` or `deny`.
    pub expect: Expect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesFile {
    #[serde(default)]
    case: Vec<Case>,
}

/// A pack read from its directory.
#[derive(Debug, Clone)]
pub struct Pack {
    pub dir: PathBuf,
    pub name: String,
    pub version: String,
    pub layer: Layer,
    pub description: String,
    pub constraints: Constraints,
    /// Policies with ids `<layer>/<id>`.
    pub policies: PolicySet,
    pub prompt: Option<String>,
    pub cases: Vec<Case>,
    /// sha256 over the pack's files (names and contents, sorted).
    pub digest: String,
}

impl Pack {
    /// Reads a pack directory.
    ///
    /// # Errors
    ///
    /// Names the file and what is wrong: a missing `pack.toml`, a Cedar
    /// syntax error, a policy that does not fit the schema, a bad case.
    pub fn read(dir: &Path) -> Result<Self, PackError> {
        let at = |file: &str| dir.join(file).display().to_string();
        let unreadable = |file: &str| {
            let path = dir.join(file);
            move |source| PackError::Unreadable { what: "", path, source }
        };
        let text = std::fs::read_to_string(dir.join("pack.toml")).map_err(|e| {
            PackError::Invalid(format!(
                "{} is not a policy pack: cannot read {}: {e}",
                dir.display(),
                at("pack.toml")
            ))
        })?;
        let file: PackFile =
            toml::from_str(&text).map_err(|e| PackError::Invalid(format!("{}: {e}", at("pack.toml"))))?;
        if let Some(rules) = &file.constraints.egress_ceiling {
            for rule in rules {
                EgressRule::parse(rule).map_err(|e| {
                    PackError::Invalid(format!("{}: constraints.egress_ceiling: {e}", at("pack.toml")))
                })?;
            }
        }
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map_err(|source| PackError::Unreadable {
                what: "the pack directory ",
                path: dir.to_owned(),
                source,
            })?
            .filter_map(Result::ok)
            .filter(|e| e.path().is_file())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        names.sort();
        let mut hasher_input = Vec::new();
        let mut cedar_text = String::new();
        for name in &names {
            let bytes = std::fs::read(dir.join(name)).map_err(unreadable(name))?;
            hasher_input.extend_from_slice(name.as_bytes());
            hasher_input.push(0);
            hasher_input.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            hasher_input.extend_from_slice(&bytes);
            if name.ends_with(".cedar") {
                let text = String::from_utf8(bytes)
                    .map_err(|_| PackError::Invalid(format!("{} is not UTF-8", at(name))))?;
                PolicySet::from_str(&text).map_err(|e| PackError::Invalid(format!("{}: {e:?}", at(name))))?;
                cedar_text.push_str(&text);
                cedar_text.push('\n');
            }
        }
        let invalid = |e: String| PackError::Invalid(format!("{}: {e}", dir.display()));
        let set = PolicySet::from_str(&cedar_text).map_err(|e| invalid(e.to_string()))?;
        let policies = policy::rename_by_annotation(&set, file.layer.as_str()).map_err(invalid)?;
        policy::validate(&policies)
            .map_err(|e| invalid(format!("a policy does not fit the agenthost Cedar schema:\n{e}")))?;
        let prompt = match std::fs::read_to_string(dir.join("prompt.md")) {
            Ok(text) => Some(text.trim().to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(unreadable("prompt.md")(e)),
        };
        let cases = match std::fs::read_to_string(dir.join("tests.toml")) {
            Ok(text) => {
                toml::from_str::<CasesFile>(&text)
                    .map_err(|e| PackError::Invalid(format!("{}: {e}", at("tests.toml"))))?
                    .case
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(unreadable("tests.toml")(e)),
        };
        Ok(Pack {
            dir: dir.to_owned(),
            name: file.name,
            version: file.version,
            layer: file.layer,
            description: file.description,
            constraints: file.constraints,
            policies,
            prompt,
            cases,
            digest: keys::digest(&hasher_input),
        })
    }

    pub fn label(&self) -> String {
        format!("{} layer {}@{}", self.layer.as_str(), self.name, self.version)
    }
}

/// Merges `lower` into `merged` (what the layers above resolved to).
fn merge(merged: &mut Constraints, lower: &Constraints, label: &str) -> Result<(), String> {
    let loosen = |field: &str, above: String, below: String| {
        format!("{label} loosens `{field}`: the layers above set {above}, this layer sets {below}")
    };
    if let Some(tier) = lower.max_tier {
        match merged.max_tier {
            Some(above) if tier > above => {
                return Err(loosen("max_tier", above.to_string(), tier.to_string()));
            }
            _ => merged.max_tier = Some(tier),
        }
    }
    if let Some(class) = lower.max_classification {
        match merged.max_classification {
            Some(above) if class > above => {
                return Err(loosen("max_classification", above.as_str().into(), class.as_str().into()));
            }
            _ => merged.max_classification = Some(class),
        }
    }
    if let Some(fields) = &lower.sensitive_fields {
        let merged_fields = merged.sensitive_fields.get_or_insert_with(Vec::new);
        for field in fields {
            if !merged_fields.contains(field) {
                merged_fields.push(field.clone());
            }
        }
    }
    if let Some(dns) = lower.dns {
        match merged.dns {
            Some(false) if dns => return Err(loosen("dns", "false".into(), "true".into())),
            _ => merged.dns = Some(dns && merged.dns.unwrap_or(true)),
        }
    }
    if let Some(logging) = lower.mandatory_logging {
        match merged.mandatory_logging {
            Some(true) if !logging => return Err(loosen("mandatory_logging", "true".into(), "false".into())),
            _ => merged.mandatory_logging = Some(logging || merged.mandatory_logging.unwrap_or(false)),
        }
    }
    if let Some(models) = &lower.allowed_models {
        if let Some(above) = &merged.allowed_models {
            for pattern in &models.0 {
                if !pattern_within(pattern, above) {
                    return Err(loosen(
                        "allowed_models",
                        above.to_string(),
                        format!("{models} (adds `{pattern}`)"),
                    ));
                }
            }
        }
        merged.allowed_models = Some(models.clone());
    }
    if let Some(rules) = &lower.egress_ceiling {
        if let Some(above) = &merged.egress_ceiling {
            for rule in rules {
                if !rule_within(rule, above) {
                    return Err(loosen(
                        "egress_ceiling",
                        format!("[{}]", above.join(", ")),
                        format!("[{}] (adds `{rule}`)", rules.join(", ")),
                    ));
                }
            }
        }
        merged.egress_ceiling = Some(rules.clone());
    }
    let defaults = &lower.tool_defaults;
    for (field, value, slot) in [
        ("tool_defaults.timeout_ms", defaults.timeout_ms, &mut merged.tool_defaults.timeout_ms),
        ("tool_defaults.fuel", defaults.fuel, &mut merged.tool_defaults.fuel),
    ] {
        if let Some(value) = value {
            match *slot {
                Some(above) if value > above => {
                    return Err(loosen(field, above.to_string(), value.to_string()));
                }
                _ => *slot = Some(value),
            }
        }
    }
    Ok(())
}

/// Whether every name `pattern` matches is also matched by `above`.
fn pattern_within(pattern: &str, above: &Patterns) -> bool {
    above.0.iter().any(|a| match (a.strip_suffix('*'), pattern.strip_suffix('*')) {
        (Some(prefix), Some(p)) => p.starts_with(prefix),
        (Some(prefix), None) => pattern.starts_with(prefix),
        (None, Some(_)) => false,
        (None, None) => a == pattern,
    })
}

/// Whether every request `rule` allows is also allowed by one of `above`.
fn rule_within(rule: &str, above: &[String]) -> bool {
    let Ok(rule) = EgressRule::parse(rule) else { return false };
    above.iter().filter_map(|a| EgressRule::parse(a).ok()).any(|a| {
        if let (Some(outer), Some(inner)) = (a.net, rule.net) {
            // A socket range within a socket range.
            let port_ok = a.port.is_none() || a.port == rule.port;
            return a.scheme == rule.scheme && outer.contains(&inner) && port_ok;
        }
        let host_ok = match (a.host.strip_prefix("*."), rule.host.strip_prefix("*.")) {
            (Some(domain), Some(sub)) => sub == domain || sub.ends_with(&format!(".{domain}")),
            (Some(domain), None) => rule.host.ends_with(&format!(".{domain}")),
            (None, Some(_)) => false,
            (None, None) => a.host == rule.host,
        };
        let port_ok = a.port.is_none() || a.port == rule.port;
        a.scheme == rule.scheme && host_ok && port_ok
    })
}

/// The outcome of running cases.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub pack: String,
    pub case: String,
    pub expected: Expect,
    pub decided: Option<Expect>,
    pub policies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.decided == Some(self.expected)
    }
}

/// A stack of packs, base first.
#[derive(Debug)]
pub struct Stack {
    pub packs: Vec<Pack>,
    pub constraints: Constraints,
    pub policies: PolicySet,
}

impl Stack {
    /// Orders packs by layer (one per layer, a base first) and merges them.
    ///
    /// # Errors
    ///
    /// Two packs of one layer, no base, a loosened constraint.
    pub fn build(packs: Vec<Pack>) -> Result<Self, PackError> {
        Self::build_checked(packs).map_err(PackError::Invalid)
    }

    fn build_checked(mut packs: Vec<Pack>) -> Result<Self, String> {
        packs.sort_by_key(|p| p.layer);
        for pair in packs.windows(2) {
            if pair[0].layer == pair[1].layer {
                return Err(format!(
                    "two {} packs given ({} and {}); a stack has one pack per layer",
                    pair[0].layer.as_str(),
                    pair[0].dir.display(),
                    pair[1].dir.display()
                ));
            }
        }
        if packs.first().is_none_or(|p| p.layer != Layer::Base) {
            return Err("a stack needs a base pack (layer = \"base\")".to_owned());
        }
        let mut constraints = Constraints::default();
        let mut policies = PolicySet::new();
        for pack in &packs {
            merge(&mut constraints, &pack.constraints, &pack.label())?;
            for p in pack.policies.policies() {
                policies.add(p.clone()).map_err(|e| format!("{}: {e}", pack.label()))?;
            }
        }
        Ok(Stack { packs, constraints, policies })
    }

    /// Runs every pack's cases against the stack up to and including it, so
    /// a change to a base pack re-runs the cases of every pack on it.
    pub fn run_cases(&self) -> Vec<CaseResult> {
        let mut results = Vec::new();
        let mut set = PolicySet::new();
        for pack in &self.packs {
            for p in pack.policies.policies() {
                let _ = set.add(p.clone());
            }
            let engine = PolicyEngine::new(set.clone(), Mode::Enforce, pack.label()).validating();
            for case in &pack.cases {
                let (decided, policies, error) = match engine.decide(&case.query) {
                    Ok(d) => (Some(if d.allowed { Expect::Allow } else { Expect::Deny }), d.policies, None),
                    Err(e) => (None, Vec::new(), Some(e.to_string())),
                };
                results.push(CaseResult {
                    pack: pack.label(),
                    case: case.name.clone(),
                    expected: case.expect,
                    decided,
                    policies,
                    error,
                });
            }
        }
        results
    }
}

/// The signed result of `policy resolve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyManifest {
    pub format: String,
    pub mode: Mode,
    pub issued_at: u64,
    pub expires_at: u64,
    /// The tenants this stack may govern; any other tenant refuses it.
    pub tenants: Vec<String>,
    /// Digests (`sha256:` of the file) of the stacks a component of these
    /// tenants may name in its own manifest instead of this one.
    #[serde(default)]
    pub component_stacks: Vec<String>,
    pub layers: Vec<LayerRecord>,
    pub constraints: Constraints,
    pub policies: Vec<PolicyRecord>,
    /// System-prompt fragments in layer order (base first).
    pub prompts: Vec<PromptLayer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<super::manifest::ManifestSignature>,
}

/// v2 binds a stack to its tenants (v1 stacks, bound to nobody, are refused).
pub const MANIFEST_FORMAT: &str = "agenthost.policy-manifest/v2";

/// Who a resolved stack is for.
#[derive(Debug, Clone, Default)]
pub struct Binding {
    /// The tenants it may govern (at least one).
    pub tenants: Vec<String>,
    /// Digests of stacks their components may name instead.
    pub component_stacks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerRecord {
    pub layer: Layer,
    pub name: String,
    pub version: String,
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRecord {
    pub id: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptLayer {
    pub layer: Layer,
    pub text: String,
}

/// Resolves a stack and signs it.
///
/// # Errors
///
/// Any stack error, or failing cases (listed).
pub fn resolve(
    stack: &Stack,
    mode: Mode,
    binding: &Binding,
    key: &KeyPair,
    valid_secs: u64,
) -> Result<PolicyManifest, String> {
    if binding.tenants.is_empty() {
        return Err("a policy stack must be bound to at least one tenant (--tenant)".to_owned());
    }
    for tenant in &binding.tenants {
        if !super::tenant::valid_id(tenant) {
            return Err(format!("`{tenant}` is not a tenant id"));
        }
    }
    for digest in &binding.component_stacks {
        if !digest.starts_with("sha256:") || digest.len() != 71 {
            return Err(format!("`{digest}` is not a stack digest (sha256:<64 hex digits>)"));
        }
    }
    let failures: Vec<String> =
        stack.run_cases().into_iter().filter(|r| !r.passed()).map(|r| describe_failure(&r)).collect();
    if !failures.is_empty() {
        return Err(format!(
            "refusing to sign: {} policy case(s) fail:\n{}",
            failures.len(),
            failures.join("\n")
        ));
    }
    let now = super::approvals::now_secs();
    let mut manifest = PolicyManifest {
        format: MANIFEST_FORMAT.to_owned(),
        mode,
        issued_at: now,
        expires_at: now.saturating_add(valid_secs),
        tenants: binding.tenants.clone(),
        component_stacks: binding.component_stacks.clone(),
        layers: stack
            .packs
            .iter()
            .map(|p| LayerRecord {
                layer: p.layer,
                name: p.name.clone(),
                version: p.version.clone(),
                digest: p.digest.clone(),
            })
            .collect(),
        constraints: stack.constraints.clone(),
        policies: stack
            .policies
            .policies()
            .map(|p| PolicyRecord { id: p.id().to_string(), text: strip_id_annotation(&p.to_string()) })
            .collect(),
        prompts: stack
            .packs
            .iter()
            .filter_map(|p| p.prompt.clone().map(|text| PromptLayer { layer: p.layer, text }))
            .collect(),
        signature: None,
    };
    let content = serde_json::to_value(&manifest).map_err(|e| e.to_string())?;
    manifest.signature =
        Some(super::manifest::ManifestSignature { key_id: key.id(), value: key.sign_json(&content) });
    Ok(manifest)
}

/// Policy text without its `@id` annotation (the id is stored beside it).
fn strip_id_annotation(text: &str) -> String {
    let trimmed = text.trim_start();
    if let Some(rest) = trimmed.strip_prefix("@id(")
        && let Some(end) = rest.find(')')
    {
        return rest[end + 1..].trim_start().to_owned();
    }
    trimmed.to_owned()
}

pub fn describe_failure(r: &CaseResult) -> String {
    match (&r.error, r.decided) {
        (Some(e), _) => format!("  {} / {}: error: {e}", r.pack, r.case),
        (None, Some(d)) => format!(
            "  {} / {}: expected {:?}, got {:?} (deciding policies: [{}])",
            r.pack,
            r.case,
            r.expected,
            d,
            r.policies.join(", ")
        ),
        (None, None) => format!("  {} / {}: no decision", r.pack, r.case),
    }
}

/// A verified policy manifest, ready to decide.
#[derive(Debug)]
pub struct LoadedPolicy {
    pub manifest: PolicyManifest,
    pub engine: Arc<PolicyEngine>,
    pub path: PathBuf,
    /// `sha256:` of the file's bytes: what tenant files and component
    /// manifests pin.
    pub digest: String,
}

impl LoadedPolicy {
    /// Reads, verifies and compiles a signed policy manifest whose file
    /// must have the `pinned` digest.
    ///
    /// # Errors
    ///
    /// Another digest than the pinned one (an older or another stack),
    /// unsigned, signed by a key not in `trusted`, altered after signing,
    /// expired, of another format, or with policies that do not compile.
    pub fn read(path: &Path, pinned: &str, trusted: &[PublicKey]) -> Result<Self, PackError> {
        let at = path.display();
        let bytes = std::fs::read(path).map_err(|e| PackError::Unreadable {
            what: "the policy manifest ",
            path: path.to_owned(),
            source: e,
        })?;
        let digest = keys::digest(&bytes);
        if digest != pinned {
            return Err(PackError::Refused(format!(
                "policy manifest {at} is {digest}, not the pinned {pinned}: the stack was replaced (by another or an older one); pin the stack you mean to use"
            )));
        }
        let invalid = PackError::Invalid;
        let text =
            String::from_utf8(bytes).map_err(|_| invalid(format!("policy manifest {at} is not UTF-8")))?;
        let raw: Json = serde_json::from_str(&text)
            .map_err(|e| invalid(format!("policy manifest {at} is not JSON: {e}")))?;
        if raw.get("format").and_then(Json::as_str) != Some(MANIFEST_FORMAT) {
            return Err(invalid(format!(
                "policy manifest {at} has format `{}`, expected `{MANIFEST_FORMAT}` (resolve it again with `agenthost policy resolve --tenant …`)",
                raw.get("format").and_then(Json::as_str).unwrap_or("none")
            )));
        }
        let manifest: PolicyManifest =
            serde_json::from_value(raw.clone()).map_err(|e| invalid(format!("policy manifest {at}: {e}")))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(invalid(format!(
                "policy manifest {at} has format `{}`, expected `{MANIFEST_FORMAT}` (resolve it again with `agenthost policy resolve --tenant …`)",
                manifest.format
            )));
        }
        let Some(signature) = &manifest.signature else {
            return Err(PackError::Refused(format!(
                "policy manifest {at} is unsigned; sign it with `agenthost policy resolve --sign-key`"
            )));
        };
        let mut content = raw;
        if let Some(map) = content.as_object_mut() {
            map.remove("signature");
        }
        signature.verify(&content, trusted, &format!("policy manifest {at}")).map_err(PackError::Refused)?;
        let now = super::approvals::now_secs();
        if now >= manifest.expires_at {
            return Err(PackError::Refused(format!(
                "policy manifest {at} expired at {} (now {now}); resolve and sign it again",
                manifest.expires_at
            )));
        }
        let mut set = PolicySet::new();
        for record in &manifest.policies {
            let policy =
                cedar_policy::Policy::parse(Some(cedar_policy::PolicyId::new(&record.id)), &record.text)
                    .map_err(|e| invalid(format!("policy manifest {at}: policy {}: {e}", record.id)))?;
            set.add(policy).map_err(|e| invalid(format!("policy manifest {at}: {e}")))?;
        }
        let layers: Vec<String> =
            manifest.layers.iter().map(|l| format!("{}@{}", l.name, l.version)).collect();
        let source = format!(
            "policy manifest {} ({})",
            path.file_name().map_or_else(|| at.to_string(), |n| n.to_string_lossy().into_owned()),
            layers.join(" > ")
        );
        let engine = Arc::new(PolicyEngine::new(set, manifest.mode, source));
        Ok(LoadedPolicy { manifest, engine, path: path.to_owned(), digest })
    }

    /// Whether this stack may govern `tenant`.
    ///
    /// # Errors
    ///
    /// Names the tenants it is bound to.
    pub fn check_bound_to(&self, tenant: &str) -> Result<(), PackError> {
        if self.manifest.tenants.iter().any(|t| t == tenant) {
            return Ok(());
        }
        Err(PackError::Refused(format!(
            "policy manifest {} is bound to tenant(s) [{}], not `{tenant}` (a stack governs only the tenants it was resolved for: `policy resolve --tenant`)",
            self.path.display(),
            self.manifest.tenants.join(", ")
        )))
    }

    pub fn prompts(&self) -> Vec<String> {
        self.manifest.prompts.iter().map(|p| p.text.clone()).collect()
    }
}

/// Reads packs and builds their stack.
///
/// # Errors
///
/// The first pack that does not read, or a stack error.
pub fn stack_of(dirs: &[PathBuf]) -> Result<Stack, PackError> {
    let packs = dirs.iter().map(|d| Pack::read(d)).collect::<Result<Vec<_>, _>>()?;
    Stack::build(packs)
}

/// For `policy test` output: cases grouped by pack.
pub fn summary(results: &[CaseResult]) -> BTreeMap<String, (usize, usize)> {
    let mut by_pack: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in results {
        let entry = by_pack.entry(r.pack.clone()).or_default();
        if r.passed() {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    by_pack
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_within() {
        let above: Patterns = ["anthropic.*", "agenthost.builtin-v1"].into_iter().collect();
        assert!(pattern_within("anthropic.claude-x", &above));
        assert!(pattern_within("anthropic.claude-*", &above));
        assert!(!pattern_within("*", &above));
        assert!(!pattern_within("meta.llama", &above));
        assert!(rule_within("https://api.example.com", &["https://*.example.com".into()]));
        assert!(!rule_within("https://example.org", &["https://*.example.com".into()]));
        assert!(!rule_within("http://api.example.com", &["https://*.example.com".into()]));
        assert!(rule_within("tcp://10.1.2.0/24:5432", &["tcp://10.0.0.0/8:*".into()]));
        assert!(!rule_within("tcp://10.0.0.0/8:5432", &["tcp://10.1.0.0/16:*".into()]));
        assert!(!rule_within("udp://10.1.2.3:53", &["tcp://10.0.0.0/8:*".into()]));
    }

    #[test]
    fn a_lower_layer_cannot_loosen() {
        let mut merged = Constraints {
            max_tier: Some(Tier::WriteHigh),
            mandatory_logging: Some(true),
            ..Default::default()
        };
        let err = merge(
            &mut merged,
            &Constraints { max_tier: Some(Tier::Critical), ..Default::default() },
            "domain layer d@1",
        )
        .unwrap_err();
        assert!(
            err.contains("domain layer d@1")
                && err.contains("max_tier")
                && err.contains("write-high")
                && err.contains("critical"),
            "{err}"
        );
        let err = merge(
            &mut merged,
            &Constraints { mandatory_logging: Some(false), ..Default::default() },
            "intent layer i@1",
        )
        .unwrap_err();
        assert!(err.contains("mandatory_logging"), "{err}");
        merge(&mut merged, &Constraints { max_tier: Some(Tier::Read), ..Default::default() }, "x").unwrap();
        assert_eq!(merged.max_tier, Some(Tier::Read));
    }
}
