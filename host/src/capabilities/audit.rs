//! `agenthost:platform/audit`: a guest's own evidence goes into the host's
//! hash-chained trail, marked `evidence` and attributed by the host (tenant,
//! agent, component digest, trace, run), never by the guest. Charged to the
//! tenant's host-call quota; size-capped.

use crate::bindings::audit;
use crate::bindings::types::Error;

use super::{Capability, InstanceState};

/// The largest `data` a guest may attach to one evidence record.
pub const EVIDENCE_DATA_BYTES: usize = 16 * 1024;
/// The longest evidence `summary`.
pub const EVIDENCE_SUMMARY_BYTES: usize = 1024;
/// The longest evidence `kind`.
pub const EVIDENCE_KIND_BYTES: usize = 64;

impl audit::Host for InstanceState {
    /// Guest evidence goes into the same chain as the host's own records,
    /// marked `evidence` and attributed by the host (tenant, agent, run),
    /// never by the guest.
    #[tracing::instrument(level = "info", name = "host.audit.emit", skip_all)]
    async fn emit(&mut self, item: audit::Evidence) -> wasmtime::Result<Result<String, Error>> {
        gate!(self, Capability::Audit, "emit");
        let call = self.call.clone();
        for (field, len, cap) in [
            ("kind", item.kind.len(), EVIDENCE_KIND_BYTES),
            ("summary", item.summary.len(), EVIDENCE_SUMMARY_BYTES),
            ("data", item.data.len(), EVIDENCE_DATA_BYTES),
        ] {
            if len > cap {
                return Ok(Err(Error::LimitExceeded(format!(
                    "evidence `{field}` is {len} bytes; the cap is {cap} (limit audit.emit {field} bytes)"
                ))));
            }
        }
        let Some(log) = &call.audit else {
            return Ok(Err(Error::Unavailable(
                "this host keeps no audit trail (audit is disabled)".to_owned(),
            )));
        };
        let data: serde_json::Value = match serde_json::from_str(&item.data) {
            Ok(data) => data,
            Err(e) => return Ok(Err(Error::InvalidInput(format!("evidence `data` is not JSON: {e}")))),
        };
        let what = serde_json::json!({ "kind": item.kind, "data": data });
        let event = call.event(crate::audit::Kind::Evidence, "emitted", what, Some(item.summary));
        Ok(log.append_owned(event).map(|receipt| receipt.id).map_err(|e| Error::Unavailable(e.to_string())))
    }
}
