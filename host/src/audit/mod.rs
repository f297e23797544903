//! The evidence plane: an append-only, hash-chained, signed audit trail.
//!
//! Every policy decision, model call, tool call, memory write, event publish,
//! approval, deploy and limit hit becomes one record: who (tenant, principal,
//! agent, component digest), what, when, why, with the `trace_id` and `run_id`
//! that telemetry carries too. Records go to *streams*: one directory per
//! writing host process under the audit root, each a chain of segment files
//! (`record.rs` has the line format, `docs/audit-format.md` the full
//! description). The trust boundary: anyone who can write the files can
//! change them, but not without `verify` finding the first record that no
//! longer fits; and they cannot forge a checkpoint without the signing key.
//!
//! A record is acknowledged once durable: callers enqueue without I/O, the
//! single writer thread of the stream writes groups with one `fdatasync`
//! each, and an invocation's result is returned only after its records are
//! on disk ([`AuditLog::durable`]).
//!
//! The signing key is given by the caller, from the host's key directory
//! or a secrets service — never read from the trail's own directory: a
//! trail does not vouch for itself. The set of streams is evidenced too:
//! `STREAMS.json` at the root lists every stream ever started there, signed,
//! so a stream directory that disappears is reported.

pub mod query;
pub mod record;
pub mod s3;
pub mod verify;
mod writer;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

pub use crate::settings::AuditSettings;
pub use record::Reason;
pub use record::{Event, Kind};
pub use verify::{Problem, ProblemKind, Report};
pub use writer::HEAD_FILE;

use crate::keys::{KeyPair, PublicKey};
use writer::{Durable, Queue, Settings, Shared, Writer};

/// Where sealed segments and checkpoints go besides the local files.
pub trait Sink: Send + Sync {
    /// A segment is complete and will never change again.
    fn sealed(&self, stream: &str, name: &str, path: &Path);
    /// A new signed checkpoint (the stream's `HEAD.json`) was written.
    fn checkpoint(&self, stream: &str, head: &Path, seq: u64);
    /// The signed stream index (`STREAMS.json`) changed.
    fn index(&self, _index: &Path) {}
}

/// A failure of the audit trail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("audit trail: cannot use {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "audit trail: the stream in {dir} is damaged: {detail}; run `agenthost audit verify --from {dir}`"
    )]
    Damaged { dir: PathBuf, detail: String },
    #[error("audit trail: {0}")]
    Key(String),
    #[error("audit trail: every stream under {0} is in use by another agenthost process")]
    Busy(PathBuf),
    #[error("audit trail: records cannot be written ({0}); calls that need evidence are refused")]
    Failed(String),
    #[error("audit trail: {0}")]
    Sink(String),
}

impl AuditError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        AuditError::Io { path: path.to_path_buf(), source }
    }
}

/// How a stream is written.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The stream's name: one directory under the audit root per writer.
    pub stream: String,
    /// A segment is sealed (and handed to the sinks) once it reaches this size.
    pub segment_bytes: u64,
    /// A checkpoint is signed after this many records…
    pub checkpoint_every: u64,
    /// …or after this long with unsigned records, whichever comes first.
    pub checkpoint_interval: Duration,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            stream: "host".to_owned(),
            segment_bytes: 64 << 20,
            checkpoint_every: 4096,
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

impl AuditSettings {
    pub fn options(&self) -> AuditOptions {
        let defaults = AuditOptions::default();
        AuditOptions {
            stream: self.stream.clone().unwrap_or(defaults.stream),
            segment_bytes: self.segment_bytes.unwrap_or(defaults.segment_bytes),
            checkpoint_every: self.checkpoint_every.unwrap_or(defaults.checkpoint_every),
            checkpoint_interval: self
                .checkpoint_interval_ms
                .map_or(defaults.checkpoint_interval, Duration::from_millis),
        }
    }
}

/// What an append returns: the record's id and its place in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub id: String,
    ticket: u64,
}

