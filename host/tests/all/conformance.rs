//! Conformance: the same signed components and the same inputs through the
//! three ways agenthost runs them — the library in-process (`Host`, built
//! from the same config with the same backends), `agenthost serve` over
//! HTTP, and `agenthost lambda` driven through the Lambda Runtime API — give
//! the same answers and the same audit evidence.
//!
//! What may differ is named here, not hidden: ids and times (run and trace
//! ids, approval request ids, timestamps, durations) are normalised by
//! [`normalise`] before comparing; everything else must be equal, byte for
//! byte once serialised. The in-process leg has no HTTP status, so it is
//! the status of the problem it renders (`Problem::from(InvokeError)`, as
//! the server does).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use agenthost::audit::query::{Filter, query_dir};
use agenthost::backends::Backends;
use agenthost::governance::approvals::TokenClaims;
use agenthost::governance::{ApprovalToken, ComponentManifest, Governance, TenantConfig};
use agenthost::keys::KeyPair;
use agenthost::server::problem::Problem;
use agenthost::{CallOptions, Host, HostConfig, Limits, LoadOptions, LoadedComponent};
use agenthost_artifacts as artifacts;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::lambda::{Answer, Lambda, http_v2, sqs};
use super::serve::Served;

/// Each call's budget on every host of the suite: short, so the timeout
/// scenario ends soon; ample for everything else.
const LIMITS: &str = "[limits]\ntimeout_ms = 1500\nfuel = 1000000000000\n";

const GRANTS: &str = "interfaces = [\"log\", \"model\", \"memory\", \"tools\"]\nmemory_namespaces = [\"refunds\", \"events\"]\ntopics = [\"orders.*\"]\ntools = [\"calculator\"]\nmodels = [\"*\"]\n";

const SUBSCRIPTION: &str =
    "[[server.subscriptions]]\ntenant = \"acme\"\ntopic = \"orders.*\"\nagent = \"event-recorder\"\n";

/// The components of the suite, as a publisher signs them.
struct Component {
    path: &'static str,
    name: &'static str,
    world: &'static str,
    /// The manifest after name, version and digest.
    head: String,
}

fn components() -> Vec<Component> {
    let tool = |path, name, tier: &str, requests: &str| Component {
        path,
        name,
        world: "tool",
        head: format!("world = \"tool\"\nrisk_tier = \"{tier}\"\n{requests}"),
    };
    vec![
        tool(artifacts::CALCULATOR, "calculator", "read", ""),
        tool(
            artifacts::REFUND,
            "refund",
            "write-high",
            "[requests]\ninterfaces = [\"log\", \"memory\"]\nmemory_namespaces = [\"refunds\"]\n",
        ),
        tool(
            artifacts::WIPE_TENANT_DATA,
            "wipe-tenant-data",
            "critical",
            "[requests]\ninterfaces = [\"log\", \"memory\"]\nmemory_namespaces = [\"refunds\"]\n",
        ),
        tool(artifacts::SPIN_FOREVER, "spin-forever", "read", ""),
        Component {
            path: artifacts::TRIAGE,
            name: "triage",
            world: "agent",
            head: "world = \"agent\"\n[requests]\ninterfaces = [\"log\", \"model\", \"tools\"]\ntools = [\"calculator\"]\nmodels = [\"*\"]\n".into(),
        },
        Component {
            path: artifacts::EVENT_RECORDER,
            name: "event-recorder",
            world: "agent",
            head: "world = \"agent\"\n[requests]\ninterfaces = [\"log\", \"memory\"]\nmemory_namespaces = [\"events\"]\n".into(),
        },
    ]
}

fn manifest_text(c: &Component) -> String {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(std::fs::read(c.path).unwrap())));
    format!("name = \"{}\"\nversion = \"0.1.0\"\ndigest = \"{digest}\"\n{}", c.name, c.head)
}

/// What a caller got: the HTTP status (for the in-process leg, its
/// problem's) and the JSON body.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    status: u16,
    body: Value,
}

/// The library, embedded: the host `serve` would build, from the same
/// config, with its own data directory; components loaded from the same
/// bytes and manifests.
struct Local {
    host: Host,
    backends: Backends,
    governance: Arc<Governance>,
    loaded: Vec<(String, Arc<LoadedComponent>)>,
    data: tempfile::TempDir,
}

