//! `kv-note` (risk tier: write-low): stores a short note in the tenant's
//! `notes` memory namespace and returns the record's new version. Whatever
//! the host answers (a denial, a quota, a backend that is down) is passed
//! on unchanged.

use agenthost_guest_sdk::memory::{self, Classification, Governance, PutOptions};
use agenthost_guest_sdk::{Error, RiskTier, Tool, ToolSpec, Value, export_tool, json};
use serde_json::json;

const NAMESPACE: &str = "notes";

struct KvNote;

impl Tool for KvNote {
    fn spec() -> ToolSpec {
        ToolSpec::new("kv-note", env!("CARGO_PKG_VERSION"))
            .description("Stores a short note under a key in the tenant's `notes` memory.")
            .input_schema(json!({
                "type": "object",
                "properties": {
                    "key": { "type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,127}$" },
                    "note": { "type": "string", "maxLength": 4096 }
                },
                "required": ["key", "note"],
                "additionalProperties": false
            }))
            .risk_tier(RiskTier::WriteLow)
    }

    fn invoke(input: Value) -> Result<Value, Error> {
        let key = json::str_field(&input, "key")?;
        let note = json::str_field(&input, "note")?;
        let options = PutOptions {
            expected_version: None,
            ttl_seconds: None,
            governance: Governance { classification: Classification::Internal, retention_days: None },
        };
        let version = memory::put(NAMESPACE, key, note.as_bytes(), options)?;
        Ok(json!({ "key": key, "version": version }))
    }
}

export_tool!(KvNote);
