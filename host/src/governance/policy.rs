//! Policy decisions with Cedar.
//!
//! Every governed action (a tool invocation, a model call, a memory read or
//! write, an event publish, an outgoing request, a delegation) is put to
//! Cedar as principal / action / resource / context under the schema below.
//! Cedar denies by default and any matching `forbid` beats every `permit`,
//! which is what keeps a base pack's prohibitions out of reach of the packs
//! layered on it. A decision carries the ids of the policies that decided
//! it; the host enforces the risk-tier obligations (quotas, approvals) only
//! after Cedar allows.
//!
//! Entities: `AgentHost::Tenant::"acme"`; a component is an
//! `AgentHost::Agent::"acme/triage"` (tools too: the principal of a host
//! call is the component making it); a person calling from outside is an
//! `AgentHost::User::"acme/alice"`; tools, memory namespaces and topics are
//! `AgentHost::Tool::"acme/refund"`, `AgentHost::MemoryNamespace::"acme/notes"`,
//! `AgentHost::Topic::"acme/orders"`; every one of those is `in` its tenant.
//! Models and egress hosts are global: `AgentHost::Model::"<id>"`,
//! `AgentHost::Host::"api.example.com"`.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use serde::{Deserialize, Serialize};

/// The Cedar schema every pack is validated against.
pub const SCHEMA: &str = r#"
namespace AgentHost {
  entity Tenant;
  entity Agent in [Tenant];
  entity User in [Tenant];
  entity Approver in [Tenant];
  entity Tool in [Tenant];
  entity MemoryNamespace in [Tenant];
  entity Topic in [Tenant];
  entity Host;
  entity Model;

  action InvokeTool appliesTo {
    principal: [Agent, User],
    resource: [Tool],
    context: { tenant: String, tier: String, tier_rank: Long, depth: Long, input_digest: String }
  };
  action CallModel appliesTo {
    principal: [Agent],
    resource: [Model],
    context: { tenant: String }
  };
  action ReadMemory appliesTo {
    principal: [Agent, User],
    resource: [MemoryNamespace],
    context: { tenant: String }
  };
  action WriteMemory appliesTo {
    principal: [Agent, User],
    resource: [MemoryNamespace],
    context: { tenant: String, classification: String }
  };
  action PublishEvent appliesTo {
    principal: [Agent],
    resource: [Topic],
    context: { tenant: String }
  };
  action Egress appliesTo {
    principal: [Agent],
    resource: [Host],
    context: { tenant: String, scheme: String, port: Long }
  };
  action Delegate appliesTo {
    principal: [Agent],
    resource: [Agent],
    context: { tenant: String }
  };
}
"#;

/// The schema, parsed once.
///
/// # Errors
///
/// Never for the built-in schema; the message says so if it ever does.
pub fn schema() -> Result<&'static Schema, String> {
    static SCHEMA_PARSED: OnceLock<Result<Schema, String>> = OnceLock::new();
    SCHEMA_PARSED
        .get_or_init(|| {
            Schema::from_cedarschema_str(SCHEMA)
                .map(|(schema, _warnings)| schema)
                .map_err(|e| format!("the built-in Cedar schema does not parse: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Validates a policy set against the schema (strict mode).
///
/// # Errors
///
/// Every validation error, one per line, with its policy id.
pub fn validate(set: &PolicySet) -> Result<(), String> {
    let result = Validator::new(schema()?.clone()).validate(set, ValidationMode::Strict);
    if result.validation_passed() {
        return Ok(());
    }
    let errors: Vec<String> = result.validation_errors().map(|e| format!("{}: {e}", e.policy_id())).collect();
    Err(errors.join("\n"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    InvokeTool,
    CallModel,
    ReadMemory,
    WriteMemory,
    PublishEvent,
    Egress,
    Delegate,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::InvokeTool => "InvokeTool",
            Action::CallModel => "CallModel",
            Action::ReadMemory => "ReadMemory",
            Action::WriteMemory => "WriteMemory",
            Action::PublishEvent => "PublishEvent",
            Action::Egress => "Egress",
            Action::Delegate => "Delegate",
        }
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        use Action::*;
        [InvokeTool, CallModel, ReadMemory, WriteMemory, PublishEvent, Egress, Delegate]
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not an action (InvokeTool, CallModel, ReadMemory, WriteMemory, PublishEvent, Egress, Delegate)"))
    }
}

/// `enforce` acts on denials; `log-only` records them and lets the call
/// through. Set only in a signed policy manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    Enforce,
    LogOnly,
}

/// A typed entity reference: `Tool`, `acme/refund`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRef {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

impl EntityRef {
    pub fn new(kind: &str, id: impl Into<String>) -> Self {
        EntityRef { kind: kind.to_owned(), id: id.into() }
    }

    fn uid(&self) -> Result<EntityUid, String> {
        let name = EntityTypeName::from_str(&format!("AgentHost::{}", self.kind))
            .map_err(|e| format!("`{}` is not an entity type: {e}", self.kind))?;
        Ok(EntityUid::from_type_name_and_id(name, EntityId::new(&self.id)))
    }

    /// The tenant an id of the form `tenant/name` belongs to.
    fn tenant(&self) -> Option<&str> {
        match self.kind.as_str() {
            "Tenant" | "Host" | "Model" => None,
            _ => self.id.split_once('/').map(|(tenant, _)| tenant),
        }
    }
}

impl std::fmt::Display for EntityRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}::\"{}\"", self.kind, self.id)
    }
}

