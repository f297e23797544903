//! Events: a tool publishes, a subscribed agent runs in the publisher's
//! trace — in process, through SQS and through EventBridge (a rule to SQS),
//! with the real SDK clients against moto; a message delivered twice runs
//! its subscriber once.

use std::sync::Arc;
use std::time::Duration;

use agenthost::audit::query::{self, Filter};
use agenthost::audit::{AuditLog, verify};
use agenthost::brokers::events::{self, EventBridgeBus, EventBus, SqsBus};
use agenthost::brokers::memory::{InProcessMemory, MemoryStore, Scope};
use agenthost::{Host, HostConfig, LoadOptions};
use serde_json::{Value, json};

use crate::common;

struct Setup {
    host: Host,
    memory: Arc<InProcessMemory>,
    audit: Arc<AuditLog>,
    _dir: tempfile::TempDir,
}

async fn setup(events: Option<Arc<dyn EventBus>>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let memory = Arc::new(InProcessMemory::default());
    let audit = AuditLog::open(
        dir.path(),
        Default::default(),
        agenthost::governance::KeyPair::from_seed([7; 32]),
        Vec::new(),
    )
    .unwrap();
    let host = Host::new(HostConfig {
        engine: common::engine_config(),
        memory: Some(memory.clone()),
        audit: Some(audit.clone()),
        events,
        ..HostConfig::default()
    })
    .unwrap();
    let recorder =
        host.load(&common::bytes(agenthost_artifacts::EVENT_RECORDER), LoadOptions::default()).await.unwrap();
    host.subscribe("orders.*", recorder).unwrap();
    Setup { host, memory, audit, _dir: dir }
}

async fn publish(host: &Host, topic: &str, message: &str) -> String {
    let notify =
        host.load(&common::bytes(agenthost_artifacts::NOTIFY), LoadOptions::default()).await.unwrap();
    let out = host.invoke_tool(&notify, &json!({ "topic": topic, "message": message })).await.unwrap();
    out["event_id"].as_str().unwrap().to_owned()
}

