//! The tool registry: tools registered by (tenant, name), as agents reach
//! them through `tools.invoke`.

use std::sync::Arc;

use serde_json::Value;

use crate::bindings::types::ToolSpec;
use crate::capabilities::{self, CallContext};
use crate::error::{ErrorKind, InvokeError};
use crate::governance::Names;

use super::context::Parent;
use super::{Host, HostInner, LoadedComponent};

/// The tools registered with a host, as `tools.invoke` reaches them.
pub(super) struct RegisteredTools(pub(super) std::sync::Weak<HostInner>);

impl capabilities::ToolRunner for RegisteredTools {
    fn specs(&self, caller: &CallContext) -> Vec<ToolSpec> {
        self.0
            .upgrade()
            .map(|host| host.tool_specs(caller.tenant.id(), &caller.grant.tools))
            .unwrap_or_default()
    }

    fn invoke<'a>(
        &'a self,
        name: &'a str,
        input: &'a Value,
        caller: &'a CallContext,
    ) -> capabilities::services::BoxFuture<'a, Result<Value, InvokeError>> {
        // Boxed: a tool call runs a component, which could call a tool.
        Box::pin(async move {
            let Some(host) = self.0.upgrade() else {
                return Err(InvokeError::internal("the host is shutting down"));
            };
            host.invoke_tool_from_guest(name, input, caller).await
        })
    }
}

impl Host {
    /// Makes a loaded tool callable by agents (`tools.invoke`) under its name.
    ///
    /// # Errors
    ///
    /// `load-failed` when the component is not a tool or another tool of
    /// that name is registered.
    pub fn register_tool(&self, tool: Arc<LoadedComponent>) -> Result<(), InvokeError> {
        let Some(spec) = tool.tool_spec() else {
            return Err(
                InvokeError::load(format!("{} is an agent, not a tool", tool.id())).with_component(tool.id())
            );
        };
        let mut tools = self
            .inner
            .tools
            .write()
            .map_err(|_| InvokeError::internal("the tool registry lock is poisoned"))?;
        let key = (tool.tenant().to_owned(), spec.name.clone());
        if let Some(existing) = tools.get(&key)
            && existing.id().digest != tool.id().digest
        {
            return Err(InvokeError::load(format!(
                "tenant `{}` already has a tool named `{}` ({})",
                key.0,
                spec.name,
                existing.id()
            ))
            .with_component(tool.id()));
        }
        tools.insert(key, tool);
        Ok(())
    }

    /// Makes a loaded tool the one agents of its tenant reach under its
    /// name, replacing any other version (a server moving `stable`). Calls
    /// already running keep the version they started with.
    ///
    /// # Errors
    ///
    /// `load-failed` when the component is not a tool.
    pub fn set_tool(&self, tool: Arc<LoadedComponent>) -> Result<(), InvokeError> {
        let Some(spec) = tool.tool_spec() else {
            return Err(
                InvokeError::load(format!("{} is an agent, not a tool", tool.id())).with_component(tool.id())
            );
        };
        let key = (tool.tenant().to_owned(), spec.name.clone());
        self.inner
            .tools
            .write()
            .map_err(|_| InvokeError::internal("the tool registry lock is poisoned"))?
            .insert(key, tool);
        Ok(())
    }

    /// The registered tool of that name in the host's default tenant.
    pub fn tool(&self, name: &str) -> Option<Arc<LoadedComponent>> {
        self.tenant_tool(self.inner.governance.default_tenant(), name)
    }

    /// The registered tool of that name in a tenant.
    pub fn tenant_tool(&self, tenant: &str, name: &str) -> Option<Arc<LoadedComponent>> {
        self.inner.tools.read().ok()?.get(&(tenant.to_owned(), name.to_owned())).cloned()
    }
}

impl HostInner {
    /// The specs of the tenant's registered tools that `grant` allows.
    pub(super) fn tool_specs(&self, tenant: &str, grant: &Names) -> Vec<ToolSpec> {
        let Ok(tools) = self.tools.read() else {
            return Vec::new();
        };
        tools
            .iter()
            .filter(|((owner, name), _)| owner == tenant && grant.allows(name))
            .filter_map(|(_, tool)| tool.tool_spec().cloned())
            .collect()
    }

    /// `tools.invoke` from a guest: the named tool of the caller's tenant,
    /// within the caller's deadline, in the caller's trace and run.
    pub(super) async fn invoke_tool_from_guest(
        self: Arc<Self>,
        name: &str,
        input: &Value,
        caller: &CallContext,
    ) -> Result<Value, InvokeError> {
        let key = (caller.tenant.id().to_owned(), name.to_owned());
        let tool = self.tools.read().ok().and_then(|tools| tools.get(&key).cloned());
        let Some(tool) = tool else {
            return Err(InvokeError::new(
                ErrorKind::NotFound,
                format!("tenant `{}` has no tool named `{}`", caller.tenant.id(), crate::text::clip(name)),
            ));
        };
        self.invoke_tool(&tool, input, Parent::Caller(caller)).await
    }
}
