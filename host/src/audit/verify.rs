//! `agenthost audit verify`: checks a stream's chain, checkpoints and head,
//! and names the first record that no longer fits.
//!
//! Segments are checked in parallel (each on its own, from its first line);
//! the joins between them and the signed head are checked afterwards, so the
//! first problem is still found in stream order.
//!
//! Beyond the chain: every checkpoint and the head name their stream (a
//! renamed or swapped stream directory fails), each writer's part of a
//! stream ends with a `close` checkpoint or the next writer's `recovery`
//! record says it did not (so a cut at a checkpoint shows), records a
//! writer inherited unsigned are named, and the signed stream index lists
//! every stream the root ever had (so a removed stream shows).

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::record::{
    GENESIS, Line, Reason, checkpoint_message, checkpoint_message_v1, head_message, index_message,
};
use super::writer::{HEAD_FILE, generation_of, segments};
use super::{AuditError, INDEX_FILE, root_public_key};
use crate::keys::PublicKey;

/// One stream to verify, however it was fetched.
#[derive(Debug, Clone, Default)]
pub struct StreamInput {
    pub name: String,
    /// Segment file names and contents, in order.
    pub segments: Vec<(String, Vec<u8>)>,
    /// The `HEAD.json` of the stream, if there is one.
    pub head: Option<Vec<u8>>,
}

/// What kind of damage was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A record's content no longer matches the chain.
    Modified,
    /// Records are missing from the middle of the stream.
    Deleted,
    /// A record that was never written by the host sits in the chain.
    Inserted,
    /// Records are out of order.
    Reordered,
    /// The stream ends before the point its signed head vouches for.
    Truncated,
    /// A line is not a record at all.
    Malformed,
    /// A checkpoint's signature is wrong, or signed by an unknown key.
    BadSignature,
    /// A writer's part of the stream ends without a close checkpoint and
    /// without the next writer acknowledging a crash: records were cut.
    Cut,
    /// The stream's records name another stream (a renamed or swapped directory).
    Renamed,
    /// A stream the signed index lists is gone, or one it does not list is there.
    Missing,
}

/// The first record that does not fit, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub segment: String,
    /// 1-based line in the segment.
    pub line: u64,
    /// The sequence number of the bad record, where one can be named.
    pub seq: Option<u64>,
    pub message: String,
}

/// A segment that ends in the middle of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Torn {
    pub segment: String,
    pub offset: u64,
    pub bytes: u64,
    /// Whether a later recovery record states it (the writer restarted).
    pub acknowledged: bool,
}

/// The outcome of verifying one stream.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamReport {
    pub stream: String,
    pub segments: usize,
    /// Records that verified, checkpoints included.
    pub records: u64,
    pub last_seq: u64,
    pub last_hash: String,
    pub checkpoints: u64,
    /// The newest record a valid checkpoint signs.
    pub signed_upto: u64,
    pub head_seq: Option<u64>,
    pub torn: Vec<Torn>,
    /// Writers that stopped without closing, as the next writer recorded
    /// (seq of the recovery record, the last seq before it).
    pub crashes: Vec<(u64, u64)>,
    /// Whether its last record is a close checkpoint.
    pub closed: bool,
    pub warnings: Vec<String>,
    pub problem: Option<Problem>,
}

/// The outcome of verifying every stream of an audit trail.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub streams: Vec<StreamReport>,
    /// The signed stream index, when one was checked: its counter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_counter: Option<u64>,
    /// Warnings about the trail as a whole.
    pub warnings: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.streams.iter().all(|s| s.problem.is_none())
    }

    pub fn has_warnings(&self) -> bool {
        !self.warnings.is_empty() || self.streams.iter().any(|s| !s.warnings.is_empty())
    }

    pub fn records(&self) -> u64 {
        self.streams.iter().map(|s| s.records).sum()
    }

    pub fn first_problem(&self) -> Option<&Problem> {
        self.streams.iter().find_map(|s| s.problem.as_ref())
    }
}

