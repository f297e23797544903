//! The one error shape of an invocation: what went wrong (`kind`), in which
//! component (name@version and digest), which limit was hit and its
//! configured value, and the guest backtrace when there is one.
//!
//! Every trap, limit and load failure a guest can cause ends up here; the
//! host never panics on those paths.

use std::fmt;

use serde::Serialize;

use crate::bindings::types::Error as WitError;

/// The longest error message a guest can hand the host, in bytes.
pub const MAX_GUEST_MESSAGE_BYTES: usize = 4096;

/// A guest's message, cut to [`MAX_GUEST_MESSAGE_BYTES`] with a note of
/// how long it was.
fn cap_message(message: String) -> String {
    if message.len() <= MAX_GUEST_MESSAGE_BYTES {
        return message;
    }
    let mut end = MAX_GUEST_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… (cut: the guest's message was {} bytes; the cap is {MAX_GUEST_MESSAGE_BYTES})",
        &message[..end],
        message.len()
    )
}

/// The category of an [`InvokeError`], stable for scripts (`kind` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The wall-clock deadline passed.
    Timeout,
    /// The fuel (CPU) budget ran out.
    OutOfFuel,
    /// The guest tried to grow its memory past the limit.
    MemoryLimit,
    /// The guest exhausted its stack.
    StackOverflow,
    /// Any other trap: `unreachable`, an out-of-bounds access, a guest panic.
    Trap,
    /// The output is larger than the cap.
    OutputTooLarge,
    /// The input does not match the tool's schema (or is not JSON).
    InvalidInput,
    /// The guest returned something that is not what its world promises.
    InvalidOutput,
    /// The component could not be loaded: malformed, wrong world, an import
    /// that is not provided or not granted.
    LoadFailed,
    /// The guest (or a host interface) answered with the WIT error `denied`.
    Denied,
    /// ... `not-found`.
    NotFound,
    /// ... `limit-exceeded`.
    LimitExceeded,
    /// ... `unavailable`.
    Unavailable,
    /// ... `approval-required`.
    ApprovalRequired,
    /// ... `internal`, or a failure of the host itself.
    Internal,
}

impl ErrorKind {
    /// The kind of a WIT `error` case: the same name, so `as_str` of the
    /// result is the case's name.
    pub fn of_wit(error: &WitError) -> ErrorKind {
        match error {
            WitError::Denied(_) => ErrorKind::Denied,
            WitError::NotFound(_) => ErrorKind::NotFound,
            WitError::InvalidInput(_) => ErrorKind::InvalidInput,
            WitError::LimitExceeded(_) => ErrorKind::LimitExceeded,
            WitError::Unavailable(_) => ErrorKind::Unavailable,
            WitError::ApprovalRequired(_) => ErrorKind::ApprovalRequired,
            WitError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::OutOfFuel => "out-of-fuel",
            ErrorKind::MemoryLimit => "memory-limit",
            ErrorKind::StackOverflow => "stack-overflow",
            ErrorKind::Trap => "trap",
            ErrorKind::OutputTooLarge => "output-too-large",
            ErrorKind::InvalidInput => "invalid-input",
            ErrorKind::InvalidOutput => "invalid-output",
            ErrorKind::LoadFailed => "load-failed",
            ErrorKind::Denied => "denied",
            ErrorKind::NotFound => "not-found",
            ErrorKind::LimitExceeded => "limit-exceeded",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::ApprovalRequired => "approval-required",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which component an error belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentRef {
    pub name: String,
    pub version: String,
    /// `sha256:<hex>` of the component bytes.
    pub digest: String,
}

impl ComponentRef {
    /// `name@version`: how logs, transcripts, audit records and trace
    /// contexts name the component.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

impl fmt::Display for ComponentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = self.digest.get(..19).unwrap_or(&self.digest);
        write!(f, "{} ({short}…)", self.label())
    }
}

/// A limit that was hit, with its configured value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LimitHit {
    /// `timeout_ms`, `fuel`, `memory_bytes`, `max_wasm_stack_bytes` or `output_bytes`.
    pub name: &'static str,
    pub value: u64,
}

/// Who produced the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// The host: a limit, a check, a load step.
    Host,
    /// The guest returned this error through its WIT `result`.
    Guest,
}

/// A failed load or invocation, structured for people and for scripts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvokeError {
    pub kind: ErrorKind,
    pub origin: Origin,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<Box<ComponentRef>>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<LimitHit>,
    /// Guest frames, innermost first, when the failure was a trap.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub backtrace: Box<[String]>,
    /// For `approval-required`: the pending request's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_request: Option<String>,
    /// For a policy denial: the ids of the policies that decided it.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub policies: Box<[String]>,
}

