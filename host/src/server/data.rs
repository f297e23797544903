//! The data plane: invoke a tool, run an agent. Each call is checked in
//! this order: the caller's role in the tenant, the tenant, admission, the
//! body, then the version its aliases route it to; the host governs the
//! call itself (policy, tier, approvals, quotas) with the caller's subject
//! as the principal.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admission::{Admitted, Refusal};
use super::problem::Problem;
use super::{Caller, Role, Server};
use crate::error::ErrorKind;
use crate::governance::ApprovalToken;
use crate::registry::warm::WarmError;
use crate::registry::{Alias, RegistryError, VersionRecord};
use crate::runtime::{CallOptions, LoadedComponent};
use crate::vocab::World;

/// The header a client sets to keep its calls on one version while a
/// canary runs.
pub const SESSION_HEADER: &str = "agenthost-session";

/// The body of an invoke or run.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallBody {
    /// The tool's or agent's input.
    input: Value,
    /// Re-submits the call of an approved request.
    #[serde(default)]
    approval_request: Option<String>,
    /// Approval tokens (from `approvals approve`).
    #[serde(default)]
    approvals: Vec<ApprovalToken>,
}

#[derive(Deserialize, Default)]
pub(super) struct RunQuery {
    /// Include the transcript in the answer.
    #[serde(default)]
    transcript: bool,
}

/// `{name}:{method}` from one path segment (the router cannot match a
/// literal after a parameter inside a segment).
pub(super) fn split_call<'a>(segment: &'a str, methods: &[&str]) -> Result<(&'a str, &'a str), Problem> {
    let (name, method) = segment.rsplit_once(':').ok_or_else(|| {
        Problem::not_found(format!(
            "`{}` names no method (expected NAME:{})",
            crate::text::clip(segment),
            methods.join("|")
        ))
    })?;
    if !methods.contains(&method) {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("`{}` is not a method here (expected {})", crate::text::clip(method), methods.join(", ")),
        ));
    }
    Ok((name, method))
}

/// Refuses unless the caller has `role` in `tenant`; the answer is the
/// same whether or not the tenant exists.
pub(super) fn authorize(caller: &Caller, role: Role, tenant: &str) -> Result<(), Problem> {
    if caller.may(role, tenant) {
        Ok(())
    } else {
        Err(Problem::forbidden(format!(
            "`{}` may not act as {} in tenant `{}`",
            caller.subject,
            role.as_str(),
            crate::text::clip(tenant)
        )))
    }
}

/// The tenant must be one this host serves (checked after authorization).
pub(super) fn known_tenant(server: &Server, tenant: &str) -> Result<(), Problem> {
    server.governance.tenant(tenant).map(|_| ()).map_err(|e| Problem::not_found(e.to_string()))
}

fn admit(server: &Server, tenant: &str) -> Result<Admitted, Problem> {
    let limit = server.settings.max_in_flight;
    server.admission.admit(tenant, limit).map_err(|refusal| {
        let detail = match refusal {
            Refusal::Global(n) => format!("the server is running its limit of {n} calls ([server] max_in_flight); retry shortly"),
            Refusal::Tenant(n) => format!(
                "tenant `{tenant}` is running its limit of {n} calls on this server ([server] tenant_in_flight); retry shortly"
            ),
        };
        Problem::overloaded(detail, server.settings.retry_after_secs)
    })
}

pub(super) fn body_problem(rejection: &BytesRejection, limit: usize) -> Problem {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!("the request body is larger than {limit} bytes ([server] body_limit_bytes)"),
        )
    } else {
        Problem::bad_request(format!("cannot read the request body: {rejection}"))
    }
}

fn parse_body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<CallBody, Problem> {
    let bytes = body.map_err(|r| body_problem(&r, limit))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Problem::bad_request(format!(
            "the body must be JSON {{\"input\": ..., \"approval_request\"?: ID, \"approvals\"?: [TOKEN]}}: {e}"
        ))
    })
}

/// A load failure as the data plane reports it: a missing version is
/// not-found; a version that fails its checks or cannot load is unavailable.
pub(super) fn load_problem(e: WarmError) -> Problem {
    match e {
        WarmError::Registry(RegistryError::NotFound(m)) => Problem::not_found(m),
        WarmError::Registry(e) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()),
        WarmError::Load(e) => e.into(),
    }
}

