//! The host's own secrets — the key that signs its audit checkpoints and
//! the key that authenticates its precompiled-component cache — and the
//! checks on the directories it trusts.
//!
//! Trust boundary: the data directory holds what these keys protect (the
//! audit trail, the cache), so the keys never come from there merely
//! because they sit there. They live in a key directory that the host
//! checks before it reads a byte (owned by the host's user, mode 0700,
//! files 0600; anything else is refused with the fix to apply) and that
//! can sit outside the data directory (`[keys] dir` in host.toml,
//! `--key-dir`, `AGENTHOST_KEY_DIR`), or in AWS Secrets Manager
//! (`[keys] source = "secretsmanager"`). The data directory itself must be
//! writable by the host's user only.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::keys::KeyPair;
pub use crate::settings::{DEFAULT_AUDIT_SECRET, DEFAULT_CACHE_SECRET, KeySettings, KeySource};

/// The host's keys, and where they came from (for messages and `verify`).
pub struct HostKeys {
    pub audit: KeyPair,
    pub cache: [u8; 32],
    pub source: String,
    /// The key directory, when they came from one.
    pub dir: Option<PathBuf>,
}

impl std::fmt::Debug for HostKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostKeys").field("audit", &self.audit.id()).field("source", &self.source).finish()
    }
}

/// Why the host's keys or directories cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("{0}")]
    Unsafe(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Secrets(String),
}

/// The effective uid of this process: the owner of `/proc/self`.
#[cfg(unix)]
fn effective_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// The operating-system user running this process, as `unix:<name>` (or
/// `unix:uid-<n>` without a passwd entry): the uid comes from the kernel,
/// not from an environment variable a caller could set. The CLI's caller
/// without `--as`, and the identity an approver's process runs as.
pub fn os_user() -> String {
    #[cfg(unix)]
    if let Some(uid) = effective_uid() {
        let name = std::fs::read_to_string("/etc/passwd").ok().and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id = fields.nth(1)?.parse::<u32>().ok()?;
                (id == uid).then(|| name.to_owned())
            })
        });
        return format!("unix:{}", name.unwrap_or_else(|| format!("uid-{uid}")));
    }
    "unix:unknown".to_owned()
}