/// What one segment says about itself, checked from its own first line.
#[derive(Default)]
struct SegmentResult {
    /// The kind of its first record and, for a `stream` record, the stream it names.
    first_kind: Option<String>,
    first_names: Option<String>,
    /// The reason of its last record, if that is a checkpoint.
    last_reason: Option<Option<Reason>>,
    /// Checkpoints in the old (v1) form, which sign neither stream nor reason.
    v1_checkpoints: u64,
    /// A recovery record at its start: (its seq, the previous seq it
    /// names, whether it says the previous writer closed).
    recovery: Option<(u64, u64, bool)>,
    /// Ranges recovery records say were inherited unsigned.
    unsigned: Vec<(u64, u64)>,
    /// What recovery records say was wrong with the HEAD they found: (seq, note).
    head_notes: Vec<(u64, String)>,
    /// Notes of a stream index rebuilt from the directories present: (seq, note).
    index_notes: Vec<(u64, String)>,
    first: Option<(u64, String)>,
    last: Option<(u64, String)>,
    records: u64,
    checkpoints: u64,
    signed_upto: u64,
    /// The first line (1-based) whose seq/prev must match the previous segment.
    problem: Option<Problem>,
    torn: Option<Torn>,
    /// The hash at the head's seq, when the head falls in this segment.
    head_hash: Option<String>,
    /// A recovery record at the start: (segment, offset) it acknowledges.
    recovers: Option<(String, u64)>,
}

fn problem(kind: ProblemKind, segment: &str, line: u64, seq: Option<u64>, message: String) -> Problem {
    Problem { kind, segment: segment.to_owned(), line, seq, message }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Checks one segment's lines against each other and its checkpoints against `key`.
fn check_segment(
    stream: &str,
    name: &str,
    bytes: &[u8],
    key: Option<&PublicKey>,
    head_seq: Option<u64>,
) -> SegmentResult {
    let mut result = SegmentResult::default();
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |at| at + 1);
    if complete < bytes.len() {
        result.torn = Some(Torn {
            segment: name.to_owned(),
            offset: complete as u64,
            bytes: (bytes.len() - complete) as u64,
            acknowledged: false,
        });
    }
    let lines: Vec<&[u8]> = if complete == 0 {
        Vec::new()
    } else {
        memchr::memchr_iter(b'\n', &bytes[..complete])
            .scan(0, |start, end| {
                let line = &bytes[*start..end];
                *start = end + 1;
                Some(line)
            })
            .collect()
    };
    let hashes_ok = hashes_match(&lines);
    let mut expected: Option<(u64, &[u8])> = None;
    for (index, raw) in lines.iter().enumerate() {
        let number = index as u64 + 1;
        let line = match Line::parse(raw) {
            Ok(line) => line,
            Err(why) => {
                result.problem = Some(problem(
                    ProblemKind::Malformed,
                    name,
                    number,
                    None,
                    format!("line {number} of {name} is not a record: {why}"),
                ));
                return result;
            }
        };
        if !hashes_ok[index] {
            result.problem = Some(problem(
                ProblemKind::Modified,
                name,
                number,
                Some(line.seq),
                format!(
                    "record {} (line {number} of {name}) was modified: it does not match its hash",
                    line.seq
                ),
            ));
            return result;
        }
        if let Some((seq, prev)) = expected {
            if line.seq != seq {
                result.problem = Some(classify_gap(name, &lines, index, seq, line.seq));
                return result;
            }
            if line.prev != prev {
                result.problem = Some(problem(
                    ProblemKind::Modified,
                    name,
                    number - 1,
                    Some(seq - 1),
                    format!(
                        "record {} (line {} of {name}) was modified or replaced: record {seq} chains to a different predecessor",
                        seq - 1,
                        number - 1
                    ),
                ));
                return result;
            }
        } else {
            result.first = Some((line.seq, text(line.prev)));
            if let Some(body) = line.body_json() {
                result.first_kind = body.get("kind").and_then(Value::as_str).map(str::to_owned);
                result.first_names = body.pointer("/what/stream").and_then(Value::as_str).map(str::to_owned);
            }
            if let Some((segment, offset)) = recovery_of(&line) {
                result.recovers = Some((segment, offset));
            }
        }
        // A writer puts its recovery record (and a stream its stream record)
        // first in a segment: other lines need no second look.
        if index == 0
            && let Some(what) = recovery_what(&line)
        {
            result.recovery = Some((
                line.seq,
                what.get("previous_seq").and_then(Value::as_u64).unwrap_or(0),
                what.get("previous_closed").and_then(Value::as_bool).unwrap_or(false),
            ));
            if let (Some(from), Some(to)) = (
                what.pointer("/unsigned/from").and_then(Value::as_u64),
                what.pointer("/unsigned/to").and_then(Value::as_u64),
            ) {
                result.unsigned.push((from, to));
            }
            if let Some(head) = what.get("head").and_then(Value::as_str) {
                result.head_notes.push((line.seq, head.to_owned()));
            }
        }
        if index == 0
            && INDEX_REBUILT.find(line.body).is_some()
            && let Some(note) = line.body_json().and_then(|b| {
                let kind = b.get("kind").and_then(Value::as_str)?.to_owned();
                let note = b.pointer("/what/index_rebuilt").and_then(Value::as_str)?.to_owned();
                (kind == "stream" || kind == "recovery").then_some(note)
            })
        {
            result.index_notes.push((line.seq, note));
        }
        result.last_reason = None;
        if let Some(checkpoint) = checkpoint_of(&line) {
            // seq and prev of this line are already checked against the chain.
            let covers_previous =
                checkpoint.seq.checked_add(1) == Some(line.seq) && checkpoint.hash.as_bytes() == line.prev;
            if !covers_previous {
                result.problem = Some(problem(
                    ProblemKind::Modified,
                    name,
                    number,
                    Some(line.seq),
                    format!(
                        "checkpoint {} (line {number} of {name}) does not sign the record before it",
                        line.seq
                    ),
                ));
                return result;
            }
            if let Some(named) = &checkpoint.stream
                && named != stream
            {
                result.problem = Some(problem(
                    ProblemKind::Renamed,
                    name,
                    number,
                    Some(line.seq),
                    format!(
                        "checkpoint {} (line {number} of {name}) signs stream `{named}`, but it sits in stream `{stream}`: the stream was renamed or swapped",
                        line.seq
                    ),
                ));
                return result;
            }
            if let Err(why) = check_signature(key, &checkpoint) {
                result.problem = Some(problem(
                    ProblemKind::BadSignature,
                    name,
                    number,
                    Some(line.seq),
                    format!("checkpoint {} (line {number} of {name}): {why}", line.seq),
                ));
                return result;
            }
            result.checkpoints += 1;
            result.signed_upto = checkpoint.seq;
            if checkpoint.reason.is_none() {
                result.v1_checkpoints += 1;
            }
            result.last_reason = Some(checkpoint.reason);
        }
        if head_seq == Some(line.seq) {
            result.head_hash = Some(text(line.hash));
        }
        result.records += 1;
        expected = Some((line.seq.saturating_add(1), line.hash));
    }
    if let Some((next, hash)) = expected {
        result.last = Some((next - 1, text(hash)));
    }
    result
}

