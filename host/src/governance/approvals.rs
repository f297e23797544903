//! Approvals for `write-high` and `critical` calls.
//!
//! A call that needs approval does not run: the host records a pending
//! [`ApprovalRequest`] and answers `approval-required` with its id. An
//! approver signs an [`ApprovalToken`] (ed25519, with their own key) bound
//! to the tenant, the tool (name@version and the digest of its bytes: a
//! replaced component is not what was approved), the digest of the exact
//! input, the run and an expiry; re-submitting the call in that run with
//! the token(s) runs it once: each token is consumed atomically in the
//! [`ApprovalStore`](super::approval_store::ApprovalStore) (a create that
//! fails if the mark exists), so a second use is refused even by another
//! process sharing the store, and its use is recorded in the audit trail
//! too, which is checked on use: deleting the mark does not bring a token
//! back.
//!
//! Identities are authenticated, not asserted: a request records who made
//! it and the key that proved it (or the OS user), and nobody approves or
//! denies their own request, by name or by key.
//!
//! Approvers see what they approve: the request's preview holds the input's
//! values (long strings cut, the whole preview bounded), with only the
//! fields the tool's schema (`"x-sensitive": true` or `"writeOnly": true`)
//! or the policy stack (`sensitive_fields`) marks sensitive redacted.
//!
//! Where requests and marks are kept: `approval_store`.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::tier::Tier;
use crate::keys::{KeyPair, PublicKey};

/// How long a pending request stays approvable.
pub const REQUEST_TTL_SECS: u64 = 24 * 60 * 60;
/// Default validity of a token from the moment it is signed.
pub const TOKEN_TTL_SECS: u64 = 60 * 60;

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pending,
    Approved,
    Denied,
}

/// A call waiting for approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub id: String,
    pub tenant: String,
    /// `name@version` of the tool.
    pub tool: String,
    pub tool_digest: String,
    pub tier: Tier,
    /// `sha256:<hex>` of the canonical JSON input.
    pub input_digest: String,
    /// The input as the approver sees it: values shown, sensitive fields
    /// redacted, long strings cut (see [`preview`]).
    pub preview: Value,
    pub requested_by: String,
    /// The key id that authenticated the requester (`None`: the OS user
    /// or an embedder's own authentication).
    #[serde(default)]
    pub requested_by_key: Option<String>,
    pub trace_id: String,
    pub run_id: String,
    pub created_at: u64,
    pub expires_at: u64,
    pub approvals_needed: usize,
    pub status: Status,
    #[serde(default)]
    pub decisions: Vec<ApproverDecision>,
    #[serde(default)]
    pub tokens: Vec<ApprovalToken>,
    /// The host's signature over what the request says (everything above
    /// but its status, decisions and tokens), so that an approver never
    /// signs for a call the file was edited to misdescribe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_signature: Option<super::manifest::ManifestSignature>,
    /// A paused workflow waiting on the request's outcome (a Step Functions
    /// task token and the call to run once approved). Host state, never
    /// shown: the token answers the workflow and the call holds the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
}

/// What a paused workflow needs once its request is decided.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The workflow's callback token (Step Functions' task token).
    pub task_token: String,
    /// The call as it came, to run again with the request's approval.
    pub call: Value,
    /// The transport that vouched for its caller (`lambda`, `sqs`).
    pub transport: String,
}

impl std::fmt::Debug for Resume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resume").field("transport", &self.transport).finish_non_exhaustive()
    }
}

impl ApprovalRequest {
    /// Decided, or expired undecided by `now` (Unix seconds): nothing more
    /// can happen to it, so a workflow waiting on it can be answered.
    pub fn is_settled(&self, now: u64) -> bool {
        self.status != Status::Pending || now >= self.expires_at
    }

    /// The audit record of a decision on this request by `approver`
    /// (authenticated by `key_id`): `outcome` is `approved` or `denied`.
    pub fn decision_event(
        &self,
        approver: &str,
        key_id: &str,
        outcome: &str,
        reason: &str,
    ) -> crate::audit::Event {
        crate::audit::Event::new(
            crate::audit::Kind::Approval,
            self.tenant.clone(),
            outcome,
            serde_json::json!({
                "request": self.id,
                "tool": self.tool,
                "tier": self.tier,
                "input_digest": self.input_digest,
                "approver": approver,
                "approvals": format!("{}/{}", self.tokens.len(), self.approvals_needed),
                "key": key_id,
            }),
        )
        .on_behalf_of(approver)
        .in_run(Some(self.trace_id.clone()), Some(self.run_id.clone()))
        .because((!reason.is_empty()).then(|| reason.to_owned()))
    }

