//! One audit record: what the host says happened, and the line that holds it.
//!
//! A segment file is a sequence of lines, each
//!
//! ```text
//! <hash> SP <seq> SP <prev> SP <body> LF
//! ```
//!
//! where `body` is the canonical JSON of the record (keys sorted, no
//! whitespace, UTF-8; JSON escapes keep it on one line), `seq` its decimal
//! position in the stream (from 1), `prev` the `hash` of the record before it
//! (64 zeros for the first) and `hash` the lower-case hex SHA-256 of
//! `<seq> SP <prev> SP <body>`. `docs/audit-format.md` is the full description
//! for anyone writing their own verifier.

use std::time::SystemTime;

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::error::ComponentRef;

/// The `prev` of the first record of a stream.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What kind of thing a record is evidence of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A policy decision, with its deciding policies.
    Decision,
    /// A call to a model: model id, usage, prompt digest.
    ModelCall,
    /// An invocation of a tool or agent: name@version, digest, input digest, status.
    ToolCall,
    /// A memory put or delete.
    MemoryWrite,
    /// An event published to a topic.
    EventPublish,
    /// An approval granted or denied.
    Approval,
    /// A component loaded, deployed or rolled back.
    Deploy,
    /// A limit or quota hit.
    Limit,
    /// Evidence a guest emitted through the `audit` interface.
    Evidence,
    /// A signed checkpoint over the record before it.
    Checkpoint,
    /// A writer started on a stream whose previous writer did not end it
    /// cleanly (a torn record, no close checkpoint, records it never signed).
    Recovery,
    /// The first record of a stream: its name, host and key.
    Stream,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Decision => "decision",
            Kind::ModelCall => "model_call",
            Kind::ToolCall => "tool_call",
            Kind::MemoryWrite => "memory_write",
            Kind::EventPublish => "event_publish",
            Kind::Approval => "approval",
            Kind::Deploy => "deploy",
            Kind::Limit => "limit",
            Kind::Evidence => "evidence",
            Kind::Checkpoint => "checkpoint",
            Kind::Recovery => "recovery",
            Kind::Stream => "stream",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who did what, when and why: the content of one record before the writer
/// gives it a place in the chain.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: Kind,
    pub tenant: String,
    /// The person or agent on whose behalf it happened.
    pub principal: Option<String>,
    /// The component as `name@version`.
    pub agent: Option<String>,
    /// The component's digest (`sha256:<hex>`).
    pub component: Option<String>,
    pub trace_id: Option<String>,
    pub run_id: Option<String>,
    /// `allowed`, `denied`, `ok`, `error`, … depending on the kind.
    pub outcome: String,
    /// Details of the kind: ids, digests, counts. Never prompt or memory content.
    pub what: Value,
    /// Why it happened or was decided, for a person.
    pub why: Option<String>,
}

impl Event {
    pub fn new(kind: Kind, tenant: impl Into<String>, outcome: impl Into<String>, what: Value) -> Self {
        Event {
            kind,
            tenant: tenant.into(),
            principal: None,
            agent: None,
            component: None,
            trace_id: None,
            run_id: None,
            outcome: outcome.into(),
            what,
            why: None,
        }
    }

    /// The component it is about: `name@version` and digest.
    #[must_use]
    pub fn about(mut self, component: &ComponentRef) -> Self {
        self.agent = Some(component.label());
        self.component = Some(component.digest.clone());
        self
    }

    /// On whose behalf it happened.
    #[must_use]
    pub fn on_behalf_of(mut self, principal: impl Into<String>) -> Self {
        self.principal = Some(principal.into());
        self
    }

    /// The trace and run it belongs to.
    #[must_use]
    pub fn in_run(mut self, trace_id: Option<String>, run_id: Option<String>) -> Self {
        self.trace_id = trace_id;
        self.run_id = run_id;
        self
    }

    /// Why, for a person.
    #[must_use]
    pub fn because(mut self, why: Option<String>) -> Self {
        self.why = why;
        self
    }

