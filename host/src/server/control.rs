//! The control plane: deploy signed versions, list them, move aliases,
//! promote and roll back (role `deployer`); list tenants (role `operator`).
//! Every change is an audit record with the deployer's subject, written
//! before the change is answered; a change the trail cannot record is not
//! made.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::data::{authorize, body_problem, known_tenant, split_call};
use super::problem::Problem;
use super::{Caller, Role, Server};
use crate::registry::{Alias, Deploy, PublisherSignature, VersionRecord};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    /// The component bytes, base64.
    wasm: String,
    /// The component manifest (TOML text).
    manifest: String,
    /// The publisher's signature (from `agenthost sign`).
    signature: PublisherSignature,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasBody {
    version: String,
    /// Percent of calls, for `canary`.
    #[serde(default)]
    weight: Option<u8>,
}

fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
    shape: &str,
) -> Result<T, Problem> {
    let bytes = body.map_err(|r| body_problem(&r, limit))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Problem::bad_request(format!("the body must be JSON {shape}: {e}")))
}

fn version_json(record: &VersionRecord) -> Value {
    json!({
        "name": record.name,
        "version": record.version,
        "digest": record.digest,
        "publisher": record.publisher,
        "deployed_by": record.deployed_by,
        "deployed_at": record.deployed_at,
    })
}

/// `POST /v1/tenants/{tenant}/components`: stores a signed version and
/// starts loading it in the background; aliases do not move.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/components", tag = "control plane",
    params(("tenant" = String, Path, description = "The tenant id")),
    request_body(content_type = "application/json", description = "{\"wasm\": BASE64, \"manifest\": TOML, \"signature\": {\"key_id\", \"value\"}}"),
    responses((status = 201, description = "Stored; loading in the background"), (status = 403, description = "Signature or digest refused"), (status = 409, description = "That version exists with other bytes")))]
pub(super) async fn deploy(
    State(server): State<Arc<Server>>,
    Path(tenant): Path<String>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    authorize(&caller, Role::Deployer, &tenant)?;
    known_tenant(&server, &tenant)?;
    let body: DeployBody = json_body(
        body,
        server.settings.deploy_limit_bytes,
        "{\"wasm\": BASE64, \"manifest\": TOML, \"signature\": {\"key_id\", \"value\"}}",
    )?;
    let wasm = base64::engine::general_purpose::STANDARD
        .decode(body.wasm.as_bytes())
        .map_err(|e| Problem::bad_request(format!("`wasm` is not base64: {e}")))?;
    // The attempt is evidence before anything is stored: a deploy the
    // trail cannot record is not made.
    let digest = format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wasm)));
    server
        .record_intent(
            &caller,
            &tenant,
            json!({ "action": "deploy", "digest": digest, "signed_by": crate::text::clip(&body.signature.key_id) }),
        )
        .await?;
    // Stored and recorded to the end even if the client goes away.
    let task = {
        let (server, caller, tenant) = (server.clone(), caller.clone(), tenant.clone());
        tokio::spawn(async move {
            let deploy = Deploy {
                tenant: &tenant,
                wasm: &wasm,
                manifest: &body.manifest,
                signature: body.signature,
                deployer: &caller.subject,
            };
            match server.registry().publish(deploy).await {
                Ok(verified) => {
                    let r = &verified.record;
                    let what = json!({ "action": "deploy", "component": r.label(), "digest": r.digest, "publisher": r.publisher });
                    server
                        .record(&caller, &tenant, "deployed", what)
                        .await
                        .map_err(|e| unrecorded(&format!("version {} was stored", r.label()), &e))?;
                    Ok(verified.record)
                }
                Err(e) => {
                    // A refused deploy is evidence too: who tried to push what.
                    let what = json!({ "action": "deploy", "why": e.to_string() });
                    if let Err(a) = server.record(&caller, &tenant, "refused", what).await {
                        tracing::error!(target: "agenthost::audit", error = %a, "a refused deploy could not be recorded");
                    }
                    Err(Problem::from(e))
                }
            }
        })
    };
    let record = task.await.map_err(|e| Problem::internal(format!("the deploy task failed: {e}")))??;
    // Compiled off the request path; the first call or alias change that
    // needs it waits for this same load (single flight).
    let warm = server.warm.clone();
    let (t, n, v) = (record.tenant.clone(), record.name.clone(), record.version.clone());
    tokio::spawn(async move {
        if let Err(e) = warm.get(&t, &n, &v).await {
            tracing::warn!(target: "agenthost::server", tenant = %t, component = %n, version = %v, error = %e, "a deployed version does not load");
        }
    });
    Ok((StatusCode::CREATED, Json(version_json(&record))).into_response())
}

/// `GET /v1/tenants/{tenant}/components`: names with their aliases.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/components", tag = "control plane",
    params(("tenant" = String, Path, description = "The tenant id")), responses((status = 200, description = "Component names with their aliases")))]