    /// What the host signs: the request as created.
    pub(super) fn signed_content(&self) -> Result<Value, String> {
        let mut value = serde_json::to_value(self).map_err(|e| e.to_string())?;
        if let Some(map) = value.as_object_mut() {
            for field in ["status", "decisions", "tokens", "host_signature", "resume"] {
                map.remove(field);
            }
        }
        Ok(value)
    }

    /// Checks that the host that made the request signed it as it reads now.
    ///
    /// # Errors
    ///
    /// Unsigned, signed by another key, or changed since.
    pub fn verify_host_signature(&self, host: &PublicKey) -> Result<(), String> {
        let Some(signature) = &self.host_signature else {
            return Err(format!(
                "approval request `{}` is not signed by the host: it was written outside the host, or by a host without keys",
                self.id
            ));
        };
        signature.verify(
            &self.signed_content()?,
            std::slice::from_ref(host),
            &format!("approval request `{}`", self.id),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproverDecision {
    pub approver: String,
    /// The key that authenticated the approver.
    #[serde(default)]
    pub key_id: String,
    pub approved: bool,
    pub at: u64,
    #[serde(default)]
    pub reason: String,
}

/// What a token is bound to. Signed as canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    pub request_id: String,
    pub tenant: String,
    pub tool: String,
    /// `sha256:` of the component approved: a replaced component, even
    /// under the same name@version, is not what was approved.
    pub tool_digest: String,
    pub input_digest: String,
    pub run_id: String,
    pub expires_at: u64,
    pub approver: String,
    pub key_id: String,
    /// Random; names the token's single use.
    pub nonce: String,
}

/// A signed approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalToken {
    pub claims: TokenClaims,
    pub signature: String,
}

impl ApprovalToken {
    /// Signs `claims` (filling in `key_id`).
    ///
    /// # Errors
    ///
    /// When the claims cannot be encoded.
    pub fn sign(mut claims: TokenClaims, key: &KeyPair) -> Result<Self, String> {
        claims.key_id = key.id();
        let value = serde_json::to_value(&claims).map_err(|e| e.to_string())?;
        Ok(ApprovalToken { signature: key.sign_json(&value), claims })
    }

    /// Checks the signature with the approver's key.
    ///
    /// # Errors
    ///
    /// A wrong key or an altered token.
    pub fn verify_signature(&self, key: &PublicKey) -> Result<(), String> {
        if key.id() != self.claims.key_id {
            return Err(format!(
                "the token of approver `{}` is signed by {}, not by their registered key {}",
                self.claims.approver,
                self.claims.key_id,
                key.id()
            ));
        }
        let value = serde_json::to_value(&self.claims).map_err(|e| e.to_string())?;
        key.verify_json(&value, &self.signature)
            .map_err(|e| format!("the token of approver `{}` is not valid: {e}", self.claims.approver))
    }
}

/// Who decides a request: their name and key as the tenant lists them,
/// and the OS user their process runs as (an approver may not decide a
/// request their own OS account made without `--as`).
#[derive(Debug, Clone, Copy)]
pub struct Approver<'a> {
    pub name: &'a str,
    pub key: &'a KeyPair,
    pub os_user: Option<&'a str>,
}

/// What a call presents its tokens against.
#[derive(Debug, Clone)]
pub struct CallBinding<'a> {
    pub tenant: &'a str,
    pub tool: &'a str,
    pub tool_digest: &'a str,
    pub input_digest: &'a str,
    pub run_id: &'a str,
    /// Who made the call, and the key that proved it.
    pub requested_by: &'a str,
    pub requested_by_key: Option<&'a str>,
}

impl TokenClaims {
    /// The claims of an approval of `request` by `approver`, valid for
    /// `ttl_secs` (never past the request's expiry), with a fresh nonce.
    pub fn for_request(request: &ApprovalRequest, approver: &str, ttl_secs: u64) -> TokenClaims {
        TokenClaims {
            request_id: request.id.clone(),
            tenant: request.tenant.clone(),
            tool: request.tool.clone(),
            tool_digest: request.tool_digest.clone(),
            input_digest: request.input_digest.clone(),
            run_id: request.run_id.clone(),
            expires_at: now_secs().saturating_add(ttl_secs).min(request.expires_at),
            approver: approver.to_owned(),
            key_id: String::new(),
            nonce: hex::encode(rand::random::<[u8; 16]>()),
        }
    }
}

