//! The S3 sink of the audit trail: every sealed segment is copied to a bucket
//! with S3 Object Lock, under a retention (COMPLIANCE or GOVERNANCE) that
//! not even the bucket's owner can shorten (COMPLIANCE), and each stream's
//! newest signed head beside it. `verify --from s3://bucket/prefix` reads
//! them back and reports the retention each object carries.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectLockMode;
use serde::Serialize;

use super::verify::StreamInput;
use super::{AuditError, HEAD_FILE, INDEX_FILE, Sink};
use crate::aws::{AwsSettings, describe};
use crate::keys::PublicKey;
pub use crate::settings::{RetentionMode, S3Settings};

impl RetentionMode {
    fn lock_mode(self) -> ObjectLockMode {
        match self {
            RetentionMode::Compliance => ObjectLockMode::Compliance,
            RetentionMode::Governance => ObjectLockMode::Governance,
        }
    }
}

/// Makes an S3 client for the audit bucket (path-style addressing when the
/// endpoint is not AWS's own, as emulators need).
pub async fn client(aws: &AwsSettings) -> Client {
    let shared = aws.load().await;
    let mut config = aws_sdk_s3::config::Builder::from(&shared);
    if aws.endpoint().is_some() {
        config = config.force_path_style(true);
    }
    Client::from_conf(config.build())
}

fn key_of(prefix: &str, stream: &str, name: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() { format!("{stream}/{name}") } else { format!("{prefix}/{stream}/{name}") }
}

/// Uploads sealed segments and heads in the background.
pub struct S3Sink {
    client: Client,
    settings: S3Settings,
    /// The writer's public key: a segment is uploaded only if it verifies
    /// with it (what is on disk when the upload starts may not be what
    /// the writer wrote).
    key: PublicKey,
    runtime: tokio::runtime::Handle,
    pending: Mutex<Vec<tokio::task::JoinHandle<Result<(), String>>>>,
}

impl std::fmt::Debug for S3Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Sink").field("bucket", &self.settings.bucket).finish_non_exhaustive()
    }
}

impl S3Sink {
    /// A sink on the current tokio runtime for the segments `key` signs.
    ///
    /// # Errors
    /// When called outside a tokio runtime.
    pub fn new(client: Client, settings: S3Settings, key: PublicKey) -> Result<Arc<S3Sink>, AuditError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| AuditError::Sink("the S3 sink needs a tokio runtime".to_owned()))?;
        Ok(Arc::new(S3Sink { client, settings, key, runtime, pending: Mutex::new(Vec::new()) }))
    }

    fn upload(&self, key: String, bytes: Vec<u8>, lock: bool) {
        let client = self.client.clone();
        let settings = self.settings.clone();
        let task = self.runtime.spawn(async move {
            let mut put = client
                .put_object()
                .bucket(&settings.bucket)
                .key(&key)
                .content_md5(content_md5(&bytes))
                .body(ByteStream::from(bytes));
            if lock {
                let until =
                    SystemTime::now() + Duration::from_secs(u64::from(settings.retention_days) * 86_400);
                put = put
                    .object_lock_mode(settings.retention_mode.lock_mode())
                    .object_lock_retain_until_date(aws_smithy_types::DateTime::from(until));
            }
            let result = put
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("cannot upload s3://{}/{key}: {}", settings.bucket, describe(&e)));
            if let Err(e) = &result {
                tracing::error!(target: "agenthost::audit", error = %e, "audit segment upload failed");
            }
            result
        });
        if let Ok(mut pending) = self.pending.lock() {
            pending.push(task);
        }
    }

    /// Waits for every upload started so far.
    ///
    /// # Errors
    /// The first upload that failed.
    pub async fn flush(&self) -> Result<(), AuditError> {
        let tasks: Vec<_> = self.pending.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default();
        // Every upload is waited for, not only those before a failure.
        let mut failure = None;
        for task in tasks {
            let failed = match task.await {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(e) => format!("an upload task failed: {e}"),
            };
            failure.get_or_insert(failed);
        }
        failure.map_or(Ok(()), |e| Err(AuditError::Sink(e)))
    }

    /// Uploads the sealed segments of a local stream that the bucket lacks
    /// (a host that stopped before its uploads finished catches up here).
    /// A segment is uploaded only if it verifies on its own against this
    /// host's key (an intact chain ending in a signed checkpoint for this
    /// stream): a segment planted in the data directory is never given
    /// Object Lock's protection.
    ///
    /// # Errors
    /// When the bucket cannot be listed.
    pub async fn backfill(
        &self,
        stream: &str,
        dir: &Path,
        except: Option<&str>,
        key: &PublicKey,
    ) -> Result<usize, AuditError> {
        let present =
            list(&self.client, &self.settings.bucket, &key_of(&self.settings.prefix, stream, "")).await?;
        let mut uploaded = 0;
        for (name, path) in super::writer::segments(dir)? {
            if Some(name.as_str()) == except || present.iter().any(|k| k.ends_with(&format!("/{name}"))) {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| AuditError::Io { path: path.clone(), source: e })?;
            if bytes.is_empty() {
                continue;
            }
            if let Err(why) = super::verify::check_standalone(stream, &name, &bytes, key) {
                tracing::error!(target: "agenthost::audit", segment = %name, %why, "a local audit segment does not verify; it is not uploaded");
                continue;
            }
            self.upload(key_of(&self.settings.prefix, stream, &name), bytes, true);
            uploaded += 1;
        }
        Ok(uploaded)
    }
}

