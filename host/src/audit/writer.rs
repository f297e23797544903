//! The single writer of an audit stream: orders records, chains them, writes
//! them in groups with one `fdatasync` per group, signs checkpoints and seals
//! segments.
//!
//! Callers only enqueue (a lock and a push: no I/O on a guest's host call);
//! a record is acknowledged once the group holding it is on disk. One thread
//! owns the files, so the chain has one order no matter how many callers.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::record::{self, GENESIS, Kind, Line, checkpoint_message, encode_line, now_rfc3339};
use super::{AuditError, Sink};
use crate::governance::KeyPair;
use crate::governance::keys::canonical_json;

/// The signed statement of the newest checkpoint, kept beside the segments
/// so that a stream cut short after it is seen as truncated.
pub const HEAD_FILE: &str = "HEAD.json";

/// A record waiting for the writer, its body already encoded by the caller:
/// callers encode in parallel on every core, the one writer only chains,
/// hashes and writes.
pub(crate) struct Pending {
    pub body: Vec<u8>,
}

pub(crate) struct Queue {
    pub items: Vec<Pending>,
    pub enqueued: u64,
    pub closing: bool,
    /// The writer waits on the condition variable: only then is a wake-up
    /// (a system call) worth making.
    pub sleeping: bool,
}

pub(crate) struct Durable {
    pub upto: u64,
    pub failed: Option<String>,
}

pub(crate) struct Shared {
    pub queue: Mutex<Queue>,
    pub wake: Condvar,
    pub durable: Mutex<Durable>,
    pub durable_changed: Condvar,
    pub durable_watch: tokio::sync::watch::Sender<u64>,
}

pub(crate) struct Settings {
    pub segment_bytes: u64,
    pub checkpoint_every: u64,
    pub checkpoint_interval: Duration,
    pub sinks: Vec<Arc<dyn Sink>>,
    pub stream: String,
}

/// The file a record is being appended to.
struct Segment {
    file: File,
    name: String,
    bytes: u64,
}

pub(crate) struct Writer {
    dir: PathBuf,
    key: KeyPair,
    settings: Settings,
    segment: Segment,
    generation: u64,
    seq: u64,
    head: String,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    buf: Vec<u8>,
    /// A checkpoint in `buf`, to publish as HEAD once it is durable.
    pending_head: Option<(u64, serde_json::Value)>,
}

/// Where an existing stream left off.
struct Resume {
    seq: u64,
    head: String,
    /// The newest segment, if it holds nothing yet and can be reused.
    empty: Option<(PathBuf, String)>,
    /// A torn tail (bytes after the last complete line) in the newest segment.
    torn: Option<(String, u64, Vec<u8>)>,
    /// This writer's generation: one more than any before it.
    generation: u64,
}

/// `seg-<first seq>-<writer generation>.log`: names sort in stream order,
/// and a writer that starts where a torn segment started still gets a name
/// of its own.
pub fn segment_name(first_seq: u64, generation: u64) -> String {
    format!("seg-{first_seq:020}-{generation:08}.log")
}

fn generation_of(name: &str) -> u64 {
    name.trim_end_matches(".log").rsplit('-').next().and_then(|g| g.parse().ok()).unwrap_or(0)
}

