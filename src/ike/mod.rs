//! IKEv2 (RFC 7296) as a sans-IO core: wire codec, exchanges, IKE SA state machine.
//!
//! The driver feeds received datagrams ([`Engine::handle_datagram`]) and the clock
//! ([`Engine::handle_timeout`]), and drains [`Engine::poll_transmit`] / [`Engine::poll_event`].
//! The engine never reads a clock and never touches a socket; randomness is injected.
//!
//! Contract with the driver:
//! - `handle_datagram(local, remote, ..)`: `local` should be the real address the datagram
//!   arrived on (not 0.0.0.0), else the NAT_DETECTION hashes never match and every SA is
//!   treated as NATed (UDP-encapsulated) — harmless, but not what `encap = auto` means.
//! - Connections with `start_action = Start` are initiated by the engine itself at the first
//!   `handle_timeout` (`poll_timeout` returns `now`); `initiate` is idempotent, so calling it
//!   as well is fine. Such connections are also re-initiated after failures, DPD death and a
//!   peer's Delete ("keep up").
//! - CHILD rekey is make-before-break: `ChildUp { rekey_of: Some(old spi_in) }` arrives first,
//!   the old SA is removed only by its own `ChildDown` (reason "rekeyed").
//! - IKE rekey: `IkeUp { rekeyed: true }` for the new SA, then `IkeDown { reason: "rekeyed" }`
//!   for the old one. The children moved to the new SA: no ChildDown is emitted for them.
//! - `IkeDown` is always preceded by `ChildDown` for every child that was still installed.

pub mod codec;
mod engine;
mod identity;
pub mod keys;
mod sa;
mod select;

pub use engine::Engine;
pub use identity::Identity;

use crate::crypto::proposal::{EspProposal, IkeProposal};
use crate::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg};
use crate::prefix::IpPrefix;
use serde::Serialize;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use zeroize::Zeroizing;

/// The UDP port IKE floats to when NAT is detected (RFC 3948/7296 2.23).
pub const NATT_PORT: u16 = 4500;

/// What to do with a connection at startup / after its SA died.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAction {
    /// Initiate at startup and keep the SA up (re-initiate after failures).
    Start,
    /// Only respond.
    None,
}

/// What to do when DPD declares the peer dead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpdAction {
    Restart,
    Clear,
}

/// Retransmission of requests, like strongSwan's charon.retransmit_* settings: retransmit n
/// (1-based) is sent `timeout * base^(n-1)` after the previous send; after `tries`
/// retransmits and one more `timeout * base^tries` of silence the SA is declared dead.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetransmitConfig {
    pub timeout: Duration,
    pub base: f64,
    pub tries: u32,
}

impl Default for RetransmitConfig {
    fn default() -> Self {
        RetransmitConfig {
            timeout: Duration::from_secs(4),
            base: 1.8,
            tries: 5,
        }
    }
}

/// One configured CHILD SA.
#[derive(Clone, Debug, PartialEq)]
pub struct ChildConfig {
    pub name: String,
    pub local_ts: Vec<IpPrefix>,
    pub remote_ts: Vec<IpPrefix>,
    pub proposals: Vec<EspProposal>,
    /// CHILD SA rekey interval (jittered down by up to 10%); ZERO = never.
    pub rekey_time: Duration,
    pub replay_window: u32,
}

/// One configured connection (IKE SA + its children).
#[derive(Clone, PartialEq)]
pub struct IkeConfig {
    pub name: String,
    /// Empty = any local address.
    pub local_addrs: Vec<IpAddr>,
    /// Empty = %any (responder only).
    pub remote_addrs: Vec<IpAddr>,
    /// 500 normally. When floating for NAT-T, 500 becomes 4500 (other ports are kept).
    pub local_port: u16,
    pub remote_port: u16,
    pub local_id: Identity,
    /// None = accept any ID proven by the PSK.
    pub remote_id: Option<Identity>,
    pub psk: Zeroizing<Vec<u8>>,
    pub proposals: Vec<IkeProposal>,
    pub start_action: StartAction,
    /// encap = "always": float to 4500 and UDP-encapsulate ESP even without NAT.
    pub encap_always: bool,
    /// IKE SA rekey interval, ZERO = never; jittered down by up to 10%.
    pub rekey_time: Duration,
    /// ZERO = no DPD.
    pub dpd_delay: Duration,
    pub dpd_action: DpdAction,
    pub retransmit: RetransmitConfig,
    pub children: Vec<ChildConfig>,
}

