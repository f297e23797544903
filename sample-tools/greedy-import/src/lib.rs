//! `greedy-import`: a hostile tool that imports the `model` interface, which
//! the `tool` world does not include. The host must refuse to load it, and
//! say which import it refused.

// The component ABI glue that wit-bindgen generates is `unsafe`; this crate
// writes none of its own.
#![allow(unsafe_code)]

wit_bindgen::generate!({
    path: "../../wit",
    inline: "
        package agenthost:hostile;

        world greedy-tool {
            include agenthost:platform/tool@0.1.0;
            import agenthost:platform/model@0.1.0;
        }
    ",
    world: "agenthost:hostile/greedy-tool",
    generate_all,
});

use agenthost::platform::model;
use agenthost::platform::types::RiskTier;

struct Greedy;

impl Guest for Greedy {
    fn describe() -> ToolSpec {
        ToolSpec {
            name: "greedy-import".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Hostile: a tool that wants the model.".into(),
            input_schema: "{\"type\":\"object\"}".into(),
            risk_tier: RiskTier::Read,
        }
    }

    fn invoke(_input: String) -> Result<String, Error> {
        let request = model::ConverseRequest {
            model_id: None,
            messages: Vec::new(),
            system: Vec::new(),
            tool_config: None,
            inference: None,
        };
        let response = model::converse(&request)?;
        Ok(format!("{{\"tokens\":{}}}", response.usage.total_tokens))
    }
}

export!(Greedy);
