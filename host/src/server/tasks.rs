//! Calls from a paused workflow: a direct call (Lambda invoke or queue
//! message) with a `task_token`, as a Step Functions `.waitForTaskToken`
//! task sends it. The workflow learns the outcome through the token, not
//! through the invoke's answer:
//!
//! - the call runs: `SendTaskSuccess` with the answer an HTTP 200 carries;
//! - it fails: `SendTaskFailure`, `error` = `agenthost.<kind>`, `cause` =
//!   the problem+json;
//! - it needs approval: the token is parked on the approval request (never
//!   shown to anyone) and the workflow stays paused. Once the request is
//!   approved, whichever process takes the parked token (once, across all
//!   of them) re-submits the call with the approval and answers the token;
//!   a denial or the request's expiry answers `SendTaskFailure`
//!   (`agenthost.denied`, `agenthost.approval-expired`).
//!
//! A decision through the HTTP API resumes at once; one made otherwise
//! (`agenthost approvals approve` on the store) and expiries are found by
//! a sweep of the parked requests ([`Server::settle_parked`], through an
//! index of them): `serve` runs one every [`SETTLE_EVERY_SECS`] on a task
//! of its own, `agenthost lambda` one per scheduled event (an EventBridge
//! schedule), within the invocation's deadline. The call is never run
//! twice for one token: an answer that Step Functions does not take is
//! logged, not retried by running the call again.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::Server;
use super::data::DirectCall;
use super::problem::Problem;
use crate::governance::approvals::{ApprovalRequest, Resume, Status, now_secs};

/// How often parked tokens of decided or expired requests are looked for.
pub const SETTLE_EVERY_SECS: u64 = 30;
/// Parked workflows settled at once by the sweep.
const SETTLING_AT_ONCE: usize = 4;
/// Time kept for loading a resumed call, taking its token and answering
/// the workflow, beside the host's call timeout.
const RESUME_MARGIN: std::time::Duration = std::time::Duration::from_secs(10);
/// Time kept for answering a denied or expired workflow.
const ANSWER_BUDGET: std::time::Duration = std::time::Duration::from_secs(3);
/// The longest task token taken (Step Functions' are at most 1024 bytes).
const MAX_TOKEN_BYTES: usize = 2048;

impl Server {
    /// Runs a direct call that carries a task token. Every outcome is the
    /// workflow's answer; what is returned says what became of the call
    /// (a failure included), so the transport never runs it again.
    ///
    /// # Errors
    ///
    /// Only a malformed token, or no approvals store to park it in (the
    /// workflow is answered with the failure too when it can be).
    pub(super) async fn call_for_task(
        self: &Arc<Self>,
        mut call: DirectCall,
        transport: &str,
    ) -> Result<Value, Problem> {
        let Some(token) = call.task_token.take() else {
            return self.call_direct_via(call, transport).await;
        };
        if self.callbacks.is_none() {
            return Err(Problem::bad_request(
                "this host answers no workflows (no Step Functions client): the call did not run",
            ));
        }
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES || token.chars().any(char::is_control) {
            return Err(Problem::bad_request(format!(
                "`task_token` must be 1 to {MAX_TOKEN_BYTES} printable bytes"
            )));
        }
        let parked = serde_json::to_value(&call).map_err(|e| Problem::internal(e.to_string()))?;
        match self.call_direct_via(call, transport).await {
            Ok(answer) => {
                self.answer_task(&token, Ok(&answer)).await;
                Ok(answer)
            }
            Err(problem) if problem.kind == "approval-required" => {
                let id = problem
                    .extra
                    .get("approval_request")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let resume =
                    Resume { task_token: token.clone(), call: parked, transport: transport.to_owned() };
                let attached = match self.governance.approvals() {
                    Some(store) => store.attach_resume(&id, resume).await.map_err(|e| e.to_string()),
                    None => Err("this host keeps no approvals".to_owned()),
                };
                let request = match attached {
                    Ok(request) => request,
                    Err(e) => {
                        let problem = Problem::internal(format!(
                            "the workflow cannot wait for approval request `{id}`: {e}"
                        ));
                        self.answer_task(&token, Err(&problem)).await;
                        // Answered: the transport must not run the call again.
                        return Ok(json!({ "status": "failed", "error": problem.to_json() }));
                    }
                };
                // Decided between its creation and the parking: settle now.
                if request.status != Status::Pending {
                    self.settle_detached(&id).await;
                }
                Ok(json!({
                    "status": "waiting-for-approval",
                    "approval_request": id,
                    "detail": problem.detail,
                }))
            }
            Err(problem) => {
                tracing::info!(target: "agenthost::tasks", kind = %problem.kind, detail = %problem.detail, "a workflow's call failed");
                self.answer_task(&token, Err(&problem)).await;
                Ok(json!({ "status": "failed", "error": problem.to_json() }))
            }
        }
    }

