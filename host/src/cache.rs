//! The precompiled-artifact cache on disk.
//!
//! Trust boundary: `Component::deserialize` runs native code with no further
//! checks, so an artifact is only ever deserialized when (1) it sits under
//! the digest the host computed itself from the component bytes it was
//! asked to load, (2) it was made by an engine with the same fingerprint,
//! and (3) its HMAC-SHA256 tag, keyed by a secret from the host's key
//! directory or secrets service (never from the cache directory it
//! protects), matches. A file that fails any check is reported, deleted
//! and recompiled; it is never executed.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 16] = b"AGENTHOST-CWASM1";
const TAG_LEN: usize = 32;

/// What a cache lookup found.
pub enum Lookup {
    Hit(Component),
    Miss,
    /// There was a file but it failed a check; the reason says which.
    Rejected(String),
}

pub struct ArtifactCache {
    dir: PathBuf,
    key: [u8; 32],
}

impl ArtifactCache {
    /// Opens (creating if needed) the cache for one engine fingerprint under
    /// `root`, authenticated with `key`.
    ///
    /// # Errors
    ///
    /// I/O errors creating the directory.
    pub fn open(root: &Path, fingerprint: &str, key: [u8; 32]) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        let dir = root.join(fingerprint);
        fs::create_dir_all(&dir)?;
        Ok(ArtifactCache { dir, key })
    }

    /// The file an artifact for `digest_hex` lives in.
    pub fn path_for(&self, digest_hex: &str) -> PathBuf {
        self.dir.join(format!("{digest_hex}.cwasm"))
    }

    /// The MAC over (component digest, engine fingerprint, artifact).
    fn mac(&self, digest_hex: &str, artifact: &[u8]) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
        mac.update(digest_hex.as_bytes());
        mac.update(&[0]);
        mac.update(self.dir.file_name()?.as_encoded_bytes());
        mac.update(&[0]);
        mac.update(artifact);
        Some(mac)
    }

    /// Looks up the artifact for a digest the caller computed itself.
    pub fn load(&self, engine: &Engine, digest_hex: &str) -> Lookup {
        let path = self.path_for(digest_hex);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Lookup::Miss,
            Err(e) => return Lookup::Rejected(format!("cannot read {}: {e}", path.display())),
        };
        match self.open_sealed(engine, digest_hex, &bytes) {
            Ok(component) => Lookup::Hit(component),
            Err(reason) => self.reject(&path, reason),
        }
    }

    /// The component of a sealed artifact, once its tag verifies.
    fn open_sealed(&self, engine: &Engine, digest_hex: &str, sealed: &[u8]) -> Result<Component, String> {
        let artifact = self.verify(digest_hex, sealed)?;
        // SAFETY: `artifact` was produced by `Engine::precompile_component`
        // of an engine with this fingerprint, for the component whose
        // digest the host computed, and its HMAC tag (keyed by this host's
        // secret, checked just above over these very bytes) proves it has
        // not been altered since.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, artifact) };
        component.map_err(|e| format!("wasmtime refused the artifact: {e}"))
    }

    fn verify<'a>(&self, digest_hex: &str, bytes: &'a [u8]) -> Result<&'a [u8], String> {
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| "not an agenthost artifact (bad header)".to_owned())?;
        if rest.len() < TAG_LEN {
            return Err("truncated artifact".to_owned());
        }
        let (tag, artifact) = rest.split_at(TAG_LEN);
        self.mac(digest_hex, artifact)
            .ok_or_else(|| "cannot compute the integrity tag".to_owned())?
            .verify_slice(tag)
            .map_err(|_| "integrity tag mismatch: the artifact was modified".to_owned())?;
        Ok(artifact)
    }

    fn reject(&self, path: &Path, reason: String) -> Lookup {
        tracing::warn!(path = %path.display(), %reason, "rejected precompiled artifact; recompiling");
        let _ = fs::remove_file(path);
        Lookup::Rejected(reason)
    }

    /// This cache's engine fingerprint (its directory's name).
    pub fn fingerprint(&self) -> Option<String> {
        self.dir.file_name().map(|n| n.to_string_lossy().into_owned())
    }

    /// A public name for this cache's key: the same for every node given the
    /// same key, and no help in finding the key.
    pub fn key_id(&self) -> String {
        let id = Hmac::<Sha256>::new_from_slice(&self.key)
            .map(|mut mac| {
                mac.update(b"agenthost artifact cache key id");
                mac.finalize().into_bytes()
            })
            .map(|bytes| hex::encode(&bytes[..8]))
            .unwrap_or_default();
        format!("k{id}")
    }

    /// An artifact as stored (header, tag, artifact), to hand to another
    /// node that holds the same key; at most `limit` bytes.
    pub fn sealed(&self, digest_hex: &str, limit: u64) -> Option<Vec<u8>> {
        let path = self.path_for(digest_hex);
        let size = fs::metadata(&path).ok()?.len();
        if size > limit {
            return None;
        }
        fs::read(path).ok()
    }

    /// Takes an artifact sealed elsewhere and loads it at once: its tag is
    /// checked once, here, and the component made from the checked bytes;
    /// a copy is kept on disk for later loads (not synced: a torn copy
    /// fails its tag when read and is compiled again).
    ///
    /// # Errors
    ///
    /// Why it was refused.
    pub fn adopt_and_load(
        &self,
        engine: &Engine,
        digest_hex: &str,
        sealed: &[u8],
    ) -> Result<Component, String> {
        let component = self.open_sealed(engine, digest_hex, sealed)?;
        if let Err(e) = self.write_sealed(digest_hex, sealed) {
            tracing::warn!(error = %e, "could not keep the adopted artifact on disk; continuing without it");
        }
        Ok(component)
    }

    fn write_sealed(&self, digest_hex: &str, sealed: &[u8]) -> Result<(), String> {
        let path = self.path_for(digest_hex);
        let tmp = path.with_extension(format!("tmp{}-{:016x}", std::process::id(), rand::random::<u64>()));
        fs::write(&tmp, sealed).and_then(|()| fs::rename(&tmp, &path)).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            format!("cannot write {}: {e}", path.display())
        })
    }

    /// Stores an artifact, atomically (write then rename).
    ///
    /// # Errors
    ///
    /// I/O errors writing the file.
    pub fn store(&self, digest_hex: &str, artifact: &[u8]) -> io::Result<()> {
        let tag = self
            .mac(digest_hex, artifact)
            .ok_or_else(|| io::Error::other("cannot compute the artifact tag"))?
            .finalize()
            .into_bytes();
        let path = self.path_for(digest_hex);
        // Unique per writer: hosts in one process may store the same digest at once.
        let tmp = path.with_extension(format!("tmp{}-{:016x}", std::process::id(), rand::random::<u64>()));
        {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(MAGIC)?;
            file.write_all(tag.as_slice())?;
            file.write_all(artifact)?;
            file.sync_all()?;
        }
        fs::rename(&tmp, &path)
    }
}
