//! The single writer of an audit stream: orders records, chains them, writes
//! them in groups with one `fdatasync` per group, signs checkpoints and seals
//! segments.
//!
//! Callers only enqueue (a lock and a push: no I/O on a guest's host call);
//! a record is acknowledged once the group holding it is on disk. One thread
//! owns the files, so the chain has one order no matter how many callers.
//!
//! A writer trusts nothing it finds on disk: before chaining onto a stream
//! it checks the tail back to the newest checkpoint signed with its own key
//! (chain and signature), and states in a `recovery` record what it
//! inherited — a torn record, a stream its previous writer did not close,
//! records no checkpoint of theirs signed — so `verify` can tell a crash
//! from a cut and never takes planted records for signed ones. A new
//! stream's first record names the stream, host and key; every checkpoint
//! names the stream and why it was written, and the last one a writer
//! writes says `close`.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::record::{
    self, GENESIS, Kind, Line, Reason, checkpoint_message, checkpoint_message_v1, encode_line, head_message,
    now_rfc3339,
};
use super::{AuditError, Sink};
use crate::keys::canonical_json;
use crate::keys::{KeyPair, PublicKey};

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
    /// Seals asked for ([`super::AuditLog::seal`]); the writer seals when
    /// this is ahead of what it has done.
    pub seals_wanted: u64,
    /// The writer waits on the condition variable: only then is a wake-up
    /// (a system call) worth making.
    pub sleeping: bool,
}

pub(crate) struct Durable {
    pub upto: u64,
    /// Seals asked for that are done (the segment sealed and handed to the sinks).
    pub sealed: u64,
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
    /// The stream index had to be rebuilt (see `index_stream`): recorded
    /// in the stream so verify can say so.
    pub index_note: Option<String>,
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
    /// How many HEADs this stream has had: each new one counts on.
    head_counter: u64,
}

/// Where an existing stream left off, and what of it this writer's key
/// vouches for.
struct Resume {
    seq: u64,
    head: String,
    /// The newest segment, if it holds nothing yet and can be reused.
    empty: Option<(PathBuf, String)>,
    /// A torn tail (bytes after the last complete line) in the newest segment.
    torn: Option<(String, u64, Vec<u8>)>,
    /// This writer's generation: one more than any before it.
    generation: u64,
    /// The newest record signed by a checkpoint that verifies with this
    /// writer's key (the checkpoint's own seq), 0 for none.
    verified_through: u64,
    /// Whether the last record is a verified `close` checkpoint.
    closed: bool,
    /// What the newest verified checkpoint signs: (seq, hash, HEAD counter).
    signed: Option<(u64, String, u64)>,
}

/// `seg-<first seq>-<writer generation>-<random>.log`: names sort in
/// stream order, a writer that starts where a torn segment started still
/// gets a name of its own, and so does one whose predecessors' newest
/// segments were deleted (the random part): a name is never reused, so an
/// upload never replaces an object already in the bucket.
pub fn segment_name(first_seq: u64, generation: u64) -> String {
    format!("seg-{first_seq:020}-{generation:08}-{:08x}.log", rand::random::<u32>())
}

/// The writer generation in a segment name (`seg-<seq>-<generation>[-<random>].log`).
pub fn generation_of(name: &str) -> u64 {
    name.trim_end_matches(".log").split('-').nth(2).and_then(|g| g.parse().ok()).unwrap_or(0)
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

/// The complete lines of a segment (without their LF), and the offset
/// where a torn tail starts, if there is one.
fn complete_lines(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |at| at + 1);
    let lines =
        if complete == 0 { Vec::new() } else { bytes[..complete - 1].split(|&b| b == b'\n').collect() };
    (lines, complete)
}

