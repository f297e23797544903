//! One behaviour suite for every memory backend: in-process, embedded
//! (redb) and DynamoDB (the real SDK against moto, started by
//! `scripts/test`). Then a guest writing through the host, and a backend
//! that is down.

use std::sync::Arc;
use std::time::Duration;

use agenthost::brokers::memory::{
    Classification, DynamoMemory, EmbeddedMemory, InProcessMemory, MemoryError, MemoryStore, Put, RecordMeta,
    Scope, create_table,
};
use agenthost::{Host, HostConfig, LoadOptions};
use serde_json::json;

use crate::common::{self, aws};

const ACME: Scope<'static> = Scope { tenant: "acme", namespace: "notes" };

fn meta(classification: Classification) -> RecordMeta {
    RecordMeta {
        classification,
        retention_days: Some(30),
        writer: "kv-note@1.0.0".into(),
        run_id: "run-1".into(),
        written_at: 1_700_000_000,
    }
}

fn put(value: &str, expected: Option<u64>) -> Put {
    Put {
        value: value.as_bytes().to_vec(),
        expected_version: expected,
        ttl_seconds: None,
        meta: meta(Classification::Internal),
    }
}

/// What every backend must do alike.
async fn behaviour(store: Arc<dyn MemoryStore>) {
    let name = store.name();
    assert_eq!(store.get(ACME, "missing").await.unwrap(), None, "{name}");

    // Versions, values and governance metadata.
    assert_eq!(store.put(ACME, "a", put("one", None)).await.unwrap(), 1, "{name}");
    assert_eq!(store.put(ACME, "a", put("two", None)).await.unwrap(), 2, "{name}");
    let record = store.get(ACME, "a").await.unwrap().unwrap();
    assert_eq!((record.value.as_slice(), record.version), (&b"two"[..], 2), "{name}");
    assert_eq!(record.meta, meta(Classification::Internal), "{name}");
    assert_eq!(record.expires_at, None, "{name}");

    // Compare-and-set.
    assert_eq!(store.put(ACME, "a", put("three", Some(2))).await.unwrap(), 3, "{name}");
    let conflict = store.put(ACME, "a", put("stale", Some(2))).await.unwrap_err();
    assert_eq!(conflict, MemoryError::Conflict { key: "a".into(), expected: 2, stored: 3 }, "{name}");
    assert_eq!(store.get(ACME, "a").await.unwrap().unwrap().value, b"three", "{name}: a failed CAS wrote");
    let exists = store.put(ACME, "a", put("create", Some(0))).await.unwrap_err();
    assert!(matches!(exists, MemoryError::Conflict { expected: 0, stored: 3, .. }), "{name}: {exists:?}");
    assert_eq!(store.put(ACME, "b", put("new", Some(0))).await.unwrap(), 1, "{name}");

    // Delete, conditional and not.
    let wrong = store.delete(ACME, "b", Some(7)).await.unwrap_err();
    assert!(matches!(wrong, MemoryError::Conflict { expected: 7, stored: 1, .. }), "{name}: {wrong:?}");
    assert!(store.delete(ACME, "b", Some(1)).await.unwrap(), "{name}");
    assert_eq!(store.get(ACME, "b").await.unwrap(), None, "{name}");
    assert!(!store.delete(ACME, "b", None).await.unwrap(), "{name}: deleting twice");

    // Tenants and namespaces never see each other.
    let globex = Scope { tenant: "globex", namespace: "notes" };
    let other_ns = Scope { tenant: "acme", namespace: "drafts" };
    assert_eq!(store.get(globex, "a").await.unwrap(), None, "{name}: another tenant read acme's record");
    assert_eq!(store.get(other_ns, "a").await.unwrap(), None, "{name}: another namespace read it");
    assert_eq!(store.put(globex, "a", put("globex", None)).await.unwrap(), 1, "{name}");
    assert_eq!(store.get(ACME, "a").await.unwrap().unwrap().value, b"three", "{name}");

    // Listing by prefix, in pages, in order.
    for i in 0..25 {
        store.put(ACME, &format!("list/{i:02}"), put("x", None)).await.unwrap();
    }
    store.put(ACME, "lisz", put("x", None)).await.unwrap();
    store.put(globex, "list/99", put("x", None)).await.unwrap();
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store.list(ACME, "list/", cursor.as_deref(), 10).await.unwrap();
        assert!(page.keys.len() <= 10, "{name}");
        keys.extend(page.keys);
        pages += 1;
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("list/{i:02}")).collect();
    assert_eq!(keys, expected, "{name}");
    assert_eq!(pages, 3, "{name}");

    // TTL: gone once expired, for get, list and compare-and-set. Expiry is
    // kept in whole seconds, so a TTL of 2 s leaves at least 1 s to read.
    let mut short = put("soon gone", None);
    short.ttl_seconds = Some(2);
    store.put(ACME, "ttl/x", short).await.unwrap();
    let live = store.get(ACME, "ttl/x").await.unwrap().unwrap();
    assert!(live.expires_at.is_some(), "{name}");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(store.get(ACME, "ttl/x").await.unwrap(), None, "{name}: expired record read");
    assert!(store.list(ACME, "ttl/", None, 10).await.unwrap().keys.is_empty(), "{name}");
    assert_eq!(store.put(ACME, "ttl/x", put("again", Some(0))).await.unwrap(), 1, "{name}");

    // Bad input names what is wrong.
    let empty = store.put(ACME, "", put("x", None)).await.unwrap_err();
    assert!(matches!(empty, MemoryError::Invalid(ref m) if m.contains("key")), "{name}: {empty:?}");
    let mut big = put("", None);
    big.value = vec![0; 300 * 1024];
    let too_big = store.put(ACME, "big", big).await.unwrap_err();
    assert!(matches!(too_big, MemoryError::Invalid(ref m) if m.contains("bytes")), "{name}: {too_big:?}");
}

