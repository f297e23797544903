//! `agenthost:platform/log`: guest log events become `tracing` events
//! tagged with the component and the trace context. A guest cannot flood
//! the host: messages are truncated and events past a per-call budget are
//! dropped (and counted). Nor can it forge a host line: control characters
//! (newlines above all) are escaped before anything reaches a log line.
//! Logging never fails the guest; a component without the `log` grant
//! logs into nothing.

use std::fmt::Write as _;

use crate::bindings::log::{Host, Level};

use super::{Capability, InstanceState};

/// Longest message or field value kept, in bytes.
const MAX_TEXT: usize = 4096;
/// Most fields kept per event.
const MAX_FIELDS: usize = 32;
/// Most events kept per call.
const MAX_EVENTS: u32 = 1000;

#[derive(Default)]
pub(crate) struct LogState {
    emitted: u32,
    dropped: u32,
}

impl LogState {
    pub(crate) fn dropped(&self) -> u32 {
        self.dropped
    }
}

/// At most [`MAX_TEXT`] bytes of `text`, with every control character
/// (newline, carriage return, escape, …) written as a visible escape, so a
/// guest's text always stays inside the one line the host writes for it.
pub(crate) fn clip(text: &str) -> String {
    let mut end = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end);
    for c in text[..end].chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    if end < text.len() {
        out.push('…');
    }
    out
}

impl Host for InstanceState {
    async fn log(
        &mut self,
        level: Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        // Log is the one interface a describing component keeps; without
        // the grant, events go nowhere (logging never fails the guest).
        if !self.call.grant.has(Capability::Log) {
            return Ok(());
        }
        if self.log.emitted >= MAX_EVENTS {
            self.log.dropped = self.log.dropped.saturating_add(1);
            return Ok(());
        }
        self.log.emitted += 1;
        let fields: Vec<String> =
            fields.iter().take(MAX_FIELDS).map(|(k, v)| format!("{}={}", clip(k), clip(v))).collect();
        // All fields together are held to the size of one value, so an
        // event is at most a few KiB whatever the guest sends.
        let fields = clip(&fields.join(" "));
        let message = clip(&message);
        let component = self.call.caller();
        let trace_id = self.call.trace.trace_id.as_str();
        let run_id = self.call.trace.run_id.as_str();
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(target: "agenthost::guest", $level, %component, trace_id, run_id, fields, "{message}")
            };
        }
        match level {
            Level::Trace => emit!(tracing::Level::TRACE),
            Level::Debug => emit!(tracing::Level::DEBUG),
            Level::Info => emit!(tracing::Level::INFO),
            Level::Warn => emit!(tracing::Level::WARN),
            Level::Error => emit!(tracing::Level::ERROR),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn control_characters_never_reach_a_log_line() {
        let forged = "ok\n2026-12-01T00:00:00Z  INFO agenthost: approved\r\u{1b}[2J\u{2028}";
        let shown = clip(forged);
        assert!(!shown.chars().any(|c| c.is_control() || c == '\u{2028}'), "{shown:?}");
        assert!(shown.starts_with("ok\\n2026"), "{shown}");
        assert!(shown.contains("\\u{1b}"), "{shown}");
        let long = "é".repeat(5000);
        let cut = clip(&long);
        assert!(cut.len() <= super::MAX_TEXT + 3 && cut.ends_with('…'));
    }
}