impl Local {
    async fn start(config: &Path) -> Local {
        let data = tempfile::tempdir().unwrap();
        let governance = Arc::new(Governance::load(config, None, Some(data.path())).unwrap());
        let key = KeyPair::generate();
        let tenants: Vec<&TenantConfig> = governance.tenants().map(|t| &t.config).collect();
        let backends = Backends::open(governance.settings(), &tenants, data.path(), &key).await.unwrap();
        let limits = Limits::default().with_settings(&governance.settings().limits);
        let host = Host::new(backends.host_config(HostConfig {
            engine: super::common::engine_config(),
            limits,
            governance: Some(governance.clone()),
            request_key: Some(key),
            ..HostConfig::default()
        }))
        .unwrap();
        let mut loaded = Vec::new();
        for c in components() {
            let manifest = ComponentManifest::parse(&manifest_text(&c), c.name, config).unwrap();
            let options = LoadOptions {
                tenant: Some("acme".into()),
                manifest: Some(manifest),
                ..LoadOptions::default()
            };
            let component = host.load(&std::fs::read(c.path).unwrap(), options).await.unwrap();
            if c.world == "tool" {
                host.register_tool(component.clone()).unwrap();
            } else if c.name == "event-recorder" {
                host.subscribe("orders.*", component.clone()).unwrap();
            }
            loaded.push((c.name.to_owned(), component));
        }
        Local { host, backends, governance, loaded, data }
    }

    fn component(&self, name: &str) -> &Arc<LoadedComponent> {
        &self.loaded.iter().find(|(n, _)| n == name).unwrap().1
    }

    /// What `serve` answers for the same call: the call's body with the
    /// version that ran it and the alias that routed there, or its problem.
    async fn call(&self, world: &str, name: &str, request: &Value) -> Outcome {
        let component = self.component(name);
        let options = CallOptions {
            principal: Some("ursula".into()),
            approval_request: request["approval_request"].as_str().map(str::to_owned),
            ..CallOptions::default()
        };
        let input = &request["input"];
        let answered = if world == "tool" {
            self.host
                .invoke_tool_with(component, input, &options)
                .await
                .map(|output| json!({ "output": output }))
        } else {
            self.host
                .run_agent_with(component, input, &options)
                .await
                .map(|run| json!({ "output": run.output, "trace": run.trace }))
        };
        match answered {
            Ok(mut body) => {
                let id = component.id();
                body["component"] = json!({ "name": id.name, "version": id.version, "digest": id.digest });
                // A host has no aliases: named as the server names its
                // routing, by `stable`, or by the approval a re-submission
                // carries (which pins the version it was requested for).
                body["alias"] = json!(if options.approval_request.is_some() { "approval" } else { "stable" });
                Outcome { status: 200, body }
            }
            Err(e) => {
                let problem = Problem::from(e);
                Outcome { status: problem.status.as_u16(), body: problem.to_json() }
            }
        }
    }

    /// alice approves, as an embedder records it: her token, then its audit record.
    async fn approve(&self, id: &str, alice: &KeyPair) {
        let store = self.governance.approvals().unwrap();
        let request = store.get(id).await.unwrap();
        let token = ApprovalToken::sign(TokenClaims::for_request(&request, "alice", 600), alice).unwrap();
        let key_id = token.claims.key_id.clone();
        let tenant = self.governance.tenant("acme").unwrap();
        let request = store.record_token(id, token, &tenant.approvers["alice"], "").await.unwrap();
        let audit = self.backends.audit.as_ref().unwrap();
        audit.append_owned(request.decision_event("alice", &key_id, "approved", "")).unwrap();
    }

    /// Each message as `take_message` reads it; the ones that failed.
    async fn messages(&self, messages: &[(&str, String)]) -> Vec<String> {
        let mut failed = Vec::new();
        for (id, body) in messages {
            let delivered = match agenthost::brokers::events::envelope_of(body) {
                Ok(event) => self.host.deliver_event(event).await.map(|_| ()),
                Err(e) => Err(e),
            };
            if delivered.is_err() {
                failed.push((*id).to_owned());
            }
        }
        failed
    }
}

