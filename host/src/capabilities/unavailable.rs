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

impl audit::Host for InstanceState {
    async fn emit(&mut self, _item: audit::Evidence) -> wasmtime::Result<Result<String, Error>> {
        unavailable(Capability::Audit)
    }
}
