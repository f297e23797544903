//! `spin-forever`: a hostile tool whose `invoke` never returns. It burns CPU
//! in a loop that makes no host call, so only the host's wall-clock deadline
//! (epoch interruption) or its fuel budget can stop it.

use agenthost_guest_sdk::{Error, RiskTier, Tool, ToolSpec, Value, export_tool};

struct SpinForever;

impl Tool for SpinForever {
    fn spec() -> ToolSpec {
        ToolSpec::new("spin-forever", env!("CARGO_PKG_VERSION"))
            .description("Hostile: loops forever.")
            .risk_tier(RiskTier::Read)
    }

    fn invoke(_input: Value) -> Result<Value, Error> {
        let mut x: u64 = 1;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

export_tool!(SpinForever);