    /// The record body: canonical JSON with its record id and the time it happened.
    pub fn body(&self, id: &str, time: SystemTime) -> String {
        let mut out = Vec::new();
        self.write_body(id, time, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Writes the body straight into `out`: the fields in sorted order, the
    /// `what` document with its keys sorted, no whitespace.
    pub fn write_body(&self, id: &str, time: SystemTime, out: &mut Vec<u8>) {
        let time = humantime::format_rfc3339_micros(time).to_string();
        let body = Body {
            agent: self.agent.as_deref(),
            component: self.component.as_deref(),
            id,
            kind: self.kind.as_str(),
            outcome: &self.outcome,
            principal: self.principal.as_deref(),
            run_id: self.run_id.as_deref(),
            tenant: &self.tenant,
            time: &time,
            trace_id: self.trace_id.as_deref(),
            what: Sorted(&self.what),
            why: self.why.as_deref(),
        };
        // Serializing plain strings, options and JSON values into a Vec
        // cannot fail.
        let _ = serde_json::to_writer(out, &body);
    }
}

/// A record body; the fields are declared in their canonical (sorted) order.
#[derive(serde::Serialize)]
struct Body<'a> {
    agent: Option<&'a str>,
    component: Option<&'a str>,
    id: &'a str,
    kind: &'a str,
    outcome: &'a str,
    principal: Option<&'a str>,
    run_id: Option<&'a str>,
    tenant: &'a str,
    time: &'a str,
    trace_id: Option<&'a str>,
    what: Sorted<'a>,
    why: Option<&'a str>,
}

/// A JSON value serialized with the keys of every object sorted.
struct Sorted<'a>(&'a Value);

impl serde::Serialize for Sorted<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap as _, SerializeSeq as _};
        match self.0 {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    out.serialize_entry(key, &Sorted(value))?;
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(&Sorted(item))?;
                }
                out.end()
            }
            scalar => scalar.serialize(serializer),
        }
    }
}

/// Appends the line of an encoded body to `out` and returns its hash.
pub fn encode_body_line(seq: u64, prev: &str, body: &[u8], out: &mut Vec<u8>) -> String {
    let hash = chain_hash(seq, prev, body);
    out.reserve(hash.len() + prev.len() + body.len() + 24);
    out.extend_from_slice(hash.as_bytes());
    out.push(b' ');
    out.extend_from_slice(seq.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(prev.as_bytes());
    out.push(b' ');
    out.extend_from_slice(body);
    out.push(b'\n');
    hash
}

/// Appends the line of an event's record to `out` and returns its hash.
pub fn encode_event_line(
    seq: u64,
    prev: &str,
    event: &Event,
    id: &str,
    time: SystemTime,
    out: &mut Vec<u8>,
) -> String {
    let mut body = Vec::with_capacity(512);
    event.write_body(id, time, &mut body);
    encode_body_line(seq, prev, &body, out)
}

/// The current time as RFC 3339 UTC with microseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

/// SHA-256 of `<seq> SP <prev> SP <body>`, as lower-case hex.
pub fn chain_hash(seq: u64, prev: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(seq.to_string().as_bytes());
    hasher.update(b" ");
    hasher.update(prev.as_bytes());
    hasher.update(b" ");
    hasher.update(body);
    hex::encode(hasher.finalize())
}

/// Appends the line of a record to `out` and returns its hash.
pub fn encode_line(seq: u64, prev: &str, body: &str, out: &mut Vec<u8>) -> String {
    encode_body_line(seq, prev, body.as_bytes(), out)
}

/// A line split into its fields, borrowed from the segment's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    pub hash: &'a [u8],
    pub seq: u64,
    pub prev: &'a [u8],
    pub body: &'a [u8],
    /// Everything the hash covers: `<seq> SP <prev> SP <body>`.
    pub hashed: &'a [u8],
}

impl<'a> Line<'a> {
    /// Splits a line (without its LF); `Err` says which field is malformed.
    pub fn parse(line: &'a [u8]) -> Result<Line<'a>, &'static str> {
        let (hash, hashed) = split_space(line).ok_or("no space after the hash")?;
        if hash.len() != 64 || !is_lower_hex(hash) {
            return Err("the hash is not 64 lower-case hex digits");
        }
        let (seq, rest) = split_space(hashed).ok_or("no space after the sequence number")?;
        let seq = parse_seq(seq).ok_or("the sequence number is not a decimal number")?;
        let (prev, body) = split_space(rest).ok_or("no space after the previous hash")?;
        if prev.len() != 64 || !is_lower_hex(prev) {
            return Err("the previous hash is not 64 lower-case hex digits");
        }
        Ok(Line { hash, seq, prev, body, hashed })
    }

    /// Whether the stored hash is the SHA-256 of what it covers.
    pub fn hash_matches(&self) -> bool {
        let digest = Sha256::digest(self.hashed);
        let mut expected = [0u8; 64];
        // Hex-encoding into a fixed buffer cannot fail for 32 bytes.
        if hex::encode_to_slice(digest, &mut expected).is_err() {
            return false;
        }
        expected[..] == *self.hash
    }

    pub fn body_json(&self) -> Option<Value> {
        serde_json::from_slice(self.body).ok()
    }
}

fn split_space(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == b' ')?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

