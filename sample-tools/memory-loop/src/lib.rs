//! `memory-loop` (risk tier: write-low): makes `ops` memory calls in a row
//! (`get` or `put` of one key in the `bench` namespace) and returns how many
//! succeeded. It exists for the `brokers` benchmark: one invocation, many
//! guest → host calls, so the per-call cost of the host stands out.

use agenthost_guest_sdk::memory::{self, Classification, Governance, PutOptions};
use agenthost_guest_sdk::{Error, RiskTier, Tool, ToolSpec, Value, export_tool, json};
use serde_json::json;

struct MemoryLoop;

impl Tool for MemoryLoop {
    fn spec() -> ToolSpec {
        ToolSpec::new("memory-loop", env!("CARGO_PKG_VERSION"))
            .description("Makes `ops` memory gets or puts of one key, for benchmarks.")
            .input_schema(json!({
                "type": "object",
                "properties": {
                    "ops": { "type": "integer", "minimum": 1, "maximum": 1000000 },
                    "mode": { "enum": ["get", "put"] }
                },
                "required": ["ops", "mode"],
                "additionalProperties": false
            }))
            .risk_tier(RiskTier::WriteLow)
    }

    fn invoke(input: Value) -> Result<Value, Error> {
        let ops = input.get("ops").and_then(Value::as_u64).unwrap_or(1);
        let put = json::str_field(&input, "mode")? == "put";
        let mut done = 0u64;
        for _ in 0..ops {
            if put {
                let options = PutOptions {
                    expected_version: None,
                    ttl_seconds: None,
                    governance: Governance { classification: Classification::Internal, retention_days: None },
                };
                memory::put("bench", "key", b"value", options)?;
            } else {
                memory::get("bench", "key")?;
            }
            done += 1;
        }
        Ok(json!({ "ops": done }))
    }
}

export_tool!(MemoryLoop);
