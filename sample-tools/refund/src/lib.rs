//! `refund` (risk tier: write-high): records a refund for an order in the
//! tenant's `refunds` memory namespace. It does not move money: it writes
//! the record a payments system would act on, once. A second refund of the
//! same order is refused (compare-and-set on a record that must not exist).
//!
//! The host runs it only with an approval token bound to this exact input.

use agenthost_guest_sdk::memory::{self, Classification, Governance, PutOptions};
use agenthost_guest_sdk::{Error, RiskTier, Tool, ToolSpec, Value, export_tool, json};
use serde_json::json;

const NAMESPACE: &str = "refunds";

struct Refund;

impl Tool for Refund {
    fn spec() -> ToolSpec {
        ToolSpec::new("refund", env!("CARGO_PKG_VERSION"))
            .description("Records a refund for an order (once per order) in the tenant's `refunds` memory.")
            .input_schema(json!({
                "type": "object",
                "properties": {
                    "order_id": { "type": "string", "pattern": "^[A-Za-z0-9-]{1,64}$" },
                    "amount_cents": { "type": "integer", "minimum": 1, "maximum": 10000000 },
                    "currency": { "type": "string", "pattern": "^[A-Z]{3}$" },
                    "reason": { "type": "string", "maxLength": 500 },
                    // Shown to nobody: an approver's preview redacts it.
                    "card_last4": { "type": "string", "pattern": "^[0-9]{4}$", "x-sensitive": true }
                },
                "required": ["order_id", "amount_cents", "currency"],
                "additionalProperties": false
            }))
            .risk_tier(RiskTier::WriteHigh)
    }

    fn invoke(input: Value) -> Result<Value, Error> {
        let order = json::str_field(&input, "order_id")?;
        let record = json!({
            "order_id": order,
            "amount_cents": input["amount_cents"],
            "currency": input["currency"],
            "reason": input.get("reason").cloned().unwrap_or(Value::Null),
        });
        let options = PutOptions {
            // Version 0: the record must not exist yet.
            expected_version: Some(0),
            ttl_seconds: None,
            governance: Governance {
                classification: Classification::Confidential,
                retention_days: Some(3650),
            },
        };
        match memory::put(NAMESPACE, order, record.to_string().as_bytes(), options) {
            Ok(version) => Ok(json!({ "refunded": record, "version": version })),
            Err(Error::InvalidInput(message)) if message.contains("version conflict") => {
                Err(Error::InvalidInput(format!("order {order} was already refunded")))
            }
            Err(other) => Err(other),
        }
    }
}

export_tool!(Refund);
