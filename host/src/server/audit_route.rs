//! `GET /v1/tenants/{tenant}/audit` for auditors: the tenant's records of
//! a trace, a run, a kind or a time window, from this host's trail. The
//! tenant filter is the path's, never the caller's choice; answers are
//! capped (`limit`, at most 10 000 records).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::data::{authorize, known_tenant};
use super::problem::Problem;
use super::{Caller, Role, Server};
use crate::audit::query::{self, Filter};

/// The most records one answer holds.
pub const MAX_RECORDS: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    trace_id: Option<String>,
    run_id: Option<String>,
    kind: Option<String>,
    /// An RFC 3339 time, or how far back: 15m, 2h, 7d.
    since: Option<String>,
    /// At most this many records, the newest kept [default 1000].
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/audit", tag = "auditors",
    params(("tenant" = String, Path, description = "The tenant id"), ("trace_id" = Option<String>, Query, description = "W3C trace id"), ("run_id" = Option<String>, Query, description = "Run id"),
        ("kind" = Option<String>, Query, description = "decision, tool_call, approval, deploy, ..."),
        ("since" = Option<String>, Query, description = "RFC 3339, or 15m, 2h, 7d"), ("limit" = Option<usize>, Query, description = "At most this many (≤ 10 000)")),
    responses((status = 200, description = "Matching records of the tenant, in stream order")))]
pub(super) async fn audit(
    State(server): State<Arc<Server>>,
    Path(tenant): Path<String>,
    Query(q): Query<AuditQuery>,
    caller: Caller,
) -> Result<Json<Value>, Problem> {
    authorize(&caller, Role::Auditor, &tenant)?;
    known_tenant(&server, &tenant)?;
    let Some(root) = server.audit.as_ref().map(|log| log.root().to_path_buf()) else {
        return Err(Problem::not_found("this host keeps no audit trail ([audit] enabled = false)"));
    };
    let since = q
        .since
        .as_deref()
        .map(query::parse_since)
        .transpose()
        .map_err(|e| Problem::bad_request(format!("since: {e}")))?;
    let limit = q.limit.unwrap_or(1000).min(MAX_RECORDS);
    // Each query reads the trail from disk: a few at a time, one per
    // tenant, so one tenant's auditor cannot hold every turn. A turn goes
    // with the reading, which stops between segments once the client left.
    let busy = || {
        Problem::overloaded("another audit query is running; retry shortly", server.settings.retry_after_secs)
    };
    let turn = server.audit_queries.clone().try_acquire_owned().map_err(|_| busy())?;
    let tenant_turn = TenantTurn::take(&server.audit_tenants, &tenant).ok_or_else(busy)?;
    let stop = Arc::new(AtomicBool::new(false));
    let _left = StopOnDrop(stop.clone());
    let filter =
        Filter { trace_id: q.trace_id, run_id: q.run_id, tenant: Some(tenant.clone()), kind: q.kind, since };
    // Reading segments is disk work: off the async workers.
    let (found, truncated) = tokio::task::spawn_blocking(move || {
        let _turns = (turn, tenant_turn);
        query::query_dir(&root, &filter, limit, &stop)
    })
    .await
    .map_err(|e| Problem::internal(format!("the audit query failed: {e}")))?
    .map_err(|e| Problem::internal(format!("cannot read the audit trail: {e}")))?;
    let records: Vec<Value> = found
        .into_iter()
        .map(|f| json!({ "stream": f.stream, "seq": f.seq, "hash": f.hash, "record": f.record }))
        .collect();
    Ok(Json(json!({ "tenant": tenant, "records": records, "truncated": truncated })))
}

/// Tells a scan to stop when the request that asked for it goes away.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A tenant's one audit query under way; given back when dropped.
pub(super) struct TenantTurn {
    busy: Arc<Mutex<HashSet<String>>>,
    tenant: String,
}

impl TenantTurn {
    fn take(busy: &Arc<Mutex<HashSet<String>>>, tenant: &str) -> Option<TenantTurn> {
        let mut set = busy.lock().ok()?;
        set.insert(tenant.to_owned()).then(|| TenantTurn { busy: busy.clone(), tenant: tenant.to_owned() })
    }
}

impl Drop for TenantTurn {
    fn drop(&mut self) {
        if let Ok(mut set) = self.busy.lock() {
            set.remove(&self.tenant);
        }
    }
}
