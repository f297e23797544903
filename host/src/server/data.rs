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
/// The answer names no other tenant.
pub(super) fn known_tenant(server: &Server, tenant: &str) -> Result<(), Problem> {
    server
        .governance
        .tenant(tenant)
        .map(|_| ())
        .map_err(|_| Problem::not_found(format!("tenant `{}` is not served here", crate::text::clip(tenant))))
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
            format!(
                "the request body is larger than {limit} bytes ([server] body_limit_bytes, deploy_limit_bytes)"
            ),
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
    caller: &Caller,
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
    let pinned = match &body.approval_request {
        Some(id) => {
            let store = server
                .governance
                .approvals()
                .ok_or_else(|| Problem::not_found("this host keeps no approvals"))?;
            // One answer for absent, another tenant's and another caller's.
            let absent = || {
                Problem::not_found(format!(
                    "`{}` has no approval request `{}` in tenant `{tenant}`",
                    caller.subject,
                    crate::text::clip(id)
                ))
            };
            let request = store.get(id).await.map_err(|e| match e {
                crate::governance::ApprovalError::Unavailable(_) => {
                    Problem::from(crate::error::InvokeError::from(e))
                }
                _ => absent(),
            })?;
            if request.tenant != tenant || request.requested_by != caller.subject {
                return Err(absent());
            }
            // A tool's own approval pins the version it was made for (its
            // token binds that digest); an agent's run routes as usual and
            // its tool call finds the approved tool.
            match request.tool.split_once('@') {
                Some((tool, _)) if world == World::Tool && tool == name => {
                    let versions = registry.store().list_versions(tenant, name).await?;
                    let record = versions.into_iter().find(|v| v.digest == request.tool_digest).ok_or_else(|| {
                        Problem::not_found(format!(
                            "approval request `{id}` is for {} ({}), which is not a version of `{name}` in the registry",
                            request.tool, request.tool_digest
                        ))
                    })?;
                    Some(record.version)
                }
                _ => None,
            }
        }
        None => None,
    };
    let (version, via) = match pinned {
        Some(version) => (version, "approval"),
        None => {
            let aliases = server.aliases_of(tenant, name).await?;
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

/// The answer's body: the call's, with the version that served it and the
/// alias that routed there. The same for every transport.
fn answer_body(mut body: Value, record: &VersionRecord, via: &str) -> Value {
    body["component"] = json!({ "name": record.name, "version": record.version, "digest": record.digest });
    body["alias"] = json!(via);
    body
}

fn answer(body: Value, record: &VersionRecord, via: &str) -> Response {
    let mut response = Json(answer_body(body, record, via)).into_response();
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

/// Whether the client asked for `Prefer: respond-async`.
fn wants_async(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
}

/// A call's answer: the body of a 200, or the problem.
async fn perform(
    server: &Server,
    component: &Arc<LoadedComponent>,
    world: World,
    input: &Value,
    options: &CallOptions,
    transcript: bool,
    tenant: &str,
) -> Result<Value, Problem> {
    match world {
        World::Tool => {
            let output = server
                .host
                .invoke_tool_with(component, input, options)
                .await
                .map_err(|e| call_problem(e, tenant))?;
            Ok(json!({ "output": output }))
        }
        World::Agent => {
            let run = server
                .host
                .run_agent_with(component, input, options)
                .await
                .map_err(|e| call_problem(e, tenant))?;
            let mut body = json!({ "output": run.output, "trace": run.trace });
            if transcript {
                body["transcript"] = json!(run.transcript.events());
            }
            Ok(body)
        }
    }
}

/// Invoke or run: checks, routing, then the call, answered now or (with
/// `Prefer: respond-async`) as a run resource to poll.
#[allow(clippy::too_many_arguments)]
async fn call(
    server: Arc<Server>,
    tenant: String,
    segment: &str,
    world: World,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    transcript: bool,
) -> Result<Response, Problem> {
    authorize(&caller, Role::TenantUser, &tenant)?;
    known_tenant(&server, &tenant)?;
    let method = match world {
        World::Tool => "invoke",
        World::Agent => "run",
    };
    let (name, _) = split_call(segment, &[method])?;
    let admitted = admit(&server, &tenant)?;
    let body = parse_body(body, server.settings.body_limit_bytes)?;
    let (component, record, via) = resolve(&server, &caller, &tenant, name, world, &headers, &body).await?;
    let input = body.input.clone();
    let options = options(&caller, &headers, body);
    if !wants_async(&headers) {
        let answer_body = perform(&server, &component, world, &input, &options, transcript, &tenant).await?;
        return Ok(answer(answer_body, &record, via));
    }
    let kind = match world {
        World::Tool => "tool",
        World::Agent => "agent",
    };
    let id = server.runs.start(&tenant, &caller.subject, kind, record.label()).await?;
    let location = format!("/v1/tenants/{tenant}/runs/{id}");
    let task = {
        let (server, id, tenant) = (server.clone(), id.clone(), tenant.clone());
        async move {
            // The admission permit is held until the run ends.
            let _admitted = admitted;
            // A run that ends without an answer (its task panicked) still ends.
            struct Unfinished<'a>(&'a Server, &'a str, bool);
            impl Drop for Unfinished<'_> {
                fn drop(&mut self) {
                    if !self.2 {
                        let problem = Problem::internal("the run ended without an answer");
                        self.0.runs.finish(self.1, 500, problem.to_json());
                    }
                }
            }
            let mut guard = Unfinished(&server, &id, false);
            match perform(&server, &component, world, &input, &options, transcript, &tenant).await {
                Ok(body) => {
                    server.runs.complete(&id, 200, answer_body(body, &record, via)).await;
                }
                Err(problem) => {
                    let status = problem.status.as_u16();
                    server.runs.complete(&id, status, problem.to_json()).await;
                }
            }
            guard.2 = true;
        }
    };
    tokio::spawn(task);
    let mut response =
        (StatusCode::ACCEPTED, Json(json!({ "id": id, "status": "running", "location": location })))
            .into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(axum::http::header::LOCATION, value);
    }
    headers.insert("preference-applied", HeaderValue::from_static("respond-async"));
    Ok(response)
}

/// `POST /v1/tenants/{tenant}/tools/{name}:invoke`
#[utoipa::path(post, path = "/v1/tenants/{tenant}/tools/{name}:invoke", tag = "data plane",
    params(("tenant" = String, Path, description = "The tenant id"), ("name" = String, Path, description = "The tool's component name"),
        ("agenthost-session" = Option<String>, Header, description = "Keeps the caller on one version while a canary runs"),
        ("prefer" = Option<String>, Header, description = "`respond-async`: answer 202 with a run to poll")),
    request_body(content_type = "application/json", description = "{\"input\": ..., \"approval_request\"?: ID, \"approvals\"?: [TOKEN]}"),
    responses((status = 200, description = "The output, the version that served it and through which alias"),
        (status = 202, description = "Running; poll the Location"),
        (status = 409, description = "Waits for approval; Location names the request"),
        (status = 429, description = "Admission or quota limit; see Retry-After")))]
