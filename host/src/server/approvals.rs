//! Approvals over HTTP: list and show a tenant's requests, approve one
//! with a token the approver signed with their own key (what `agenthost
//! approvals approve` makes), or deny it. The bearer token says who is
//! calling; the approval token proves their key. Both must name the same
//! approver, and nobody decides a request they made.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::data::{authorize, body_problem, known_tenant, split_call};
use super::problem::Problem;
use super::{Caller, Role, Server};
use crate::error::InvokeError;
use crate::governance::approvals::{ApprovalRequest, Status, now_secs};
use crate::governance::{ApprovalStore, ApprovalToken};

/// The most requests one listing shows.
const MAX_LISTED: usize = 1000;

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    /// Decided and expired requests too.
    #[serde(default)]
    all: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    token: ApprovalToken,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DenyBody {
    #[serde(default)]
    reason: String,
}

fn store(server: &Server) -> Result<&ApprovalStore, Problem> {
    server
        .governance
        .approvals()
        .ok_or_else(|| Problem::not_found("this host keeps no approvals (no data directory)"))
}

/// The request, if it is this tenant's. Absent, another tenant's, corrupt
/// or unreadable all answer alike to the caller (the host logs why).
async fn request_of(server: &Server, tenant: &str, id: &str) -> Result<ApprovalRequest, Problem> {
    use crate::governance::ApprovalError;
    let absent = || {
        Problem::not_found(format!("tenant `{tenant}` has no approval request `{}`", crate::text::clip(id)))
    };
    let request = store(server)?.get(id).await.map_err(|e| match e {
        ApprovalError::NotFound(_) | ApprovalError::BadId(_) => absent(),
        // The store is down: a retry may succeed, unlike for an absent request.
        ApprovalError::Unavailable(_) => Problem::from(InvokeError::from(e)),
        e => {
            tracing::error!(target: "agenthost::server", error = %e, "an approval request cannot be read");
            absent()
        }
    })?;
    if request.tenant != tenant {
        return Err(absent());
    }
    Ok(request)
}

/// An approver sees every request of the tenant; a tenant user their own.
fn may_see(caller: &Caller, tenant: &str, request: &ApprovalRequest) -> bool {
    caller.may(Role::Approver, tenant)
        || (caller.may(Role::TenantUser, tenant) && request.requested_by == caller.subject)
}

fn summary(r: &ApprovalRequest) -> Value {
    json!({
        "id": r.id, "tenant": r.tenant, "tool": r.tool, "tier": r.tier,
        "requested_by": r.requested_by, "status": r.status,
        "approvals": format!("{}/{}", r.tokens.len(), r.approvals_needed),
        "run_id": r.run_id, "expires_at": r.expires_at,
    })
}

/// `GET /v1/tenants/{tenant}/approvals`
#[utoipa::path(get, path = "/v1/tenants/{tenant}/approvals", tag = "approvals",
    params(("tenant" = String, Path, description = "The tenant id"), ("all" = Option<bool>, Query, description = "Decided and expired requests too")),
    responses((status = 200, description = "Requests the caller may see: all for an approver, their own for a tenant user")))]
pub(super) async fn list(
    State(server): State<Arc<Server>>,
    Path(tenant): Path<String>,
    Query(query): Query<ListQuery>,
    caller: Caller,
) -> Result<Json<Value>, Problem> {
    if !caller.may(Role::Approver, &tenant) {
        authorize(&caller, Role::TenantUser, &tenant)?;
    }
    known_tenant(&server, &tenant)?;
    let now = now_secs();
    let requests =
        store(&server)?.list(Some(&tenant)).await.map_err(|e| Problem::from(InvokeError::from(e)))?;
    let listed: Vec<Value> = requests
        .iter()
        .filter(|r| may_see(&caller, &tenant, r))
        .filter(|r| query.all || (r.status == Status::Pending && r.expires_at > now))
        .take(MAX_LISTED)
        .map(summary)
        .collect();
    Ok(Json(json!({ "tenant": tenant, "approvals": listed })))
}

/// `GET /v1/tenants/{tenant}/approvals/{id}`
#[utoipa::path(get, path = "/v1/tenants/{tenant}/approvals/{id}", tag = "approvals",
    params(("tenant" = String, Path, description = "The tenant id"), ("id" = String, Path, description = "The approval request id")),
    responses((status = 200, description = "The request, its redacted input preview, and whether it reads as the host signed it")))]
