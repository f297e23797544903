//! Messages from a queue: one reading of an SQS message's body for every
//! transport (Lambda's SQS batches and `serve`'s poller), so a message means
//! the same thing whichever runtime takes it.

use std::sync::Arc;

use serde_json::Value;

use super::Server;
use super::data::DirectCall;
use crate::brokers::events::{MessageHandler, envelope_of, poll_sqs};

impl Server {
    /// Handles one queue message: an agenthost event (or an EventBridge
    /// event carrying one in its `detail`) goes to this host's subscribers,
    /// each at most once; a [`DirectCall`] runs. Anything else fails, and
    /// so comes back to the queue until its redrive policy sets it aside.
    ///
    /// # Errors
    ///
    /// What failed, in words: the message is kept.
    pub async fn take_message(self: &Arc<Self>, body: &str) -> Result<(), String> {
        let value: Value = serde_json::from_str(body).map_err(|e| format!("the message is not JSON: {e}"))?;
        // An event has a topic (or, from EventBridge, a detail-type); a call
        // names a tool or an agent.
        let is_call = value.get("topic").is_none()
            && value.get("detail-type").is_none()
            && (value.get("tool").is_some() || value.get("agent").is_some());
        if is_call {
            let call: DirectCall =
                serde_json::from_value(value).map_err(|e| format!("not a direct call: {e}"))?;
            return self.call_direct(call).await.map(|_| ()).map_err(|p| p.to_json().to_string());
        }
        let event = envelope_of(body)?;
        self.host().deliver_event(event).await.map(|_| ())
    }

    /// Takes the messages of an SQS queue as a Lambda event source mapping
    /// would hand them to the function, until the task is aborted.
    pub fn serve_sqs(
        self: &Arc<Self>,
        client: aws_sdk_sqs::Client,
        queue_url: String,
    ) -> tokio::task::JoinHandle<()> {
        let server = self.clone();
        let handle: MessageHandler = Arc::new(move |body: String| {
            let server = server.clone();
            Box::pin(async move { server.take_message(&body).await })
        });
        poll_sqs(client, queue_url, handle)
    }
}
