//! What a call leaves behind: its audit records (call, limit, load,
//! refusal), the wait until they are durable, its span, metrics and cost.

use std::time::Instant;

use wasmtime::Store;

use crate::audit;
use crate::capabilities::{CallContext, InstanceState};
use crate::error::{ErrorKind, InvokeError};
use crate::governance::Tier;
use crate::telemetry;

use super::context::{CallInput, Root};
use super::{HostInner, LoadedComponent};

/// The span of one invocation; a top-level one joins the run's W3C trace.
pub(super) fn invocation_span(call: &CallContext) -> tracing::Span {
    let span = tracing::info_span!(
        "invoke",
        otel.name = %format!("invoke {}", call.trace.agent_id),
        tenant = call.tenant.id(),
        component = %call.trace.agent_id,
        trace_id = %call.trace.trace_id,
        run_id = %call.trace.run_id,
        depth = call.depth,
    );
    if call.depth == 0 {
        telemetry::join_run(&span, &call.trace.trace_id);
    }
    span
}

impl HostInner {
    /// Latency and outcome into the metrics.
    pub(super) fn observe<T>(
        &self,
        call: &CallContext,
        component: &LoadedComponent,
        started: Instant,
        result: &Result<T, InvokeError>,
    ) {
        let outcome = match result {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.kind.to_string(),
        };
        let id = component.id();
        self.metrics.invocation(call.tenant.id(), &id.name, &outcome, started.elapsed().as_secs_f64());
    }

    /// Fuel and memory an instance used, into the metrics.
    pub(super) fn cost(&self, store: &Store<InstanceState>, component: &LoadedComponent) {
        let used = component.limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let memory = store.data().limits.memory_in_use() as u64;
        self.metrics.cost(component.tenant(), &component.id().name, used, memory);
    }

    /// The audit records of one invocation: the call with its input digest
    /// and status, and the limit it hit, if any.
    pub(super) fn record_call<T>(
        &self,
        call: &CallContext,
        component: &LoadedComponent,
        input: &CallInput<'_>,
        result: &Result<T, InvokeError>,
    ) -> Result<(), InvokeError> {
        if self.audit.is_none() {
            return Ok(());
        }
        let id = component.id();
        let (outcome, error) = match result {
            Ok(_) => ("ok".to_owned(), None),
            Err(e) => (e.kind.to_string(), Some(e)),
        };
        let what = serde_json::json!({
            "component": id.label(),
            "digest": id.digest,
            "world": component.world.name(),
            "tier": component.tier.map(Tier::as_str),
            "input_digest": input.digest(),
            "depth": call.depth,
            "error": error.map(|e| e.message.clone()),
            "policies": error.map(|e| e.policies.clone()).unwrap_or_default(),
            "approval_request": error.and_then(|e| e.approval_request.clone()),
        });
        let failed = |e: String| InvokeError::internal(e).with_component(id);
        call.evidence(audit::Kind::ToolCall, &outcome, what, None).map_err(failed)?;
        if let Some(limit) = error.and_then(|e| e.limit.as_ref()) {
            let what = serde_json::json!({ "component": id.label(), "limit": limit });
            let why = error.map(|e| e.message.clone());
            call.evidence(audit::Kind::Limit, &outcome, what, why).map_err(failed)?;
        }
        Ok(())
    }

    /// A `deploy` record for every component loaded into this host.
    pub(super) fn record_load(&self, loaded: &LoadedComponent) -> Result<(), String> {
        let Some(audit) = &self.audit else { return Ok(()) };
        let id = loaded.id();
        let event = audit::Event::new(
            audit::Kind::Deploy,
            loaded.tenant(),
            "loaded",
            serde_json::json!({
                "component": id.label(),
                "digest": id.digest,
                "world": loaded.world.name(),
                "tier": loaded.tier.map(Tier::as_str),
                "source": format!("{:?}", loaded.source),
                "imports": loaded.imports,
            }),
        )
        .about(id);
        audit.append_owned(event).map(|_| ()).map_err(|e| e.to_string())
    }

    /// A top-level call refused before it ran (a tenant quota): its limit record.
    pub(super) fn record_refusal(&self, component: &LoadedComponent, root: &Root, e: &InvokeError) {
        let Some(audit) = &self.audit else { return };
        let id = component.id();
        let event = audit::Event::new(
            audit::Kind::Limit,
            component.tenant(),
            e.kind.to_string(),
            serde_json::json!({ "component": id.label(), "limit": e.limit }),
        )
        .on_behalf_of(root.principal.clone())
        .about(id)
        .in_run(None, root.run_id.clone())
        .because(Some(e.message.clone()));
        if let Err(e) = audit.append_owned(event) {
            tracing::error!(target: "agenthost::audit", error = %e, "a refused call could not be recorded");
        }
    }

    /// Waits until every record queued so far is durable.
    pub(super) async fn settle(&self) -> Result<(), InvokeError> {
        let Some(audit) = &self.audit else { return Ok(()) };
        audit
            .durable_ticket(audit.last_ticket())
            .await
            .map_err(|e| InvokeError::new(ErrorKind::Unavailable, e.to_string()))
    }
}
