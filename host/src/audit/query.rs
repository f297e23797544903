//! `agenthost audit query`: the records of a trace, a run, a tenant or a
//! time window, in stream order.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use serde_json::Value;

use super::AuditError;
use super::record::Line;
use super::verify::StreamInput;

/// Which records to return; every field given must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub trace_id: Option<String>,
    pub run_id: Option<String>,
    pub tenant: Option<String>,
    pub kind: Option<String>,
    /// Records at or after this time.
    pub since: Option<SystemTime>,
}

impl Filter {
    fn matches(&self, body: &Value) -> bool {
        let field = |name: &str| body.get(name).and_then(Value::as_str);
        let same =
            |wanted: &Option<String>, name: &str| wanted.as_deref().is_none_or(|w| field(name) == Some(w));
        if !(same(&self.trace_id, "trace_id") && same(&self.run_id, "run_id") && same(&self.tenant, "tenant"))
        {
            return false;
        }
        if !same(&self.kind, "kind") {
            return false;
        }
        match self.since {
            None => true,
            Some(since) => field("time")
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                .is_some_and(|time| time >= since),
        }
    }
}

/// One matching record: its place and its body.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Found {
    pub stream: String,
    pub seq: u64,
    pub hash: String,
    pub record: Value,
}

/// The records of `streams` that match `filter`. Lines that are not records
/// are skipped here; `verify` is what reports them.
pub fn query(streams: &[StreamInput], filter: &Filter) -> Vec<Found> {
    let mut found = Vec::new();
    for stream in streams {
        for (_, bytes) in &stream.segments {
            scan(&stream.name, bytes, filter, &mut |f| found.push(f));
        }
    }
    found
}

fn scan(stream: &str, bytes: &[u8], filter: &Filter, out: &mut dyn FnMut(Found)) {
    for raw in bytes.split(|&b| b == b'\n') {
        let Ok(line) = Line::parse(raw) else { continue };
        let Some(body) = line.body_json() else { continue };
        if filter.matches(&body) {
            out(Found {
                stream: stream.to_owned(),
                seq: line.seq,
                hash: String::from_utf8_lossy(line.hash).into_owned(),
                record: body,
            });
        }
    }
}

/// The newest `limit` records under an audit root that match `filter`, in
/// stream order, and whether older matches were left out. Segments are
/// read one at a time, so memory holds one segment and the answer, however
/// long the trail; a segment last written before `since` is not read at
/// all. `stop` ends the scan between segments (the asker left), with what
/// was found so far.
///
/// # Errors
/// When a directory or segment cannot be read.
pub fn query_dir(
    root: &Path,
    filter: &Filter,
    limit: usize,
    stop: &AtomicBool,
) -> Result<(Vec<Found>, bool), AuditError> {
    let mut kept: VecDeque<Found> = VecDeque::new();
    let mut truncated = false;
    for dir in super::verify::stream_dirs(root)? {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for (_, file) in super::writer::segments(&dir)? {
            if stop.load(Ordering::Relaxed) {
                return Ok((kept.into(), true));
            }
            let modified = std::fs::metadata(&file).and_then(|m| m.modified()).ok();
            if let (Some(since), Some(modified)) = (filter.since, modified)
                && modified < since
            {
                continue;
            }
            let bytes = std::fs::read(&file).map_err(|e| AuditError::Io { path: file.clone(), source: e })?;
            scan(&name, &bytes, filter, &mut |f| {
                kept.push_back(f);
                if kept.len() > limit {
                    kept.pop_front();
                    truncated = true;
                }
            });
        }
    }
    Ok((kept.into(), truncated))
}

/// Parses `--since`: an RFC 3339 time, or a duration back from now (`15m`, `2h`, `7d`).
///
/// # Errors
/// When it is neither.
pub fn parse_since(text: &str) -> Result<SystemTime, String> {
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        return Ok(time);
    }
    let ago = humantime::parse_duration(text)
        .map_err(|_| format!("`{text}` is neither an RFC 3339 time nor a duration like 15m, 2h or 7d"))?;
    SystemTime::now().checked_sub(ago).ok_or_else(|| format!("`{text}` reaches back before 1970"))
}
