//! The events broker: what `agenthost:platform/events` publishes, and how a
//! published event reaches the agents subscribed to its topic.
//!
//! Every event travels as one [`Envelope`]: its id (the idempotency key),
//! tenant, topic, payload, attributes and the W3C trace context of the run
//! that published it. Transports:
//!
//! - in-process (default): a channel inside this host;
//! - SQS: `SendMessage` of the envelope, with the topic, tenant, key and
//!   `traceparent` as message attributes; a poller receives and deletes;
//! - EventBridge: `PutEvents` with source `agenthost.<tenant>`, detail-type
//!   the topic and the envelope as detail; a rule (made by `agenthost aws
//!   bootstrap`) sends them to an SQS queue, which the same poller reads.
//!
//! Delivery is at least once: a message is deleted only after every
//! subscriber ran; one whose handling failed comes back. The dispatcher
//! remembers the (subscriber, idempotency key) pairs it completed, so a
//! message delivered twice runs each subscriber once.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::aws::describe;
pub use crate::settings::{DEFAULT_QUEUE, EventBackend, EventSettings};

pub use crate::brokers::BoxFuture;

/// One event, as every transport carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique per event, and its idempotency key.
    pub id: String,
    pub tenant: String,
    pub topic: String,
    /// The payload, base64.
    pub payload: String,
    pub attributes: Vec<(String, String)>,
    pub trace_id: String,
    pub run_id: String,
    /// `name@version` of the publisher.
    pub source: String,
    /// RFC 3339.
    pub published_at: String,
}

impl Envelope {
    pub fn payload_bytes(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(&self.payload).unwrap_or_default()
    }

    pub fn encode_payload(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// The W3C `traceparent` for the publisher's trace.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{:016x}-01", self.trace_id, rand::random::<u64>() | 1)
    }
}

/// Why a publish failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    #[error("the events backend is unavailable: {0}")]
    Unavailable(String),
    #[error("the events backend failed: {0}")]
    Internal(String),
}

/// Where published events go.
pub trait EventBus: Send + Sync {
    fn name(&self) -> &'static str;
    fn publish<'a>(&'a self, event: &'a Envelope) -> BoxFuture<'a, Result<(), EventError>>;
    /// Whether the backend answers (a server's readiness); the in-process
    /// bus always does.
    fn probe(&self) -> BoxFuture<'_, Result<(), EventError>> {
        Box::pin(async { Ok(()) })
    }
}

/// A subscriber: runs the subscribed agent for one event; `Err` leaves the
/// message for redelivery.
pub type Handler = Arc<dyn Fn(Envelope) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Events inside this process.
pub struct InProcessBus {
    tx: tokio::sync::mpsc::UnboundedSender<Envelope>,
    rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Envelope>>>,
}

impl Default for InProcessBus {
    fn default() -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        InProcessBus { tx, rx: Mutex::new(Some(rx)) }
    }
}

impl InProcessBus {
    /// The receiving end, once (the dispatcher takes it).
    pub fn take_receiver(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Envelope>> {
        self.rx.lock().ok().and_then(|mut rx| rx.take())
    }
}

impl EventBus for InProcessBus {
    fn name(&self) -> &'static str {
        "in-process"
    }

    fn publish<'a>(&'a self, event: &'a Envelope) -> BoxFuture<'a, Result<(), EventError>> {
        // Until a dispatcher takes the receiver nobody subscribed: the event
        // reaches no one, and is not kept.
        let nobody = self.rx.lock().map(|rx| rx.is_some()).unwrap_or(true);
        let sent = if nobody {
            Ok(())
        } else {
            self.tx
                .send(event.clone())
                .map_err(|_| EventError::Unavailable("the in-process bus is closed".into()))
        };
        Box::pin(std::future::ready(sent))
    }
}

/// Events through an SQS queue.
pub struct SqsBus {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsBus {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        SqsBus { client, queue_url: queue_url.into() }
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, EventError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| EventError::Internal(e.to_string()))
}

fn sdk_failure<E>(
    what: &str,
    e: &aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> EventError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = format!("{what}: {}", describe(e));
    if crate::aws::is_unavailable(e) { EventError::Unavailable(text) } else { EventError::Internal(text) }
}

