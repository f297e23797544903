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

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, OnceLock, RwLock};

use cedar_policy::{
    ActionConstraint, Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId,
    EntityTypeName, EntityUid, Policy, PolicySet, PrincipalConstraint, Request, ResourceConstraint,
    RestrictedExpression, Schema, ValidationMode, Validator,
};
use serde::{Deserialize, Serialize};

use super::error::PolicyError;

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
    context: { tenant: String, tier: String, tier_rank: Long, depth: Long }
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
pub fn validate(set: &PolicySet) -> Result<(), PolicyError> {
    let result =
        Validator::new(schema().map_err(PolicyError::Invalid)?.clone()).validate(set, ValidationMode::Strict);
    if result.validation_passed() {
        return Ok(());
    }
    let errors: Vec<String> = result.validation_errors().map(|e| format!("{}: {e}", e.policy_id())).collect();
    Err(PolicyError::Invalid(errors.join("\n")))
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
        Ok(EntityUid::from_type_name_and_id(type_name(&self.kind)?, EntityId::new(&self.id)))
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

/// The entity types of the schema, parsed once (Cedar's parser is not cheap).
fn type_name(kind: &str) -> Result<EntityTypeName, String> {
    static TYPES: OnceLock<HashMap<&'static str, EntityTypeName>> = OnceLock::new();
    let types = TYPES.get_or_init(|| {
        ["Tenant", "Agent", "User", "Approver", "Tool", "MemoryNamespace", "Topic", "Host", "Model"]
            .into_iter()
            .filter_map(|kind| {
                EntityTypeName::from_str(&format!("AgentHost::{kind}")).ok().map(|t| (kind, t))
            })
            .collect()
    });
    types.get(kind).cloned().ok_or_else(|| {
        format!("`{kind}` is not an entity type (Tenant, Agent, User, Approver, Tool, MemoryNamespace, Topic, Host, Model)")
    })
}

/// The action's entity, parsed once.
fn action_uid(action: Action) -> Result<EntityUid, String> {
    static ACTIONS: OnceLock<HashMap<Action, EntityUid>> = OnceLock::new();
    let actions = ACTIONS.get_or_init(|| {
        use Action::*;
        [InvokeTool, CallModel, ReadMemory, WriteMemory, PublishEvent, Egress, Delegate]
            .into_iter()
            .filter_map(|a| {
                EntityUid::from_str(&format!("AgentHost::Action::\"{}\"", a.as_str())).ok().map(|u| (a, u))
            })
            .collect()
    });
    actions.get(&action).cloned().ok_or_else(|| format!("no entity for action {}", action.as_str()))
}

/// A context value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Long(i64),
    String(String),
}

/// One question for the policy engine.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// A policy's scope (its `principal`, `action`, `resource` constraints),
/// checked before Cedar evaluates it: a policy whose scope does not match
/// a request cannot decide it, whatever its `when`/`unless` say.
#[derive(Debug)]
struct Scope {
    principal: EntityScope,
    action: Option<Vec<EntityUid>>,
    resource: EntityScope,
}

#[derive(Debug)]
enum EntityScope {
    Any,
    Eq(EntityUid),
    In(EntityUid),
    Is(EntityTypeName),
    IsIn(EntityTypeName, EntityUid),
}

impl EntityScope {
    fn matches(&self, uid: &EntityUid, parent: Option<&EntityUid>) -> bool {
        let within = |e: &EntityUid| uid == e || parent == Some(e);
        match self {
            EntityScope::Any => true,
            EntityScope::Eq(e) => uid == e,
            EntityScope::In(e) => within(e),
            EntityScope::Is(t) => uid.type_name() == t,
            EntityScope::IsIn(t, e) => uid.type_name() == t && within(e),
        }
    }
}

impl Scope {
    fn of(policy: &Policy) -> Self {
        let principal = match policy.principal_constraint() {
            PrincipalConstraint::Any => EntityScope::Any,
            PrincipalConstraint::Eq(e) => EntityScope::Eq(e),
            PrincipalConstraint::In(e) => EntityScope::In(e),
            PrincipalConstraint::Is(t) => EntityScope::Is(t),
            PrincipalConstraint::IsIn(t, e) => EntityScope::IsIn(t, e),
        };
        let resource = match policy.resource_constraint() {
            ResourceConstraint::Any => EntityScope::Any,
            ResourceConstraint::Eq(e) => EntityScope::Eq(e),
            ResourceConstraint::In(e) => EntityScope::In(e),
            ResourceConstraint::Is(t) => EntityScope::Is(t),
            ResourceConstraint::IsIn(t, e) => EntityScope::IsIn(t, e),
        };
        // The schema has no action groups: `action in [..]` is membership.
        let action = match policy.action_constraint() {
            ActionConstraint::Any => None,
            ActionConstraint::Eq(a) => Some(vec![a]),
            ActionConstraint::In(list) => Some(list),
        };
        Scope { principal, action, resource }
    }
}

