//! Why things happen, as types: why an IKE SA or a CHILD SA went down, why an attempt failed,
//! why a negotiation was refused. The driver decides on these (metrics, restarts) by matching,
//! never by reading text; `Display` gives the log line.

use super::codec::{self, notify as n};
use super::Identity;
use crate::crypto::CryptoError;
use std::fmt;
use std::net::SocketAddr;

/// What one of our requests was about (the exchange in flight).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    IkeSaInit,
    IkeAuth,
    CreateChild,
    RekeyChild,
    RekeyIke,
    DeleteChild,
    DeleteIke,
    Dpd,
}

impl ExchangeKind {
    /// strongSwan-style name: "IKE_SA_INIT", "CREATE_CHILD_SA (rekey IKE)", "INFORMATIONAL (DPD)".
    pub fn name(self) -> &'static str {
        match self {
            ExchangeKind::IkeSaInit => "IKE_SA_INIT",
            ExchangeKind::IkeAuth => "IKE_AUTH",
            ExchangeKind::CreateChild => "CREATE_CHILD_SA",
            ExchangeKind::RekeyChild => "CREATE_CHILD_SA (rekey CHILD)",
            ExchangeKind::RekeyIke => "CREATE_CHILD_SA (rekey IKE)",
            ExchangeKind::DeleteChild => "INFORMATIONAL (delete CHILD)",
            ExchangeKind::DeleteIke => "INFORMATIONAL (delete IKE)",
            ExchangeKind::Dpd => "INFORMATIONAL (DPD)",
        }
    }

    /// Runs on an SA that is up (as opposed to setting one up or tearing it down).
    pub fn on_established_sa(self) -> bool {
        matches!(
            self,
            ExchangeKind::CreateChild
                | ExchangeKind::RekeyChild
                | ExchangeKind::RekeyIke
                | ExchangeKind::DeleteChild
                | ExchangeKind::Dpd
        )
    }
}

impl fmt::Display for ExchangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which kind of SA a proposal negotiation was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProposalKind {
    Ike,
    /// The proposals of a rekeyed IKE SA (CREATE_CHILD_SA).
    IkeRekey,
    Esp,
}

impl ProposalKind {
    fn name(self) -> &'static str {
        match self {
            ProposalKind::Ike => "IKE",
            ProposalKind::IkeRekey => "IKE rekey",
            ProposalKind::Esp => "ESP",
        }
    }
}

/// Proposals that had nothing in common, both sides in strongSwan notation
/// (`AES_CBC_256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024, ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalMismatch {
    pub kind: ProposalKind,
    /// What we offered (as initiator) or have configured (as responder).
    pub ours: String,
    /// What the peer offered; None when the peer refused our offer (it does not say why).
    pub theirs: Option<String>,
}

impl fmt::Display for ProposalMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.theirs {
            Some(t) => write!(
                f,
                "no acceptable {} proposal: received {t}, configured {}",
                self.kind.name(),
                self.ours
            ),
            None => write!(
                f,
                "peer sent NO_PROPOSAL_CHOSEN for our {} proposals {}",
                self.kind.name(),
                self.ours
            ),
        }
    }
}

/// Why authentication failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// The peer answered our AUTH with AUTHENTICATION_FAILED.
    RejectedByPeer,
    /// The peer's AUTH payload does not verify with our PSK.
    PeerAuthInvalid,
    /// The peer proved an identity other than the configured remote_id.
    PeerIdentity { got: String, want: Identity },
    /// Responder: no configured connection's PSK and identities verify the peer's AUTH.
    NoMatchingPsk {
        peer_id: Option<Identity>,
        peer: SocketAddr,
    },
    /// Responder: the PSK selected connection `conn`, whose IKE proposals do not allow the
    /// algorithms IKE_SA_INIT negotiated (under another connection matching the addresses).
    IkeAlgsNotAllowed { conn: String, algs: String },
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthFailure::RejectedByPeer => f.write_str(
                "authentication failed: peer sent AUTHENTICATION_FAILED (PSK or identity mismatch)",
            ),
            AuthFailure::PeerAuthInvalid => f.write_str(
                "authentication failed: peer's AUTH payload does not verify with our PSK",
            ),
            AuthFailure::PeerIdentity { got, want } => write!(
                f,
                "authentication failed: peer identity '{got}' is not the configured '{want}'"
            ),
            AuthFailure::NoMatchingPsk { peer_id, peer } => {
                let who = peer_id
                    .as_ref()
                    .map_or_else(|| "<no valid IDi>".to_string(), |i| i.to_string());
                write!(
                    f,
                    "authentication of '{who}' ({peer}) failed: PSK or identity mismatch"
                )
            }
            AuthFailure::IkeAlgsNotAllowed { conn, algs } => write!(
                f,
                "authentication failed: the peer authenticated for connection '{conn}', \
                 whose IKE proposals do not allow the negotiated {algs}"
            ),
        }
    }
}

