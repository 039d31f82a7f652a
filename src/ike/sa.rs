//! IKE SA and CHILD SA state held by the engine.

use super::keys::{self, IkeAlgs, IkeKeys, IkeSaKeys, SkCrypto};
use super::message::{Fragments, InFlight, ResponseCache};
use super::select::EspAlgs;
use super::{Identity, IkeConfig, TrafficSelector};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use zeroize::Zeroizing;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IkeState {
    /// Initiator: IKE_SA_INIT sent.
    InitSent,
    /// Initiator: IKE_AUTH sent.
    AuthSent,
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH.
    InitReplied,
    Established,
    /// Replaced by a rekeyed IKE SA (children moved); waiting for the Delete exchange.
    Rekeyed,
    /// We sent a Delete for it; events already emitted.
    Deleting,
}

/// State of a CHILD SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChildState {
    Installed,
    /// Our CREATE_CHILD_SA rekey of it is in flight.
    Rekeying,
    /// Replaced by a new SA; the Delete exchange for it is pending.
    Rekeyed,
    /// We sent a Delete for it.
    Deleting,
}

impl ChildState {
    pub const ALL: [ChildState; 4] = [
        ChildState::Installed,
        ChildState::Rekeying,
        ChildState::Rekeyed,
        ChildState::Deleting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChildState::Installed => "installed",
            ChildState::Rekeying => "rekeying",
            ChildState::Rekeyed => "rekeyed",
            ChildState::Deleting => "deleting",
        }
    }
}

impl std::fmt::Display for ChildState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) struct Child {
    pub name: String,
    pub spi_in: u32,
    pub spi_out: u32,
    pub algs: EspAlgs,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    pub installed_at: Instant,
    pub rekey_at: Option<Instant>,
    pub state: ChildState,
    pub udp_encap: bool,
    /// Last inbound ESP packet reported by the data plane.
    pub last_activity: Option<Instant>,
    /// Set when we answered the peer's rekey of this SA: (peer Ni, our Nr, new spi_in), to
    /// resolve a simultaneous rekey by the lowest nonce (RFC 7296 2.8.1).
    pub peer_rekeyed: Option<(Vec<u8>, Vec<u8>, u32)>,
    /// Deadline to delete an SA replaced by the peer's rekey if the peer never deletes it.
    pub expire_at: Option<Instant>,
    /// Volume and packet limits: the jittered soft ones, the hard ones (0 = off).
    pub usage: UsageLimits,
}

/// A CHILD SA's volume and packet limits as they apply to it, and what they set off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct UsageLimits {
    /// Rekey at this many bytes / packets (jittered down from rekey_bytes/rekey_packets).
    pub rekey_bytes: u64,
    pub rekey_packets: u64,
    pub life_bytes: u64,
    pub life_packets: u64,
    /// A soft limit queued a rekey already.
    pub rekey_started: bool,
}

/// Work queued until the message window is free.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Task {
    CreateChild(String),
    /// Rekey the CHILD SA with this spi_in; optional DH group demanded by INVALID_KE.
    RekeyChild(u32, Option<u16>),
    RekeyIke(Option<u16>),
    DeleteChild(u32),
    /// Tell the peer about a CHILD SA we removed already (its hard lifetime ran out).
    DeleteExpired(u32),
    Dpd,
}

/// Queues a rekey unless a rekey of the same SA is queued already (whatever its DH group).
pub(crate) fn queue_rekey(tasks: &mut VecDeque<Task>, task: Task) {
    let same_sa = |t: &Task| match (t, &task) {
        (Task::RekeyIke(_), Task::RekeyIke(_)) => true,
        (Task::RekeyChild(a, _), Task::RekeyChild(b, _)) => a == b,
        _ => *t == task,
    };
    if !tasks.iter().any(same_sa) {
        tasks.push_back(task);
    }
}

pub(crate) struct IkeSa {
    /// The configuration this SA runs under; `cfg.name` is the connection's name. For a
    /// responder before IKE_AUTH: the first candidate; the PSK decides in IKE_AUTH.
    pub cfg: Arc<IkeConfig>,
    /// Original initiator of this IKE SA (sets the I flag and picks SK_ei/SK_ai outbound).
    pub initiator: bool,
    pub spi_i: u64,
    pub spi_r: u64,
    pub state: IkeState,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub algs: Option<IkeAlgs>,
    pub keys: Option<IkeKeys>,
    /// The keyed SK ciphers (about 2 KiB with AES-256-CBC): let go while the SA is idle
    /// (`shed_idle`), rebuilt from `keys` by `ensure_sk` when a message needs them.
    pub sk: Option<SkCrypto>,
    pub nonce_i: Vec<u8>,
    pub nonce_r: Vec<u8>,
    /// IKE_SA_INIT request and response as sent/received, for the AUTH payloads (emptied
    /// once the SA is established: nothing reads them after IKE_AUTH).
    pub init_req: Vec<u8>,
    pub init_resp: Vec<u8>,
    /// Responder: the (peer address, SPIi) under which retransmitted IKE_SA_INITs find it.
    pub init_key: Option<(SocketAddr, u64)>,
    pub nat_detected: bool,
    pub udp_encap: bool,
    /// Message ID of our next request.
    pub next_msg_id: u32,
    /// Message ID we expect in the peer's next request.
    pub peer_msg_id: u32,
    /// The response to the peer's last request, re-sent when that request is retransmitted.
    pub responses: ResponseCache,
    /// Our request waiting for its response (the window is one message). Boxed: most
    /// SAs are idle, and this is the largest part of an IkeSa.
    pub in_flight: Option<Box<InFlight>>,
    /// IKE fragmentation: negotiated or not, fragments being reassembled, counters.
    pub frags: Fragments,
    pub tasks: VecDeque<Task>,
    pub children: Vec<Child>,
    pub established_at: Option<Instant>,
    pub rekey_at: Option<Instant>,
    /// Last authenticated message from the peer (DPD).
    pub last_inbound: Instant,
    /// Half-open responder SAs and replaced SAs are dropped at this time.
    pub expire_at: Option<Instant>,
    /// This SA replaced another one (IkeUp.rekeyed).
    pub rekeyed: bool,
    /// The identity the peer proved in IKE_AUTH (None before): with its address, who the
    /// peer is for INITIAL_CONTACT and duplicate SAs (a hub has many peers per connection).
    pub peer_id: Option<Identity>,
}

