//! Capabilities: what a component may reach outside its own memory.
//!
//! One module per capability (`log`, `model`, `tools`, the not-yet-provided
//! `memory`/`events`/`audit` in `unavailable`, and `wasi`), each with its
//! host trait implemented on [`InstanceState`], the per-instance state that
//! lives in the `Store`. This module owns the [`Grant`] and the linker
//! wiring, and gates twice: an interface outside the component's world or
//! its grant is never linked (loading fails naming the import and the rule
//! that removed it), and every host call re-checks its detail (which tools,
//! which models) at call time.

pub mod log;
pub mod model;
pub mod tools;
pub mod unavailable;
pub mod wasi;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{self, types::TraceContext};
use crate::error::ComponentRef;
use crate::limits::LimitTracker;
use crate::runtime::HostInner;
use crate::trace::Transcript;

/// A host interface of the `agenthost:platform` package that can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    Log,
    Model,
    Memory,
    Events,
    Tools,
    Audit,
}

impl Capability {
    pub const ALL: [Capability; 6] = [
        Capability::Log,
        Capability::Model,
        Capability::Memory,
        Capability::Events,
        Capability::Tools,
        Capability::Audit,
    ];

    /// The interface name inside the package, e.g. `model`.
    pub fn interface(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::Model => "model",
            Capability::Memory => "memory",
            Capability::Events => "events",
            Capability::Tools => "tools",
            Capability::Audit => "audit",
        }
    }

    /// The full import name, e.g. `agenthost:platform/model@0.1.0`.
    pub fn import_name(self) -> String {
        format!("{}/{}@{}", bindings::PACKAGE, self.interface(), bindings::VERSION)
    }

    pub fn from_interface(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.interface() == name)
    }

    fn link(self, linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
        type Me = HasSelf<InstanceState>;
        fn get(s: &mut InstanceState) -> &mut InstanceState {
            s
        }
        match self {
            Capability::Log => bindings::log::add_to_linker::<_, Me>(linker, get),
            Capability::Model => bindings::model::add_to_linker::<_, Me>(linker, get),
            Capability::Memory => bindings::memory::add_to_linker::<_, Me>(linker, get),
            Capability::Events => bindings::events::add_to_linker::<_, Me>(linker, get),
            Capability::Tools => bindings::tools::add_to_linker::<_, Me>(linker, get),
            Capability::Audit => bindings::audit::add_to_linker::<_, Me>(linker, get),
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.interface())
    }
}

/// The two worlds a component can implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    Tool,
    Agent,
}

impl World {
    /// The platform interfaces the world imports.
    pub fn imports(self) -> &'static [Capability] {
        match self {
            World::Tool => &[Capability::Log, Capability::Memory, Capability::Events, Capability::Audit],
            World::Agent => &Capability::ALL,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            World::Tool => "tool",
            World::Agent => "agent",
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", bindings::PACKAGE, self.name(), bindings::VERSION)
    }
}

/// Which tools a component may call through `tools`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolGrant {
    /// None.
    #[default]
    None,
    /// Every tool loaded into the host.
    All,
    /// Only these, by name.
    Named(BTreeSet<String>),
}

impl ToolGrant {
    pub fn allows(&self, name: &str) -> bool {
        match self {
            ToolGrant::None => false,
            ToolGrant::All => true,
            ToolGrant::Named(names) => names.contains(name),
        }
    }
}

/// What a component is granted. [`Grant::default`] grants nothing: no
/// platform interface, no tool, and (through [`wasi`]) no preopened
/// directory, no environment variable, no socket, no network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    pub capabilities: BTreeSet<Capability>,
    pub tools: ToolGrant,
}

impl Grant {
    /// Every platform interface of the component's world and every loaded
    /// tool: what `agenthost run` gives a component it was told to run.
    pub fn world(world: World) -> Self {
        Grant {
            capabilities: world.imports().iter().copied().collect(),
            tools: if world == World::Agent { ToolGrant::All } else { ToolGrant::None },
        }
    }

    #[must_use]
    pub fn with(mut self, capability: Capability) -> Self {
        self.capabilities.insert(capability);
        self
    }

    #[must_use]
    pub fn without(mut self, capability: Capability) -> Self {
        self.capabilities.remove(&capability);
        self
    }

    pub fn has(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }
}

/// Builds the linker for a component of `world` with `grant`: WASI (with
/// the empty context of [`wasi`]), the `types` interface, and exactly the
/// platform interfaces in both the world and the grant.
pub(crate) fn linker(
    engine: &wasmtime::Engine,
    world: World,
    grant: &Grant,
) -> wasmtime::Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    bindings::types::add_to_linker::<_, HasSelf<InstanceState>>(&mut linker, |s: &mut InstanceState| s)?;
    for capability in world.imports() {
        if grant.has(*capability) {
            capability.link(&mut linker)?;
        }
    }
    Ok(linker)
}

/// What every host call of one invocation knows about it.
pub struct CallContext {
    pub trace: TraceContext,
    pub component: Arc<ComponentRef>,
    pub grant: Arc<Grant>,
    /// The wall-clock deadline of this call (and of every call it makes).
    pub deadline: Instant,
    /// How many `tools.invoke` hops led here (0 for a top-level call).
    pub depth: u32,
    pub transcript: Option<Arc<Transcript>>,
}

impl CallContext {
    /// `name@version` of the component, for logs and transcripts.
    pub fn caller(&self) -> String {
        format!("{}@{}", self.component.name, self.component.version)
    }
}

/// The state of one component instance: the `T` of its `Store`.
pub struct InstanceState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: LimitTracker,
    pub(crate) call: Arc<CallContext>,
    pub(crate) host: Arc<HostInner>,
    pub(crate) log: log::LogState,
}

impl InstanceState {
    pub(crate) fn new(host: Arc<HostInner>, call: Arc<CallContext>, limits: LimitTracker) -> Self {
        InstanceState {
            wasi: wasi::context(&call.grant),
            table: ResourceTable::new(),
            limits,
            call,
            host,
            log: log::LogState::default(),
        }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl bindings::types::Host for InstanceState {}
