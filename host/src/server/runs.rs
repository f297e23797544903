//! Runs started with `Prefer: respond-async`: their status, then their
//! output or structured error, kept for `GET .../runs/{id}`. Bounded in
//! count (`[server] runs_kept`) and in bytes (outputs and transcripts of
//! finished runs, oldest dropped first), so clients polling slowly cannot
//! grow the server without limit. Only the run's owner sees it.
//!
//! With a shared memory backend (`[memory] backend = "dynamodb"`) each run
//! is also written there, in its tenant's scope, before the 202 answers
//! and again when it ends, so a poll that reaches another replica (or
//! another Lambda execution environment) finds it. A run whose replica
//! stopped before it ended reads as failed once no answer can come any
//! more (its deadline and a margin past its start). Shared runs are kept
//! [`SHARED_TTL_SECS`]; a large answer is stored in parts.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::problem::Problem;
use crate::brokers::memory::{MemoryStore, Put, Scope};
use crate::governance::approvals::now_secs;
use crate::governance::packs::Classification;

/// The namespace (in the run's tenant scope) shared runs are kept under;
/// no guest can name it.
pub const RUNS_NAMESPACE: &str = "agenthost:runs";
/// How long another replica can still read a run.
pub const SHARED_TTL_SECS: u64 = 24 * 60 * 60;
/// The bytes of one stored part of a large answer.
const PART_BYTES: usize = 192 * 1024;
/// The most parts one answer is stored in (a larger one is not shared).
const MAX_PARTS: usize = 64;

/// The bytes of finished runs' results kept at most.
pub const MAX_RESULT_BYTES: usize = 64 << 20;

#[derive(Debug, Clone)]
struct Run {
    id: String,
    tenant: String,
    owner: String,
    /// `tool` or `agent`, and `name@version`.
    kind: &'static str,
    component: String,
    created_at: u64,
    /// `None` while running; then the answer (output or problem) and its size.
    result: Option<(u16, Value, usize)>,
}

/// The async runs of a server.
pub struct Runs {
    runs: Mutex<VecDeque<Run>>,
    kept: usize,
    /// Async calls still running (a drain waits for them).
    active: AtomicUsize,
    idle: Notify,
    shared: Option<Shared>,
}

/// Where other replicas read runs, and when a run still running there can
/// no longer end.
struct Shared {
    store: Arc<dyn MemoryStore>,
    /// Seconds after its start by which a run has ended or never will.
    lost_after: u64,
}

/// A run as stored for other replicas.
#[derive(Debug, Serialize, Deserialize)]
struct SharedRun {
    id: String,
    tenant: String,
    owner: String,
    kind: String,
    component: String,
    created_at: u64,
    lost_after: u64,
    /// The answer: HTTP status and body (inline, or in `parts`).
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    parts: usize,
}

impl Runs {
    pub fn new(kept: usize) -> Self {
        Runs {
            runs: Mutex::new(VecDeque::new()),
            kept: kept.max(1),
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            shared: None,
        }
    }

    /// Runs that other replicas on `store` see too; a run still running
    /// `lost_after` seconds after its start has lost its replica.
    pub fn shared(kept: usize, store: Arc<dyn MemoryStore>, lost_after: u64) -> Self {
        Runs { shared: Some(Shared { store, lost_after }), ..Runs::new(kept) }
    }