/// The policies and entities of one (principal, action, resource).
#[derive(Debug, Clone)]
struct Shape {
    slice: Arc<PolicySet>,
    entities: Arc<Entities>,
}

/// Most entries a cache of the engine keeps (shapes, contexts, decisions);
/// past it the cache starts over.
const MAX_CACHED: usize = 4096;

/// A compiled policy set with its mode.
///
/// Cedar evaluates every policy of a set for every request (about 1.5 µs
/// each here), so a decision is taken on the *slice* of policies whose
/// scope matches the request: the result is the same (a policy outside its
/// scope is never satisfied), and a pack of hundreds of narrowly scoped
/// rules costs what its few applicable ones cost. A slice is built once per
/// (principal, action, resource).
#[derive(Debug)]
pub struct PolicyEngine {
    policies: PolicySet,
    scopes: Vec<(Policy, Scope)>,
    /// Per (principal, action, resource): its slice and its entities (the
    /// two and their tenants) — both depend on nothing else.
    shapes: RwLock<HashMap<(EntityUid, Action, EntityUid), Shape>>,
    /// Contexts already built (Cedar evaluates each value when building one).
    contexts: RwLock<HashMap<std::collections::BTreeMap<String, Value>, Context>>,
    /// Decisions already taken. A decision depends only on the query (the
    /// policies are fixed for the engine's life, the entities follow from
    /// the ids, and Cedar has no clock or randomness), so an equal query
    /// gets the same decision without evaluating again.
    decisions: RwLock<HashMap<Query, Decision>>,
    mode: Mode,
    source: String,
    authorizer: Authorizer,
    /// The built-in permit-everything policy: decided without Cedar.
    permits_all: bool,
    /// Check each request against the schema (for pack test cases, whose
    /// queries are written by hand; the host's own queries always fit).
    validate_requests: bool,
}

impl PolicyEngine {
    /// The policy of a host without a policy manifest: permit everything the
    /// grants allow (tier obligations still apply).
    ///
    /// # Errors
    ///
    /// Never in practice (the text is fixed).
    pub fn permissive() -> Result<Arc<Self>, PolicyError> {
        // Kept as a real policy set so `len()` and listings stay truthful;
        // decisions take the short cut in `decide`.
        // Built from Cedar's JSON form: the text parser's start-up is a
        // noticeable share of a cold start, and this set is always the same.
        let est = serde_json::json!({
            "effect": "permit",
            "principal": { "op": "All" },
            "action": { "op": "All" },
            "resource": { "op": "All" },
            "conditions": [],
            "annotations": { "id": "default-permit" },
        });
        let policy = cedar_policy::Policy::from_json(
            Some(cedar_policy::PolicyId::new("agenthost/default-permit")),
            est,
        )
        .map_err(|e| PolicyError::Invalid(e.to_string()))?;
        let mut set = PolicySet::new();
        set.add(policy).map_err(|e| PolicyError::Invalid(e.to_string()))?;
        let mut engine = PolicyEngine::new(set, Mode::Enforce, "built-in default policy".to_owned());
        engine.permits_all = true;
        Ok(Arc::new(engine))
    }

    pub fn new(policies: PolicySet, mode: Mode, source: String) -> Self {
        let scopes = policies.policies().map(|p| (p.clone(), Scope::of(p))).collect();
        PolicyEngine {
            policies,
            scopes,
            shapes: RwLock::new(HashMap::new()),
            contexts: RwLock::new(HashMap::new()),
            decisions: RwLock::new(HashMap::new()),
            mode,
            source,
            authorizer: Authorizer::new(),
            permits_all: false,
            validate_requests: false,
        }
    }

    /// Checks every request against the schema (see the field).
    #[must_use]
    pub fn validating(mut self) -> Self {
        self.validate_requests = true;
        self
    }

