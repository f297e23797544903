//! Paths of the sample guest components, built from source for
//! `wasm32-wasip2` by this crate's `build.rs` whenever the host's tests,
//! benches or demo are built.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
