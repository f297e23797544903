//! `agenthost:platform/tools`: a guest calls another loaded tool through
//! the host. The call is governed like one from outside (grant, input
//! schema, the tool's own limits) and can never outlive its caller's
//! deadline.

use crate::bindings::tools::Host;
use crate::bindings::types::{Error, ToolSpec};
use crate::trace::TranscriptEvent;

use super::{Capability, InstanceState};

/// The largest input one `tools.invoke` hands on, in bytes.
pub const MAX_INPUT_BYTES: usize = 1 << 20;

/// Deepest chain of `tools.invoke` hops. Tools cannot call tools today (the
/// `tool` world has no `tools` import); this bounds what a future world could do.
pub const MAX_DEPTH: u32 = 4;

impl Host for InstanceState {
    async fn list(&mut self) -> wasmtime::Result<Vec<ToolSpec>> {
        // `list` has no error case: a refusal is an empty list.
        if self.enter(Capability::Tools, "list")?.is_err() {
            return Ok(Vec::new());
        }
        Ok(self.services.tools.specs(&self.call))
    }

    #[tracing::instrument(level = "info", name = "host.tools.invoke", skip_all, fields(tool = %crate::text::clip(&name)))]
    async fn invoke(&mut self, name: String, input: String) -> wasmtime::Result<Result<String, Error>> {
        gate!(self, Capability::Tools, "invoke");
        let call = self.call.clone();
        if input.len() > MAX_INPUT_BYTES {
            return Ok(Err(Error::LimitExceeded(format!(
                "the input for `{name}` is {} bytes; a tool call carries at most {MAX_INPUT_BYTES} (limit tools.invoke input bytes)",
                input.len()
            ))));
        }
        if let Some(denial) = call.grant.tools.denial("tool", &name) {
            return Ok(Err(Error::Denied(format!("{} may not call it: {denial}", call.caller()))));
        }
        // A call whose record would not fit is refused before it runs, not
        // after (a tool that wrote something must not invite a retry).
        if let Some(transcript) = &call.transcript
            && let Err(full) = transcript.has_room(input.len())
        {
            return Ok(Err(Error::LimitExceeded(full)));
        }
        if call.depth >= MAX_DEPTH {
            return Ok(Err(Error::LimitExceeded(format!(
                "tool call chain deeper than {MAX_DEPTH} hops at `{name}`"
            ))));
        }
        let input: serde_json::Value = match serde_json::from_str(&input) {
            Ok(value) => value,
            Err(e) => {
                return Ok(Err(Error::InvalidInput(format!("input for `{name}` is not JSON: {e}"))));
            }
        };
        let tools = self.services.tools.clone();
        let result = tools.invoke(&name, &input, &call).await;
        if let Some(transcript) = &call.transcript {
            let (output, error) = match &result {
                Ok(output) => (Some(output.clone()), None),
                Err(e) => (None, Some(e.clone())),
            };
            if let Err(full) =
                transcript.push(TranscriptEvent::tool_call(call.caller(), name.clone(), input, output, error))
            {
                return Ok(Err(Error::LimitExceeded(full)));
            }
        }
        Ok(result.map(|output| output.to_string()).map_err(|e| e.to_wit()))
    }
}
