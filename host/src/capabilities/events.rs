//! `agenthost:platform/events`: publish, governed (host-call quota, topic
//! grant, the policy's `PublishEvent`), then handed to the events broker
//! with a fresh id (the idempotency key), the caller's tenant and trace
//! context, and recorded in the audit trail (topic, id, payload digest,
//! attribute names; never the payload).

use crate::audit;
use crate::bindings::events;
use crate::bindings::types::Error;
use crate::brokers::events::{Envelope, EventError};
use crate::governance::keys::digest;
use crate::governance::policy::{Action, EntityRef};

use super::InstanceState;

/// The largest payload one event carries.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// The most attributes one event carries.
pub const MAX_ATTRIBUTES: usize = 16;

impl events::Host for InstanceState {
    #[tracing::instrument(level = "info", name = "host.events.publish", skip_all, fields(topic = %topic))]
    async fn publish(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        attributes: Vec<(String, String)>,
    ) -> wasmtime::Result<Result<String, Error>> {
        let call = self.call.clone();
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
        if payload.len() > MAX_PAYLOAD_BYTES || attributes.len() > MAX_ATTRIBUTES {
            return Ok(Err(Error::InvalidInput(format!(
                "an event carries at most {MAX_PAYLOAD_BYTES} bytes of payload and {MAX_ATTRIBUTES} attributes"
            ))));
        }
        let event = Envelope {
            id: format!("evt-{:032x}", rand::random::<u128>()),
            tenant: call.tenant.id().to_owned(),
            topic: topic.clone(),
            payload: Envelope::encode_payload(&payload),
            attributes,
            trace_id: call.trace.trace_id.clone(),
            run_id: call.trace.run_id.clone(),
            source: call.trace.agent_id.clone(),
            published_at: crate::audit::record::now_rfc3339(),
        };
        let bus = self.host.events.clone();
        let result = bus.publish(&event).await;
        let outcome = if result.is_ok() { "published" } else { "failed" };
        let what = serde_json::json!({
            "backend": bus.name(),
            "topic": topic,
            "event_id": event.id,
            "payload_digest": digest(&payload),
            "attributes": event.attributes.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            "error": result.as_ref().err().map(ToString::to_string),
        });
        if let Err(e) = call.evidence(audit::Kind::EventPublish, outcome, what, None) {
            return Ok(Err(Error::Unavailable(e)));
        }
        Ok(match result {
            Ok(()) => Ok(event.id),
            Err(EventError::Unavailable(e)) => Err(Error::Unavailable(e)),
            Err(e) => Err(Error::Internal(e.to_string())),
        })
    }
}