impl InvokeError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        InvokeError {
            kind,
            origin: Origin::Host,
            component: None,
            message: message.into(),
            limit: None,
            backtrace: Box::default(),
            approval_request: None,
            policies: Box::default(),
        }
    }

    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Denied, message)
    }

    pub fn load(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::LoadFailed, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    #[must_use]
    pub fn with_component(mut self, component: &ComponentRef) -> Self {
        self.component = Some(Box::new(component.clone()));
        self
    }

    #[must_use]
    pub fn with_limit(mut self, name: &'static str, value: u64) -> Self {
        self.limit = Some(LimitHit { name, value });
        self
    }

    /// The error a guest returned through its WIT `result`. Its message is
    /// cut at [`MAX_GUEST_MESSAGE_BYTES`] (a guest chooses its length, and
    /// it travels on into logs, transcripts and the audit trail).
    pub fn from_guest(error: WitError, component: &ComponentRef) -> Self {
        let kind = ErrorKind::of_wit(&error);
        let (message, approval) = match error {
            WitError::Denied(m)
            | WitError::NotFound(m)
            | WitError::InvalidInput(m)
            | WitError::LimitExceeded(m)
            | WitError::Unavailable(m)
            | WitError::Internal(m) => (m, None),
            WitError::ApprovalRequired(p) => (p.message, Some(p.request_id)),
        };
        InvokeError {
            origin: Origin::Guest,
            approval_request: approval,
            ..Self::new(kind, cap_message(message)).with_component(component)
        }
    }

    /// How this error is shown to a guest that called the failing component
    /// through `tools.invoke`: the guest's own error passes through, a host
    /// failure (a trap, a limit) becomes the closest WIT case.
    pub fn to_wit(&self) -> WitError {
        // The WIT case carries the kind; the message says where, for a
        // host-raised error, and is passed through untouched from a guest.
        let message = match (&self.component, self.origin) {
            (Some(component), Origin::Host) => format!("{component}: {}", self.message),
            _ => self.message.clone(),
        };
        match self.kind {
            ErrorKind::Denied => WitError::Denied(message),
            ErrorKind::NotFound => WitError::NotFound(message),
            ErrorKind::InvalidInput => WitError::InvalidInput(message),
            ErrorKind::Timeout
            | ErrorKind::OutOfFuel
            | ErrorKind::MemoryLimit
            | ErrorKind::StackOverflow
            | ErrorKind::OutputTooLarge
            | ErrorKind::LimitExceeded => WitError::LimitExceeded(message),
            ErrorKind::Unavailable | ErrorKind::LoadFailed => WitError::Unavailable(message),
            ErrorKind::ApprovalRequired => {
                WitError::ApprovalRequired(crate::bindings::types::ApprovalPending {
                    request_id: self.approval_request.clone().unwrap_or_default(),
                    message,
                })
            }
            ErrorKind::Trap | ErrorKind::InvalidOutput | ErrorKind::Internal => WitError::Internal(message),
        }
    }

    /// `{"error": {...}}`, the form `agenthost` prints on stderr.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self })
    }
}

impl fmt::Display for InvokeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(component) = &self.component {
            write!(f, " in {component}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for InvokeError {}

#[cfg(test)]
mod tests {
    use super::{ErrorKind, WitError};

    /// The case names of `variant error` in wit/types.wit.
    fn wit_cases() -> Vec<String> {
        let wit = include_str!("../../wit/types.wit");
        let body = wit.split("variant error {").nth(1).and_then(|rest| rest.split('}').next()).unwrap();
        body.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("//"))
            .map(|line| line.split('(').next().unwrap().trim_end_matches(',').to_owned())
            .collect()
    }

    #[test]
    fn every_wit_error_case_has_its_own_name_as_a_kind() {
        let pending =
            crate::bindings::types::ApprovalPending { request_id: String::new(), message: String::new() };
        let errors = [
            WitError::Denied(String::new()),
            WitError::NotFound(String::new()),
            WitError::InvalidInput(String::new()),
            WitError::LimitExceeded(String::new()),
            WitError::Unavailable(String::new()),
            WitError::ApprovalRequired(pending),
            WitError::Internal(String::new()),
        ];
        let names: Vec<&str> = errors.iter().map(|e| ErrorKind::of_wit(e).as_str()).collect();
        assert_eq!(names, wit_cases());
        for error in errors {
            // And back: the kind a guest sees is the case it came from.
            let kind = ErrorKind::of_wit(&error);
            let shown = super::InvokeError::new(kind, "m").to_wit();
            assert_eq!(ErrorKind::of_wit(&shown), kind);
        }
    }
}
