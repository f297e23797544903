//! `wipe-tenant-data` (risk tier: critical): deletes every record of one of
//! the tenant's memory namespaces. The input must repeat the namespace in
//! `confirm` ("WIPE <namespace>").
//!
//! The host denies it unless the tenant enables it explicitly and two
//! distinct approvers sign tokens bound to this exact input.

use agenthost_guest_sdk::memory;
use agenthost_guest_sdk::{Error, RiskTier, Tool, ToolSpec, Value, export_tool, json};
use serde_json::json;

struct Wipe;

impl Tool for Wipe {
    fn spec() -> ToolSpec {
        ToolSpec::new("wipe-tenant-data", env!("CARGO_PKG_VERSION"))
            .description("Deletes every record in one of the tenant's memory namespaces.")
            .input_schema(json!({
                "type": "object",
                "properties": {
                    "namespace": { "type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$" },
                    "confirm": { "type": "string" }
                },
                "required": ["namespace", "confirm"],
                "additionalProperties": false
            }))
            .risk_tier(RiskTier::Critical)
    }

    fn invoke(input: Value) -> Result<Value, Error> {
        let namespace = json::str_field(&input, "namespace")?;
        let confirm = json::str_field(&input, "confirm")?;
        if confirm != format!("WIPE {namespace}") {
            return Err(Error::InvalidInput(format!("`confirm` must be \"WIPE {namespace}\"")));
        }
        let mut deleted = 0u64;
        let mut cursor = None;
        loop {
            let page = memory::list(namespace, "", cursor.as_deref(), 100)?;
            for key in &page.keys {
                if memory::delete(namespace, key, None)? {
                    deleted += 1;
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(json!({ "namespace": namespace, "deleted": deleted }))
    }
}

export_tool!(Wipe);