impl fmt::Debug for IkeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IkeConfig")
            .field("name", &self.name)
            .field("local_addrs", &self.local_addrs)
            .field("remote_addrs", &self.remote_addrs)
            .field("local_port", &self.local_port)
            .field("remote_port", &self.remote_port)
            .field("local_id", &self.local_id)
            .field("remote_id", &self.remote_id)
            .field("psk", &"<redacted>")
            .field("proposals", &self.proposals)
            .field("start_action", &self.start_action)
            .field("encap_always", &self.encap_always)
            .field("rekey_time", &self.rekey_time)
            .field("dpd_delay", &self.dpd_delay)
            .field("dpd_action", &self.dpd_action)
            .field("retransmit", &self.retransmit)
            .field("children", &self.children)
            .finish()
    }
}

/// A datagram to send. `data` carries no non-ESP marker: the driver prepends the 4 zero
/// bytes when sending from the NAT-T port (4500).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub data: Vec<u8>,
}

/// A traffic selector (address range, protocol, port range). Protocol 0 = any.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    pub ip_proto: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub start: IpAddr,
    pub end: IpAddr,
}

impl TrafficSelector {
    /// The selector covering a whole prefix, any protocol and port.
    pub fn from_prefix(p: &IpPrefix) -> TrafficSelector {
        let (start, end) = p.range();
        TrafficSelector {
            ip_proto: 0,
            start_port: 0,
            end_port: 65535,
            start,
            end,
        }
    }

    /// True if `ip` lies within the address range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (ip, self.start, self.end) {
            (IpAddr::V4(a), IpAddr::V4(s), IpAddr::V4(e)) => s <= a && a <= e,
            (IpAddr::V6(a), IpAddr::V6(s), IpAddr::V6(e)) => s <= a && a <= e,
            _ => false,
        }
    }

    /// The intersection of two selectors, if not empty (RFC 7296 2.9 narrowing).
    pub fn intersect(&self, other: &TrafficSelector) -> Option<TrafficSelector> {
        if self.start.is_ipv4() != other.start.is_ipv4() {
            return None;
        }
        let ip_proto = match (self.ip_proto, other.ip_proto) {
            (0, p) | (p, 0) => p,
            (a, b) if a == b => a,
            _ => return None,
        };
        let start_port = self.start_port.max(other.start_port);
        let end_port = self.end_port.min(other.end_port);
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        if start_port > end_port || start > end || start.is_ipv4() != end.is_ipv4() {
            return None;
        }
        Some(TrafficSelector {
            ip_proto,
            start_port,
            end_port,
            start,
            end,
        })
    }

    /// True if `other` lies entirely within `self`.
    pub fn covers(&self, other: &TrafficSelector) -> bool {
        self.intersect(other).as_ref() == Some(other)
    }
}

impl fmt::Display for TrafficSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match IpPrefix::from_range(self.start, self.end) {
            Some(p) => write!(f, "{}/{}", p.addr(), p.len())?,
            None => write!(f, "{}..{}", self.start, self.end)?,
        }
        if self.ip_proto != 0 || self.start_port != 0 || self.end_port != 65535 {
            write!(
                f,
                "[{}/{}-{}]",
                self.ip_proto, self.start_port, self.end_port
            )?;
        }
        Ok(())
    }
}