/// Whether each line's stored hash is right: the SHA-256 work, spread over
/// the machine's cores.
fn hashes_match(lines: &[&[u8]]) -> Vec<bool> {
    let check = |line: &&[u8]| Line::parse(line).is_ok_and(|l| l.hash_matches());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    if workers <= 1 || lines.len() < 4096 {
        return lines.iter().map(check).collect();
    }
    let mut out = vec![false; lines.len()];
    let chunk = lines.len().div_ceil(workers);
    std::thread::scope(|scope| {
        for (slots, input) in out.chunks_mut(chunk).zip(lines.chunks(chunk)) {
            scope.spawn(move || {
                for (slot, line) in slots.iter_mut().zip(input) {
                    *slot = check(line);
                }
            });
        }
    });
    out
}

/// A record out of place: decides between deletion, insertion and reordering.
fn classify_gap(name: &str, lines: &[&[u8]], index: usize, expected: u64, found: u64) -> Problem {
    let number = index as u64 + 1;
    let seq_at = |i: usize| lines.get(i).and_then(|l| Line::parse(l).ok()).map(|l| l.seq);
    if found < expected {
        return problem(
            ProblemKind::Inserted,
            name,
            number - 1,
            Some(expected - 1),
            format!(
                "record {} (line {}) was inserted: line {number} carries seq {found} again where {expected} was due",
                expected - 1,
                number - 1
            ),
        );
    }
    // A swap of two neighbours reads `expected + 1, expected, expected + 2`;
    // anything else in front of `expected` is a line that does not belong.
    let swapped = found == expected + 1 && seq_at(index + 2) != Some(found);
    if seq_at(index + 1) == Some(expected) && !swapped {
        return problem(
            ProblemKind::Inserted,
            name,
            number,
            Some(found),
            format!(
                "line {number} of {name} was inserted: it carries seq {found} where {expected} was due, and the chain goes on at line {}",
                number + 1
            ),
        );
    }
    if let Some(later) = (index + 1..lines.len()).find(|&i| seq_at(i) == Some(expected)) {
        return problem(
            ProblemKind::Reordered,
            name,
            number,
            Some(expected),
            format!(
                "records are reordered: seq {found} at line {number} of {name} comes before seq {expected}, found at line {}",
                later + 1
            ),
        );
    }
    problem(
        ProblemKind::Deleted,
        name,
        number,
        Some(expected),
        format!(
            "records {expected}..{} were deleted: line {number} of {name} carries seq {found} where {expected} was due",
            found - 1
        ),
    )
}

