//! BGP-4 speaker core (RFC 4271), sans-IO: the caller feeds TCP stream bytes, transport
//! events and the current time; the core hands back bytes to write, the next timer deadline and
//! [`BgpEvent`]s (connect/disconnect requests for the driver, route install/withdraw).
//!
//! One [`Session`] is one eBGP neighbour (the tunnel peer). It never reads a clock and never
//! touches a socket; `src/daemon/bgp_task.rs` is the tokio driver.
//!
//! Driver contract:
//! - after every call into the session, first drain [`Session::poll_transmit`] and write the
//!   bytes, then drain [`Session::poll_event`] (so a NOTIFICATION reaches the wire before the
//!   `Disconnect` that follows it closes the stream);
//! - `Connect`: open TCP to `peer_address:port` from `local_address` (TTL = `multihop`), then
//!   call `transport_up` or `transport_failed`;
//! - `Disconnect`: close the current stream or abort the pending connect;
//! - an accepted inbound connection from the peer goes to [`Session::accept_inbound`], which
//!   says whether to adopt it (dropping whatever transport the driver had) or to close it.
//!
//! Connection collisions (RFC 4271 6.8) with only one transport at a time: an inbound
//! connection is adopted in Active, and in Connect too except that the side with the higher
//! peering address keeps its own connect attempt for its first second; in OpenSent (peer's BGP
//! Identifier still unknown)
//! the connection opened by the side with the higher peering address survives, which is the
//! RFC rule whenever router ids equal peering addresses (as in the lab); in OpenConfirm the
//! RFC rule is applied with the peer's BGP Identifier; in Established the newcomer is refused.

pub mod msg;
pub mod policy;
mod session;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::prefix::IpPrefix;

pub use msg::{AsPath, AsSegment, Notification, Origin};
pub use policy::{best_path, compare, PrefixFilter, PrefixFilterError};
pub use session::Session;

/// Settings of one BGP neighbour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpConfig {
    pub local_as: u32,
    pub peer_as: u32,
    pub router_id: Ipv4Addr,
    /// update-source: the tunnel address the session is bound to; also our NEXT_HOP.
    pub local_address: IpAddr,
    pub peer_address: IpAddr,
    /// TCP port of the peer and of our listener (179; tests use high ports).
    pub port: u16,
    pub hold_time: Duration,
    pub connect_retry: Duration,
    /// Never connect, only accept.
    pub passive: bool,
    /// IP TTL on the session (ebgp-multihop).
    pub multihop: u8,
    /// Prefixes we originate.
    pub networks: Vec<IpPrefix>,
    /// Outbound prefix-list; empty = no prefix-list (all `networks` leave). Learned routes are
    /// never re-announced (one peer), so this only narrows what we originate.
    pub export: Vec<PrefixFilter>,
    /// Inbound prefix-list: a learned route is accepted only if an entry matches (an empty
    /// list accepts nothing). None = no import policy: an eBGP session then accepts nothing
    /// (RFC 8212, as BIRD and FRR do), an iBGP session everything.
    pub import: Option<Vec<PrefixFilter>>,
    /// Addresses no learned route may cover, whatever `import` says: the IKE peers and our own
    /// underlay addresses. A route covering one would pull the tunnel's own IKE/ESP into the
    /// tunnel (recursive routing), e.g. a more-specific of the peer or 0.0.0.0/1 + 128.0.0.0/1.
    pub protected: Vec<IpAddr>,
    /// LOCAL_PREF set on every imported route (route-map in).
    pub import_local_pref: u32,
    /// Cease when the peer sends more prefixes than this; 0 = no limit.
    pub max_prefixes: u32,
    /// Preferred source address of the routes learned from the peer (like BIRD's
    /// `krt_prefsrc`), e.g. the LAN address, so traffic from the gateway itself uses it. The
    /// session does not use it; the daemon installs the routes with it.
    pub route_source: Option<IpAddr>,
}

impl BgpConfig {
    /// A config with the usual defaults: hold 30 s, connect retry 5 s, active, TTL 1,
    /// LOCAL_PREF 100, no prefix limit, port 179, router id = local IPv4 address.
    pub fn new(local_as: u32, peer_as: u32, local_address: IpAddr, peer_address: IpAddr) -> Self {
        let router_id = match local_address {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        };
        BgpConfig {
            local_as,
            peer_as,
            router_id,
            local_address,
            peer_address,
            port: 179,
            hold_time: Duration::from_secs(30),
            connect_retry: Duration::from_secs(5),
            passive: false,
            multihop: 1,
            networks: Vec::new(),
            export: Vec::new(),
            import: None,
            protected: Vec::new(),
            import_local_pref: 100,
            max_prefixes: 0,
            route_source: None,
        }
    }
}

/// What the session asks of its driver / reports to the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BgpEvent {
    /// Open TCP to peer_address:port from local_address with TTL = multihop.
    Connect,
    /// Close the TCP stream (after writing what poll_transmit returned) or abort the connect.
    Disconnect,
    Established,
    /// The session left Established.
    Down {
        reason: String,
    },
    /// Route `prefix` via `next_hop` (new best route, or its next hop changed).
    InstallRoute {
        prefix: IpPrefix,
        next_hop: IpAddr,
    },
    WithdrawRoute {
        prefix: IpPrefix,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BgpState {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl BgpState {
    pub fn name(self) -> &'static str {
        match self {
            BgpState::Idle => "idle",
            BgpState::Connect => "connect",
            BgpState::Active => "active",
            BgpState::OpenSent => "opensent",
            BgpState::OpenConfirm => "openconfirm",
            BgpState::Established => "established",
        }
    }
}

/// The `bgp` object of `ipsecgw status --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BgpStatus {
    pub state: BgpState,
    pub prefixes_received: u32,
    pub prefixes_announced: u32,
    pub peer_as: u32,
    pub peer_address: IpAddr,
    /// Peer's BGP Identifier once its OPEN was accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_router_id: Option<Ipv4Addr>,
    /// Negotiated hold time (seconds) while a session is up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<u16>,
    /// Seconds in Established.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub import: ImportCounters,
}

impl BgpStatus {
    /// A session that has not started yet.
    pub fn idle(peer_as: u32, peer_address: IpAddr) -> BgpStatus {
        BgpStatus {
            state: BgpState::Idle,
            prefixes_received: 0,
            prefixes_announced: 0,
            peer_as,
            peer_address,
            peer_router_id: None,
            hold_time: None,
            uptime_secs: None,
            last_error: None,
            import: ImportCounters::default(),
        }
    }
}

/// Learned routes the import side refused, per NLRI, since the session was created (they keep
/// counting across reconnects).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportCounters {
    /// Not permitted by the `import` prefix-list, or eBGP without one (RFC 8212).
    pub refused_by_policy: u64,
    /// Would cover an IKE peer or a local underlay address (see [`BgpConfig::protected`]).
    pub refused_protected: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RibDirection {
    Received,
    Announced,
}

/// One line of the RIB view (`ipsecgw status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RibEntry {
    #[serde(serialize_with = "as_display")]
    pub prefix: IpPrefix,
    pub next_hop: IpAddr,
    /// AS_PATH in the usual notation: "65515 65516 {1 2}".
    pub as_path: String,
    pub local_pref: Option<u32>,
    pub med: Option<u32>,
    pub origin: &'static str,
    pub best: bool,
    pub direction: RibDirection,
}

fn as_display<T: std::fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}