impl EventBus for SqsBus {
    fn probe(&self) -> BoxFuture<'_, Result<(), EventError>> {
        Box::pin(async move {
            self.client
                .get_queue_attributes()
                .queue_url(&self.queue_url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| EventError::Unavailable(crate::aws::describe(&e)))
        })
    }

    fn name(&self) -> &'static str {
        "sqs"
    }

    fn publish<'a>(&'a self, event: &'a Envelope) -> BoxFuture<'a, Result<(), EventError>> {
        Box::pin(async move {
            let body = serde_json::to_string(event).map_err(|e| EventError::Internal(e.to_string()))?;
            self.client
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(body)
                .message_attributes("topic", string_attribute(&event.topic)?)
                .message_attributes("tenant", string_attribute(&event.tenant)?)
                .message_attributes("idempotency-key", string_attribute(&event.id)?)
                .message_attributes("traceparent", string_attribute(&event.traceparent())?)
                .send()
                .await
                .map_err(|e| sdk_failure("SQS SendMessage", &e))?;
            Ok(())
        })
    }
}

/// Events through an EventBridge bus (delivered by a rule to SQS).
pub struct EventBridgeBus {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeBus {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        EventBridgeBus { client, bus: bus.into() }
    }
}

/// The EventBridge `source` of a tenant's events.
pub fn source_of(tenant: &str) -> String {
    format!("agenthost.{tenant}")
}

impl EventBus for EventBridgeBus {
    fn probe(&self) -> BoxFuture<'_, Result<(), EventError>> {
        Box::pin(async move {
            self.client
                .describe_event_bus()
                .name(&self.bus)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| EventError::Unavailable(crate::aws::describe(&e)))
        })
    }

    fn name(&self) -> &'static str {
        "eventbridge"
    }

    fn publish<'a>(&'a self, event: &'a Envelope) -> BoxFuture<'a, Result<(), EventError>> {
        Box::pin(async move {
            let detail = serde_json::to_string(event).map_err(|e| EventError::Internal(e.to_string()))?;
            let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name(&self.bus)
                .source(source_of(&event.tenant))
                .detail_type(&event.topic)
                .detail(detail)
                .trace_header(event.traceparent())
                .build();
            let out = self.client.put_events().entries(entry).send().await.map_err(|e| {
                let text = format!("EventBridge PutEvents: {}", describe(&e));
                if crate::aws::is_unavailable(&e) {
                    EventError::Unavailable(text)
                } else {
                    EventError::Internal(text)
                }
            })?;
            if out.failed_entry_count() > 0 {
                let why =
                    out.entries().iter().find_map(|e| e.error_message()).unwrap_or("unknown").to_owned();
                return Err(EventError::Internal(format!("EventBridge refused the event: {why}")));
            }
            Ok(())
        })
    }
}

/// The envelope in an SQS message body: ours directly, or the `detail` of
/// an EventBridge event a rule delivered.
pub fn envelope_of(body: &str) -> Result<Envelope, String> {
    let value: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let inner = match value.get("detail") {
        Some(detail) if value.get("detail-type").is_some() => detail.clone(),
        _ => value,
    };
    serde_json::from_value(inner).map_err(|e| format!("not an agenthost event: {e}"))
}

/// Remembers which (subscriber, event) pairs completed, for a bounded number of them.
#[derive(Default)]
pub struct Completed {
    seen: HashSet<(usize, String)>,
    order: VecDeque<(usize, String)>,
}

const REMEMBERED: usize = 100_000;

impl Completed {
    pub fn contains(&self, subscriber: usize, id: &str) -> bool {
        self.seen.contains(&(subscriber, id.to_owned()))
    }

    pub fn insert(&mut self, subscriber: usize, id: &str) {
        let key = (subscriber, id.to_owned());
        if self.seen.insert(key.clone()) {
            self.order.push_back(key);
            if self.order.len() > REMEMBERED
                && let Some(old) = self.order.pop_front()
            {
                self.seen.remove(&old);
            }
        }
    }
}

/// A subscription: events of `tenant` whose topic matches `topic` run `handler`.
#[derive(Clone)]
pub struct Subscription {
    pub tenant: String,
    pub topic: crate::governance::names::Patterns,
    /// Names the subscriber (its agent) in the delivery ledger: the same in
    /// every process with the same configuration.
    pub subscriber: String,
    pub handler: Handler,
}

/// What a [`Ledger`] says of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This process runs it; the number is the claim's version.
    Claimed(u64),
    /// It ran to its end before: skip it.
    Done,
    /// Another process is running it now: try again later.
    Busy,
}

