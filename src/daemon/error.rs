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

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
