//! `big-output`: returns as many bytes of output as it is asked for, to
//! exercise the host's output size cap.

use agenthost_guest_sdk::{Error, RiskTier, Tool, ToolSpec, Value, export_tool};
use serde_json::json;

struct BigOutput;

impl Tool for BigOutput {
    fn spec() -> ToolSpec {
        ToolSpec::new("big-output", env!("CARGO_PKG_VERSION"))
            .description("Returns a string of the requested length.")
            .input_schema(json!({
                "type": "object",
                "properties": { "bytes": { "type": "integer", "minimum": 0, "maximum": 67108864 } },
                "required": ["bytes"],
                "additionalProperties": false
            }))
            .risk_tier(RiskTier::Read)
    }

    fn invoke(input: Value) -> Result<Value, Error> {
        let bytes = input.get("bytes").and_then(Value::as_u64).unwrap_or(0);
        let len = usize::try_from(bytes).map_err(|_| Error::invalid_input("`bytes` is too large"))?;
        Ok(json!({ "data": "x".repeat(len) }))
    }
}

export_tool!(BigOutput);
