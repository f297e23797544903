//! `events` and `audit`: linked (so components that import them load) but
//! not yet served. An event publish is still governed (quota, topic grant,
//! policy) before it answers `unavailable` naming the interface, until the
//! brokers issue lands the backends.

use crate::bindings::types::Error;
use crate::bindings::{audit, events};
use crate::governance::policy::{Action, EntityRef};

use super::{Capability, InstanceState};

fn unavailable<T>(capability: Capability) -> wasmtime::Result<Result<T, Error>> {
    Ok(Err(Error::Unavailable(format!(
        "{} is not served by this host yet: its backend arrives with the brokers release",
        capability.import_name()
    ))))
}

impl events::Host for InstanceState {
    async fn publish(
        &mut self,
        topic: String,
        _payload: Vec<u8>,
        _attributes: Vec<(String, String)>,
    ) -> wasmtime::Result<Result<String, Error>> {
        let call = &self.call;
        if let Err(e) = call.charge() {
            return Ok(Err(e));
        }
        if let Some(denial) = call.grant.topics.denial("topic", &topic) {
            return Ok(Err(Error::Denied(format!("{}: {denial}", call.caller()))));
        }
        let resource = EntityRef::new("Topic", format!("{}/{topic}", call.tenant.id()));
        if let Err(e) = call.decide(Action::PublishEvent, resource, Vec::new()) {
            return Ok(Err(e));
        }
        unavailable(Capability::Events)
    }
}

/// The largest `data` a guest may attach to one evidence record.
const EVIDENCE_DATA_BYTES: usize = 16 * 1024;

impl audit::Host for InstanceState {
    /// Guest evidence goes into the same chain as the host's own records,
    /// marked `evidence` and attributed by the host (tenant, agent, run),
    /// never by the guest.
    async fn emit(&mut self, item: audit::Evidence) -> wasmtime::Result<Result<String, Error>> {
        let call = self.call.clone();
        if let Err(e) = call.charge() {
            return Ok(Err(e));
        }
        let Some(log) = &call.audit else {
            return unavailable(Capability::Audit);
        };
        if item.data.len() > EVIDENCE_DATA_BYTES || item.summary.len() > 1024 || item.kind.len() > 64 {
            return Ok(Err(Error::InvalidInput(format!(
                "evidence is limited to a kind of 64 bytes, a summary of 1024 and data of {EVIDENCE_DATA_BYTES}"
            ))));
        }
        let data: serde_json::Value = match serde_json::from_str(&item.data) {
            Ok(data) => data,
            Err(e) => return Ok(Err(Error::InvalidInput(format!("evidence `data` is not JSON: {e}")))),
        };
        let event = crate::audit::Event {
            kind: crate::audit::Kind::Evidence,
            tenant: call.tenant.id().to_owned(),
            principal: Some(call.requested_by.clone()),
            agent: Some(call.trace.agent_id.clone()),
            component: Some(call.component.digest.clone()),
            trace_id: Some(call.trace.trace_id.clone()),
            run_id: Some(call.trace.run_id.clone()),
            outcome: "emitted".to_owned(),
            what: serde_json::json!({ "kind": item.kind, "data": data }),
            why: Some(item.summary),
        };
        Ok(log.append_owned(event).map(|receipt| receipt.id).map_err(|e| Error::Unavailable(e.to_string())))
    }
}