/// Checks that `path` is owned by this process's user and that `forbidden`
/// mode bits (e.g. group/world write) are clear; `what` names it.
#[cfg(unix)]
fn check_owner_mode(path: &Path, what: &str, forbidden: u32, fix: &str) -> Result<(), KeyError> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| KeyError::Io(format!("cannot inspect {what} {}: {e}", path.display())))?;
    if meta.file_type().is_symlink() {
        return Err(KeyError::Unsafe(format!(
            "{what} {} is a symlink; the host trusts only the real directory or file",
            path.display()
        )));
    }
    if let Some(uid) = effective_uid()
        && meta.uid() != uid
    {
        return Err(KeyError::Unsafe(format!(
            "{what} {} belongs to uid {}, not to the host's user (uid {uid}); chown it to the host's user",
            path.display(),
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o777;
    if mode & forbidden != 0 {
        return Err(KeyError::Unsafe(format!(
            "{what} {} has mode {mode:04o}, which lets other users {}; run `{fix} {}`",
            path.display(),
            if forbidden == 0o022 { "write it" } else { "read or write it" },
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner_mode(_: &Path, _: &str, _: u32, _: &str) -> Result<(), KeyError> {
    Ok(())
}

/// Makes `dir` (mode 0700) if it is missing.
fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| KeyError::Io(format!("cannot create {}: {e}", dir.display())))
}

/// The data directory, created (0700) if missing, and checked: owned by
/// the host's user and writable by nobody else. Anyone else who can write
/// it could plant audit segments, cache artifacts or approval files.
///
/// # Errors
///
/// Names the directory, what is wrong and the command that fixes it.
pub fn check_data_dir(dir: &Path) -> Result<(), KeyError> {
    create_private_dir(dir)?;
    check_owner_mode(dir, "the data directory", 0o022, "chmod go-w")
}

/// Writes `bytes` to a new file of mode 0600.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file =
        options.open(path).map_err(|e| KeyError::Io(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| KeyError::Io(format!("cannot write {}: {e}", path.display())))
}

impl HostKeys {
    /// The keys in a key directory, made there on first use (the directory
    /// 0700, `audit.key` and `cache.key` 0600, `audit.pub` for auditors).
    /// `legacy_audit_key` is an `audit.key` an older agenthost kept beside
    /// its trail: when the key directory is new, it is moved in once, so
    /// the trail it signed stays verifiable (with a warning).
    ///
    /// # Errors
    ///
    /// A key directory or key file that another user owns or can read or
    /// write, a symlink, a malformed key.
    pub fn open_dir(dir: &Path, legacy_audit_key: Option<&Path>) -> Result<Self, KeyError> {
        let fresh = !dir.exists();
        create_private_dir(dir)?;
        check_owner_mode(dir, "the key directory", 0o077, "chmod 700")?;
        let audit_path = dir.join("audit.key");
        if !audit_path.exists() {
            // An older host's key beside its trail is adopted only if it is
            // this user's own private file: a key someone else could have
            // written there is not trusted to sign anything.
            let adoptable = legacy_audit_key
                .filter(|p| fresh && p.exists())
                .filter(|p| check_owner_mode(p, "the legacy audit key", 0o077, "chmod 600").is_ok());
            let moved = match adoptable {
                Some(old) => {
                    tracing::warn!(
                        from = %old.display(),
                        to = %audit_path.display(),
                        "moving the audit signing key out of the trail's directory into the key directory (once)"
                    );
                    std::fs::rename(old, &audit_path).is_ok()
                }
                None => false,
            };
            if !moved {
                let key = KeyPair::generate();
                write_private(&audit_path, key.private_pem().map_err(KeyError::Invalid)?.as_bytes())?;
            }
            #[cfg(unix)]
            std::fs::set_permissions(&audit_path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .map_err(|e| KeyError::Io(format!("cannot restrict {}: {e}", audit_path.display())))?;
        }
        let cache_path = dir.join("cache.key");
        if !cache_path.exists() {
            let key: [u8; 32] = rand::random();
            write_private(&cache_path, hex::encode(key).as_bytes())?;
        }
        for path in [&audit_path, &cache_path] {
            check_owner_mode(path, "the key file", 0o077, "chmod 600")?;
        }
        let audit = KeyPair::read(&audit_path).map_err(KeyError::Invalid)?;
        let public = dir.join("audit.pub");
        let pem = audit.public().pem().map_err(KeyError::Invalid)?;
        if std::fs::read_to_string(&public).ok().as_deref() != Some(pem.as_str()) {
            std::fs::write(&public, pem)
                .map_err(|e| KeyError::Io(format!("cannot write {}: {e}", public.display())))?;
        }
        let text = std::fs::read_to_string(&cache_path)
            .map_err(|e| KeyError::Io(format!("cannot read {}: {e}", cache_path.display())))?;
        let cache = parse_cache_key(text.trim())
            .map_err(|e| KeyError::Invalid(format!("{}: {e}", cache_path.display())))?;
        Ok(HostKeys {
            audit,
            cache,
            source: format!("key directory {}", dir.display()),
            dir: Some(dir.to_owned()),
        })
    }

    /// The public half of the audit key in a key directory, read only once
    /// the directory and the key pass the host's own checks (owned by this
    /// user, nobody else may read or write them): what `audit verify`
    /// trusts without a warning.
    ///
    /// # Errors
    ///
    /// A check that fails, or no key there.
    pub fn checked_public_key(dir: &Path) -> Result<crate::keys::PublicKey, KeyError> {
        check_owner_mode(dir, "the key directory", 0o077, "chmod 700")?;
        let path = dir.join("audit.key");
        check_owner_mode(&path, "the key file", 0o077, "chmod 600")?;
        KeyPair::read(&path).map(|k| k.public()).map_err(KeyError::Invalid)
    }

    /// The keys in AWS Secrets Manager.
    ///
    /// # Errors
    ///
    /// A secret that cannot be read (named, with `agenthost aws bootstrap`
    /// as the way to create it) or does not hold a key.
    pub async fn from_secrets_manager(
        client: &aws_sdk_secretsmanager::Client,
        audit_secret: &str,
        cache_secret: &str,
    ) -> Result<Self, KeyError> {
        let read = |id: &str| {
            let client = client.clone();
            let id = id.to_owned();
            async move {
                let out = client.get_secret_value().secret_id(&id).send().await.map_err(|e| {
                    KeyError::Secrets(format!(
                        "cannot read the secret `{id}` from Secrets Manager ({}); `agenthost aws bootstrap` creates it",
                        crate::aws::describe(&e)
                    ))
                })?;
                out.secret_string()
                    .map(str::to_owned)
                    .ok_or_else(|| KeyError::Secrets(format!("the secret `{id}` holds no string")))
            }
        };
        let pem = read(audit_secret).await?;
        let audit = KeyPair::from_pem(&pem)
            .map_err(|e| KeyError::Invalid(format!("the secret `{audit_secret}`: {e}")))?;
        let cache = parse_cache_key(read(cache_secret).await?.trim())
            .map_err(|e| KeyError::Invalid(format!("the secret `{cache_secret}`: {e}")))?;
        Ok(HostKeys {
            audit,
            cache,
            source: format!("AWS Secrets Manager ({audit_secret}, {cache_secret})"),
            dir: None,
        })
    }
}

/// Creates the two secrets in Secrets Manager if they are missing
/// (`agenthost aws bootstrap`); returns which it created.
///
/// # Errors
///
/// A secret that can be neither read nor created.
pub async fn create_secrets(
    client: &aws_sdk_secretsmanager::Client,
    audit_secret: &str,
    cache_secret: &str,
) -> Result<Vec<String>, KeyError> {
    let mut created = Vec::new();
    let audit = KeyPair::generate().private_pem().map_err(KeyError::Invalid)?;
    let cache = hex::encode(rand::random::<[u8; 32]>());
    for (id, value) in [(audit_secret, audit), (cache_secret, cache)] {
        if client.describe_secret().secret_id(id).send().await.is_ok() {
            continue;
        }
        client.create_secret().name(id).secret_string(value).send().await.map_err(|e| {
            KeyError::Secrets(format!("cannot create the secret `{id}`: {}", crate::aws::describe(&e)))
        })?;
        created.push(id.to_owned());
    }
    Ok(created)
}

fn parse_cache_key(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text).map_err(|_| "not a hex-encoded key".to_owned())?;
    bytes.try_into().map_err(|_| "not a 32-byte key (64 hex digits)".to_owned())
}
