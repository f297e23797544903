//! The WASI context of a component, built from its grant. It starts from
//! `WasiCtxBuilder::new()`, which grants nothing (no preopened directory,
//! no environment variable, no argument, stdio connected to nothing, name
//! lookup denied), and adds exactly:
//!
//! - the granted mounts, as preopens of the directories opened once when
//!   the component was loaded ([`OpenMount`]): a path swapped for a
//!   symlink afterwards (say, by a guest with a writable mount around it)
//!   changes nothing, and inside a mount cap-std keeps every path from
//!   climbing out (`..`, absolute paths, symlinks). Read-only unless the
//!   tenant made them writable and the tier allows writes;
//! - the granted environment variables;
//! - name lookup when granted, and sockets when granted: each connection
//!   must match a `tcp://`/`udp://` rule of every granting layer, stay out
//!   of restricted ranges the tenant did not open, and pass the policy's
//!   `Egress` decision on `Host::"<ip>"`.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use super::CallContext;
use crate::governance::policy::{Action, EntityRef, Value as PolicyValue};

/// A mount's directory, opened once per load without following a symlink
/// anywhere in its path.
#[derive(Debug)]
pub struct OpenMount {
    pub guest: String,
    pub writable: bool,
    /// The host path it was opened from, for messages.
    pub host: PathBuf,
    dir: std::fs::File,
}

impl OpenMount {
    /// Opens `host` (absolute) component by component, refusing any
    /// symlink on the way: what is opened is the directory the path names
    /// now, and the handle keeps naming it whatever happens to the path.
    ///
    /// # Errors
    ///
    /// A relative path, a symlink in the path, or a directory that cannot
    /// be opened.
    pub fn open(host: &Path, guest: &str, writable: bool) -> Result<Self, String> {
        if !host.is_absolute() {
            return Err(format!("the mount {} is not an absolute path", host.display()));
        }
        let mut dir =
            cap_primitives::fs::open_ambient_dir(Path::new("/"), cap_primitives::ambient_authority())
                .map_err(|e| format!("cannot open / to reach the mount {}: {e}", host.display()))?;
        let mut walked = PathBuf::from("/");
        for part in host.components() {
            let name = match part {
                Component::RootDir => continue,
                Component::Normal(name) => name,
                Component::CurDir | Component::ParentDir | Component::Prefix(_) => {
                    return Err(format!("the mount {} is not a normalised path", host.display()));
                }
            };
            walked.push(name);
            // Each step opens relative to the directory already held, and
            // never follows a symlink: nothing can be swapped in between.
            dir = cap_primitives::fs::open_dir_nofollow(&dir, Path::new(name)).map_err(|e| {
                if std::fs::symlink_metadata(&walked).is_ok_and(|m| m.file_type().is_symlink()) {
                    format!(
                        "the mount {} is refused: {} is a symlink (a mount path may not contain one)",
                        host.display(),
                        walked.display()
                    )
                } else {
                    format!("the mount {} cannot be opened at {}: {e}", host.display(), walked.display())
                }
            })?;
        }
        Ok(OpenMount { guest: guest.to_owned(), writable, host: host.to_owned(), dir })
    }

    /// A path that reaches the opened directory itself: on Linux its file
    /// descriptor under `/proc/self/fd`, which the kernel resolves to the
    /// directory the handle holds, not to whatever the original path names
    /// by now. Elsewhere, the path it was opened from.
    fn reach(&self) -> PathBuf {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd as _;
            let fd = PathBuf::from(format!("/proc/self/fd/{}", self.dir.as_raw_fd()));
            if fd.exists() {
                return fd;
            }
        }
        self.host.clone()
    }
}

pub(crate) fn context(call: &Arc<CallContext>) -> WasiCtx {
    let grant = &call.grant;
    let mut builder = WasiCtxBuilder::new();
    for (key, value) in &grant.env {
        builder.env(key, value);
    }
    for mount in call.mounts.iter() {
        let perms = if mount.writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
        if let Err(e) = builder.preopened_dir(mount.reach(), &mount.guest, perms) {
            // The handle is held for the component's lifetime; failing to
            // reopen it (out of descriptors) leaves the guest without it.
            tracing::warn!(host = %mount.host.display(), guest = %mount.guest, error = %e, "mount unavailable");
        }
    }
    let egress = &grant.egress;
    builder.allow_ip_name_lookup(egress.dns).allow_tcp(egress.sockets).allow_udp(egress.sockets);
    if egress.sockets {
        let call = call.clone();
        builder.socket_addr_check(move |addr, use_: SocketAddrUse| {
            let call = call.clone();
            Box::pin(async move {
                // Binding the unspecified address to an ephemeral port is
                // what every outgoing connection does first; a guest never
                // binds a chosen port, listens or accepts (it gets no
                // server sockets).
                let scheme = match use_ {
                    SocketAddrUse::TcpConnect => "tcp",
                    SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => "udp",
                    _ => "bind",
                };
                let verdict = match use_ {
                    SocketAddrUse::TcpBind | SocketAddrUse::UdpBind
                        if addr.ip().is_unspecified() && addr.port() == 0 =>
                    {
                        Ok(())
                    }
                    SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => {
                        socket_verdict(&call, scheme, addr)
                    }
                    _ => Err(format!("{use_:?} on {addr} denied: guests get no server sockets")),
                };
                // Logged within the call's budget only: a guest that keeps
                // trying past it does not fill the log.
                if let Err(reason) = &verdict
                    && call.within_budget()
                {
                    tracing::warn!(target: "agenthost::egress", tenant = call.tenant.id(), %reason, "socket denied");
                }
                verdict.is_ok()
            })
        });
    }
    builder.build()
}

/// A socket use: within the call's host-call budget and the tenant's
/// quota, on a socket rule of every layer, and allowed by the policy for
/// the address it really reaches (a NAT64 or mapped form decides as the
/// IPv4 address it embeds).
fn socket_verdict(call: &CallContext, scheme: &str, addr: std::net::SocketAddr) -> Result<(), String> {
    call.charge().map_err(|e| format!("{scheme} socket to {addr} denied: {e:?}"))?;
    call.grant.egress.check_socket(scheme, addr)?;
    let target = crate::governance::egress::canonical(addr.ip());
    call.decide(
        Action::Egress,
        EntityRef::new("Host", target.to_string()),
        vec![
            ("scheme", PolicyValue::String(scheme.to_owned())),
            ("port", PolicyValue::Long(i64::from(addr.port()))),
        ],
    )
    .map_err(|e| format!("{scheme} socket to {addr} denied by policy: {e:?}"))
}
