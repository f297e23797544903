//! Messages from a queue: one reading of an SQS message's body for every
//! transport (Lambda's SQS batches and `serve`'s poller), so a message means
//! the same thing whichever runtime takes it.

use std::sync::Arc;

use serde_json::Value;

use super::Server;
use super::data::DirectCall;
use crate::brokers::events::{
    Claim, Ledger as _, MemoryLedger, MessageHandler, NotHandled, QueuePoller, envelope_of, poll_sqs,
};

impl Server {
    /// Handles one queue message: an agenthost event (or an EventBridge
    /// event carrying one in its `detail`) goes to this host's subscribers,
    /// each at most once; with `[events] direct_calls`, a [`DirectCall`]
    /// runs, once per message id. Anything else fails, and so comes back to
    /// the queue until its redrive policy sets it aside.
    ///
    /// # Errors
    ///
    /// What failed, in words: the message is kept.
    pub async fn take_message(self: &Arc<Self>, message_id: &str, body: &str) -> Result<(), NotHandled> {
        let value: Value = serde_json::from_str(body).map_err(|e| format!("the message is not JSON: {e}"))?;
        // An event has a topic (or, from EventBridge, a detail-type); a call
        // names a tool or an agent.
        let is_call = value.get("topic").is_none()
            && value.get("detail-type").is_none()
            && (value.get("tool").is_some() || value.get("agent").is_some());
        if is_call {
            if !self.governance.settings().events.direct_calls {
                return Err(NotHandled::Failed(
                    "the message is a direct call, and direct calls from the queue are off ([events] direct_calls)"
                        .to_owned(),
                ));
            }
            let call: DirectCall =
                serde_json::from_value(value).map_err(|e| format!("not a direct call: {e}"))?;
            return self.queued_call(message_id, call).await;
        }
        let event = envelope_of(body)?;
        Ok(self.host().deliver_event(event).await.map(|_| ())?)
    }

    /// A direct call from the queue runs once per message, however often
    /// the queue delivers it: claimed by message id in the memory backend.
    async fn queued_call(self: &Arc<Self>, message_id: &str, call: DirectCall) -> Result<(), NotHandled> {
        let run = |call| async move {
            self.call_for_task(call, "sqs")
                .await
                .map(|_| ())
                .map_err(|p| NotHandled::Failed(p.to_json().to_string()))
        };
        if self.governance.tenant(&call.tenant).is_err() {
            return Err(NotHandled::Failed(format!(
                "tenant `{}` is not served here",
                crate::text::clip(&call.tenant)
            )));
        }
        let Some(store) = self.memory.clone() else { return run(call).await };
        let ledger = MemoryLedger { store };
        let tenant = call.tenant.clone();
        if message_id.is_empty() || message_id.len() > 128 {
            return Err(NotHandled::Failed(
                "a direct call from the queue needs its message id (at most 128 bytes)".to_owned(),
            ));
        }
        let key = format!("call/{message_id}");
        match ledger.claim(&tenant, &key).await? {
            Claim::Done => Ok(()),
            Claim::Busy => Err(NotHandled::Busy(format!("message {message_id} is being handled elsewhere"))),
            Claim::Claimed(version) => {
                let outcome = run(call).await;
                if let Err(e) = ledger.finish(&tenant, &key, version, outcome.is_ok()).await {
                    tracing::warn!(target: "agenthost::events", %message_id, error = %e, "the delivery ledger was not updated");
                }
                outcome
            }
        }
    }

    /// Takes the messages of an SQS queue as a Lambda event source mapping
    /// would hand them to the function, until stopped.
    pub fn serve_sqs(self: &Arc<Self>, client: aws_sdk_sqs::Client, queue_url: String) -> QueuePoller {
        let server = self.clone();
        let handle: MessageHandler = Arc::new(move |id: String, body: String| {
            let server = server.clone();
            Box::pin(async move { server.take_message(&id, &body).await })
        });
        // Invisible while a call may still run: its deadline, and a minute.
        let secs = self.host().default_limits().timeout_ms() / 1000 + 60;
        poll_sqs(client, queue_url, i32::try_from(secs).unwrap_or(i32::MAX), handle)
    }
}
