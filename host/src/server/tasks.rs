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
//! [`Server::settle_due_tasks`] (through an index of parked requests),
//! which `serve` runs every [`SETTLE_EVERY_SECS`] on a task of its own. The call is never run twice for one token: an
//! answer that Step Functions does not take is logged, not retried by
//! running the call again.

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
        let Some(store) = self.governance.approvals() else { return false };
        let (request, resume) = match store.take_resume(id).await {
            Ok(Some(taken)) => taken,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(target: "agenthost::tasks", request = id, error = %e, "cannot take a parked workflow");
                return false;
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
            return true;
        }
        self.answer_task(&resume.task_token, outcome.as_ref()).await;
        true
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
        let Some(store) = self.governance.approvals() else { return };
        let parked = match store.parked().await {
            Ok(parked) => parked,
            Err(e) => {
                tracing::warn!(target: "agenthost::tasks", error = %e, "cannot look for parked workflows");
                return;
            }
        };
        // A few at a time, each on a task of its own (a resumed call may
        // take its whole deadline).
        let mut settling = tokio::task::JoinSet::new();
        for id in parked {
            while settling.len() >= SETTLING_AT_ONCE {
                settling.join_next().await;
            }
            let server = self.clone();
            settling.spawn(async move { server.settle_task(&id).await });
        }
        while settling.join_next().await.is_some() {}
    }
}
