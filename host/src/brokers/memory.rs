//! The memory broker's in-process backend: records live in this process
//! only (they are gone when it exits). Keys are always scoped by the host
//! to `(tenant, namespace, key)`: a guest names a namespace and a key, never
//! a tenant, so it cannot reach another tenant's records. Put supports
//! compare-and-set on the version and a TTL.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::bindings::memory::{Entry, Governance, ListPage};
use crate::bindings::types::Error;

type Key = (String, String, String);

#[derive(Debug, Default)]
pub struct InProcessMemory {
    records: Mutex<BTreeMap<Key, Entry>>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn live(entry: &Entry) -> bool {
    entry.expires_at.is_none_or(|at| at > now())
}

impl InProcessMemory {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<Key, Entry>>, Error> {
        self.records.lock().map_err(|_| Error::Internal("the memory store lock is poisoned".to_owned()))
    }

    pub fn get(&self, tenant: &str, ns: &str, key: &str) -> Result<Option<Entry>, Error> {
        let records = self.lock()?;
        Ok(records.get(&(tenant.to_owned(), ns.to_owned(), key.to_owned())).filter(|e| live(e)).cloned())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &self,
        tenant: &str,
        ns: &str,
        key: &str,
        value: Vec<u8>,
        expected: Option<u64>,
        ttl_seconds: Option<u64>,
        governance: Governance,
    ) -> Result<u64, Error> {
        let mut records = self.lock()?;
        let id = (tenant.to_owned(), ns.to_owned(), key.to_owned());
        let current = records.get(&id).filter(|e| live(e)).map_or(0, |e| e.version);
        if let Some(expected) = expected
            && expected != current
        {
            return Err(Error::InvalidInput(format!(
                "version conflict on `{ns}/{key}`: expected version {expected}, found {current}"
            )));
        }
        let version = current + 1;
        records.insert(
            id,
            Entry {
                key: key.to_owned(),
                value,
                version,
                governance,
                expires_at: ttl_seconds.map(|ttl| now() + ttl),
            },
        );
        Ok(version)
    }

    pub fn delete(&self, tenant: &str, ns: &str, key: &str, expected: Option<u64>) -> Result<bool, Error> {
        let mut records = self.lock()?;
        let id = (tenant.to_owned(), ns.to_owned(), key.to_owned());
        let current = records.get(&id).filter(|e| live(e)).map(|e| e.version);
        if let Some(expected) = expected
            && current != Some(expected)
        {
            return Err(Error::InvalidInput(format!(
                "version conflict on `{ns}/{key}`: expected version {expected}, found {}",
                current.unwrap_or(0)
            )));
        }
        Ok(records.remove(&id).is_some() && current.is_some())
    }

    pub fn list(
        &self,
        tenant: &str,
        ns: &str,
        prefix: &str,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<ListPage, Error> {
        let records = self.lock()?;
        let limit = limit.clamp(1, 1000) as usize;
        let start = (tenant.to_owned(), ns.to_owned(), cursor.unwrap_or_else(|| prefix.to_owned()));
        let mut keys: Vec<String> = records
            .range(start..)
            .take_while(|((t, n, k), _)| t == tenant && n == ns && k.starts_with(prefix))
            .filter(|(_, e)| live(e))
            .map(|((_, _, k), _)| k.clone())
            .take(limit + 1)
            .collect();
        let next_cursor = if keys.len() > limit { keys.pop().map(|k| k.to_owned()) } else { None };
        Ok(ListPage { keys, next_cursor })
    }
}
