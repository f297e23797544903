//! `agenthost:platform/memory`, governed: every call is charged to the
//! tenant's host-call quota, the namespace must be granted, a write needs a
//! tier that may write (not `read`) and a classification within the policy
//! pack's ceiling, and the policy decides `ReadMemory`/`WriteMemory` on
//! `MemoryNamespace::"<tenant>/<namespace>"`. Records are scoped by the
//! host to the caller's tenant.

use crate::audit;
use crate::bindings::memory::{self, Classification as WitClass, Entry, Governance, ListPage, PutOptions};
use crate::bindings::types::Error;
use crate::brokers::memory::{
    MAX_KEY_BYTES, MAX_PAGE, MAX_VALUE_BYTES, Put, Record, RecordMeta, Scope, now_secs,
};
use crate::governance::packs::Classification;
use crate::governance::policy::{Action, EntityRef, Value as PolicyValue};
use crate::keys::digest;

use super::{Capability, InstanceState};

/// The first size cap a memory call breaks, as the guest's `limit-exceeded`.
fn over_cap(key: &str, value: Option<&[u8]>) -> Option<String> {
    if key.len() > MAX_KEY_BYTES {
        return Some(format!(
            "the key is {} bytes; the cap is {MAX_KEY_BYTES} (limit memory key bytes)",
            key.len()
        ));
    }
    match value {
        Some(value) if value.len() > MAX_VALUE_BYTES => Some(format!(
            "the value is {} bytes; the cap is {MAX_VALUE_BYTES} (limit memory value bytes)",
            value.len()
        )),
        _ => None,
    }
}

fn class(c: WitClass) -> Classification {
    match c {
        WitClass::Public => Classification::Public,
        WitClass::Internal => Classification::Internal,
        WitClass::Confidential => Classification::Confidential,
        WitClass::Restricted => Classification::Restricted,
    }
}

impl InstanceState {
    fn memory_gate(&self, ns: &str, write: Option<Classification>) -> Result<(), Error> {
        let call = &self.call;
        // The host keeps its own records (quota use) in namespaces a guest
        // cannot name.
        let valid = !ns.is_empty()
            && ns.len() <= 128
            && ns.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid {
            return Err(Error::InvalidInput(format!(
                "memory namespace `{}` is not of the form [A-Za-z0-9._-] (1 to 128 characters)",
                crate::text::clip(ns)
            )));
        }
        if let Some(denial) = call.grant.memory_namespaces.denial("memory namespace", ns) {
            return Err(Error::Denied(format!("{}: {denial}", call.caller())));
        }
        let resource = EntityRef::new("MemoryNamespace", format!("{}/{ns}", call.tenant.id()));
        match write {
            None => call.decide(Action::ReadMemory, resource, Vec::new()),
            Some(classification) => {
                if !call.grant.memory_write {
                    return Err(Error::Denied(format!(
                        "{} is a read-tier component and may not write memory (tier ceiling)",
                        call.caller()
                    )));
                }
                if let Some(max) = call.grant.max_classification
                    && classification > max
                {
                    return Err(Error::Denied(format!(
                        "{} may not write {} data: the policy pack allows at most {}",
                        call.caller(),
                        classification.as_str(),
                        max.as_str()
                    )));
                }
                call.decide(
                    Action::WriteMemory,
                    resource,
                    vec![("classification", PolicyValue::String(classification.as_str().to_owned()))],
                )
            }
        }
    }
}

fn wit_class(c: Classification) -> WitClass {
    match c {
        Classification::Public => WitClass::Public,
        Classification::Internal => WitClass::Internal,
        Classification::Confidential => WitClass::Confidential,
        Classification::Restricted => WitClass::Restricted,
    }
}

fn entry(record: Record) -> Entry {
    Entry {
        key: record.key,
        value: record.value,
        version: record.version,
        governance: Governance {
            classification: wit_class(record.meta.classification),
            retention_days: record.meta.retention_days,
        },
        expires_at: record.expires_at,
    }
}

impl InstanceState {
    /// The audit record of a memory write: names and versions, never the value.
    fn record_write(&self, ns: &str, key: &str, outcome: &str, what: serde_json::Value) -> Result<(), Error> {
        let mut what = what;
        what["namespace"] = ns.into();
        what["key"] = key.into();
        what["backend"] = self.services.memory.name().into();
        self.call.evidence(audit::Kind::MemoryWrite, outcome, what, None).map_err(Error::Unavailable)
    }
}

impl memory::Host for InstanceState {
    #[tracing::instrument(level = "info", name = "host.memory.get", skip_all, fields(namespace = ?ns))]
    async fn get(&mut self, ns: String, key: String) -> wasmtime::Result<Result<Option<Entry>, Error>> {
        gate!(self, Capability::Memory, "get");
        if let Some(cap) = over_cap(&key, None) {
            return Ok(Err(Error::LimitExceeded(cap)));
        }
        if let Err(e) = self.memory_gate(&ns, None) {
            return Ok(Err(e));
        }
        let (store, call) = (self.services.memory.clone(), self.call.clone());
        let scope = Scope { tenant: call.tenant.id(), namespace: &ns };
        let work = async { store.get(scope, &key).await.map(|r| r.map(entry)).map_err(Error::from) };
        Ok(call.before_deadline("the memory backend", work).await)
    }