/// Checks a token against a call, without consuming it.
///
/// # Errors
///
/// What does not match: expired, another tenant/tool/input/run, or the
/// approver is the requester.
pub fn check_binding(token: &ApprovalToken, call: &CallBinding<'_>) -> Result<(), String> {
    let c = &token.claims;
    let who = &c.approver;
    if now_secs() >= c.expires_at {
        return Err(format!("the approval token of `{who}` expired at {}", c.expires_at));
    }
    if c.tenant != call.tenant {
        return Err(format!(
            "the approval token of `{who}` is for tenant `{}`, not `{}`",
            c.tenant, call.tenant
        ));
    }
    if c.tool != call.tool {
        return Err(format!("the approval token of `{who}` is for {}, not {}", c.tool, call.tool));
    }
    if c.tool_digest != call.tool_digest {
        return Err(format!(
            "the approval token of `{who}` is for {} as {}, but the component now loaded is {}: it was replaced after the approval",
            c.tool,
            short(&c.tool_digest),
            short(call.tool_digest)
        ));
    }
    if c.input_digest != call.input_digest {
        return Err(format!(
            "the approval token of `{who}` was given for other input ({}), not this call's ({})",
            short(&c.input_digest),
            short(call.input_digest)
        ));
    }
    if c.run_id != call.run_id {
        return Err(format!("the approval token of `{who}` is for run {}, not {}", c.run_id, call.run_id));
    }
    if c.approver == call.requested_by || call.requested_by_key == Some(c.key_id.as_str()) {
        return Err(format!("`{who}` cannot approve their own request (same name or key as the requester)"));
    }
    Ok(())
}

/// The approval tokens presented with one call, sorted out.
#[derive(Debug)]
pub struct Selection<'t> {
    /// The distinct approvers behind the valid tokens, in name order.
    pub approvers: Vec<&'t str>,
    /// Tokens bound to this call and signed by an approver of the tenant.
    pub valid: Vec<&'t ApprovalToken>,
    /// Why each other token for this tool was refused.
    pub problems: Vec<String>,
}

impl<'t> Selection<'t> {
    /// One token from each of the first `needed` approvers (in name
    /// order), when there are that many: the tokens a call spends.
    pub fn spend(&self, needed: usize) -> Option<Vec<&'t ApprovalToken>> {
        if self.approvers.len() < needed {
            return None;
        }
        Some(
            self.approvers
                .iter()
                .take(needed)
                .filter_map(|approver| self.valid.iter().find(|t| t.claims.approver == *approver).copied())
                .collect(),
        )
    }
}

/// Sorts out the tokens presented with a call of the tool named
/// `tool_name`: a token for another tool is ignored; the others must be
/// bound to `call` ([`check_binding`]) and signed with the key `approvers`
/// (the tenant's) lists for the approver they name. Approvers are counted
/// as people: two names the tenant lists with one key are one person, and
/// one name is one person whatever it signed.
pub fn select<'t>(
    presented: &'t [ApprovalToken],
    tool_name: &str,
    call: &CallBinding<'_>,
    approvers: &BTreeMap<String, PublicKey>,
) -> Selection<'t> {
    let mut valid = Vec::new();
    let mut problems = Vec::new();
    for token in presented.iter().filter(|t| t.claims.tool.split('@').next() == Some(tool_name)) {
        let check = check_binding(token, call).and_then(|()| {
            let key = approvers.get(&token.claims.approver).ok_or_else(|| {
                format!("`{}` is not an approver of tenant `{}`", token.claims.approver, call.tenant)
            })?;
            token.verify_signature(key)
        });
        match check {
            Ok(()) => valid.push(token),
            Err(problem) => problems.push(problem),
        }
    }
    let mut people: Vec<&str> = Vec::new();
    let mut keys: Vec<&str> = Vec::new();
    for token in &valid {
        let (name, key) = (token.claims.approver.as_str(), token.claims.key_id.as_str());
        if !people.contains(&name) && !keys.contains(&key) {
            people.push(name);
            keys.push(key);
        }
    }
    people.sort_unstable();
    Selection { approvers: people, valid, problems }
}

fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

/// The longest string a preview shows whole, in characters.
pub const PREVIEW_STRING_CHARS: usize = 512;
/// The most a preview holds, in bytes of JSON.
pub const PREVIEW_BYTES: usize = 16 * 1024;