static CHECKPOINT: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(br#""kind":"checkpoint""#));
static INDEX_REBUILT: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(br#""index_rebuilt""#));
static RECOVERY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(br#""kind":"recovery""#));

fn body_kind_is(line: &Line<'_>, kind: &str, needle: &memchr::memmem::Finder<'_>) -> Option<Value> {
    // Canonical bodies can only hold `"kind":"<kind>"` unescaped as a key of
    // some object; the parse below makes sure it is the record's own kind.
    needle.find(line.body)?;
    let value = line.body_json()?;
    (value.get("kind").and_then(Value::as_str) == Some(kind)).then_some(value)
}

/// What a checkpoint record states.
struct Checkpoint {
    seq: u64,
    hash: String,
    key: String,
    signature: String,
    /// `None` for a v1 checkpoint.
    stream: Option<String>,
    reason: Option<Reason>,
    counter: Option<u64>,
}

/// A checkpoint record's statement.
fn checkpoint_of(line: &Line<'_>) -> Option<Checkpoint> {
    let value = body_kind_is(line, "checkpoint", &CHECKPOINT)?;
    let what = value.get("what")?;
    Some(Checkpoint {
        seq: what.get("seq")?.as_u64()?,
        hash: what.get("hash")?.as_str()?.to_owned(),
        key: what.get("key")?.as_str()?.to_owned(),
        signature: what.get("signature")?.as_str()?.to_owned(),
        stream: what.get("stream").and_then(Value::as_str).map(str::to_owned),
        reason: what.get("reason").and_then(Value::as_str).and_then(Reason::parse),
        counter: what.get("counter").and_then(Value::as_u64),
    })
}

/// The `what` of a recovery record.
fn recovery_what(line: &Line<'_>) -> Option<Value> {
    body_kind_is(line, "recovery", &RECOVERY)?.get("what").cloned()
}

fn recovery_of(line: &Line<'_>) -> Option<(String, u64)> {
    let value = body_kind_is(line, "recovery", &RECOVERY)?;
    let what = value.get("what")?;
    Some((what.get("segment")?.as_str()?.to_owned(), what.get("offset")?.as_u64()?))
}

fn check_signature(key: Option<&PublicKey>, checkpoint: &Checkpoint) -> Result<(), String> {
    let Some(key) = key else { return Ok(()) };
    if checkpoint.key != key.id() {
        return Err(format!("signed by key {}, not by the trusted key {}", checkpoint.key, key.id()));
    }
    let message = match (&checkpoint.stream, checkpoint.reason, checkpoint.counter) {
        (Some(stream), Some(reason), Some(counter)) => {
            checkpoint_message(stream, reason, counter, checkpoint.seq, &checkpoint.hash)
        }
        (None, None, None) => checkpoint_message_v1(checkpoint.seq, &checkpoint.hash),
        _ => {
            return Err(
                "it is neither a v1 nor a whole v2 checkpoint (stream, reason and counter)".to_owned()
            );
        }
    };
    key.verify_bytes(message.as_bytes(), &checkpoint.signature)
        .map_err(|e| format!("the signature does not verify ({e})"))
}

/// Verifies one stream.
pub fn verify_stream(input: &StreamInput, key: Option<&PublicKey>) -> StreamReport {
    let stream = input.name.as_str();
    let mut report = StreamReport {
        stream: input.name.clone(),
        segments: input.segments.len(),
        last_hash: GENESIS.to_owned(),
        ..StreamReport::default()
    };
    if key.is_none() {
        report.warnings.push("no trusted key: checkpoint signatures were not checked".to_owned());
    }
    let head = match input.head.as_deref().map(parse_head) {
        None => {
            report.warnings.push(format!(
                "no {HEAD_FILE}: records after the last checkpoint could have been cut off unseen"
            ));
            None
        }
        Some(Ok(head)) => Some(head),
        Some(Err(why)) => {
            report.problem = Some(problem(ProblemKind::Malformed, HEAD_FILE, 0, None, why));
            return report;
        }
    };
    if let Some(head) = &head {
        report.head_seq = Some(head.seq);
        if let Err((kind, why)) = check_head(key, stream, head) {
            report.problem = Some(problem(kind, HEAD_FILE, 0, Some(head.seq), format!("{HEAD_FILE}: {why}")));
            return report;
        }
        if head.counter.is_none() {
            report.warnings.push(format!(
                "{HEAD_FILE} is in the old form (a copy of a checkpoint's statement, without stream, segment or counter)"
            ));
        }
    }
    let head_seq = head.as_ref().map(|h| h.seq);
    let results = check_segments(stream, &input.segments, key, head_seq);
    let mut expected = (1u64, GENESIS.to_owned());
    let mut head_hash = None;
    let mut v1 = 0u64;
    // The reason of the last record seen (if a checkpoint) and its writer.
    let mut previous_end: Option<(Option<Option<Reason>>, u64)> = None;
    for ((name, _), result) in input.segments.iter().zip(results) {
        let generation = generation_of(name);
        if let Some((first_seq, first_prev)) = &result.first {
            if *first_seq != expected.0 {
                let kind =
                    if *first_seq > expected.0 { ProblemKind::Truncated } else { ProblemKind::Inserted };
                let message = if *first_seq > expected.0 {
                    format!(
                        "records {}..{} are missing: the stream was cut before {name}, which starts at seq {first_seq}",
                        expected.0,
                        first_seq - 1
                    )
                } else {
                    format!(
                        "{name} starts at seq {first_seq}, which the stream already holds (expected {})",
                        expected.0
                    )
                };
                report.problem = Some(problem(kind, name, 1, Some(expected.0), message));
                return report;
            }
            if *first_prev != expected.1 {
                report.problem = Some(problem(
                    ProblemKind::Modified,
                    name,
                    1,
                    Some(expected.0.saturating_sub(1)),
                    format!(
                        "record {} (the last before {name}) was modified or replaced: {name} chains to a different predecessor",
                        expected.0.saturating_sub(1)
                    ),
                ));
                return report;
            }
            if *first_seq == 1 {
                let names_itself = result.first_kind.as_deref() == Some("stream");
                match &result.first_names {
                    Some(named) if names_itself && named != stream => {
                        report.problem = Some(problem(
                            ProblemKind::Renamed,
                            name,
                            1,
                            Some(1),
                            format!(
                                "the stream's first record names stream `{named}`, but it sits in `{stream}`: the stream was renamed or swapped"
                            ),
                        ));
                        return report;
                    }
                    _ if !names_itself && result.v1_checkpoints == 0 => {
                        report.problem = Some(problem(
                            ProblemKind::Malformed,
                            name,
                            1,
                            Some(1),
                            "the stream's first record is not the `stream` record that names it".to_owned(),
                        ));
                        return report;
                    }
                    _ => {}
                }
            }
            // A new writer: the last one either closed the stream, or this
            // one says, first thing, that it did not.
            if let Some((end, last_generation)) = previous_end
                && last_generation != generation
                && end != Some(Some(Reason::Close))
            {
                let acknowledged = result
                    .recovery
                    .is_some_and(|(_, previous, closed)| previous == expected.0.saturating_sub(1) && !closed);
                let legacy = v1 > 0 && end.is_none_or(|reason| reason.is_none());
                match result.recovery {
                    _ if acknowledged => {
                        if let Some((at, previous, _)) = result.recovery {
                            report.crashes.push((at, previous));
                        }
                    }
                    _ if legacy => {}
                    _ => {
                        report.problem = Some(problem(
                            ProblemKind::Cut,
                            name,
                            1,
                            Some(expected.0.saturating_sub(1)),
                            format!(
                                "the writer before {name} ended at seq {} without a close checkpoint, and the next writer did not record a crash: records after it may have been cut",
                                expected.0.saturating_sub(1)
                            ),
                        ));
                        return report;
                    }
                }
            }
        }
        if let Some(torn) = report.torn.last_mut()
            && !torn.acknowledged
        {
            match &result.recovers {
                Some((segment, offset)) if *segment == torn.segment && *offset == torn.offset => {
                    torn.acknowledged = true
                }
                _ => {
                    report.problem = Some(problem(
                        ProblemKind::Malformed,
                        &torn.segment,
                        0,
                        None,
                        format!(
                            "{} ends with an incomplete record at byte {} but the stream goes on without a recovery record",
                            torn.segment, torn.offset
                        ),
                    ));
                    return report;
                }
            }
        }
        report.records += result.records;
        report.checkpoints += result.checkpoints;
        v1 += result.v1_checkpoints;
        for (from, to) in &result.unsigned {
            report.warnings.push(format!(
                "records {from}..{to} were never signed by their writer: a later writer found them after its last valid checkpoint and marked them as inherited unsigned"
            ));
        }
        for (at, note) in &result.head_notes {
            report.warnings.push(format!(
                "the writer that started at seq {at} found that {note}: records after the stream's newest checkpoint may have been deleted"
            ));
        }
        for (at, note) in &result.index_notes {
            report.warnings.push(format!(
                "at seq {at} the stream index was rebuilt ({note}): a stream removed before then would not show"
            ));
        }
        if result.signed_upto > 0 {
            report.signed_upto = result.signed_upto;
        }
        if result.head_hash.is_some() {
            head_hash = result.head_hash.clone();
        }
        if let Some((seq, hash)) = &result.last {
            report.last_seq = *seq;
            report.last_hash = hash.clone();
            expected = (seq.saturating_add(1), hash.clone());
            previous_end = Some((result.last_reason, generation));
        }
        if let Some(p) = result.problem {
            report.problem = Some(p);
            return report;
        }
        if let Some(torn) = result.torn {
            report.torn.push(torn);
        }
    }
    if let Some(torn) = report.torn.iter().find(|t| !t.acknowledged) {
        report.warnings.push(format!(
            "the final record is torn: {} bytes at byte {} of {} (the writer stopped mid-write; it was never acknowledged)",
            torn.bytes, torn.offset, torn.segment
        ));
    }
    if v1 > 0 {
        report.warnings.push(format!(
            "{v1} checkpoint(s) are in the old form (v1), which signs neither the stream's name nor why it was written"
        ));
    }
    if let Some(head) = head {
        if report.last_seq < head.seq {
            report.problem = Some(problem(
                ProblemKind::Truncated,
                input.segments.last().map_or(HEAD_FILE, |(n, _)| n.as_str()),
                0,
                Some(report.last_seq + 1),
                format!(
                    "the stream was truncated: it ends at seq {} but its signed head vouches for seq {}",
                    report.last_seq, head.seq
                ),
            ));
        } else if head_hash.as_deref() != Some(head.hash.as_str()) {
            report.problem = Some(problem(
                ProblemKind::Modified,
                HEAD_FILE,
                0,
                Some(head.seq),
                format!("record {} is not the one the signed head vouches for", head.seq),
            ));
        }
    }
    report.closed = previous_end.is_some_and(|(end, _)| end == Some(Some(Reason::Close)));
    if !report.closed && report.problem.is_none() && report.last_seq > 0 && v1 == 0 {
        report.warnings.push(format!(
            "the stream does not end with a close checkpoint: its writer is still running, crashed, or the stream was cut after seq {}",
            report.last_seq
        ));
    }
    // The newest checkpoint line itself is the one record no checkpoint signs.
    if report.signed_upto + 1 < report.last_seq && report.problem.is_none() {
        report.warnings.push(format!(
            "records {}..{} are not yet covered by a signed checkpoint",
            report.signed_upto + 1,
            report.last_seq
        ));
    }
    report
}

fn check_segments(
    stream: &str,
    segments: &[(String, Vec<u8>)],
    key: Option<&PublicKey>,
    head_seq: Option<u64>,
) -> Vec<SegmentResult> {
    segments.iter().map(|(name, bytes)| check_segment(stream, name, bytes, key, head_seq)).collect()
}

struct Head {
    seq: u64,
    hash: String,
    key: String,
    signature: String,
    stream: Option<String>,
    segment: Option<String>,
    /// `None` for the old form (a copy of a v1 checkpoint statement).
    counter: Option<u64>,
}

fn parse_head(bytes: &[u8]) -> Result<Head, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("{HEAD_FILE} is not JSON: {e}"))?;
    let field = |name: &str| value.get(name).ok_or_else(|| format!("{HEAD_FILE} lacks `{name}`"));
    let string = |name: &str| -> Result<String, String> {
        field(name)?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{HEAD_FILE}: `{name}` is not a string"))
    };
    let versioned = value.get("format").and_then(Value::as_str) == Some("agenthost-audit-head-v1");
    Ok(Head {
        seq: field("seq")?.as_u64().ok_or_else(|| format!("{HEAD_FILE}: `seq` is not a number"))?,
        hash: string("hash")?,
        key: string("key")?,
        signature: string("signature")?,
        stream: value.get("stream").and_then(Value::as_str).map(str::to_owned),
        segment: value.get("segment").and_then(Value::as_str).map(str::to_owned),
        counter: if versioned {
            Some(
                field("counter")?
                    .as_u64()
                    .ok_or_else(|| format!("{HEAD_FILE}: `counter` is not a number"))?,
            )
        } else {
            None
        },
    })
}

/// Checks a head's signature over its own statement (naming this stream).
fn check_head(key: Option<&PublicKey>, stream: &str, head: &Head) -> Result<(), (ProblemKind, String)> {
    if let Some(named) = &head.stream
        && named != stream
    {
        return Err((
            ProblemKind::Renamed,
            format!(
                "it names stream `{named}`, but it sits in `{stream}`: the stream was renamed or swapped"
            ),
        ));
    }
    let Some(key) = key else { return Ok(()) };
    if head.key != key.id() {
        return Err((
            ProblemKind::BadSignature,
            format!("signed by key {}, not by the trusted key {}", head.key, key.id()),
        ));
    }
    let message = match head.counter {
        Some(counter) => {
            head_message(stream, head.segment.as_deref().unwrap_or_default(), counter, head.seq, &head.hash)
        }
        None => checkpoint_message_v1(head.seq, &head.hash),
    };
    key.verify_bytes(message.as_bytes(), &head.signature)
        .map_err(|e| (ProblemKind::BadSignature, format!("the signature does not verify ({e})")))
}

/// Reads the streams under an audit root (or one stream directory).
///
/// # Errors
/// When a directory or file cannot be read.
pub fn load_dir(path: &Path) -> Result<Vec<StreamInput>, AuditError> {
    let io = |p: &Path, e: std::io::Error| AuditError::Io { path: p.to_path_buf(), source: e };
    let mut streams = Vec::new();
    for dir in stream_dirs(path)? {
        let mut input = StreamInput {
            name: dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            ..StreamInput::default()
        };
        for (name, file) in segments(&dir)? {
            input.segments.push((name, std::fs::read(&file).map_err(|e| io(&file, e))?));
        }
        let head = dir.join(HEAD_FILE);
        if head.exists() {
            input.head = Some(std::fs::read(&head).map_err(|e| io(&head, e))?);
        }
        if !input.segments.is_empty() || input.head.is_some() {
            streams.push(input);
        }
    }
    Ok(streams)
}

/// The stream directories under an audit root, in name order (or the
/// directory itself when it is one stream).
///
/// # Errors
/// When a directory cannot be read.
pub fn stream_dirs(path: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let io = |p: &Path, e: std::io::Error| AuditError::Io { path: p.to_path_buf(), source: e };
    let mut dirs: Vec<PathBuf> = Vec::new();
    if !segments(path)?.is_empty() || path.join(HEAD_FILE).exists() {
        dirs.push(path.to_path_buf());
    } else {
        for entry in std::fs::read_dir(path).map_err(|e| io(path, e))? {
            let entry = entry.map_err(|e| io(path, e))?;
            if entry.path().is_dir() {
                dirs.push(entry.path());
            }
        }
        dirs.sort();
    }
    Ok(dirs)
}

/// The key a verification trusted, and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct TrustedKey {
    pub id: String,
    pub source: String,
    /// It came from the trail's own directory: whoever can rewrite the
    /// trail can replace it, so an intact result proves little.
    pub from_trail: bool,
}

