//! Approval requests and spent-token marks kept in the memory backend, so
//! that every replica of a server and every Lambda execution environment
//! on one DynamoDB table sees the same requests: a request made by one is
//! approved through another and re-submitted to a third.
//!
//! Records live in a scope no tenant can name (tenant ids are
//! `[a-z0-9-]`, this one starts with `@`), under `request/<tenant>/<id>`
//! (each tenant's listing is a prefix of its own), `used/<nonce>` and
//! `parked/<id>` (requests a paused workflow waits on) and
//! `waiting/<tenant>/<id>` (requests not decided yet, until they expire:
//! what a tenant's bound on waiting requests counts). A decision is a compare-and-set on the request's
//! version; a token's use is a write only if absent; both expire through
//! the backend's TTL once nobody can use them.

use std::sync::Arc;

use super::{MemoryError, MemoryStore, Put, Scope, now_secs};
use crate::governance::ApprovalError;
use crate::governance::approval_store::{ApprovalRecords, Pending, Stored, tenant_of};
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

    /// Where request `id` is kept: under its tenant when the id names one.
    fn request_key(id: &str) -> String {
        match tenant_of(id) {
            Some(tenant) => format!("request/{tenant}/{id}"),
            None => format!("request/-/{id}"),
        }
    }

    /// Keys under `prefix`, at most `limit`, without the prefix's path.
    async fn keys(&self, prefix: &str, limit: usize) -> Result<Vec<String>, ApprovalError> {
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        while keys.len() < limit {
            let want = u32::try_from(limit - keys.len()).unwrap_or(u32::MAX).min(super::MAX_PAGE);
            let page =
                self.store.list(SCOPE, prefix, cursor.as_deref(), want).await.map_err(|e| self.failed(&e))?;
            keys.extend(page.keys.iter().filter_map(|k| k.rsplit('/').next()).map(str::to_owned));
            match page.next_cursor {
                Some(next) if !page.keys.is_empty() => cursor = Some(next),
                _ => break,
            }
        }
        Ok(keys)
    }

    /// Writes the empty record `key` kept until `keep_until`, or deletes it (`None`).
    async fn mark(&self, key: &str, keep_until: Option<u64>) -> Result<(), ApprovalError> {
        let done = match keep_until {
            Some(keep_until) => {
                self.store.put(SCOPE, key, Self::put(Vec::new(), None, keep_until)).await.map(|_| ())
            }
            None => self.store.delete(SCOPE, key, None).await.map(|_| ()),
        };
        done.map_err(|e| self.failed(&e))
    }

    fn put(value: Vec<u8>, expected: Option<u64>, keep_until: u64) -> Put {
        let ttl = keep_until.saturating_sub(now_secs()).max(1);
        Put::host(value, expected, ttl, Classification::Confidential)
    }
}

impl ApprovalRecords for MemoryApprovals {
    fn describe(&self) -> String {
        format!("the memory backend ({})", self.store.name())
    }

    fn load<'a>(&'a self, id: &'a str) -> Pending<'a, Result<Option<Stored>, ApprovalError>> {
        Box::pin(async move {
            let record = self.store.get(SCOPE, &Self::request_key(id)).await.map_err(|e| self.failed(&e))?;
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
            let put = Self::put(bytes, Some(expected), keep_until);
            match self.store.put(SCOPE, &Self::request_key(id), put).await {
                Ok(_) => Ok(true),
                Err(MemoryError::Conflict { .. }) => Ok(false),
                Err(e) => Err(self.failed(&e)),
            }
        })
    }

    fn ids<'a>(
        &'a self,
        tenant: Option<&'a str>,
        limit: usize,
    ) -> Pending<'a, Result<Vec<String>, ApprovalError>> {
        Box::pin(async move {
            let prefix = match tenant {
                Some(tenant) => format!("request/{tenant}/"),
                None => "request/".to_owned(),
            };
            self.keys(&prefix, limit).await
        })
    }

    fn set_parked<'a>(
        &'a self,
        id: &'a str,
        parked: bool,
        keep_until: u64,
    ) -> Pending<'a, Result<(), ApprovalError>> {
        Box::pin(async move { self.mark(&format!("parked/{id}"), parked.then_some(keep_until)).await })
    }

    fn parked(&self, limit: usize) -> Pending<'_, Result<Vec<String>, ApprovalError>> {
        Box::pin(async move { self.keys("parked/", limit).await })
    }

    fn set_waiting<'a>(
        &'a self,
        id: &'a str,
        waiting: bool,
        expires_at: u64,
    ) -> Pending<'a, Result<(), ApprovalError>> {
        // The mark lives as long as the request can be decided.
        Box::pin(async move {
            let tenant = tenant_of(id).unwrap_or("-");
            self.mark(&format!("waiting/{tenant}/{id}"), waiting.then_some(expires_at)).await
        })
    }

    fn waiting<'a>(&'a self, tenant: &'a str, limit: usize) -> Pending<'a, Result<usize, ApprovalError>> {
        Box::pin(async move { Ok(self.keys(&format!("waiting/{tenant}/"), limit).await?.len()) })
    }

    fn mark_used<'a>(&'a self, nonce: &'a str, keep_until: u64) -> Pending<'a, Result<bool, ApprovalError>> {
        Box::pin(async move {
            let put = Self::put(Vec::new(), Some(0), keep_until);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brokers::memory::InProcessMemory;

    #[tokio::test]
    async fn writes_are_compare_and_set_a_use_is_once_and_tenants_list_apart() {
        let records = MemoryApprovals::new(Arc::new(InProcessMemory::default()));
        let (acme, globex) = ("apr-acme-0123456789abcdef", "apr-globex-0123456789abcdef");
        assert!(records.store(acme, b"one".to_vec(), 0, u64::MAX / 2).await.unwrap());
        assert!(!records.store(acme, b"again".to_vec(), 0, u64::MAX / 2).await.unwrap(), "created twice");
        let stored = records.load(acme).await.unwrap().unwrap();
        assert!(!records.store(acme, b"stale".to_vec(), stored.version + 1, u64::MAX / 2).await.unwrap());
        assert!(records.store(acme, b"two".to_vec(), stored.version, u64::MAX / 2).await.unwrap());
        assert_eq!(records.load(acme).await.unwrap().unwrap().bytes, b"two");
        assert!(records.store(globex, b"g".to_vec(), 0, u64::MAX / 2).await.unwrap());
        assert_eq!(records.ids(Some("acme"), 10).await.unwrap(), [acme]);
        assert_eq!(records.ids(None, 10).await.unwrap().len(), 2);

        assert!(records.mark_used("00ff", u64::MAX / 2).await.unwrap());
        assert!(!records.mark_used("00ff", u64::MAX / 2).await.unwrap(), "a token spent twice");
        assert!(records.is_used("00ff").await.unwrap());
        records.unmark("00ff").await.unwrap();
        assert!(!records.is_used("00ff").await.unwrap());

        records.set_parked(acme, true, u64::MAX / 2).await.unwrap();
        assert_eq!(records.parked(10).await.unwrap(), [acme]);
        records.set_parked(acme, false, 0).await.unwrap();
        assert!(records.parked(10).await.unwrap().is_empty());
    }
}
