//! Calls: a top-level call is resolved, admitted under its tenant's
//! quotas and run (on the tenant's own workers under `namespace`
//! isolation); a tool call is schema-checked, gated and run in the sandbox;
//! an agent run keeps a transcript.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tracing::Instrument as _;

use crate::bindings::types::TraceContext;
use crate::bindings::{AgentPre, Task, ToolPre};
use crate::capabilities::{CallContext, InstanceState};
use crate::error::{ErrorKind, InvokeError};
use crate::governance::{Tenant, Tier};
use crate::schema::InputSchema;
use crate::trace::Transcript;

use super::context::{CallInput, Parent, Principal, Root};
use super::evidence::invocation_span;
use super::sandbox::{Invoke, Run, guest_error};
use super::{CallOptions, Host, HostInner, Kind, LoadedComponent, RunOutput};

impl Host {
    /// Invokes a tool with a JSON input under the tool's limits, as an
    /// anonymous caller presenting no approval.
    ///
    /// # Errors
    ///
    /// As [`Host::invoke_tool_with`].
    pub async fn invoke_tool(
        &self,
        tool: &Arc<LoadedComponent>,
        input: &Value,
    ) -> Result<Value, InvokeError> {
        self.invoke_tool_with(tool, input, &CallOptions::default()).await
    }

    /// Invokes a tool with a JSON input, governed: the policy decides, the
    /// tier's obligations are met (write quota, approvals), the tenant's
    /// quotas are charged, then it runs under its limits.
    ///
    /// # Errors
    ///
    /// `denied` (policy, tier, tenant scope, a bad approval token),
    /// `approval-required` (with the pending request's id),
    /// `limit-exceeded` (a tenant quota), `invalid-input` (the tool does not
    /// run), a limit (`timeout`, `out-of-fuel`, `memory-limit`,
    /// `stack-overflow`, `output-too-large`), `trap`, `invalid-output`, or
    /// the tool's own error.
    pub async fn invoke_tool_with(
        &self,
        tool: &Arc<LoadedComponent>,
        input: &Value,
        options: &CallOptions,
    ) -> Result<Value, InvokeError> {
        let input = input.clone();
        self.top_level(tool, options, move |inner, tool, root| async move {
            inner.invoke_tool(&tool, &input, Parent::Root(None, &root)).await
        })
        .await
    }

    /// Runs an agent on a JSON input, as an anonymous caller.
    ///
    /// # Errors
    ///
    /// As [`Host::run_agent_with`].
    pub async fn run_agent(
        &self,
        agent: &Arc<LoadedComponent>,
        input: &Value,
    ) -> Result<RunOutput, InvokeError> {
        self.run_agent_with(agent, input, &CallOptions::default()).await
    }

    /// Runs an agent on a JSON input under the agent's limits. Its tool
    /// calls are governed like top-level ones, in the same run, with the
    /// approval tokens presented here.
    ///
    /// # Errors
    ///
    /// As [`Host::invoke_tool_with`], for the agent itself; what its tool
    /// calls fail with is returned to the agent, which decides.
    pub async fn run_agent_with(
        &self,
        agent: &Arc<LoadedComponent>,
        input: &Value,
        options: &CallOptions,
    ) -> Result<RunOutput, InvokeError> {
        let input = input.clone();
        self.top_level(agent, options, move |inner, agent, root| async move {
            inner.run_agent(&agent, &input, &root).await
        })
        .await
    }

    /// A top-level call: resolves the caller and tokens, admits it under
    /// the tenant's quotas, and runs it — on the tenant's own worker pool
    /// under `namespace` isolation.
    pub(super) async fn top_level<R, F, Fut>(
        &self,
        component: &Arc<LoadedComponent>,
        options: &CallOptions,
        call: F,
    ) -> Result<R, InvokeError>
    where
        F: FnOnce(Arc<HostInner>, Arc<LoadedComponent>, Root) -> Fut,
        Fut: Future<Output = Result<R, InvokeError>> + Send + 'static,
        R: Send + 'static,
    {
        let root = self.inner.root(component, options).await?;
        // What other processes used this minute counts before admission.
        self.inner.sync_quotas(&component.subject.tenant).await;
        let permit = match self.inner.admit(component) {
            Ok(permit) => permit,
            Err(e) => {
                self.inner.record_refusal(component, &root, &e);
                self.inner.settle().await?;
                return Err(e);
            }
        };
        let run = call(self.inner.clone(), component.clone(), root);
        let result = match component.subject.tenant.workers() {
            Some(workers) => workers
                .spawn(async move {
                    let _permit = permit;
                    run.await
                })
                .await
                .map_err(|e| InvokeError::internal(format!("the tenant's worker failed: {e}")))?,
            None => {
                let _permit = permit;
                run.await
            }
        };
        self.inner.sync_quotas(&component.subject.tenant).await;
        // The caller learns the outcome only once its evidence is on disk.
        self.inner.settle().await?;
        result
    }
}

