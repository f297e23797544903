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
use crate::governance::keys::{canonical_json, digest};
use crate::governance::policy::{Action, EntityRef};
use crate::trace::TranscriptEvent;

use super::{InstanceState, error_case};

impl Host for InstanceState {
    #[tracing::instrument(level = "info", name = "host.model.converse", skip_all)]
    async fn converse(
        &mut self,
        mut request: ConverseRequest,
    ) -> wasmtime::Result<Result<ConverseResponse, Error>> {
        let call = self.call.clone();
        if let Err(e) = call.charge() {
            return Ok(Err(e));
        }
        let model_id = request
            .model_id
            .clone()
            .unwrap_or_else(|| self.host.model_for(call.tenant.id()).default_model().to_owned());
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
        let backend = self.host.model_for(call.tenant.id()).clone();
        let result = backend.converse(&request, &self.call.trace).await;
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
                    error_case(e).to_owned(),
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
            transcript.push(TranscriptEvent::ModelCall {
                caller: self.call.caller(),
                request,
                response,
                error,
            });
        }
        Ok(result)
    }
}