/// The HTTP path of a call.
fn path(world: &str, name: &str) -> String {
    match world {
        "tool" => format!("/v1/tenants/acme/tools/{name}:invoke"),
        _ => format!("/v1/tenants/acme/agents/{name}:run"),
    }
}

async fn over_http(served: &Served, token: &str, world: &str, name: &str, request: &Value) -> Outcome {
    let (status, body) =
        served.send(reqwest::Method::POST, &path(world, name), Some(token), Some(request.clone())).await;
    Outcome { status: status.as_u16(), body }
}

/// An HTTP API event to the function; its answer as an [`Outcome`].
async fn through_lambda(
    lambda: &Lambda,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Outcome {
    match lambda.invoke(http_v2(method, path, Some(token), body)).await {
        Answer::Response(r) => Outcome {
            status: u16::try_from(r["statusCode"].as_u64().unwrap()).unwrap(),
            body: serde_json::from_str(r["body"].as_str().unwrap_or("null")).unwrap(),
        },
        Answer::Error(e) => panic!("the function failed an HTTP event: {e}"),
    }
}

/// Approves through an HTTP surface (serve or the function): alice reads
/// the request, signs a token for it and presents it.
async fn approve_over<F, Fut>(send: F, id: &str, alice: &KeyPair, bearer: &str)
where
    F: Fn(String, &'static str, Option<Value>, String) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let location = format!("/v1/tenants/acme/approvals/{id}");
    let shown = send(location.clone(), "GET", None, bearer.to_owned()).await;
    assert_eq!(shown.status, 200, "{shown:?}");
    let request: agenthost::governance::ApprovalRequest = serde_json::from_value(shown.body).unwrap();
    let token = ApprovalToken::sign(TokenClaims::for_request(&request, "alice", 600), alice).unwrap();
    let decided =
        send(format!("{location}:approve"), "POST", Some(json!({ "token": token })), bearer.to_owned()).await;
    assert_eq!(decided.status, 200, "{decided:?}");
}

/// The kinds of evidence a call leaves, as the suite compares them.
const EVIDENCE: [&str; 8] =
    ["decision", "model_call", "tool_call", "memory_write", "event_publish", "approval", "limit", "evidence"];

/// The evidence records under a data directory, in order.
fn evidence(data: &Path) -> Vec<Value> {
    let root = data.join("audit");
    if !root.exists() {
        return Vec::new();
    }
    let (found, _) = query_dir(&root, &Filter::default(), usize::MAX, &AtomicBool::new(false)).unwrap();
    found
        .into_iter()
        .map(|f| f.record)
        .filter(|r| r["kind"].as_str().is_some_and(|k| EVIDENCE.contains(&k)))
        .collect()
}

/// Fields that name one run, one request or one moment: never equal
/// between two runs of the same call, so each is replaced by its name.
const VARYING: [&str; 15] = [
    "id",
    "nonce",
    "nonces",
    "time",
    "trace_id",
    "run_id",
    "span_id",
    "parent_span_id",
    "approval_request",
    "request",
    "duration_ms",
    "elapsed_ms",
    "published_at",
    "expires_at",
    "created_at",
];

/// `value` with every [`VARYING`] field's value replaced by `<field>`, and
/// every occurrence of one of `ids` (values seen in those fields) inside a
/// string replaced by `<id>`.
fn normalise(value: &Value, ids: &BTreeSet<String>) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if VARYING.contains(&k.as_str()) && !v.is_null() {
                        json!(format!("<{k}>"))
                    } else {
                        normalise(v, ids)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| normalise(v, ids)).collect()),
        Value::String(text) => {
            let mut text = text.clone();
            for id in ids.iter().filter(|id| id.len() >= 8) {
                text = text.replace(id.as_str(), "<id>");
            }
            Value::String(text)
        }
        other => other.clone(),
    }
}

/// The values of the [`VARYING`] fields anywhere in `value`.
fn ids_in(value: &Value, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if VARYING.contains(&k.as_str())
                    && let Some(text) = v.as_str()
                {
                    into.insert(text.to_owned());
                }
                ids_in(v, into);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| ids_in(v, into)),
        _ => {}
    }
}