/// An open audit stream. Cloneable through `Arc`; closing it (or dropping the
/// last reference) signs a final checkpoint.
pub struct AuditLog {
    root: PathBuf,
    dir: PathBuf,
    stream: String,
    public: PublicKey,
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Held for the life of the log: one writer per stream.
    _lock: File,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// The public key beside an audit root (`audit.pub`): a copy the host
/// writes for convenience. It sits where the records sit, so whoever can
/// change them can change it: `verify` trusts it only with a warning.
pub fn root_public_key(root: &Path) -> Result<PublicKey, AuditError> {
    PublicKey::read(&root.join("audit.pub")).map_err(AuditError::Key)
}

/// The signed list of the streams under a root.
pub const INDEX_FILE: &str = "STREAMS.json";

/// Adds `stream` to the root's signed stream index (under a lock: several
/// processes share a root) and returns the index file, and — when there
/// was no index although streams exist (a trail from before the index, or
/// one whose index was deleted) — a note for the stream to record: the
/// index was rebuilt from the directories present, so a stream removed
/// before then would not show.
///
/// An index that does not verify with this host's key is never re-signed:
/// that would launder whatever was done to it.
fn index_stream(root: &Path, stream: &str, key: &KeyPair) -> Result<(PathBuf, Option<String>), AuditError> {
    let lock_path = root.join("STREAMS.lock");
    let lock = lock_file(&lock_path)?;
    lock.lock().map_err(|e| AuditError::io(&lock_path, e))?;
    let path = root.join(INDEX_FILE);
    let (mut streams, counter, note) = match std::fs::read(&path) {
        Ok(bytes) => {
            let (counter, listed) = verified_index(&bytes, &key.public()).ok_or_else(|| AuditError::Damaged {
                dir: root.to_path_buf(),
                detail: format!(
                    "{INDEX_FILE} does not verify with this host's key {}: the list of streams was altered; run `agenthost audit verify`, and move the file aside only once you know what happened",
                    key.id()
                ),
            })?;
            (listed, counter, None)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // No index, streams on disk: list them, and say so.
            let present = stream_dirs(root)?;
            let note = (!present.is_empty()).then(|| {
                format!("{INDEX_FILE} was missing; it now lists the streams present: {}", present.join(", "))
            });
            (present, 0, note)
        }
        Err(e) => return Err(AuditError::io(&path, e)),
    };
    // Never drop a name. A stream directory the signed index does not
    // list stays unlisted (verify reports it): it was planted or renamed.
    if streams.iter().any(|s| s == stream) && note.is_none() {
        return Ok((path, None));
    }
    if !streams.iter().any(|s| s == stream) {
        streams.push(stream.to_owned());
    }
    streams.sort();
    let counter = counter.saturating_add(1);
    let signature = key.sign_bytes(record::index_message(counter, &streams).as_bytes());
    let index = serde_json::json!({
        "format": "agenthost-audit-streams-v1",
        "counter": counter,
        "streams": streams,
        "key": key.id(),
        "signature": signature,
    });
    let tmp = root.join("STREAMS.json.tmp");
    let text = serde_json::to_vec_pretty(&index).unwrap_or_default();
    std::fs::write(&tmp, text)
        .and_then(|()| File::open(&tmp).and_then(|f| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| AuditError::io(&path, e))?;
    Ok((path, note))
}

/// A lock file (made if missing, never truncated), to take a lock on.
fn lock_file(path: &Path) -> Result<File, AuditError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| AuditError::io(path, e))
}

/// The names of the stream directories under a root that hold a segment.
fn stream_dirs(root: &Path) -> Result<Vec<String>, AuditError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| AuditError::io(root, e))? {
        let entry = entry.map_err(|e| AuditError::io(root, e))?;
        if entry.path().is_dir() && !writer::segments(&entry.path())?.is_empty() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// The counter and streams of an index, if `key` signed it.
fn verified_index(bytes: &[u8], key: &PublicKey) -> Option<(u64, Vec<String>)> {
    let index: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let counter = index.get("counter")?.as_u64()?;
    let streams: Vec<String> = index
        .get("streams")?
        .as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_owned))
        .collect::<Option<_>>()?;
    let signature = index.get("signature")?.as_str()?;
    key.verify_bytes(record::index_message(counter, &streams).as_bytes(), signature).ok()?;
    Some((counter, streams))
}

