//! `agenthost:platform/model`: the guest's `converse` goes to the host's
//! model backend (see [`crate::brokers::model`]), after the model id is
//! checked against the grant and the policy (`CallModel`), and the
//! tenant's token budget. The system-prompt layers of the agent's policy
//! packs go first, in order; the guest's own system text can only follow
//! them. Tokens used (from the response) are charged to the tenant. The
//! call is recorded in the run's transcript.

use crate::audit;
use crate::bindings::model::{ConverseRequest, ConverseResponse, Host};
use crate::bindings::types::Error;
use crate::brokers::model::stop_reason_name;
use crate::governance::policy::{Action, EntityRef};
use crate::keys::{canonical_json, digest};
use crate::trace::TranscriptEvent;

use super::{Capability, InstanceState};

/// The most text one request carries, in bytes, over every message, tool
/// input and result, system prompt and tool definition.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// The most messages one request carries.
pub const MAX_MESSAGES: usize = 256;
/// The most tool definitions one request offers.
pub const MAX_TOOLS: usize = 64;
/// The most stop sequences, and the longest one.
pub const MAX_STOP_SEQUENCES: usize = 8;
pub const MAX_STOP_SEQUENCE_BYTES: usize = 256;

/// The first cap a request breaks.
fn over_cap(request: &ConverseRequest) -> Option<String> {
    if request.messages.len() > MAX_MESSAGES {
        return Some(format!(
            "the request has {} messages; the cap is {MAX_MESSAGES} (limit model messages)",
            request.messages.len()
        ));
    }
    let tools = request.tool_config.as_ref().map_or(0, |c| c.tools.len());
    if tools > MAX_TOOLS {
        return Some(format!("the request offers {tools} tools; the cap is {MAX_TOOLS} (limit model tools)"));
    }
    if let Some(inference) = &request.inference
        && (inference.stop_sequences.len() > MAX_STOP_SEQUENCES
            || inference.stop_sequences.iter().any(|s| s.len() > MAX_STOP_SEQUENCE_BYTES))
    {
        return Some(format!(
            "the request has more than {MAX_STOP_SEQUENCES} stop sequences or one longer than {MAX_STOP_SEQUENCE_BYTES} bytes (limit model stop sequences)"
        ));
    }
    let bytes = request.text_bytes();
    (bytes > MAX_REQUEST_BYTES).then(|| {
        format!("the request carries {bytes} bytes of text; the cap is {MAX_REQUEST_BYTES} (limit model request bytes)")
    })
}

impl Host for InstanceState {
    #[tracing::instrument(level = "info", name = "host.model.converse", skip_all)]
    async fn converse(
        &mut self,
        mut request: ConverseRequest,
    ) -> wasmtime::Result<Result<ConverseResponse, Error>> {
        gate!(self, Capability::Model, "converse");
        let call = self.call.clone();
        if let Some(cap) = over_cap(&request) {
            return Ok(Err(Error::LimitExceeded(cap)));
        }
        let model_id = request
            .model_id
            .clone()
            .unwrap_or_else(|| self.services.models.for_tenant(call.tenant.id()).default_model().to_owned());
        if let Some(denial) = call.grant.models.denial("model", &model_id) {
            return Ok(Err(Error::Denied(format!("{} may not call it: {denial}", call.caller()))));
        }
        if let Err(e) = call.decide(Action::CallModel, EntityRef::new("Model", model_id.clone()), Vec::new())
        {
            return Ok(Err(e));
        }
        if let Err(limit) = call.tenant.tokens.check() {
            return Ok(Err(Error::LimitExceeded(format!(
                "tenant `{}` used its {limit} model tokens for this minute (quota model_tokens_per_minute)",
                call.tenant.id()
            ))));
        }
        request.model_id = Some(model_id);
        if !call.prompts.is_empty() {
            let mut system: Vec<String> = call.prompts.to_vec();
            system.append(&mut request.system);
            request.system = system;
        }
        if let Some(transcript) = &call.transcript
            && let Err(full) = transcript.reserve(&request)
        {
            return Ok(Err(Error::LimitExceeded(full)));
        }
        let backend = self.services.models.for_tenant(call.tenant.id()).clone();
        let result =
            call.before_deadline("the model backend", backend.converse(&request, &self.call.trace)).await;
        if let Ok(response) = &result {
            call.tenant
                .tokens
                .record(u64::from(response.usage.input_tokens) + u64::from(response.usage.output_tokens));
            call.metrics.model_tokens(
                call.tenant.id(),
                &response.model_id,
                u64::from(response.usage.input_tokens),
                u64::from(response.usage.output_tokens),
            );
        }
        if call.audit.is_some() {
            // The prompt's digest, never its content: the trail proves what
            // was sent without becoming a copy of it.
            let prompt = serde_json::to_value(&request).map(|v| digest(canonical_json(&v).as_bytes()));
            let (outcome, what) = match &result {
                Ok(response) => (
                    "ok".to_owned(),
                    serde_json::json!({
                        "backend": backend.name(),
                        "model": response.model_id,
                        "prompt_digest": prompt.ok(),
                        "messages": request.messages.len(),
                        "stop_reason": stop_reason_name(response.stop_reason),
                        "usage": {
                            "input_tokens": response.usage.input_tokens,
                            "output_tokens": response.usage.output_tokens,
                            "total_tokens": response.usage.total_tokens,
                        },
                    }),
                ),
                Err(e) => (
                    crate::error::ErrorKind::of_wit(e).as_str().to_owned(),
                    serde_json::json!({
                        "backend": backend.name(),
                        "model": request.model_id,
                        "prompt_digest": prompt.ok(),
                        "error": format!("{e:?}"),
                    }),
                ),
            };
            if let Err(e) = call.evidence(audit::Kind::ModelCall, &outcome, what, None) {
                return Ok(Err(Error::Unavailable(e)));
            }
        }
        if let Some(transcript) = &self.call.transcript {
            let (response, error) = match &result {
                Ok(response) => (Some(response.clone()), None),
                Err(e) => (None, Some(format!("{e:?}"))),
            };
            if let Err(full) =
                transcript.push(TranscriptEvent::model_call(self.call.caller(), request, response, error))
            {
                return Ok(Err(Error::LimitExceeded(full)));
            }
        }
        Ok(result)
    }
}
