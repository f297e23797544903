//! Helpers shared by the test modules.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

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