/// The version a call goes to: the one an approval request was made for
/// (its token binds that digest), else what the aliases route to.
async fn resolve(
    server: &Server,
    tenant: &str,
    name: &str,
    world: World,
    headers: &HeaderMap,
    body: &CallBody,
) -> Result<(Arc<LoadedComponent>, Arc<VersionRecord>, &'static str), Problem> {
    let registry = server.registry();
    let missing = || {
        Problem::not_found(format!("tenant `{tenant}` has no {world} named `{}`", crate::text::clip(name)))
    };
    crate::registry::check_name("component name", name).map_err(|_| missing())?;
    let (version, via) = match &body.approval_request {
        Some(id) => {
            let store = server
                .governance
                .approvals()
                .ok_or_else(|| Problem::not_found("this host keeps no approvals"))?;
            let request = store.get(id).map_err(|e| Problem::from(crate::error::InvokeError::from(e)))?;
            if request.tenant != tenant {
                return Err(Problem::not_found(format!(
                    "tenant `{tenant}` has no approval request `{}`",
                    crate::text::clip(id)
                )));
            }
            let versions = registry.store().list_versions(tenant, name).await?;
            let record = versions.into_iter().find(|v| v.digest == request.tool_digest).ok_or_else(|| {
                Problem::not_found(format!(
                    "approval request `{id}` is for {} ({}), which is not a version of `{name}` in the registry",
                    request.tool, request.tool_digest
                ))
            })?;
            (record.version, "approval")
        }
        None => {
            let aliases = registry.aliases(tenant, name).await?;
            let sticky = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()).filter(|k| k.len() <= 256);
            let (version, alias) = aliases.route(name, sticky).ok_or_else(missing)?;
            (
                version.to_owned(),
                match alias {
                    Alias::Stable => "stable",
                    Alias::Canary => "canary",
                },
            )
        }
    };
    let (component, record) = server.warm.get(tenant, name, &version).await.map_err(load_problem)?;
    if component.world() != world {
        return Err(missing());
    }
    Ok((component, record, via))
}

fn options(caller: &Caller, headers: &HeaderMap, body: CallBody) -> CallOptions {
    // A W3C traceparent continues the client's trace: version-trace-parent-flags.
    let trace_id = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split('-').nth(1))
        .filter(|id| {
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && id.bytes().any(|b| b != b'0')
        })
        .map(str::to_ascii_lowercase);
    CallOptions {
        principal: Some(caller.subject.clone()),
        principal_key: None,
        approvals: body.approvals,
        approval_request: body.approval_request,
        trace_id,
    }
}

fn answer(mut body: Value, record: &VersionRecord, via: &str) -> Response {
    body["component"] = json!({ "name": record.name, "version": record.version, "digest": record.digest });
    body["alias"] = json!(via);
    let mut response = Json(body).into_response();
    if let Ok(value) = HeaderValue::from_str(&record.label()) {
        response.headers_mut().insert("agenthost-component", value);
    }
    response
}

/// An error of the call, with a `Location` to poll when it waits for approval.
fn call_problem(e: crate::error::InvokeError, tenant: &str) -> Problem {
    let id = (e.kind == ErrorKind::ApprovalRequired).then(|| e.approval_request.clone()).flatten();
    let mut problem = Problem::from(e);
    if let Some(id) = id {
        problem.location = Some(format!("/v1/tenants/{tenant}/approvals/{id}"));
    }
    problem
}

/// `POST /v1/tenants/{tenant}/tools/{name}:invoke`
pub(super) async fn invoke(
    State(server): State<Arc<Server>>,
    Path((tenant, call)): Path<(String, String)>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    authorize(&caller, Role::TenantUser, &tenant)?;
    known_tenant(&server, &tenant)?;
    let (name, _) = split_call(&call, &["invoke"])?;
    let _admitted = admit(&server, &tenant)?;
    let body = parse_body(body, server.settings.body_limit_bytes)?;
    let (tool, record, via) = resolve(&server, &tenant, name, World::Tool, &headers, &body).await?;
    let input = body.input.clone();
    let options = options(&caller, &headers, body);
    let output =
        server.host.invoke_tool_with(&tool, &input, &options).await.map_err(|e| call_problem(e, &tenant))?;
    Ok(answer(json!({ "output": output }), &record, via))
}

/// `POST /v1/tenants/{tenant}/agents/{name}:run`
pub(super) async fn run(
    State(server): State<Arc<Server>>,
    Path((tenant, call)): Path<(String, String)>,
    Query(query): Query<RunQuery>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    authorize(&caller, Role::TenantUser, &tenant)?;
    known_tenant(&server, &tenant)?;
    let (name, _) = split_call(&call, &["run"])?;
    let _admitted = admit(&server, &tenant)?;
    let body = parse_body(body, server.settings.body_limit_bytes)?;
    let (agent, record, via) = resolve(&server, &tenant, name, World::Agent, &headers, &body).await?;
    let input = body.input.clone();
    let options = options(&caller, &headers, body);
    let run =
        server.host.run_agent_with(&agent, &input, &options).await.map_err(|e| call_problem(e, &tenant))?;
    let mut answer_body = json!({ "output": run.output, "trace": run.trace });
    if query.transcript {
        answer_body["transcript"] = json!(run.transcript.events());
    }
    Ok(answer(answer_body, &record, via))
}
