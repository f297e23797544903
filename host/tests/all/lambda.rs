//! `agenthost lambda`, driven the way Lambda drives it: an in-test Runtime
//! API on 127.0.0.1 (`/2018-06-01/runtime/invocation/next`, `/response`,
//! `/error`) hands the process its events one at a time and keeps what it
//! answers. The components come from a registry deployed through
//! `agenthost serve`, which the function's data directory shares.

use std::collections::VecDeque;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agenthost_artifacts as artifacts;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use reqwest::StatusCode as HttpStatus;
use serde_json::{Value, json};

use super::serve::Served;

/// What the function answered to one event.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    Response(Value),
    Error(Value),
}

#[derive(Default)]
struct Api {
    events: Mutex<VecDeque<(String, Value)>>,
    answers: Mutex<Vec<(String, Answer)>>,
    arrived: tokio::sync::Notify,
    answered: tokio::sync::Notify,
}

async fn next(State(api): State<Arc<Api>>) -> (StatusCode, HeaderMap, String) {
    loop {
        let notified = api.arrived.notified();
        let event = api.events.lock().unwrap().pop_front();
        if let Some((id, event)) = event {
            let mut headers = HeaderMap::new();
            headers.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
            let deadline = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap()
                + Duration::from_secs(30);
            headers.insert("lambda-runtime-deadline-ms", deadline.as_millis().to_string().parse().unwrap());
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:000000000000:function:agenthost".parse().unwrap(),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000".parse().unwrap(),
            );
            return (StatusCode::OK, headers, event.to_string());
        }
        notified.await;
    }
}

async fn respond(State(api): State<Arc<Api>>, Path(id): Path<String>, body: String) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    api.answers.lock().unwrap().push((id, Answer::Response(value)));
    api.answered.notify_waiters();
    StatusCode::ACCEPTED
}

async fn fail(State(api): State<Arc<Api>>, Path(id): Path<String>, body: String) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    api.answers.lock().unwrap().push((id, Answer::Error(value)));
    api.answered.notify_waiters();
    StatusCode::ACCEPTED
}

/// The Runtime API and the `agenthost lambda` process that polls it.
pub(crate) struct Lambda {
    api: Arc<Api>,
    child: Child,
    pub(crate) data: tempfile::TempDir,
}

impl Lambda {
    pub(crate) async fn start(served: &Served) -> Lambda {
        Lambda::launch(&served.config(), Some(&served.data().join("registry")), None).await
    }

    pub(crate) async fn launch(
        config: &std::path::Path,
        registry: Option<&std::path::Path>,
        keys: Option<&std::path::Path>,
    ) -> Lambda {
        Lambda::launch_binary(std::path::Path::new(env!("CARGO_BIN_EXE_agenthost")), config, registry, keys)
            .await
    }

    /// With a config directory, the registry linked into its data directory
    /// (or none: `[registry] dir`), and a key directory (or its own keys).
    pub(crate) async fn launch_binary(
        binary: &std::path::Path,
        config: &std::path::Path,
        registry: Option<&std::path::Path>,
        keys: Option<&std::path::Path>,
    ) -> Lambda {
        let api = Arc::new(Api::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(respond))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        // Its own data directory (Lambda's /tmp), the registry shared.
        let data = tempfile::tempdir().unwrap();
        if let Some(registry) = registry {
            std::os::unix::fs::symlink(registry, data.path().join("registry")).unwrap();
        }
        let mut command = Command::new(binary);
        match keys {
            Some(keys) => command.env("AGENTHOST_KEY_DIR", keys),
            None => command.env_remove("AGENTHOST_KEY_DIR"),
        };
        let child = command
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "agenthost")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/12/01/[$LATEST]0123456789abcdef")
            .env("AGENTHOST_CONFIG", config)
            .env("AGENTHOST_DATA_DIR", data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Lambda { api, child, data }
    }

    /// Hands the function one event and waits for what it answers.
    pub(crate) async fn invoke(&self, event: Value) -> Answer {
        let id = format!("req-{:016x}", rand::random::<u64>());
        let answered = self.api.answered.notified();
        tokio::pin!(answered);
        answered.as_mut().enable();
        self.api.events.lock().unwrap().push_back((id.clone(), event));
        self.api.arrived.notify_waiters();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some((_, answer)) = self.api.answers.lock().unwrap().iter().find(|(i, _)| *i == id) {
                return answer.clone();
            }
            tokio::select! {
                () = &mut answered => {}
                () = tokio::time::sleep_until(deadline) => panic!("the function did not answer event {id}"),
            }
            answered.set(self.api.answered.notified());
            answered.as_mut().enable();
        }
    }
}