    /// Sends the workflow its answer; a failure to is logged (the task's
    /// own timeout ends the wait).
    async fn answer_task(&self, token: &str, outcome: Result<&Value, &Problem>) {
        let Some(callbacks) = &self.callbacks else {
            tracing::error!(target: "agenthost::tasks", "a task token came, and this host has no Step Functions client");
            return;
        };
        let sent = match outcome {
            Ok(answer) => callbacks.succeed(token, answer.to_string()).await,
            Err(problem) => {
                callbacks
                    .fail(token, &format!("agenthost.{}", problem.kind), problem.to_json().to_string())
                    .await
            }
        };
        if let Err(e) = sent {
            tracing::error!(target: "agenthost::tasks", error = %e, "a paused workflow was not answered");
        }
    }

    /// Answers the workflow parked on request `id` if it is decided or
    /// expired: resumes the call on approval, fails the task otherwise.
    /// Whoever takes the parked token first does it; others find nothing.
    /// Returns whether this process answered one.
    pub async fn settle_task(self: &Arc<Self>, id: &str) -> bool {
        self.settle_task_by(id, None).await == Settled::Answered
    }

    /// [`Server::settle_task`], leaving the workflow parked when it could
    /// not be answered by `until`: an approved call needs the host's call
    /// timeout (and a margin) to run, a denial or an expiry one answer.
    async fn settle_task_by(self: &Arc<Self>, id: &str, until: Option<std::time::Instant>) -> Settled {
        let Some(store) = self.governance.approvals() else { return Settled::NotDue };
        // (A request that does not read goes on to `take_resume`, which
        // unparks one that is gone.)
        if let Some(until) = until
            && let Ok(request) = store.get(id).await
        {
            if !request.is_settled(now_secs()) {
                return Settled::NotDue;
            }
            let needs = if request.status == Status::Approved { self.resume_budget() } else { ANSWER_BUDGET };
            if until.saturating_duration_since(std::time::Instant::now()) < needs {
                return Settled::Deferred;
            }
        }
        let (request, resume) = match store.take_resume(id).await {
            Ok(Some(taken)) => taken,
            Ok(None) => return Settled::NotDue,
            Err(e) => {
                tracing::warn!(target: "agenthost::tasks", request = id, error = %e, "cannot take a parked workflow");
                return Settled::NotDue;
            }
        };
        let outcome = self.resumed(&request, &resume).await;
        // Busy or briefly unavailable: the call did not run (nothing was
        // spent), so it waits for the next sweep rather than failing the
        // workflow for good.
        if let Err(problem) = &outcome
            && request.status == Status::Approved
            && matches!(problem.status.as_u16(), 429 | 503)
            && store.attach_resume(id, resume.clone()).await.is_ok()
        {
            tracing::info!(target: "agenthost::tasks", request = id, kind = %problem.kind, "a resumed call waits for the next sweep");
            return Settled::Answered;
        }
        self.answer_task(&resume.task_token, outcome.as_ref()).await;
        Settled::Answered
    }

    /// What resuming an approved call may take: the host's wall-clock
    /// limit, and a margin for loading it, taking the token and answering.
    fn resume_budget(&self) -> std::time::Duration {
        self.host.default_limits().timeout + RESUME_MARGIN
    }

