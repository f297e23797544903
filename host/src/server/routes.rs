//! Every route of the API in one table, and `/openapi.json` generated from
//! the handlers' `#[utoipa::path]` annotations. The router is built from
//! the table alone, and a test checks each entry against the OpenAPI
//! document (and the document against the table), so a route cannot be
//! served undocumented or documented unserved.
//!
//! The router cannot match a literal after a parameter inside a segment
//! (`/tools/{name}:invoke`), so such routes capture the segment and split
//! it; the table maps each to the paths it documents.

use std::sync::Arc;

use axum::Json;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, get, post, put};
use serde_json::Value;
use utoipa::OpenApi;

use super::{Server, approvals, audit_route, control, data, ops};

/// One route: its method, the router's pattern, the paths it documents,
/// and its handler.
pub(super) struct Route {
    // Read by the test that holds the table and the document together.
    #[cfg_attr(not(test), allow(dead_code))]
    pub method: &'static str,
    pub pattern: &'static str,
    #[cfg_attr(not(test), allow(dead_code))]
    pub documents: &'static [&'static str],
    pub handler: MethodRouter<Arc<Server>>,
}

fn route(
    method: &'static str,
    pattern: &'static str,
    documents: &'static [&'static str],
    handler: MethodRouter<Arc<Server>>,
) -> Route {
    Route { method, pattern, documents, handler }
}

/// The routes; a deploy may carry `deploy_limit` bytes, every other body
/// the server's general limit.
pub(super) fn table(deploy_limit: usize) -> Vec<Route> {
    vec![
        route(
            "post",
            "/v1/tenants/{tenant}/tools/{call}",
            &["/v1/tenants/{tenant}/tools/{name}:invoke"],
            post(data::invoke),
        ),
        route(
            "post",
            "/v1/tenants/{tenant}/agents/{call}",
            &["/v1/tenants/{tenant}/agents/{name}:run"],
            post(data::run),
        ),
        route(
            "get",
            "/v1/tenants/{tenant}/runs/{id}",
            &["/v1/tenants/{tenant}/runs/{id}"],
            get(data::get_run),
        ),
        route(
            "get",
            "/v1/tenants/{tenant}/approvals",
            &["/v1/tenants/{tenant}/approvals"],
            get(approvals::list),
        ),
        route(
            "get",
            "/v1/tenants/{tenant}/approvals/{id}",
            &["/v1/tenants/{tenant}/approvals/{id}"],
            get(approvals::show),
        ),
        route(
            "post",
            "/v1/tenants/{tenant}/approvals/{id}",
            &["/v1/tenants/{tenant}/approvals/{id}:approve", "/v1/tenants/{tenant}/approvals/{id}:deny"],
            post(approvals::decide),
        ),
        route(
            "post",
            "/v1/tenants/{tenant}/components",
            &["/v1/tenants/{tenant}/components"],
            post(control::deploy).layer(DefaultBodyLimit::max(deploy_limit)),
        ),
        route(
            "get",
            "/v1/tenants/{tenant}/components",
            &["/v1/tenants/{tenant}/components"],
            get(control::components),
        ),
        route(
            "post",
            "/v1/tenants/{tenant}/components/{call}",
            &[
                "/v1/tenants/{tenant}/components/{name}:promote",
                "/v1/tenants/{tenant}/components/{name}:rollback",
            ],
            post(control::component_action),
        ),
        route(
            "get",
            "/v1/tenants/{tenant}/components/{name}/versions",
            &["/v1/tenants/{tenant}/components/{name}/versions"],
            get(control::versions),
        ),
        route(
            "put",
            "/v1/tenants/{tenant}/components/{name}/aliases/{alias}",
            &["/v1/tenants/{tenant}/components/{name}/aliases/{alias}"],
            put(control::set_alias),
        ),
        route("get", "/v1/tenants", &["/v1/tenants"], get(control::tenants)),
        route("get", "/v1/tenants/{tenant}", &["/v1/tenants/{tenant}"], get(control::tenant)),
        route("get", "/v1/tenants/{tenant}/audit", &["/v1/tenants/{tenant}/audit"], get(audit_route::audit)),
        route("get", "/healthz", &["/healthz"], get(ops::healthz)),
        route("get", "/readyz", &["/readyz"], get(ops::readyz)),
        route("get", "/metrics", &["/metrics"], get(ops::metrics)),
        route("get", "/openapi.json", &["/openapi.json"], get(openapi_json)),
    ]
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "agenthost",
        description = "Run governed AI agents and tools as WebAssembly components: invoke, run, deploy, route, approve, audit."
    ),
    paths(
        data::invoke,
        data::run,
        data::get_run,
        approvals::list,
        approvals::show,
        approvals::decide,
        approvals::deny_doc,
        control::deploy,
        control::components,
        control::component_action,
        control::rollback_doc,
        control::versions,
        control::set_alias,
        control::tenants,
        control::tenant,
        audit_route::audit,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        openapi_json,
    ),
    modifiers(&BearerAuth)
)]
pub(super) struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
        openapi.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    }
}

/// The OpenAPI document as JSON.
pub(super) fn document() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null)
}

/// The API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", security(()), responses((status = 200, description = "The OpenAPI document")))]
pub(super) async fn openapi_json() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_openapi_document_and_every_documented_path_is_routed() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        let table = table(1 << 20);
        for route in &table {
            for documented in route.documents {
                let entry = paths
                    .get(*documented)
                    .unwrap_or_else(|| panic!("{documented} is routed but not documented"));
                assert!(
                    entry.get(route.method).is_some(),
                    "{} {documented} is routed but the document has no `{}` operation",
                    route.method.to_uppercase(),
                    route.method
                );
            }
        }
        for (path, operations) in paths {
            for method in operations.as_object().expect("operations").keys() {
                assert!(
                    table.iter().any(|r| r.method == method && r.documents.contains(&path.as_str())),
                    "{} {path} is documented but not routed",
                    method.to_uppercase()
                );
            }
        }
    }
}
