//! Criterion benchmarks for agenthost; see `invoke.rs`.
