//! `agenthost:platform/memory`, governed: every call is charged to the
//! tenant's host-call quota, the namespace must be granted, a write needs a
//! tier that may write (not `read`) and a classification within the policy
//! pack's ceiling, and the policy decides `ReadMemory`/`WriteMemory` on
//! `MemoryNamespace::"<tenant>/<namespace>"`. Records are scoped by the
//! host to the caller's tenant.

use crate::bindings::memory::{self, Classification as WitClass, Entry, ListPage, PutOptions};
use crate::bindings::types::Error;
use crate::governance::packs::Classification;
use crate::governance::policy::{Action, EntityRef, Value as PolicyValue};

use super::InstanceState;

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
        call.charge()?;
        if let Some(denial) = call.grant.memory_namespaces.denial("memory namespace", ns) {
            return Err(Error::Denied(format!("{}: {denial}", call.caller())));
        }
        let resource = EntityRef::new("MemoryNamespace", format!("{}/{ns}", call.tenant.id()));
        match write {
            None => call.decide(Action::ReadMemory, resource, Vec::new()),
            Some(classification) => {
                if !call.grant.memory_write {
                    return Err(Error::Denied(format!(
                        "{} is a read-tier tool and may not write memory (tier ceiling)",
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

impl memory::Host for InstanceState {
    async fn get(&mut self, ns: String, key: String) -> wasmtime::Result<Result<Option<Entry>, Error>> {
        if let Err(e) = self.memory_gate(&ns, None) {
            return Ok(Err(e));
        }
        Ok(self.host.memory.get(self.call.tenant.id(), &ns, &key))
    }

    async fn put(
        &mut self,
        ns: String,
        key: String,
        value: Vec<u8>,
        options: PutOptions,
    ) -> wasmtime::Result<Result<u64, Error>> {
        if let Err(e) = self.memory_gate(&ns, Some(class(options.governance.classification))) {
            return Ok(Err(e));
        }
        Ok(self.host.memory.put(
            self.call.tenant.id(),
            &ns,
            &key,
            value,
            options.expected_version,
            options.ttl_seconds,
            options.governance,
        ))
    }

    async fn delete(
        &mut self,
        ns: String,
        key: String,
        expected_version: Option<u64>,
    ) -> wasmtime::Result<Result<bool, Error>> {
        if let Err(e) = self.memory_gate(&ns, Some(Classification::Public)) {
            return Ok(Err(e));
        }
        Ok(self.host.memory.delete(self.call.tenant.id(), &ns, &key, expected_version))
    }

    async fn list(
        &mut self,
        ns: String,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Result<ListPage, Error>> {
        if let Err(e) = self.memory_gate(&ns, None) {
            return Ok(Err(e));
        }
        Ok(self.host.memory.list(self.call.tenant.id(), &ns, &prefix, cursor, limit))
    }
}