/// What one transport did in one scenario: its answers and its evidence,
/// normalised.
#[derive(Debug, PartialEq)]
struct Seen {
    answers: Vec<Value>,
    evidence: Vec<Value>,
}

fn seen(answers: &[Outcome], evidence: &[Value]) -> Seen {
    let mut ids = BTreeSet::new();
    for a in answers {
        ids_in(&a.body, &mut ids);
    }
    for e in evidence {
        ids_in(e, &mut ids);
    }
    Seen {
        answers: answers
            .iter()
            .map(|a| json!({ "status": a.status, "body": normalise(&a.body, &ids) }))
            .collect(),
        evidence: evidence.iter().map(|e| normalise(e, &ids)).collect(),
    }
}

/// The three legs agree: answers byte for byte (serialised), evidence in fields and decisions.
fn assert_same(scenario: &str, local: &Seen, served: &Seen, lambda: &Seen) {
    let text = |s: &Seen| {
        serde_json::to_string_pretty(&json!({ "answers": s.answers, "evidence": s.evidence })).unwrap()
    };
    for (what, a, b) in [("in-process and serve", local, served), ("serve and Lambda", served, lambda)] {
        let (a, b) = (text(a), text(b));
        if a != b {
            let (a_lines, b_lines): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
            let at = a_lines
                .iter()
                .zip(&b_lines)
                .position(|(x, y)| x != y)
                .unwrap_or(a_lines.len().min(b_lines.len()));
            let from = at.saturating_sub(12);
            panic!(
                "{scenario}: {what} differ at line {at}:\n--- {}\n+++ {}\n\nwhole first:\n{a}",
                a_lines[from..(at + 3).min(a_lines.len())].join("\n"),
                b_lines[from..(at + 3).min(b_lines.len())].join("\n"),
            );
        }
    }
}

/// One call through each leg, a scenario at a time, evidence included.
struct Legs<'a> {
    local: &'a Local,
    served: &'a Served,
    lambda: &'a Lambda,
    user: &'a str,
}