/// The key to trust for a root: the one given (`--key`), else the host's
/// key directory (its `audit.key`'s public half, or `audit.pub` there),
/// else — with `from_trail` set — the trail's own `audit.pub`.
///
/// # Errors
/// A given key that cannot be read, or no key anywhere.
pub fn trusted_key(
    root: &Path,
    given: Option<&Path>,
    key_dir: Option<&Path>,
) -> Result<(PublicKey, TrustedKey), AuditError> {
    let found = |key: PublicKey, source: String, from_trail: bool| {
        let info = TrustedKey { id: key.id(), source, from_trail };
        (key, info)
    };
    if let Some(path) = given {
        let key = PublicKey::read(path).map_err(AuditError::Key)?;
        return Ok(found(key, format!("--key {}", path.display()), false));
    }
    if let Some(dir) = key_dir {
        match crate::keystore::HostKeys::checked_public_key(dir) {
            Ok(key) => {
                let source = format!("the host's key directory ({})", dir.join("audit.key").display());
                return Ok(found(key, source, false));
            }
            // There, but failing the checks (or unreadable by this user):
            // usable, not trusted.
            Err(e) => {
                if let Ok(key) = PublicKey::read(&dir.join("audit.pub")) {
                    let source = format!(
                        "{} — a key directory that failed its checks: {e}",
                        dir.join("audit.pub").display()
                    );
                    return Ok(found(key, source, true));
                }
            }
        }
    }
    let candidates = [root.to_path_buf(), root.parent().map(Path::to_path_buf).unwrap_or_default()];
    for dir in candidates {
        if let Ok(key) = root_public_key(&dir) {
            return Ok(found(
                key,
                format!("{} — the trail's own directory", dir.join("audit.pub").display()),
                true,
            ));
        }
    }
    Err(AuditError::Key(format!(
        "no audit.pub in {} and no --key given: cannot check checkpoint signatures",
        root.display()
    )))
}

