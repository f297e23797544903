//! The memory broker: the store behind `agenthost:platform/memory`.
//!
//! Every backend keeps records under `(tenant, namespace, key)`, where the
//! tenant comes from the host (the caller's call context), never from the
//! guest: a guest cannot name another tenant. Each record carries its
//! governance metadata (classification, retention, writer agent@version,
//! run id, time written). Put is compare-and-set on the version when asked,
//! with an optional TTL; an expired record reads as absent.
//!
//! Backends: [`InProcessMemory`] (tests), [`EmbeddedMemory`] (redb, the
//! default, persisted under the data dir) and [`DynamoMemory`]. One behaviour
//! suite (`tests/all/memory.rs`) runs against each.

mod approval_records;
mod dynamo;
mod embedded;
mod in_process;
mod quota_ledger;

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use crate::settings::{DEFAULT_TABLE, MemoryBackend, MemorySettings};
pub use approval_records::MemoryApprovals;
pub use dynamo::{DynamoMemory, create_table};
pub use embedded::EmbeddedMemory;
pub use in_process::InProcessMemory;
pub use quota_ledger::{MemoryQuotaLedger, QUOTA_NAMESPACE};

use crate::bindings::types::Error as WitError;

/// A boxed future, so the backend can be chosen at run time.
pub use crate::brokers::BoxFuture;

/// Where a record lives: set by the host from the call, never by the guest.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub tenant: &'a str,
    pub namespace: &'a str,
}

/// A record's sensitivity: the classification the policy packs cap.
pub use crate::governance::packs::Classification;

/// Who wrote a record and under which rules it is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordMeta {
    pub classification: Classification,
    pub retention_days: Option<u32>,
    /// `name@version` of the component that wrote it.
    pub writer: String,
    pub run_id: String,
    /// Unix seconds.
    pub written_at: u64,
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    pub value: Vec<u8>,
    pub version: u64,
    /// Unix seconds after which the record is gone.
    pub expires_at: Option<u64>,
    pub meta: RecordMeta,
}

/// A write.
#[derive(Debug, Clone)]
pub struct Put {
    pub value: Vec<u8>,
    /// `Some(v)`: only if the stored version is `v` (`0`: only if absent).
    pub expected_version: Option<u64>,
    pub ttl_seconds: Option<u64>,
    pub meta: RecordMeta,
}

impl Put {
    /// A record the host keeps for itself (quota counts, delivery claims,
    /// approvals, shared runs): written by `agenthost`, in no run, gone
    /// after `ttl_seconds`.
    pub fn host(
        value: Vec<u8>,
        expected_version: Option<u64>,
        ttl_seconds: u64,
        classification: Classification,
    ) -> Put {
        Put {
            value,
            expected_version,
            ttl_seconds: Some(ttl_seconds),
            meta: RecordMeta {
                classification,
                retention_days: None,
                writer: "agenthost".to_owned(),
                run_id: String::new(),
                written_at: now_secs(),
            },
        }
    }
}

/// One page of keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    pub keys: Vec<String>,
    pub next_cursor: Option<String>,
}

impl Page {
    /// A page of at most `limit` keys from up to `limit + 1` fetched in
    /// order: the extra one only says there is more, after the last kept.
    pub(crate) fn from_overfetch(mut keys: Vec<String>, limit: usize) -> Page {
        let more = keys.len() > limit;
        keys.truncate(limit);
        let next_cursor = if more { keys.last().cloned() } else { None };
        Page { keys, next_cursor }
    }
}

/// Why a memory call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    #[error("compare-and-set failed on `{key}`: expected version {expected}, stored version {stored}")]
    Conflict { key: String, expected: u64, stored: u64 },
    #[error("{0}")]
    Invalid(String),
    #[error("the memory backend is unavailable: {0}")]
    Unavailable(String),
    #[error("the memory backend failed: {0}")]
    Internal(String),
}

impl From<MemoryError> for WitError {
    fn from(e: MemoryError) -> Self {
        match e {
            MemoryError::Conflict { .. } | MemoryError::Invalid(_) => WitError::InvalidInput(e.to_string()),
            MemoryError::Unavailable(_) => WitError::Unavailable(e.to_string()),
            MemoryError::Internal(_) => WitError::Internal(e.to_string()),
        }
    }
}

/// The most keys one `list` returns.
pub const MAX_PAGE: u32 = 1000;
/// The largest value one record holds (DynamoDB's item limit is 400 KB).
pub const MAX_VALUE_BYTES: usize = 256 * 1024;
/// The longest key.
pub const MAX_KEY_BYTES: usize = 1024;

/// A memory backend.
pub trait MemoryStore: Send + Sync {
    /// A short name for logs and errors: `in-process`, `embedded`, `dynamodb`.
    fn name(&self) -> &'static str;

    /// Whether the backend answers (a server's readiness); local ones
    /// always do.
    fn probe(&self) -> BoxFuture<'_, Result<(), MemoryError>> {
        Box::pin(async { Ok(()) })
    }

    fn get<'a>(
        &'a self,
        scope: Scope<'a>,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Record>, MemoryError>>;

    /// Returns the new version.
    fn put<'a>(&'a self, scope: Scope<'a>, key: &'a str, put: Put)
    -> BoxFuture<'a, Result<u64, MemoryError>>;

    /// Returns whether a live record was deleted.
    fn delete<'a>(
        &'a self,
        scope: Scope<'a>,
        key: &'a str,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<bool, MemoryError>>;

    /// Keys starting with `prefix`, in order, after `cursor`.
    fn list<'a>(
        &'a self,
        scope: Scope<'a>,
        prefix: &'a str,
        cursor: Option<&'a str>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Page, MemoryError>>;
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub(crate) fn live(expires_at: Option<u64>, now: u64) -> bool {
    expires_at.is_none_or(|at| at > now)
}

/// Checks what every backend refuses alike.
pub(crate) fn check_key(key: &str) -> Result<(), MemoryError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(MemoryError::Invalid(format!("a key must be 1 to {MAX_KEY_BYTES} bytes long")));
    }
    if key.contains('\0') {
        return Err(MemoryError::Invalid("a key may not contain NUL".to_owned()));
    }
    Ok(())
}

pub(crate) fn check_put(key: &str, put: &Put) -> Result<(), MemoryError> {
    check_key(key)?;
    if put.value.len() > MAX_VALUE_BYTES {
        return Err(MemoryError::Invalid(format!(
            "the value is {} bytes; a record holds at most {MAX_VALUE_BYTES}",
            put.value.len()
        )));
    }
    Ok(())
}

/// The stored version a compare-and-set is checked against (0 when absent)
/// and the version the write gets.
pub(crate) fn next_version(
    key: &str,
    stored: Option<u64>,
    expected: Option<u64>,
) -> Result<u64, MemoryError> {
    let current = stored.unwrap_or(0);
    match expected {
        Some(expected) if expected != current => {
            Err(MemoryError::Conflict { key: key.to_owned(), expected, stored: current })
        }
        // A stored version comes from disk or a remote table: at its
        // maximum it is refused, never wrapped back to a used version.
        _ => current.checked_add(1).ok_or_else(|| {
            MemoryError::Invalid(format!(
                "`{key}` is at the highest version ({current}); it cannot be written again"
            ))
        }),
    }
}

pub(crate) fn expiry(ttl_seconds: Option<u64>, now: u64) -> Option<u64> {
    ttl_seconds.map(|ttl| now.saturating_add(ttl))
}
