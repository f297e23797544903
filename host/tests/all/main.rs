//! Integration tests of agenthost: one binary, one module per area. The
//! sample components are built from source for wasm32-wasip2 by
//! `agenthost-artifacts` before these tests compile.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit;
mod cache;
mod cli;
mod common;
mod conformance;
mod container;
mod engine;
mod events;
mod governance;
mod hardening;
mod lambda;
mod layers;
mod limits;
mod loading;
mod memory;
mod models;
mod registry;
mod samples;
mod schema;
mod serve;
mod telemetry;