/// A negotiated CHILD SA, ready to be installed in the data plane (both directions).
#[derive(Clone)]
pub struct ChildSa {
    pub conn: String,
    pub child: String,
    pub spi_in: u32,
    pub spi_out: u32,
    pub encr: EncrAlg,
    pub integ: Option<IntegAlg>,
    pub esn: bool,
    /// The PFS group used when this SA was created (None for the first CHILD SA / no PFS).
    pub dh: Option<DhGroup>,
    /// For AES-GCM: key || 4-byte salt.
    pub encr_key_in: Zeroizing<Vec<u8>>,
    pub integ_key_in: Zeroizing<Vec<u8>>,
    pub encr_key_out: Zeroizing<Vec<u8>>,
    pub integ_key_out: Zeroizing<Vec<u8>>,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    /// ESP endpoints; with udp_encap the remote port is the peer's NAT-T port.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub udp_encap: bool,
    pub replay_window: u32,
    /// spi_in of the SA this one replaces (make-before-break): keep the old one for inbound
    /// until its ChildDown arrives.
    pub rekey_of: Option<u32>,
}

impl fmt::Debug for ChildSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSa")
            .field("conn", &self.conn)
            .field("child", &self.child)
            .field("spi_in", &format_args!("{:08x}", self.spi_in))
            .field("spi_out", &format_args!("{:08x}", self.spi_out))
            .field("encr", &self.encr)
            .field("integ", &self.integ)
            .field("esn", &self.esn)
            .field("dh", &self.dh)
            .field("keys", &"<redacted>")
            .field("local_ts", &self.local_ts)
            .field("remote_ts", &self.remote_ts)
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("udp_encap", &self.udp_encap)
            .field("replay_window", &self.replay_window)
            .field("rekey_of", &self.rekey_of)
            .finish()
    }
}

/// What the engine tells its driver.
#[derive(Clone)]
pub enum Event {
    IkeUp {
        conn: String,
        spi_i: u64,
        spi_r: u64,
        local: SocketAddr,
        remote: SocketAddr,
        encr: EncrAlg,
        integ: Option<IntegAlg>,
        prf: PrfAlg,
        dh: DhGroup,
        nat_detected: bool,
        /// True when this IKE SA replaces an older one (IKE rekey).
        rekeyed: bool,
    },
    IkeDown {
        conn: String,
        spi_i: u64,
        spi_r: u64,
        reason: String,
    },
    ChildUp(ChildSa),
    ChildDown {
        conn: String,
        child: String,
        spi_in: u32,
        spi_out: u32,
        reason: String,
    },
    /// IKE SA keys, only with `set_keylog(true)` (Wireshark's ikev2_decryption_table / tests).
    KeyLog {
        spi_i: u64,
        spi_r: u64,
        sk_d: Zeroizing<Vec<u8>>,
        sk_ai: Zeroizing<Vec<u8>>,
        sk_ar: Zeroizing<Vec<u8>>,
        sk_ei: Zeroizing<Vec<u8>>,
        sk_er: Zeroizing<Vec<u8>>,
        sk_pi: Zeroizing<Vec<u8>>,
        sk_pr: Zeroizing<Vec<u8>>,
        encr: EncrAlg,
        integ: Option<IntegAlg>,
    },
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::IkeUp {
                conn,
                spi_i,
                spi_r,
                local,
                remote,
                encr,
                integ,
                prf,
                dh,
                nat_detected,
                rekeyed,
            } => f
                .debug_struct("IkeUp")
                .field("conn", conn)
                .field("spi_i", &format_args!("{spi_i:016x}"))
                .field("spi_r", &format_args!("{spi_r:016x}"))
                .field("local", local)
                .field("remote", remote)
                .field("encr", encr)
                .field("integ", integ)
                .field("prf", prf)
                .field("dh", dh)
                .field("nat_detected", nat_detected)
                .field("rekeyed", rekeyed)
                .finish(),
            Event::IkeDown {
                conn,
                spi_i,
                spi_r,
                reason,
            } => f
                .debug_struct("IkeDown")
                .field("conn", conn)
                .field("spi_i", &format_args!("{spi_i:016x}"))
                .field("spi_r", &format_args!("{spi_r:016x}"))
                .field("reason", reason)
                .finish(),
            Event::ChildUp(c) => f.debug_tuple("ChildUp").field(c).finish(),
            Event::ChildDown {
                conn,
                child,
                spi_in,
                spi_out,
                reason,
            } => f
                .debug_struct("ChildDown")
                .field("conn", conn)
                .field("child", child)
                .field("spi_in", &format_args!("{spi_in:08x}"))
                .field("spi_out", &format_args!("{spi_out:08x}"))
                .field("reason", reason)
                .finish(),
            Event::KeyLog {
                spi_i,
                spi_r,
                encr,
                integ,
                ..
            } => f
                .debug_struct("KeyLog")
                .field("spi_i", &format_args!("{spi_i:016x}"))
                .field("spi_r", &format_args!("{spi_r:016x}"))
                .field("encr", encr)
                .field("integ", integ)
                .field("keys", &"<redacted>")
                .finish(),
        }
    }
}