fn is_lower_hex(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn parse_seq(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 || (bytes.len() > 1 && bytes[0] == b'0') {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// The bytes a v1 checkpoint signed (before streams and reasons were
/// signed); verify still reads trails written that way.
pub fn checkpoint_message_v1(seq: u64, hash: &str) -> String {
    format!("agenthost-audit-checkpoint-v1\n{seq}\n{hash}\n")
}

/// Why a checkpoint was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Every `checkpoint_every` records or `checkpoint_interval`.
    Periodic,
    /// The last record of a full segment.
    Seal,
    /// The last record its writer wrote: the stream ends here cleanly.
    Close,
    /// Right after a recovery record, so it is signed at once.
    Recovery,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Periodic => "periodic",
            Reason::Seal => "seal",
            Reason::Close => "close",
            Reason::Recovery => "recovery",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Reason::Periodic, Reason::Seal, Reason::Close, Reason::Recovery]
            .into_iter()
            .find(|r| r.as_str() == text)
    }
}

/// The bytes a checkpoint signs: it vouches for every record of `stream`
/// up to `seq`, says why it was written, and carries the stream's HEAD
/// counter (so a writer finds the counter in the chain even when
/// `HEAD.json` is gone, and never starts it over).
pub fn checkpoint_message(stream: &str, reason: Reason, counter: u64, seq: u64, hash: &str) -> String {
    format!("agenthost-audit-checkpoint-v2\n{stream}\n{}\n{counter}\n{seq}\n{hash}\n", reason.as_str())
}

/// The bytes `HEAD.json` signs: its own statement (another domain than a
/// checkpoint's, so neither can be made from the other), naming the
/// stream, the segment and a counter that grows with every HEAD written.
pub fn head_message(stream: &str, segment: &str, counter: u64, seq: u64, hash: &str) -> String {
    format!("agenthost-audit-head-v1\n{stream}\n{segment}\n{counter}\n{seq}\n{hash}\n")
}

/// The bytes the stream index (`STREAMS.json`) signs.
pub fn index_message(counter: u64, streams: &[String]) -> String {
    let mut text = format!("agenthost-audit-streams-v1\n{counter}\n");
    for stream in streams {
        text.push_str(stream);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::canonical_json;
    use serde_json::json;

    #[test]
    fn a_line_round_trips_and_its_hash_covers_seq_prev_and_body() {
        let mut out = Vec::new();
        let hash = encode_line(7, GENESIS, r#"{"a":1}"#, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        let line = Line::parse(&out[..out.len() - 1]).unwrap();
        assert_eq!(line.seq, 7);
        assert_eq!(line.hash, hash.as_bytes());
        assert_eq!(line.body, br#"{"a":1}"#);
        assert!(line.hash_matches());
        // Any change in what the hash covers shows.
        let text = String::from_utf8(out[..out.len() - 1].to_vec()).unwrap();
        for altered in [text.replace(" 7 ", " 8 "), text.replace(r#""a":1"#, r#""a":2"#)] {
            assert!(!Line::parse(altered.as_bytes()).unwrap().hash_matches());
        }
        assert_eq!(
            chain_hash(1, GENESIS, b"{}"),
            hex::encode(Sha256::digest(format!("1 {GENESIS} {{}}").as_bytes()))
        );
    }

    #[test]
    fn malformed_lines_say_which_field() {
        assert_eq!(Line::parse(b"abc").unwrap_err(), "no space after the hash");
        let bad_seq = format!("{GENESIS} 01 {GENESIS} {{}}");
        assert_eq!(
            Line::parse(bad_seq.as_bytes()).unwrap_err(),
            "the sequence number is not a decimal number"
        );
    }

    #[test]
    fn an_event_line_hashes_like_any_line() {
        let event = Event::new(Kind::Deploy, "acme", "loaded", json!({"b": [{"y": 1, "x": 2}], "a": null}));
        let time = SystemTime::now();
        let mut direct = Vec::new();
        let hash = encode_event_line(3, GENESIS, &event, "id", time, &mut direct);
        let mut via_body = Vec::new();
        assert_eq!(encode_line(3, GENESIS, &event.body("id", time), &mut via_body), hash);
        assert_eq!(direct, via_body);
        assert!(String::from_utf8(direct).unwrap().contains(r#""what":{"a":null,"b":[{"x":2,"y":1}]}"#));
    }

    #[test]
    fn bodies_are_canonical_and_carry_every_field() {
        let mut event = Event::new(Kind::ToolCall, "acme", "ok", json!({"z": 1, "a": 2}));
        event.trace_id = Some("t".into());
        let body = event.body("id1", SystemTime::now());
        let value: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(canonical_json(&value), body);
        for key in [
            "agent",
            "component",
            "id",
            "kind",
            "outcome",
            "principal",
            "run_id",
            "tenant",
            "time",
            "trace_id",
            "what",
            "why",
        ] {
            assert!(value.get(key).is_some(), "{key} missing from {body}");
        }
        assert!(body.contains(r#""what":{"a":2,"z":1}"#));
    }
}
