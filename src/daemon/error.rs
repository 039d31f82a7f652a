//! Why the gateway could not start or keep running (exit code 2). Each says what and where.

use crate::routing::RoutingError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug)]
pub enum DaemonError {
    /// The tokio runtime would not start.
    Runtime(io::Error),
    Netlink(io::Error),
    /// A UDP socket for IKE or NAT-T.
    Bind {
        addr: SocketAddr,
        source: io::Error,
    },
    /// Duplicating or configuring an already bound socket.
    Socket {
        what: String,
        source: io::Error,
    },
    Dataplane(io::Error),
    ControlSocket {
        path: PathBuf,
        source: io::Error,
    },
    Metrics {
        addr: SocketAddr,
        source: io::Error,
    },
    Signal(io::Error),
    /// The TUN device of a connection.
    Tunnel {
        conn: String,
        ifname: String,
        source: io::Error,
    },
    /// Addresses or routes of a connection's tunnel.
    Routing {
        conn: String,
        source: RoutingError,
    },
}

/// The Linux capability an operation needs, when it failed for want of privilege.
fn missing_capability(e: &DaemonError) -> Option<&'static str> {
    let denied = |e: &io::Error| {
        matches!(e.kind(), io::ErrorKind::PermissionDenied)
            || matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES))
    };
    match e {
        DaemonError::Bind { addr, source } if denied(source) && addr.port() < 1024 => {
            Some("CAP_NET_BIND_SERVICE")
        }
        DaemonError::Dataplane(source) if denied(source) => Some("CAP_NET_RAW"),
        DaemonError::Netlink(source) | DaemonError::Tunnel { source, .. } if denied(source) => {
            Some("CAP_NET_ADMIN")
        }
        DaemonError::Routing { source, .. }
            if matches!(
                source.kind,
                crate::routing::RoutingErrorKind::Kernel(libc::EPERM | libc::EACCES)
            ) =>
        {
            Some("CAP_NET_ADMIN")
        }
        _ => None,
    }
}

/// What the capability is for and the three ways to grant it.
fn grant_hint(f: &mut fmt::Formatter<'_>, cap: &str) -> fmt::Result {
    let why = match cap {
        "CAP_NET_BIND_SERVICE" => "to bind the IKE ports 500/4500",
        "CAP_NET_RAW" => "for the raw ESP socket (IP protocol 50)",
        _ => "to create TUN devices and set addresses and routes",
    };
    write!(
        f,
        "\n  missing capability {cap} ({why}). Grant it one of these ways:\n  \
         - run as root, or under systemd with deploy/ipsecgw.service \
         (AmbientCapabilities=CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW);\n  \
         - or: sudo setcap cap_net_admin,cap_net_bind_service,cap_net_raw+ep \"$(command -v ipsecgw)\""
    )
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_plain(f)?;
        match missing_capability(self) {
            Some(cap) => grant_hint(f, cap),
            None => Ok(()),
        }
    }
}

impl DaemonError {
    fn fmt_plain(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonError::Runtime(e) => write!(f, "cannot start the async runtime: {e}"),
            DaemonError::Netlink(e) => write!(f, "cannot open netlink: {e}"),
            DaemonError::Bind { addr, source } => write!(f, "cannot bind UDP {addr}: {source}"),
            DaemonError::Socket { what, source } => write!(f, "{what}: {source}"),
            DaemonError::Dataplane(e) => write!(f, "cannot start the data plane: {e}"),
            DaemonError::ControlSocket { path, source } => {
                write!(f, "cannot open control socket {}: {source}", path.display())
            }
            DaemonError::Metrics { addr, source } => {
                write!(f, "cannot bind metrics on {addr}: {source}")
            }
            DaemonError::Signal(e) => write!(f, "cannot install signal handlers: {e}"),
            DaemonError::Tunnel {
                conn,
                ifname,
                source,
            } => write!(f, "{conn}: cannot create TUN device {ifname}: {source}"),
            DaemonError::Routing { conn, source } => write!(f, "{conn}: {source}"),
        }
    }
}

impl std::error::Error for DaemonError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DaemonError::Runtime(e)
            | DaemonError::Netlink(e)
            | DaemonError::Dataplane(e)
            | DaemonError::Signal(e)
            | DaemonError::Bind { source: e, .. }
            | DaemonError::Socket { source: e, .. }
            | DaemonError::ControlSocket { source: e, .. }
            | DaemonError::Metrics { source: e, .. }
            | DaemonError::Tunnel { source: e, .. } => Some(e),
            DaemonError::Routing { source, .. } => Some(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privilege_errors_name_the_capability() {
        let eperm = || io::Error::from_raw_os_error(libc::EPERM);
        let bind = DaemonError::Bind {
            addr: "192.0.2.1:500".parse().unwrap(),
            source: io::Error::from_raw_os_error(libc::EACCES),
        }
        .to_string();
        assert!(bind.contains("cannot bind UDP 192.0.2.1:500"), "{bind}");
        assert!(
            bind.contains("CAP_NET_BIND_SERVICE") && bind.contains("setcap"),
            "{bind}"
        );
        let raw = DaemonError::Dataplane(eperm()).to_string();
        assert!(raw.contains("CAP_NET_RAW"), "{raw}");
        let tun = DaemonError::Tunnel {
            conn: "gw".into(),
            ifname: "ipsec30".into(),
            source: eperm(),
        }
        .to_string();
        assert!(tun.contains("CAP_NET_ADMIN"), "{tun}");
        let other = DaemonError::Bind {
            addr: "192.0.2.1:500".parse().unwrap(),
            source: io::Error::from_raw_os_error(libc::EADDRNOTAVAIL),
        }
        .to_string();
        assert!(!other.contains("CAP_"), "{other}");
    }
}
