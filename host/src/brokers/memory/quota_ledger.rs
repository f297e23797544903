//! Per-minute quota use kept in the memory backend, with the tenant's own
//! records (embedded redb or DynamoDB): what a tenant used this minute
//! survives the process, so running the CLI again, or another host
//! process on the same backend, does not start the minute afresh.
//!
//! Records live in the tenant's scope under a namespace no guest can name
//! (guest namespaces are `[A-Za-z0-9._-]`), one per quota and minute, with
//! a two-minute TTL; each update is a compare-and-set, so processes that
//! add at once all count.

use std::sync::Arc;

use super::{MemoryError, MemoryStore, Put, Scope};
use crate::governance::QuotaLedger;
use crate::governance::packs::Classification;

/// The namespace the host keeps quota use in.
pub const QUOTA_NAMESPACE: &str = "agenthost:quotas";

/// How often a compare-and-set is retried when another process wrote first.
const ATTEMPTS: usize = 16;

pub struct MemoryQuotaLedger {
    store: Arc<dyn MemoryStore>,
}

impl MemoryQuotaLedger {
    pub fn new(store: Arc<dyn MemoryStore>) -> Self {
        MemoryQuotaLedger { store }
    }

    async fn add_now(&self, tenant: &str, quota: &str, window: u64, amount: u64) -> Result<u64, String> {
        let scope = Scope { tenant, namespace: QUOTA_NAMESPACE };
        let key = format!("{quota}@{window}");
        let failed = |e: MemoryError| format!("quota ledger ({}): {e}", self.store.name());
        for _ in 0..ATTEMPTS {
            let stored = self.store.get(scope, &key).await.map_err(failed)?;
            let (version, used) = match &stored {
                Some(record) => (
                    record.version,
                    std::str::from_utf8(&record.value).ok().and_then(|t| t.parse::<u64>().ok()).unwrap_or(0),
                ),
                None => (0, 0),
            };
            if amount == 0 {
                return Ok(used);
            }
            let total = used.saturating_add(amount);
            let put = Put::host(total.to_string().into_bytes(), Some(version), 120, Classification::Internal);
            match self.store.put(scope, &key, put).await {
                Ok(_) => return Ok(total),
                Err(MemoryError::Conflict { .. }) => continue,
                Err(e) => return Err(failed(e)),
            }
        }
        Err(format!("quota ledger: {ATTEMPTS} concurrent updates of {quota} for tenant `{tenant}` collided"))
    }
}

impl QuotaLedger for MemoryQuotaLedger {
    fn add<'a>(
        &'a self,
        tenant: &'a str,
        quota: &'a str,
        window: u64,
        amount: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, String>> + Send + 'a>> {
        Box::pin(self.add_now(tenant, quota, window, amount))
    }
}