/// A line's checkpoint, if it is one whose signature `key` verifies for
/// `stream` and which signs the line before it: (reason, for v2).
fn verified_checkpoint(
    line: &Line<'_>,
    stream: &str,
    key: &PublicKey,
    previous: Option<&Line<'_>>,
) -> Option<Option<Reason>> {
    let body = line.body_json()?;
    if body.get("kind").and_then(serde_json::Value::as_str) != Some(Kind::Checkpoint.as_str()) {
        return None;
    }
    let what = body.get("what")?;
    let seq = what.get("seq")?.as_u64()?;
    let hash = what.get("hash")?.as_str()?;
    let signature = what.get("signature")?.as_str()?;
    let previous = previous?;
    if seq != previous.seq || hash.as_bytes() != previous.hash {
        return None;
    }
    match what.get("reason").and_then(serde_json::Value::as_str) {
        Some(reason) => {
            let reason = Reason::parse(reason)?;
            if what.get("stream").and_then(serde_json::Value::as_str) != Some(stream) {
                return None;
            }
            let counter = what.get("counter").and_then(serde_json::Value::as_u64)?;
            let message = checkpoint_message(stream, reason, counter, seq, hash);
            key.verify_bytes(message.as_bytes(), signature).ok().map(|()| Some(reason))
        }
        None => key.verify_bytes(checkpoint_message_v1(seq, hash).as_bytes(), signature).ok().map(|()| None),
    }
}

/// Finds where a stream left off and checks what it inherits: the chain
/// from the newest checkpoint that `key` verifies to the last record must
/// be intact (else the stream is refused as damaged); records after that
/// checkpoint are reported as unsigned. Reads one segment at a time.
fn resume(dir: &Path, stream: &str, key: &PublicKey) -> Result<Resume, AuditError> {
    let all = segments(dir)?;
    let damaged = |detail: String| AuditError::Damaged { dir: dir.to_path_buf(), detail };
    let generation = all
        .iter()
        .map(|(name, _)| generation_of(name))
        .max()
        .unwrap_or(0)
        .checked_add(1)
        .ok_or_else(|| damaged("a segment name carries the highest writer generation".to_owned()))?;
    let mut resume = Resume {
        seq: 0,
        head: GENESIS.to_owned(),
        empty: None,
        torn: None,
        generation,
        verified_through: 0,
        closed: false,
        signed: None,
    };
    // Backwards: the newest segment with records, the torn tail, and the
    // segment holding the newest checkpoint this key verifies.
    let mut start = 0;
    let mut last_found = false;
    for (index, (name, path)) in all.iter().enumerate().rev() {
        let bytes = std::fs::read(path).map_err(|e| AuditError::io(path, e))?;
        let (lines, complete) = complete_lines(&bytes);
        if !last_found {
            if complete < bytes.len() && resume.torn.is_none() && resume.empty.is_none() {
                resume.torn = Some((name.clone(), complete as u64, bytes[complete..].to_vec()));
            }
            if bytes.is_empty() && resume.empty.is_none() && resume.torn.is_none() {
                resume.empty = Some((path.clone(), name.clone()));
            }
        }
        if lines.is_empty() {
            continue;
        }
        last_found = true;
        let parsed: Vec<Line<'_>> = lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                Line::parse(line)
                    .map_err(|why| damaged(format!("line {} of {name} is malformed ({why})", i + 1)))
            })
            .collect::<Result<_, _>>()?;
        let found = (1..parsed.len())
            .rev()
            .find(|&i| verified_checkpoint(&parsed[i], stream, key, Some(&parsed[i - 1])).is_some());
        if let Some(i) = found {
            resume.verified_through = parsed[i].seq;
            let what = parsed[i].body_json().and_then(|b| b.get("what").cloned()).unwrap_or_default();
            resume.signed = Some((
                what.get("seq").and_then(serde_json::Value::as_u64).unwrap_or(0),
                what.get("hash").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned(),
                what.get("counter").and_then(serde_json::Value::as_u64).unwrap_or(0),
            ));
            start = index;
            break;
        }
    }
    // Forwards from there: every link must hold.
    let mut expected: Option<(u64, Vec<u8>)> = None;
    for (name, path) in &all[start..] {
        let bytes = std::fs::read(path).map_err(|e| AuditError::io(path, e))?;
        let (lines, _) = complete_lines(&bytes);
        let mut previous: Option<Line<'_>> = None;
        for (i, raw) in lines.iter().enumerate() {
            let line = Line::parse(raw)
                .map_err(|why| damaged(format!("line {} of {name} is malformed ({why})", i + 1)))?;
            if !line.hash_matches() {
                return Err(damaged(format!("record {} ({name}) does not match its hash", line.seq)));
            }
            if let Some((seq, prev)) = &expected
                && (line.seq != *seq || line.prev != prev.as_slice())
            {
                return Err(damaged(format!(
                    "record {} ({name}) does not follow record {} in the chain",
                    line.seq,
                    seq.saturating_sub(1)
                )));
            }
            let next = line.seq.checked_add(1).ok_or_else(|| {
                damaged(format!("record {} ({name}) has the highest sequence number", line.seq))
            })?;
            resume.closed = line.seq >= resume.verified_through
                && resume.verified_through > 0
                && verified_checkpoint(&line, stream, key, previous.as_ref()) == Some(Some(Reason::Close));
            resume.seq = line.seq;
            resume.head = String::from_utf8_lossy(line.hash).into_owned();
            expected = Some((next, line.hash.to_vec()));
            previous = Some(line);
        }
    }
    Ok(resume)
}