pub(super) async fn components(
    State(server): State<Arc<Server>>,
    Path(tenant): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, Problem> {
    if !caller.may(Role::Operator, &tenant) {
        authorize(&caller, Role::Deployer, &tenant)?;
    }
    known_tenant(&server, &tenant)?;
    let mut listed = Vec::new();
    for name in server.registry().store().list_components(&tenant).await? {
        let aliases = server.registry().aliases(&tenant, &name).await?;
        listed.push(json!({ "name": name, "aliases": aliases }));
    }
    Ok(Json(json!({ "tenant": tenant, "components": listed })))
}

/// `GET /v1/tenants/{tenant}/components/{name}/versions`
#[utoipa::path(get, path = "/v1/tenants/{tenant}/components/{name}/versions", tag = "control plane",
    params(("tenant" = String, Path, description = "The tenant id"), ("name" = String, Path, description = "The component name")),
    responses((status = 200, description = "Versions, oldest first, with aliases and which are loaded")))]
pub(super) async fn versions(
    State(server): State<Arc<Server>>,
    Path((tenant, name)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, Problem> {
    if !caller.may(Role::Operator, &tenant) {
        authorize(&caller, Role::Deployer, &tenant)?;
    }
    known_tenant(&server, &tenant)?;
    crate::registry::check_name("component name", &name)?;
    let versions = server.registry().store().list_versions(&tenant, &name).await?;
    if versions.is_empty() {
        return Err(Problem::not_found(format!("tenant `{tenant}` has no component `{name}`")));
    }
    let aliases = server.registry().aliases(&tenant, &name).await?;
    let listed: Vec<Value> = versions
        .iter()
        .map(|r| {
            let mut v = version_json(r);
            v["warm"] = json!(server.warm.is_warm(&tenant, &name, &r.version));
            v
        })
        .collect();
    Ok(Json(json!({ "tenant": tenant, "name": name, "aliases": aliases, "versions": listed })))
}

/// The answer when a change was made but its outcome record was not: the
/// client must not believe the change failed.
fn unrecorded(made: &str, e: &crate::audit::AuditError) -> Problem {
    tracing::error!(target: "agenthost::audit", error = %e, "{made}, but the audit trail could not record it");
    Problem::internal(format!("{made}, but the audit trail could not record it: {e}"))
}

/// Applies an alias change, records it, and loads what it now points at.
async fn change_aliases(
    server: &Arc<Server>,
    caller: &Caller,
    tenant: &str,
    name: &str,
    action: &str,
    change: impl Fn(&mut crate::registry::Aliases) -> Result<(), crate::registry::RegistryError>
    + Send
    + Sync
    + 'static,
) -> Result<Json<Value>, Problem> {
    // The targets load before the aliases move, so the switch is instant
    // and a version that cannot load never takes traffic.
    let mut preview = server.registry().aliases(tenant, name).await?;
    change(&mut preview)?;
    for version in preview.versions() {
        server.warm.get(tenant, name, version).await.map_err(super::data::load_problem)?;
    }
    // The intent is evidence before the change: a change the trail cannot
    // record is not made.
    server.record_intent(caller, tenant, json!({ "action": action, "component": name })).await?;
    // The change, its record and the routing update run to the end even if
    // the client goes away.
    let task = {
        let (server, caller) = (server.clone(), caller.clone());
        let (tenant, name, action) = (tenant.to_owned(), name.to_owned(), action.to_owned());
        tokio::spawn(async move {
            let aliases = match server.registry().update_aliases(&tenant, &name, &change).await {
                Ok(aliases) => aliases,
                Err(e) => {
                    // The intent gets its outcome: nothing changed.
                    let what = json!({ "action": action, "component": name, "why": e.to_string() });
                    if let Err(a) = server.record(&caller, &tenant, "failed", what).await {
                        tracing::error!(target: "agenthost::audit", error = %a, "a failed alias change could not be recorded");
                    }
                    return Err(Problem::from(e));
                }
            };
            server.remember_aliases(&tenant, &name, Arc::new(aliases.clone()));
            let what = json!({ "action": action, "component": name, "stable": aliases.stable, "canary": aliases.canary });
            let recorded = server.record(&caller, &tenant, "changed", what).await;
            // The change is made: routing follows it whatever the trail says.
            let refreshed = server.refresh(&tenant, &name).await;
            recorded.map_err(|e| unrecorded(&format!("the aliases of `{name}` changed"), &e))?;
            let mut answer = json!({ "tenant": tenant, "name": name, "aliases": aliases });
            if let Err(e) = refreshed {
                // Not an error to retry: the aliases moved, and calls load
                // what they route to.
                answer["warning"] =
                    json!(format!("the aliases changed, but reloading them here failed: {}", e.detail));
            }
            Ok::<_, Problem>(answer)
        })
    };
    let answer = task.await.map_err(|e| Problem::internal(format!("the alias change failed: {e}")))??;
    Ok(Json(answer))
}

/// `PUT /v1/tenants/{tenant}/components/{name}/aliases/{alias}`
#[utoipa::path(put, path = "/v1/tenants/{tenant}/components/{name}/aliases/{alias}", tag = "control plane",
    params(("tenant" = String, Path, description = "The tenant id"), ("name" = String, Path, description = "The component name"), ("alias" = String, Path, description = "`stable` or `canary`")),
    request_body(content_type = "application/json", description = "{\"version\": V, \"weight\"?: PERCENT}"),
    responses((status = 200, description = "The aliases, once the version they name is loaded")))]