/// Why setting up (or keeping) an SA failed: the last error a connection reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Our request went unanswered through every retransmission.
    PeerNotResponding {
        peer: SocketAddr,
        exchange: ExchangeKind,
        retransmits: u32,
    },
    AuthFailed(AuthFailure),
    NoProposalChosen(ProposalMismatch),
    /// No CHILD SA: the traffic selectors had nothing in common (both sides' views).
    TsUnacceptable {
        ours: String,
        theirs: Option<String>,
    },
    /// The peer answered with an error notify.
    PeerError {
        exchange: ExchangeKind,
        notify: u16,
    },
    /// The peer's answer broke the protocol.
    Protocol {
        exchange: ExchangeKind,
        what: &'static str,
    },
    /// The key exchange or the keying failed.
    Crypto {
        exchange: ExchangeKind,
        error: CryptoError,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::PeerNotResponding {
                peer,
                exchange,
                retransmits,
            } => write!(
                f,
                "peer {peer} not responding ({retransmits} retransmits of {exchange} exhausted)"
            ),
            Failure::AuthFailed(a) => a.fmt(f),
            Failure::NoProposalChosen(m) => m.fmt(f),
            Failure::TsUnacceptable {
                ours,
                theirs: Some(t),
            } => write!(
                f,
                "traffic selectors unacceptable: received {t}, configured {ours}"
            ),
            Failure::TsUnacceptable { ours, theirs: None } => {
                write!(f, "peer sent TS_UNACCEPTABLE for {ours}")
            }
            Failure::PeerError { exchange, notify } => write!(
                f,
                "{} failed: peer sent {}",
                exchange.name(),
                codec::notify_name(*notify)
            ),
            Failure::Protocol { exchange, what } => write!(f, "{} failed: {what}", exchange.name()),
            Failure::Crypto { exchange, error } => {
                write!(f, "{} failed: {error}", exchange.name())
            }
        }
    }
}

/// Why an IKE SA went down (`Event::IkeDown`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    Failed(Failure),
    /// The peer sent a Delete for it.
    DeletedByPeer,
    /// Replaced by a rekeyed IKE SA.
    Rekeyed,
    /// `terminate` by the operator.
    Terminated,
    /// `terminate_all` (daemon shutdown).
    Shutdown,
    /// The connection changed or disappeared in a reload.
    ConfigChanged,
    /// Both ends initiated at once; this one of the two is dropped.
    Duplicate,
    /// The peer started over (INITIAL_CONTACT in a new IKE_AUTH).
    ReplacedByInitialContact,
}

impl DownReason {
    /// The peer stopped answering on an SA that was up: a dead peer detection that failed.
    /// A connection that never came up is not one.
    pub fn is_dead_peer(&self) -> bool {
        matches!(
            self,
            DownReason::Failed(Failure::PeerNotResponding { exchange, .. })
                if exchange.on_established_sa()
        )
    }

    pub fn failure(&self) -> Option<&Failure> {
        match self {
            DownReason::Failed(f) => Some(f),
            _ => None,
        }
    }
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::Failed(x) => x.fmt(f),
            DownReason::DeletedByPeer => f.write_str("deleted by peer"),
            DownReason::Rekeyed => f.write_str("rekeyed"),
            DownReason::Terminated => f.write_str("terminated locally"),
            DownReason::Shutdown => f.write_str("terminated locally (shutdown)"),
            DownReason::ConfigChanged => f.write_str("configuration changed"),
            DownReason::Duplicate => f.write_str("duplicate IKE_SA (both ends initiated)"),
            DownReason::ReplacedByInitialContact => {
                f.write_str("replaced (peer sent INITIAL_CONTACT)")
            }
        }
    }
}