pub(super) async fn show(
    State(server): State<Arc<Server>>,
    Path((tenant, id)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, Problem> {
    if !caller.may(Role::Approver, &tenant) {
        authorize(&caller, Role::TenantUser, &tenant)?;
    }
    known_tenant(&server, &tenant)?;
    let request = request_of(&server, &tenant, &id).await?;
    if !may_see(&caller, &tenant, &request) {
        // As if absent: a tenant user learns nothing of others' requests.
        return Err(Problem::not_found(format!(
            "tenant `{tenant}` has no approval request `{}`",
            crate::text::clip(&id)
        )));
    }
    let mut shown = serde_json::to_value(&request).map_err(|e| Problem::internal(e.to_string()))?;
    // A parked workflow's token and call are the host's, not for show.
    if let Some(map) = shown.as_object_mut()
        && map.remove("resume").is_some()
    {
        map.insert("resumes".to_owned(), json!("a paused workflow (Step Functions task)"));
    }
    if let Some(key) = &server.request_key {
        shown["host_signed"] = match request.verify_host_signature(key) {
            Ok(()) => Value::Bool(true),
            Err(why) => Value::String(why),
        };
    }
    Ok(Json(shown))
}

/// `POST /v1/tenants/{tenant}/approvals/{id}:approve` and `:deny`
#[utoipa::path(post, path = "/v1/tenants/{tenant}/approvals/{id}:approve", tag = "approvals",
    params(("tenant" = String, Path, description = "The tenant id"), ("id" = String, Path, description = "The approval request id")),
    request_body(content_type = "application/json", description = "{\"token\": TOKEN, \"reason\"?: TEXT}: the token from `agenthost approvals approve`"),
    responses((status = 200, description = "The request's new status"), (status = 403, description = "Not the caller's token or key, or the requester's own request")))]
pub(super) async fn decide(
    State(server): State<Arc<Server>>,
    Path((tenant, call)): Path<(String, String)>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, Problem> {
    authorize(&caller, Role::Approver, &tenant)?;
    known_tenant(&server, &tenant)?;
    let (id, method) = split_call(&call, &["approve", "deny"])?;
    let governance_tenant = server.governance.tenant(&tenant).map_err(|_| {
        Problem::not_found(format!("tenant `{}` is not served here", crate::text::clip(&tenant)))
    })?;
    let Some(key) = governance_tenant.approvers.get(&caller.subject) else {
        return Err(Problem::forbidden(format!(
            "`{}` is not an approver of tenant `{tenant}` ([approvers] in its tenant file)",
            caller.subject
        )));
    };
    // The request must be this tenant's before anything is recorded.
    request_of(&server, &tenant, id).await?;
    let bytes = body.map_err(|r| body_problem(&r, server.settings.body_limit_bytes))?;
    let store = store(&server)?;
    let (request, outcome, key_id, reason) = if method == "approve" {
        let body: ApproveBody = serde_json::from_slice(&bytes).map_err(|e| {
            Problem::bad_request(format!(
                "the body must be JSON {{\"token\": TOKEN, \"reason\"?: TEXT}} with the token from `agenthost approvals approve`: {e}"
            ))
        })?;
        if body.token.claims.approver != caller.subject {
            return Err(Problem::forbidden(format!(
                "the token is `{}`'s; `{}` may present only their own",
                crate::text::clip(&body.token.claims.approver),
                caller.subject
            )));
        }
        let key_id = body.token.claims.key_id.clone();
        let request = store
            .record_token(id, body.token, key, &body.reason)
            .await
            .map_err(|e| Problem::from(InvokeError::from(e)))?;
        (request, "approved", key_id, body.reason)
    } else {
        let body: DenyBody = if bytes.is_empty() {
            DenyBody::default()
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                Problem::bad_request(format!("the body must be JSON {{\"reason\"?: TEXT}}: {e}"))
            })?
        };
        let key_id = format!("jwt:{}", caller.issuer);
        let request = store
            .record_denial(id, &caller.subject, &key_id, &body.reason)
            .await
            .map_err(|e| Problem::from(InvokeError::from(e)))?;
        (request, "denied", key_id, body.reason)
    };
    if let Some(audit) = &server.audit {
        let event = request.decision_event(&caller.subject, &key_id, outcome, &reason);
        audit.append_owned(event).map_err(|e| {
            Problem::internal(format!("the decision was recorded but not its audit record: {e}"))
        })?;
    }
    let mut answer = summary(&request);
    // A paused workflow waits on this request: it resumes (or fails) now.
    if request.resume.is_some() && request.status != Status::Pending {
        answer["workflow_answered"] = json!(server.settle_detached(&request.id).await);
    }
    Ok(Json(answer))
}

/// Denies a request (`{"reason"?: TEXT}`); routed with `:approve` above.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/approvals/{id}:deny", tag = "approvals",
    params(("tenant" = String, Path, description = "The tenant id"), ("id" = String, Path, description = "The approval request id")),
    responses((status = 200, description = "Denied")))]
#[allow(dead_code)]
pub(super) async fn deny_doc() {}
