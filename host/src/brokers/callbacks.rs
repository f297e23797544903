//! Answers to paused workflows: a Step Functions task that waits on a task
//! token (`.waitForTaskToken`) gets `SendTaskSuccess` with the call's
//! answer, or `SendTaskFailure` with the kind of error and the problem.
//!
//! The client is made on first use, so a host that never sees a task token
//! never loads AWS configuration for it.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sfn::Client;
use tokio::sync::OnceCell;

use super::BoxFuture;
use crate::aws::AwsSettings;
use crate::aws::describe;

/// Step Functions bounds: an output of at most 256 KiB, an error name of
/// 256 characters, a cause of 32 KiB.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;
const MAX_ERROR_CHARS: usize = 256;
const MAX_CAUSE_BYTES: usize = 32 * 1024;
/// Tries of one answer (the workflow waits on it; the call is not re-run).
const ATTEMPTS: u32 = 3;

/// Where a workflow's answer goes.
pub trait TaskCallbacks: Send + Sync {
    /// The task succeeded with `output` (JSON text).
    fn succeed<'a>(&'a self, token: &'a str, output: String) -> BoxFuture<'a, Result<(), String>>;

    /// The task failed: `error` names the kind, `cause` says why.
    fn fail<'a>(&'a self, token: &'a str, error: &'a str, cause: String)
    -> BoxFuture<'a, Result<(), String>>;
}

/// Task tokens answered through the Step Functions API.
pub struct StepFunctions {
    aws: AwsSettings,
    client: OnceCell<Client>,
}

impl StepFunctions {
    pub fn new(aws: AwsSettings) -> Arc<Self> {
        Arc::new(StepFunctions { aws, client: OnceCell::new() })
    }

    async fn client(&self) -> &Client {
        self.client.get_or_init(|| async { Client::new(&self.aws.load().await) }).await
    }

    /// Sends one answer, again after 1 then 2 s when the service did not take it.
    async fn send(
        &self,
        success: Option<String>,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), String> {
        let client = self.client().await;
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
            }
            let sent = match &success {
                Some(output) => client
                    .send_task_success()
                    .task_token(token)
                    .output(output)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| (describe(&e), is_final(&e))),
                None => client
                    .send_task_failure()
                    .task_token(token)
                    .error(error)
                    .cause(cause)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| (describe(&e), is_final(&e))),
            };
            match sent {
                Ok(()) => return Ok(()),
                Err((message, true)) => return Err(format!("Step Functions refused the answer: {message}")),
                Err((message, false)) => last = message,
            }
        }
        Err(format!("Step Functions did not take the answer after {ATTEMPTS} tries: {last}"))
    }
}

/// A refusal no retry changes: the token is unknown, timed out or answered.
fn is_final<E>(e: &aws_sdk_sfn::error::SdkError<E, aws_sdk_sfn::config::http::HttpResponse>) -> bool {
    matches!(e, aws_sdk_sfn::error::SdkError::ServiceError(s) if s.raw().status().is_client_error())
}

/// At most `max` bytes of `text`, cut on a character boundary.
fn clip_to(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

impl TaskCallbacks for StepFunctions {
    fn succeed<'a>(&'a self, token: &'a str, output: String) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if output.len() > MAX_OUTPUT_BYTES {
                let cause = format!(
                    "the answer is {} bytes; a Step Functions task takes at most {MAX_OUTPUT_BYTES}",
                    output.len()
                );
                return self.send(None, token, "agenthost.output-too-large", &cause).await;
            }
            self.send(Some(output), token, "", "").await
        })
    }

    fn fail<'a>(
        &'a self,
        token: &'a str,
        error: &'a str,
        cause: String,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
            self.send(None, token, &error, &clip_to(&cause, MAX_CAUSE_BYTES)).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_cause_is_cut_on_a_character_boundary() {
        let text = "é".repeat(10);
        let cut = clip_to(&text, 5);
        assert_eq!(cut, "éé");
        assert_eq!(clip_to("short", 10), "short");
    }
}
