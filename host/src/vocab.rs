//! The vocabulary every layer shares about what a component may reach: the
//! platform interfaces that can be granted ([`Capability`]) and the two
//! worlds a component can implement ([`World`]).

use std::fmt;

use serde::Serialize;

use crate::bindings;

/// The principal an event-driven run acts for is this prefix and the
/// event's source.
pub const EVENT_PRINCIPAL_PREFIX: &str = "event:";

/// A call a trusted transport made (a Lambda direct invoke, an SQS
/// message) acts for this prefix and the principal it names, so it can
/// never pass for a token's subject (and resubmit that subject's approvals).
pub const DIRECT_PRINCIPAL_PREFIX: &str = "lambda:";

/// The principal of the host's own calls (`describe` at load).
pub const HOST_PRINCIPAL: &str = "agenthost";

/// The principal of a call that named none.
pub const ANONYMOUS_PRINCIPAL: &str = "anonymous";

/// Whether a principal name belongs to the host: an authenticated caller
/// that carried one could pass for an event's runs (own their transcripts,
/// resubmit their approvals) or for the host itself.
pub fn is_reserved_principal(name: &str) -> bool {
    name.starts_with(EVENT_PRINCIPAL_PREFIX)
        || name.starts_with(DIRECT_PRINCIPAL_PREFIX)
        || name == HOST_PRINCIPAL
        || name == ANONYMOUS_PRINCIPAL
}

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