/// What the stream's `HEAD.json` says, checked against the newest signed
/// checkpoint of the tail: the counter to go on from (never reset, even
/// when HEAD is gone: checkpoints carry it too), and what is wrong with
/// HEAD if it is missing, unsigned by this key, or names another record
/// (the newest segments may have been deleted with it).
fn head_state(
    dir: &Path,
    stream: &str,
    key: &PublicKey,
    signed: Option<&(u64, String, u64)>,
) -> (u64, Option<String>) {
    let from_checkpoint = signed.map_or(0, |s| s.2);
    let Some((seq, hash, counter)) = signed else { return (0, None) };
    let Ok(bytes) = std::fs::read(dir.join(HEAD_FILE)) else {
        return (from_checkpoint, Some(format!("{HEAD_FILE} is missing")));
    };
    let Ok(head) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return (from_checkpoint, Some(format!("{HEAD_FILE} is not JSON")));
    };
    let field =
        |name: &str| head.get(name).and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
    let head_counter = head.get("counter").and_then(serde_json::Value::as_u64).unwrap_or(0);
    let head_seq = head.get("seq").and_then(serde_json::Value::as_u64).unwrap_or(0);
    let message = head_message(stream, &field("segment"), head_counter, head_seq, &field("hash"));
    if key.verify_bytes(message.as_bytes(), &field("signature")).is_err() {
        return (
            from_checkpoint,
            Some(format!("{HEAD_FILE} is not signed by this host's key for stream `{stream}`")),
        );
    }
    let counter_next = from_checkpoint.max(head_counter);
    if head_seq != *seq || field("hash") != *hash || head_counter != *counter {
        return (
            counter_next,
            Some(format!(
                "{HEAD_FILE} names seq {head_seq} (counter {head_counter}) but the newest signed checkpoint signs seq {seq} (counter {counter})"
            )),
        );
    }
    (counter_next, None)
}