/// What an approver sees of an input: every value, except the fields
/// marked sensitive (by name anywhere in `sensitive_names`, or at a path of
/// `sensitive_paths`, where `*` stands for any array item), strings cut at
/// [`PREVIEW_STRING_CHARS`], the whole bounded by [`PREVIEW_BYTES`].
pub fn preview(input: &Value, sensitive_paths: &[Vec<String>], sensitive_names: &[String]) -> Value {
    let mut path = Vec::new();
    let shown = show(input, &mut path, sensitive_paths, sensitive_names, PREVIEW_STRING_CHARS);
    if serde_json::to_vec(&shown).map_or(0, |j| j.len()) <= PREVIEW_BYTES {
        return shown;
    }
    // Too big whole: shorter strings, and if that is not enough, the shape.
    let shown = show(input, &mut path, sensitive_paths, sensitive_names, 48);
    let bytes = serde_json::to_vec(&shown).map_or(0, |j| j.len());
    if bytes <= PREVIEW_BYTES {
        return shown;
    }
    let keys: Vec<&String> = input.as_object().map(|m| m.keys().take(64).collect()).unwrap_or_default();
    serde_json::json!({
        "preview_cut": format!("the input is too large to preview ({bytes} bytes even with strings cut); check its digest"),
        "top_level_keys": keys,
    })
}