    /// Whether this is the built-in permit-everything policy.
    pub fn permits_all(&self) -> bool {
        self.permits_all
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
    pub fn decide(&self, query: &Query) -> Result<Decision, PolicyError> {
        if self.permits_all {
            return Ok(Decision {
                allowed: true,
                enforced: true,
                policies: vec![DEFAULT_PERMIT.to_owned()],
                source: self.source.clone(),
                errors: Vec::new(),
            });
        }
        if let Some(decision) = self.decisions.read().ok().and_then(|d| d.get(query).cloned()) {
            return Ok(decision);
        }
        let decision = self.decide_uncached(query)?;
        if decision.errors.is_empty()
            && let Ok(mut decisions) = self.decisions.write()
        {
            if decisions.len() >= MAX_CACHED {
                decisions.clear();
            }
            decisions.insert(query.clone(), decision.clone());
        }
        Ok(decision)
    }

    /// Decides a query by evaluating the policies, bypassing the cache of
    /// decisions already taken (see [`PolicyEngine::decide`]).
    ///
    /// # Errors
    ///
    /// As [`PolicyEngine::decide`].
    pub fn decide_uncached(&self, query: &Query) -> Result<Decision, PolicyError> {
        // Cedar guards its recursion by the stack space `stacker` reports.
        // Inside a guest's host call we run on a wasmtime fiber stack,
        // which `stacker` cannot measure (it reports none left), so there
        // the decision runs on a fresh stack segment of known size.
        stacker::maybe_grow(CEDAR_RED_ZONE, CEDAR_STACK, || self.decide_here(query))
            .map_err(PolicyError::Evaluation)
    }

    fn decide_here(&self, query: &Query) -> Result<Decision, String> {
        let principal = query.principal.uid()?;
        let resource = query.resource.uid()?;
        let action = action_uid(query.action)?;
        let shape = self.shape(query, &principal, &action, &resource)?;
        let context = self.context(&query.context)?;
        let schema = if self.validate_requests { Some(schema()?) } else { None };
        let request = Request::new(principal, action, resource, context, schema)
            .map_err(|e| format!("the request does not fit the schema: {e}"))?;
        let response = self.authorizer.is_authorized(&request, &shape.slice, &shape.entities);
        Ok(self.decision(&response))
    }

    /// The slice and entities of a request's principal, action and resource.
    fn shape(
        &self,
        query: &Query,
        principal: &EntityUid,
        action: &EntityUid,
        resource: &EntityUid,
    ) -> Result<Shape, String> {
        let key = (principal.clone(), query.action, resource.clone());
        if let Some(shape) = self.shapes.read().ok().and_then(|shapes| shapes.get(&key).cloned()) {
            return Ok(shape);
        }
        let principal_parent =
            query.principal.tenant().map(|t| EntityRef::new("Tenant", t).uid()).transpose()?;
        let resource_parent =
            query.resource.tenant().map(|t| EntityRef::new("Tenant", t).uid()).transpose()?;
        let slice =
            self.slice(principal, principal_parent.as_ref(), action, resource, resource_parent.as_ref());
        let entities = Arc::new(entities_for([(principal, principal_parent), (resource, resource_parent)])?);
        let shape = Shape { slice, entities };
        if let Ok(mut shapes) = self.shapes.write() {
            if shapes.len() >= MAX_CACHED {
                shapes.clear();
            }
            shapes.insert(key, shape.clone());
        }
        Ok(shape)
    }

    fn context(&self, values: &std::collections::BTreeMap<String, Value>) -> Result<Context, String> {
        if let Some(context) = self.contexts.read().ok().and_then(|c| c.get(values).cloned()) {
            return Ok(context);
        }
        let context = context_of(values)?;
        if let Ok(mut contexts) = self.contexts.write() {
            if contexts.len() >= MAX_CACHED {
                contexts.clear();
            }
            contexts.insert(values.clone(), context.clone());
        }
        Ok(context)
    }

    fn decision(&self, response: &cedar_policy::Response) -> Decision {
        let allowed = response.decision() == CedarDecision::Allow;
        let diagnostics = response.diagnostics();
        Decision {
            allowed,
            enforced: allowed || self.mode == Mode::Enforce,
            policies: diagnostics.reason().map(ToString::to_string).collect(),
            source: self.source.clone(),
            errors: diagnostics.errors().map(ToString::to_string).collect(),
        }
    }
}

impl PolicyEngine {
    /// Decides on the whole set, unsliced (to check the slicing).
    #[cfg(test)]
    fn decide_unsliced(&self, query: &Query) -> Result<(bool, Vec<String>), String> {
        let principal = query.principal.uid()?;
        let resource = query.resource.uid()?;
        let parent = |e: &EntityRef| e.tenant().map(|t| EntityRef::new("Tenant", t).uid()).transpose();
        let entities =
            entities_for([(&principal, parent(&query.principal)?), (&resource, parent(&query.resource)?)])?;
        let request =
            Request::new(principal, action_uid(query.action)?, resource, context_of(&query.context)?, None)
                .map_err(|e| e.to_string())?;
        let response = self.authorizer.is_authorized(&request, &self.policies, &entities);
        let mut ids: Vec<String> = response.diagnostics().reason().map(ToString::to_string).collect();
        ids.sort();
        Ok((response.decision() == CedarDecision::Allow, ids))
    }

