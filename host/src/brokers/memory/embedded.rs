//! The default memory backend: a redb database under
//! `<data-dir>/memory/memory.redb`. redb is a crash-safe, copy-on-write
//! B-tree store; a put is durable when it returns (unless `durable = false`).
//!
//! Keys are `tenant NUL namespace NUL key`, so one range scan lists a
//! namespace and nothing of another tenant can fall inside it. Values are a
//! little-endian u32 header length, the header as JSON (version, expiry,
//! governance metadata), then the value bytes.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, Durability, ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{
    BoxFuture, MAX_PAGE, MemoryError, MemoryStore, Page, Put, Record, RecordMeta, Scope, check_key,
    check_put, expiry, live, next_version, now_secs,
};

const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");

#[derive(Serialize, Deserialize)]
struct Header {
    version: u64,
    expires_at: Option<u64>,
    meta: RecordMeta,
}

pub struct EmbeddedMemory {
    db: Arc<Database>,
    durable: bool,
}

impl std::fmt::Debug for EmbeddedMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedMemory").field("durable", &self.durable).finish_non_exhaustive()
    }
}

fn internal(e: impl std::fmt::Display) -> MemoryError {
    MemoryError::Internal(e.to_string())
}

fn prefix_of(scope: Scope<'_>) -> Result<Vec<u8>, MemoryError> {
    if scope.namespace.contains('\0') || scope.tenant.contains('\0') {
        return Err(MemoryError::Invalid("a namespace may not contain NUL".to_owned()));
    }
    let mut out = Vec::with_capacity(scope.tenant.len() + scope.namespace.len() + 2);
    out.extend_from_slice(scope.tenant.as_bytes());
    out.push(0);
    out.extend_from_slice(scope.namespace.as_bytes());
    out.push(0);
    Ok(out)
}

fn full_key(scope: Scope<'_>, key: &str) -> Result<Vec<u8>, MemoryError> {
    let mut out = prefix_of(scope)?;
    out.extend_from_slice(key.as_bytes());
    Ok(out)
}

