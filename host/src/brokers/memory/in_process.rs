//! Records in this process only, gone when it exits: for tests and for
//! hosts that want no state at all.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use super::{
    BoxFuture, MAX_PAGE, MemoryError, MemoryStore, Page, Put, Record, Scope, check_key, check_put, expiry,
    live, next_version, now_secs,
};

type Key = (String, String, String);

#[derive(Debug, Default)]
pub struct InProcessMemory {
    records: Mutex<BTreeMap<Key, Record>>,
}

fn id(scope: Scope<'_>, key: &str) -> Key {
    (scope.tenant.to_owned(), scope.namespace.to_owned(), key.to_owned())
}

impl InProcessMemory {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<Key, Record>>, MemoryError> {
        self.records.lock().map_err(|_| MemoryError::Internal("the memory store lock is poisoned".to_owned()))
    }

    fn get_now(&self, scope: Scope<'_>, key: &str) -> Result<Option<Record>, MemoryError> {
        check_key(key)?;
        let now = now_secs();
        Ok(self.lock()?.get(&id(scope, key)).filter(|r| live(r.expires_at, now)).cloned())
    }

    fn put_now(&self, scope: Scope<'_>, key: &str, put: Put) -> Result<u64, MemoryError> {
        check_put(key, &put)?;
        let now = now_secs();
        let mut records = self.lock()?;
        let id = id(scope, key);
        let stored = records.get(&id).filter(|r| live(r.expires_at, now)).map(|r| r.version);
        let version = next_version(key, stored, put.expected_version)?;
        let record = Record {
            key: key.to_owned(),
            value: put.value,
            version,
            expires_at: expiry(put.ttl_seconds, now),
            meta: put.meta,
        };
        records.insert(id, record);
        Ok(version)
    }

    fn delete_now(&self, scope: Scope<'_>, key: &str, expected: Option<u64>) -> Result<bool, MemoryError> {
        check_key(key)?;
        let now = now_secs();
        let mut records = self.lock()?;
        let id = id(scope, key);
        let stored = records.get(&id).filter(|r| live(r.expires_at, now)).map(|r| r.version);
        if let Some(expected) = expected
            && stored.unwrap_or(0) != expected
        {
            return Err(MemoryError::Conflict { key: key.to_owned(), expected, stored: stored.unwrap_or(0) });
        }
        Ok(records.remove(&id).is_some() && stored.is_some())
    }

    fn list_now(
        &self,
        scope: Scope<'_>,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page, MemoryError> {
        let now = now_secs();
        let records = self.lock()?;
        let limit = limit.clamp(1, MAX_PAGE) as usize;
        let start = match cursor {
            Some(after) => Bound::Excluded(id(scope, after)),
            None => Bound::Included(id(scope, prefix)),
        };
        let keys: Vec<String> = records
            .range((start, Bound::Unbounded))
            .take_while(|((t, n, k), _)| t == scope.tenant && n == scope.namespace && k.starts_with(prefix))
            .filter(|(_, r)| live(r.expires_at, now))
            .map(|((_, _, k), _)| k.clone())
            .take(limit + 1)
            .collect();
        Ok(Page::from_overfetch(keys, limit))
    }
}

impl MemoryStore for InProcessMemory {
    fn name(&self) -> &'static str {
        "in-process"
    }

    fn get<'a>(
        &'a self,
        scope: Scope<'a>,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Record>, MemoryError>> {
        Box::pin(std::future::ready(self.get_now(scope, key)))
    }

    fn put<'a>(
        &'a self,
        scope: Scope<'a>,
        key: &'a str,
        put: Put,
    ) -> BoxFuture<'a, Result<u64, MemoryError>> {
        Box::pin(std::future::ready(self.put_now(scope, key, put)))
    }

    fn delete<'a>(
        &'a self,
        scope: Scope<'a>,
        key: &'a str,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<bool, MemoryError>> {
        Box::pin(std::future::ready(self.delete_now(scope, key, expected_version)))
    }

    fn list<'a>(
        &'a self,
        scope: Scope<'a>,
        prefix: &'a str,
        cursor: Option<&'a str>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Page, MemoryError>> {
        Box::pin(std::future::ready(self.list_now(scope, prefix, cursor, limit)))
    }
}