fn show(
    value: &Value,
    path: &mut Vec<String>,
    paths: &[Vec<String>],
    names: &[String],
    max_chars: usize,
) -> Value {
    match value {
        Value::String(s) if s.chars().count() > max_chars => {
            let head: String = s.chars().take(max_chars).collect();
            Value::String(format!("{head}…({} chars)", s.chars().count()))
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| {
                    path.push("*".to_owned());
                    let shown = show(item, path, paths, names, max_chars);
                    path.pop();
                    shown
                })
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    path.push(k.clone());
                    // Redacted, but never silently: the approver learns who
                    // marked it and how big it is, and can deny a request
                    // that hides what it should not.
                    let by = if paths.iter().any(|p| p == path) {
                        Some("the tool's schema")
                    } else if names.iter().any(|n| n == k) {
                        Some("the policy stack")
                    } else {
                        None
                    };
                    let shown = match by {
                        Some(by) => Value::String(format!(
                            "[redacted: marked sensitive by {by}; {} bytes]",
                            serde_json::to_vec(v).map_or(0, |j| j.len())
                        )),
                        None => show(v, path, paths, names, max_chars),
                    };
                    path.pop();
                    (k.clone(), shown)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The paths a JSON Schema marks sensitive (`"x-sensitive": true` or
/// `"writeOnly": true`), following `properties` and `items`.
pub fn sensitive_paths(schema: &Value) -> Vec<Vec<String>> {
    fn walk(schema: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>, depth: usize) {
        if depth > 32 {
            return;
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, sub) in properties {
                path.push(name.clone());
                let marked = sub.get("x-sensitive").and_then(Value::as_bool) == Some(true)
                    || sub.get("writeOnly").and_then(Value::as_bool) == Some(true);
                if marked {
                    out.push(path.clone());
                } else {
                    walk(sub, path, out, depth + 1);
                }
                path.pop();
            }
        }
        if let Some(items) = schema.get("items") {
            path.push("*".to_owned());
            walk(items, path, out, depth + 1);
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(schema, &mut Vec::new(), &mut out, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_preview_shows_values_and_redacts_only_what_is_marked() {
        let schema = json!({
            "type": "object",
            "properties": {
                "card": { "type": "string", "x-sensitive": true },
                "items": { "type": "array", "items": { "type": "object", "properties": { "pin": { "writeOnly": true } } } },
                "note": { "type": "string" }
            }
        });
        let paths = sensitive_paths(&schema);
        assert_eq!(paths, vec![vec!["card".to_owned()], vec!["items".into(), "*".into(), "pin".into()]]);
        let input =
            json!({"card": "4242", "items": [{"pin": "1234", "n": 2}], "note": "keep", "ssn": "1-2-3"});
        let shown = preview(&input, &paths, &["ssn".to_owned()]);
        assert_eq!(shown["note"], "keep");
        assert_eq!(shown["items"][0]["n"], 2);
        assert_eq!(shown["card"], "[redacted: marked sensitive by the tool's schema; 6 bytes]");
        assert_eq!(shown["items"][0]["pin"], "[redacted: marked sensitive by the tool's schema; 6 bytes]");
        assert_eq!(shown["ssn"], "[redacted: marked sensitive by the policy stack; 7 bytes]");
        // Long strings are cut, and a huge input is bounded.
        let long = preview(&json!({"text": "x".repeat(2000)}), &[], &[]);
        assert!(long["text"].as_str().unwrap().ends_with("…(2000 chars)"));
        let huge = json!({"items": vec!["y".repeat(100); 5000]});
        assert!(serde_json::to_vec(&preview(&huge, &[], &[])).unwrap().len() <= PREVIEW_BYTES);
    }

    fn binding() -> CallBinding<'static> {
        CallBinding {
            tenant: "acme",
            tool: "refund@1.0.0",
            tool_digest: "sha256:aa",
            input_digest: "sha256:bb",
            run_id: "run-1",
            requested_by: "carol",
            requested_by_key: None,
        }
    }

    fn token(approver: &str, key: &KeyPair, edit: impl FnOnce(&mut TokenClaims)) -> ApprovalToken {
        let call = binding();
        let mut claims = TokenClaims {
            request_id: "req-1".into(),
            tenant: call.tenant.into(),
            tool: call.tool.into(),
            tool_digest: call.tool_digest.into(),
            input_digest: call.input_digest.into(),
            run_id: call.run_id.into(),
            expires_at: now_secs() + 600,
            approver: approver.into(),
            key_id: String::new(),
            nonce: format!("nonce-{approver}-{}", rand::random::<u32>()),
        };
        edit(&mut claims);
        ApprovalToken::sign(claims, key).unwrap()
    }

    #[test]
    fn tokens_count_people_not_names_or_copies() {
        let (alice, bob, mallory) =
            (KeyPair::from_seed([1; 32]), KeyPair::from_seed([2; 32]), KeyPair::from_seed([3; 32]));
        // `alice` and `alice-2` are one person: one key under two names.
        let listed: BTreeMap<String, PublicKey> = [("alice", &alice), ("alice-2", &alice), ("bob", &bob)]
            .into_iter()
            .map(|(name, key)| (name.to_owned(), key.public()))
            .collect();
        let presented = [
            token("alice", &alice, |_| {}),
            token("alice", &alice, |_| {}),
            token("alice-2", &alice, |_| {}),
        ];
        let selection = select(&presented, "refund", &binding(), &listed);
        assert_eq!(selection.approvers, ["alice"]);
        assert_eq!(selection.valid.len(), 3);
        assert!(selection.spend(2).is_none(), "one person's tokens passed for two approvals");
        assert_eq!(selection.spend(1).unwrap().len(), 1);

        let presented = [token("bob", &bob, |_| {}), token("alice", &alice, |_| {})];
        let selection = select(&presented, "refund", &binding(), &listed);
        let spent: Vec<&str> =
            selection.spend(2).unwrap().iter().map(|t| t.claims.approver.as_str()).collect();
        assert_eq!(spent, ["alice", "bob"]);

        // Signed by someone else's key, or by nobody the tenant lists.
        let presented = [token("bob", &mallory, |_| {}), token("mallory", &mallory, |_| {})];
        let selection = select(&presented, "refund", &binding(), &listed);
        assert!(selection.approvers.is_empty() && selection.spend(1).is_none());
        assert!(selection.problems[0].contains("not by their registered key"), "{:?}", selection.problems);
        assert!(
            selection.problems[1].contains("not an approver of tenant `acme`"),
            "{:?}",
            selection.problems
        );
    }

    #[test]
    fn a_token_bound_to_anything_else_is_refused_and_says_what() {
        let alice = KeyPair::from_seed([1; 32]);
        let listed: BTreeMap<String, PublicKey> =
            [("alice".to_owned(), alice.public()), ("carol".to_owned(), alice.public())]
                .into_iter()
                .collect();
        let presented = [
            token("alice", &alice, |c| c.input_digest = "sha256:cc".into()),
            token("alice", &alice, |c| c.run_id = "run-2".into()),
            token("alice", &alice, |c| c.tool_digest = "sha256:dd".into()),
            token("alice", &alice, |c| c.expires_at = 1),
            token("carol", &alice, |_| {}),
            // Another tool's token is not this call's business.
            token("alice", &alice, |c| c.tool = "wipe@1.0.0".into()),
        ];
        let selection = select(&presented, "refund", &binding(), &listed);
        assert!(selection.valid.is_empty());
        let problems = selection.problems.join("\n");
        for expected in
            ["other input", "run run-2", "replaced after the approval", "expired", "their own request"]
        {
            assert!(problems.contains(expected), "no `{expected}` in:\n{problems}");
        }
        assert_eq!(selection.problems.len(), 5, "{problems}");
    }
}
