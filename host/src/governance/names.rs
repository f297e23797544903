//! Name grants: which tools, memory namespaces, topics and models a
//! component may name, as the intersection of every layer that granted
//! them (tenant, component manifest, policy pack). A refusal names the
//! layer that refused.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Patterns from one source: `*` is everything, `prefix*` every name with
/// that prefix, anything else one exact name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Patterns(pub Vec<String>);

impl Patterns {
    pub fn everything() -> Self {
        Patterns(vec!["*".to_owned()])
    }

    pub fn matches(&self, name: &str) -> bool {
        self.0.iter().any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => pattern == name,
        })
    }

    pub fn is_everything(&self) -> bool {
        self.0.iter().any(|p| p == "*")
    }
}

impl fmt::Display for Patterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.0.join(", "))
    }
}

impl<S: Into<String>> FromIterator<S> for Patterns {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Patterns(iter.into_iter().map(Into::into).collect())
    }
}

/// One layer of a name grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameLayer {
    /// Where it came from, e.g. `tenant acme (grants.tools)`.
    pub source: String,
    pub patterns: Patterns,
}

/// The intersection of layers. No layer at all allows every name (the
/// development default); [`Names::none`] allows none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Names {
    layers: Vec<NameLayer>,
}

impl Names {
    /// Every name.
    pub fn all() -> Self {
        Names { layers: Vec::new() }
    }

    /// No name, with the reason.
    pub fn none(source: impl Into<String>) -> Self {
        Names { layers: vec![NameLayer { source: source.into(), patterns: Patterns::default() }] }
    }

    /// Narrows to names `patterns` also matches.
    #[must_use]
    pub fn and(mut self, source: impl Into<String>, patterns: Patterns) -> Self {
        if !patterns.is_everything() {
            self.layers.push(NameLayer { source: source.into(), patterns });
        }
        self
    }

    /// `Ok` when every layer matches `name`, else the first layer that does not.
    ///
    /// # Errors
    ///
    /// The layer that refused, to put in the denial.
    pub fn check(&self, name: &str) -> Result<(), &NameLayer> {
        match self.layers.iter().find(|layer| !layer.patterns.matches(name)) {
            Some(layer) => Err(layer),
            None => Ok(()),
        }
    }

    pub fn allows(&self, name: &str) -> bool {
        self.check(name).is_ok()
    }

    /// `denied` text for a refused `name` of some `kind` (e.g. "memory namespace").
    pub fn denial(&self, kind: &str, name: &str) -> Option<String> {
        self.check(name).err().map(|layer| {
            format!("{kind} `{name}` is not allowed by {} (allowed: {})", layer.source, layer.patterns)
        })
    }

    pub fn layers(&self) -> &[NameLayer] {
        &self.layers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layer_must_match_and_the_refusing_one_is_named() {
        let names = Names::all()
            .and("tenant acme", ["notes", "orders-*"].into_iter().collect())
            .and("manifest of kv-note", ["notes", "orders-eu"].into_iter().collect());
        assert!(names.allows("notes"));
        assert!(names.allows("orders-eu"));
        let denial = names.denial("memory namespace", "orders-us").unwrap();
        assert!(denial.contains("manifest of kv-note"), "{denial}");
        let denial = names.denial("memory namespace", "secrets").unwrap();
        assert!(denial.contains("tenant acme"), "{denial}");
        assert!(Names::all().allows("anything"));
        assert!(!Names::none("nobody").allows("x"));
    }
}