/// Where deliveries are claimed and marked done across processes (every
/// Lambda execution environment, every server): a message the queue
/// delivers again runs no subscriber twice.
pub trait Ledger: Send + Sync {
    fn claim<'a>(&'a self, tenant: &'a str, key: &'a str) -> BoxFuture<'a, Result<Claim, String>>;
    /// Marks a claimed delivery done, or gives the claim back after a failure.
    fn finish<'a>(
        &'a self,
        tenant: &'a str,
        key: &'a str,
        version: u64,
        done: bool,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// A [`Ledger`] in the memory backend (DynamoDB across processes), under a
/// namespace no component can name (guests' namespaces are `[A-Za-z0-9._-]`).
pub struct MemoryLedger {
    pub store: Arc<dyn crate::brokers::memory::MemoryStore>,
}

/// The ledger's namespace in each tenant's memory.
pub const LEDGER_NAMESPACE: &str = "agenthost:deliveries";
/// A claim outlives the longest run (a Lambda invocation's 15 minutes).
pub const CLAIM_SECS: u64 = 15 * 60;
/// A done mark outlives the queue's longest retention (14 days).
pub const DONE_SECS: u64 = 14 * 24 * 60 * 60;

impl MemoryLedger {
    fn put(value: &[u8], expected: u64, ttl: u64) -> crate::brokers::memory::Put {
        use crate::brokers::memory::{Classification, Put};
        Put::host(value.to_vec(), Some(expected), ttl, Classification::Internal)
    }
}

impl Ledger for MemoryLedger {
    fn claim<'a>(&'a self, tenant: &'a str, key: &'a str) -> BoxFuture<'a, Result<Claim, String>> {
        Box::pin(async move {
            use crate::brokers::memory::{MemoryError, Scope};
            let scope = Scope { tenant, namespace: LEDGER_NAMESPACE };
            match self.store.put(scope, key, Self::put(b"running", 0, CLAIM_SECS)).await {
                Ok(version) => Ok(Claim::Claimed(version)),
                Err(MemoryError::Conflict { .. }) => match self.store.get(scope, key).await {
                    Ok(Some(record)) if record.value == b"done" => Ok(Claim::Done),
                    Ok(Some(_)) => Ok(Claim::Busy),
                    // Expired or given back meanwhile: claim it next time.
                    Ok(None) => Ok(Claim::Busy),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn finish<'a>(
        &'a self,
        tenant: &'a str,
        key: &'a str,
        version: u64,
        done: bool,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let scope = crate::brokers::memory::Scope { tenant, namespace: LEDGER_NAMESPACE };
            if done {
                self.store.put(scope, key, Self::put(b"done", version, DONE_SECS)).await.map(|_| ())
            } else {
                self.store.delete(scope, key, Some(version)).await.map(|_| ())
            }
            .map_err(|e| e.to_string())
        })
    }
}

/// Runs the subscribers of each event, at most once each per idempotency key.
#[derive(Clone, Default)]
pub struct Dispatcher {
    subscriptions: Arc<Mutex<Vec<Subscription>>>,
    completed: Arc<Mutex<Completed>>,
    ledger: Arc<Mutex<Option<Arc<dyn Ledger>>>>,
}

impl Dispatcher {
    pub fn subscribe(&self, subscription: Subscription) {
        if let Ok(mut subs) = self.subscriptions.lock() {
            subs.push(subscription);
        }
    }

    /// Deliveries are claimed and marked in `ledger` from now on, besides
    /// this process's own memory of them.
    pub fn set_ledger(&self, ledger: Arc<dyn Ledger>) {
        if let Ok(mut slot) = self.ledger.lock() {
            *slot = Some(ledger);
        }
    }

