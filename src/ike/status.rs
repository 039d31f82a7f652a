//! The engine's status as plain typed values (integers, addresses, enums). Rendering to text,
//! JSON and metrics happens in `crate::control`.

use super::keys::IkeAlgs;
use super::message::InFlight;
use super::reason::{ExchangeKind, Failure};
use super::sa::{IkeSa, IkeState};
use super::select::EspAlgs;
use super::TrafficSelector;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use super::sa::ChildState;

/// State of a connection, from its best IKE SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnState {
    /// No IKE SA.
    Down,
    /// IKE_SA_INIT / IKE_AUTH in progress.
    Connecting,
    Established,
    /// Established, with a rekey of the IKE SA in flight.
    Rekeying,
    /// Delete sent, waiting for the answer.
    Deleting,
}

impl ConnState {
    pub const ALL: [ConnState; 5] = [
        ConnState::Down,
        ConnState::Connecting,
        ConnState::Established,
        ConnState::Rekeying,
        ConnState::Deleting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::Down => "down",
            ConnState::Connecting => "connecting",
            ConnState::Established => "established",
            ConnState::Rekeying => "rekeying",
            ConnState::Deleting => "deleting",
        }
    }

    /// Traffic can flow (an established IKE SA, possibly mid-rekey).
    pub fn is_up(self) -> bool {
        matches!(self, ConnState::Established | ConnState::Rekeying)
    }
}

impl fmt::Display for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One configured connection.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnStatus {
    pub name: String,
    pub state: ConnState,
    /// Keyed IKE SA (after IKE_SA_INIT), if any.
    pub ike: Option<IkeSaStatus>,
    pub children: Vec<ChildStatus>,
    /// The request of ours in flight on the connection's IKE SA (while connecting: which
    /// step it waits for, and how often it was sent again).
    pub in_flight: Option<InFlightStatus>,
    /// When the connection will be initiated again (after a failure, or keep-up).
    pub next_attempt_in: Option<Duration>,
    /// The last failure since the connection was last established.
    pub last_error: Option<LastError>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IkeSaStatus {
    pub spi_i: u64,
    pub spi_r: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub algs: IkeAlgs,
    pub nat_detected: bool,
    /// Zero before IKE_AUTH completed.
    pub established_secs: u64,
    /// None when rekeying is off.
    pub rekey_in_secs: Option<u64>,
    /// We are the original initiator of this IKE SA.
    pub initiator: bool,
    pub fragments: FragmentStatus,
}

/// IKE fragmentation (RFC 7383) on one IKE SA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragmentStatus {
    /// Both ends announced support in IKE_SA_INIT.
    pub negotiated: bool,
    /// Fragments sent, retransmissions included.
    pub sent: u64,
    /// Fragments received that passed their integrity check.
    pub received: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChildStatus {
    pub name: String,
    pub state: ChildState,
    pub spi_in: u32,
    pub spi_out: u32,
    /// Negotiated algorithms; `algs.dh` is the PFS group of the last key exchange.
    pub algs: EspAlgs,
    /// ESP in UDP 4500.
    pub udp_encap: bool,
    pub installed_secs: u64,
    pub rekey_in_secs: Option<u64>,
    /// Negotiated (narrowed) traffic selectors.
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    // Traffic counters live in the data plane; the driver merges them in by spi_in.
}

/// A request of ours waiting for its response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlightStatus {
    pub exchange: ExchangeKind,
    pub msg_id: u32,
    /// Times it was sent again so far.
    pub retransmits: u32,
    /// Until the next retransmission (or until the peer is declared dead).
    pub next_retransmit_in: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastError {
    pub failure: Failure,
    pub ago: Duration,
}

/// Counters of the engine (monotonic).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub received: u64,
    pub sent: u64,
    /// Unparseable datagrams or bad payload content.
    pub malformed_dropped: u64,
    /// Messages for an IKE SA we do not have.
    pub unknown_spi_dropped: u64,
    /// Of those, requests answered with an unprotected INVALID_IKE_SPI (RFC 7296 2.21.4).
    pub invalid_spi_sent: u64,
    /// Of those, requests left unanswered because the global answer rate was used up.
    pub invalid_spi_limited: u64,
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
    /// CHILD SAs whose narrowed selectors exceeded the per-child bound (responder: narrowed
    /// further; initiator: the answer refused).
    pub ts_over_limit: u64,
    pub invalid_ke_sent: u64,
    pub cookies_sent: u64,
    /// Of those, sent by the daemon's socket readers (`CookieGate::screen`): requests the
    /// engine never saw.
    pub cookies_sent_by_gate: u64,
    /// IKE_SA_INITs dropped because the half-open caps (in all, per address) were reached.
    pub half_open_dropped: u64,
    pub ike_established: u64,
    pub ike_rekeyed: u64,
    pub child_established: u64,
    pub child_rekeyed: u64,
    /// CHILD SAs deleted at their hard volume or packet limit.
    pub child_expired: u64,
    pub dpd_sent: u64,
    pub peers_dead: u64,
    /// IKE fragments (RFC 7383) sent, retransmissions included.
    pub fragments_sent: u64,
    /// Fragments that passed their integrity check and were kept for reassembly.
    pub fragments_received: u64,
    /// Verified fragments not kept: duplicates, stale transmissions, over the count or
    /// memory bound, or timed out before the message was whole.
    pub fragments_dropped: u64,
    /// Messages put together from fragments.
    pub fragments_reassembled: u64,
}

