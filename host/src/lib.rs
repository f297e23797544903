//! agenthost: a host runtime that runs AI agents and tools as sandboxed
//! WebAssembly components.
//!
//! A [`Host`] loads components of the `agenthost:platform` `tool` and
//! `agent` worlds, grants each only what it was given ([`Grant`]), and runs
//! every invocation in a fresh store under [`Limits`]: memory, fuel, a
//! wall-clock deadline and an output cap. Every failure is an
//! [`InvokeError`] saying what happened, in which component, and which
//! limit was hit.
//!
//! ```no_run
//! # async fn demo() -> Result<(), agenthost::InvokeError> {
//! use agenthost::{Host, HostConfig, LoadOptions};
//!
//! let host = Host::new(HostConfig::default())?;
//! let calculator = host.load_file("calculator.wasm".as_ref(), LoadOptions::default()).await?;
//! let output = host.invoke_tool(&calculator, &serde_json::json!({"expression": "6 * 7"})).await?;
//! assert_eq!(output["value"], 42.0);
//! # Ok(()) }
//! ```

pub mod audit;
pub mod aws;
pub mod backends;
pub mod bindings;
pub mod brokers;
mod cache;
pub mod capabilities;
pub mod engine;
pub mod error;
pub mod governance;
pub mod keys;
pub mod keystore;
pub mod lambda;
pub mod limits;
pub mod registry;
pub mod runtime;
mod schema;
pub mod server;
pub mod settings;
pub mod telemetry;
pub mod text;
pub mod trace;
pub mod vocab;

pub use engine::{AllocatorKind, EngineConfig};
pub use error::{ComponentRef, ErrorKind, InvokeError, LimitHit, Origin};
pub use governance::{Governance, Tier};
pub use governance::{Grant, Mount};
pub use limits::Limits;
pub use runtime::{
    CallOptions, Host, HostConfig, LoadOptions, LoadSource, LoadedComponent, RunOutput, Stats,
};
pub use vocab::{Capability, World};