fn content_md5(bytes: &[u8]) -> String {
    use base64::Engine as _;
    use md5::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(bytes))
}

impl Sink for S3Sink {
    fn sealed(&self, stream: &str, name: &str, path: &Path) {
        let checked =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display())).and_then(
                |bytes| super::verify::check_standalone(stream, name, &bytes, &self.key).map(|()| bytes),
            );
        match checked {
            Ok(bytes) => self.upload(key_of(&self.settings.prefix, stream, name), bytes, true),
            Err(why) => {
                tracing::error!(target: "agenthost::audit", segment = %name, %why, "a sealed audit segment does not verify; it is not uploaded");
            }
        }
    }

    fn checkpoint(&self, stream: &str, head: &Path, _seq: u64) {
        if let Ok(bytes) = std::fs::read(head) {
            self.upload(key_of(&self.settings.prefix, stream, HEAD_FILE), bytes, false);
        }
    }

    fn index(&self, index: &Path) {
        if let Ok(bytes) = std::fs::read(index) {
            let prefix = self.settings.prefix.trim_matches('/');
            let key =
                if prefix.is_empty() { INDEX_FILE.to_owned() } else { format!("{prefix}/{INDEX_FILE}") };
            self.upload(key, bytes, false);
        }
    }
}

async fn list(client: &Client, bucket: &str, prefix: &str) -> Result<Vec<String>, AuditError> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| AuditError::Sink(format!("cannot list s3://{bucket}/{prefix}: {}", describe(&e))))?;
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        match page.next_continuation_token() {
            Some(next) if page.is_truncated().unwrap_or(false) => token = Some(next.to_owned()),
            _ => break,
        }
    }
    Ok(keys)
}

/// The Object Lock state of one uploaded segment, read back with HeadObject
/// (which S3 and emulators answer with the `x-amz-object-lock-*` headers).
#[derive(Debug, Clone, Serialize)]
pub struct Retention {
    pub key: String,
    pub mode: Option<String>,
    pub retain_until: Option<String>,
}