/// A context value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Long(i64),
    String(String),
}

/// One question for the policy engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    pub principal: EntityRef,
    pub action: Action,
    pub resource: EntityRef,
    #[serde(default)]
    pub context: std::collections::BTreeMap<String, Value>,
}

/// What the engine decided and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// What Cedar said.
    pub allowed: bool,
    /// Whether the decision is acted on (`false` for a denial in log-only mode).
    pub enforced: bool,
    /// The policies that decided it: the `forbid`s that matched for a
    /// denial, the `permit`s for an allow; empty for the default deny.
    pub policies: Vec<String>,
    /// Where the policies came from.
    pub source: String,
    /// Errors met while evaluating (a policy that failed to evaluate is skipped).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl Decision {
    /// Whether the call may go on.
    pub fn permits(&self) -> bool {
        self.allowed || !self.enforced
    }

    /// A sentence for a denial message.
    pub fn explain(&self, query: &Query) -> String {
        let by = if self.policies.is_empty() {
            "no policy permits it (default deny)".to_owned()
        } else {
            format!("forbidden by {}", self.policies.join(", "))
        };
        format!(
            "policy denies {} {} on {}: {by} [{}]",
            query.principal,
            query.action.as_str(),
            query.resource,
            self.source
        )
    }
}

/// The id of the built-in policy's one permit.
pub const DEFAULT_PERMIT: &str = "agenthost/default-permit";

/// Stack Cedar needs to be left (its own check asks for 100 KiB).
const CEDAR_RED_ZONE: usize = 192 * 1024;
/// Stack given to a decision taken where too little is known to be left.
const CEDAR_STACK: usize = 1024 * 1024;

/// A compiled policy set with its mode.
#[derive(Debug)]
pub struct PolicyEngine {
    policies: PolicySet,
    mode: Mode,
    source: String,
    authorizer: Authorizer,
    /// The built-in permit-everything policy: decided without Cedar.
    permits_all: bool,
}

impl PolicyEngine {
    /// The policy of a host without a policy manifest: permit everything the
    /// grants allow (tier obligations still apply).
    ///
    /// # Errors
    ///
    /// Never in practice (the text is fixed).
    pub fn permissive() -> Result<Arc<Self>, String> {
        // Kept as a real policy set so `len()` and listings stay truthful;
        // decisions take the short cut in `decide`.
        let set = PolicySet::from_str("@id(\"default-permit\")\npermit(principal, action, resource);")
            .map_err(|e| e.to_string())?;
        let set = rename_by_annotation(&set, "agenthost")?;
        Ok(Arc::new(PolicyEngine {
            policies: set,
            mode: Mode::Enforce,
            source: "built-in default policy".to_owned(),
            authorizer: Authorizer::new(),
            permits_all: true,
        }))
    }