    /// What a parked workflow's call comes to once its request is settled.
    async fn resumed(self: &Arc<Self>, request: &ApprovalRequest, resume: &Resume) -> Result<Value, Problem> {
        match request.status {
            Status::Approved => {
                let mut call: DirectCall = serde_json::from_value(resume.call.clone())
                    .map_err(|e| Problem::internal(format!("the parked call does not read back: {e}")))?;
                call.approval_request = Some(request.id.clone());
                call.task_token = None;
                self.call_direct_via(call, &resume.transport).await
            }
            Status::Denied => {
                let why: Vec<String> = request
                    .decisions
                    .iter()
                    .filter(|d| !d.approved)
                    .map(|d| {
                        if d.reason.is_empty() {
                            d.approver.clone()
                        } else {
                            format!("{} ({})", d.approver, d.reason)
                        }
                    })
                    .collect();
                Err(Problem::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "denied",
                    format!("approval request `{}` was denied by {}", request.id, why.join(", ")),
                ))
            }
            Status::Pending => Err(Problem::new(
                axum::http::StatusCode::FORBIDDEN,
                "approval-expired",
                format!(
                    "approval request `{}` expired at {} without the approvals it needed",
                    request.id, request.expires_at
                ),
            )),
        }
    }

    /// [`Server::settle_task`] on a task of its own: the caller may wait
    /// for it, but a caller that goes away (an approver's dropped
    /// connection, a request deadline) does not cut a resumed call short
    /// once its parked token was taken.
    pub async fn settle_detached(self: &Arc<Self>, id: &str) -> bool {
        let (server, id) = (self.clone(), id.to_owned());
        tokio::spawn(async move { server.settle_task(&id).await }).await.unwrap_or(false)
    }

    /// Settles every parked workflow whose request is decided or expired,
    /// at most once per [`SETTLE_EVERY_SECS`] (callers may ask more often).
    pub async fn settle_due_tasks(self: &Arc<Self>) {
        let now = now_secs();
        let last = self.tasks_settled.load(Ordering::Relaxed);
        if now.saturating_sub(last) < SETTLE_EVERY_SECS
            || self.tasks_settled.compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed).is_err()
        {
            return;
        }
        if let Err(e) = self.settle_parked(None).await {
            tracing::warn!(target: "agenthost::tasks", error = %e, "cannot look for parked workflows");
        }
    }

    /// One sweep of the parked workflows: each whose request is decided or
    /// expired is answered (a few at a time, each on a task of its own: a
    /// resumed call may take its whole deadline). With `until` (a Lambda
    /// invocation's deadline), no approved call is resumed with less than
    /// the host's call timeout + 10 s left, nor a denial or expiry
    /// answered with less than 3 s: those wait for the next sweep.
    ///
    /// # Errors
    ///
    /// When the parked workflows cannot be listed.
    pub async fn settle_parked(self: &Arc<Self>, until: Option<std::time::Instant>) -> Result<Sweep, String> {
        let Some(store) = self.governance.approvals() else { return Ok(Sweep::default()) };
        let parked = store.parked().await.map_err(|e| e.to_string())?;
        let mut sweep = Sweep { parked: parked.len(), ..Sweep::default() };
        let mut settling = tokio::task::JoinSet::new();
        fn count(sweep: &mut Sweep, done: Option<Result<Settled, tokio::task::JoinError>>) {
            match done {
                Some(Ok(Settled::Answered)) => sweep.answered += 1,
                Some(Ok(Settled::Deferred)) => sweep.deferred += 1,
                _ => {}
            }
        }
        for id in parked {
            while settling.len() >= SETTLING_AT_ONCE {
                let done = settling.join_next().await;
                count(&mut sweep, done);
            }
            let server = self.clone();
            settling.spawn(async move { server.settle_task_by(&id, until).await });
        }
        while let Some(done) = settling.join_next().await {
            count(&mut sweep, Some(done));
        }
        Ok(sweep)
    }
}

/// What became of one parked workflow in a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    /// Answered (or, approved and met with 429/503, parked again for the next sweep).
    Answered,
    /// Due, but left for the next sweep: not enough time was left.
    Deferred,
    /// Still pending, or taken by another process.
    NotDue,
}

/// What one sweep of the parked workflows did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Sweep {
    /// Requests marked as holding a paused workflow.
    pub parked: usize,
    /// Workflows this sweep answered (or resumed; a resumed call that met
    /// 429/503 waits for the next sweep and counts here too).
    pub answered: usize,
    /// Decided or expired, and left for the next sweep: not enough time
    /// was left to resume (or answer) them.
    pub deferred: usize,
}