fn record_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl AuditLog {
    /// Opens (or starts) a stream under `root`, signing with `key` (from
    /// the host's key directory or secrets service, never from `root`). If
    /// the stream is in use by another process, the next free
    /// `<stream>.<n>` is taken.
    ///
    /// # Errors
    /// When the directory cannot be used, or the tail of the stream fails
    /// its chain (it is damaged).
    pub fn open(
        root: &Path,
        options: AuditOptions,
        key: KeyPair,
        sinks: Vec<Arc<dyn Sink>>,
    ) -> Result<Arc<AuditLog>, AuditError> {
        std::fs::create_dir_all(root).map_err(|e| AuditError::io(root, e))?;
        let pem = key.public().pem().map_err(AuditError::Key)?;
        let copy = root.join("audit.pub");
        if std::fs::read_to_string(&copy).ok().as_deref() != Some(pem.as_str()) {
            std::fs::write(&copy, &pem).map_err(|e| AuditError::io(&copy, e))?;
        }
        let (stream, dir, lock) = Self::claim(root, &options.stream)?;
        let (index, index_note) = index_stream(root, &stream, &key)?;
        for sink in &sinks {
            sink.index(&index);
        }
        let settings = Settings {
            segment_bytes: options.segment_bytes.max(1),
            checkpoint_every: options.checkpoint_every.max(1),
            checkpoint_interval: options.checkpoint_interval,
            sinks,
            stream: stream.clone(),
            index_note,
        };
        let public = key.public();
        let writer = Writer::open(&dir, key, settings)?;
        let (durable_watch, _) = tokio::sync::watch::channel(0);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                items: Vec::new(),
                enqueued: 0,
                closing: false,
                seals_wanted: 0,
                sleeping: false,
            }),
            wake: Condvar::new(),
            durable: Mutex::new(Durable { upto: 0, sealed: 0, failed: None }),
            durable_changed: Condvar::new(),
            durable_watch,
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("audit-{stream}"))
            .spawn(move || writer.run(thread_shared))
            .map_err(|e| AuditError::io(&dir, e))?;
        Ok(Arc::new(AuditLog {
            root: root.to_path_buf(),
            dir,
            stream,
            public,
            shared,
            thread: Mutex::new(Some(thread)),
            _lock: lock,
        }))
    }

    fn claim(root: &Path, stream: &str) -> Result<(String, PathBuf, File), AuditError> {
        if stream.is_empty() || !stream.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(AuditError::Key(format!(
                "the stream name `{stream}` may hold only letters, digits, `-`, `_` and `.`"
            )));
        }
        for n in 0..64 {
            let name = if n == 0 { stream.to_owned() } else { format!("{stream}.{n}") };
            let dir = root.join(&name);
            std::fs::create_dir_all(&dir).map_err(|e| AuditError::io(&dir, e))?;
            let lock_path = dir.join("LOCK");
            let lock = lock_file(&lock_path)?;
            match lock.try_lock() {
                Ok(()) => return Ok((name, dir, lock)),
                Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(e)) => return Err(AuditError::io(&lock_path, e)),
            }
        }
        Err(AuditError::Busy(root.to_path_buf()))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The stream's own directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes the local copies of sealed segments that another copy now
    /// holds (the caller has seen them all uploaded), keeping the newest
    /// segment with records (its signed seal is where a writer restarted
    /// here resumes the chain) and the open one. Returns how many went.
    ///
    /// # Errors
    /// When the directory cannot be read.
    pub fn prune_shipped(&self) -> Result<usize, AuditError> {
        let all = writer::segments(&self.dir)?;
        let non_empty: Vec<usize> = all
            .iter()
            .enumerate()
            .filter(|(_, (_, path))| std::fs::metadata(path).is_ok_and(|m| m.len() > 0))
            .map(|(i, _)| i)
            .collect();
        // The newest segment with records may be the open one (records
        // written since the last seal): then keep the one sealed before it.
        let keep_from = match non_empty.as_slice() {
            [] => return Ok(0),
            [.., before, last] if *last + 1 == all.len() => *before,
            [.., last] => *last,
        };
        let mut pruned = 0;
        for (_, path) in &all[..keep_from] {
            if std::fs::remove_file(path).is_ok() {
                pruned += 1;
            }
        }
        Ok(pruned)
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Queues a record; it is durable once [`AuditLog::durable`] says so.
    ///
    /// # Errors
    /// When the trail has failed or is closed: the caller must not go on as
    /// if the record existed.
    pub fn append(&self, event: &Event) -> Result<Receipt, AuditError> {
        self.append_owned(event.clone())
    }

    /// [`AuditLog::append`] without a copy of the event.
    ///
    /// # Errors
    /// As [`AuditLog::append`].
    pub fn append_owned(&self, event: Event) -> Result<Receipt, AuditError> {
        let id = record_id();
        let mut body = Vec::with_capacity(512);
        event.write_body(&id, std::time::SystemTime::now(), &mut body);
        let pending = writer::Pending { body };
        let ticket = {
            let mut queue =
                self.shared.queue.lock().map_err(|_| AuditError::Failed("writer lock poisoned".into()))?;
            if queue.closing {
                return Err(self
                    .failure()
                    .unwrap_or_else(|| AuditError::Failed("the trail is closed".into())));
            }
            queue.items.push(pending);
            queue.enqueued += 1;
            (queue.enqueued, queue.sleeping)
        };
        let (ticket, sleeping) = ticket;
        if sleeping {
            self.shared.wake.notify_one();
        }
        Ok(Receipt { id, ticket })
    }

    fn failure(&self) -> Option<AuditError> {
        let durable = self.shared.durable.lock().ok()?;
        durable.failed.clone().map(AuditError::Failed)
    }

    /// The ticket of the newest record queued so far.
    pub fn last_ticket(&self) -> u64 {
        self.shared.queue.lock().map(|q| q.enqueued).unwrap_or(0)
    }

    /// Waits until every record up to `receipt` is on disk.
    ///
    /// # Errors
    /// When the writer failed before getting there.
    pub async fn durable(&self, receipt: &Receipt) -> Result<(), AuditError> {
        self.durable_ticket(receipt.ticket).await
    }

    /// Waits until the first `ticket` records queued are on disk.
    ///
    /// # Errors
    /// When the writer failed before getting there.
    pub async fn durable_ticket(&self, ticket: u64) -> Result<(), AuditError> {
        let mut watch = self.shared.durable_watch.subscribe();
        loop {
            if let Some(e) = self.failure() {
                return Err(e);
            }
            if *watch.borrow_and_update() >= ticket {
                return Ok(());
            }
            if watch.changed().await.is_err() {
                return Err(self
                    .failure()
                    .unwrap_or_else(|| AuditError::Failed("the writer stopped".into())));
            }
        }
    }

    /// Ends the current segment now: what was queued is written, a signed
    /// seal checkpoint closes the segment, and the sinks get it (an S3 sink
    /// starts its upload). A segment with nothing in it is left as it is.
    /// For a process that may be frozen or reclaimed between requests (a
    /// Lambda execution environment), whose local disk is not evidence.
    ///
    /// # Errors
    /// When the writer failed or has stopped.
    pub async fn seal(&self) -> Result<(), AuditError> {
        let wanted = {
            let mut queue =
                self.shared.queue.lock().map_err(|_| AuditError::Failed("writer lock poisoned".into()))?;
            if queue.closing {
                return Err(AuditError::Failed("the audit trail is closed".into()));
            }
            queue.seals_wanted += 1;
            queue.seals_wanted
        };
        self.shared.wake.notify_all();
        let mut watch = self.shared.durable_watch.subscribe();
        loop {
            if let Some(e) = self.failure() {
                return Err(e);
            }
            let sealed = self.shared.durable.lock().map(|d| d.sealed).unwrap_or(0);
            if sealed >= wanted {
                return Ok(());
            }
            if watch.changed().await.is_err() {
                return Err(self
                    .failure()
                    .unwrap_or_else(|| AuditError::Failed("the writer stopped".into())));
            }
        }
    }

    /// Blocking form of [`AuditLog::durable_ticket`], for threads outside the async runtime.
    ///
    /// # Errors
    /// When the writer failed before getting there.
    pub fn wait_durable(&self, ticket: u64) -> Result<(), AuditError> {
        let poisoned = || AuditError::Failed("writer lock poisoned".into());
        let mut durable = self.shared.durable.lock().map_err(|_| poisoned())?;
        loop {
            if let Some(e) = &durable.failed {
                return Err(AuditError::Failed(e.clone()));
            }
            if durable.upto >= ticket {
                return Ok(());
            }
            durable = self.shared.durable_changed.wait(durable).map_err(|_| poisoned())?;
        }
    }

    /// Appends and waits until the record is durable; returns its id.
    ///
    /// # Errors
    /// As [`AuditLog::append`] and [`AuditLog::durable`].
    pub async fn record(&self, event: &Event) -> Result<String, AuditError> {
        let receipt = self.append(event)?;
        self.durable(&receipt).await?;
        Ok(receipt.id)
    }

    /// Appends and blocks until durable.
    ///
    /// # Errors
    /// As [`AuditLog::append`] and [`AuditLog::wait_durable`].
    pub fn record_blocking(&self, event: &Event) -> Result<String, AuditError> {
        let receipt = self.append(event)?;
        self.wait_durable(receipt.ticket)?;
        Ok(receipt.id)
    }

    /// Whether a record on disk in any stream of this trail's root holds
    /// `token` as a JSON string (say, an approval token's nonce): a check
    /// that deleting some other file cannot fool. It reads every segment,
    /// so it is for rare checks (a write-high call), not for every call.
    ///
    /// # Errors
    /// When a stream directory or segment cannot be read.
    pub fn mentions(&self, token: &str) -> Result<bool, AuditError> {
        let needle = format!("\"{token}\"");
        let finder = memchr::memmem::Finder::new(needle.as_bytes());
        let entries = std::fs::read_dir(&self.root).map_err(|e| AuditError::io(&self.root, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| AuditError::io(&self.root, e))?;
            if !entry.path().is_dir() {
                continue;
            }
            for (_, path) in writer::segments(&entry.path())? {
                let bytes = std::fs::read(&path).map_err(|e| AuditError::io(&path, e))?;
                if finder.find(&bytes).is_some() {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Writes what is queued, signs a final checkpoint and stops the writer.
    ///
    /// # Errors
    /// When the last group could not be written.
    pub fn close(&self) -> Result<(), AuditError> {
        if let Ok(mut queue) = self.shared.queue.lock() {
            queue.closing = true;
        }
        self.shared.wake.notify_all();
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        match self.failure() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