/// The segment files of a stream directory, in order.
pub fn segments(dir: &Path) -> Result<Vec<(String, PathBuf)>, AuditError> {
    let entries = std::fs::read_dir(dir).map_err(|e| AuditError::io(dir, e))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| AuditError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("seg-") && name.ends_with(".log") {
            found.push((name, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Finds the newest complete record of a stream; a writer always starts a
/// new segment after it, so a segment, once its writer is gone, never changes.
fn resume(dir: &Path) -> Result<Resume, AuditError> {
    let mut all = segments(dir)?;
    let generation = all.iter().map(|(name, _)| generation_of(name)).max().unwrap_or(0) + 1;
    let mut resume = Resume { seq: 0, head: GENESIS.to_owned(), empty: None, torn: None, generation };
    while let Some((name, path)) = all.pop() {
        let bytes = std::fs::read(&path).map_err(|e| AuditError::io(&path, e))?;
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |at| at + 1);
        if complete < bytes.len() && resume.torn.is_none() && resume.empty.is_none() {
            resume.torn = Some((name.clone(), complete as u64, bytes[complete..].to_vec()));
        }
        if bytes.is_empty() && resume.empty.is_none() && resume.torn.is_none() {
            resume.empty = Some((path.clone(), name.clone()));
        }
        let Some(line) =
            bytes[..complete.saturating_sub(1)].rsplit(|&b| b == b'\n').next().filter(|l| !l.is_empty())
        else {
            continue;
        };
        let parsed = Line::parse(line).map_err(|why| AuditError::Damaged {
            dir: dir.to_path_buf(),
            detail: format!("the last record of {name} is malformed ({why})"),
        })?;
        if !parsed.hash_matches() {
            return Err(AuditError::Damaged {
                dir: dir.to_path_buf(),
                detail: format!("the last record of {name} (seq {}) does not match its hash", parsed.seq),
            });
        }
        resume.seq = parsed.seq;
        resume.head = String::from_utf8_lossy(parsed.hash).into_owned();
        break;
    }
    Ok(resume)
}

fn open_segment(dir: &Path, first_seq: u64, generation: u64) -> Result<Segment, AuditError> {
    let name = segment_name(first_seq, generation);
    let path = dir.join(&name);
    let file =
        OpenOptions::new().create_new(true).append(true).open(&path).map_err(|e| AuditError::io(&path, e))?;
    sync_dir(dir)?;
    Ok(Segment { file, name, bytes: 0 })
}

/// Makes a new file's directory entry durable, not only its contents.
fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| AuditError::io(dir, e))
}

impl Writer {
    pub(crate) fn open(dir: &Path, key: KeyPair, settings: Settings) -> Result<Writer, AuditError> {
        let resume = resume(dir)?;
        let segment = match resume.empty {
            Some((path, name)) if name.starts_with(&format!("seg-{:020}-", resume.seq + 1)) => {
                let file =
                    OpenOptions::new().append(true).open(&path).map_err(|e| AuditError::io(&path, e))?;
                Segment { file, name, bytes: 0 }
            }
            _ => open_segment(dir, resume.seq + 1, resume.generation)?,
        };
        let mut writer = Writer {
            dir: dir.to_path_buf(),
            key,
            settings,
            segment,
            generation: resume.generation,
            seq: resume.seq,
            head: resume.head,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            buf: Vec::with_capacity(1 << 20),
            pending_head: None,
        };
        if let Some((segment, offset, bytes)) = resume.torn {
            // Keep the torn bytes where they are (they are evidence of the
            // crash) and say in the chain exactly what was found.
            tracing::warn!(
                target: "agenthost::audit",
                segment = %segment,
                offset,
                bytes = bytes.len(),
                "the audit stream ends with a torn record (the host stopped mid-write); continuing in a new segment"
            );
            let body = canonical_json(&json!({
                "id": super::record_id(),
                "kind": Kind::Recovery.as_str(),
                "time": now_rfc3339(),
                "what": {
                    "segment": segment,
                    "offset": offset,
                    "torn_bytes": bytes.len(),
                    "torn_sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
                },
                "why": "the previous writer stopped in the middle of this record; it was never acknowledged",
            }));
            writer.push(&body);
            writer.commit()?;
            writer.checkpoint()?;
        }
        Ok(writer)
    }

    fn push(&mut self, body: &str) {
        self.seq += 1;
        self.head = encode_line(self.seq, &self.head, body, &mut self.buf);
        self.since_checkpoint += 1;
    }

    fn push_event(&mut self, item: &Pending) {
        self.seq += 1;
        self.head = record::encode_body_line(self.seq, &self.head, &item.body, &mut self.buf);
        self.since_checkpoint += 1;
    }

    /// Writes the buffered lines and makes them durable; then publishes the
    /// newest checkpoint among them as HEAD.
    fn commit(&mut self) -> Result<(), AuditError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = self.dir.join(&self.segment.name);
        self.segment.file.write_all(&self.buf).map_err(|e| AuditError::io(&path, e))?;
        self.segment.file.sync_data().map_err(|e| AuditError::io(&path, e))?;
        self.segment.bytes += self.buf.len() as u64;
        self.buf.clear();
        if let Some((seq, head)) = self.pending_head.take() {
            self.publish_head(seq, &head)?;
        }
        Ok(())
    }

    /// Appends (to the buffer) a signed checkpoint over the newest record.
    fn push_checkpoint(&mut self) {
        let (seq, hash) = (self.seq, self.head.clone());
        let signature = self.key.sign_bytes(checkpoint_message(seq, &hash).as_bytes());
        let body = canonical_json(&json!({
            "id": super::record_id(),
            "kind": Kind::Checkpoint.as_str(),
            "time": now_rfc3339(),
            "what": { "seq": seq, "hash": hash, "key": self.key.id(), "signature": signature },
        }));
        self.push(&body);
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        let head = json!({
            "stream": self.settings.stream,
            "segment": self.segment.name,
            "seq": seq,
            "hash": hash,
            "key": self.key.id(),
            "signature": signature,
            "time": now_rfc3339(),
        });
        self.pending_head = Some((seq, head));
    }

    /// A checkpoint, made durable.
    fn checkpoint(&mut self) -> Result<(), AuditError> {
        self.push_checkpoint();
        self.commit()
    }

    /// `HEAD.json`, replaced atomically, then handed to the sinks. It is a
    /// copy of a checkpoint that is already durable in the segment, so it is
    /// not fsync'd itself: after a crash it may name an older checkpoint,
    /// which verifies just as well.
    fn publish_head(&self, seq: u64, head: &serde_json::Value) -> Result<(), AuditError> {
        let tmp = self.dir.join("HEAD.json.tmp");
        let target = self.dir.join(HEAD_FILE);
        let text = serde_json::to_vec_pretty(head).unwrap_or_default();
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &target))
            .map_err(|e| AuditError::io(&target, e))?;
        for sink in &self.settings.sinks {
            sink.checkpoint(&self.settings.stream, &target, seq);
        }
        Ok(())
    }

    /// Ends the current segment with a checkpoint and starts the next one.
    fn seal(&mut self) -> Result<(), AuditError> {
        if self.since_checkpoint > 0 {
            self.push_checkpoint();
        }
        self.commit()?;
        let sealed = self.dir.join(&self.segment.name);
        let name = self.segment.name.clone();
        self.segment = open_segment(&self.dir, self.seq + 1, self.generation)?;
        for sink in &self.settings.sinks {
            sink.sealed(&self.settings.stream, &name, &sealed);
        }
        Ok(())
    }

    /// Chains one group of records, with the checkpoints and seals that fall
    /// inside it, and makes it durable.
    fn write_group(&mut self, items: &[Pending]) -> Result<(), AuditError> {
        for item in items {
            self.push_event(item);
            if self.since_checkpoint >= self.settings.checkpoint_every {
                self.push_checkpoint();
            }
            if self.segment.bytes + self.buf.len() as u64 >= self.settings.segment_bytes {
                self.seal()?;
            }
        }
        self.commit()
    }

    fn due(&self) -> bool {
        self.since_checkpoint >= self.settings.checkpoint_every
            || (self.since_checkpoint > 0
                && self.last_checkpoint.elapsed() >= self.settings.checkpoint_interval)
    }

    /// The writer thread: take what is queued, write it as one group, publish
    /// the new durable mark; checkpoint when due; finish on close.
    pub(crate) fn run(mut self, shared: Arc<Shared>) {
        let mut written: u64 = 0;
        loop {
            let (items, closing) = {
                let Ok(mut queue) = shared.queue.lock() else { return };
                while queue.items.is_empty() && !queue.closing {
                    let wait = self.settings.checkpoint_interval;
                    queue.sleeping = true;
                    let Ok((guard, timeout)) = shared.wake.wait_timeout(queue, wait) else { return };
                    queue = guard;
                    queue.sleeping = false;
                    if timeout.timed_out() && queue.items.is_empty() {
                        break;
                    }
                }
                (std::mem::take(&mut queue.items), queue.closing)
            };
            let count = items.len() as u64;
            let mut result = self.write_group(&items);
            if result.is_ok() && (self.due() || (closing && self.since_checkpoint > 0)) {
                result = self.checkpoint();
            }
            written += count;
            let Ok(mut durable) = shared.durable.lock() else { return };
            match result {
                Ok(()) => durable.upto = written,
                Err(e) => {
                    tracing::error!(target: "agenthost::audit", error = %e, "the audit trail cannot be written");
                    durable.failed = Some(e.to_string());
                }
            }
            let failed = durable.failed.is_some();
            drop(durable);
            shared.durable_changed.notify_all();
            let _ = shared.durable_watch.send(written);
            if failed || (closing && shared.queue.lock().map(|q| q.items.is_empty()).unwrap_or(true)) {
                if failed {
                    self.fail_queue(&shared);
                } else if self.segment.bytes > 0 {
                    // The next writer starts a new segment: this one is final.
                    let path = self.dir.join(&self.segment.name);
                    for sink in &self.settings.sinks {
                        sink.sealed(&self.settings.stream, &self.segment.name, &path);
                    }
                }
                return;
            }
        }
    }

    /// After a write error nothing more is accepted: the queue is refused.
    fn fail_queue(&self, shared: &Shared) {
        if let Ok(mut queue) = shared.queue.lock() {
            queue.closing = true;
            queue.items.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_sort_in_sequence_order() {
        assert!(segment_name(9, 2) < segment_name(10, 1));
        assert!(segment_name(9, 1) < segment_name(9, 2));
        assert_eq!(segment_name(1, 1), "seg-00000000000000000001-00000001.log");
        assert_eq!(generation_of(&segment_name(3, 12)), 12);
        let event = record::Event::new(Kind::Evidence, "t", "ok", json!({"a": "x\ny"}));
        assert!(!event.body("i", std::time::SystemTime::now()).contains('\n'));
    }
}
