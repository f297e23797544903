//! What governance can fail with, typed, and the one place each failure is
//! given the kind of error a caller sees ([`ErrorKind`]): a request that
//! does not exist is `not-found`, a refusal is `denied`, a file the host
//! cannot read or parse is `internal` (the host's own state is broken, not
//! the caller's request).
//!
//! At load time every governance failure fails the load (`load-failed`,
//! with the message); the kinds here are those of a call, where tenant,
//! approvals and policy errors arise (`From` turns those into an
//! [`InvokeError`]). Manifests and packs are read only at load and by the
//! CLI; their kinds say what an embedder reading them should report.

use std::path::PathBuf;

use crate::error::{ErrorKind, InvokeError};

/// The approvals store and its requests.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("`{0}` is not an approval request id")]
    BadId(String),
    #[error("no approval request `{0}`")]
    NotFound(String),
    /// The request or token does not allow it: denied, expired, decided,
    /// the approver's own request, a token already used.
    #[error("{0}")]
    Refused(String),
    #[error("{what} is corrupt: {detail}")]
    Corrupt { what: String, detail: String },
    /// The store cannot be reached (or is not connected yet).
    #[error("{0}")]
    Unavailable(String),
    #[error("cannot {action} {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Internal(String),
    /// The tenant has as many requests waiting for decisions as it may.
    #[error(
        "tenant `{tenant}` has {limit} approval requests waiting for decisions (quota pending_approvals): decide or let some expire first"
    )]
    TooMany { tenant: String, limit: usize },
}

impl ApprovalError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            // No request can have a malformed id: it is not found.
            ApprovalError::BadId(_) | ApprovalError::NotFound(_) => ErrorKind::NotFound,
            ApprovalError::Refused(_) => ErrorKind::Denied,
            ApprovalError::Unavailable(_) => ErrorKind::Unavailable,
            ApprovalError::TooMany { .. } => ErrorKind::LimitExceeded,
            ApprovalError::Corrupt { .. } | ApprovalError::Io { .. } | ApprovalError::Internal(_) => {
                ErrorKind::Internal
            }
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ApprovalError::Io { action, path: path.into(), source }
    }
}

/// Tenants: their files, and which of them a call may run for.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("no tenant `{id}` is configured (tenants: {})", known.join(", "))]
    Unknown { id: String, known: Vec<String> },
    /// Not on this host: another tenant than `--tenant-scope`, or an
    /// `account`-isolated tenant on a host not scoped to it.
    #[error("{0}")]
    OutOfScope(String),
    #[error("cannot read {}: {source}", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
    /// A tenant file that does not parse or does not hold together.
    #[error("{0}")]
    Invalid(String),
}

impl TenantError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            TenantError::Unknown { .. } | TenantError::OutOfScope(_) => ErrorKind::Denied,
            TenantError::Unreadable { .. } | TenantError::Invalid(_) => ErrorKind::Internal,
        }
    }
}

/// Component manifests (`<stem>.manifest.toml`).
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read the manifest {}: {source}", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
    /// It does not parse, or says something impossible.
    #[error("{0}")]
    Invalid(String),
    /// Unsigned where a signature is required, signed by an untrusted key,
    /// or a signature that does not verify.
    #[error("{0}")]
    Signature(String),
    /// The policy manifest it names.
    #[error(transparent)]
    Policy(#[from] PackError),
}

impl ManifestError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ManifestError::Unreadable { .. } => ErrorKind::Internal,
            ManifestError::Invalid(_) => ErrorKind::InvalidInput,
            ManifestError::Signature(_) => ErrorKind::Denied,
            ManifestError::Policy(e) => e.kind(),
        }
    }
}

/// Policy packs, their stacks and the signed policy manifest.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// `what` names the file's role, e.g. `the policy manifest `.
    #[error("cannot read {what}{}: {source}", path.display())]
    Unreadable { what: &'static str, path: PathBuf, source: std::io::Error },
    /// A pack that does not parse, a layer that loosens one above it,
    /// cases that fail, a manifest whose content does not match its pin.
    #[error("{0}")]
    Invalid(String),
    /// A policy manifest that is not what was pinned, not signed by a
    /// trusted key or expired; a stack bound to another tenant, or one a
    /// component may not run under.
    #[error("{0}")]
    Refused(String),
}

impl PackError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            PackError::Unreadable { .. } | PackError::Invalid(_) => ErrorKind::Internal,
            PackError::Refused(_) => ErrorKind::Denied,
        }
    }
}

/// The policy engine.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Policies that do not parse or do not validate against the schema.
    #[error("{0}")]
    Invalid(String),
    /// A query the engine could not evaluate.
    #[error("{0}")]
    Evaluation(String),
}

impl PolicyError {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

macro_rules! into_invoke_error {
    ($($error:ty),*) => {$(
        impl From<$error> for InvokeError {
            fn from(error: $error) -> Self {
                InvokeError::new(error.kind(), error.to_string())
            }
        }
    )*};
}

into_invoke_error!(TenantError, PolicyError);

/// An approvals failure; at the bound of waiting requests, it names the quota.
impl From<ApprovalError> for InvokeError {
    fn from(error: ApprovalError) -> Self {
        let invoke = InvokeError::new(error.kind(), error.to_string());
        match error {
            ApprovalError::TooMany { limit, .. } => {
                invoke.with_limit("pending_approvals", u64::try_from(limit).unwrap_or(u64::MAX))
            }
            _ => invoke,
        }
    }
}