#[tokio::test]
async fn the_in_process_backend_behaves() {
    behaviour(Arc::new(InProcessMemory::default())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_embedded_backend_behaves_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    behaviour(Arc::new(EmbeddedMemory::open(dir.path(), true).unwrap())).await;
    // Everything is still there after the store is reopened.
    let store = EmbeddedMemory::open(dir.path(), true).unwrap();
    let record = store.get(ACME, "a").await.unwrap().unwrap();
    assert_eq!((record.value.as_slice(), record.version), (&b"three"[..], 3));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dynamodb_backend_behaves() {
    let Some(config) = aws::moto().await else { return };
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = format!("memory-{}", rand_suffix());
    assert!(create_table(&client, &table).await.unwrap(), "the table is new");
    assert!(!create_table(&client, &table).await.unwrap(), "bootstrap twice is fine");
    let ttl = client.describe_time_to_live().table_name(&table).send().await.unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
    behaviour(Arc::new(DynamoMemory::new(client, table))).await;
}

fn rand_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_write_is_stored_with_its_writer_and_run_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let memory: Arc<dyn MemoryStore> = Arc::new(EmbeddedMemory::open(dir.path(), true).unwrap());
    let audit = agenthost::audit::AuditLog::open(
        &dir.path().join("audit"),
        Default::default(),
        agenthost::governance::KeyPair::from_seed([7; 32]),
        Vec::new(),
    )
    .unwrap();
    let host = Host::new(HostConfig {
        engine: common::engine_config(),
        memory: Some(memory.clone()),
        audit: Some(audit.clone()),
        ..HostConfig::default()
    })
    .unwrap();
    let tool = host.load(&common::bytes(agenthost_artifacts::KV_NOTE), LoadOptions::default()).await.unwrap();
    let out = host.invoke_tool(&tool, &json!({ "key": "k1", "note": "hello" })).await.unwrap();
    assert_eq!(out["version"], 1);
    let scope = Scope { tenant: tool.tenant(), namespace: "notes" };
    let record = memory.get(scope, "k1").await.unwrap().unwrap();
    assert_eq!(record.value, b"hello");
    assert_eq!(record.meta.writer, format!("kv-note@{}", tool.id().version));
    assert_eq!(record.meta.classification, Classification::Internal);
    assert!(!record.meta.run_id.is_empty());

    // The write is in the audit trail: names and digests, not the note.
    audit.close().unwrap();
    let streams = agenthost::audit::verify::load_dir(audit.root()).unwrap();
    let filter = agenthost::audit::query::Filter { kind: Some("memory_write".into()), ..Default::default() };
    let writes = agenthost::audit::query::query(&streams, &filter);
    assert_eq!(writes.len(), 1);
    let what = &writes[0].record["what"];
    assert_eq!(
        (what["namespace"].as_str(), what["key"].as_str(), what["version"].as_u64()),
        (Some("notes"), Some("k1"), Some(1))
    );
    assert_eq!(writes[0].record["run_id"].as_str(), Some(record.meta.run_id.as_str()));
    assert!(!writes[0].record.to_string().contains("hello"), "the value leaked into the audit trail");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_that_is_down_answers_unavailable_and_the_host_goes_on() {
    // A port nothing listens on: connections are refused at once.
    let config = aws::config_for("http://127.0.0.1:9").await;
    let memory: Arc<dyn MemoryStore> =
        Arc::new(DynamoMemory::new(aws_sdk_dynamodb::Client::new(&config), "t"));
    let host = Host::new(HostConfig {
        engine: common::engine_config(),
        memory: Some(memory),
        ..HostConfig::default()
    })
    .unwrap();
    let tool = host.load(&common::bytes(agenthost_artifacts::KV_NOTE), LoadOptions::default()).await.unwrap();
    let started = std::time::Instant::now();
    let err = host.invoke_tool(&tool, &json!({ "key": "k1", "note": "hello" })).await.unwrap_err();
    assert_eq!(err.kind.to_string(), "unavailable", "{err:?}");
    assert!(err.message.contains("DynamoDB"), "{}", err.message);
    tracing::info!(elapsed = ?started.elapsed(), "unavailable answered");
    // The host still serves other calls.
    let calculator = common::load(&host, agenthost_artifacts::CALCULATOR).await;
    let out = host.invoke_tool(&calculator, &json!({ "expression": "1 + 2" })).await.unwrap();
    assert_eq!(out["value"], 3.0);
}