    /// Delivers one event to every matching subscriber not yet done with it.
    ///
    /// # Errors
    /// The first subscriber that failed: the event must come again.
    pub async fn deliver(&self, event: Envelope) -> Result<usize, String> {
        let subs: Vec<(usize, Subscription)> =
            self.subscriptions.lock().map(|s| s.iter().cloned().enumerate().collect()).unwrap_or_default();
        let mut ran = 0;
        let mut failure = None;
        for (index, sub) in subs {
            if sub.tenant != event.tenant || !sub.topic.matches(&event.topic) {
                continue;
            }
            if self.completed.lock().is_ok_and(|c| c.contains(index, &event.id)) {
                tracing::debug!(target: "agenthost::events", id = %event.id, "duplicate delivery skipped");
                continue;
            }
            let ledger = self.ledger.lock().ok().and_then(|l| l.clone());
            let key = format!("{}/{}", sub.subscriber, event.id);
            let claim = match &ledger {
                None => None,
                Some(ledger) => match ledger.claim(&event.tenant, &key).await {
                    Ok(Claim::Claimed(version)) => Some(version),
                    Ok(Claim::Done) => {
                        tracing::debug!(target: "agenthost::events", id = %event.id, "delivered before (ledger); skipped");
                        if let Ok(mut completed) = self.completed.lock() {
                            completed.insert(index, &event.id);
                        }
                        continue;
                    }
                    Ok(Claim::Busy) => {
                        failure.get_or_insert(format!(
                            "event {} is being delivered to {} elsewhere",
                            event.id, sub.subscriber
                        ));
                        continue;
                    }
                    Err(e) => {
                        failure.get_or_insert(format!("the delivery ledger failed: {e}"));
                        continue;
                    }
                },
            };
            let outcome = (sub.handler)(event.clone()).await;
            if let (Some(ledger), Some(version)) = (&ledger, claim)
                && let Err(e) = ledger.finish(&event.tenant, &key, version, outcome.is_ok()).await
            {
                tracing::warn!(target: "agenthost::events", id = %event.id, error = %e, "the delivery ledger was not updated");
            }
            match outcome {
                Ok(()) => {
                    ran += 1;
                    if let Ok(mut completed) = self.completed.lock() {
                        completed.insert(index, &event.id);
                    }
                }
                Err(e) => {
                    tracing::warn!(target: "agenthost::events", id = %event.id, topic = %event.topic, error = %e, "a subscriber failed; the event will come again");
                    failure.get_or_insert(e);
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(ran),
        }
    }

    /// Serves an in-process bus until it closes.
    pub fn serve_in_process(&self, bus: &InProcessBus) -> Option<tokio::task::JoinHandle<()>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let mut rx = bus.take_receiver()?;
        let dispatcher = self.clone();
        Some(runtime.spawn(async move {
            while let Some(event) = rx.recv().await {
                let mut attempt = 0;
                // At least once: retry a failed delivery a few times.
                while dispatcher.deliver(event.clone()).await.is_err() && attempt < 3 {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
            }
        }))
    }

    /// Polls an SQS queue (fed directly or by an EventBridge rule) for its
    /// events, until aborted. A message that is no event fails.
    pub fn serve_sqs(&self, client: aws_sdk_sqs::Client, queue_url: String) -> QueuePoller {
        let dispatcher = self.clone();
        poll_sqs(
            client,
            queue_url,
            DEFAULT_VISIBILITY_SECS,
            Arc::new(move |_id: String, body: String| {
                let dispatcher = dispatcher.clone();
                Box::pin(async move {
                    dispatcher.deliver(envelope_of(&body)?).await.map(|_| ()).map_err(NotHandled::from)
                })
            }),
        )
    }
}

/// What a queue poller does with one message (its id and body): `Ok`
/// deletes it, an error gives it back to the queue.
pub type MessageHandler =
    Arc<dyn Fn(String, String) -> BoxFuture<'static, Result<(), NotHandled>> + Send + Sync>;

/// Why a message was not handled, which says when to look at it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotHandled {
    /// It failed: back after a growing delay, until the redrive policy
    /// takes it.
    Failed(String),
    /// Another process is handling it now: back once that one has had
    /// its time, so the copy does not pile up receives (and reach the
    /// dead-letter queue) while the first copy is still running.
    Busy(String),
}

impl std::fmt::Display for NotHandled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotHandled::Failed(why) | NotHandled::Busy(why) => f.write_str(why),
        }
    }
}

impl From<String> for NotHandled {
    fn from(why: String) -> Self {
        NotHandled::Failed(why)
    }
}

/// How long a message that failed its `receives`-th time stays invisible:
/// 1 s, doubling, at most 15 minutes. A message that keeps failing comes
/// back ever more slowly until the queue's redrive policy moves it to the
/// dead-letter queue; it is never deleted unhandled.
pub fn retry_after(receives: u32) -> i32 {
    let doubling = receives.saturating_sub(1).min(10);
    (1_i32 << doubling).min(900)
}

/// How long a received message stays invisible while it is handled, unless
/// the poller is told more.
pub const DEFAULT_VISIBILITY_SECS: i32 = 30;