    /// Records a run that starts now (where other replicas see it too,
    /// before anyone is told its id); returns its id.
    ///
    /// # Errors
    ///
    /// 503 when the shared store does not take it (the run does not start).
    pub async fn start(
        &self,
        tenant: &str,
        owner: &str,
        kind: &'static str,
        component: String,
    ) -> Result<String, Problem> {
        let id = hex::encode(rand::random::<[u8; 16]>());
        let run = Run {
            id: id.clone(),
            tenant: tenant.to_owned(),
            owner: owner.to_owned(),
            kind,
            component,
            created_at: now_secs(),
            result: None,
        };
        if let Some(shared) = &self.shared {
            shared.write(&shared.record(&run, None)).await.map_err(|e| {
                Problem::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!(
                        "the run was not started: it cannot be recorded where other replicas see it ({e})"
                    ),
                )
            })?;
        }
        self.active.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut runs) = self.runs.lock() {
            runs.push_back(run);
            self.trim(&mut runs);
        }
        Ok(id)
    }

    /// Stores a run's answer where other replicas see it (best effort: a
    /// failure is logged, and they see the run as lost in time), then
    /// here ([`Runs::finish`]).
    pub async fn complete(&self, id: &str, status: u16, body: Value) {
        if let Some(shared) = &self.shared {
            let head =
                self.runs.lock().ok().and_then(|runs| {
                    runs.iter().find(|r| r.id == id).map(|r| shared.record(r, Some(status)))
                });
            if let Some(mut head) = head
                && let Err(e) = shared.write_answer(&mut head, &body).await
            {
                tracing::warn!(target: "agenthost::server", run = id, error = %e, "an async run's answer is not shared with other replicas");
            }
        }
        self.finish(id, status, body);
    }

    /// Stores a run's answer: its HTTP status and body.
    pub fn finish(&self, id: &str, status: u16, body: Value) {
        let size = serde_json::to_string(&body).map_or(0, |s| s.len());
        if let Ok(mut runs) = self.runs.lock() {
            if let Some(run) = runs.iter_mut().find(|r| r.id == id) {
                run.result = Some((status, body, size));
            }
            self.trim(&mut runs);
        }
        if self.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Drops the oldest finished runs beyond the count or byte bound.
    fn trim(&self, runs: &mut VecDeque<Run>) {
        let mut bytes: usize = runs.iter().filter_map(|r| r.result.as_ref().map(|x| x.2)).sum();
        while runs.len() > self.kept || bytes > MAX_RESULT_BYTES {
            let Some(oldest) = runs.iter().position(|r| r.result.is_some()) else {
                break;
            };
            if let Some(run) = runs.remove(oldest) {
                bytes -= run.result.map_or(0, |x| x.2);
            }
        }
    }

    /// A run as its owner sees it; `None` for anyone else (as if absent).
    /// A run this replica does not hold is looked up where others share it.
    ///
    /// # Errors
    ///
    /// 503 when the shared store cannot be read.
    pub async fn get(&self, tenant: &str, id: &str, caller: &str) -> Result<Option<Value>, Problem> {
        let local = self.runs.lock().ok().and_then(|runs| {
            let run = runs.iter().find(|r| r.id == id && r.tenant == tenant && r.owner == caller)?;
            let result = run.result.as_ref().map(|(status, body, _)| (*status, body.clone()));
            Some(shown(&run.id, &run.tenant, run.kind, &run.component, run.created_at, result))
        });
        if local.is_some() {
            return Ok(local);
        }
        let Some(shared) = &self.shared else { return Ok(None) };
        // Ids are 32 hex digits: nothing else is looked up.
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let read = shared.read(tenant, id).await.map_err(|e| {
            Problem::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("the run cannot be read from where replicas share runs: {e}"),
            )
        })?;
        let Some((run, body)) = read else { return Ok(None) };
        if run.owner != caller || run.tenant != tenant || run.id != id {
            return Ok(None);
        }
        let result = match (run.status, body) {
            (Some(status), Some(body)) => Some((status, body)),
            _ if now_secs() > run.lost_after => Some((
                500,
                Problem::internal(format!(
                    "the replica running it stopped before it ended (no answer by {})",
                    run.lost_after
                ))
                .to_json(),
            )),
            _ => None,
        };
        Ok(Some(shown(&run.id, &run.tenant, &run.kind, &run.component, run.created_at, result)))
    }

    /// Waits until no async run is running.
    pub async fn drained(&self) {
        loop {
            let notified = self.idle.notified();
            if self.active.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// A run as its owner is shown it.
fn shown(
    id: &str,
    tenant: &str,
    kind: &str,
    component: &str,
    created_at: u64,
    result: Option<(u16, Value)>,
) -> Value {
    let mut shown = json!({ "id": id, "tenant": tenant, kind: component, "created_at": created_at });
    match result {
        None => shown["status"] = json!("running"),
        Some((status, body)) => {
            let ok = (200..300).contains(&status);
            shown["status"] = json!(if ok { "succeeded" } else { "failed" });
            shown["http_status"] = json!(status);
            shown[if ok { "result" } else { "error" }] = body;
        }
    }
    shown
}

impl Shared {
    /// `run` as other replicas read it (its answer, if any, added apart).
    fn record(&self, run: &Run, status: Option<u16>) -> SharedRun {
        SharedRun {
            id: run.id.clone(),
            tenant: run.tenant.clone(),
            owner: run.owner.clone(),
            kind: run.kind.to_owned(),
            component: run.component.clone(),
            created_at: run.created_at,
            lost_after: run.created_at.saturating_add(self.lost_after),
            status,
            body: None,
            parts: 0,
        }
    }

    fn put(value: Vec<u8>) -> Put {
        Put::host(value, None, SHARED_TTL_SECS, Classification::Confidential)
    }

    async fn write(&self, run: &SharedRun) -> Result<(), String> {
        let bytes = serde_json::to_vec(run).map_err(|e| e.to_string())?;
        let scope = Scope { tenant: &run.tenant, namespace: RUNS_NAMESPACE };
        self.store
            .put(scope, &format!("run/{}", run.id), Self::put(bytes))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Stores the answer: inline when the record holds it, else its parts
    /// first and the head that counts them last (a reader never finds a
    /// head whose parts are not there yet).
    async fn write_answer(&self, head: &mut SharedRun, body: &Value) -> Result<(), String> {
        let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        if bytes.len() <= PART_BYTES {
            head.body = Some(body.clone());
            return self.write(head).await;
        }
        let parts: Vec<&[u8]> = bytes.chunks(PART_BYTES).collect();
        if parts.len() > MAX_PARTS {
            head.status = Some(500);
            head.body = Some(
                Problem::internal(format!(
                    "the answer is {} bytes, more than a run shared between replicas keeps ({}); it is held by the replica that ran it only",
                    bytes.len(),
                    PART_BYTES * MAX_PARTS
                ))
                .to_json(),
            );
            return self.write(head).await;
        }
        let scope = Scope { tenant: &head.tenant, namespace: RUNS_NAMESPACE };
        for (n, part) in parts.iter().enumerate() {
            let key = format!("run/{}/part/{n}", head.id);
            self.store.put(scope, &key, Self::put(part.to_vec())).await.map_err(|e| e.to_string())?;
        }
        head.parts = parts.len();
        self.write(head).await
    }

    /// The run and its answer, if stored.
    async fn read(&self, tenant: &str, id: &str) -> Result<Option<(SharedRun, Option<Value>)>, String> {
        let scope = Scope { tenant, namespace: RUNS_NAMESPACE };
        let Some(record) = self.store.get(scope, &format!("run/{id}")).await.map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let mut run: SharedRun = serde_json::from_slice(&record.value)
            .map_err(|e| format!("run `{id}` is stored corrupt: {e}"))?;
        if run.parts == 0 || run.parts > MAX_PARTS {
            let body = run.body.take();
            return Ok(Some((run, body)));
        }
        let mut bytes = Vec::new();
        for n in 0..run.parts {
            let key = format!("run/{id}/part/{n}");
            let part = self.store.get(scope, &key).await.map_err(|e| e.to_string())?;
            let part = part.ok_or_else(|| format!("part {n} of run `{id}`'s answer is missing"))?;
            bytes.extend_from_slice(&part.value);
        }
        let body = serde_json::from_slice(&bytes)
            .map_err(|e| format!("run `{id}`'s answer is stored corrupt: {e}"))?;
        Ok(Some((run, Some(body))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brokers::memory::InProcessMemory;

    #[tokio::test]
    async fn only_the_owner_sees_a_run_and_old_finished_runs_go_first() {
        let runs = Runs::new(2);
        let a = runs.start("acme", "ursula", "tool", "calc@1".into()).await.unwrap();
        assert_eq!(runs.get("acme", &a, "ursula").await.unwrap().unwrap()["status"], "running");
        assert!(runs.get("acme", &a, "uma").await.unwrap().is_none());
        assert!(runs.get("globex", &a, "ursula").await.unwrap().is_none());
        runs.finish(&a, 200, json!({ "output": 1 }));
        assert_eq!(runs.get("acme", &a, "ursula").await.unwrap().unwrap()["result"]["output"], 1);
        let b = runs.start("acme", "ursula", "tool", "calc@1".into()).await.unwrap();
        let c = runs.start("acme", "ursula", "tool", "calc@1".into()).await.unwrap();
        assert!(
            runs.get("acme", &a, "ursula").await.unwrap().is_none(),
            "the oldest finished run is dropped"
        );
        assert!(runs.get("acme", &b, "ursula").await.unwrap().is_some());
        assert!(runs.get("acme", &c, "ursula").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn another_replica_sees_a_run_its_answer_in_parts_and_a_run_whose_replica_stopped() {
        let store: Arc<dyn MemoryStore> = Arc::new(InProcessMemory::default());
        let (one, other) = (Runs::shared(10, store.clone(), 600), Runs::shared(10, store.clone(), 600));
        let id = one.start("acme", "ursula", "agent", "triage@1".into()).await.unwrap();
        let seen = other.get("acme", &id, "ursula").await.unwrap().unwrap();
        assert_eq!((seen["status"].as_str(), seen["agent"].as_str()), (Some("running"), Some("triage@1")));
        // An answer larger than one stored record: it comes back whole.
        let big = json!({ "output": "x".repeat(3 * PART_BYTES) });
        one.complete(&id, 200, big.clone()).await;
        let seen = other.get("acme", &id, "ursula").await.unwrap().unwrap();
        assert_eq!(seen["status"], "succeeded");
        assert_eq!(seen["result"], big);
        assert_eq!(
            seen,
            one.get("acme", &id, "ursula").await.unwrap().unwrap(),
            "both replicas show it alike"
        );
        // Nobody else's, nor under another tenant.
        assert!(other.get("acme", &id, "uma").await.unwrap().is_none());
        assert!(other.get("globex", &id, "ursula").await.unwrap().is_none());

        // A run whose replica stopped: failed once it cannot end any more.
        let gone = Runs::shared(10, store.clone(), 0);
        let id = gone.start("acme", "ursula", "tool", "calc@1".into()).await.unwrap();
        drop(gone);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let seen = other.get("acme", &id, "ursula").await.unwrap().unwrap();
        assert_eq!(seen["status"], "failed", "{seen}");
        assert!(seen["error"]["detail"].as_str().unwrap().contains("stopped before it ended"), "{seen}");
    }
}
