//! The host calls of `memory`, `events` and `tools`, driven directly on an
//! [`InstanceState`] whose [`Services`] are in-process fakes: no engine, no
//! component, no backend. Each fake records what reached it, so a test can
//! say both what the guest got and that a refused call never got through.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::services::BoxFuture;
use super::{CallContext, Capability, Grant, InstanceState, Models, Services, ToolRunner, World};
use crate::bindings::events::Host as _;
use crate::bindings::memory::{Classification, Governance as WitGovernance, Host as _, PutOptions};
use crate::bindings::tools::Host as _;
use crate::bindings::types::{Error, RiskTier, ToolSpec, TraceContext};
use crate::brokers::events::{Envelope, EventBus, EventError};
use crate::brokers::memory::{MemoryError, MemoryStore, Page, Put, Record, Scope};
use crate::brokers::model::BuiltinModel;
use crate::error::{ComponentRef, ErrorKind, InvokeError};
use crate::governance::policy::PolicyEngine;
use crate::governance::{Names, Patterns};
use crate::limits::{LimitTracker, Limits};
use crate::telemetry::Metrics;

const TENANT: &str = "acme";

/// Memory that keeps records by (tenant, namespace, key) and counts calls;
/// `stall` makes every call wait forever.
#[derive(Default)]
struct FakeMemory {
    records: Mutex<BTreeMap<(String, String, String), Vec<u8>>>,
    calls: AtomicU64,
    stall: bool,
}

impl FakeMemory {
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    fn enter<'a, T: Send + 'a>(&'a self, answer: T) -> BoxFuture<'a, T> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let stall = self.stall;
        Box::pin(async move {
            if stall {
                std::future::pending::<()>().await;
            }
            answer
        })
    }
}

impl MemoryStore for FakeMemory {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn get<'a>(
        &'a self,
        scope: Scope<'a>,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Record>, MemoryError>> {
        let id = (scope.tenant.to_owned(), scope.namespace.to_owned(), key.to_owned());
        let found = self.records.lock().unwrap().get(&id).cloned();
        self.enter(Ok(found.map(|value| Record {
            key: key.to_owned(),
            value,
            version: 1,
            expires_at: None,
            meta: crate::brokers::memory::RecordMeta {
                classification: crate::governance::packs::Classification::Internal,
                retention_days: None,
                writer: "fake".into(),
                run_id: "fake".into(),
                written_at: 0,
            },
        })))
    }

    fn put<'a>(
        &'a self,
        scope: Scope<'a>,
        key: &'a str,
        put: Put,
    ) -> BoxFuture<'a, Result<u64, MemoryError>> {
        let id = (scope.tenant.to_owned(), scope.namespace.to_owned(), key.to_owned());
        if !self.stall {
            self.records.lock().unwrap().insert(id, put.value);
        }
        self.enter(Ok(1))
    }

    fn delete<'a>(
        &'a self,
        scope: Scope<'a>,
        key: &'a str,
        _expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<bool, MemoryError>> {
        let id = (scope.tenant.to_owned(), scope.namespace.to_owned(), key.to_owned());
        let existed = self.records.lock().unwrap().remove(&id).is_some();
        self.enter(Ok(existed))
    }

    fn list<'a>(
        &'a self,
        _scope: Scope<'a>,
        _prefix: &'a str,
        _cursor: Option<&'a str>,
        _limit: u32,
    ) -> BoxFuture<'a, Result<Page, MemoryError>> {
        self.enter(Ok(Page { keys: Vec::new(), next_cursor: None }))
    }
}

/// A bus that keeps what it was given, or refuses it all as unavailable.
#[derive(Default)]
struct FakeBus {
    published: Mutex<Vec<Envelope>>,
    down: bool,
}

impl EventBus for FakeBus {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn publish<'a>(&'a self, event: &'a Envelope) -> BoxFuture<'a, Result<(), EventError>> {
        Box::pin(async move {
            if self.down {
                return Err(EventError::Unavailable("the fake bus is down".into()));
            }
            self.published.lock().unwrap().push(event.clone());
            Ok(())
        })
    }
}

/// Tools that echo their input, named `echo` and `secret`; `fail` fails.
#[derive(Default)]
struct FakeTools {
    /// (tool, input, caller's tenant, caller's run) of every invocation.
    invoked: Mutex<Vec<(String, Value, String, String)>>,
}

impl ToolRunner for FakeTools {
    fn specs(&self, caller: &CallContext) -> Vec<ToolSpec> {
        ["echo", "secret", "fail"]
            .into_iter()
            .filter(|name| caller.grant.tools.allows(name))
            .map(|name| ToolSpec {
                name: name.to_owned(),
                version: "1.0.0".into(),
                description: String::new(),
                input_schema: "{}".into(),
                risk_tier: RiskTier::Read,
            })
            .collect()
    }

