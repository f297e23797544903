//! `notify` (risk tier: write-low): publishes one event, `{"message": ...}`
//! as JSON, to a topic the tenant granted, with a `kind: notice` attribute;
//! returns the event's id (its idempotency key).

use agenthost_guest_sdk::{Error, RiskTier, Tool, ToolSpec, Value, events, export_tool, json};
use serde_json::json;

struct Notify;

impl Tool for Notify {
    fn spec() -> ToolSpec {
        ToolSpec::new("notify", env!("CARGO_PKG_VERSION"))
            .description("Publishes a message to an event topic.")
            .input_schema(json!({
                "type": "object",
                "properties": {
                    "topic": { "type": "string", "pattern": "^[a-z][a-z0-9._-]{0,127}$" },
                    "message": { "type": "string", "maxLength": 4096 }
                },
                "required": ["topic", "message"],
                "additionalProperties": false
            }))
            .risk_tier(RiskTier::WriteLow)
    }

    fn invoke(input: Value) -> Result<Value, Error> {
        let topic = json::str_field(&input, "topic")?;
        let message = json::str_field(&input, "message")?;
        let payload = json!({ "message": message }).to_string();
        let attributes = [("kind".to_owned(), "notice".to_owned())];
        let id = events::publish(topic, payload.as_bytes(), &attributes)?;
        Ok(json!({ "event_id": id }))
    }
}

export_tool!(Notify);
