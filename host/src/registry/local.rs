//! The registry in a local directory (the default): `<root>/<tenant>/`
//! holds `blobs/<hex>.wasm`, `versions/<name>/<version>.json` and
//! `aliases/<name>.json`. Files are written whole (a temporary file, then
//! a rename) and read with a size cap. Nothing read here is trusted:
//! [`super::Registry`] checks it.
//!
//! One process owns a directory: alias updates are serialised by a lock in
//! this process (the S3 backend uses a conditional write instead).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{Aliases, RegistryError, Store, VersionRecord};
use crate::brokers::BoxFuture;

/// The largest version record or alias file read, in bytes.
const MAX_RECORD: u64 = 1 << 20;

/// A registry directory.
pub struct LocalStore {
    root: PathBuf,
    aliases: Mutex<()>,
}

impl LocalStore {
    /// A store under `root`, created when missing.
    ///
    /// # Errors
    ///
    /// `storage` when it cannot be created.
    pub fn open(root: &Path) -> Result<Self, RegistryError> {
        std::fs::create_dir_all(root).map_err(|e| io("create", root, &e))?;
        Ok(LocalStore { root: root.to_owned(), aliases: Mutex::new(()) })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    // Names reaching these paths passed `check_name` (no `/`, no leading
    // `.`); digests are checked here.
    fn blob_path(&self, tenant: &str, digest: &str) -> Result<PathBuf, RegistryError> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                RegistryError::Refused(format!("`{}` is not a sha256 digest", crate::text::clip(digest)))
            })?;
        Ok(self.root.join(tenant).join("blobs").join(format!("{hex}.wasm")))
    }

    fn artifact_path(&self, tenant: &str, digest: &str, fingerprint: &str) -> Result<PathBuf, RegistryError> {
        super::check_fingerprint(fingerprint)?;
        let blob = self.blob_path(tenant, digest)?;
        let hex = blob.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(self.root.join(tenant).join("artifacts").join(fingerprint).join(format!("{hex}.cwasm")))
    }

    fn version_path(&self, tenant: &str, name: &str, version: &str) -> PathBuf {
        self.root.join(tenant).join("versions").join(name).join(format!("{version}.json"))
    }

    fn aliases_path(&self, tenant: &str, name: &str) -> PathBuf {
        self.root.join(tenant).join("aliases").join(format!("{name}.json"))
    }
}

fn io(action: &str, path: &Path, e: &std::io::Error) -> RegistryError {
    if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem || e.kind() == std::io::ErrorKind::PermissionDenied
    {
        // A bundle in a package: retrying will not help, a new package will.
        return RegistryError::Conflict(format!(
            "registry: cannot {action} {}: the registry is read-only here (a bundle ships in a new package): {e}",
            path.display()
        ));
    }
    RegistryError::Storage(format!("registry: cannot {action} {}: {e}", path.display()))
}

/// Reads at most `limit` bytes; a longer file is refused, not cut.
fn read_capped(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, RegistryError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("open", path, &e)),
    };
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| io("read", path, &e))?;
    if bytes.len() as u64 > limit {
        return Err(RegistryError::Refused(format!(
            "registry: {} is larger than the {limit} bytes allowed",
            path.display()
        )));
    }
    Ok(Some(bytes))
}

fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io("create", dir, &e))?;
    let tmp = dir.join(format!(".{}.tmp", rand::random::<u64>()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::File::open(&tmp).and_then(|f| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io("write", path, &e)
        })
}

/// Runs file work where it does not hold up an async worker: on a
/// multi-threaded runtime the worker's other tasks move elsewhere while it
/// blocks; elsewhere (a CLI's single thread) it simply runs.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| {
        RegistryError::Refused(format!("registry: {} is not a valid record: {e}", path.display()))
    })
}

fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, RegistryError> {
    serde_json::to_vec_pretty(value)
        .map_err(|e| RegistryError::Storage(format!("registry: cannot encode: {e}")))
}

impl LocalStore {
    fn versions_sync(&self, tenant: &str, name: &str) -> Result<Vec<VersionRecord>, RegistryError> {
        let dir = self.root.join(tenant).join("versions").join(name);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &dir, &e)),
        };
        let mut records = Vec::new();
        for entry in entries.flatten().take(10_000) {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            if let Some(bytes) = read_capped(&path, MAX_RECORD)? {
                records.push(parse::<VersionRecord>(&path, &bytes)?);
            }
        }
        records.sort_by(|a, b| (a.deployed_at, &a.version).cmp(&(b.deployed_at, &b.version)));
        Ok(records)
    }
}