impl HostInner {
    pub(super) async fn run_agent(
        self: &Arc<Self>,
        agent: &LoadedComponent,
        input: &Value,
        root: &Root,
    ) -> Result<RunOutput, InvokeError> {
        let Kind::Agent { pre, .. } = &agent.kind else {
            return Err(InvokeError::new(
                ErrorKind::InvalidInput,
                format!("{} is a tool, not an agent", agent.id()),
            )
            .with_component(agent.id()));
        };
        let transcript = Arc::new(Transcript::default());
        let call =
            self.call_context(&agent.subject, &agent.limits, Parent::Root(Some(transcript.clone()), root));
        let span = invocation_span(&call);
        let started = Instant::now();
        let input = CallInput::new(input);
        let result = self.run_agent_in(agent, pre, &input, &call).instrument(span).await;
        self.observe(&call, agent, started, &result);
        self.record_call(&call, agent, &input, &result)?;
        let (output, trace) = result?;
        Ok(RunOutput { output, trace, transcript })
    }

    pub(super) async fn run_agent_in(
        self: &Arc<Self>,
        agent: &LoadedComponent,
        pre: &AgentPre<InstanceState>,
        input: &CallInput<'_>,
        call: &Arc<CallContext>,
    ) -> Result<(Value, TraceContext), InvokeError> {
        // An agent's tier obliges as a tool's does: write-high and critical
        // agents run only with approvals.
        if agent.tier.is_some_and(|t| t >= Tier::WriteHigh) {
            self.obligations(agent, input, call).await?;
        }
        let trace = call.trace.clone();
        let task = Task { input: input.value.to_string(), context: trace.clone() };
        let (outcome, store) = self.run_in_store(&agent.subject, &agent.limits, call, Run(pre, &task)).await;
        self.cost(&store, agent);
        let outcome = outcome?.map_err(|e| guest_error(e, agent.id(), call))?;
        let output = self.parse_output(agent, &outcome.output)?;
        Ok((output, trace))
    }

    /// Admits a top-level call under its tenant's concurrency and fuel
    /// quotas; the permit is held until the call ends.
    pub(super) fn admit(
        &self,
        component: &LoadedComponent,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, InvokeError> {
        let tenant = &component.subject.tenant;
        if let Err(limit) = tenant.fuel.check() {
            return Err(InvokeError::new(
                ErrorKind::LimitExceeded,
                format!("tenant `{}` used its fuel budget of {limit} units for this minute (quota fuel_per_minute)", tenant.id()),
            )
            .with_limit("fuel_per_minute", limit)
            .with_component(component.id()));
        }
        let Some(semaphore) = &tenant.concurrency else { return Ok(None) };
        match semaphore.clone().try_acquire_owned() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => {
                let limit = u64::from(tenant.config.quotas.concurrent_invocations.unwrap_or(0));
                Err(InvokeError::new(
                    ErrorKind::LimitExceeded,
                    format!(
                        "tenant `{}` already runs {limit} invocations (quota concurrent_invocations)",
                        tenant.id()
                    ),
                )
                .with_limit("concurrent_invocations", limit)
                .with_component(component.id()))
            }
        }
    }

    pub(super) async fn invoke_tool(
        self: &Arc<Self>,
        tool: &LoadedComponent,
        input: &Value,
        parent: Parent<'_>,
    ) -> Result<Value, InvokeError> {
        let Kind::Tool { pre, schema, .. } = &tool.kind else {
            return Err(InvokeError::new(
                ErrorKind::InvalidInput,
                format!("{} is an agent, not a tool", tool.id()),
            )
            .with_component(tool.id()));
        };
        let principal = match &parent {
            Parent::Root(_, root) => Principal::User(&root.principal),
            Parent::Caller(caller) => Principal::Component(caller),
        };
        let call = self.call_context(&tool.subject, &tool.limits, parent);
        let span = invocation_span(&call);
        let started = Instant::now();
        let input = CallInput::new(input);
        let result = self.run_tool(tool, pre, schema, &input, &call, principal).instrument(span).await;
        self.observe(&call, tool, started, &result);
        self.record_call(&call, tool, &input, &result)?;
        result
    }

    pub(super) async fn run_tool(
        self: &Arc<Self>,
        tool: &LoadedComponent,
        pre: &ToolPre<InstanceState>,
        schema: &InputSchema,
        input: &CallInput<'_>,
        call: &Arc<CallContext>,
        principal: Principal<'_>,
    ) -> Result<Value, InvokeError> {
        schema.check(input.value).map_err(|message| {
            InvokeError::new(ErrorKind::InvalidInput, message).with_component(tool.id())
        })?;
        self.govern(tool, input, call, principal).await?;
        let input = input.value.to_string();
        let (result, store) = self.run_in_store(&tool.subject, &tool.limits, call, Invoke(pre, &input)).await;
        self.cost(&store, tool);
        let output = result?.map_err(|e| {
            let mut e = guest_error(e, tool.id(), call);
            let denials = store.data().egress_denials();
            if !denials.is_empty() {
                e.message = format!("{} (host: {})", e.message, denials.join("; "));
            }
            e
        })?;
        self.parse_output(tool, &output)
    }

    /// Adds this process's per-minute use to the ledger and takes in what
    /// other processes used; a ledger that cannot be reached leaves the
    /// local counts in force (and the use to add next time).
    pub(super) async fn sync_quotas(&self, tenant: &Tenant) {
        let Some(ledger) = &self.quota_ledger else { return };
        for window in tenant.windows() {
            if let Err(e) = window.sync(tenant.id(), ledger.as_ref()).await {
                tracing::warn!(tenant = tenant.id(), quota = window.name(), error = %e, "per-minute quota use not shared");
            }
        }
    }
}
