//! `versioned` (risk tier: read): answers with its own version, so a test
//! (or a canary rollout) can tell which version served a call. The
//! version is set when it is built (`AGENTHOST_SAMPLE_VERSION`); the
//! artifacts build makes 1.0.0, 1.1.0 and 2.0.0. `sleep_ms` makes a call
//! slow (at most 5 s) and still successful.

use agenthost_guest_sdk::{Error, RiskTier, Tool, ToolSpec, Value, export_tool};
use serde_json::json;

const VERSION: &str = match option_env!("AGENTHOST_SAMPLE_VERSION") {
    Some(version) => version,
    None => "1.0.0",
};

struct Versioned;

impl Tool for Versioned {
    fn spec() -> ToolSpec {
        ToolSpec::new("versioned", VERSION)
            .description("Answers with its own version and the input it was given.")
            .input_schema(json!({
                "type": "object",
                "maxProperties": 16,
                "properties": { "sleep_ms": { "type": "integer", "minimum": 0, "maximum": 5000 } }
            }))
            .risk_tier(RiskTier::Read)
    }

    fn invoke(input: Value) -> Result<Value, Error> {
        // A slow call that still succeeds, for admission and drain tests.
        if let Some(ms) = input.get("sleep_ms").and_then(Value::as_u64) {
            std::thread::sleep(std::time::Duration::from_millis(ms.min(5000)));
        }
        Ok(json!({ "version": VERSION, "input": input }))
    }
}

export_tool!(Versioned);