impl IkeSa {
    /// A fresh SA: no keys, no exchange in flight, no children; callers fill in the rest.
    pub fn new(
        cfg: Arc<IkeConfig>,
        initiator: bool,
        (spi_i, spi_r): (u64, u64),
        state: IkeState,
        (local, remote): (SocketAddr, SocketAddr),
        now: Instant,
    ) -> IkeSa {
        IkeSa {
            cfg,
            initiator,
            spi_i,
            spi_r,
            state,
            local,
            remote,
            algs: None,
            keys: None,
            sk: None,
            nonce_i: Vec::new(),
            nonce_r: Vec::new(),
            init_req: Vec::new(),
            init_resp: Vec::new(),
            init_key: None,
            nat_detected: false,
            udp_encap: false,
            next_msg_id: 0,
            peer_msg_id: 0,
            responses: ResponseCache::default(),
            in_flight: None,
            frags: Fragments::default(),
            tasks: VecDeque::new(),
            children: Vec::new(),
            established_at: None,
            rekey_at: None,
            last_inbound: now,
            expire_at: None,
            rekeyed: false,
            peer_id: None,
        }
    }

    /// The PSK AUTH data (RFC 7296 2.15) of this SA's initiator (`of_initiator`) or responder
    /// for the ID payload body `id_body`: each side signs its own first message, the other
    /// side's nonce and its ID with its SK_p. None before the SA is keyed.
    pub fn psk_auth(
        &self,
        psk: &[u8],
        of_initiator: bool,
        id_body: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        let (algs, k) = (self.algs?, self.keys.as_ref()?);
        let (message, peer_nonce, sk_p) = if of_initiator {
            (&self.init_req, &self.nonce_r, &k.sk_pi)
        } else {
            (&self.init_resp, &self.nonce_i, &k.sk_pr)
        };
        Some(keys::psk_auth(
            algs.prf, psk, message, peer_nonce, sk_p, id_body,
        ))
    }

    /// Installs freshly derived keys (IKE_SA_INIT done, or a rekeyed successor).
    pub fn set_keys(&mut self, algs: IkeAlgs, k: IkeSaKeys) {
        self.algs = Some(algs);
        self.keys = Some(k.keys);
        self.sk = Some(k.sk);
    }

    /// Builds the SK ciphers again if `shed_idle` let them go (keyed SAs only).
    pub fn ensure_sk(&mut self) {
        if self.sk.is_some() {
            return;
        }
        if let (Some(algs), Some(k)) = (self.algs.as_ref(), self.keys.as_ref()) {
            self.sk = SkCrypto::new(algs, k, self.initiator).ok();
        }
    }

    /// Lets go of what an established SA with no exchange of its own in flight does not
    /// need between messages: the keyed SK ciphers (rebuilt on the next message) and the
    /// IKE_SA_INIT messages (read only for the AUTH payloads).
    pub fn shed_idle(&mut self) {
        if self.state != IkeState::Established {
            return;
        }
        self.init_req = Vec::new();
        self.init_resp = Vec::new();
        if self.in_flight.is_none() {
            self.sk = None;
        }
    }

    /// Our own SPI, the key of the SA table.
    pub fn our_spi(&self) -> u64 {
        if self.initiator {
            self.spi_i
        } else {
            self.spi_r
        }
    }

    pub fn child_by_in(&self, spi_in: u32) -> Option<&Child> {
        self.children.iter().find(|c| c.spi_in == spi_in)
    }

    pub fn child_by_in_mut(&mut self, spi_in: u32) -> Option<&mut Child> {
        self.children.iter_mut().find(|c| c.spi_in == spi_in)
    }

    /// Latest sign of life from the peer (IKE or ESP).
    pub fn last_alive(&self) -> Instant {
        self.children
            .iter()
            .filter_map(|c| c.last_activity)
            .fold(self.last_inbound, |a, b| a.max(b))
    }
}