/// Everything under `s3://bucket/prefix`, as streams to verify (with the
/// signed stream index, if there is one), and the retention of each segment.
///
/// # Errors
/// When the bucket cannot be listed or an object read.
pub async fn fetch(
    client: &Client,
    bucket: &str,
    prefix: &str,
) -> Result<(Vec<StreamInput>, Option<Vec<u8>>, Vec<Retention>), AuditError> {
    let prefix = prefix.trim_matches('/');
    let keys = list(client, bucket, prefix).await?;
    let mut streams: Vec<StreamInput> = Vec::new();
    let mut index = None;
    let mut retention = Vec::new();
    let mut sorted = keys;
    sorted.sort();
    for key in sorted {
        let rest = key.strip_prefix(prefix).unwrap_or(&key).trim_start_matches('/');
        if rest == INDEX_FILE {
            index = Some(read_object(client, bucket, &key).await?);
            continue;
        }
        let Some((stream, name)) = rest.split_once('/') else { continue };
        let is_segment = name.starts_with("seg-") && name.ends_with(".log");
        if !is_segment && name != HEAD_FILE {
            continue;
        }
        let bytes = read_object(client, bucket, &key).await?;
        let input = match streams.iter_mut().find(|s| s.name == stream) {
            Some(input) => input,
            None => {
                streams.push(StreamInput { name: stream.to_owned(), ..StreamInput::default() });
                let last = streams.len() - 1;
                &mut streams[last]
            }
        };
        if is_segment {
            input.segments.push((name.to_owned(), bytes));
            let head = client.head_object().bucket(bucket).key(&key).send().await.map_err(|e| {
                AuditError::Sink(format!(
                    "cannot read the retention of s3://{bucket}/{key}: {}",
                    describe(&e)
                ))
            })?;
            retention.push(Retention {
                key: key.clone(),
                mode: head.object_lock_mode().map(|m| m.as_str().to_owned()),
                retain_until: head.object_lock_retain_until_date().map(|d| d.to_string()),
            });
        } else {
            input.head = Some(bytes);
        }
    }
    Ok((streams, index, retention))
}

async fn read_object(client: &Client, bucket: &str, key: &str) -> Result<Vec<u8>, AuditError> {
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| AuditError::Sink(format!("cannot read s3://{bucket}/{key}: {}", describe(&e))))?;
    Ok(object
        .body
        .collect()
        .await
        .map_err(|e| AuditError::Sink(format!("cannot read s3://{bucket}/{key}: {e}")))?
        .into_bytes()
        .to_vec())
}

/// Creates the audit bucket with Object Lock enabled (`agenthost aws bootstrap`).
///
/// # Errors
/// When the bucket cannot be created (an existing bucket of ours is fine).
pub async fn create_bucket(client: &Client, bucket: &str) -> Result<bool, AuditError> {
    if client.head_bucket().bucket(bucket).send().await.is_ok() {
        // It exists: it is only of use if Object Lock is on.
        let lock = client.get_object_lock_configuration().bucket(bucket).send().await.map_err(|e| {
            AuditError::Sink(format!(
                "the bucket {bucket} exists but its Object Lock setting cannot be read: {}",
                describe(&e)
            ))
        })?;
        let enabled = lock
            .object_lock_configuration()
            .and_then(|c| c.object_lock_enabled())
            .is_some_and(|e| e.as_str() == "Enabled");
        if !enabled {
            return Err(AuditError::Sink(format!(
                "the bucket {bucket} exists without Object Lock; audit segments need a bucket created with it"
            )));
        }
        return Ok(false);
    }
    match client.create_bucket().bucket(bucket).object_lock_enabled_for_bucket(true).send().await {
        Ok(_) => Ok(true),
        Err(e) => {
            let text = describe(&e);
            if text.contains("BucketAlreadyOwnedByYou") || text.contains("BucketAlreadyExists") {
                Ok(false)
            } else {
                Err(AuditError::Sink(format!("cannot create the bucket {bucket}: {text}")))
            }
        }
    }
}

/// Parses `s3://bucket/prefix`.
pub fn parse_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then(|| (bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}
