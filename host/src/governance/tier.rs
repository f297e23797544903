//! Risk tiers, ordered from least to most dangerous.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::bindings::types::RiskTier;

/// How much harm a tool can do, and so what the host demands before it runs:
/// `read` runs and is recorded; `write-low` runs within the tenant's
/// write quota with schema-valid input; `write-high` needs one approval
/// token bound to the call; `critical` is denied unless the tenant enables
/// the tool and two distinct approvers sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    Read,
    WriteLow,
    WriteHigh,
    Critical,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Read, Tier::WriteLow, Tier::WriteHigh, Tier::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Read => "read",
            Tier::WriteLow => "write-low",
            Tier::WriteHigh => "write-high",
            Tier::Critical => "critical",
        }
    }

    /// Approval tokens from distinct approvers a call of this tier needs.
    pub fn approvals_needed(self) -> usize {
        match self {
            Tier::Read | Tier::WriteLow => 0,
            Tier::WriteHigh => 1,
            Tier::Critical => 2,
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a risk tier (read, write-low, write-high, critical)"))
    }
}

impl From<RiskTier> for Tier {
    fn from(tier: RiskTier) -> Self {
        match tier {
            RiskTier::Read => Tier::Read,
            RiskTier::WriteLow => Tier::WriteLow,
            RiskTier::WriteHigh => Tier::WriteHigh,
            RiskTier::Critical => Tier::Critical,
        }
    }
}