/// This machine's name, for the record that starts a stream.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
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
        let public = key.public();
        let resume = resume(dir, &settings.stream, &public)?;
        let next = resume.seq.saturating_add(1);
        let segment = match &resume.empty {
            Some((path, name)) if name.starts_with(&format!("seg-{next:020}-")) => {
                let file = OpenOptions::new().append(true).open(path).map_err(|e| AuditError::io(path, e))?;
                Segment { file, name: name.clone(), bytes: 0 }
            }
            _ => open_segment(dir, next, resume.generation)?,
        };
        let (head_counter, head_problem) = head_state(dir, &settings.stream, &public, resume.signed.as_ref());
        let mut writer = Writer {
            dir: dir.to_path_buf(),
            key,
            settings,
            segment,
            generation: resume.generation,
            seq: resume.seq,
            head: resume.head.clone(),
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            buf: Vec::with_capacity(1 << 20),
            pending_head: None,
            head_counter,
        };
        if resume.seq == 0 {
            // A new stream says what it is, in its first (hashed) record.
            let body = canonical_json(&json!({
                "id": super::record_id(),
                "kind": Kind::Stream.as_str(),
                "time": now_rfc3339(),
                "what": {
                    "stream": writer.settings.stream,
                    "host": host_name(),
                    "key": writer.key.id(),
                    "generation": writer.generation,
                    "index_rebuilt": writer.settings.index_note,
                },
            }));
            writer.push(&body);
            writer.commit()?;
            return Ok(writer);
        }
        let unsigned =
            (resume.verified_through < resume.seq).then(|| (resume.verified_through + 1, resume.seq));
        let rebuilt = writer.settings.index_note.is_some();
        if resume.torn.is_some() || !resume.closed || unsigned.is_some() || head_problem.is_some() || rebuilt
        {
            writer.recover(&resume, unsigned, head_problem)?;
        }
        Ok(writer)
    }

    /// States what this writer inherited from one that did not end the
    /// stream cleanly, and signs it at once.
    fn recover(
        &mut self,
        resume: &Resume,
        unsigned: Option<(u64, u64)>,
        head: Option<String>,
    ) -> Result<(), AuditError> {
        let mut what = json!({
            "head": head,
            "index_rebuilt": self.settings.index_note,
            "previous_seq": resume.seq,
            "previous_closed": resume.closed,
            "verified_through": resume.verified_through,
            "unsigned": unsigned.map(|(from, to)| json!({ "from": from, "to": to })),
            "generation": self.generation,
        });
        let mut why = Vec::new();
        if let Some((segment, offset, bytes)) = &resume.torn {
            // Keep the torn bytes where they are (they are evidence of the
            // crash) and say in the chain exactly what was found.
            tracing::warn!(
                target: "agenthost::audit",
                segment = %segment,
                offset,
                bytes = bytes.len(),
                "the audit stream ends with a torn record (the host stopped mid-write); continuing in a new segment"
            );
            what["segment"] = segment.clone().into();
            what["offset"] = (*offset).into();
            what["torn_bytes"] = bytes.len().into();
            what["torn_sha256"] = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)).into();
            why.push("the previous writer stopped in the middle of a record; it was never acknowledged");
        }
        if !resume.closed {
            why.push("the previous writer did not end the stream with a close checkpoint (it crashed, was killed, or the stream was cut)");
        } else if what["head"].is_string() {
            why.push("the stream ends cleanly but its HEAD does not name its newest checkpoint: newer segments may have been deleted");
        }
        if let Some((from, to)) = unsigned {
            tracing::warn!(
                target: "agenthost::audit",
                from,
                to,
                "records at the end of the audit stream are not signed by this host's key; they are marked as inherited unsigned"
            );
            why.push("records after the newest checkpoint this host's key verifies were never signed by their writer");
        }
        let body = canonical_json(&json!({
            "id": super::record_id(),
            "kind": Kind::Recovery.as_str(),
            "time": now_rfc3339(),
            "what": what,
            "why": why.join("; "),
        }));
        self.push(&body);
        self.commit()?;
        self.checkpoint(Reason::Recovery)
    }

    fn push(&mut self, body: &str) {
        self.seq = self.seq.saturating_add(1);
        self.head = encode_line(self.seq, &self.head, body, &mut self.buf);
        self.since_checkpoint += 1;
    }

    fn push_event(&mut self, item: &Pending) {
        self.seq = self.seq.saturating_add(1);
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

    /// Appends (to the buffer) a signed checkpoint over the newest record,
    /// and prepares the HEAD that will name it.
    fn push_checkpoint(&mut self, reason: Reason) {
        let (seq, hash) = (self.seq, self.head.clone());
        let stream = self.settings.stream.clone();
        self.head_counter = self.head_counter.saturating_add(1);
        let counter = self.head_counter;
        let signature =
            self.key.sign_bytes(checkpoint_message(&stream, reason, counter, seq, &hash).as_bytes());
        let body = canonical_json(&json!({
            "id": super::record_id(),
            "kind": Kind::Checkpoint.as_str(),
            "time": now_rfc3339(),
            "what": {
                "seq": seq,
                "hash": hash,
                "key": self.key.id(),
                "signature": signature,
                "stream": stream,
                "reason": reason.as_str(),
                "counter": counter,
            },
        }));
        self.push(&body);
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        let head_signature =
            self.key.sign_bytes(head_message(&stream, &self.segment.name, counter, seq, &hash).as_bytes());
        let head = json!({
            "format": "agenthost-audit-head-v1",
            "stream": stream,
            "segment": self.segment.name,
            "counter": counter,
            "seq": seq,
            "hash": hash,
            "key": self.key.id(),
            "signature": head_signature,
            "time": now_rfc3339(),
        });
        self.pending_head = Some((seq, head));
    }

    /// A checkpoint, made durable.
    fn checkpoint(&mut self, reason: Reason) -> Result<(), AuditError> {
        self.push_checkpoint(reason);
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
        self.push_checkpoint(Reason::Seal);
        self.commit()?;
        let sealed = self.dir.join(&self.segment.name);
        let name = self.segment.name.clone();
        self.segment = open_segment(&self.dir, self.seq.saturating_add(1), self.generation)?;
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
                self.push_checkpoint(Reason::Periodic);
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
        let mut seals_done: u64 = 0;
        loop {
            let (items, closing, seals_wanted) = {
                let Ok(mut queue) = shared.queue.lock() else { return };
                while queue.items.is_empty() && !queue.closing && queue.seals_wanted == seals_done {
                    let wait = self.settings.checkpoint_interval;
                    queue.sleeping = true;
                    let Ok((guard, timeout)) = shared.wake.wait_timeout(queue, wait) else { return };
                    queue = guard;
                    queue.sleeping = false;
                    if timeout.timed_out() && queue.items.is_empty() {
                        break;
                    }
                }
                (std::mem::take(&mut queue.items), queue.closing, queue.seals_wanted)
            };
            let count = items.len() as u64;
            let mut result = self.write_group(&items);
            // The last record a writer writes is a close checkpoint: a
            // stream that ends otherwise was cut or its writer crashed.
            if result.is_ok() && closing {
                result = self.checkpoint(Reason::Close);
                // The closed segment goes to the sinks below: that seals it too.
                seals_done = seals_wanted;
            } else if result.is_ok() && seals_wanted > seals_done {
                // Asked to seal: the segment ends here (if it holds
                // anything since the last seal) and goes to the sinks.
                if self.segment.bytes > 0 {
                    result = self.seal();
                }
                seals_done = seals_wanted;
            } else if result.is_ok() && self.due() {
                result = self.checkpoint(Reason::Periodic);
            }
            written += count;
            let Ok(mut durable) = shared.durable.lock() else { return };
            match result {
                Ok(()) => {
                    durable.upto = written;
                    durable.sealed = seals_done;
                }
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
        assert!(segment_name(1, 1).starts_with("seg-00000000000000000001-00000001-"));
        assert_ne!(segment_name(1, 1), segment_name(1, 1));
        assert_eq!(generation_of(&segment_name(3, 12)), 12);
        assert_eq!(generation_of("seg-00000000000000000003-00000007.log"), 7);
        let event = record::Event::new(Kind::Evidence, "t", "ok", json!({"a": "x\ny"}));
        assert!(!event.body("i", std::time::SystemTime::now()).contains('\n'));
    }
}