    fn invoke<'a>(
        &'a self,
        name: &'a str,
        input: &'a Value,
        caller: &'a CallContext,
    ) -> BoxFuture<'a, Result<Value, InvokeError>> {
        self.invoked.lock().unwrap().push((
            name.to_owned(),
            input.clone(),
            caller.tenant.id().to_owned(),
            caller.trace.run_id.clone(),
        ));
        Box::pin(async move {
            if name == "fail" {
                return Err(InvokeError::new(ErrorKind::NotFound, "no such thing"));
            }
            Ok(json!({ "echo": input }))
        })
    }
}

struct Fakes {
    memory: Arc<FakeMemory>,
    bus: Arc<FakeBus>,
    tools: Arc<FakeTools>,
}

impl Fakes {
    fn new() -> Self {
        Fakes { memory: Arc::default(), bus: Arc::default(), tools: Arc::default() }
    }

    fn services(&self) -> Arc<Services> {
        Arc::new(Services {
            memory: self.memory.clone(),
            events: self.bus.clone(),
            models: Models::new(Arc::new(BuiltinModel), BTreeMap::new()),
            tools: self.tools.clone(),
            tls: super::http_send::tls_config(&[]).unwrap(),
        })
    }

    /// An instance of an agent of tenant `acme` with `grant`, calling
    /// within `deadline`.
    fn instance(&self, grant: Grant, deadline: Duration) -> InstanceState {
        let governance = crate::governance::Governance::development(TENANT, None).unwrap();
        let tenant = governance.tenant(TENANT).unwrap().clone();
        let call = Arc::new(CallContext {
            trace: TraceContext {
                trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
                run_id: "run-1".into(),
                tenant_id: TENANT.into(),
                agent_id: "tester@1.0.0".into(),
            },
            component: Arc::new(ComponentRef {
                name: "tester".into(),
                version: "1.0.0".into(),
                digest: "sha256:00".into(),
            }),
            grant: Arc::new(grant),
            tenant,
            policy: PolicyEngine::permissive().unwrap(),
            prompts: Arc::from([]),
            requested_by: "alice".into(),
            requested_by_key: None,
            approvals: Arc::from([]),
            deadline: Instant::now() + deadline,
            depth: 0,
            transcript: None,
            audit: None,
            metrics: Arc::new(Metrics::new()),
            describing: false,
            violations: Mutex::default(),
            host_calls: AtomicU64::new(0),
            host_call_budget: 100,
            issued_approvals: Arc::default(),
            mounts: Arc::from([]),
        });
        InstanceState::new(self.services(), call, LimitTracker::new(&Limits::default()))
    }
}

fn agent() -> Grant {
    Grant::world(World::Agent)
}

fn put_options(classification: Classification) -> PutOptions {
    PutOptions {
        expected_version: None,
        ttl_seconds: None,
        governance: WitGovernance { classification, retention_days: Some(30) },
    }
}

#[tokio::test]
async fn memory_is_kept_under_the_callers_tenant_whatever_the_guest_names() {
    let fakes = Fakes::new();
    let mut state = fakes.instance(agent(), Duration::from_secs(5));
    let version = state.put("notes".into(), "k".into(), b"v".to_vec(), put_options(Classification::Internal));
    assert_eq!(version.await.unwrap().unwrap(), 1);
    let stored: Vec<_> = fakes.memory.records.lock().unwrap().keys().cloned().collect();
    assert_eq!(stored, [(TENANT.to_owned(), "notes".to_owned(), "k".to_owned())]);
    let entry = state.get("notes".into(), "k".into()).await.unwrap().unwrap().unwrap();
    assert_eq!(entry.value, b"v");
}

#[tokio::test]
async fn a_refused_memory_call_never_reaches_the_store() {
    let fakes = Fakes::new();
    let mut narrow = agent();
    narrow.memory_namespaces =
        Names::all().and("tenant acme (grants.memory)", Patterns::from_iter(["notes"]));
    let mut state = fakes.instance(narrow, Duration::from_secs(5));
    let Err(Error::Denied(why)) = state.get("payroll".into(), "k".into()).await.unwrap() else {
        panic!("an ungranted namespace was not denied");
    };
    assert!(why.contains("payroll") && why.contains("grants.memory"), "{why}");
    let Err(Error::InvalidInput(why)) = state.get("../other".into(), "k".into()).await.unwrap() else {
        panic!("a malformed namespace was not refused");
    };
    assert!(why.contains("../other"), "{why}");

    let mut reader = agent();
    reader.memory_write = false;
    let mut state = fakes.instance(reader, Duration::from_secs(5));
    let put = state.put("notes".into(), "k".into(), b"v".to_vec(), put_options(Classification::Public));
    let Err(Error::Denied(why)) = put.await.unwrap() else { panic!("a read tier wrote memory") };
    assert!(why.contains("read-tier"), "{why}");

    let mut state = fakes.instance(agent().without(Capability::Memory), Duration::from_secs(5));
    let Err(Error::Denied(why)) = state.get("notes".into(), "k".into()).await.unwrap() else {
        panic!("memory without the grant was not denied");
    };
    assert!(why.contains("`memory`"), "{why}");
    assert_eq!(fakes.memory.calls(), 0, "a refused call reached the store");
}

