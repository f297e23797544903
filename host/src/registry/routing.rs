//! Aliases and the traffic split between them: `stable` takes every call
//! the `canary` does not; the canary takes `weight` percent, chosen by a
//! hash of the call's sticky key (its run id or a client's session key),
//! so one run or session always lands on the same version.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::RegistryError;

/// How many earlier stables `rollback` can return to.
pub const HISTORY: usize = 32;

/// An alias name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Alias {
    Stable,
    Canary,
}

impl Alias {
    /// # Errors
    ///
    /// `invalid` for anything but `stable` and `canary`.
    pub fn parse(name: &str) -> Result<Alias, RegistryError> {
        match name {
            "stable" => Ok(Alias::Stable),
            "canary" => Ok(Alias::Canary),
            other => Err(RegistryError::Invalid(format!(
                "alias `{}` is not one of `stable`, `canary`",
                crate::text::clip(other)
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Alias::Stable => "stable",
            Alias::Canary => "canary",
        }
    }
}

/// The canary: a version and the percentage of calls it takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    pub version: String,
    /// Percent of calls, 0 to 100.
    pub weight: u8,
}

/// A component's aliases.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aliases {
    /// Bumped on every change, so concurrent writers do not lose updates.
    #[serde(default)]
    pub revision: u64,
    pub stable: Option<String>,
    pub canary: Option<Canary>,
    /// Earlier stables, the newest last: where `rollback` returns to.
    #[serde(default)]
    pub history: Vec<String>,
}

impl Aliases {
    /// The versions the aliases name.
    pub fn versions(&self) -> impl Iterator<Item = &str> {
        self.stable.as_deref().into_iter().chain(self.canary.as_ref().map(|c| c.version.as_str()))
    }

    fn replace_stable(&mut self, version: String) {
        if let Some(old) = self.stable.replace(version)
            && self.stable.as_deref() != Some(old.as_str())
        {
            self.history.push(old);
            if self.history.len() > HISTORY {
                self.history.remove(0);
            }
        }
    }

    /// Points an alias at a version; a canary with a weight (percent,
    /// default 10), `stable` with none.
    ///
    /// # Errors
    ///
    /// `invalid`: a weight above 100, or a weight on `stable`.
    pub fn set(&mut self, alias: Alias, version: &str, weight: Option<u8>) -> Result<(), RegistryError> {
        match alias {
            Alias::Stable => {
                if weight.is_some_and(|w| w != 100) {
                    return Err(RegistryError::Invalid(
                        "`stable` takes whatever the canary does not: it has no weight of its own".into(),
                    ));
                }
                self.replace_stable(version.to_owned());
            }
            Alias::Canary => {
                let weight = weight.unwrap_or(10);
                if weight > 100 {
                    return Err(RegistryError::Invalid(format!(
                        "weight {weight} is not a percentage (0 to 100)"
                    )));
                }
                self.canary = Some(Canary { version: version.to_owned(), weight });
            }
        }
        Ok(())
    }

    /// Makes the canary the stable version; the old stable goes to history.
    ///
    /// # Errors
    ///
    /// `conflict` when there is no canary.
    pub fn promote(&mut self) -> Result<String, RegistryError> {
        let Some(canary) = self.canary.take() else {
            return Err(RegistryError::Conflict(
                "there is no canary to promote; set one with `alias canary VERSION --weight N`".into(),
            ));
        };
        self.replace_stable(canary.version.clone());
        Ok(canary.version)
    }

    /// Returns to the previous stable version and drops any canary.
    ///
    /// # Errors
    ///
    /// `conflict` when no earlier stable is known.
    pub fn rollback(&mut self) -> Result<String, RegistryError> {
        let Some(previous) = self.history.pop() else {
            return Err(RegistryError::Conflict("there is no earlier stable version to roll back to".into()));
        };
        self.canary = None;
        self.stable = Some(previous.clone());
        Ok(previous)
    }

    /// The version a call goes to, and through which alias: the canary
    /// for `weight` percent of sticky keys, else stable. Without a key the
    /// choice is random. `None` when no alias is set.
    pub fn route(&self, component: &str, sticky: Option<&str>) -> Option<(&str, Alias)> {
        if let Some(canary) = &self.canary
            && canary.weight > 0
        {
            let bucket = match sticky {
                Some(key) => bucket(component, key),
                None => rand::random_range(0..10_000),
            };
            if bucket < u32::from(canary.weight) * 100 || self.stable.is_none() {
                return Some((&canary.version, Alias::Canary));
            }
        }
        self.stable.as_deref().map(|v| (v, Alias::Stable))
    }
}

/// A sticky key's place in 0..10 000 for this component.
fn bucket(component: &str, key: &str) -> u32 {
    let digest = Sha256::new().chain_update(component).chain_update([0]).chain_update(key).finalize();
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    n % 10_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promote_and_rollback_walk_the_history() -> Result<(), RegistryError> {
        let mut a = Aliases::default();
        a.set(Alias::Stable, "1.0.0", None)?;
        a.set(Alias::Canary, "1.1.0", Some(10))?;
        assert_eq!(a.promote()?, "1.1.0");
        assert_eq!(a.stable.as_deref(), Some("1.1.0"));
        assert!(a.canary.is_none());
        a.set(Alias::Canary, "1.2.0", Some(50))?;
        assert_eq!(a.rollback()?, "1.0.0");
        assert!(a.canary.is_none(), "a rollback drops the canary");
        assert!(matches!(a.rollback(), Err(RegistryError::Conflict(_))));
        assert!(matches!(a.promote(), Err(RegistryError::Conflict(_))));
        assert!(matches!(a.set(Alias::Canary, "x", Some(101)), Err(RegistryError::Invalid(_))));
        Ok(())
    }

    #[test]
    fn the_canary_takes_its_weight_of_sticky_keys_and_keeps_them() -> Result<(), RegistryError> {
        let mut a = Aliases::default();
        a.set(Alias::Stable, "1", None)?;
        a.set(Alias::Canary, "2", Some(10))?;
        let canary = (0..10_000)
            .filter(|i| a.route("calc", Some(&format!("run-{i}"))).map(|r| r.1) == Some(Alias::Canary))
            .count();
        assert!((850..=1150).contains(&canary), "10% of 10 000 keys, got {canary}");
        for i in 0..100 {
            let key = format!("session-{i}");
            assert_eq!(a.route("calc", Some(&key)), a.route("calc", Some(&key)));
        }
        a.set(Alias::Canary, "2", Some(0))?;
        assert!((0..1000).all(|i| a.route("calc", Some(&i.to_string())) == Some(("1", Alias::Stable))));
        Ok(())
    }
}
