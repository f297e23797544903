//! The WASI context of a component, built from its grant. It starts from
//! `WasiCtxBuilder::new()`, which grants nothing (no preopened directory,
//! no environment variable, no argument, stdio connected to nothing, name
//! lookup denied), and adds exactly:
//!
//! - the granted mounts, as preopens (cap-std: a path cannot climb out of
//!   its directory, through `..`, an absolute path or a symlink), read-only
//!   unless the tenant made them writable and the tier allows writes;
//! - the granted environment variables;
//! - sockets and name lookup only when the tenant grants them; a socket
//!   may reach only an address range the tenant opened or an IP on its
//!   allow-list, and never the metadata address or another restricted
//!   range it did not open.

use std::sync::Arc;

use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use super::Grant;

pub(crate) fn context(grant: &Grant) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    for (key, value) in &grant.env {
        builder.env(key, value);
    }
    for mount in &grant.mounts {
        let perms = if mount.writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
        if let Err(e) = builder.preopened_dir(&mount.host, &mount.guest, perms) {
            // The directory was checked at load; if it vanished since, the
            // guest simply does not get it.
            tracing::warn!(host = %mount.host.display(), guest = %mount.guest, error = %e, "mount unavailable");
        }
    }
    let egress = &grant.egress;
    builder.allow_ip_name_lookup(egress.dns).allow_tcp(egress.sockets).allow_udp(egress.sockets);
    if egress.sockets {
        let policy = Arc::new(egress.clone());
        builder.socket_addr_check(move |addr, use_: SocketAddrUse| {
            let policy = policy.clone();
            Box::pin(async move {
                // Binding the unspecified address to an ephemeral port is
                // what every outgoing connection does first; a guest never
                // binds a chosen port (it gets no server sockets).
                let verdict = match use_ {
                    SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
                        if addr.ip().is_unspecified() && addr.port() == 0 {
                            Ok(())
                        } else {
                            Err(format!("binding {addr} denied: guests get no server sockets"))
                        }
                    }
                    _ => policy.check_socket(addr),
                };
                if let Err(reason) = &verdict {
                    tracing::warn!(target: "agenthost::egress", %reason, "socket denied");
                }
                verdict.is_ok()
            })
        });
    }
    builder.build()
}