pub(super) async fn invoke(
    State(server): State<Arc<Server>>,
    Path((tenant, segment)): Path<(String, String)>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    call(server, tenant, &segment, World::Tool, caller, headers, body, false).await
}

/// `POST /v1/tenants/{tenant}/agents/{name}:run` (`?transcript=true` adds
/// the run's transcript)
#[utoipa::path(post, path = "/v1/tenants/{tenant}/agents/{name}:run", tag = "data plane",
    params(("tenant" = String, Path, description = "The tenant id"), ("name" = String, Path, description = "The agent's component name"),
        ("transcript" = Option<bool>, Query, description = "Include the run's transcript"),
        ("agenthost-session" = Option<String>, Header, description = "Keeps the caller on one version while a canary runs"),
        ("prefer" = Option<String>, Header, description = "`respond-async`: answer 202 with a run to poll")),
    request_body(content_type = "application/json", description = "{\"input\": ..., \"approval_request\"?: ID, \"approvals\"?: [TOKEN]}"),
    responses((status = 200, description = "The output, trace and (asked for) transcript"), (status = 202, description = "Running; poll the Location")))]
pub(super) async fn run(
    State(server): State<Arc<Server>>,
    Path((tenant, segment)): Path<(String, String)>,
    Query(query): Query<RunQuery>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    call(server, tenant, &segment, World::Agent, caller, headers, body, query.transcript).await
}

/// `GET /v1/tenants/{tenant}/runs/{id}`: the owner's view of an async run.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/runs/{id}", tag = "data plane",
    params(("tenant" = String, Path, description = "The tenant id"), ("id" = String, Path, description = "The run id from a 202")),
    responses((status = 200, description = "Status, then the result or the problem"), (status = 404, description = "No such run of the caller")))]
