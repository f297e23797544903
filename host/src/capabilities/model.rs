//! `agenthost:platform/model`: the guest's `converse` goes to the host's
//! model backend (see [`crate::brokers::model`]). The call is recorded in
//! the run's transcript.

use crate::bindings::model::{ConverseRequest, ConverseResponse, Host};
use crate::bindings::types::Error;
use crate::trace::TranscriptEvent;

use super::InstanceState;

impl Host for InstanceState {
    async fn converse(
        &mut self,
        request: ConverseRequest,
    ) -> wasmtime::Result<Result<ConverseResponse, Error>> {
        let backend = self.host.model.clone();
        let result = backend.converse(&request, &self.call.trace).await;
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
