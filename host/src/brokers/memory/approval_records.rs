//! Approval requests and spent-token marks kept in the memory backend, so
//! that every replica of a server and every Lambda execution environment
//! on one DynamoDB table sees the same requests: a request made by one is
//! approved through another and re-submitted to a third.
//!
//! Records live in a scope no tenant can name (tenant ids are
//! `[a-z0-9-]`, this one starts with `@`), under `request/<id>` and
//! `used/<nonce>`. A decision is a compare-and-set on the request's
//! version; a token's use is a write only if absent; both expire through
//! the backend's TTL once nobody can use them.

use std::sync::Arc;

use super::{MemoryError, MemoryStore, Put, RecordMeta, Scope, now_secs};
use crate::governance::ApprovalError;
use crate::governance::approval_store::{ApprovalRecords, Pending, Stored};
use crate::governance::packs::Classification;

/// The scope the host keeps approvals in.
const SCOPE: Scope<'static> = Scope { tenant: "@host", namespace: "agenthost:approvals" };

pub struct MemoryApprovals {
    store: Arc<dyn MemoryStore>,
}

impl MemoryApprovals {
    pub fn new(store: Arc<dyn MemoryStore>) -> Self {
        MemoryApprovals { store }
    }

    /// A backend that does not answer is `unavailable` (try again); one
    /// that answers wrongly is the host's failure.
    fn failed(&self, e: &MemoryError) -> ApprovalError {
        let message = format!("the approvals store (memory backend `{}`): {e}", self.store.name());
        match e {
            MemoryError::Unavailable(_) => ApprovalError::Unavailable(message),
            _ => ApprovalError::Internal(message),
        }
    }

    fn put(value: Vec<u8>, expected: u64, keep_until: u64) -> Put {
        Put {
            value,
            expected_version: Some(expected),
            ttl_seconds: Some(keep_until.saturating_sub(now_secs()).max(1)),
            meta: RecordMeta {
                classification: Classification::Confidential,
                retention_days: None,
                writer: "agenthost".to_owned(),
                run_id: String::new(),
                written_at: now_secs(),
            },
        }
    }
}

impl ApprovalRecords for MemoryApprovals {
    fn describe(&self) -> String {
        format!("the memory backend ({})", self.store.name())
    }

    fn load<'a>(&'a self, id: &'a str) -> Pending<'a, Result<Option<Stored>, ApprovalError>> {
        Box::pin(async move {
            let record =
                self.store.get(SCOPE, &format!("request/{id}")).await.map_err(|e| self.failed(&e))?;
            Ok(record.map(|r| Stored { bytes: r.value, version: r.version }))
        })
    }

    fn store<'a>(
        &'a self,
        id: &'a str,
        bytes: Vec<u8>,
        expected: u64,
        keep_until: u64,
    ) -> Pending<'a, Result<bool, ApprovalError>> {
        Box::pin(async move {
            let put = Self::put(bytes, expected, keep_until);
            match self.store.put(SCOPE, &format!("request/{id}"), put).await {
                Ok(_) => Ok(true),
                Err(MemoryError::Conflict { .. }) => Ok(false),
                Err(e) => Err(self.failed(&e)),
            }
        })
    }

    fn ids(&self, limit: usize) -> Pending<'_, Result<Vec<String>, ApprovalError>> {
        Box::pin(async move {
            let mut ids = Vec::new();
            let mut cursor: Option<String> = None;
            while ids.len() < limit {
                let want = u32::try_from(limit - ids.len()).unwrap_or(u32::MAX).min(super::MAX_PAGE);
                let page = self
                    .store
                    .list(SCOPE, "request/", cursor.as_deref(), want)
                    .await
                    .map_err(|e| self.failed(&e))?;
                ids.extend(page.keys.iter().filter_map(|k| k.strip_prefix("request/")).map(str::to_owned));
                match page.next_cursor {
                    Some(next) if !page.keys.is_empty() => cursor = Some(next),
                    _ => break,
                }
            }
            Ok(ids)
        })
    }

    fn mark_used<'a>(&'a self, nonce: &'a str, keep_until: u64) -> Pending<'a, Result<bool, ApprovalError>> {
        Box::pin(async move {
            let put = Self::put(Vec::new(), 0, keep_until);
            match self.store.put(SCOPE, &format!("used/{nonce}"), put).await {
                Ok(_) => Ok(true),
                Err(MemoryError::Conflict { .. }) => Ok(false),
                Err(e) => Err(self.failed(&e)),
            }
        })
    }

    fn unmark<'a>(&'a self, nonce: &'a str) -> Pending<'a, Result<(), ApprovalError>> {
        Box::pin(async move {
            self.store
                .delete(SCOPE, &format!("used/{nonce}"), None)
                .await
                .map(|_| ())
                .map_err(|e| self.failed(&e))
        })
    }

    fn is_used<'a>(&'a self, nonce: &'a str) -> Pending<'a, Result<bool, ApprovalError>> {
        Box::pin(async move {
            let record =
                self.store.get(SCOPE, &format!("used/{nonce}")).await.map_err(|e| self.failed(&e))?;
            Ok(record.is_some())
        })
    }
}
