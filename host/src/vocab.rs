//! The vocabulary every layer shares about what a component may reach: the
//! platform interfaces that can be granted ([`Capability`]) and the two
//! worlds a component can implement ([`World`]).

use std::fmt;

use serde::Serialize;

use crate::bindings;

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