/// A running queue poller.
pub struct QueuePoller {
    handle: tokio::task::JoinHandle<()>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl QueuePoller {
    /// Stops it now, even in the middle of a message (which then comes
    /// back to the queue when its visibility ends).
    pub fn abort(&self) {
        self.handle.abort();
    }

    /// Stops taking messages, lets the one in hand finish (for at most
    /// `within`), then stops.
    pub async fn stop(self, within: Duration) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let abort = self.handle.abort_handle();
        if tokio::time::timeout(within, self.handle).await.is_err() {
            abort.abort();
        }
    }
}

/// Polls an SQS queue until stopped, handing each message to `handle` in
/// turn, as Lambda's event source mapping hands a batch to the function: a
/// handled message is deleted, a failed one comes back after
/// [`retry_after`]. Each message is kept invisible for `visibility_secs`
/// from the moment its handling starts (a call's longest run, and some).
pub fn poll_sqs(
    client: aws_sdk_sqs::Client,
    queue_url: String,
    visibility_secs: i32,
    handle: MessageHandler,
) -> QueuePoller {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let visibility = visibility_secs.clamp(DEFAULT_VISIBILITY_SECS, 43_200);
    let task = tokio::spawn(async move {
        let set_visibility = |receipt: String, secs: i32| {
            let (client, queue_url) = (client.clone(), queue_url.clone());
            async move {
                client
                    .change_message_visibility()
                    .queue_url(queue_url)
                    .receipt_handle(receipt)
                    .visibility_timeout(secs)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| describe(&e))
            }
        };
        while !stopped.load(Ordering::Relaxed) {
            let received = client
                .receive_message()
                .queue_url(&queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .visibility_timeout(visibility)
                .message_system_attribute_names(
                    aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
                )
                .send()
                .await;
            let messages = match received {
                Ok(out) => out.messages.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(target: "agenthost::events", error = %describe(&e), "cannot receive from SQS; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for (index, message) in messages.iter().enumerate() {
                let Some(receipt) = message.receipt_handle() else { continue };
                let id = message.message_id().unwrap_or_default();
                if stopped.load(Ordering::Relaxed) {
                    // Not started: back to the queue now, for another replica.
                    let _ = set_visibility(receipt.to_owned(), 0).await;
                    continue;
                }
                if index > 0 {
                    // The ones before took time: this one's handling starts now.
                    let _ = set_visibility(receipt.to_owned(), visibility).await;
                }
                let outcome = handle(id.to_owned(), message.body().unwrap_or_default().to_owned()).await;
                let done = match outcome {
                    Ok(()) => client
                        .delete_message()
                        .queue_url(&queue_url)
                        .receipt_handle(receipt)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| describe(&e)),
                    Err(NotHandled::Busy(why)) => {
                        tracing::info!(target: "agenthost::events", message_id = %id, error = %why, "an SQS message is being handled elsewhere; it comes back after that one's time");
                        set_visibility(receipt.to_owned(), visibility).await
                    }
                    Err(NotHandled::Failed(why)) => {
                        let receives = message
                            .attributes()
                            .and_then(|a| {
                                a.get(
                                    &aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
                                )
                            })
                            .and_then(|n| n.parse::<u32>().ok())
                            .unwrap_or(1);
                        let wait = retry_after(receives);
                        tracing::warn!(target: "agenthost::events", message_id = %id, receives, retry_in_s = wait, error = %why, "an SQS message failed; it comes back to the queue");
                        set_visibility(receipt.to_owned(), wait).await
                    }
                };
                if let Err(e) = done {
                    tracing::warn!(target: "agenthost::events", message_id = %id, error = %e, "cannot settle an SQS message");
                }
            }
        }
    });
    QueuePoller { handle: task, stop }
}

/// Creates the SQS queue, and with `bus`, the EventBridge bus and the rule
/// that sends every agenthost event to the queue. Returns the queue URL.
///
/// # Errors
/// Names the call that failed.
pub async fn bootstrap(
    sqs: &aws_sdk_sqs::Client,
    eventbridge: Option<&aws_sdk_eventbridge::Client>,
    queue: &str,
    bus: Option<&str>,
) -> Result<String, String> {
    let url = sqs
        .create_queue()
        .queue_name(queue)
        .send()
        .await
        .map_err(|e| format!("cannot create the SQS queue {queue}: {}", describe(&e)))?
        .queue_url
        .ok_or("SQS returned no queue URL")?;
    let (Some(eventbridge), Some(bus)) = (eventbridge, bus) else { return Ok(url) };
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| format!("cannot read the queue's ARN: {}", describe(&e)))?
        .attributes
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
        .ok_or("SQS returned no queue ARN")?;
    if bus != "default" {
        match eventbridge.create_event_bus().name(bus).send().await {
            Ok(_) => {}
            Err(e) if describe(&e).contains("ResourceAlreadyExists") => {}
            Err(e) => return Err(format!("cannot create the event bus {bus}: {}", describe(&e))),
        }
    }
    let rule = format!("{queue}-agenthost-events");
    eventbridge
        .put_rule()
        .name(&rule)
        .event_bus_name(bus)
        .event_pattern(r#"{"source":[{"prefix":"agenthost."}]}"#)
        .send()
        .await
        .map_err(|e| format!("cannot create the rule {rule}: {}", describe(&e)))?;
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("agenthost-queue")
        .arn(arn)
        .build()
        .map_err(|e| e.to_string())?;
    eventbridge
        .put_targets()
        .rule(&rule)
        .event_bus_name(bus)
        .targets(target)
        .send()
        .await
        .map_err(|e| format!("cannot point the rule {rule} at the queue: {}", describe(&e)))?;
    Ok(url)
}

