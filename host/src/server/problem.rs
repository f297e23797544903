//! Errors as `application/problem+json` (RFC 9457), carrying the fields
//! of an [`InvokeError`] (`kind`, `component`, `limit`, `approval_request`,
//! `policies`), with one HTTP status per kind.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::error::{ErrorKind, InvokeError};
use crate::registry::RegistryError;

/// A problem to answer with.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    /// Stable for scripts: the `InvokeError` kind, or one of the server's
    /// own (`unauthorized`, `forbidden`, `overloaded`, `body-too-large`, ...).
    pub kind: String,
    pub detail: String,
    /// Further members (an `InvokeError`'s fields).
    pub extra: Box<Map<String, Value>>,
    pub retry_after: Option<u64>,
    pub location: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Problem {
            status,
            kind: kind.to_owned(),
            detail: detail.into(),
            extra: Box::default(),
            retry_after: None,
            location: None,
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 403 that says nothing of whether the resource exists.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-input", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    pub fn overloaded(detail: impl Into<String>, retry_after: u64) -> Self {
        let mut p = Problem::new(StatusCode::TOO_MANY_REQUESTS, "overloaded", detail);
        p.retry_after = Some(retry_after);
        p
    }

    fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }
}

/// The HTTP status of an invocation error's kind.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::Denied => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::ApprovalRequired => StatusCode::CONFLICT,
        ErrorKind::LimitExceeded => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable | ErrorKind::LoadFailed => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        // The component failed (a trap, a limit of its own, bad output):
        // the server stands in front of it as a gateway does.
        ErrorKind::OutOfFuel
        | ErrorKind::MemoryLimit
        | ErrorKind::StackOverflow
        | ErrorKind::Trap
        | ErrorKind::OutputTooLarge
        | ErrorKind::InvalidOutput => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<InvokeError> for Problem {
    fn from(e: InvokeError) -> Self {
        let mut extra = match e.to_json() {
            Value::Object(mut outer) => match outer.remove("error") {
                Some(Value::Object(inner)) => inner,
                _ => outer,
            },
            _ => Map::new(),
        };
        extra.remove("message");
        extra.remove("kind");
        let mut p = Problem::new(status_of(e.kind), e.kind.as_str(), e.message.clone());
        p.extra = Box::new(extra);
        if e.kind == ErrorKind::LimitExceeded {
            p.retry_after = Some(1);
        }
        p
    }
}

impl From<RegistryError> for Problem {
    fn from(e: RegistryError) -> Self {
        let status = match &e {
            RegistryError::NotFound(_) => StatusCode::NOT_FOUND,
            RegistryError::Invalid(_) => StatusCode::BAD_REQUEST,
            RegistryError::Refused(_) => StatusCode::FORBIDDEN,
            RegistryError::Conflict(_) => StatusCode::CONFLICT,
            RegistryError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        Problem::new(status, e.kind(), e.to_string())
    }
}

impl Problem {
    /// The RFC 9457 body.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), json!(format!("urn:agenthost:problem:{}", self.kind)));
        body.insert("title".into(), json!(self.title()));
        body.insert("status".into(), json!(self.status.as_u16()));
        body.insert("detail".into(), json!(self.detail));
        body.insert("kind".into(), json!(self.kind));
        for (k, v) in self.extra.iter() {
            body.entry(k.clone()).or_insert(v.clone());
        }
        Value::Object(body)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let text = serde_json::to_string(&self.to_json()).unwrap_or_else(|_| "{}".to_owned());
        let mut response = (self.status, text).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, location);
        }
        response
    }
}
