//! Event subscriptions: an agent subscribed to a topic runs for each
//! event published on it, in the publisher's trace.

use std::sync::Arc;

use serde_json::Value;

use crate::brokers::events::{Envelope, Subscription};
use crate::capabilities::World;
use crate::error::{ErrorKind, InvokeError};

use super::{CallOptions, Host, LoadedComponent};

/// Chooses, when an event arrives, the agent that runs for it.
pub type AgentResolver = Arc<
    dyn Fn() -> crate::brokers::BoxFuture<'static, Result<Arc<LoadedComponent>, InvokeError>> + Send + Sync,
>;

impl Host {
    /// Runs `agent` for every event of its tenant whose topic matches
    /// `topic` (a name or a `prefix.*` pattern), in the publisher's trace.
    /// Its input is `{"event": {id, topic, tenant, source, published_at,
    /// attributes, payload}}` (the payload as JSON when it is JSON, else
    /// base64). A run that fails leaves the event for redelivery; a run that
    /// succeeded is not repeated for the same event id.
    ///
    /// # Errors
    ///
    /// `invalid-input` when the component is not an agent.
    pub fn subscribe(&self, topic: &str, agent: Arc<LoadedComponent>) -> Result<(), InvokeError> {
        if agent.world() != World::Agent {
            return Err(InvokeError::new(
                ErrorKind::InvalidInput,
                format!("{} is a tool; only agents subscribe to events", agent.id()),
            ));
        }
        let tenant = agent.tenant().to_owned();
        let name = agent.id().name.clone();
        self.subscribe_resolved(
            &tenant,
            topic,
            &name,
            Arc::new(move || {
                let agent = agent.clone();
                Box::pin(async move { Ok(agent) })
            }),
        );
        Ok(())
    }

    /// As [`Host::subscribe`], with the agent chosen when each event
    /// arrives (a server resolves the agent's `stable` version then, so a
    /// promotion or rollback applies to the next event). The agent must be
    /// of `tenant`, or the event is left for redelivery.
    pub fn subscribe_resolved(&self, tenant: &str, topic: &str, subscriber: &str, resolve: AgentResolver) {
        let host = Arc::downgrade(&self.inner);
        let owner = tenant.to_owned();
        let handler: crate::brokers::events::Handler = Arc::new(move |event: Envelope| {
            let host = host.clone();
            let resolve = resolve.clone();
            let owner = owner.clone();
            Box::pin(async move {
                let inner = host.upgrade().ok_or("the host is gone")?;
                let host = Host { inner };
                let agent = resolve().await.map_err(|e| e.to_string())?;
                if agent.world() != World::Agent || agent.tenant() != owner {
                    return Err(format!("{} is not an agent of tenant `{owner}`", agent.id()));
                }
                let payload = event.payload_bytes();
                let payload = serde_json::from_slice::<Value>(&payload)
                    .unwrap_or_else(|_| Value::String(event.payload.clone()));
                let attributes: serde_json::Map<String, Value> =
                    event.attributes.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
                let input = serde_json::json!({ "event": {
                    "id": event.id, "topic": event.topic, "tenant": event.tenant, "source": event.source,
                    "published_at": event.published_at, "attributes": attributes, "payload": payload,
                }});
                let options = CallOptions {
                    principal: Some(format!("{}{}", crate::vocab::EVENT_PRINCIPAL_PREFIX, event.source)),
                    trace_id: Some(event.trace_id.clone()),
                    ..CallOptions::default()
                };
                host.run_agent_with(&agent, &input, &options).await.map(|_| ()).map_err(|e| e.to_string())
            })
        });
        self.inner.dispatcher.subscribe(Subscription {
            tenant: tenant.to_owned(),
            topic: crate::governance::names::Patterns(vec![topic.to_owned()]),
            subscriber: format!("{topic}>{subscriber}"),
            handler,
        });
        // In-process events are served from the first subscription on.
        let _ = self.inner.dispatcher.serve_in_process(&self.inner.in_process);
    }

    /// Deliveries are claimed and marked done in the memory backend too, so
    /// another process (a Lambda execution environment) given the same
    /// message runs no subscriber again.
    pub fn use_delivery_ledger(&self) {
        let ledger = crate::brokers::events::MemoryLedger { store: self.inner.services.memory.clone() };
        self.inner.dispatcher.set_ledger(Arc::new(ledger));
    }

    /// Delivers one event (an SQS message's, or an EventBridge event's
    /// `detail`) to this host's subscribers.
    ///
    /// # Errors
    /// The first subscriber that failed, or one running it elsewhere: the
    /// event must come again.
    pub async fn deliver_event(&self, event: Envelope) -> Result<usize, String> {
        self.inner.dispatcher.deliver(event).await
    }

    /// Delivers the events of an SQS queue (fed by the SQS bus or by an
    /// EventBridge rule) to this host's subscribers, until the task is aborted.
    pub fn serve_sqs(
        &self,
        client: aws_sdk_sqs::Client,
        queue_url: String,
    ) -> crate::brokers::events::QueuePoller {
        self.inner.dispatcher.serve_sqs(client, queue_url)
    }
}