    /// The policies whose scope matches the request, as a set.
    fn slice(
        &self,
        principal: &EntityUid,
        principal_parent: Option<&EntityUid>,
        action: &EntityUid,
        resource: &EntityUid,
        resource_parent: Option<&EntityUid>,
    ) -> Arc<PolicySet> {
        let mut set = PolicySet::new();
        for (policy, scope) in &self.scopes {
            let applies = scope.action.as_ref().is_none_or(|actions| actions.contains(action))
                && scope.principal.matches(principal, principal_parent)
                && scope.resource.matches(resource, resource_parent);
            if applies {
                // Ids are unique in `self.policies`, so adding cannot fail.
                let _ = set.add(policy.clone());
            }
        }
        Arc::new(set)
    }
}

/// Cedar's context for a query's values.
fn context_of(values: &std::collections::BTreeMap<String, Value>) -> Result<Context, String> {
    Context::from_pairs(values.iter().map(|(k, v)| {
        let value = match v {
            Value::Bool(b) => RestrictedExpression::new_bool(*b),
            Value::Long(n) => RestrictedExpression::new_long(*n),
            Value::String(s) => RestrictedExpression::new_string(s.clone()),
        };
        (k.clone(), value)
    }))
    .map_err(|e| format!("bad context: {e}"))
}

/// The entities of a request: its principal and resource, each `in` its
/// tenant (if it has one), and those tenants.
fn entities_for(members: [(&EntityUid, Option<EntityUid>); 2]) -> Result<Entities, String> {
    let mut entities = Vec::with_capacity(4);
    let mut tenants = HashSet::new();
    for (uid, parent) in members {
        let mut parents = HashSet::new();
        if let Some(parent) = parent {
            parents.insert(parent.clone());
            tenants.insert(parent);
        }
        entities.push(Entity::new_no_attrs(uid.clone(), parents));
    }
    entities.extend(tenants.into_iter().map(|t| Entity::new_no_attrs(t, HashSet::new())));
    Entities::from_entities(entities, None).map_err(|e| format!("bad entities: {e}"))
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

    #[test]
    fn the_built_in_permit_is_the_policy_its_text_says() {
        let engine = PolicyEngine::permissive().unwrap();
        let text =
            PolicySet::from_str("@id(\"default-permit\")\npermit(principal, action, resource);").unwrap();
        let text = rename_by_annotation(&text, "agenthost").unwrap();
        let ids =
            |set: &PolicySet| set.policies().map(|p| (p.id().to_string(), p.to_string())).collect::<Vec<_>>();
        assert_eq!(ids(&engine.policies), ids(&text));
    }

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

    #[test]
    fn a_slice_decides_as_the_whole_set_does() {
        let text = r#"
            @id("all") permit(principal, action, resource);
            @id("agents-critical") forbid(principal is AgentHost::Agent, action == AgentHost::Action::"InvokeTool", resource) when { context.tier == "critical" };
            @id("acme-tool-2") forbid(principal, action, resource == AgentHost::Tool::"acme/t2");
            @id("globex-fence") forbid(principal in AgentHost::Tenant::"globex", action, resource in AgentHost::Tenant::"acme");
            @id("users-in-acme") forbid(principal is AgentHost::User in AgentHost::Tenant::"acme", action in [AgentHost::Action::"InvokeTool"], resource) when { context.depth > 0 };
            @id("tools-of-acme") permit(principal, action, resource is AgentHost::Tool in AgentHost::Tenant::"acme");
        "#;
        let set = PolicySet::from_str(text).unwrap();
        let set = rename_by_annotation(&set, "t").unwrap();
        validate(&set).unwrap();
        let engine = PolicyEngine::new(set.clone(), Mode::Enforce, "t".into()).validating();
        let mut checked = 0;
        for (kind, tenant) in [("Agent", "acme"), ("User", "acme"), ("Agent", "globex"), ("User", "globex")] {
            for tool in ["acme/t1", "acme/t2", "globex/t1"] {
                for tier in ["read", "critical"] {
                    for depth in [0, 1] {
                        let mut query = invoke(tenant, "x", tier);
                        query.principal = EntityRef::new(kind, format!("{tenant}/p"));
                        query.resource = EntityRef::new("Tool", tool);
                        query.context.insert("depth".into(), Value::Long(depth));
                        let mut sliced = engine.decide(&query).unwrap();
                        sliced.policies.sort();
                        // The whole set, through Cedar directly.
                        let whole = PolicyEngine::new(set.clone(), Mode::Enforce, "t".into());
                        let everything = whole.decide_unsliced(&query).unwrap();
                        assert_eq!(
                            (sliced.allowed, &sliced.policies),
                            (everything.0, &everything.1),
                            "{query:?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 48);
    }
}
