//! Host-side bindings generated from the `agenthost:platform` WIT package.
//!
//! The `agent` world imports every platform interface, so its bindings own
//! the interface types; the `tool` world's bindings reuse them.
//! Host functions are `async` (a model or tool call awaits I/O) and
//! `trappable`: the outer `wasmtime::Result` traps the guest, the inner WIT
//! `result` is what the guest sees.

mod agent_world {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "agenthost:platform/agent@0.1.0",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [serde::Serialize],
    });
}

mod tool_world {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "agenthost:platform/tool@0.1.0",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "agenthost:platform/types": super::agent_world::agenthost::platform::types,
            "agenthost:platform/log": super::agent_world::agenthost::platform::log,
            "agenthost:platform/memory": super::agent_world::agenthost::platform::memory,
            "agenthost:platform/events": super::agent_world::agenthost::platform::events,
            "agenthost:platform/audit": super::agent_world::agenthost::platform::audit,
        },
    });
}

pub use agent_world::agenthost::platform::{audit, events, log, memory, model, tools, types};
pub use agent_world::{Agent, AgentPre, AgentSpec, Outcome, Task};
pub use tool_world::{Tool, ToolPre};

/// The WIT package every platform interface belongs to.
pub const PACKAGE: &str = "agenthost:platform";
/// Its version, as it appears in import names.
pub const VERSION: &str = "0.1.0";