    #[tracing::instrument(level = "info", name = "host.memory.put", skip_all, fields(namespace = ?ns))]
    async fn put(
        &mut self,
        ns: String,
        key: String,
        value: Vec<u8>,
        options: PutOptions,
    ) -> wasmtime::Result<Result<u64, Error>> {
        gate!(self, Capability::Memory, "put");
        if let Some(cap) = over_cap(&key, Some(&value)) {
            return Ok(Err(Error::LimitExceeded(cap)));
        }
        if let Err(e) = self.memory_gate(&ns, Some(class(options.governance.classification))) {
            return Ok(Err(e));
        }
        let classification = class(options.governance.classification);
        let audited = self.call.audit.is_some();
        let value_digest = if audited { digest(&value) } else { String::new() };
        let put = Put {
            value,
            expected_version: options.expected_version,
            ttl_seconds: options.ttl_seconds,
            meta: RecordMeta {
                classification,
                retention_days: options.governance.retention_days,
                writer: self.call.trace.agent_id.clone(),
                run_id: self.call.trace.run_id.clone(),
                written_at: now_secs(),
            },
        };
        let (store, call) = (self.services.memory.clone(), self.call.clone());
        let scope = Scope { tenant: call.tenant.id(), namespace: &ns };
        let work = async { store.put(scope, &key, put).await.map_err(Error::from) };
        let result = call.before_deadline("the memory backend", work).await;
        if audited {
            let (outcome, mut what) = match &result {
                Ok(version) => ("put", serde_json::json!({ "version": version })),
                // Cut off at the deadline: the backend may have written it.
                Err(e) if call.past_deadline() => {
                    ("unknown", serde_json::json!({ "error": format!("{e:?}") }))
                }
                Err(e) => ("refused", serde_json::json!({ "error": format!("{e:?}") })),
            };
            what["classification"] = classification.as_str().into();
            what["retention_days"] = options.governance.retention_days.into();
            what["ttl_seconds"] = options.ttl_seconds.into();
            what["expected_version"] = options.expected_version.into();
            what["value_digest"] = value_digest.into();
            if let Err(e) = self.record_write(&ns, &key, outcome, what) {
                return Ok(Err(e));
            }
        }
        Ok(result)
    }

    #[tracing::instrument(level = "info", name = "host.memory.delete", skip_all, fields(namespace = ?ns))]
    async fn delete(
        &mut self,
        ns: String,
        key: String,
        expected_version: Option<u64>,
    ) -> wasmtime::Result<Result<bool, Error>> {
        gate!(self, Capability::Memory, "delete");
        if let Some(cap) = over_cap(&key, None) {
            return Ok(Err(Error::LimitExceeded(cap)));
        }
        if let Err(e) = self.memory_gate(&ns, Some(Classification::Public)) {
            return Ok(Err(e));
        }
        let (store, call) = (self.services.memory.clone(), self.call.clone());
        let scope = Scope { tenant: call.tenant.id(), namespace: &ns };
        let work = async { store.delete(scope, &key, expected_version).await.map_err(Error::from) };
        let result = call.before_deadline("the memory backend", work).await;
        if self.call.audit.is_some() {
            let (outcome, mut what) = match &result {
                Ok(deleted) => ("deleted", serde_json::json!({ "existed": deleted })),
                Err(e) if call.past_deadline() => {
                    ("unknown", serde_json::json!({ "error": format!("{e:?}") }))
                }
                Err(e) => ("refused", serde_json::json!({ "error": format!("{e:?}") })),
            };
            what["expected_version"] = expected_version.into();
            if let Err(e) = self.record_write(&ns, &key, outcome, what) {
                return Ok(Err(e));
            }
        }
        Ok(result)
    }

    #[tracing::instrument(level = "info", name = "host.memory.list", skip_all, fields(namespace = ?ns))]
    async fn list(
        &mut self,
        ns: String,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Result<ListPage, Error>> {
        gate!(self, Capability::Memory, "list");
        if limit > MAX_PAGE {
            return Ok(Err(Error::LimitExceeded(format!(
                "a page of {limit} keys was asked for; the cap is {MAX_PAGE} (limit memory list page size)"
            ))));
        }
        if let Some(cap) = over_cap(&prefix, None).or_else(|| over_cap(cursor.as_deref().unwrap_or(""), None))
        {
            return Ok(Err(Error::LimitExceeded(cap)));
        }
        if let Err(e) = self.memory_gate(&ns, None) {
            return Ok(Err(e));
        }
        let (store, call) = (self.services.memory.clone(), self.call.clone());
        let scope = Scope { tenant: call.tenant.id(), namespace: &ns };
        let work = async {
            store
                .list(scope, &prefix, cursor.as_deref(), limit)
                .await
                .map(|page| ListPage { keys: page.keys, next_cursor: page.next_cursor })
                .map_err(Error::from)
        };
        Ok(call.before_deadline("the memory backend", work).await)
    }
}
