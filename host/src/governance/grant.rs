//! The [`Grant`]: what governance decides a component may reach, and the
//! host directories it sees ([`Mount`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::packs::Classification;
use super::{EgressPolicy, Names};
use crate::vocab::{Capability, World};

/// A host directory a component sees at a guest path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Canonical host path.
    pub host: PathBuf,
    pub guest: String,
    pub writable: bool,
}

/// What a component is granted. [`Grant::nothing`] grants nothing: no
/// platform interface, no name, and (through `capabilities::wasi`) no preopened
/// directory, no environment variable, no socket, no network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub capabilities: BTreeSet<Capability>,
    /// Why each interface of the world that is not granted was removed,
    /// for the load error of a component that imports it.
    pub removed: BTreeMap<Capability, String>,
    /// Tools (of the same tenant) it may call through `tools.invoke`.
    pub tools: Names,
    pub memory_namespaces: Names,
    /// Whether it may put/delete memory (a `read` tool may not).
    pub memory_write: bool,
    /// The most sensitive classification it may write, if capped.
    pub max_classification: Option<Classification>,
    pub topics: Names,
    pub models: Names,
    /// Environment variables it sees, with their values.
    pub env: BTreeMap<String, String>,
    pub mounts: Vec<Mount>,
    pub egress: EgressPolicy,
}

impl Default for Grant {
    fn default() -> Self {
        Grant::nothing()
    }
}

impl Grant {
    /// Nothing at all.
    pub fn nothing() -> Self {
        Grant {
            capabilities: BTreeSet::new(),
            removed: BTreeMap::new(),
            tools: Names::none("its grant (no tools)"),
            memory_namespaces: Names::none("its grant (no memory namespaces)"),
            memory_write: false,
            max_classification: None,
            topics: Names::none("its grant (no topics)"),
            models: Names::none("its grant (no models)"),
            env: BTreeMap::new(),
            mounts: Vec::new(),
            egress: EgressPolicy::none(),
        }
    }

    /// Every platform interface of the component's world and every name
    /// (but no files, env or network): the development default.
    pub fn world(world: World) -> Self {
        Grant {
            capabilities: world.imports().iter().copied().collect(),
            tools: if world == World::Agent {
                Names::all()
            } else {
                Names::none("the tool world (no tools)")
            },
            memory_namespaces: Names::all(),
            memory_write: true,
            topics: Names::all(),
            models: Names::all(),
            ..Grant::nothing()
        }
    }

    #[must_use]
    pub fn with(mut self, capability: Capability) -> Self {
        self.capabilities.insert(capability);
        self.removed.remove(&capability);
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

    /// Why `capability` is not granted: the rule that removed it.
    pub fn why_not(&self, capability: Capability) -> String {
        self.removed.get(&capability).cloned().unwrap_or_else(|| "its grant does not include it".to_owned())
    }

    /// What `describe()` runs with: `log` (if granted) and nothing else —
    /// no names, mounts, env, network.
    pub fn for_describe(&self) -> Self {
        let mut grant = Grant::nothing();
        if self.has(Capability::Log) {
            grant.capabilities.insert(Capability::Log);
        }
        for capability in &self.capabilities {
            if *capability != Capability::Log {
                grant.removed.insert(*capability, "describe() runs with `log` only".to_owned());
            }
        }
        grant
    }
}
