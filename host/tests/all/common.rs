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