/// The signed stream index of a root, if it has one.
pub fn load_index(root: &Path) -> Option<Vec<u8>> {
    std::fs::read(root.join(INDEX_FILE)).ok()
}

/// Verifies every stream.
pub fn verify(streams: &[StreamInput], key: Option<&PublicKey>) -> Report {
    Report { streams: streams.iter().map(|s| verify_stream(s, key)).collect(), ..Report::default() }
}

/// Verifies every stream and the signed index of streams: a listed stream
/// that is gone, or a stream the index does not list, is damage.
pub fn verify_trail(streams: &[StreamInput], index: Option<&[u8]>, key: Option<&PublicKey>) -> Report {
    let mut report = verify(streams, key);
    let Some(index) = index else {
        if !streams.is_empty() {
            report
                .warnings
                .push(format!("no {INDEX_FILE}: a stream removed as a whole would not be noticed"));
        }
        return report;
    };
    let missing = |stream: &str, message: String| StreamReport {
        stream: stream.to_owned(),
        problem: Some(problem(ProblemKind::Missing, INDEX_FILE, 0, None, message)),
        ..StreamReport::default()
    };
    let parsed = serde_json::from_slice::<Value>(index).ok().and_then(|v| {
        let counter = v.get("counter")?.as_u64()?;
        let listed: Vec<String> =
            v.get("streams")?.as_array()?.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect();
        let key_id = v.get("key")?.as_str()?.to_owned();
        let signature = v.get("signature")?.as_str()?.to_owned();
        Some((counter, listed, key_id, signature))
    });
    let Some((counter, listed, key_id, signature)) = parsed else {
        report.streams.push(missing(INDEX_FILE, format!("{INDEX_FILE} is malformed")));
        return report;
    };
    if let Some(key) = key {
        let valid = key_id == key.id()
            && key.verify_bytes(index_message(counter, &listed).as_bytes(), &signature).is_ok();
        if !valid {
            report.streams.push(StreamReport {
                stream: INDEX_FILE.to_owned(),
                problem: Some(problem(
                    ProblemKind::BadSignature,
                    INDEX_FILE,
                    0,
                    None,
                    format!("{INDEX_FILE} is not signed by the trusted key {}", key.id()),
                )),
                ..StreamReport::default()
            });
            return report;
        }
    }
    report.index_counter = Some(counter);
    for name in &listed {
        if !streams.iter().any(|s| &s.name == name) {
            report.streams.push(missing(
                name,
                format!("stream `{name}` is listed in the signed {INDEX_FILE} but is gone: it was removed or renamed"),
            ));
        }
    }
    for stream in streams {
        if !listed.contains(&stream.name) {
            report.streams.push(missing(
                &stream.name,
                format!(
                    "stream `{}` is not listed in the signed {INDEX_FILE}: it was planted or renamed",
                    stream.name
                ),
            ));
        }
    }
    report
}

/// Whether one segment verifies on its own against `key`: an intact chain,
/// every checkpoint signed for `stream`, and a signed seal or close
/// checkpoint as its last record (a sealed segment's last record).
///
/// # Errors
/// What does not hold.
pub fn check_standalone(stream: &str, name: &str, bytes: &[u8], key: &PublicKey) -> Result<(), String> {
    let result = check_segment(stream, name, bytes, Some(key), None);
    if let Some(problem) = result.problem {
        return Err(problem.message);
    }
    if result.torn.is_some() {
        return Err(format!("{name} ends with an incomplete record"));
    }
    match result.last_reason {
        Some(Some(Reason::Seal | Reason::Close)) => Ok(()),
        _ => Err(format!("{name} does not end with a seal or close checkpoint signed by this host")),
    }
}