impl From<Failure> for DownReason {
    fn from(f: Failure) -> DownReason {
        DownReason::Failed(f)
    }
}

/// Why a CHILD SA was removed (`Event::ChildDown`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChildDownReason {
    /// Replaced by its rekeyed successor.
    Rekeyed,
    /// Left behind by an IKE rekey (normally children move to the new IKE SA).
    IkeRekeyed,
    /// We deleted it.
    Deleted,
    DeletedByPeer,
    /// The peer answered our rekey with CHILD_SA_NOT_FOUND.
    NotFoundAtPeer,
    /// It reached its hard volume or packet limit (life_bytes / life_packets).
    LifetimeExpired,
    /// Its IKE SA went down.
    Ike(DownReason),
}

impl fmt::Display for ChildDownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildDownReason::Rekeyed => f.write_str("rekeyed"),
            ChildDownReason::IkeRekeyed => f.write_str("IKE_SA rekeyed"),
            ChildDownReason::Deleted => f.write_str("deleted"),
            ChildDownReason::DeletedByPeer => f.write_str("deleted by peer"),
            ChildDownReason::NotFoundAtPeer => {
                f.write_str("peer does not know it (CHILD_SA_NOT_FOUND)")
            }
            ChildDownReason::LifetimeExpired => {
                f.write_str("hard lifetime (life_bytes/life_packets) reached")
            }
            ChildDownReason::Ike(r) => r.fmt(f),
        }
    }
}

/// Why a responder refused a proposed SA; `notify` is what goes on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NegotiationError {
    NoProposal(ProposalMismatch),
    /// A proposal matched, but the selectors did not.
    TsUnacceptable {
        received: String,
        configured: String,
    },
}

impl NegotiationError {
    /// The error notify answering the request.
    pub fn notify(&self) -> u16 {
        match self {
            NegotiationError::NoProposal(_) => n::NO_PROPOSAL_CHOSEN,
            NegotiationError::TsUnacceptable { .. } => n::TS_UNACCEPTABLE,
        }
    }
}

impl From<NegotiationError> for Failure {
    fn from(e: NegotiationError) -> Failure {
        match e {
            NegotiationError::NoProposal(m) => Failure::NoProposalChosen(m),
            NegotiationError::TsUnacceptable {
                received,
                configured,
            } => Failure::TsUnacceptable {
                ours: configured,
                theirs: Some(received),
            },
        }
    }
}

impl fmt::Display for NegotiationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Failure::from(self.clone()).fmt(f)
    }
}

impl std::error::Error for NegotiationError {}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_peers_that_die_on_an_up_sa_are_dead_peers() {
        let dead = |exchange| {
            DownReason::Failed(Failure::PeerNotResponding {
                peer: "192.0.2.2:500".parse().unwrap(),
                exchange,
                retransmits: 5,
            })
        };
        assert!(dead(ExchangeKind::Dpd).is_dead_peer());
        assert!(dead(ExchangeKind::RekeyIke).is_dead_peer());
        assert!(!dead(ExchangeKind::IkeSaInit).is_dead_peer());
        assert!(!dead(ExchangeKind::IkeAuth).is_dead_peer());
        assert!(!DownReason::DeletedByPeer.is_dead_peer());
        assert_eq!(
            dead(ExchangeKind::Dpd).to_string(),
            "peer 192.0.2.2:500 not responding (5 retransmits of INFORMATIONAL (DPD) exhausted)"
        );
    }

    #[test]
    fn negotiation_errors_name_their_notify() {
        let e = NegotiationError::NoProposal(ProposalMismatch {
            kind: ProposalKind::Esp,
            ours: "AES_CBC_256/HMAC_SHA1_96/NO_EXT_SEQ".into(),
            theirs: Some("3DES_CBC/HMAC_SHA1_96/NO_EXT_SEQ".into()),
        });
        assert_eq!(e.notify(), n::NO_PROPOSAL_CHOSEN);
        assert!(e.to_string().contains("received 3DES_CBC"), "{e}");
        let t = NegotiationError::TsUnacceptable {
            received: "10.9.0.0/16 === 10.8.0.0/16".into(),
            configured: "10.1.0.0/24 === 10.2.0.0/24".into(),
        };
        assert_eq!(t.notify(), n::TS_UNACCEPTABLE);
    }
}
