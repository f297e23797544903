//! One place where AWS SDK clients get their configuration: region,
//! credentials and endpoint come from the usual AWS environment
//! (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, profiles, IRSA,
//! the Lambda role), optionally overridden by the host's `[aws]` settings so
//! that a laptop or a test can point every client at a local emulator.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::config::http::HttpResponse;
use serde::Deserialize;

/// `[aws]` in host.toml.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// Send every AWS call here (e.g. a local emulator) instead of AWS.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    /// Give up on a call after this long, so a service that is down answers
    /// `unavailable` quickly instead of holding the guest.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Attempts per call, the first included (throttling and 5xx are retried with backoff).
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

impl AwsSettings {
    /// The custom endpoint, from the settings or `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> Option<String> {
        self.endpoint_url.clone().or_else(|| std::env::var("AWS_ENDPOINT_URL").ok().filter(|v| !v.is_empty()))
    }

    /// Loads the shared SDK configuration.
    pub async fn load(&self) -> aws_config::SdkConfig {
        let timeout = Duration::from_millis(self.timeout_ms.unwrap_or(5_000));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(self.max_attempts.unwrap_or(3)))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_millis(self.timeout_ms.unwrap_or(1_000).min(1_000)))
                    .operation_attempt_timeout(timeout)
                    .build(),
            );
        if let Some(endpoint) = &self.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        loader.load().await
    }
}

/// The message of an SDK error, with the service's own code where it sent one.
pub fn describe<E, R>(error: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_s3::error::SdkError;
    match error {
        SdkError::ServiceError(service) => {
            let e = service.err();
            match (e.code(), e.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_owned(),
                _ => e.to_string(),
            }
        }
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        SdkError::DispatchFailure(failure) => {
            if failure.is_timeout() {
                "timed out".to_owned()
            } else {
                format!(
                    "cannot reach the service ({})",
                    aws_smithy_types::error::display::DisplayErrorContext(error)
                )
            }
        }
        other => aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
    }
}

/// Whether an SDK error means the service could not be reached or answered
/// with a server error (the guest sees `unavailable`).
pub fn is_unavailable<E>(error: &aws_sdk_s3::error::SdkError<E, HttpResponse>) -> bool {
    use aws_sdk_s3::error::SdkError;
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => service.raw().status().is_server_error(),
        _ => false,
    }
}