pub(super) async fn get_run(
    State(server): State<Arc<Server>>,
    Path((tenant, id)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, Problem> {
    authorize(&caller, Role::TenantUser, &tenant)?;
    known_tenant(&server, &tenant)?;
    server.runs.get(&tenant, &id, &caller.subject).await?.map(Json).ok_or_else(|| {
        Problem::not_found(format!(
            "`{}` has no run `{}` in tenant `{tenant}`",
            caller.subject,
            crate::text::clip(&id)
        ))
    })
}

/// A call from a transport that vouches for its caller itself (a Lambda
/// direct invoke or SQS message, a Step Functions task), where IAM decided
/// who may invoke: the HTTP data plane's checks, admission, routing and
/// answer, without a bearer token.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DirectCall {
    pub tenant: String,
    /// The tool to invoke, or…
    #[serde(default)]
    pub tool: Option<String>,
    /// …the agent to run.
    #[serde(default)]
    pub agent: Option<String>,
    pub input: Value,
    /// Who the call is for: policy, approvals and the audit trail see
    /// `lambda:<principal>` [default: `lambda:invoke`].
    #[serde(default)]
    pub principal: Option<String>,
    /// Re-submits the call of an approved request…
    #[serde(default)]
    pub approval_request: Option<String>,
    /// …with its approval tokens.
    #[serde(default)]
    pub approvals: Vec<ApprovalToken>,
    /// Keeps the caller on one version while a canary runs.
    #[serde(default)]
    pub session: Option<String>,
    /// An agent's transcript in the answer.
    #[serde(default)]
    pub transcript: bool,
    /// A paused workflow's callback (a Step Functions task token): the
    /// outcome goes to it, and a call that needs approval waits for it
    /// (see `tasks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_token: Option<String>,
}

/// The principal of a direct call that names none (after the prefix).
pub const DIRECT_PRINCIPAL: &str = "invoke";

impl Server {
    /// Runs a [`DirectCall`]; the answer is the body an HTTP 200 would carry.
    ///
    /// # Errors
    ///
    /// The problem an HTTP caller would get, status included.
    pub async fn call_direct(self: &Arc<Self>, call: DirectCall) -> Result<Value, Problem> {
        self.call_for_task(call, "lambda").await
    }

    /// [`Server::call_direct`], naming the transport that vouched for the
    /// caller (`lambda`, `sqs`) as the caller's issuer.
    ///
    /// # Errors
    ///
    /// As [`Server::call_direct`].
    pub async fn call_direct_via(
        self: &Arc<Self>,
        call: DirectCall,
        transport: &str,
    ) -> Result<Value, Problem> {
        let (world, name) = match (&call.tool, &call.agent) {
            (Some(tool), None) => (World::Tool, tool.clone()),
            (None, Some(agent)) => (World::Agent, agent.clone()),
            _ => return Err(Problem::bad_request("a direct call names one of `tool` or `agent`")),
        };
        let principal = call.principal.clone().unwrap_or_else(|| DIRECT_PRINCIPAL.to_owned());
        if principal.is_empty()
            || principal.len() > 128
            || principal.chars().any(char::is_control)
            || crate::vocab::is_reserved_principal(&principal)
        {
            return Err(Problem::bad_request(format!(
                "`principal` must be a printable name of at most 128 characters, not one the host keeps for itself: `{}`",
                crate::text::clip(&principal)
            )));
        }
        let caller = Caller {
            subject: format!("{}{principal}", crate::vocab::DIRECT_PRINCIPAL_PREFIX),
            issuer: transport.to_owned(),
            tenants: [call.tenant.clone()].into(),
            roles: [Role::TenantUser].into(),
        };
        known_tenant(self, &call.tenant)?;
        let _admitted = admit(self, &call.tenant)?;
        let mut headers = HeaderMap::new();
        if let Some(session) = call.session.as_deref().and_then(|s| HeaderValue::from_str(s).ok()) {
            headers.insert(SESSION_HEADER, session);
        }
        let body = CallBody {
            input: call.input,
            approval_request: call.approval_request,
            approvals: call.approvals,
        };
        let (component, record, via) =
            resolve(self, &caller, &call.tenant, &name, world, &headers, &body).await?;
        let input = body.input.clone();
        let options = options(&caller, &headers, body);
        let answer =
            perform(self, &component, world, &input, &options, call.transcript, &call.tenant).await?;
        Ok(answer_body(answer, &record, via))
    }
}