impl Store for LocalStore {
    fn put_blob<'a>(
        &'a self,
        tenant: &'a str,
        digest: &'a str,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            blocking(|| {
                let path = self.blob_path(tenant, digest)?;
                write_whole(&path, bytes)
            })
        })
    }

    fn get_blob<'a>(
        &'a self,
        tenant: &'a str,
        digest: &'a str,
        limit: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, RegistryError>> {
        Box::pin(async move {
            blocking(|| {
                let path = self.blob_path(tenant, digest)?;
                read_capped(&path, limit)?.ok_or_else(|| {
                    RegistryError::NotFound(format!(
                        "registry: the bytes of {digest} are missing ({})",
                        path.display()
                    ))
                })
            })
        })
    }

    fn create_version<'a>(
        &'a self,
        record: &'a VersionRecord,
    ) -> BoxFuture<'a, Result<Option<VersionRecord>, RegistryError>> {
        Box::pin(async move {
            blocking(|| {
                let path = self.version_path(&record.tenant, &record.name, &record.version);
                let _guard = self
                    .aliases
                    .lock()
                    .map_err(|_| RegistryError::Storage("registry lock poisoned".into()))?;
                if let Some(bytes) = read_capped(&path, MAX_RECORD)? {
                    return Ok(Some(parse(&path, &bytes)?));
                }
                write_whole(&path, &json(record)?)?;
                Ok(None)
            })
        })
    }

    fn get_version<'a>(
        &'a self,
        tenant: &'a str,
        name: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<VersionRecord, RegistryError>> {
        Box::pin(async move {
            blocking(|| {
                let path = self.version_path(tenant, name, version);
                let bytes = read_capped(&path, MAX_RECORD)?.ok_or_else(|| {
                    RegistryError::NotFound(format!("tenant `{tenant}` has no version {version} of `{name}`"))
                })?;
                parse(&path, &bytes)
            })
        })
    }

    fn list_versions<'a>(
        &'a self,
        tenant: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<VersionRecord>, RegistryError>> {
        Box::pin(async move { blocking(|| self.versions_sync(tenant, name)) })
    }

    fn list_components<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, Result<Vec<String>, RegistryError>> {
        // On the blocking pool, not in place: `/readyz` puts a timeout on
        // this listing, and a timeout can only leave a task that yields.
        let dir = self.root.join(tenant).join("versions");
        Box::pin(async move {
            let list = move || {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(io("list", &dir, &e)),
                };
                let mut names: Vec<String> = entries
                    .flatten()
                    .take(10_000)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| super::check_name("component name", n).is_ok())
                    .collect();
                names.sort();
                Ok(names)
            };
            match tokio::runtime::Handle::try_current() {
                Ok(_) => tokio::task::spawn_blocking(list)
                    .await
                    .map_err(|e| RegistryError::Storage(format!("registry: the listing stopped: {e}")))?,
                Err(_) => list(),
            }
        })
    }

    fn put_artifact<'a>(
        &'a self,
        tenant: &'a str,
        digest: &'a str,
        fingerprint: &'a str,
        sealed: &'a [u8],
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            blocking(|| write_whole(&self.artifact_path(tenant, digest, fingerprint)?, sealed))
        })
    }

    fn get_artifact<'a>(
        &'a self,
        tenant: &'a str,
        digest: &'a str,
        fingerprint: &'a str,
        limit: u64,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, RegistryError>> {
        Box::pin(
            async move { blocking(|| read_capped(&self.artifact_path(tenant, digest, fingerprint)?, limit)) },
        )
    }

    fn get_aliases<'a>(
        &'a self,
        tenant: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Aliases, RegistryError>> {
        Box::pin(async move {
            blocking(|| {
                let path = self.aliases_path(tenant, name);
                match read_capped(&path, MAX_RECORD)? {
                    Some(bytes) => parse(&path, &bytes),
                    None => Ok(Aliases::default()),
                }
            })
        })
    }

    fn put_aliases<'a>(
        &'a self,
        tenant: &'a str,
        name: &'a str,
        aliases: &'a Aliases,
        expected: u64,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            blocking(|| {
                let path = self.aliases_path(tenant, name);
                let _guard = self
                    .aliases
                    .lock()
                    .map_err(|_| RegistryError::Storage("registry lock poisoned".into()))?;
                let current = match read_capped(&path, MAX_RECORD)? {
                    Some(bytes) => parse::<Aliases>(&path, &bytes)?.revision,
                    None => 0,
                };
                if current != expected {
                    return Err(RegistryError::Conflict(format!(
                        "the aliases of `{name}` changed meanwhile (revision {current}, expected {expected})"
                    )));
                }
                write_whole(&path, &json(aliases)?)
            })
        })
    }
}
