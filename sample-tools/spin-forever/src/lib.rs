//! `spin-forever`: a hostile tool whose `invoke` never returns. By default it
//! burns CPU in a loop that makes no host call, so only the host's
//! wall-clock deadline (epoch interruption) or its fuel budget can stop it.
//! With `{"mode": "sleep"}` it instead blocks in a WASI clock wait for an
//! hour, where no wasm runs and only the host's own timer can stop it.

use agenthost_guest_sdk::{Error, RiskTier, Tool, ToolSpec, Value, export_tool};

struct SpinForever;

impl Tool for SpinForever {
    fn spec() -> ToolSpec {
        ToolSpec::new("spin-forever", env!("CARGO_PKG_VERSION"))
            .description("Hostile: loops forever.")
            .risk_tier(RiskTier::Read)
    }

    fn invoke(input: Value) -> Result<Value, Error> {
        if input.get("mode").and_then(Value::as_str) == Some("sleep") {
            std::thread::sleep(std::time::Duration::from_secs(3600));
            return Ok(Value::Null);
        }
        let mut x: u64 = 1;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

export_tool!(SpinForever);
