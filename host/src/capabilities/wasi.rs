//! The WASI context of a component. It starts from `WasiCtxBuilder::new()`,
//! which grants nothing: no preopened directory, no environment variable,
//! no argument, stdio connected to nothing, every socket address denied and
//! name lookup denied. Grants that add to it (mounts, env, egress) come
//! with tenant configuration.

use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

use super::Grant;

pub(crate) fn context(_grant: &Grant) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    builder.allow_ip_name_lookup(false).allow_tcp(false).allow_udp(false);
    builder.build()
}