#[cfg(test)]
mod ledger_tests {
    use super::*;

    fn event(id: &str) -> Envelope {
        Envelope {
            id: id.into(),
            tenant: "acme".into(),
            topic: "orders.created".into(),
            payload: String::new(),
            attributes: vec![],
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            run_id: "run-1".into(),
            source: "notify@0.1.0".into(),
            published_at: "2026-12-01T10:00:00Z".into(),
        }
    }

    /// Two dispatchers (two processes) on one ledger, a subscriber that
    /// counts its runs and fails when told to.
    fn process(
        ledger: Arc<dyn Ledger>,
        runs: Arc<std::sync::atomic::AtomicUsize>,
        fail: Arc<std::sync::atomic::AtomicBool>,
    ) -> Dispatcher {
        let dispatcher = Dispatcher::default();
        dispatcher.set_ledger(ledger);
        let handler: Handler = Arc::new(move |_event: Envelope| {
            let (runs, fail) = (runs.clone(), fail.clone());
            Box::pin(async move {
                runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if fail.load(std::sync::atomic::Ordering::SeqCst) { Err("down".to_owned()) } else { Ok(()) }
            })
        });
        dispatcher.subscribe(Subscription {
            tenant: "acme".into(),
            topic: crate::governance::names::Patterns(vec!["orders.*".into()]),
            subscriber: "orders.*>recorder".into(),
            handler,
        });
        dispatcher
    }

    #[tokio::test]
    async fn a_delivery_runs_once_across_processes_and_again_after_a_failure() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let store: Arc<dyn crate::brokers::memory::MemoryStore> =
            Arc::new(crate::brokers::memory::InProcessMemory::default());
        let ledger: Arc<dyn Ledger> = Arc::new(MemoryLedger { store: store.clone() });
        let (runs, fail) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(true)));
        let one = process(ledger.clone(), runs.clone(), fail.clone());
        let two = process(ledger.clone(), runs.clone(), fail.clone());

        // A failed run gives its claim back: the redelivery runs it again.
        assert!(one.deliver(event("e1")).await.is_err());
        fail.store(false, Ordering::SeqCst);
        assert_eq!(two.deliver(event("e1")).await, Ok(1));
        // Done: neither process runs it again.
        assert_eq!(one.deliver(event("e1")).await, Ok(0));
        assert_eq!(two.deliver(event("e1")).await, Ok(0));
        assert_eq!(runs.load(Ordering::SeqCst), 2);

        // Claimed and running elsewhere: this delivery fails, to come back later.
        let claim = ledger.claim("acme", "orders.*>recorder/e2").await.unwrap();
        assert!(matches!(claim, Claim::Claimed(_)));
        assert!(one.deliver(event("e2")).await.unwrap_err().contains("elsewhere"));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // The ledger lives where no component can name it (a guest's
        // namespace is `[A-Za-z0-9._-]`, checked before any grant).
        assert!(!LEDGER_NAMESPACE.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)));
    }
}

#[cfg(test)]
mod retry_tests {
    use super::retry_after;

    #[test]
    fn a_failing_message_comes_back_ever_more_slowly_up_to_a_quarter_hour() {
        let waits: Vec<i32> = (1..=12).map(retry_after).collect();
        assert_eq!(&waits[..5], &[1, 2, 4, 8, 16]);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
        assert_eq!(retry_after(11), 900);
        assert_eq!(retry_after(u32::MAX), 900);
        assert_eq!(retry_after(0), 1, "a count SQS did not send is a first receive");
    }
}