/// Where a connection stands beyond its SAs: the next attempt and the last failure.
pub(crate) struct Attempts<'a> {
    pub next_attempt: Option<Instant>,
    pub last_error: Option<&'a (Failure, Instant)>,
}

fn secs(from: Instant, to: Instant) -> u64 {
    to.saturating_duration_since(from).as_secs()
}

/// The status of connection `name` from its best IKE SA (None: no SA).
pub(crate) fn conn_status(
    name: &str,
    best: Option<&IkeSa>,
    attempts: Attempts<'_>,
    now: Instant,
) -> ConnStatus {
    let next_attempt_in = attempts
        .next_attempt
        .map(|t| t.saturating_duration_since(now));
    let last_error = attempts.last_error.map(|(f, at)| LastError {
        failure: f.clone(),
        ago: now.saturating_duration_since(*at),
    });
    let Some(sa) = best else {
        return ConnStatus {
            name: name.to_string(),
            state: ConnState::Down,
            ike: None,
            children: vec![],
            in_flight: None,
            next_attempt_in,
            last_error,
        };
    };
    let rekeying = sa
        .in_flight
        .as_ref()
        .is_some_and(|p| p.kind() == ExchangeKind::RekeyIke);
    let state = match sa.state {
        IkeState::Established if rekeying => ConnState::Rekeying,
        IkeState::Established => ConnState::Established,
        IkeState::Deleting => ConnState::Deleting,
        _ => ConnState::Connecting,
    };
    let ike = sa.algs.map(|algs| IkeSaStatus {
        spi_i: sa.spi_i,
        spi_r: sa.spi_r,
        local: sa.local,
        remote: sa.remote,
        algs,
        nat_detected: sa.nat_detected,
        established_secs: sa.established_at.map_or(0, |t| secs(t, now)),
        rekey_in_secs: sa.rekey_at.map(|t| secs(now, t)),
        initiator: sa.initiator,
        fragments: FragmentStatus {
            negotiated: sa.frags.negotiated,
            sent: sa.frags.sent,
            received: sa.frags.received,
        },
    });
    let children = sa
        .children
        .iter()
        .map(|c| ChildStatus {
            name: c.name.clone(),
            state: c.state,
            spi_in: c.spi_in,
            spi_out: c.spi_out,
            algs: c.algs,
            udp_encap: c.udp_encap,
            installed_secs: secs(c.installed_at, now),
            rekey_in_secs: c.rekey_at.map(|t| secs(now, t)),
            local_ts: c.local_ts.clone(),
            remote_ts: c.remote_ts.clone(),
        })
        .collect();
    ConnStatus {
        name: name.to_string(),
        state,
        ike,
        children,
        in_flight: sa.in_flight.as_ref().map(|p| in_flight(p, now)),
        next_attempt_in,
        last_error,
    }
}

fn in_flight(p: &InFlight, now: Instant) -> InFlightStatus {
    InFlightStatus {
        exchange: p.kind(),
        msg_id: p.msg_id,
        retransmits: p.retransmits,
        next_retransmit_in: p.next_at.saturating_duration_since(now),
    }
}