impl Drop for Lambda {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn response(answer: Answer) -> Value {
    match answer {
        Answer::Response(v) => v,
        Answer::Error(e) => panic!("the function failed: {e}"),
    }
}

/// An HTTP API (v2) or Function URL event.
pub(crate) fn http_v2(method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Value {
    let mut headers =
        json!({ "content-type": "application/json", "host": "abc.lambda-url.us-east-1.on.aws" });
    if let Some(token) = token {
        headers["authorization"] = json!(format!("Bearer {token}"));
    }
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000", "apiId": "abc", "domainName": "abc.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abc", "requestId": "r1", "routeKey": "$default", "stage": "$default",
            "time": "01/Dec/2026:10:00:00 +0000", "timeEpoch": 1796119200000u64,
            "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "test" }
        },
        "body": body.map(|b| b.to_string()), "isBase64Encoded": false
    })
}

/// An API Gateway REST API (v1) proxy event.
fn http_v1(method: &str, path: &str, token: &str, body: Value) -> Value {
    json!({
        "resource": "/{proxy+}", "path": path, "httpMethod": method,
        "headers": { "Authorization": format!("Bearer {token}"), "Content-Type": "application/json" },
        "multiValueHeaders": { "Authorization": [format!("Bearer {token}")], "Content-Type": ["application/json"] },
        "queryStringParameters": null, "multiValueQueryStringParameters": null, "pathParameters": { "proxy": path },
        "stageVariables": null,
        "requestContext": {
            "accountId": "000000000000", "resourceId": "r", "stage": "prod", "requestId": "r2",
            "identity": { "sourceIp": "203.0.113.9" }, "resourcePath": "/{proxy+}", "httpMethod": method,
            "apiId": "abc", "path": format!("/prod{path}")
        },
        "body": body.to_string(), "isBase64Encoded": false
    })
}

