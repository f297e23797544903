//! What the host calls need from the rest of the host, and nothing more:
//! the memory store, the events bus, the model backends, the TLS settings of
//! guests' HTTPS, and a way to run another tool ([`ToolRunner`]). The
//! runtime builds one [`Services`] per host and hands it to every instance;
//! a test hands in fakes.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::CallContext;
use crate::bindings::types::ToolSpec;
pub use crate::brokers::BoxFuture;
use crate::brokers::events::EventBus;
use crate::brokers::memory::MemoryStore;
use crate::brokers::model::ModelBackend;
use crate::error::InvokeError;

/// Runs the tools of a tenant for `agenthost:platform/tools`.
pub trait ToolRunner: Send + Sync {
    /// The specs of the caller's tenant's tools that its grant names.
    fn specs(&self, caller: &CallContext) -> Vec<ToolSpec>;

    /// Runs the tool `name` of the caller's tenant on `input`, inside the
    /// caller's deadline, trace and run.
    fn invoke<'a>(
        &'a self,
        name: &'a str,
        input: &'a Value,
        caller: &'a CallContext,
    ) -> BoxFuture<'a, Result<Value, InvokeError>>;
}

/// The model backends: the host's, and tenants' own.
#[derive(Clone)]
pub struct Models {
    default: Arc<dyn ModelBackend>,
    tenants: BTreeMap<String, Arc<dyn ModelBackend>>,
}

impl Models {
    pub fn new(default: Arc<dyn ModelBackend>, tenants: BTreeMap<String, Arc<dyn ModelBackend>>) -> Self {
        Models { default, tenants }
    }

    /// The backend of `tenant`: its own, else the host's.
    pub fn for_tenant(&self, tenant: &str) -> &Arc<dyn ModelBackend> {
        self.tenants.get(tenant).unwrap_or(&self.default)
    }
}

/// Everything the host calls of an instance reach beyond the call itself.
pub struct Services {
    pub memory: Arc<dyn MemoryStore>,
    pub events: Arc<dyn EventBus>,
    pub models: Models,
    pub tools: Arc<dyn ToolRunner>,
    /// TLS for guests' HTTPS requests.
    pub tls: Arc<tokio_rustls::rustls::ClientConfig>,
}
