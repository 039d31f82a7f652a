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
//!   the old SA is removed only by its own `ChildDown` (reason `ChildDownReason::Rekeyed`).
//! - IKE rekey: `IkeUp { rekeyed: true }` for the new SA, then `IkeDown` with
//!   `DownReason::Rekeyed` for the old one. The children moved to the new SA: no ChildDown
//!   is emitted for them.
//! - `IkeDown` is always preceded by `ChildDown` for every child that was still installed.
//! - `PeerMoved`: behind a NAT the peer's address changed; send the ESP of the listed CHILD
//!   SAs there from now on.
//!
//! Inside: `engine` keeps the SA table, dispatch and timers; `message` is the wire layer
//! (protection, retransmission, response cache); `exchange/` holds one unit per exchange.

pub mod codec;
mod cookie_gate;
mod ctx;
mod engine;
mod event;
mod exchange;
mod identity;
pub mod keys;
mod lifecycle;
mod message;
mod reason;
mod sa;
mod select;
mod status;
mod table;
mod unknown_spi;

pub use cookie_gate::{CookieGate, Screened};
pub use engine::{Engine, HalfOpenLimits};
pub use event::{ChildSa, Event};
pub use exchange::child_sa::MAX_TS_PER_CHILD;
pub use identity::{Identity, IdentityError};
pub use keys::IkeAlgs;
pub use reason::{
    AuthFailure, ChildDownReason, DownReason, ExchangeKind, Failure, IkeError, NegotiationError,
    ProposalKind, ProposalMismatch,
};
pub use select::EspAlgs;
pub use status::{
    ChildState, ChildStatus, ConnState, ConnStatus, EngineStats, FragmentStatus, IkeSaStatus,
    InFlightStatus, LastError,
};
pub use unknown_spi::{BURST as INVALID_SPI_BURST, PER_SECOND as INVALID_SPI_PER_SECOND};

use crate::crypto::proposal::{EspProposal, IkeProposal};
use crate::prefix::IpPrefix;
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

/// Whether to use IKE fragmentation (RFC 7383), strongSwan's `fragmentation` values.
/// Fragments the peer sends are reassembled whatever this says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragmentationMode {
    /// Announce support; fragment our messages above `fragment_size` if the peer does too.
    Yes,
    /// Announce support, never fragment our own messages.
    Accept,
    /// IKEv2 has nothing to force before IKE_SA_INIT: the same as `Yes` (as in strongSwan).
    Force,
    /// Do not announce support (and so never fragment).
    No,
}

/// IKE fragmentation settings of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentConfig {
    pub mode: FragmentationMode,
    /// Largest IP datagram one fragment may make, IP and UDP headers included (strongSwan's
    /// charon.fragment_size).
    pub size: u16,
}

/// strongSwan's charon.fragment_size default.
pub const DEFAULT_FRAGMENT_SIZE: u16 = 1280;

impl Default for FragmentConfig {
    fn default() -> Self {
        FragmentConfig {
            mode: FragmentationMode::Yes,
            size: DEFAULT_FRAGMENT_SIZE,
        }
    }
}

impl FragmentConfig {
    /// We announce IKEV2_FRAGMENTATION_SUPPORTED.
    pub fn announce(&self) -> bool {
        self.mode != FragmentationMode::No
    }

    /// We split our own messages (once the peer announced support).
    pub fn send(&self) -> bool {
        matches!(self.mode, FragmentationMode::Yes | FragmentationMode::Force)
    }
}

/// Volume and packet lifetimes of a CHILD SA and the jitter of its rekeys, with
/// strongSwan's names and meaning; a limit of 0 is off. Counted per direction: the busier
/// one decides. The soft limits (`rekey_*`) start a rekey, jittered down by up to
/// `life_* - rekey_*` so that two ends do not rekey in step; the hard ones (`life_*`)
/// delete the SA if it is still in use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChildLimits {
    pub rekey_bytes: u64,
    pub life_bytes: u64,
    pub rekey_packets: u64,
    pub life_packets: u64,
    /// Most that is taken off `rekey_time` at random; None = 10% of it (strongSwan's
    /// default: life_time - rekey_time with life_time 110% of rekey_time).
    pub rand_time: Option<Duration>,
}

/// One configured CHILD SA.
#[derive(Clone, Debug, PartialEq)]
pub struct ChildConfig {
    pub name: String,
    pub local_ts: Vec<IpPrefix>,
    pub remote_ts: Vec<IpPrefix>,
    pub proposals: Vec<EspProposal>,
    /// CHILD SA rekey interval (jittered down by `limits.rand_time`); ZERO = never.
    pub rekey_time: Duration,
    pub replay_window: u32,
    pub limits: ChildLimits,
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
    pub fragmentation: FragmentConfig,
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
            .field("fragmentation", &self.fragmentation)
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