/// The record the subscriber wrote for `id`, waiting for the delivery.
async fn recorded(memory: &InProcessMemory, tenant: &str, id: &str) -> Value {
    let scope = Scope { tenant, namespace: "events" };
    for _ in 0..200 {
        if let Some(record) = memory.get(scope, id).await.unwrap() {
            return serde_json::from_slice(&record.value).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("event {id} was never delivered to its subscriber");
}

/// The publisher's tool call and the subscriber's run share the trace.
fn check_trace(audit: &AuditLog, id: &str, recorded: &Value) {
    let streams = verify::load_dir(audit.root()).unwrap();
    let publish = query::query(&streams, &Filter { kind: Some("event_publish".into()), ..Filter::default() });
    let publish =
        publish.iter().find(|f| f.record["what"]["event_id"] == id).expect("the publish is audited");
    assert_eq!(publish.record["outcome"], "published");
    assert_eq!(
        publish.record["trace_id"], recorded["trace_id"],
        "the subscriber runs in the publisher's trace"
    );
    let runs: Vec<_> = query::query(
        &streams,
        &Filter {
            trace_id: publish.record["trace_id"].as_str().map(str::to_owned),
            kind: Some("tool_call".into()),
            ..Filter::default()
        },
    )
    .into_iter()
    .filter(|f| f.record["agent"].as_str().is_some_and(|a| a.starts_with("event-recorder@")))
    .collect();
    assert_eq!(runs.len(), 1, "the subscriber ran once");
    assert_ne!(runs[0].record["run_id"], publish.record["run_id"], "in a run of its own");
    assert_eq!(
        runs[0].record["principal"].as_str(),
        Some(format!("event:notify@{}", env!("CARGO_PKG_VERSION")).as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_in_process_event_runs_its_subscriber_in_the_publishers_trace() {
    let s = setup(None).await;
    let id = publish(&s.host, "orders.created", "order 17").await;
    let record = recorded(&s.memory, "default", &id).await;
    assert_eq!(record["topic"], "orders.created");
    assert_eq!(record["payload"], json!({ "message": "order 17" }));
    assert_eq!(record["attributes"], json!({ "kind": "notice" }));
    // A topic nobody subscribed to reaches no one.
    let other = publish(&s.host, "billing.closed", "x").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(s.memory.get(Scope { tenant: "default", namespace: "events" }, &other).await.unwrap().is_none());
    // The subscriber's own records are in the trail, in the publisher's trace.
    s.audit.close().unwrap();
    check_trace(&s.audit, &id, &record);
}

async fn queue(config: &aws_config::SdkConfig, bus: Option<&str>) -> (aws_sdk_sqs::Client, String) {
    let sqs = aws_sdk_sqs::Client::new(config);
    let eventbridge = aws_sdk_eventbridge::Client::new(config);
    let name = format!("events-{:08x}", rand::random::<u32>());
    let url = events::bootstrap(&sqs, Some(&eventbridge), &name, bus).await.unwrap();
    (sqs, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn sqs_delivers_at_least_once_and_a_duplicate_runs_once() {
    let Some(config) = common::aws::moto().await else { return };
    let (sqs, url) = queue(&config, None).await;
    let s = setup(Some(Arc::new(SqsBus::new(sqs.clone(), url.clone())))).await;
    let server = s.host.serve_sqs(sqs.clone(), url.clone());
    let id = publish(&s.host, "orders.created", "order 18").await;
    let record = recorded(&s.memory, "default", &id).await;
    assert_eq!(record["payload"], json!({ "message": "order 18" }));

    // The same event again, as SQS may deliver it: the subscriber is not run twice.
    let envelope = events::Envelope {
        id: id.clone(),
        tenant: "default".into(),
        topic: "orders.created".into(),
        payload: events::Envelope::encode_payload(br#"{"message":"order 18"}"#),
        attributes: vec![],
        trace_id: record["trace_id"].as_str().unwrap().to_owned(),
        run_id: "run-dup".into(),
        source: "notify@0.1.0".into(),
        published_at: "2026-11-26T00:00:00Z".into(),
    };
    sqs.send_message()
        .queue_url(&url)
        .message_body(serde_json::to_string(&envelope).unwrap())
        .send()
        .await
        .unwrap();
    // Wait until the queue is drained (the duplicate was received and deleted).
    for _ in 0..100 {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        let count = |name| {
            attrs.attributes().and_then(|a| a.get(&name)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(1)
        };
        if count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages) == 0
            && count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible) == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.abort();
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.audit.close().unwrap();
    check_trace(&s.audit, &id, &record);
}

#[tokio::test(flavor = "multi_thread")]
async fn eventbridge_events_reach_subscribers_through_a_rule_to_sqs() {
    let Some(config) = common::aws::moto().await else { return };
    let bus = format!("bus-{:08x}", rand::random::<u32>());
    let (sqs, url) = queue(&config, Some(&bus)).await;
    let eventbridge = aws_sdk_eventbridge::Client::new(&config);
    let s = setup(Some(Arc::new(EventBridgeBus::new(eventbridge, bus)))).await;
    let server = s.host.serve_sqs(sqs, url);
    let id = publish(&s.host, "orders.shipped", "order 19").await;
    let record = recorded(&s.memory, "default", &id).await;
    assert_eq!(record["topic"], "orders.shipped");
    assert_eq!(record["payload"], json!({ "message": "order 19" }));
    server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publish_to_a_queue_that_is_down_is_unavailable() {
    let config = common::aws::config_for("http://127.0.0.1:9").await;
    let bus = SqsBus::new(aws_sdk_sqs::Client::new(&config), "http://127.0.0.1:9/000000000000/q");
    let host = Host::new(HostConfig {
        engine: common::engine_config(),
        events: Some(Arc::new(bus)),
        ..HostConfig::default()
    })
    .unwrap();
    let notify =
        host.load(&common::bytes(agenthost_artifacts::NOTIFY), LoadOptions::default()).await.unwrap();
    let err =
        host.invoke_tool(&notify, &json!({ "topic": "orders.created", "message": "x" })).await.unwrap_err();
    assert_eq!(err.kind.to_string(), "unavailable", "{err:?}");
}

/// A message another process is handling comes back only once that one has
/// had its time (the poller's visibility), not every few seconds as a
/// failed one does: a duplicate delivery does not pile up receives and
/// reach the dead-letter queue while its first copy is still running.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_busy_elsewhere_waits_while_a_failed_one_comes_back_soon() {
    let Some(config) = common::aws::moto().await else { return };
    let client = aws_sdk_sqs::Client::new(&config);
    let name = format!("busy-{:08x}", rand::random::<u32>());
    let url = client.create_queue().queue_name(&name).send().await.unwrap().queue_url.unwrap();
    for body in ["busy", "fails"] {
        client.send_message().queue_url(&url).message_body(body).send().await.unwrap();
    }
    let seen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let handler: events::MessageHandler = {
        let seen = seen.clone();
        Arc::new(move |_id: String, body: String| {
            seen.lock().unwrap().push(body.clone());
            Box::pin(async move {
                Err(if body == "busy" {
                    events::NotHandled::Busy("handled elsewhere".to_owned())
                } else {
                    events::NotHandled::Failed("it failed".to_owned())
                })
            })
        })
    };
    let poller = events::poll_sqs(client, url, 60, handler);
    tokio::time::sleep(Duration::from_secs(6)).await;
    poller.stop(Duration::from_secs(5)).await;
    let seen = seen.lock().unwrap().clone();
    let count = |body: &str| seen.iter().filter(|b| *b == body).count();
    assert_eq!(count("busy"), 1, "{seen:?}");
    assert!(count("fails") >= 2, "a failed message should come back after a second: {seen:?}");
}
