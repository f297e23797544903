//! `event-recorder`: an event subscriber. For each event it is given it
//! stores the payload in the tenant's `events` memory under the event id,
//! only if that id is not there yet (compare-and-set on version 0), so a
//! redelivered event is recorded once even if the host were to run it twice.
//! Output: `{"recorded": id}` or `{"duplicate": id}`.

use agenthost_guest_sdk::memory::{self, Classification, Governance, PutOptions};
use agenthost_guest_sdk::{Agent, AgentSpec, Error, Task, Value, export_agent, json};
use serde_json::json;

struct EventRecorder;

impl Agent for EventRecorder {
    fn spec() -> AgentSpec {
        AgentSpec {
            name: "event-recorder".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Records each event it receives in memory, once per event id.".into(),
        }
    }

    fn run(task: Task) -> Result<Value, Error> {
        let event =
            task.input.get("event").ok_or_else(|| Error::invalid_input("the input has no `event`"))?;
        let id = json::str_field(event, "id")?;
        let record = json!({
            "topic": event.get("topic"),
            "payload": event.get("payload"),
            "attributes": event.get("attributes"),
            "trace_id": task.context.trace_id,
        });
        let options = PutOptions {
            expected_version: Some(0),
            ttl_seconds: None,
            governance: Governance { classification: Classification::Internal, retention_days: Some(30) },
        };
        match memory::put("events", id, record.to_string().as_bytes(), options) {
            Ok(_) => Ok(json!({ "recorded": id })),
            Err(Error::InvalidInput(message)) if message.contains("compare-and-set") => {
                Ok(json!({ "duplicate": id }))
            }
            Err(e) => Err(e),
        }
    }
}

export_agent!(EventRecorder);
