//! Registry versions loaded into a host and kept warm: each (tenant,
//! component, version) is fetched, checked and loaded once however many
//! calls ask for it at the same moment (single flight), and unloaded when
//! no call has used it for the idle time. A call keeps the
//! [`LoadedComponent`] it started with, so unloading or re-routing never
//! touches a call in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::{Registry, RegistryError, VersionRecord};
use crate::error::InvokeError;
use crate::runtime::{Host, LoadOptions, LoadSource, LoadedComponent};

/// Why a version could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Load(#[from] InvokeError),
}

type Key = (String, String, String);

struct Entry {
    cell: OnceCell<(Arc<LoadedComponent>, Arc<VersionRecord>)>,
    /// Milliseconds since the set's epoch when a call last asked for it.
    last_used: AtomicU64,
}

/// The warm versions of one host.
pub struct WarmSet {
    host: Arc<Host>,
    registry: Registry,
    entries: Mutex<HashMap<Key, Arc<Entry>>>,
    epoch: Instant,
}

impl WarmSet {
    pub fn new(host: Arc<Host>, registry: Registry) -> Self {
        WarmSet { host, registry, entries: Mutex::new(HashMap::new()), epoch: Instant::now() }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A version, loaded: from this set if warm, else fetched, checked and
    /// loaded once for every caller waiting on it.
    ///
    /// # Errors
    ///
    /// The registry's refusal (missing, tampered, unsigned) or the load's.
    pub async fn get(
        &self,
        tenant: &str,
        name: &str,
        version: &str,
    ) -> Result<(Arc<LoadedComponent>, Arc<VersionRecord>), WarmError> {
        let key = (tenant.to_owned(), name.to_owned(), version.to_owned());
        let entry = {
            let mut entries =
                self.entries.lock().map_err(|_| InvokeError::internal("the warm set lock is poisoned"))?;
            entries
                .entry(key)
                .or_insert_with(|| Arc::new(Entry { cell: OnceCell::new(), last_used: AtomicU64::new(0) }))
                .clone()
        };
        entry.last_used.store(self.now_ms(), Ordering::Relaxed);
        let ready = entry
            .cell
            .get_or_try_init(|| async {
                let verified = self.registry.fetch(tenant, name, version).await?;
                let digest = verified.record.digest.clone();
                self.adopt(tenant, &digest).await;
                let options = LoadOptions {
                    tenant: Some(tenant.to_owned()),
                    name_hint: Some(name.to_owned()),
                    manifest: Some(verified.manifest),
                    policy: verified.policy,
                    ..LoadOptions::default()
                };
                let component = self.host.load(&verified.bytes, options).await?;
                if matches!(component.source(), LoadSource::Compiled | LoadSource::Recompiled(_)) {
                    self.share(tenant, &digest);
                }
                Ok::<_, WarmError>((component, Arc::new(verified.record)))
            })
            .await;
        match ready {
            Ok(ready) => Ok(ready.clone()),
            Err(e) => {
                // A version that is missing or fails its checks leaves no
                // entry behind: names nobody deployed cannot fill the map.
                if let Ok(mut entries) = self.entries.lock() {
                    let key = (tenant.to_owned(), name.to_owned(), version.to_owned());
                    // Only this load's entry: a newer one may be loading again.
                    if entries.get(&key).is_some_and(|e| Arc::ptr_eq(e, &entry) && !e.cell.initialized()) {
                        entries.remove(&key);
                    }
                }
                Err(e)
            }
        }
    }

    /// Takes a precompiled artifact of `digest` from the registry when this
    /// host has none, so the load skips the compile. The host keeps it only
    /// if its seal verifies with this host's cache key; anything else is
    /// refused and the load compiles.
    async fn adopt(&self, tenant: &str, digest: &str) {
        let Some(fingerprint) = self.host.artifact_fingerprint() else { return };
        if self.host.has_artifact(digest) {
            return;
        }
        match self.registry.store().get_artifact(tenant, digest, &fingerprint, super::MAX_ARTIFACT).await {
            Ok(Some(sealed)) => {
                // Checking the seal and writing the file is disk and hash
                // work over up to MAX_ARTIFACT bytes: off the async workers.
                let (host, owned) = (self.host.clone(), digest.to_owned());
                let adopted = tokio::task::spawn_blocking(move || host.adopt_artifact(&owned, &sealed))
                    .await
                    .unwrap_or_else(|e| Err(format!("the check stopped: {e}")));
                if let Err(e) = adopted {
                    tracing::warn!(target: "agenthost::registry", %digest, error = %e, "a precompiled artifact from the registry was refused; compiling");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(target: "agenthost::registry", %digest, error = %e, "cannot read a precompiled artifact")
            }
        }
    }

    /// Hands a freshly compiled artifact to the registry for other nodes
    /// (in the background, best effort).
    fn share(&self, tenant: &str, digest: &str) {
        let Some(fingerprint) = self.host.artifact_fingerprint() else {
            return;
        };
        let store = self.registry.store().clone();
        let host = self.host.clone();
        let (tenant, digest) = (tenant.to_owned(), digest.to_owned());
        tokio::spawn(async move {
            let read = {
                let digest = digest.clone();
                tokio::task::spawn_blocking(move || host.sealed_artifact(&digest, super::MAX_ARTIFACT))
            };
            let Ok(Some(sealed)) = read.await else { return };
            if let Err(e) = store.put_artifact(&tenant, &digest, &fingerprint, &sealed).await {
                tracing::warn!(target: "agenthost::registry", %digest, error = %e, "cannot share a precompiled artifact");
            }
        });
    }

    /// Whether that version is loaded now.
    pub fn is_warm(&self, tenant: &str, name: &str, version: &str) -> bool {
        let key = (tenant.to_owned(), name.to_owned(), version.to_owned());
        self.entries.lock().ok().and_then(|e| e.get(&key).map(|e| e.cell.initialized())).unwrap_or(false)
    }

    /// Unloads versions no call asked for within `idle`, except those in
    /// `keep` (what the aliases point at now, when the caller wants them
    /// warm regardless). Returns what was unloaded.
    pub fn sweep(&self, idle: Duration, keep: &dyn Fn(&str, &str, &str) -> bool) -> Vec<String> {
        let cutoff = self.now_ms().saturating_sub(u64::try_from(idle.as_millis()).unwrap_or(u64::MAX));
        let Ok(mut entries) = self.entries.lock() else {
            return Vec::new();
        };
        let mut gone = Vec::new();
        entries.retain(|(tenant, name, version), entry| {
            let idle = entry.last_used.load(Ordering::Relaxed) < cutoff;
            if !idle || keep(tenant, name, version) {
                return true;
            }
            if let Some((component, _)) = entry.cell.get() {
                gone.push((component.id().digest.clone(), format!("{tenant}/{name}@{version}")));
            }
            false
        });
        drop(entries);
        let still_used: std::collections::HashSet<String> = self
            .entries
            .lock()
            .map(|e| e.values().filter_map(|v| v.cell.get().map(|(c, _)| c.id().digest.clone())).collect())
            .unwrap_or_default();
        gone.into_iter()
            .map(|(digest, label)| {
                // The compiled code goes too, unless another entry shares the bytes.
                if !still_used.contains(&digest) {
                    self.host.evict(&digest);
                }
                label
            })
            .collect()
    }
}