#[tokio::test]
async fn a_memory_store_that_hangs_costs_the_guest_only_its_deadline() {
    let fakes =
        Fakes { memory: Arc::new(FakeMemory { stall: true, ..FakeMemory::default() }), ..Fakes::new() };
    let mut state = fakes.instance(agent(), Duration::from_millis(50));
    let Err(Error::LimitExceeded(why)) = state.get("notes".into(), "k".into()).await.unwrap() else {
        panic!("a hung store was not cut off at the deadline");
    };
    assert!(why.contains("deadline") && why.contains("memory backend"), "{why}");
    assert_eq!(fakes.memory.calls(), 1);
}

#[tokio::test]
async fn an_event_carries_the_callers_tenant_and_trace_not_the_guests_word() {
    let fakes = Fakes::new();
    let mut state = fakes.instance(agent(), Duration::from_secs(5));
    let attributes = vec![("tenant".to_owned(), "globex".to_owned())];
    let id = state.publish("orders.created".into(), b"{}".to_vec(), attributes).await.unwrap().unwrap();
    let published = fakes.bus.published.lock().unwrap().clone();
    assert_eq!(published.len(), 1);
    let event = &published[0];
    assert_eq!(event.id, id);
    assert_eq!((event.tenant.as_str(), event.topic.as_str()), (TENANT, "orders.created"));
    assert_eq!((event.run_id.as_str(), event.source.as_str()), ("run-1", "tester@1.0.0"));
    assert_eq!(event.payload_bytes(), b"{}");
}

#[tokio::test]
async fn a_refused_or_failed_publish_says_why() {
    let fakes = Fakes::new();
    let mut narrow = agent();
    narrow.topics = Names::all().and("tenant acme (grants.topics)", Patterns::from_iter(["orders.*"]));
    let mut state = fakes.instance(narrow, Duration::from_secs(5));
    let Err(Error::Denied(why)) = state.publish("payroll.run".into(), Vec::new(), Vec::new()).await.unwrap()
    else {
        panic!("an ungranted topic was not denied");
    };
    assert!(why.contains("payroll.run") && why.contains("grants.topics"), "{why}");
    let too_many = (0..=super::events::MAX_ATTRIBUTES).map(|i| (format!("a{i}"), String::new())).collect();
    let Err(Error::LimitExceeded(_)) = state.publish("orders.x".into(), Vec::new(), too_many).await.unwrap()
    else {
        panic!("too many attributes were not refused");
    };
    assert!(fakes.bus.published.lock().unwrap().is_empty(), "a refused event reached the bus");

    let down = Fakes { bus: Arc::new(FakeBus { down: true, ..FakeBus::default() }), ..Fakes::new() };
    let mut state = down.instance(agent(), Duration::from_secs(5));
    let Err(Error::Unavailable(why)) =
        state.publish("orders.x".into(), Vec::new(), Vec::new()).await.unwrap()
    else {
        panic!("a bus that is down did not answer unavailable");
    };
    assert!(why.contains("fake bus is down"), "{why}");
}

#[tokio::test]
async fn tools_list_and_invoke_go_through_the_runner_within_the_grant() {
    let fakes = Fakes::new();
    let mut narrow = agent();
    narrow.tools = Names::all().and("tenant acme (grants.tools)", Patterns::from_iter(["echo", "fail"]));
    let mut state = fakes.instance(narrow, Duration::from_secs(5));
    let listed: Vec<String> = crate::bindings::tools::Host::list(&mut state)
        .await
        .unwrap()
        .into_iter()
        .map(|spec| spec.name)
        .collect();
    assert_eq!(listed, ["echo", "fail"]);

    let output = state.invoke("echo".into(), r#"{"n":1}"#.into()).await.unwrap().unwrap();
    assert_eq!(serde_json::from_str::<Value>(&output).unwrap(), json!({ "echo": { "n": 1 } }));
    let Err(Error::NotFound(why)) = state.invoke("fail".into(), "{}".into()).await.unwrap() else {
        panic!("the runner's error did not reach the guest as its kind");
    };
    assert!(why.contains("no such thing"), "{why}");
    let invoked = fakes.tools.invoked.lock().unwrap().clone();
    assert_eq!(invoked[0], ("echo".to_owned(), json!({ "n": 1 }), TENANT.to_owned(), "run-1".to_owned()));

    let Err(Error::Denied(why)) = state.invoke("secret".into(), "{}".into()).await.unwrap() else {
        panic!("an ungranted tool was not denied");
    };
    assert!(why.contains("secret") && why.contains("grants.tools"), "{why}");
    let Err(Error::InvalidInput(why)) = state.invoke("echo".into(), "{not json".into()).await.unwrap() else {
        panic!("input that is not JSON was handed on");
    };
    assert!(why.contains("not JSON"), "{why}");
    assert_eq!(fakes.tools.invoked.lock().unwrap().len(), 2, "a refused call reached the runner");

    let mut state = fakes.instance(agent().without(Capability::Tools), Duration::from_secs(5));
    assert!(
        crate::bindings::tools::Host::list(&mut state).await.unwrap().is_empty(),
        "a component without `tools` saw the tools"
    );
}