impl Legs<'_> {
    fn data(&self) -> [std::path::PathBuf; 3] {
        [self.local.data.path().to_path_buf(), self.served.data(), self.lambda.data.path().to_path_buf()]
    }

    /// Runs `calls` (world, name, request) through every leg and compares.
    async fn scenario(&self, name: &str, calls: &[(&str, &str, Value)]) -> [Vec<Outcome>; 3] {
        let before = self.data().map(|d| evidence(&d).len());
        let mut answers: [Vec<Outcome>; 3] = Default::default();
        for (world, component, request) in calls {
            answers[0].push(self.local.call(world, component, request).await);
            answers[1].push(over_http(self.served, self.user, world, component, request).await);
            answers[2].push(
                through_lambda(
                    self.lambda,
                    self.user,
                    "POST",
                    &path(world, component),
                    Some(request.clone()),
                )
                .await,
            );
        }
        self.compare(name, &answers, before);
        answers
    }

    fn compare(&self, name: &str, answers: &[Vec<Outcome>; 3], before: [usize; 3]) {
        let data = self.data();
        let seen: Vec<Seen> = (0..3)
            .map(|leg| {
                let records = evidence(&data[leg]);
                seen(&answers[leg], &records[before[leg]..])
            })
            .collect();
        assert!(!seen[0].evidence.is_empty(), "{name}: the in-process leg left no evidence");
        assert_same(name, &seen[0], &seen[1], &seen[2]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn in_process_serve_and_lambda_answer_and_record_alike() {
    let served = Served::start_granting(LIMITS, SUBSCRIPTION, GRANTS);
    let deployer = served.token("dana", &["acme"], &["deployer"]);
    let user = served.token("ursula", &["acme"], &["tenant-user"]);
    let approver = served.token("alice", &["acme"], &["approver"]);
    for c in components() {
        served.publish_stable(&deployer, c.path, c.name, "0.1.0", &c.head).await;
    }
    let local = Local::start(&served.config()).await;
    let lambda = Lambda::start(&served).await;
    let legs = Legs { local: &local, served: &served, lambda: &lambda, user: &user };
    let alice = &served.approvers[0].1;

    // A read tool.
    let [answers, ..] = legs
        .scenario("read tool", &[("tool", "calculator", json!({ "input": { "expression": "2+3*4" } }))])
        .await;
    assert_eq!(answers[0].status, 200, "{answers:?}");
    assert_eq!(answers[0].body["output"]["value"], 14, "{answers:?}");

    // An agent whose model asks for a tool.
    let [answers, ..] = legs
        .scenario(
            "agent with a tool call",
            &[("agent", "triage", json!({ "input": { "question": "What is (1 + 2) * 3?" } }))],
        )
        .await;
    assert_eq!(answers[0].status, 200, "{answers:?}");
    assert_eq!(answers[0].body["output"]["tool_calls"][0]["name"], "calculator", "{answers:?}");

    // Input the tool's schema refuses.
    let [answers, ..] = legs
        .scenario("schema violation", &[("tool", "calculator", json!({ "input": { "expression": 7 } }))])
        .await;
    assert_eq!(
        (answers[0].status, answers[0].body["kind"].as_str()),
        (400, Some("invalid-input")),
        "{answers:?}"
    );

    // A critical tool the tenant has not enabled: policy says no.
    let wipe = json!({ "input": { "namespace": "refunds", "confirm": "WIPE refunds" } });
    let [answers, ..] = legs.scenario("policy denial", &[("tool", "wipe-tenant-data", wipe)]).await;
    assert_eq!((answers[0].status, answers[0].body["kind"].as_str()), (403, Some("denied")), "{answers:?}");

    // A spinning guest meets the host's [limits] timeout.
    let [answers, ..] = legs.scenario("timeout", &[("tool", "spin-forever", json!({ "input": {} }))]).await;
    assert_eq!((answers[0].status, answers[0].body["kind"].as_str()), (504, Some("timeout")), "{answers:?}");

    // A write-high call waits for an approval, alice approves, the
    // re-submission runs.
    let refund = json!({ "input": { "order_id": "A-1", "amount_cents": 1500, "currency": "EUR", "card_last4": "4242" } });
    let before = legs.data().map(|d| evidence(&d).len());
    let mut answers: [Vec<Outcome>; 3] = Default::default();
    answers[0].push(local.call("tool", "refund", &refund).await);
    answers[1].push(over_http(&served, &user, "tool", "refund", &refund).await);
    answers[2]
        .push(through_lambda(&lambda, &user, "POST", &path("tool", "refund"), Some(refund.clone())).await);
    let ids: Vec<String> = answers
        .iter()
        .map(|a| {
            assert_eq!(a[0].status, 409, "{a:?}");
            a[0].body["approval_request"].as_str().unwrap().to_owned()
        })
        .collect();
    local.approve(&ids[0], alice).await;
    approve_over(
        |path, method, body, bearer| {
            let served = &served;
            async move {
                let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
                let (status, body) = served.send(method, &path, Some(&bearer), body).await;
                Outcome { status: status.as_u16(), body }
            }
        },
        &ids[1],
        alice,
        &approver,
    )
    .await;
    approve_over(
        |path, method, body, bearer| {
            let lambda = &lambda;
            async move { through_lambda(lambda, &bearer, method, &path, body).await }
        },
        &ids[2],
        alice,
        &approver,
    )
    .await;
    for (leg, id) in ids.iter().enumerate() {
        let mut again = refund.clone();
        again["approval_request"] = json!(id);
        let outcome = match leg {
            0 => local.call("tool", "refund", &again).await,
            1 => over_http(&served, &user, "tool", "refund", &again).await,
            _ => through_lambda(&lambda, &user, "POST", &path("tool", "refund"), Some(again)).await,
        };
        assert_eq!(outcome.status, 200, "leg {leg}: {outcome:?}");
        answers[leg].push(outcome);
    }
    legs.compare("approval round trip", &answers, before);
}

/// Messages `serve` has not deleted, waiting for the poller's
/// retry to come around: received here, so the test sees their bodies.
async fn kept(client: &aws_sdk_sqs::Client, url: &str, expected: usize) -> Vec<String> {
    let mut bodies = Vec::new();
    for _ in 0..40 {
        let out = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(60)
            .send()
            .await
            .unwrap();
        bodies.extend(out.messages().iter().filter_map(|m| m.body().map(str::to_owned)));
        if bodies.len() >= expected {
            return bodies;
        }
    }
    bodies
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sqs_batch_with_a_poison_message_fails_it_alone_on_every_runtime() {
    // With the AWS emulator, `serve` takes the same messages from a real
    // SQS queue; without it, the in-process and Lambda legs still run.
    let queue = match super::common::aws::moto().await {
        Some(config) => {
            let client = aws_sdk_sqs::Client::new(&config);
            let name = format!("conformance-{:08x}", rand::random::<u32>());
            let url = client.create_queue().queue_name(&name).send().await.unwrap().queue_url.unwrap();
            let endpoint = super::common::aws::endpoint().unwrap();
            Some((
                client,
                url,
                format!(
                    "[aws]\nendpoint_url = \"{endpoint}\"\nregion = \"us-east-1\"\n[events]\nbackend = \"sqs\"\nqueue = \"{name}\"\n"
                ),
            ))
        }
        None => None,
    };
    let settings = format!("{LIMITS}{}", queue.as_ref().map_or("", |q| q.2.as_str()));
    let served = Served::start_granting(&settings, SUBSCRIPTION, GRANTS);
    let deployer = served.token("dana", &["acme"], &["deployer"]);
    for c in components() {
        served.publish_stable(&deployer, c.path, c.name, "0.1.0", &c.head).await;
    }
    let local = Local::start(&served.config()).await;
    let lambda = Lambda::start(&served).await;

    let event = json!({
        "id": "evt-conformance-1", "tenant": "acme", "topic": "orders.created",
        "payload": agenthost::brokers::events::Envelope::encode_payload(b"{\"order\":\"A-7\"}"),
        "attributes": [], "trace_id": "0af7651916cd43dd8448eb211c80319c", "run_id": "run-x",
        "source": "notify@0.1.0", "published_at": "2026-12-01T10:00:00Z"
    })
    .to_string();
    // A direct call, which a queue runs only with [events] direct_calls.
    let call =
        json!({ "tenant": "acme", "tool": "calculator", "input": { "expression": "1+1" } }).to_string();
    let messages = [("m1", event.clone()), ("m2", "not json".to_owned()), ("m3", call.clone())];

    // In-process: the host's own event delivery.
    let failed_locally = local.messages(&messages).await;
    assert_eq!(failed_locally, vec!["m2".to_owned(), "m3".to_owned()]);
    let local_seen = seen(&[], &evidence(local.data.path()));
    assert!(
        local_seen
            .evidence
            .iter()
            .any(|r| r["kind"] == "tool_call" && r["principal"] == "event:notify@0.1.0"),
        "the subscriber ran for the event: {local_seen:?}"
    );

    // Lambda: one SQS batch event, partial failures reported.
    let answer = match lambda.invoke(sqs(&messages)).await {
        Answer::Response(r) => r,
        Answer::Error(e) => panic!("{e}"),
    };
    assert_eq!(
        answer,
        json!({ "batchItemFailures": [{ "itemIdentifier": "m2" }, { "itemIdentifier": "m3" }] }),
        "{answer}"
    );
    let lambda_seen = seen(&[], &evidence(lambda.data.path()));
    assert_same("an SQS batch", &local_seen, &lambda_seen, &lambda_seen);

    // serve: the poller deletes what it handled and keeps the rest.
    let Some((client, url, _)) = queue else { return };
    for (_, body) in &messages {
        client.send_message().queue_url(&url).message_body(body).send().await.unwrap();
    }
    let mut served_seen = seen(&[], &[]);
    for _ in 0..300 {
        served_seen = seen(&[], &evidence(&served.data()));
        if served_seen.evidence.len() >= local_seen.evidence.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_same("an SQS batch", &local_seen, &served_seen, &lambda_seen);
    let mut kept = kept(&client, &url, 2).await;
    kept.sort();
    assert_eq!(
        kept,
        vec!["not json".to_owned(), call],
        "serve kept exactly the messages it could not handle"
    );
}
