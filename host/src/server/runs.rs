//! Runs started with `Prefer: respond-async`: their status, then their
//! output or structured error, kept for `GET .../runs/{id}`. Bounded in
//! count (`[server] runs_kept`) and in bytes (outputs and transcripts of
//! finished runs, oldest dropped first), so clients polling slowly cannot
//! grow the server without limit. Only the run's owner sees it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use tokio::sync::Notify;

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
}

impl Runs {
    pub fn new(kept: usize) -> Self {
        Runs {
            runs: Mutex::new(VecDeque::new()),
            kept: kept.max(1),
            active: AtomicUsize::new(0),
            idle: Notify::new(),
        }
    }

    /// Records a run that starts now; returns its id.
    pub fn start(&self, tenant: &str, owner: &str, kind: &'static str, component: String) -> String {
        let id = hex::encode(rand::random::<[u8; 16]>());
        let run = Run {
            id: id.clone(),
            tenant: tenant.to_owned(),
            owner: owner.to_owned(),
            kind,
            component,
            created_at: crate::governance::approvals::now_secs(),
            result: None,
        };
        self.active.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut runs) = self.runs.lock() {
            runs.push_back(run);
            self.trim(&mut runs);
        }
        id
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
    pub fn get(&self, tenant: &str, id: &str, caller: &str) -> Option<Value> {
        let runs = self.runs.lock().ok()?;
        let run = runs.iter().find(|r| r.id == id && r.tenant == tenant && r.owner == caller)?;
        let mut shown = json!({
            "id": run.id,
            "tenant": run.tenant,
            run.kind: run.component,
            "created_at": run.created_at,
        });
        match &run.result {
            None => shown["status"] = json!("running"),
            Some((status, body, _)) => {
                let ok = (200..300).contains(status);
                shown["status"] = json!(if ok { "succeeded" } else { "failed" });
                shown["http_status"] = json!(status);
                shown[if ok { "result" } else { "error" }] = body.clone();
            }
        }
        Some(shown)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owner_sees_a_run_and_old_finished_runs_go_first() {
        let runs = Runs::new(2);
        let a = runs.start("acme", "ursula", "tool", "calc@1".into());
        assert_eq!(runs.get("acme", &a, "ursula").unwrap()["status"], "running");
        assert!(runs.get("acme", &a, "uma").is_none());
        assert!(runs.get("globex", &a, "ursula").is_none());
        runs.finish(&a, 200, json!({ "output": 1 }));
        assert_eq!(runs.get("acme", &a, "ursula").unwrap()["result"]["output"], 1);
        let b = runs.start("acme", "ursula", "tool", "calc@1".into());
        let c = runs.start("acme", "ursula", "tool", "calc@1".into());
        assert!(runs.get("acme", &a, "ursula").is_none(), "the oldest finished run is dropped");
        assert!(runs.get("acme", &b, "ursula").is_some() && runs.get("acme", &c, "ursula").is_some());
    }
}
