//! Helpers shared by the test modules.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use axum::extract::State;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use agenthost::{EngineConfig, Host, HostConfig, InvokeError, Limits, LoadOptions, LoadedComponent};

/// One precompiled cache for the whole test binary, so that each sample is
/// compiled once and every other test's host loads it from disk.
fn shared_cache() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir")).path().to_path_buf()
}

/// A small pool: many test hosts live at once.
pub fn engine_config() -> EngineConfig {
    EngineConfig { pool_instances: 16, ..EngineConfig::default() }
}

pub fn host_with(limits: Limits) -> Host {
    Host::new(HostConfig {
        engine: engine_config(),
        limits,
        cache_dir: Some(shared_cache()),
        ..HostConfig::default()
    })
    .expect("host")
}

pub fn host() -> Host {
    host_with(Limits::default())
}

pub async fn load(host: &Host, path: &str) -> Arc<LoadedComponent> {
    try_load(host, path, LoadOptions::default()).await.unwrap_or_else(|e| panic!("loading {path}: {e}"))
}

pub async fn try_load(
    host: &Host,
    path: &str,
    options: LoadOptions,
) -> Result<Arc<LoadedComponent>, InvokeError> {
    host.load_file(path.as_ref(), options).await
}

pub fn bytes(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// AWS clients for tests: the moto server that `scripts/test` starts.
pub mod aws {
    use aws_config::BehaviorVersion;
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use aws_credential_types::Credentials;
    use std::time::Duration;

    /// The moto endpoint, from `AGENTHOST_TEST_AWS_ENDPOINT`. Without it the
    /// AWS tests are skipped with a note, unless `AGENTHOST_REQUIRE_AWS=1`
    /// (set by `scripts/test`) makes that a failure.
    pub fn endpoint() -> Option<String> {
        match std::env::var("AGENTHOST_TEST_AWS_ENDPOINT") {
            Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
            _ => {
                assert!(
                    std::env::var("AGENTHOST_REQUIRE_AWS").as_deref() != Ok("1"),
                    "AGENTHOST_TEST_AWS_ENDPOINT is not set: scripts/test starts moto and sets it"
                );
                eprintln!("skipped: no AWS emulator (run scripts/test, which starts moto)");
                None
            }
        }
    }

    pub async fn moto() -> Option<aws_config::SdkConfig> {
        Some(config_for(&endpoint()?).await)
    }

    /// Turns on moto's executing Step Functions engine (it runs state
    /// machines only when asked to).
    pub async fn run_state_machines(endpoint: &str) {
        let configured = reqwest::Client::new()
            .post(format!("{endpoint}/moto-api/config"))
            .json(&serde_json::json!({ "stepfunctions": { "execute_state_machine": true } }))
            .send()
            .await
            .unwrap();
        assert!(configured.status().is_success(), "moto's config API: {}", configured.status());
    }

    /// Static test credentials, one region, short timeouts, one retry.
    pub async fn config_for(endpoint: &str) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "agenthost-tests"))
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_millis(500))
                    .operation_attempt_timeout(Duration::from_secs(5))
                    .build(),
            )
            .load()
            .await
    }
}

#[derive(Debug, Clone)]
pub struct Span {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent: String,
}

pub type Received = Arc<Mutex<Vec<Span>>>;

async fn traces(State(received): State<Received>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    let mut received = received.lock().unwrap();
    for resource in request.resource_spans {
        for scope in resource.scope_spans {
            for span in scope.spans {
                received.push(Span {
                    name: span.name,
                    trace_id: hex::encode(span.trace_id),
                    span_id: hex::encode(span.span_id),
                    parent: hex::encode(span.parent_span_id),
                });
            }
        }
    }
    ""
}

/// A collector on its own thread and runtime (the exporter blocks the
/// caller's thread while it flushes).
fn collector() -> (String, Received) {
    let received: Received = Arc::default();
    let state = received.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = axum::Router::new().route("/v1/traces", axum::routing::post(traces)).with_state(state);
            axum::serve(listener, app).await.unwrap();
        });
    });
    (format!("http://{}", rx.recv().unwrap()), received)
}

/// What the test binary's one global `tracing` subscriber collects: the
/// threads guest log events ran on, and every span, exported over OTLP to a
/// collector on loopback. One for the whole binary, because a thread-scoped
/// subscriber misses spans while other tests run beside it.
pub struct Global {
    pub guest_log_threads: Arc<Mutex<Vec<String>>>,
    pub spans: Received,
    pub provider: opentelemetry_sdk::trace::SdkTracerProvider,
}

pub fn global() -> &'static Global {
    use tracing_subscriber::layer::SubscriberExt as _;
    static GLOBAL: OnceLock<Global> = OnceLock::new();
    struct Record(Arc<Mutex<Vec<String>>>);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Record {
        fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            if event.metadata().target() == "agenthost::guest" {
                let name = std::thread::current().name().unwrap_or("").to_owned();
                self.0.lock().unwrap().push(name);
            }
        }
    }
    GLOBAL.get_or_init(|| {
        let (endpoint, spans) = collector();
        let provider = agenthost::telemetry::otlp_provider(&endpoint, "agenthost-test").unwrap();
        let guest_log_threads = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry()
            .with(Record(guest_log_threads.clone()))
            .with(agenthost::telemetry::layer(&provider));
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber of the tests");
        Global { guest_log_threads, spans, provider }
    })
}