    pub fn new(policies: PolicySet, mode: Mode, source: String) -> Self {
        PolicyEngine { policies, mode, source, authorizer: Authorizer::new(), permits_all: false }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn len(&self) -> usize {
        self.policies.policies().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decides a query.
    ///
    /// # Errors
    ///
    /// When the query does not fit the schema (a bug of the caller or a
    /// malformed test case): the message names what does not fit.
    pub fn decide(&self, query: &Query) -> Result<Decision, String> {
        if self.permits_all {
            return Ok(Decision {
                allowed: true,
                enforced: true,
                policies: vec![DEFAULT_PERMIT.to_owned()],
                source: self.source.clone(),
                errors: Vec::new(),
            });
        }
        // Cedar guards its recursion by the stack space `stacker` reports.
        // Inside a guest's host call we run on a wasmtime fiber stack,
        // which `stacker` cannot measure (it reports none left), so there
        // the decision runs on a fresh stack segment of known size.
        stacker::maybe_grow(CEDAR_RED_ZONE, CEDAR_STACK, || self.decide_here(query))
    }

    fn decide_here(&self, query: &Query) -> Result<Decision, String> {
        let principal = query.principal.uid()?;
        let resource = query.resource.uid()?;
        let action = EntityUid::from_str(&format!("AgentHost::Action::\"{}\"", query.action.as_str()))
            .map_err(|e| e.to_string())?;
        let context = Context::from_pairs(query.context.iter().map(|(k, v)| {
            let value = match v {
                Value::Bool(b) => RestrictedExpression::new_bool(*b),
                Value::Long(n) => RestrictedExpression::new_long(*n),
                Value::String(s) => RestrictedExpression::new_string(s.clone()),
            };
            (k.clone(), value)
        }))
        .map_err(|e| format!("bad context: {e}"))?;
        let request = Request::new(principal.clone(), action, resource.clone(), context, Some(schema()?))
            .map_err(|e| format!("the request does not fit the schema: {e}"))?;
        let mut entities = Vec::with_capacity(3);
        let mut tenants = HashSet::new();
        for (entity, uid) in [(&query.principal, principal), (&query.resource, resource)] {
            let mut parents = HashSet::new();
            if let Some(tenant) = entity.tenant() {
                let tenant_uid = EntityRef::new("Tenant", tenant).uid()?;
                parents.insert(tenant_uid.clone());
                tenants.insert(tenant_uid);
            }
            entities.push(Entity::new_no_attrs(uid, parents));
        }
        for tenant in tenants {
            entities.push(Entity::new_no_attrs(tenant, HashSet::new()));
        }
        let entities = Entities::from_entities(entities, None).map_err(|e| format!("bad entities: {e}"))?;
        let response = self.authorizer.is_authorized(&request, &self.policies, &entities);
        let allowed = response.decision() == CedarDecision::Allow;
        let diagnostics = response.diagnostics();
        Ok(Decision {
            allowed,
            enforced: allowed || self.mode == Mode::Enforce,
            policies: diagnostics.reason().map(ToString::to_string).collect(),
            source: self.source.clone(),
            errors: diagnostics.errors().map(ToString::to_string).collect(),
        })
    }
}

/// Gives every policy the id `<prefix>/<@id annotation>` (or
/// `<prefix>/policyN` without one), so decisions name policies the way
/// their authors do.
///
/// # Errors
///
/// Two policies with the same id.
pub fn rename_by_annotation(set: &PolicySet, prefix: &str) -> Result<PolicySet, String> {
    let mut renamed = PolicySet::new();
    for policy in set.policies() {
        let local = policy.annotation("id").map_or_else(|| policy.id().to_string(), str::to_owned);
        let id = cedar_policy::PolicyId::new(format!("{prefix}/{local}"));
        renamed.add(policy.new_id(id.clone())).map_err(|e| format!("two policies are named `{id}`: {e}"))?;
    }
    Ok(renamed)
}

/// Tier rank for policies: read 0, write-low 1, write-high 2, critical 3.
pub fn tier_rank(tier: super::Tier) -> i64 {
    match tier {
        super::Tier::Read => 0,
        super::Tier::WriteLow => 1,
        super::Tier::WriteHigh => 2,
        super::Tier::Critical => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoke(tenant: &str, tool: &str, tier: &str) -> Query {
        Query {
            principal: EntityRef::new("Agent", format!("{tenant}/triage")),
            action: Action::InvokeTool,
            resource: EntityRef::new("Tool", format!("{tenant}/{tool}")),
            context: [
                ("tenant".to_owned(), Value::String(tenant.to_owned())),
                ("tier".to_owned(), Value::String(tier.to_owned())),
                ("tier_rank".to_owned(), Value::Long(0)),
                ("depth".to_owned(), Value::Long(0)),
                ("input_digest".to_owned(), Value::String("sha256:00".to_owned())),
            ]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn forbid_beats_permit_and_names_itself() {
        let set = PolicySet::from_str(
            r#"@id("allow-all") permit(principal, action, resource);
               @id("no-critical") forbid(principal, action == AgentHost::Action::"InvokeTool", resource)
                 when { context.tier == "critical" };"#,
        )
        .unwrap();
        validate(&set).unwrap();
        let engine =
            PolicyEngine::new(rename_by_annotation(&set, "base").unwrap(), Mode::Enforce, "test".into());
        let allowed = engine.decide(&invoke("acme", "refund", "write-high")).unwrap();
        assert!(allowed.allowed);
        assert_eq!(allowed.policies, vec!["base/allow-all"]);
        let denied = engine.decide(&invoke("acme", "wipe", "critical")).unwrap();
        assert!(!denied.allowed && denied.enforced);
        assert_eq!(denied.policies, vec!["base/no-critical"]);
    }

    #[test]
    fn tenant_membership_is_visible_to_policies() {
        let set = PolicySet::from_str(
            r#"permit(principal in AgentHost::Tenant::"acme", action, resource in AgentHost::Tenant::"acme");"#,
        )
        .unwrap();
        validate(&set).unwrap();
        let engine = PolicyEngine::new(set, Mode::LogOnly, "test".into());
        assert!(engine.decide(&invoke("acme", "x", "read")).unwrap().allowed);
        let other = engine.decide(&invoke("globex", "x", "read")).unwrap();
        assert!(!other.allowed && !other.enforced && other.permits());
    }

    #[test]
    fn a_policy_off_schema_is_refused() {
        let set =
            PolicySet::from_str(r#"permit(principal, action, resource) when { context.nonsense == 1 };"#)
                .unwrap();
        assert!(validate(&set).is_err());
    }
}
