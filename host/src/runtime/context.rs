//! The context of a call: who makes it ([`Root`] for a top-level call,
//! resolved from [`CallOptions`]), where it sits ([`Parent`]), whom the
//! policy sees ([`Principal`]), and the [`CallContext`] every host call of
//! it reads.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;
use std::time::Instant;

use crate::bindings::types::TraceContext;
use crate::capabilities::CallContext;
use crate::error::InvokeError;
use crate::governance::ApprovalToken;
use crate::governance::approvals::Status;
use crate::governance::policy::EntityRef;
use crate::keys::{canonical_json, digest};
use crate::limits::Limits;
use crate::trace::{self, Transcript};

use super::{CallOptions, HostInner, LoadedComponent, Subject};

/// Where a call sits.
pub(super) enum Parent<'a> {
    /// A top-level call: a trace of its own (or the run of the approval
    /// request it re-submits); an agent run also keeps a transcript.
    Root(Option<Arc<Transcript>>, &'a Root),
    /// A `tools.invoke` from inside another call.
    Caller(&'a CallContext),
}

/// Who makes a tool call, for the policy.
pub(super) enum Principal<'a> {
    /// A person or service, at the top.
    User(&'a str),
    /// The component whose `tools.invoke` this is.
    Component(&'a CallContext),
}

impl Principal<'_> {
    pub(super) fn entity(&self, tenant: &str) -> EntityRef {
        match self {
            Principal::User(name) => EntityRef::new("User", format!("{tenant}/{name}")),
            Principal::Component(caller) => caller.principal(),
        }
    }
}

/// A top-level call's caller, run and tokens, resolved from [`CallOptions`].
pub(crate) struct Root {
    pub(super) principal: String,
    pub(super) requested_by: String,
    pub(super) requested_by_key: Option<String>,
    pub(super) run_id: Option<String>,
    pub(super) trace_id: Option<String>,
    pub(super) approvals: Arc<[ApprovalToken]>,
    /// Approval requests the host issues in this run.
    pub(super) issued: Arc<Mutex<Vec<String>>>,
}

impl Root {
    /// `describe` calls at load time.
    pub(super) fn host() -> Self {
        Root {
            principal: crate::vocab::HOST_PRINCIPAL.into(),
            requested_by: crate::vocab::HOST_PRINCIPAL.into(),
            requested_by_key: None,
            run_id: None,
            trace_id: None,
            approvals: Arc::from([]),
            issued: Arc::default(),
        }
    }
}

impl HostInner {
    /// The context of one call of component `id`: a trace of its own at the
    /// top, or the caller's trace, run, transcript and (at most) deadline
    /// one hop deeper.
    pub(super) fn call_context(
        &self,
        subject: &Subject,
        limits: &Limits,
        parent: Parent<'_>,
    ) -> Arc<CallContext> {
        self.context(subject, limits, parent, false)
    }

    /// The context of `describe()`: the subject's describe grant, and every
    /// platform call but `log` traps.
    pub(super) fn describe_context(
        &self,
        subject: &Subject,
        limits: &Limits,
        root: &Root,
    ) -> Arc<CallContext> {
        self.context(subject, limits, Parent::Root(None, root), true)
    }

    pub(super) fn context(
        &self,
        subject: &Subject,
        limits: &Limits,
        parent: Parent<'_>,
        describing: bool,
    ) -> Arc<CallContext> {
        let id = &subject.id;
        let agent_id = id.label();
        let own_deadline = Instant::now() + limits.timeout;
        let (trace, deadline, depth, transcript, (requested_by, requested_by_key), approvals, issued) =
            match parent {
                Parent::Root(transcript, root) => {
                    let mut trace = trace::new_trace(subject.tenant.id(), &agent_id);
                    if let Some(run_id) = &root.run_id {
                        trace.run_id.clone_from(run_id);
                    }
                    if let Some(trace_id) = &root.trace_id {
                        trace.trace_id.clone_from(trace_id);
                    }
                    (
                        trace,
                        own_deadline,
                        0,
                        transcript,
                        (root.requested_by.clone(), root.requested_by_key.clone()),
                        root.approvals.clone(),
                        root.issued.clone(),
                    )
                }
                Parent::Caller(caller) => (
                    TraceContext { agent_id, ..caller.trace.clone() },
                    caller.deadline.min(own_deadline),
                    caller.depth + 1,
                    caller.transcript.clone(),
                    (caller.requested_by.clone(), caller.requested_by_key.clone()),
                    caller.approvals.clone(),
                    caller.issued_approvals.clone(),
                ),
            };
        Arc::new(CallContext {
            trace,
            component: Arc::clone(id),
            grant: Arc::clone(&subject.grant),
            tenant: Arc::clone(&subject.tenant),
            policy: Arc::clone(&subject.policy),
            prompts: Arc::clone(&subject.prompts),
            requested_by,
            requested_by_key,
            approvals,
            deadline,
            depth,
            transcript,
            audit: self.audit.clone(),
            metrics: self.metrics.clone(),
            describing,
            violations: Mutex::default(),
            host_calls: AtomicU64::new(0),
            host_call_budget: limits.host_calls,
            issued_approvals: issued,
            mounts: subject.mounts.clone(),
        })
    }

    /// Resolves a top-level call's options: the caller, and for a
    /// re-submission the pending request's run and tokens.
    pub(super) async fn root(
        &self,
        component: &LoadedComponent,
        options: &CallOptions,
    ) -> Result<Root, InvokeError> {
        let tenant = component.tenant();
        self.governance.tenant(tenant).map_err(|e| InvokeError::from(e).with_component(component.id()))?;
        let principal =
            options.principal.clone().unwrap_or_else(|| crate::vocab::ANONYMOUS_PRINCIPAL.to_owned());
        let mut root = Root {
            requested_by: principal.clone(),
            requested_by_key: options.principal_key.clone(),
            principal,
            run_id: None,
            trace_id: options.trace_id.clone().filter(|t| {
                t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) && t.bytes().any(|b| b != b'0')
            }),
            approvals: if options.approvals.is_empty() {
                self.no_approvals.clone()
            } else {
                options.approvals.clone().into()
            },
            issued: Arc::default(),
        };
        if let Some(id) = &options.approval_request {
            let store = self.governance.approvals().ok_or_else(|| {
                InvokeError::internal("this host has no approvals store (it runs without a data directory)")
            })?;
            let request = store.get(id).await?;
            if request.tenant != tenant {
                return Err(InvokeError::denied(format!(
                    "approval request `{id}` belongs to tenant `{}`, not `{tenant}`",
                    request.tenant
                )));
            }
            if request.status == Status::Denied {
                let who: Vec<&str> =
                    request.decisions.iter().filter(|d| !d.approved).map(|d| d.approver.as_str()).collect();
                return Err(InvokeError::denied(format!(
                    "approval request `{id}` was denied by {}",
                    who.join(", ")
                )));
            }
            let mut tokens: Vec<ApprovalToken> = root.approvals.to_vec();
            tokens.extend(request.tokens.iter().cloned());
            root.approvals = tokens.into();
            root.run_id = Some(request.run_id.clone());
            root.requested_by = request.requested_by.clone();
            root.requested_by_key = request.requested_by_key.clone();
        }
        Ok(root)
    }
}

/// A call's input, with its digest (of the canonical JSON) computed at
/// most once: the call's audit record and an approval both name it.
pub(super) struct CallInput<'a> {
    pub(super) value: &'a Value,
    digest: OnceLock<String>,
}

impl<'a> CallInput<'a> {
    pub(super) fn new(value: &'a Value) -> Self {
        CallInput { value, digest: OnceLock::new() }
    }

    /// `sha256:<hex>` of the input's canonical JSON.
    pub(super) fn digest(&self) -> &str {
        self.digest.get_or_init(|| digest(canonical_json(self.value).as_bytes()))
    }
}