pub(super) async fn set_alias(
    State(server): State<Arc<Server>>,
    Path((tenant, name, alias)): Path<(String, String, String)>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, Problem> {
    authorize(&caller, Role::Deployer, &tenant)?;
    known_tenant(&server, &tenant)?;
    let alias = Alias::parse(&alias)?;
    let body: AliasBody =
        json_body(body, server.settings.body_limit_bytes, "{\"version\": V, \"weight\"?: PERCENT}")?;
    crate::registry::check_name("version", &body.version)?;
    let action = format!("alias-{}", alias.as_str());
    change_aliases(&server, &caller, &tenant, &name, &action, move |a| {
        a.set(alias, &body.version, body.weight)
    })
    .await
}

/// `POST /v1/tenants/{tenant}/components/{name}:promote` and `:rollback`
#[utoipa::path(post, path = "/v1/tenants/{tenant}/components/{name}:promote", tag = "control plane",
    params(("tenant" = String, Path, description = "The tenant id"), ("name" = String, Path, description = "The component name")),
    responses((status = 200, description = "The canary is stable"), (status = 409, description = "No canary")))]
pub(super) async fn component_action(
    State(server): State<Arc<Server>>,
    Path((tenant, call)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, Problem> {
    authorize(&caller, Role::Deployer, &tenant)?;
    known_tenant(&server, &tenant)?;
    let (name, method) = split_call(&call, &["promote", "rollback"])?;
    match method {
        "promote" => {
            change_aliases(&server, &caller, &tenant, name, "promote", |a| a.promote().map(|_| ())).await
        }
        _ => change_aliases(&server, &caller, &tenant, name, "rollback", |a| a.rollback().map(|_| ())).await,
    }
}

fn tenant_json(tenant: &crate::governance::Tenant) -> Value {
    let c = &tenant.config;
    json!({
        "id": c.id,
        "description": c.description,
        "isolation": c.isolation.as_str(),
        "quotas": c.quotas,
        "interfaces": c.grants.interfaces,
        "approvers": c.approvers.keys().collect::<Vec<_>>(),
        "principals": c.principals.keys().collect::<Vec<_>>(),
        "publishers": c.publishers.keys().collect::<Vec<_>>(),
        "policy_digest": c.policy_digest,
    })
}

/// `GET /v1/tenants` (operator): the tenants the caller may see.
#[utoipa::path(get, path = "/v1/tenants", tag = "operators",
    responses((status = 200, description = "The tenants the operator may see: metadata, never payloads")))]
pub(super) async fn tenants(
    State(server): State<Arc<Server>>,
    caller: Caller,
) -> Result<Json<Value>, Problem> {
    if !caller.has(Role::Operator) {
        return Err(Problem::forbidden(format!("`{}` is not an operator", caller.subject)));
    }
    let listed: Vec<Value> = server
        .governance
        .tenants()
        .filter(|t| caller.may(Role::Operator, t.id()))
        .map(|t| tenant_json(t))
        .collect();
    Ok(Json(json!({ "tenants": listed })))
}

/// `GET /v1/tenants/{tenant}` (operator)
#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = "operators",
    params(("tenant" = String, Path, description = "The tenant id")), responses((status = 200, description = "The tenant's settings and components")))]
pub(super) async fn tenant(
    State(server): State<Arc<Server>>,
    Path(tenant): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, Problem> {
    authorize(&caller, Role::Operator, &tenant)?;
    let found = server.governance.tenant(&tenant).map_err(|_| {
        Problem::not_found(format!("tenant `{}` is not served here", crate::text::clip(&tenant)))
    })?;
    let mut body = tenant_json(found);
    body["components"] = json!(server.registry().store().list_components(&tenant).await?);
    Ok(Json(body))
}

/// Returns to the previous stable and drops the canary; routed with `:promote` above.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/components/{name}:rollback", tag = "control plane",
    params(("tenant" = String, Path, description = "The tenant id"), ("name" = String, Path, description = "The component name")),
    responses((status = 200, description = "The previous stable serves"), (status = 409, description = "No earlier stable")))]
#[allow(dead_code)]
pub(super) async fn rollback_doc() {}
