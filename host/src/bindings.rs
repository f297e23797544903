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

use model::{ContentBlock, ToolResultContent};

impl model::ConverseRequest {
    /// The bytes of text the request carries: every message, tool input and
    /// result, system prompt, tool definition and the model id.
    pub fn text_bytes(&self) -> usize {
        let blocks: usize = self
            .messages
            .iter()
            .flat_map(|m| m.content.iter())
            .map(|block| match block {
                ContentBlock::Text(text) => text.len(),
                ContentBlock::ToolUse(u) => u.id.len() + u.name.len() + u.input.len(),
                ContentBlock::ToolResult(r) => {
                    r.id.len()
                        + r.content
                            .iter()
                            .map(|c| match c {
                                ToolResultContent::Text(t) | ToolResultContent::Json(t) => t.len(),
                            })
                            .sum::<usize>()
                }
            })
            .sum();
        let system: usize = self.system.iter().map(String::len).sum();
        let tools: usize = self.tool_config.as_ref().map_or(0, |c| {
            c.tools.iter().map(|t| t.name.len() + t.description.len() + t.input_schema.len()).sum()
        });
        blocks + system + tools + self.model_id.as_ref().map_or(0, String::len)
    }
}
