//! `agenthost:platform/events`: publish, governed (host-call quota, topic
//! grant, the policy's `PublishEvent`), then handed to the events broker
//! with a fresh id (the idempotency key), the caller's tenant and trace
//! context, and recorded in the audit trail (topic, id, payload digest,
//! attribute names; never the payload).

use crate::audit;
use crate::bindings::events;
use crate::bindings::types::Error;
use crate::brokers::events::{Envelope, EventError};
use crate::governance::policy::{Action, EntityRef};
use crate::keys::digest;

use super::{Capability, InstanceState};

/// The largest payload one event carries.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// The most attributes one event carries.
pub const MAX_ATTRIBUTES: usize = 16;
/// The longest attribute name.
pub const MAX_ATTRIBUTE_NAME_BYTES: usize = 128;
/// The longest attribute value.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 1024;
/// The longest topic.
pub const MAX_TOPIC_BYTES: usize = 256;

/// The first cap an event breaks, as the guest's `limit-exceeded`.
fn over_cap(topic: &str, payload: &[u8], attributes: &[(String, String)]) -> Option<String> {
    if topic.len() > MAX_TOPIC_BYTES {
        return Some(format!(
            "the topic is {} bytes; the cap is {MAX_TOPIC_BYTES} (limit events topic bytes)",
            topic.len()
        ));
    }
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Some(format!(
            "the payload is {} bytes; the cap is {MAX_PAYLOAD_BYTES} (limit events payload bytes)",
            payload.len()
        ));
    }
    if attributes.len() > MAX_ATTRIBUTES {
        return Some(format!(
            "the event has {} attributes; the cap is {MAX_ATTRIBUTES} (limit events attributes)",
            attributes.len()
        ));
    }
    attributes.iter().find_map(|(name, value)| {
        if name.len() > MAX_ATTRIBUTE_NAME_BYTES {
            Some(format!(
                "an attribute name is {} bytes; the cap is {MAX_ATTRIBUTE_NAME_BYTES} (limit events attribute name bytes)",
                name.len()
            ))
        } else if value.len() > MAX_ATTRIBUTE_VALUE_BYTES {
            Some(format!(
                "attribute `{}` is {} bytes; the cap is {MAX_ATTRIBUTE_VALUE_BYTES} (limit events attribute value bytes)",
                crate::text::clip(name),
                value.len()
            ))
        } else {
            None
        }
    })
}

impl events::Host for InstanceState {
    #[tracing::instrument(level = "info", name = "host.events.publish", skip_all, fields(topic = ?topic))]
    async fn publish(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        attributes: Vec<(String, String)>,
    ) -> wasmtime::Result<Result<String, Error>> {
        gate!(self, Capability::Events, "publish");
        let call = self.call.clone();
        if let Some(cap) = over_cap(&topic, &payload, &attributes) {
            return Ok(Err(Error::LimitExceeded(cap)));
        }
        if let Some(denial) = call.grant.topics.denial("topic", &topic) {
            return Ok(Err(Error::Denied(format!("{}: {denial}", call.caller()))));
        }
        let resource = EntityRef::new("Topic", format!("{}/{topic}", call.tenant.id()));
        if let Err(e) = call.decide(Action::PublishEvent, resource, Vec::new()) {
            return Ok(Err(e));
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
        let bus = self.services.events.clone();
        let result = call
            .before_deadline("the events backend", async {
                bus.publish(&event).await.map_err(|e| match e {
                    EventError::Unavailable(e) => Error::Unavailable(e),
                    e => Error::Internal(e.to_string()),
                })
            })
            .await;
        let outcome = match &result {
            Ok(()) => "published",
            // Cut off at the deadline: the bus may have taken it.
            Err(_) if call.past_deadline() => "unknown",
            Err(_) => "failed",
        };
        let what = serde_json::json!({
            "backend": bus.name(),
            "topic": topic,
            "event_id": event.id,
            "payload_digest": digest(&payload),
            "attributes": event.attributes.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            "error": result.as_ref().err().map(|e| format!("{e:?}")),
        });
        if let Err(e) = call.evidence(audit::Kind::EventPublish, outcome, what, None) {
            return Ok(Err(Error::Unavailable(e)));
        }
        Ok(result.map(|()| event.id))
    }
}
