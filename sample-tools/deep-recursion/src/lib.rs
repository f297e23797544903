//! `deep-recursion`: a hostile tool that recurses until the guest stack
//! overflows.

use agenthost_guest_sdk::{Error, RiskTier, Tool, ToolSpec, Value, export_tool};

struct DeepRecursion;

impl Tool for DeepRecursion {
    fn spec() -> ToolSpec {
        ToolSpec::new("deep-recursion", env!("CARGO_PKG_VERSION"))
            .description("Hostile: recurses without end.")
            .risk_tier(RiskTier::Read)
    }

    fn invoke(_input: Value) -> Result<Value, Error> {
        Ok(Value::from(descend(std::hint::black_box(1))))
    }
}

/// Recursion on scalars only, so every frame lives on the wasm stack (which
/// the host bounds) rather than on Rust's shadow stack in linear memory.
#[inline(never)]
#[allow(unconditional_recursion)]
fn descend(n: u64) -> u64 {
    descend(std::hint::black_box(n).wrapping_add(1)).wrapping_add(n)
}

export_tool!(DeepRecursion);