fn encode(header: &Header, value: &[u8]) -> Result<Vec<u8>, MemoryError> {
    let head = serde_json::to_vec(header).map_err(internal)?;
    let len = u32::try_from(head.len()).map_err(internal)?;
    let mut out = Vec::with_capacity(4 + head.len() + value.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(value);
    Ok(out)
}

fn decode(bytes: &[u8]) -> Result<(Header, &[u8]), MemoryError> {
    let corrupt = || MemoryError::Internal("a stored record is corrupt".to_owned());
    let len_bytes: [u8; 4] = bytes.get(..4).and_then(|b| b.try_into().ok()).ok_or_else(corrupt)?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    let head = bytes.get(4..4 + len).ok_or_else(corrupt)?;
    let header: Header = serde_json::from_slice(head).map_err(|_| corrupt())?;
    Ok((header, &bytes[4 + len..]))
}

impl EmbeddedMemory {
    /// Opens (or creates) the store in `dir`.
    ///
    /// # Errors
    /// When the directory or database cannot be opened (another process holds it, say).
    pub fn open(dir: &Path, durable: bool) -> Result<Self, MemoryError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| internal(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("memory.redb");
        let db =
            Database::create(&path).map_err(|e| internal(format!("cannot open {}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(internal)?;
        txn.open_table(RECORDS).map_err(internal)?;
        txn.commit().map_err(internal)?;
        Ok(EmbeddedMemory { db: Arc::new(db), durable })
    }

    fn get_now(db: &Database, scope: Scope<'_>, key: &str) -> Result<Option<Record>, MemoryError> {
        check_key(key)?;
        let id = full_key(scope, key)?;
        let txn = db.begin_read().map_err(internal)?;
        let table = txn.open_table(RECORDS).map_err(internal)?;
        let Some(found) = table.get(id.as_slice()).map_err(internal)? else { return Ok(None) };
        let (header, value) = decode(found.value())?;
        if !live(header.expires_at, now_secs()) {
            return Ok(None);
        }
        Ok(Some(Record {
            key: key.to_owned(),
            value: value.to_vec(),
            version: header.version,
            expires_at: header.expires_at,
            meta: header.meta,
        }))
    }

    fn write<R>(
        db: &Database,
        durable: bool,
        body: impl FnOnce(&mut redb::Table<'_, &[u8], &[u8]>) -> Result<R, MemoryError>,
    ) -> Result<R, MemoryError> {
        let mut txn = db.begin_write().map_err(internal)?;
        if !durable {
            txn.set_durability(Durability::None).map_err(internal)?;
        }
        let result = {
            let mut table = txn.open_table(RECORDS).map_err(internal)?;
            body(&mut table)?
        };
        txn.commit().map_err(internal)?;
        Ok(result)
    }

    fn stored_version(
        table: &redb::Table<'_, &[u8], &[u8]>,
        id: &[u8],
        now: u64,
    ) -> Result<Option<u64>, MemoryError> {
        let Some(found) = table.get(id).map_err(internal)? else { return Ok(None) };
        let (header, _) = decode(found.value())?;
        Ok(live(header.expires_at, now).then_some(header.version))
    }

    fn put_now(
        db: &Database,
        durable: bool,
        scope: Scope<'_>,
        key: &str,
        put: Put,
    ) -> Result<u64, MemoryError> {
        check_put(key, &put)?;
        let id = full_key(scope, key)?;
        Self::write(db, durable, |table| {
            let now = now_secs();
            let stored = Self::stored_version(table, &id, now)?;
            let version = next_version(key, stored, put.expected_version)?;
            let header = Header { version, expires_at: expiry(put.ttl_seconds, now), meta: put.meta };
            let bytes = encode(&header, &put.value)?;
            table.insert(id.as_slice(), bytes.as_slice()).map_err(internal)?;
            Ok(version)
        })
    }

    fn delete_now(
        db: &Database,
        durable: bool,
        scope: Scope<'_>,
        key: &str,
        expected: Option<u64>,
    ) -> Result<bool, MemoryError> {
        check_key(key)?;
        let id = full_key(scope, key)?;
        Self::write(db, durable, |table| {
            let stored = Self::stored_version(table, &id, now_secs())?;
            if let Some(expected) = expected
                && stored.unwrap_or(0) != expected
            {
                return Err(MemoryError::Conflict {
                    key: key.to_owned(),
                    expected,
                    stored: stored.unwrap_or(0),
                });
            }
            let removed = table.remove(id.as_slice()).map_err(internal)?.is_some();
            Ok(removed && stored.is_some())
        })
    }

    fn list_now(
        db: &Database,
        scope: Scope<'_>,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page, MemoryError> {
        let base = prefix_of(scope)?;
        let limit = limit.clamp(1, MAX_PAGE) as usize;
        let mut start = base.clone();
        start.extend_from_slice(cursor.unwrap_or(prefix).as_bytes());
        let txn = db.begin_read().map_err(internal)?;
        let table = txn.open_table(RECORDS).map_err(internal)?;
        let now = now_secs();
        let mut keys = Vec::new();
        for item in table.range(start.as_slice()..).map_err(internal)? {
            let (k, v) = item.map_err(internal)?;
            let Some(rest) = k.value().strip_prefix(base.as_slice()) else { break };
            let key = String::from_utf8_lossy(rest).into_owned();
            if !key.starts_with(prefix) {
                break;
            }
            if cursor.is_some_and(|after| key.as_str() <= after) {
                continue;
            }
            let (header, _) = decode(v.value())?;
            if !live(header.expires_at, now) {
                continue;
            }
            keys.push(key);
            if keys.len() > limit {
                break;
            }
        }
        Ok(Page::from_overfetch(keys, limit))
    }
}

impl MemoryStore for EmbeddedMemory {
    fn name(&self) -> &'static str {
        "embedded"
    }

    fn get<'a>(
        &'a self,
        scope: Scope<'a>,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Record>, MemoryError>> {
        // A read is a few microseconds of B-tree walk: no thread hop.
        Box::pin(std::future::ready(Self::get_now(&self.db, scope, key)))
    }

    fn put<'a>(
        &'a self,
        scope: Scope<'a>,
        key: &'a str,
        put: Put,
    ) -> BoxFuture<'a, Result<u64, MemoryError>> {
        if !self.durable {
            return Box::pin(std::future::ready(Self::put_now(&self.db, false, scope, key, put)));
        }
        // A durable commit waits for the disk: off the async workers.
        let db = self.db.clone();
        let (tenant, namespace, key) = (scope.tenant.to_owned(), scope.namespace.to_owned(), key.to_owned());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                Self::put_now(&db, true, Scope { tenant: &tenant, namespace: &namespace }, &key, put)
            })
            .await
            .map_err(internal)?
        })
    }

    fn delete<'a>(
        &'a self,
        scope: Scope<'a>,
        key: &'a str,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<bool, MemoryError>> {
        if !self.durable {
            return Box::pin(std::future::ready(Self::delete_now(
                &self.db,
                false,
                scope,
                key,
                expected_version,
            )));
        }
        let db = self.db.clone();
        let (tenant, namespace, key) = (scope.tenant.to_owned(), scope.namespace.to_owned(), key.to_owned());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                Self::delete_now(
                    &db,
                    true,
                    Scope { tenant: &tenant, namespace: &namespace },
                    &key,
                    expected_version,
                )
            })
            .await
            .map_err(internal)?
        })
    }

    fn list<'a>(
        &'a self,
        scope: Scope<'a>,
        prefix: &'a str,
        cursor: Option<&'a str>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Page, MemoryError>> {
        Box::pin(std::future::ready(Self::list_now(&self.db, scope, prefix, cursor, limit)))
    }
}
