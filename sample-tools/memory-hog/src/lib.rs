//! `memory-hog`: a hostile tool that grows its linear memory without bound,
//! touching every page, until the host's memory limit stops it.

use agenthost_guest_sdk::{Error, RiskTier, Tool, ToolSpec, Value, export_tool};

struct MemoryHog;

impl Tool for MemoryHog {
    fn spec() -> ToolSpec {
        ToolSpec::new("memory-hog", env!("CARGO_PKG_VERSION"))
            .description("Hostile: allocates memory until something stops it.")
            .risk_tier(RiskTier::Read)
    }

    fn invoke(_input: Value) -> Result<Value, Error> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![0xA5; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

export_tool!(MemoryHog);