pub(crate) fn sqs(messages: &[(&str, String)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
                "attributes": {}, "messageAttributes": {}, "md5OfBody": "",
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:agenthost-events",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

#[tokio::test(flavor = "multi_thread")]
async fn one_function_answers_direct_calls_http_events_and_sqs_batches_as_the_server_does() {
    let served = Served::start_with(
        "[events]\ndirect_calls = true\n",
        "[[server.subscriptions]]\ntenant = \"acme\"\ntopic = \"orders.*\"\nagent = \"event-recorder\"",
    );
    let deployer = served.token("dana", &["acme"], &["deployer"]);
    let user = served.token("ursula", &["acme"], &["tenant-user"]);
    assert_eq!(served.deploy(&deployer, artifacts::VERSIONED_1_0_0, "1.0.0").await.0, HttpStatus::CREATED);
    assert_eq!(served.alias(&deployer, "stable", "1.0.0", None).await.0, HttpStatus::OK);
    served
        .publish_stable(
            &deployer,
            artifacts::EVENT_RECORDER,
            "event-recorder",
            "0.1.0",
            "world = \"agent\"\n[requests]\ninterfaces = [\"log\", \"memory\"]\nmemory_namespaces = [\"events\"]\n",
        )
        .await;
    let (_, over_http) = served.invoke(&user, None, json!({})).await;
    let lambda = Lambda::start(&served).await;

    // A direct invoke answers what an HTTP 200 carries, byte for byte.
    let direct = response(lambda.invoke(json!({ "tenant": "acme", "tool": "versioned", "input": {} })).await);
    assert_eq!(direct, over_http, "direct invoke and `serve` answer alike");
    assert_eq!(direct["output"]["version"], "1.0.0");

    // A direct call's problem is the function's error: its kind, and the problem+json.
    match lambda.invoke(json!({ "tenant": "acme", "tool": "nothing-here", "input": {} })).await {
        Answer::Error(e) => {
            assert_eq!(e["errorType"], "not-found", "{e}");
            let problem: Value = serde_json::from_str(e["errorMessage"].as_str().unwrap()).unwrap();
            assert_eq!(problem["status"], 404, "{problem}");
        }
        Answer::Response(r) => panic!("a call of nothing answered {r}"),
    }
    match lambda
        .invoke(json!({ "tenant": "acme", "tool": "versioned", "input": {}, "principal": "event:forged" }))
        .await
    {
        Answer::Error(e) => assert_eq!(e["errorType"], "invalid-input", "{e}"),
        Answer::Response(r) => panic!("a reserved principal was accepted: {r}"),
    }

    // A Function URL / HTTP API request goes through the server's router.
    let path = "/v1/tenants/acme/tools/versioned:invoke";
    let answer =
        response(lambda.invoke(http_v2("POST", path, Some(&user), Some(json!({ "input": {} })))).await);
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, over_http, "HTTP through Lambda answers as `serve` does");
    // …with its authentication and problems.
    let answer = response(lambda.invoke(http_v2("POST", path, None, Some(json!({ "input": {} })))).await);
    assert_eq!(answer["statusCode"], 401, "{answer}");
    let content_type = answer["headers"]["content-type"].as_str().unwrap_or_default();
    assert!(content_type.starts_with("application/problem+json"), "{answer}");
    // A REST API (v1) proxy event.
    let answer = response(lambda.invoke(http_v1("POST", path, &user, json!({ "input": {} }))).await);
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["output"]["version"], "1.0.0");

    // An SQS batch: an event for the subscriber, a message that is no
    // event, the same event delivered again, and a direct call.
    let event = json!({
        "id": "evt-lambda-0001", "tenant": "acme", "topic": "orders.created",
        "payload": agenthost::brokers::events::Envelope::encode_payload(b"{\"order\":\"A-7\"}"),
        "attributes": [], "trace_id": "0af7651916cd43dd8448eb211c80319c", "run_id": "run-x",
        "source": "notify@0.1.0", "published_at": "2026-12-01T10:00:00Z"
    })
    .to_string();
    let call = json!({ "tenant": "acme", "tool": "versioned", "input": {} }).to_string();
    let batch = sqs(&[("m1", event.clone()), ("m2", "not json".into()), ("m3", event), ("m4", call)]);
    let answer = response(lambda.invoke(batch).await);
    assert_eq!(answer, json!({ "batchItemFailures": [{ "itemIdentifier": "m2" }] }), "{answer}");

    // Not an event at all.
    match lambda.invoke(json!({ "hello": "world" })).await {
        Answer::Error(e) => assert_eq!(e["errorType"], "invalid-input", "{e}"),
        Answer::Response(r) => panic!("{r}"),
    }

    // The subscriber ran once for the event delivered twice: its trail says so.
    let out = Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .args(["audit", "query", "--kind", "tool_call"])
        .env("AGENTHOST_CONFIG", served.config())
        .env("AGENTHOST_DATA_DIR", lambda.data.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let runs = text.lines().filter(|l| l.contains("\"agent\":\"event-recorder@")).count();
    assert_eq!(runs, 1, "the event-recorder ran {runs} times: {text}");
    // Direct calls act for `lambda:<principal>`, never for a token's subject.
    assert!(text.contains("\"principal\":\"lambda:invoke\""), "{text}");
    assert!(text.contains("\"principal\":\"ursula\""), "HTTP events act for the token's subject: {text}");

    // The execution environment writes a stream of its own, named after
    // its log stream, and seals a segment at the end of every invocation
    // that wrote records: more segments than the one still open.
    let stream = lambda.data.path().join("audit").join("lambda-agenthost-0123456789abcdef");
    let segments = std::fs::read_dir(&stream)
        .unwrap_or_else(|e| panic!("no audit stream at {}: {e}", stream.display()))
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
        .count();
    assert!(
        segments >= 5,
        "{segments} segments in {}: invocations were not sealed one by one",
        stream.display()
    );
}

/// A server whose registry holds `versioned` 1.0.0 as stable.
async fn served_with_stable_versioned() -> Served {
    let served = Served::start("");
    let deployer = served.token("dana", &["acme"], &["deployer"]);
    assert_eq!(served.deploy(&deployer, artifacts::VERSIONED_1_0_0, "1.0.0").await.0, HttpStatus::CREATED);
    assert_eq!(served.alias(&deployer, "stable", "1.0.0", None).await.0, HttpStatus::OK);
    served
}

/// A function's config at `dir`: the server's files (host.toml, keys'
/// public halves, tenants), with `registry` as host.toml's `[registry]`.
fn function_config(served: &Served, dir: &std::path::Path, registry: Option<&str>) {
    std::fs::create_dir_all(dir.join("tenants")).unwrap();
    for sub in ["", "tenants"] {
        for entry in std::fs::read_dir(served.config().join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, dir.join(sub).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    if let Some(registry) = registry {
        let mut toml = std::fs::read_to_string(dir.join("host.toml")).unwrap();
        toml.push_str(&format!("\n[registry]\n{registry}"));
        std::fs::write(dir.join("host.toml"), toml).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bundled_function_runs_from_its_read_only_bundle_without_compiling() {
    let served = served_with_stable_versioned().await;

    // The package's registry, written at build time with the host's keys.
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("bundle");
    let agenthost = |args: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_agenthost"))
            .args(args)
            .env("AGENTHOST_CONFIG", served.config())
            .env("AGENTHOST_DATA_DIR", served.data())
            .env_remove("AGENTHOST_KEY_DIR")
            .output()
            .unwrap()
    };
    let out = agenthost(&["bundle".as_ref(), "--out".as_ref(), bundle.as_os_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["components"][0]["name"], "versioned", "{report}");
    assert_eq!(report["components"][0]["versions"][0]["version"], "1.0.0", "{report}");
    // A bundle is written only to a new directory.
    let again = agenthost(&["bundle".as_ref(), "--out".as_ref(), bundle.as_os_str()]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is not empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // The function's config: the bundle as its registry, read-only as
    // /var/task is, with the artifacts taken from it.
    let config = work.path().join("config");
    function_config(&served, &config, Some("dir = \"../bundle\"\nshare_artifacts = true\n"));
    let chmod = Command::new("chmod").args(["-R", "a-w"]).arg(&bundle).status().unwrap();
    assert!(chmod.success());

    let lambda = Lambda::launch(&config, None, Some(&served.data().join("keys"))).await;
    let answer = response(lambda.invoke(json!({ "tenant": "acme", "tool": "versioned", "input": {} })).await);
    assert_eq!(answer["output"]["version"], "1.0.0", "{answer}");
    // Nothing was compiled: the code came from the bundle's artifact.
    let operator = served.token("olga", &["*"], &["operator"]);
    let metrics = response(lambda.invoke(http_v2("GET", "/metrics", Some(&operator), None)).await);
    let body = metrics["body"].as_str().unwrap_or_default();
    let text = if metrics["isBase64Encoded"] == true {
        use base64::Engine as _;
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(body).unwrap()).unwrap()
    } else {
        body.to_owned()
    };
    assert!(text.contains("agenthost_component_loads_total{source=\"artifact\"} 1"), "{text}");
    assert!(!text.contains("source=\"compiled\""), "a bundled function compiled: {text}");
    let _ = Command::new("chmod").args(["-R", "u+w"]).arg(&bundle).status();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_package_script_builds_a_zip_whose_bootstrap_serves_from_its_bundle() {
    let served = served_with_stable_versioned().await;
    let work = tempfile::tempdir().unwrap();
    let not_reading = work.path().join("plain-config");
    function_config(&served, &not_reading, None);
    let function_config_dir = work.path().join("function-config");
    function_config(&served, &function_config_dir, Some("dir = \"../registry\"\nshare_artifacts = true\n"));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let script = root.join("scripts/package-lambda.sh");
    let package = |config: &std::path::Path| {
        Command::new("bash")
            .arg(&script)
            .arg("--config")
            .arg(config)
            .arg("--from")
            .arg(served.config())
            .arg("--data-dir")
            .arg(served.data())
            .arg("--binary")
            .arg(env!("CARGO_BIN_EXE_agenthost"))
            .arg("--out")
            .arg(work.path().join("dist"))
            .env_remove("AGENTHOST_KEY_DIR")
            .output()
            .unwrap()
    };
    // A function config that does not read the bundle is refused.
    let refused = package(&not_reading);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("must read the bundle"));
    let built = package(&function_config_dir);
    assert!(
        built.status.success(),
        "{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );

    // The layout Lambda expects, the bootstrap executable.
    let zip = work.path().join("dist/agenthost.zip");
    let listing = Command::new("python3")
        .args(["-c", "import sys, zipfile\nfor i in zipfile.ZipFile(sys.argv[1]).infolist(): print(i.filename, oct(i.external_attr >> 16))"])
        .arg(&zip)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    assert!(listing.lines().any(|l| l.starts_with("bootstrap 0o100755")), "{listing}");
    assert!(
        listing.contains("config/host.toml") && listing.contains("config/tenants/acme.toml"),
        "{listing}"
    );
    assert!(listing.lines().any(|l| l.starts_with("registry/acme/") && l.contains(".cwasm")), "{listing}");

    // Unpacked as Lambda unpacks it (/var/task), the bootstrap answers
    // from the bundle without compiling.
    let task = work.path().join("task");
    let unzip = Command::new("python3")
        .args(["-c", "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nfor i in z.infolist():\n    p = z.extract(i, sys.argv[2])\n    import os; os.chmod(p, (i.external_attr >> 16) & 0o777)"])
        .arg(&zip)
        .arg(&task)
        .status()
        .unwrap();
    assert!(unzip.success());
    let lambda = Lambda::launch_binary(
        &task.join("bootstrap"),
        &task.join("config"),
        None,
        Some(&served.data().join("keys")),
    )
    .await;
    let answer = response(lambda.invoke(json!({ "tenant": "acme", "tool": "versioned", "input": {} })).await);
    assert_eq!(answer["output"]["version"], "1.0.0", "{answer}");
}

/// Runs `agenthost approvals approve|deny ID --as NAME --key KEY` on the
/// shared store of `config`, from a data directory of its own (no process
/// that holds the paused workflow is involved), with the hosts' keys (it
/// checks that the host made the request).
fn decide_on_the_store(served: &Served, config: &std::path::Path, verb: &str, id: &str, approver: usize) {
    let (name, key) = &served.approvers[approver];
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("approver.key");
    std::fs::write(&key_file, key.private_pem().unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .args(["approvals", verb, id, "--as", name, "--key"])
        .arg(&key_file)
        .env("AGENTHOST_CONFIG", config)
        .env("AGENTHOST_DATA_DIR", dir.path())
        .env("AGENTHOST_KEY_DIR", served.data().join("keys"))
        .output()
        .unwrap();
    assert!(out.status.success(), "approvals {verb}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_event_answers_paused_workflows_decided_on_the_store() {
    use aws_sdk_sfn::types::ExecutionStatus;
    let Some(config) = crate::common::aws::moto().await else { return };
    let endpoint = crate::common::aws::endpoint().unwrap();
    crate::common::aws::run_state_machines(&endpoint).await;
    let name = format!("settle-{:08x}", rand::random::<u32>());
    agenthost::brokers::memory::create_table(&aws_sdk_dynamodb::Client::new(&config), &name).await.unwrap();

    // The registry comes from a server (its own approvals in files: it
    // never sees the function's); the function keeps its approvals in
    // DynamoDB and is the only process with a Step Functions client.
    let served = Served::start("");
    let deployer = served.token("dana", &["acme"], &["deployer"]);
    served.publish_stable(&deployer, artifacts::REFUND, "refund", "0.1.0", super::serve::REFUND_HEAD).await;
    let work = tempfile::tempdir().unwrap();
    let function = work.path().join("config");
    function_config(&served, &function, None);
    let mut toml = std::fs::read_to_string(function.join("host.toml")).unwrap();
    toml.push_str(&format!(
        "\n[aws]\nendpoint_url = \"{endpoint}\"\nregion = \"us-east-1\"\n[memory]\nbackend = \"dynamodb\"\ntable = \"{name}\"\n"
    ));
    std::fs::write(function.join("host.toml"), toml).unwrap();
    let lambda =
        Lambda::launch(&function, Some(&served.data().join("registry")), Some(&served.data().join("keys")))
            .await;

    // A workflow whose task hands its token to agenthost: the message a
    // `.waitForTaskToken` task sends (through SQS here: moto cannot run a
    // Lambda function) becomes the function's direct invoke.
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue_url = sqs.create_queue().queue_name(&name).send().await.unwrap().queue_url.unwrap();
    let sfn = aws_sdk_sfn::Client::new(&config);
    let definition = json!({
        "StartAt": "Refund",
        "States": { "Refund": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {
                "QueueUrl": queue_url,
                "MessageBody": { "tenant": "acme", "tool": "refund", "input.$": "$", "principal": "workflow", "task_token.$": "$$.Task.Token" }
            },
            "End": true
        } }
    });
    let machine = sfn
        .create_state_machine()
        .name(name.clone())
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/agenthost-workflow")
        .send()
        .await
        .unwrap()
        .state_machine_arn;
    let status = |execution: String| {
        let sfn = sfn.clone();
        async move { sfn.describe_execution().execution_arn(execution).send().await.unwrap() }
    };
    // moto applies an answered token on a thread of its own: a moment later.
    let finished = |execution: String| {
        let sfn = sfn.clone();
        async move {
            for _ in 0..100 {
                let described = sfn.describe_execution().execution_arn(&execution).send().await.unwrap();
                if described.status != ExecutionStatus::Running {
                    return described;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("the workflow {execution} was not answered");
        }
    };
    // Starts a refund and hands its task to the function; returns the
    // execution and the approval request it now waits on.
    let paused = |order: &'static str| {
        let (sfn, sqs, machine, queue_url, lambda) = (&sfn, &sqs, &machine, &queue_url, &lambda);
        async move {
            let input =
                json!({ "order_id": order, "amount_cents": 900, "currency": "EUR", "card_last4": "4242" });
            let execution = sfn
                .start_execution()
                .state_machine_arn(machine)
                .name(format!("run-{order}"))
                .input(input.to_string())
                .send()
                .await
                .unwrap()
                .execution_arn;
            let mut body = None;
            for _ in 0..100 {
                let received = sqs.receive_message().queue_url(queue_url).send().await.unwrap();
                if let Some(message) = received.messages.unwrap_or_default().into_iter().next() {
                    let handle = message.receipt_handle.unwrap_or_default();
                    sqs.delete_message().queue_url(queue_url).receipt_handle(handle).send().await.unwrap();
                    body = message.body;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let task: Value = serde_json::from_str(&body.expect("the task's message")).unwrap();
            let answer = response(lambda.invoke(task).await);
            assert_eq!(answer["status"], "waiting-for-approval", "{answer}");
            (execution, answer["approval_request"].as_str().unwrap().to_owned())
        }
    };
    let settle = || async {
        response(lambda.invoke(json!({
        "version": "0", "id": "5e2a3c9d-0000-0000-0000-000000000000", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "000000000000", "time": "2026-12-02T10:00:00Z",
        "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:000000000000:rule/agenthost-settle"],
        "detail": {}
    })).await)
    };

    let (approved, approved_id) = paused("S-1").await;
    let (denied, denied_id) = paused("S-2").await;
    // Nothing decided yet: the sweep leaves both waiting.
    let sweep = settle().await;
    assert_eq!(sweep, json!({ "parked": 2, "answered": 0, "deferred": 0 }), "{sweep}");
    assert_eq!(status(approved.clone()).await.status, ExecutionStatus::Running);

    // Decided with the CLI on the shared store: no process is told.
    decide_on_the_store(&served, &function, "approve", &approved_id, 0);
    decide_on_the_store(&served, &function, "deny", &denied_id, 1);
    assert_eq!(status(approved.clone()).await.status, ExecutionStatus::Running);
    // The next scheduled event resumes the approved call in the function
    // and answers both workflows.
    let sweep = settle().await;
    assert_eq!(sweep, json!({ "parked": 2, "answered": 2, "deferred": 0 }), "{sweep}");
    let done = finished(approved).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let output: Value = serde_json::from_str(done.output.as_deref().unwrap()).unwrap();
    assert_eq!(output["output"]["refunded"]["order_id"], "S-1", "{output}");
    let done = finished(denied).await;
    assert_eq!(done.status, ExecutionStatus::Failed, "{done:?}");
    assert_eq!(done.error.as_deref(), Some("agenthost.denied"), "{done:?}");
    // Answered once: the parked index is empty.
    assert_eq!(settle().await, json!({ "parked": 0, "answered": 0, "deferred": 0 }));
    // `{"settle": true}` is the same event, for a schedule with a constant input.
    assert_eq!(response(lambda.invoke(json!({ "settle": true })).await)["parked"], 0);
}
