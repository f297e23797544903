//! Health, readiness, metrics, and what wraps every request: its deadline
//! and its count in the HTTP metrics.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::json;

use super::problem::Problem;
use super::{Caller, Role, Server};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// The server's own metrics, exposed after the host's on `/metrics`.
pub(super) struct HttpMetrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    in_flight: Gauge<i64, AtomicI64>,
}

impl HttpMetrics {
    pub(super) fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
        });
        let in_flight = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "agenthost_http_requests",
            "HTTP requests answered, by route, method and status",
            requests.clone(),
        );
        registry.register(
            "agenthost_http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            latency.clone(),
        );
        registry.register(
            "agenthost_http_requests_in_flight",
            "HTTP requests being answered now",
            in_flight.clone(),
        );
        HttpMetrics { registry: Mutex::new(registry), requests, latency, in_flight }
    }

    fn encode(&self) -> String {
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        }
        out
    }
}

/// Every request: a deadline (`[server] request_timeout_ms`, then 504) and
/// its count and latency under its route pattern (never the raw path, so a
/// client cannot grow the label set).
pub(super) async fn around(State(server): State<Arc<Server>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // A fixed set: a client can send any token as a method.
    let method = match request.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "OPTIONS" | "PATCH") => m,
        _ => "other",
    }
    .to_owned();
    let started = Instant::now();
    // Counted down however the request ends (a client that goes away
    // drops this future mid-way).
    struct InFlight<'a>(&'a Gauge<i64, AtomicI64>);
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0.dec();
        }
    }
    server.http.in_flight.inc();
    let in_flight = InFlight(&server.http.in_flight);
    let deadline = Duration::from_millis(server.settings.request_timeout_ms);
    let response = match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("no answer within {} ms ([server] request_timeout_ms)", deadline.as_millis()),
        )
        .into_response(),
    };
    drop(in_flight);
    let response = as_problem(response).await;
    let status = response.status().as_u16().to_string();
    server.http.requests.get_or_create(&RequestLabels { route: route.clone(), method, status }).inc();
    server.http.latency.get_or_create(&RouteLabels { route }).observe(started.elapsed().as_secs_f64());
    response
}

/// An extractor's plain-text rejection (a bad query string, path or
/// header) as a problem, so every error a client sees has one shape.
async fn as_problem(response: Response) -> Response {
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let text = match axum::body::to_bytes(response.into_body(), 16 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    };
    let kind = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "body-too-large",
        s if s.is_server_error() => "internal",
        _ => "invalid-input",
    };
    Problem::new(status, kind, text).into_response()
}

/// `GET /healthz`: the process is up and answering.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, description = "The process is up")))]
pub(super) async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// `GET /readyz`: policy loaded, the registry and the memory and events
/// backends reachable, not draining.
/// Unauthenticated, so it answers booleans only, and asks the registry at
/// most once a second.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()), responses((status = 200, description = "Ready"), (status = 503, description = "Draining or a backend unreachable")))]
pub(super) async fn readyz(State(server): State<Arc<Server>>) -> Response {
    let draining = server.draining.load(Ordering::SeqCst);
    let tenants = server.governance.tenants().count();
    let backends = server.backends_reachable().await;
    let ready = !draining && backends && tenants > 0;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let checks = json!({ "draining": draining, "policy": tenants > 0, "backends": backends, "issuers": !server.verifier.is_empty() });
    (status, axum::Json(json!({ "ready": ready, "checks": checks }))).into_response()
}

/// `GET /metrics` (operator): the host's metrics, then the server's own.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus exposition (operators)")))]
pub(super) async fn metrics(State(server): State<Arc<Server>>, caller: Caller) -> Result<Response, Problem> {
    // The host's metrics name every tenant: an operator of all of them only.
    if !caller.may(Role::Operator, "*") {
        return Err(Problem::forbidden(format!(
            "`{}` is not an operator of every tenant (`*`)",
            caller.subject
        )));
    }
    let host = server.host.metrics_text().await;
    let mut text = host.strip_suffix("# EOF\n").unwrap_or(&host).to_owned();
    text.push_str(&server.http.encode());
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(response)
}

pub(super) async fn fallback() -> Problem {
    Problem::not_found("no such route; see /openapi.json")
}

pub(super) async fn method_not_allowed() -> Problem {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "this route does not take that method")
}
