//! `memory`, `events` and `audit`: linked (so components that import them
//! load) but not yet served. Every call answers `unavailable` naming the
//! interface, until the brokers issue lands their backends.

use crate::bindings::types::Error;
use crate::bindings::{audit, events, memory};

use super::{Capability, InstanceState};

fn unavailable<T>(capability: Capability) -> wasmtime::Result<Result<T, Error>> {
    Ok(Err(Error::Unavailable(format!(
        "{} is not served by this host yet: its backend arrives with the brokers release",
        capability.import_name()
    ))))
}

impl memory::Host for InstanceState {
    async fn get(
        &mut self,
        _ns: String,
        _key: String,
    ) -> wasmtime::Result<Result<Option<memory::Entry>, Error>> {
        unavailable(Capability::Memory)
    }

    async fn put(
        &mut self,
        _ns: String,
        _key: String,
        _value: Vec<u8>,
        _options: memory::PutOptions,
    ) -> wasmtime::Result<Result<u64, Error>> {
        unavailable(Capability::Memory)
    }

    async fn delete(
        &mut self,
        _ns: String,
        _key: String,
        _expected_version: Option<u64>,
    ) -> wasmtime::Result<Result<bool, Error>> {
        unavailable(Capability::Memory)
    }

    async fn list(
        &mut self,
        _ns: String,
        _prefix: String,
        _cursor: Option<String>,
        _limit: u32,
    ) -> wasmtime::Result<Result<memory::ListPage, Error>> {
        unavailable(Capability::Memory)
    }
}

impl events::Host for InstanceState {
    async fn publish(
        &mut self,
        _topic: String,
        _payload: Vec<u8>,
        _attributes: Vec<(String, String)>,
    ) -> wasmtime::Result<Result<String, Error>> {
        unavailable(Capability::Events)
    }
}

impl audit::Host for InstanceState {
    async fn emit(&mut self, _item: audit::Evidence) -> wasmtime::Result<Result<String, Error>> {
        unavailable(Capability::Audit)
    }
}