/// Errors of the operator-facing engine calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IkeError {
    UnknownConnection(String),
    /// The connection has no remote address to initiate to (remote_addrs = %any).
    NoRemoteAddress(String),
    /// The connection has no established IKE SA.
    NotEstablished(String),
}

impl fmt::Display for IkeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IkeError::UnknownConnection(c) => write!(f, "no connection named '{c}'"),
            IkeError::NoRemoteAddress(c) => {
                write!(
                    f,
                    "connection '{c}' has no remote address to initiate to (remote_addrs = %any)"
                )
            }
            IkeError::NotEstablished(c) => write!(f, "connection '{c}' has no established IKE SA"),
        }
    }
}

impl std::error::Error for IkeError {}

/// Status of one configured connection (see the status JSON in interface.md).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnStatus {
    pub name: String,
    /// "established" | "connecting" | "rekeying" | "deleting" | "down"
    pub state: String,
    pub ike: Option<IkeStatus>,
    pub children: Vec<ChildStatus>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IkeStatus {
    /// 16 hex digits.
    pub spi_i: String,
    pub spi_r: String,
    /// "ip:port"
    pub local: String,
    pub remote: String,
    pub encr: String,
    pub integ: Option<String>,
    pub prf: String,
    pub dh: String,
    pub nat_detected: bool,
    pub established_secs: u64,
    /// None when rekeying is off.
    pub rekey_in_secs: Option<u64>,
    /// We are the original initiator of this IKE SA.
    pub initiator: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChildStatus {
    pub name: String,
    /// "installed" | "rekeying" | "deleting"
    pub state: String,
    /// 8 hex digits.
    pub spi_in: String,
    pub spi_out: String,
    pub encr: String,
    pub integ: Option<String>,
    /// "udp" | "none"
    pub encap: String,
    pub installed_secs: u64,
    pub rekey_in_secs: Option<u64>,
    /// Negotiated (narrowed) traffic selectors.
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
    /// PFS group of the last key exchange, if any.
    pub dh: Option<String>,
    pub esn: bool,
    // Traffic counters live in the data plane; the driver merges them in by spi_in.
}

/// Counters of the engine (monotonic).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    pub received: u64,
    pub sent: u64,
    /// Unparseable datagrams or bad payload content.
    pub malformed_dropped: u64,
    /// Messages for an IKE SA we do not have.
    pub unknown_spi_dropped: u64,
    /// SK payloads that failed decryption / ICV check.
    pub decrypt_failed: u64,
    /// Requests with an unexpected message ID (neither new nor a retransmission).
    pub bad_msgid_dropped: u64,
    /// Requests we retransmitted.
    pub retransmits: u64,
    /// Retransmitted requests of the peer answered from the response cache.
    pub responses_resent: u64,
    pub auth_failures: u64,
    pub no_proposal: u64,
    pub ts_unacceptable: u64,
    pub invalid_ke_sent: u64,
    pub cookies_sent: u64,
    pub ike_established: u64,
    pub ike_rekeyed: u64,
    pub child_established: u64,
    pub child_rekeyed: u64,
    pub dpd_sent: u64,
    pub peers_dead: u64,
}
