//! `agenthost:platform/log`: guest log events become `tracing` events
//! tagged with the component and the trace context. A guest cannot flood
//! the host: messages are truncated and events past a per-call budget are
//! dropped (and counted). Nor can it forge a host line: control characters
//! (newlines above all) are escaped before anything reaches a log line.
//! Logging never fails the guest; a component without the `log` grant
//! logs into nothing.

use crate::bindings::log::{Host, Level};
use crate::text::clip;

use super::{Capability, InstanceState};

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
