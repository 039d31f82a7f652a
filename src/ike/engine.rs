//! The IKEv2 engine: IKE SA table, exchanges (IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA,
//! INFORMATIONAL), retransmissions, rekeying, DPD and NAT-T — all sans-IO.

use super::codec::{self, notify as n, Header, Message, ParseError, Payload};
use super::codec::{EXCH_CREATE_CHILD_SA, EXCH_IKE_AUTH, EXCH_IKE_SA_INIT, EXCH_INFORMATIONAL};
use super::codec::{FLAG_INITIATOR, FLAG_RESPONSE, IKE_VERSION, PROTO_ESP, PROTO_IKE};
use super::keys::{self, IkeAlgs, SkCrypto, SkError};
use super::sa::{queue_rekey, Child, ChildState, IkeSa, IkeState, Pending, PendingKind, Task};
use super::select::{self, EspAlgs};
use super::*;
use crate::crypto::{DhGroup, DhPrivate, PrfAlg};
use rand::RngCore;
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;
use subtle::ConstantTimeEq;
use tracing::{debug, info, warn};

const NONCE_LEN: usize = 32;
/// A responder SA that never sees IKE_AUTH is dropped after this.
const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// An SA replaced by the peer's rekey is dropped after this if the peer never deletes it.
const REPLACED_SA_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause before re-initiating after authentication/proposal failures (start_action=start).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// IKE_SA_INIT restarts (COOKIE, INVALID_KE_PAYLOAD) before giving up.
const MAX_INIT_RESTARTS: u32 = 4;

/// The IKEv2 protocol engine for all configured connections.
pub struct Engine {
    configs: Vec<IkeConfig>,
    rng: Box<dyn RngCore + Send>,
    /// IKE SAs by our own SPI.
    sas: BTreeMap<u64, IkeSa>,
    /// Responder half-open SAs by (peer address, SPIi), to answer retransmitted IKE_SA_INITs.
    init_index: BTreeMap<(SocketAddr, u64), u64>,
    /// Connections to (re-)initiate at a given time.
    restart_at: BTreeMap<String, Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: EngineStats,
    keylog: bool,
    cookie_threshold: usize,
    cookie_secret: Zeroizing<Vec<u8>>,
}

fn float_port(p: u16) -> u16 {
    if p == 500 {
        NATT_PORT
    } else {
        p
    }
}

/// Longest wait the engine ever schedules; keeps configured durations from overflowing.
const MAX_DELAY: Duration = Duration::from_secs(365 * 24 * 3600);

/// `at + d` that cannot panic on absurd configured durations.
fn later(at: Instant, d: Duration) -> Instant {
    let d = d.min(MAX_DELAY);
    at.checked_add(d).unwrap_or(at)
}

/// Retransmission n (1-based) waits `timeout * base^n`, capped.
fn backoff(rt: &RetransmitConfig, n: u32) -> Duration {
    let base = if rt.base.is_finite() {
        rt.base.max(1.0)
    } else {
        1.0
    };
    let factor = base.powi(n.min(1000) as i32);
    Duration::try_from_secs_f64(rt.timeout.as_secs_f64() * factor)
        .unwrap_or(MAX_DELAY)
        .min(MAX_DELAY)
}

fn id_body(id_type: u8, data: &[u8]) -> Vec<u8> {
    let mut b = vec![id_type, 0, 0, 0];
    b.extend_from_slice(data);
    b
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

fn prefixes_to_ts(p: &[crate::prefix::IpPrefix]) -> Vec<TrafficSelector> {
    p.iter().map(TrafficSelector::from_prefix).collect()
}

fn ts_list(ts: &[TrafficSelector]) -> String {
    ts.iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The payloads an exchange reads, by type (a repeated payload: the last one counts).
#[derive(Default)]
struct Collected<'a> {
    sa: Option<&'a [codec::Proposal]>,
    ke: Option<(u16, &'a [u8])>,
    nonce: Option<&'a [u8]>,
    idi: Option<(u8, &'a [u8])>,
    idr: Option<(u8, &'a [u8])>,
    auth: Option<(u8, &'a [u8])>,
    tsi: Option<Vec<TrafficSelector>>,
    tsr: Option<Vec<TrafficSelector>>,
}

impl<'a> Collected<'a> {
    fn from(payloads: &'a [Payload]) -> Self {
        let mut c = Collected::default();
        for p in payloads {
            match p {
                Payload::Sa(props) => c.sa = Some(props),
                Payload::Ke { group, data } => c.ke = Some((*group, data)),
                Payload::Nonce(nv) => c.nonce = Some(nv),
                Payload::IdI { id_type, data } => c.idi = Some((*id_type, data)),
                Payload::IdR { id_type, data } => c.idr = Some((*id_type, data)),
                Payload::Auth { method, data } => c.auth = Some((*method, data)),
                Payload::TsI(t) => c.tsi = Some(select::ts_from_wire(t)),
                Payload::TsR(t) => c.tsr = Some(select::ts_from_wire(t)),
                _ => {}
            }
        }
        c
    }
}

/// A negotiated CHILD SA before keying: its configuration, the peer's SPI, the algorithms
/// and the narrowed selectors.
struct ChildChoice {
    cfg: ChildConfig,
    spi_out: u32,
    algs: EspAlgs,
    local_ts: Vec<TrafficSelector>,
    remote_ts: Vec<TrafficSelector>,
}

/// NAT_DETECTION_*_IP (RFC 7296 2.23): a NAT sits in between when the peer's hash of its own
/// source (`peer`, as we see it) or of its destination (`us`) does not match. Without both
/// notifies there is no detection, hence no NAT.
fn nat_between(
    payloads: &[Payload],
    spi_i: u64,
    spi_r: u64,
    peer: SocketAddr,
    us: SocketAddr,
) -> bool {
    let src = codec::find_notify(payloads, n::NAT_DETECTION_SOURCE_IP);
    let dst = codec::find_notify(payloads, n::NAT_DETECTION_DESTINATION_IP);
    match (src, dst) {
        (Some(s), Some(d)) => {
            s.data != keys::nat_hash(spi_i, spi_r, peer)
                || d.data != keys::nat_hash(spi_i, spi_r, us)
        }
        _ => false,
    }
}

/// The DH group number an INVALID_KE_PAYLOAD notify asks for.
fn requested_group(data: &[u8]) -> Option<u16> {
    let b: [u8; 2] = data.get(..2)?.try_into().ok()?;
    Some(u16::from_be_bytes(b))
}

fn conn_matches_addrs(c: &IkeConfig, local: IpAddr, remote: IpAddr) -> bool {
    (c.local_addrs.is_empty() || c.local_addrs.contains(&local))
        && (c.remote_addrs.is_empty() || c.remote_addrs.contains(&remote))
}

impl Engine {
    pub fn new(configs: Vec<IkeConfig>, mut rng: Box<dyn RngCore + Send>, now: Instant) -> Engine {
        let mut cookie_secret = Zeroizing::new(vec![0u8; 32]);
        rng.fill_bytes(&mut cookie_secret);
        let restart_at = configs
            .iter()
            .filter(|c| c.start_action == StartAction::Start && !c.remote_addrs.is_empty())
            .map(|c| (c.name.clone(), now))
            .collect();
        Engine {
            configs,
            rng,
            sas: BTreeMap::new(),
            init_index: BTreeMap::new(),
            restart_at,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: EngineStats::default(),
            keylog: false,
            cookie_threshold: 100,
            cookie_secret,
        }
    }

    pub fn set_keylog(&mut self, on: bool) {
        self.keylog = on;
    }

    pub fn set_cookie_threshold(&mut self, half_open: usize) {
        self.cookie_threshold = half_open;
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn stats(&self) -> EngineStats {
        self.stats.clone()
    }

    // ----------------------------------------------------------------------------------
    // small helpers
    // ----------------------------------------------------------------------------------

    fn transmit(&mut self, local: SocketAddr, remote: SocketAddr, data: Vec<u8>) {
        self.stats.sent += 1;
        self.transmits.push_back(Transmit {
            local,
            remote,
            data,
        });
    }

    fn random_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.rng.fill_bytes(&mut v);
        v
    }

    fn new_ike_spi(&mut self) -> u64 {
        loop {
            let s = self.rng.next_u64();
            if s != 0 && !self.sas.contains_key(&s) {
                return s;
            }
        }
    }

    fn new_child_spi(&mut self, current: Option<&IkeSa>) -> u32 {
        loop {
            let s = self.rng.next_u32();
            let used = self.sas.values().chain(current).any(|sa| sa.children.iter().any(|c| c.spi_in == s))
                || current.is_some_and(|sa| {
                    matches!(&sa.pending, Some(Pending { kind: PendingKind::CreateChild { spi_in, .. }, .. }) if *spi_in == s)
                });
            if s >= 0x100 && !used {
                return s;
            }
        }
    }

    /// How long to wait after TEMPORARY_FAILURE: 2 to 10 s, random so that two peers that
    /// collided do not retry in lock-step.
    fn temporary_failure_delay(&mut self) -> Duration {
        Duration::from_millis(2000 + self.rng.next_u64() % 8000)
    }

    /// `now + d`, jittered down by up to 10%; None when `d` is zero (feature off).
    fn jittered(&mut self, now: Instant, d: Duration) -> Option<Instant> {
        if d.is_zero() {
            return None;
        }
        let d = d.min(MAX_DELAY);
        let max_ms = (d.as_millis() / 10) as u64;
        let j = if max_ms == 0 {
            0
        } else {
            self.rng.next_u64() % (max_ms + 1)
        };
        Some(later(now, d.saturating_sub(Duration::from_millis(j))))
    }

    fn header(sa: &IkeSa, exchange: u8, msg_id: u32, response: bool) -> Header {
        let mut flags = 0;
        if sa.initiator {
            flags |= FLAG_INITIATOR;
        }
        if response {
            flags |= FLAG_RESPONSE;
        }
        Header {
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            next_payload: 0,
            version: IKE_VERSION,
            exchange,
            flags,
            msg_id,
            length: 0,
        }
    }

    fn encode(&mut self, sa: &IkeSa, header: Header, payloads: &[Payload]) -> Vec<u8> {
        match &sa.sk {
            Some(sk) => sk.seal(header, payloads, &mut *self.rng),
            None => codec::encode_plain(header, payloads),
        }
    }

    fn send_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        exchange: u8,
        payloads: &[Payload],
        kind: PendingKind,
    ) {
        let msg_id = sa.next_msg_id;
        sa.next_msg_id = sa.next_msg_id.wrapping_add(1);
        let h = Self::header(sa, exchange, msg_id, false);
        let data = self.encode(sa, h, payloads);
        debug!(conn = %sa.cfg.name, spi = format_args!("{:016x}", sa.our_spi()), msg_id, "sending {} request to {}", kind.name(), sa.remote);
        self.transmit(sa.local, sa.remote, data.clone());
        sa.pending = Some(Pending {
            msg_id,
            data,
            retransmits: 0,
            next_at: later(now, sa.cfg.retransmit.timeout),
            kind,
        });
    }

    /// A response carrying one notify (an error, or TEMPORARY_FAILURE).
    fn send_notify(
        &mut self,
        sa: &mut IkeSa,
        exchange: u8,
        msg_id: u32,
        ntype: u16,
        data: Vec<u8>,
    ) {
        self.send_response(sa, exchange, msg_id, &[Payload::notify(ntype, data)]);
    }

    fn send_response(&mut self, sa: &mut IkeSa, exchange: u8, msg_id: u32, payloads: &[Payload]) {
        let h = Self::header(sa, exchange, msg_id, true);
        let data = self.encode(sa, h, payloads);
        debug!(conn = %sa.cfg.name, msg_id, exchange, "sending response to {}", sa.remote);
        self.transmit(sa.local, sa.remote, data.clone());
        sa.cached_response = Some((msg_id, data));
    }

    /// An unencrypted IKE_SA_INIT response carrying one notify (SPIr = 0, nothing kept).
    fn reply_plain(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        req: &Header,
        ntype: u16,
        data: Vec<u8>,
    ) {
        let h = Header {
            spi_i: req.spi_i,
            spi_r: 0,
            next_payload: 0,
            version: IKE_VERSION,
            exchange: req.exchange,
            flags: FLAG_RESPONSE,
            msg_id: req.msg_id,
            length: 0,
        };
        let msg = codec::encode_plain(h, &[Payload::notify(ntype, data)]);
        self.transmit(local, remote, msg);
    }

    fn emit_keylog(&mut self, sa: &IkeSa) {
        if !self.keylog {
            return;
        }
        if let (Some(k), Some(a)) = (&sa.keys, &sa.algs) {
            self.events.push_back(Event::KeyLog {
                spi_i: sa.spi_i,
                spi_r: sa.spi_r,
                sk_d: k.sk_d.clone(),
                sk_ai: k.sk_ai.clone(),
                sk_ar: k.sk_ar.clone(),
                sk_ei: k.sk_ei.clone(),
                sk_er: k.sk_er.clone(),
                sk_pi: k.sk_pi.clone(),
                sk_pr: k.sk_pr.clone(),
                encr: a.encr,
                integ: a.integ,
            });
        }
    }

    fn emit_ike_up(&mut self, sa: &IkeSa) {
        let Some(a) = sa.algs else { return };
        info!(
            conn = %sa.cfg.name,
            "IKE_SA {}[{:016x}_i {:016x}_r] established between {}...{} ({}){}{}",
            sa.cfg.name,
            sa.spi_i,
            sa.spi_r,
            sa.local,
            sa.remote,
            a.describe(),
            if sa.nat_detected { ", NAT detected" } else { "" },
            if sa.rekeyed { ", rekeyed" } else { "" }
        );
        self.events.push_back(Event::IkeUp {
            conn: sa.cfg.name.clone(),
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            local: sa.local,
            remote: sa.remote,
            encr: a.encr,
            integ: a.integ,
            prf: a.prf,
            dh: a.dh,
            nat_detected: sa.nat_detected,
            rekeyed: sa.rekeyed,
        });
    }

    fn emit_ike_down(&mut self, sa: &IkeSa, reason: &str) {
        info!(conn = %sa.cfg.name, "IKE_SA {}[{:016x}_i {:016x}_r] down: {}", sa.cfg.name, sa.spi_i, sa.spi_r, reason);
        self.events.push_back(Event::IkeDown {
            conn: sa.cfg.name.clone(),
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            reason: reason.to_string(),
        });
    }

    fn emit_child_down(&mut self, conn: &str, c: &Child, reason: &str) {
        info!(
            conn,
            "CHILD_SA {}{{{:08x}_i {:08x}_o}} removed: {}", c.name, c.spi_in, c.spi_out, reason
        );
        self.events.push_back(Event::ChildDown {
            conn: conn.to_string(),
            child: c.name.clone(),
            spi_in: c.spi_in,
            spi_out: c.spi_out,
            reason: reason.to_string(),
        });
    }

    /// Emits ChildDown for every child and IkeDown, and forgets the SA's index entries.
    fn emit_all_down(&mut self, sa: &mut IkeSa, reason: &str) {
        let children = std::mem::take(&mut sa.children);
        for c in &children {
            let r = if c.state == ChildState::Rekeyed {
                "rekeyed"
            } else {
                reason
            };
            self.emit_child_down(&sa.cfg.name.clone(), c, r);
        }
        self.emit_ike_down(sa, reason);
    }

    /// Final events of an SA replaced by an IKE rekey (children normally moved already).
    fn drop_replaced(&mut self, sa: &mut IkeSa) {
        let children = std::mem::take(&mut sa.children);
        for c in &children {
            self.emit_child_down(&sa.cfg.name.clone(), c, "IKE_SA rekeyed");
        }
        self.emit_ike_down(sa, "rekeyed");
    }

    fn forget(&mut self, sa: &IkeSa) {
        let spi = sa.our_spi();
        self.init_index.retain(|_, v| *v != spi);
    }

    fn schedule_restart(&mut self, conn: &str, at: Instant) {
        if self
            .configs
            .iter()
            .any(|c| c.name == conn && !c.remote_addrs.is_empty())
        {
            self.restart_at.insert(conn.to_string(), at);
        }
    }

    /// An initiator SA that failed before/while establishing.
    fn fail_initiator(&mut self, now: Instant, sa: &mut IkeSa, reason: &str) {
        warn!(conn = %sa.cfg.name, "initiating IKE_SA {} failed: {}", sa.cfg.name, reason);
        self.emit_all_down(sa, reason);
        self.forget(sa);
        if sa.cfg.start_action == StartAction::Start {
            self.schedule_restart(&sa.cfg.name.clone(), now + RETRY_AFTER_FAILURE);
        }
    }

    fn cookie_for(&self, nonce: &[u8], remote: SocketAddr, spi_i: u64) -> Vec<u8> {
        let ip = match remote.ip() {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let mut c = vec![0, 0, 0, 1]; // version of the secret
        c.extend_from_slice(&crypto_prf(
            &self.cookie_secret,
            &[nonce, &ip, &spi_i.to_be_bytes()],
        ));
        c
    }

    // ----------------------------------------------------------------------------------
    // operator API
    // ----------------------------------------------------------------------------------

    pub fn initiate(&mut self, now: Instant, conn: &str) -> Result<(), IkeError> {
        let cfg = self
            .configs
            .iter()
            .find(|c| c.name == conn)
            .cloned()
            .ok_or_else(|| IkeError::UnknownConnection(conn.into()))?;
        if cfg.remote_addrs.is_empty() {
            return Err(IkeError::NoRemoteAddress(conn.into()));
        }
        self.restart_at.remove(conn);
        if self.sas.values().any(|s| {
            s.cfg.name == conn && !matches!(s.state, IkeState::Deleting | IkeState::Rekeyed)
        }) {
            return Ok(());
        }
        self.start_initiator(now, cfg);
        Ok(())
    }

    pub fn terminate(&mut self, now: Instant, conn: &str) -> Result<(), IkeError> {
        let known = self.configs.iter().any(|c| c.name == conn)
            || self.sas.values().any(|s| s.cfg.name == conn);
        if !known {
            return Err(IkeError::UnknownConnection(conn.into()));
        }
        self.restart_at.remove(conn);
        let ids: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, s)| s.cfg.name == conn)
            .map(|(k, _)| *k)
            .collect();
        for id in ids {
            self.delete_sa(now, id, "terminated locally");
        }
        Ok(())
    }

    pub fn terminate_all(&mut self, now: Instant) {
        self.restart_at.clear();
        let ids: Vec<u64> = self.sas.keys().copied().collect();
        for id in ids {
            self.delete_sa(now, id, "terminated locally (shutdown)");
        }
    }

    pub fn rekey(&mut self, now: Instant, conn: &str, ike: bool) -> Result<(), IkeError> {
        if !self.configs.iter().any(|c| c.name == conn) {
            return Err(IkeError::UnknownConnection(conn.into()));
        }
        let id = self
            .sas
            .iter()
            .find(|(_, s)| s.cfg.name == conn && s.state == IkeState::Established)
            .map(|(k, _)| *k)
            .ok_or_else(|| IkeError::NotEstablished(conn.into()))?;
        if let Some(mut sa) = self.sas.remove(&id) {
            if ike {
                queue_rekey(&mut sa.tasks, Task::RekeyIke(None));
            } else {
                for c in sa
                    .children
                    .iter()
                    .filter(|c| c.state == ChildState::Installed)
                {
                    queue_rekey(&mut sa.tasks, Task::RekeyChild(c.spi_in, None));
                }
            }
            self.run_tasks(now, &mut sa);
            self.sas.insert(id, sa);
        }
        Ok(())
    }

    pub fn child_activity(&mut self, spi_in: u32, last_inbound: Option<Instant>) {
        let Some(t) = last_inbound else { return };
        for sa in self.sas.values_mut() {
            if let Some(c) = sa.child_by_in_mut(spi_in) {
                c.last_activity = Some(c.last_activity.map_or(t, |x| x.max(t)));
                return;
            }
        }
    }

    pub fn request_child_rekey(&mut self, now: Instant, spi_in: u32) {
        let id = self
            .sas
            .iter()
            .find(|(_, s)| {
                s.state == IkeState::Established
                    && s.child_by_in(spi_in)
                        .is_some_and(|c| c.state == ChildState::Installed)
            })
            .map(|(k, _)| *k);
        if let Some(id) = id {
            if let Some(mut sa) = self.sas.remove(&id) {
                queue_rekey(&mut sa.tasks, Task::RekeyChild(spi_in, None));
                self.run_tasks(now, &mut sa);
                self.sas.insert(id, sa);
            }
        }
    }

    pub fn reload(&mut self, now: Instant, configs: Vec<IkeConfig>) {
        let old = std::mem::replace(&mut self.configs, configs);
        for oc in &old {
            match self.configs.iter().find(|c| c.name == oc.name) {
                Some(nc) if nc == oc => {}
                changed => {
                    let restart = changed.is_some_and(|c| {
                        c.start_action == StartAction::Start && !c.remote_addrs.is_empty()
                    });
                    info!(conn = %oc.name, "connection {} {} by reload", oc.name, if changed.is_some() { "changed" } else { "removed" });
                    self.restart_at.remove(&oc.name);
                    let ids: Vec<u64> = self
                        .sas
                        .iter()
                        .filter(|(_, s)| s.cfg.name == oc.name)
                        .map(|(k, _)| *k)
                        .collect();
                    for id in ids {
                        self.delete_sa(now, id, "configuration changed");
                    }
                    if restart {
                        self.restart_at.insert(oc.name.clone(), now);
                    }
                }
            }
        }
        let new_starts: Vec<String> = self
            .configs
            .iter()
            .filter(|c| {
                !old.iter().any(|o| o.name == c.name)
                    && c.start_action == StartAction::Start
                    && !c.remote_addrs.is_empty()
            })
            .map(|c| c.name.clone())
            .collect();
        for n in new_starts {
            self.restart_at.insert(n, now);
        }
    }

    /// Sends Delete for an SA (if it was ever up), emitting the down events now.
    fn delete_sa(&mut self, now: Instant, id: u64, reason: &str) {
        let Some(mut sa) = self.sas.remove(&id) else {
            return;
        };
        self.forget(&sa);
        match sa.state {
            IkeState::Established | IkeState::AuthSent | IkeState::Rekeyed => {
                if sa.state == IkeState::Rekeyed {
                    self.drop_replaced(&mut sa);
                } else {
                    self.emit_all_down(&mut sa, reason);
                }
                sa.children.clear();
                sa.tasks.clear();
                sa.state = IkeState::Deleting;
                // With a request in flight the window is full: the Delete follows its
                // response (or the SA dies with its retransmissions).
                if sa.pending.is_none() {
                    self.send_delete_ike(now, &mut sa);
                }
                self.sas.insert(id, sa);
            }
            IkeState::InitSent => self.emit_ike_down(&sa, reason),
            IkeState::InitReplied => {}
            IkeState::Deleting => {
                self.sas.insert(id, sa);
            }
        }
    }

    fn send_delete_ike(&mut self, now: Instant, sa: &mut IkeSa) {
        let d = Payload::Delete {
            protocol: PROTO_IKE,
            spi_size: 0,
            spis: vec![],
        };
        self.send_request(now, sa, EXCH_INFORMATIONAL, &[d], PendingKind::DeleteIke);
    }

    /// Two IKE SAs for one connection and peer (both ends initiated at once): both ends
    /// keep the one with the lowest SPIi and delete the other.
    fn resolve_duplicates(&mut self, now: Instant, conn: &str) {
        let mut up: Vec<(u64, u64, IpAddr)> = self
            .sas
            .iter()
            .filter(|(_, s)| s.cfg.name == conn && s.state == IkeState::Established)
            .map(|(k, s)| (s.spi_i, *k, s.remote.ip()))
            .collect();
        up.sort();
        let mut seen: Vec<IpAddr> = Vec::new();
        for (spi_i, id, ip) in up {
            if seen.contains(&ip) {
                info!(
                    conn,
                    "duplicate IKE_SA {spi_i:016x}_i with {ip}, deleting it"
                );
                self.delete_sa(now, id, "duplicate IKE_SA (both ends initiated)");
            } else {
                seen.push(ip);
            }
        }
    }

    pub fn status(&self, now: Instant) -> Vec<ConnStatus> {
        let secs = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs();
        self.configs
            .iter()
            .map(|cfg| {
                let rank = |s: &IkeSa| match s.state {
                    IkeState::Established => 0,
                    IkeState::AuthSent | IkeState::InitSent | IkeState::InitReplied => 1,
                    IkeState::Deleting => 2,
                    IkeState::Rekeyed => 3,
                };
                let best = self
                    .sas
                    .values()
                    .filter(|s| s.cfg.name == cfg.name && s.state != IkeState::Rekeyed)
                    .min_by_key(|s| rank(s));
                let Some(sa) = best else {
                    return ConnStatus {
                        name: cfg.name.clone(),
                        state: "down".into(),
                        ike: None,
                        children: vec![],
                    };
                };
                let rekeying = matches!(
                    &sa.pending,
                    Some(Pending {
                        kind: PendingKind::RekeyIke { .. },
                        ..
                    })
                );
                let state = match sa.state {
                    IkeState::Established if rekeying => "rekeying",
                    IkeState::Established => "established",
                    IkeState::Deleting => "deleting",
                    _ => "connecting",
                };
                let ike = sa.algs.map(|a| IkeStatus {
                    spi_i: format!("{:016x}", sa.spi_i),
                    spi_r: format!("{:016x}", sa.spi_r),
                    local: sa.local.to_string(),
                    remote: sa.remote.to_string(),
                    encr: a.encr.name().into(),
                    integ: a.integ.map(|i| i.name().into()),
                    prf: a.prf.name().into(),
                    dh: a.dh.name().into(),
                    nat_detected: sa.nat_detected,
                    established_secs: sa.established_at.map_or(0, |t| secs(t, now)),
                    rekey_in_secs: sa.rekey_at.map(|t| secs(now, t)),
                    initiator: sa.initiator,
                });
                let children = sa
                    .children
                    .iter()
                    .map(|c| ChildStatus {
                        name: c.name.clone(),
                        state: match c.state {
                            ChildState::Installed => "installed",
                            ChildState::Rekeying => "rekeying",
                            ChildState::Rekeyed => "rekeyed",
                            ChildState::Deleting => "deleting",
                        }
                        .into(),
                        spi_in: format!("{:08x}", c.spi_in),
                        spi_out: format!("{:08x}", c.spi_out),
                        encr: c.algs.encr.name().into(),
                        integ: c.algs.integ.map(|i| i.name().into()),
                        encap: if c.udp_encap { "udp" } else { "none" }.into(),
                        installed_secs: secs(c.installed_at, now),
                        rekey_in_secs: c.rekey_at.map(|t| secs(now, t)),
                        local_ts: c.local_ts.iter().map(|t| t.to_string()).collect(),
                        remote_ts: c.remote_ts.iter().map(|t| t.to_string()).collect(),
                        dh: c.algs.dh.map(|d| d.name().into()),
                        esn: c.algs.esn,
                    })
                    .collect();
                ConnStatus {
                    name: cfg.name.clone(),
                    state: state.into(),
                    ike,
                    children,
                }
            })
            .collect()
    }

    // ----------------------------------------------------------------------------------
    // timers
    // ----------------------------------------------------------------------------------

    fn sa_deadline(sa: &IkeSa) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut add = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        add(sa.expire_at);
        add(sa.pending.as_ref().map(|p| p.next_at));
        if sa.state == IkeState::Established {
            add(sa.rekey_at);
            for c in &sa.children {
                add(c.rekey_at);
                add(c.expire_at);
            }
            if !sa.cfg.dpd_delay.is_zero() && sa.pending.is_none() && sa.tasks.is_empty() {
                add(Some(later(sa.last_alive(), sa.cfg.dpd_delay)));
            }
        }
        t
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sas
            .values()
            .filter_map(Self::sa_deadline)
            .chain(self.restart_at.values().copied())
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<String> = self
            .restart_at
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(c, _)| c.clone())
            .collect();
        for c in due {
            self.restart_at.remove(&c);
            if let Err(e) = self.initiate(now, &c) {
                warn!("cannot initiate {c}: {e}");
            }
        }
        let ids: Vec<u64> = self.sas.keys().copied().collect();
        for id in ids {
            let Some(mut sa) = self.sas.remove(&id) else {
                continue;
            };
            if self.sa_timers(now, &mut sa) {
                self.run_tasks(now, &mut sa);
                self.sas.insert(id, sa);
            } else {
                self.forget(&sa);
            }
        }
    }

    /// Runs the due timers of one SA; false = the SA is gone.
    fn sa_timers(&mut self, now: Instant, sa: &mut IkeSa) -> bool {
        if sa.expire_at.is_some_and(|t| t <= now) {
            match sa.state {
                IkeState::InitReplied => {
                    debug!(
                        "half-open IKE_SA {:016x} from {} expired",
                        sa.spi_r, sa.remote
                    );
                    self.forget(sa);
                    return false;
                }
                IkeState::Rekeyed => {
                    self.drop_replaced(sa);
                    return false;
                }
                _ => sa.expire_at = None,
            }
        }
        if let Some(p) = &mut sa.pending {
            if p.next_at <= now {
                let rt = sa.cfg.retransmit;
                if p.retransmits < rt.tries {
                    p.retransmits += 1;
                    p.next_at = later(now, backoff(&rt, p.retransmits));
                    let data = p.data.clone();
                    debug!(conn = %sa.cfg.name, "retransmit {} of {} request {}", p.retransmits, p.kind.name(), p.msg_id);
                    self.stats.retransmits += 1;
                    self.transmit(sa.local, sa.remote, data);
                } else {
                    return self.peer_dead(now, sa);
                }
            }
        }
        if sa.state != IkeState::Established {
            return true;
        }
        if sa.rekey_at.is_some_and(|t| t <= now) {
            sa.rekey_at = None;
            queue_rekey(&mut sa.tasks, Task::RekeyIke(None));
        }
        let mut expired = Vec::new();
        for c in sa.children.iter_mut() {
            if c.rekey_at.is_some_and(|t| t <= now) {
                c.rekey_at = None;
                if c.state == ChildState::Installed {
                    queue_rekey(&mut sa.tasks, Task::RekeyChild(c.spi_in, None));
                }
            }
            if c.expire_at.is_some_and(|t| t <= now) {
                expired.push(c.spi_in);
            }
        }
        for spi in expired {
            if let Some(i) = sa.children.iter().position(|c| c.spi_in == spi) {
                let c = sa.children.remove(i);
                self.emit_child_down(&sa.cfg.name.clone(), &c, "rekeyed");
            }
        }
        if !sa.cfg.dpd_delay.is_zero()
            && sa.pending.is_none()
            && sa.tasks.is_empty()
            && later(sa.last_alive(), sa.cfg.dpd_delay) <= now
        {
            sa.tasks.push_back(Task::Dpd);
        }
        true
    }

    /// Retransmissions exhausted.
    fn peer_dead(&mut self, now: Instant, sa: &mut IkeSa) -> bool {
        let kind = sa.pending.take().map(|p| p.kind);
        let was_dpd = matches!(kind, Some(PendingKind::Dpd));
        self.forget(sa);
        match sa.state {
            IkeState::Deleting => return false,
            IkeState::Rekeyed => {
                self.drop_replaced(sa);
                return false;
            }
            _ => {}
        }
        self.stats.peers_dead += 1;
        let what = kind.as_ref().map_or("request", |k| k.name());
        let reason = format!(
            "peer {} not responding ({} retransmits of {} exhausted)",
            sa.remote, sa.cfg.retransmit.tries, what
        );
        warn!(conn = %sa.cfg.name, "{reason}");
        let established = sa.established_at.is_some();
        self.emit_all_down(sa, &reason);
        let restart = if was_dpd {
            sa.cfg.dpd_action == DpdAction::Restart
        } else {
            sa.cfg.start_action == StartAction::Start
                || (established && sa.cfg.dpd_action == DpdAction::Restart)
        };
        if restart {
            self.schedule_restart(&sa.cfg.name.clone(), later(now, sa.cfg.retransmit.timeout));
        }
        false
    }

    /// Starts the next queued exchange if the window is free.
    fn run_tasks(&mut self, now: Instant, sa: &mut IkeSa) {
        while sa.pending.is_none() && sa.state == IkeState::Established {
            let Some(task) = sa.tasks.pop_front() else {
                return;
            };
            self.start_task(now, sa, task);
        }
    }

    fn start_task(&mut self, now: Instant, sa: &mut IkeSa, task: Task) {
        match task {
            Task::Dpd => {
                self.stats.dpd_sent += 1;
                debug!(conn = %sa.cfg.name, "sending DPD");
                self.send_request(now, sa, EXCH_INFORMATIONAL, &[], PendingKind::Dpd);
            }
            Task::DeleteChild(spi) => {
                let Some(c) = sa.child_by_in_mut(spi) else {
                    return;
                };
                if c.state != ChildState::Rekeyed {
                    c.state = ChildState::Deleting;
                }
                let p = Payload::Delete {
                    protocol: PROTO_ESP,
                    spi_size: 4,
                    spis: vec![spi.to_be_bytes().to_vec()],
                };
                self.send_request(
                    now,
                    sa,
                    EXCH_INFORMATIONAL,
                    &[p],
                    PendingKind::DeleteChildren(vec![spi]),
                );
            }
            Task::CreateChild(name) => self.start_create_child(now, sa, name, None, None),
            Task::RekeyChild(spi, group) => {
                let Some(c) = sa.child_by_in(spi) else { return };
                if c.state != ChildState::Installed {
                    return;
                }
                let name = c.name.clone();
                self.start_create_child(now, sa, name, Some(spi), group);
            }
            Task::RekeyIke(group) => {
                let Some(algs) = sa.algs else { return };
                let group = group.and_then(DhGroup::from_transform).unwrap_or(algs.dh);
                let spi = self.new_ike_spi();
                let nonce = self.random_bytes(NONCE_LEN);
                let dh = DhPrivate::generate(group, &mut *self.rng);
                let payloads = vec![
                    Payload::Sa(select::ike_to_wire(&sa.cfg.proposals, &spi.to_be_bytes())),
                    Payload::Nonce(nonce.clone()),
                    Payload::Ke {
                        group: group.transform_id(),
                        data: dh.public_value(),
                    },
                ];
                info!(conn = %sa.cfg.name, "rekeying IKE_SA {}[{:016x}_i {:016x}_r]", sa.cfg.name, sa.spi_i, sa.spi_r);
                self.send_request(
                    now,
                    sa,
                    EXCH_CREATE_CHILD_SA,
                    &payloads,
                    PendingKind::RekeyIke { spi, nonce, dh },
                );
            }
        }
    }

    fn start_create_child(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        name: String,
        rekey_of: Option<u32>,
        group: Option<u16>,
    ) {
        let Some(ccfg) = sa.cfg.children.iter().find(|c| c.name == name).cloned() else {
            debug!(conn = %sa.cfg.name, "child {name} no longer configured, not (re)creating it");
            return;
        };
        let spi_in = self.new_child_spi(Some(sa));
        let nonce = self.random_bytes(NONCE_LEN);
        let pfs = group
            .and_then(DhGroup::from_transform)
            .or_else(|| ccfg.proposals.first().and_then(|p| p.dh.first().copied()));
        let dh = pfs.map(|g| DhPrivate::generate(g, &mut *self.rng));
        let mut payloads = Vec::new();
        if let Some(old) = rekey_of {
            payloads.push(Payload::Notify(codec::Notify {
                protocol: PROTO_ESP,
                spi: old.to_be_bytes().to_vec(),
                ntype: n::REKEY_SA,
                data: vec![],
            }));
            if let Some(c) = sa.child_by_in_mut(old) {
                c.state = ChildState::Rekeying;
            }
            info!(conn = %sa.cfg.name, "rekeying CHILD_SA {}{{{:08x}_i}}", name, old);
        }
        payloads.push(Payload::Sa(select::esp_to_wire(
            &ccfg.proposals,
            spi_in,
            true,
        )));
        payloads.push(Payload::Nonce(nonce.clone()));
        if let Some(d) = &dh {
            payloads.push(Payload::Ke {
                group: d.group().transform_id(),
                data: d.public_value(),
            });
        }
        // A rekey keeps the selectors negotiated for the old SA (as strongSwan does).
        let (tsi, tsr) = match rekey_of.and_then(|o| sa.child_by_in(o)) {
            Some(c) => (c.local_ts.clone(), c.remote_ts.clone()),
            None => (
                prefixes_to_ts(&ccfg.local_ts),
                prefixes_to_ts(&ccfg.remote_ts),
            ),
        };
        payloads.push(Payload::TsI(select::ts_to_wire(&tsi)));
        payloads.push(Payload::TsR(select::ts_to_wire(&tsr)));
        self.send_request(
            now,
            sa,
            EXCH_CREATE_CHILD_SA,
            &payloads,
            PendingKind::CreateChild {
                child: name,
                spi_in,
                nonce,
                dh,
                rekey_of,
            },
        );
    }

    // ----------------------------------------------------------------------------------
    // receive path
    // ----------------------------------------------------------------------------------

    /// One received IKE message (without the non-ESP marker).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        self.stats.received += 1;
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(ParseError::UnsupportedCritical(pt)) => {
                // Only an unencrypted IKE_SA_INIT request can be answered statelessly.
                match Header::parse(data) {
                    Ok(h) if h.exchange == EXCH_IKE_SA_INIT && !h.is_response() => {
                        debug!("IKE_SA_INIT from {remote} with unsupported critical payload {pt}");
                        self.reply_plain(
                            local,
                            remote,
                            &h,
                            n::UNSUPPORTED_CRITICAL_PAYLOAD,
                            vec![pt],
                        );
                    }
                    _ => self.stats.malformed_dropped += 1,
                }
                return;
            }
            Err(e) => {
                debug!("dropping malformed IKE message from {remote}: {e}");
                self.stats.malformed_dropped += 1;
                return;
            }
        };
        let h = msg.header.clone();
        if h.exchange == EXCH_IKE_SA_INIT && !h.is_response() {
            if h.spi_r != 0 || !h.from_initiator() || h.msg_id != 0 {
                self.stats.malformed_dropped += 1;
                return;
            }
            self.responder_init(now, local, remote, data, &msg);
            return;
        }
        let our_spi = if h.from_initiator() { h.spi_r } else { h.spi_i };
        let Some(mut sa) = self.sas.remove(&our_spi) else {
            debug!("no IKE_SA for SPI {our_spi:016x} (message from {remote})");
            self.stats.unknown_spi_dropped += 1;
            return;
        };
        let init_resp = sa.state == IkeState::InitSent && h.exchange == EXCH_IKE_SA_INIT;
        let spis_ok = h.from_initiator() != sa.initiator
            && h.spi_i == sa.spi_i
            && (h.spi_r == sa.spi_r || init_resp);
        let keep = if !spis_ok {
            self.stats.unknown_spi_dropped += 1;
            true
        } else if h.is_response() {
            self.on_response(now, &mut sa, data, &msg)
        } else {
            self.on_request(now, &mut sa, local, remote, data, &msg)
        };
        let conn = sa.cfg.name.clone();
        if keep {
            self.run_tasks(now, &mut sa);
            self.sas.insert(our_spi, sa);
        } else {
            self.forget(&sa);
        }
        self.resolve_duplicates(now, &conn);
    }

    // ---------------------------------------------------------------- IKE_SA_INIT (responder)

    fn responder_init(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        msg: &Message,
    ) {
        let h = &msg.header;
        if let Some(spi) = self
            .init_index
            .get(&(remote, h.spi_i))
            .copied()
            .filter(|s| self.sas.contains_key(s))
        {
            // A retransmitted IKE_SA_INIT: answer from the cache, never twice the work.
            let resend = self.sas.get(&spi).and_then(|sa| {
                (sa.state == IkeState::InitReplied && sa.init_req == data)
                    .then(|| sa.cached_response.as_ref().map(|(_, d)| d.clone()))
                    .flatten()
            });
            if let Some(d) = resend {
                self.stats.responses_resent += 1;
                self.transmit(local, remote, d);
            }
            return;
        }
        let candidates: Vec<usize> = (0..self.configs.len())
            .filter(|&i| conn_matches_addrs(&self.configs[i], local.ip(), remote.ip()))
            .collect();
        if candidates.is_empty() {
            warn!("no connection configured for IKE_SA_INIT {local} <- {remote}, answering NO_PROPOSAL_CHOSEN");
            self.stats.no_proposal += 1;
            self.reply_plain(local, remote, h, n::NO_PROPOSAL_CHOSEN, vec![]);
            return;
        }
        let found = Collected::from(&msg.payloads);
        let (Some(props), Some((ke_group, ke_data)), Some(nonce_i)) =
            (found.sa, found.ke, found.nonce)
        else {
            debug!("IKE_SA_INIT from {remote} lacks SA, KE or Nonce");
            self.stats.malformed_dropped += 1;
            self.reply_plain(local, remote, h, n::INVALID_SYNTAX, vec![]);
            return;
        };
        let half_open = self
            .sas
            .values()
            .filter(|s| s.state == IkeState::InitReplied)
            .count();
        if half_open >= self.cookie_threshold {
            let expected = self.cookie_for(nonce_i, remote, h.spi_i);
            let ok = codec::find_notify(&msg.payloads, n::COOKIE)
                .is_some_and(|c| ct_eq(&c.data, &expected));
            if !ok {
                debug!("demanding COOKIE from {remote} ({half_open} half-open IKE_SAs)");
                self.stats.cookies_sent += 1;
                self.reply_plain(local, remote, h, n::COOKIE, expected);
                return;
            }
        }
        let chosen = candidates.iter().find_map(|&i| {
            select::select_ike(&self.configs[i].proposals, props, Some(ke_group))
                .map(|(rp, a)| (i, rp.num, a))
        });
        let Some((ci, num, algs)) = chosen else {
            let configured: Vec<String> = candidates
                .iter()
                .map(|&i| select::describe(&select::ike_to_wire(&self.configs[i].proposals, &[])))
                .collect();
            warn!(
                "no acceptable IKE proposal from {remote}: received {}, configured {}",
                select::describe(props),
                configured.join(", ")
            );
            self.stats.no_proposal += 1;
            self.reply_plain(local, remote, h, n::NO_PROPOSAL_CHOSEN, vec![]);
            return;
        };
        if algs.dh.transform_id() != ke_group {
            debug!(
                "IKE_SA_INIT from {remote} has KE group {ke_group}, requesting {}",
                algs.dh.name()
            );
            self.stats.invalid_ke_sent += 1;
            self.reply_plain(
                local,
                remote,
                h,
                n::INVALID_KE_PAYLOAD,
                algs.dh.transform_id().to_be_bytes().to_vec(),
            );
            return;
        }
        let dh = DhPrivate::generate(algs.dh, &mut *self.rng);
        let shared = match dh.shared_secret(ke_data) {
            Ok(s) => s,
            Err(e) => {
                debug!("bad KE from {remote}: {e}");
                self.stats.malformed_dropped += 1;
                self.reply_plain(local, remote, h, n::INVALID_SYNTAX, vec![]);
                return;
            }
        };
        let spi_r = self.new_ike_spi();
        let nonce_r = self.random_bytes(NONCE_LEN);
        let nat_detected = nat_between(&msg.payloads, h.spi_i, 0, remote, local);
        let cfg = self.configs[ci].clone();
        let payloads = vec![
            Payload::Sa(vec![select::ike_reply(num, &algs, &[])]),
            Payload::Ke {
                group: algs.dh.transform_id(),
                data: dh.public_value(),
            },
            Payload::Nonce(nonce_r.clone()),
            Payload::notify(
                n::NAT_DETECTION_SOURCE_IP,
                keys::nat_hash(h.spi_i, spi_r, local),
            ),
            Payload::notify(
                n::NAT_DETECTION_DESTINATION_IP,
                keys::nat_hash(h.spi_i, spi_r, remote),
            ),
        ];
        let rh = Header {
            spi_i: h.spi_i,
            spi_r,
            next_payload: 0,
            version: IKE_VERSION,
            exchange: EXCH_IKE_SA_INIT,
            flags: FLAG_RESPONSE,
            msg_id: 0,
            length: 0,
        };
        let resp = codec::encode_plain(rh, &payloads);
        let seed = keys::skeyseed(algs.prf, nonce_i, &nonce_r, &shared);
        let ike_keys = keys::derive_ike_keys(&algs, &seed, nonce_i, &nonce_r, h.spi_i, spi_r);
        let sk = match SkCrypto::new(&algs, &ike_keys, false) {
            Ok(s) => s,
            Err(e) => {
                warn!("cannot key IKE_SA: {e}");
                return;
            }
        };
        debug!(conn = %cfg.name, "IKE_SA_INIT from {remote}: chose {}{}", algs.describe(), if nat_detected { ", NAT detected" } else { "" });
        let sa = IkeSa {
            algs: Some(algs),
            keys: Some(ike_keys),
            sk: Some(sk),
            nonce_i: nonce_i.to_vec(),
            nonce_r,
            init_req: data.to_vec(),
            init_resp: resp.clone(),
            nat_detected,
            udp_encap: nat_detected || local.port() == NATT_PORT,
            peer_msg_id: 1,
            cached_response: Some((0, resp.clone())),
            expire_at: Some(now + HALF_OPEN_TIMEOUT),
            ..IkeSa::new(
                cfg,
                false,
                h.spi_i,
                spi_r,
                IkeState::InitReplied,
                local,
                remote,
                now,
            )
        };
        self.transmit(local, remote, resp);
        self.emit_keylog(&sa);
        self.init_index.insert((remote, h.spi_i), spi_r);
        self.sas.insert(spi_r, sa);
    }

    // ---------------------------------------------------------------- IKE_SA_INIT (initiator)

    fn start_initiator(&mut self, now: Instant, cfg: IkeConfig) {
        let Some(&remote_ip) = cfg.remote_addrs.first() else {
            return;
        };
        let Some(group) = cfg.proposals.first().and_then(|p| p.dh.first()).copied() else {
            warn!(conn = %cfg.name, "connection {} has no IKE proposal with a DH group", cfg.name);
            return;
        };
        let local_ip = cfg
            .local_addrs
            .iter()
            .find(|a| a.is_ipv4() == remote_ip.is_ipv4())
            .copied()
            .unwrap_or(if remote_ip.is_ipv4() {
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
            });
        let spi_i = self.new_ike_spi();
        let nonce_i = self.random_bytes(NONCE_LEN);
        let dh = DhPrivate::generate(group, &mut *self.rng);
        let local = SocketAddr::new(local_ip, cfg.local_port);
        let remote = SocketAddr::new(remote_ip, cfg.remote_port);
        let mut sa = IkeSa {
            nonce_i,
            dh: Some(dh),
            ..IkeSa::new(cfg, true, spi_i, 0, IkeState::InitSent, local, remote, now)
        };
        info!(conn = %sa.cfg.name, "initiating IKE_SA {}[{:016x}_i] to {}", sa.cfg.name, spi_i, sa.remote);
        self.send_init(now, &mut sa);
        self.sas.insert(spi_i, sa);
    }

    fn send_init(&mut self, now: Instant, sa: &mut IkeSa) {
        let Some(dh) = &sa.dh else { return };
        let mut payloads = Vec::new();
        if let Some(c) = &sa.cookie {
            payloads.push(Payload::notify(n::COOKIE, c.clone()));
        }
        payloads.push(Payload::Sa(select::ike_to_wire(&sa.cfg.proposals, &[])));
        payloads.push(Payload::Ke {
            group: dh.group().transform_id(),
            data: dh.public_value(),
        });
        payloads.push(Payload::Nonce(sa.nonce_i.clone()));
        // encap=always: a deliberately wrong source hash makes the peer see "NAT" too.
        let src = if sa.cfg.encap_always {
            self.random_bytes(20)
        } else {
            keys::nat_hash(sa.spi_i, 0, sa.local)
        };
        payloads.push(Payload::notify(n::NAT_DETECTION_SOURCE_IP, src));
        payloads.push(Payload::notify(
            n::NAT_DETECTION_DESTINATION_IP,
            keys::nat_hash(sa.spi_i, 0, sa.remote),
        ));
        sa.next_msg_id = 0;
        sa.spi_r = 0;
        self.send_request(now, sa, EXCH_IKE_SA_INIT, &payloads, PendingKind::Init);
        if let Some(p) = &sa.pending {
            sa.init_req = p.data.clone();
        }
    }

    fn on_init_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        data: &[u8],
        msg: &Message,
    ) -> bool {
        let p = &msg.payloads;
        if let Some(c) = codec::find_notify(p, n::COOKIE) {
            if sa.cookie_restarts >= MAX_INIT_RESTARTS || c.data.is_empty() || c.data.len() > 64 {
                self.fail_initiator(now, sa, "IKE_SA_INIT failed: peer keeps demanding a COOKIE");
                return false;
            }
            debug!(conn = %sa.cfg.name, "peer demands a COOKIE, restarting IKE_SA_INIT");
            sa.cookie_restarts += 1;
            sa.cookie = Some(c.data.clone());
            self.send_init(now, sa);
            return true;
        }
        if let Some(ike) = codec::find_notify(p, n::INVALID_KE_PAYLOAD) {
            let wanted = requested_group(&ike.data).and_then(DhGroup::from_transform);
            let current = sa.dh.as_ref().map(|d| d.group());
            match wanted {
                Some(g)
                    if Some(g) != current
                        && sa.cookie_restarts < MAX_INIT_RESTARTS
                        && sa.cfg.proposals.iter().any(|pr| pr.dh.contains(&g)) =>
                {
                    info!(conn = %sa.cfg.name, "peer requests DH group {}, restarting IKE_SA_INIT", g.name());
                    sa.cookie_restarts += 1;
                    sa.dh = Some(DhPrivate::generate(g, &mut *self.rng));
                    self.send_init(now, sa);
                    return true;
                }
                _ => {
                    self.fail_initiator(now, sa, "IKE_SA_INIT failed: peer sent INVALID_KE_PAYLOAD for a group we do not offer");
                    return false;
                }
            }
        }
        if let Some(e) = codec::first_error_notify(p) {
            if e.ntype == n::NO_PROPOSAL_CHOSEN {
                self.stats.no_proposal += 1;
                warn!(
                    conn = %sa.cfg.name,
                    "peer accepted none of our IKE proposals: offered {}",
                    select::describe(&select::ike_to_wire(&sa.cfg.proposals, &[]))
                );
            }
            let reason = format!(
                "IKE_SA_INIT failed: peer sent {}",
                codec::notify_name(e.ntype)
            );
            self.fail_initiator(now, sa, &reason);
            return false;
        }
        let found = Collected::from(p);
        let (Some(props), Some((ke_group, ke_data)), Some(nonce_r)) =
            (found.sa, found.ke, found.nonce)
        else {
            // Not a valid answer; keep waiting (retransmits continue) rather than let junk kill us.
            self.stats.malformed_dropped += 1;
            return true;
        };
        let algs = match props {
            [one] => {
                select::ike_from_chosen(one).filter(|a| select::ike_choice_ok(&sa.cfg.proposals, a))
            }
            _ => None,
        };
        let Some(dh) = sa.dh.take() else { return true };
        let Some(algs) = algs.filter(|a| a.dh == dh.group() && ke_group == a.dh.transform_id())
        else {
            self.fail_initiator(
                now,
                sa,
                "IKE_SA_INIT failed: peer chose a proposal we did not offer",
            );
            return false;
        };
        if msg.header.spi_r == 0 {
            sa.dh = Some(dh);
            self.stats.malformed_dropped += 1;
            return true;
        }
        let shared = match dh.shared_secret(ke_data) {
            Ok(s) => s,
            Err(e) => {
                self.fail_initiator(now, sa, &format!("IKE_SA_INIT failed: {e}"));
                return false;
            }
        };
        sa.spi_r = msg.header.spi_r;
        sa.nonce_r = nonce_r.to_vec();
        let seed = keys::skeyseed(algs.prf, &sa.nonce_i, nonce_r, &shared);
        let ike_keys =
            keys::derive_ike_keys(&algs, &seed, &sa.nonce_i, nonce_r, sa.spi_i, sa.spi_r);
        let sk = match SkCrypto::new(&algs, &ike_keys, true) {
            Ok(s) => s,
            Err(e) => {
                self.fail_initiator(now, sa, &format!("cannot key IKE_SA: {e}"));
                return false;
            }
        };
        sa.nat_detected = nat_between(p, sa.spi_i, sa.spi_r, sa.remote, sa.local);
        if sa.nat_detected || sa.cfg.encap_always {
            sa.local.set_port(float_port(sa.local.port()));
            sa.remote.set_port(float_port(sa.remote.port()));
            sa.udp_encap = true;
        }
        sa.algs = Some(algs);
        sa.keys = Some(ike_keys);
        sa.sk = Some(sk);
        sa.init_resp = data.to_vec();
        sa.pending = None;
        sa.state = IkeState::AuthSent;
        self.emit_keylog(sa);
        debug!(conn = %sa.cfg.name, "IKE_SA_INIT done: {}{}", algs.describe(), if sa.nat_detected { ", NAT detected, floating to 4500" } else { "" });
        self.send_auth(now, sa);
        true
    }

    // ---------------------------------------------------------------- IKE_AUTH

    fn send_auth(&mut self, now: Instant, sa: &mut IkeSa) {
        let id = &sa.cfg.local_id;
        let Some(auth) = sa.psk_auth(&sa.cfg.psk, true, &id_body(id.id_type(), &id.data())) else {
            return;
        };
        let mut payloads = vec![Payload::IdI {
            id_type: id.id_type(),
            data: id.data(),
        }];
        if let Some(r) = &sa.cfg.remote_id {
            payloads.push(Payload::IdR {
                id_type: r.id_type(),
                data: r.data(),
            });
        }
        payloads.push(Payload::Auth {
            method: codec::AUTH_PSK,
            data: auth.to_vec(),
        });
        // Like strongSwan: only claim "no other SAs" when it is true.
        let others = self
            .sas
            .values()
            .any(|o| o.cfg.name == sa.cfg.name && o.spi_i != sa.spi_i);
        if !others {
            payloads.push(Payload::notify(n::INITIAL_CONTACT, vec![]));
        }
        let mut child = None;
        if let Some(c) = sa.cfg.children.first().cloned() {
            let spi_in = self.new_child_spi(Some(sa));
            payloads.push(Payload::Sa(select::esp_to_wire(
                &c.proposals,
                spi_in,
                false,
            )));
            payloads.push(Payload::TsI(select::ts_to_wire(&prefixes_to_ts(
                &c.local_ts,
            ))));
            payloads.push(Payload::TsR(select::ts_to_wire(&prefixes_to_ts(
                &c.remote_ts,
            ))));
            child = Some((c.name.clone(), spi_in));
        }
        self.send_request(
            now,
            sa,
            EXCH_IKE_AUTH,
            &payloads,
            PendingKind::Auth { child },
        );
    }

    fn on_auth_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        payloads: &[Payload],
        child: Option<(String, u32)>,
    ) -> bool {
        let found = Collected::from(payloads);
        let (Some((id_type, id_data)), Some((method, auth_data))) = (found.idr, found.auth) else {
            let reason = match codec::first_error_notify(payloads) {
                Some(e) if e.ntype == n::AUTHENTICATION_FAILED => {
                    self.stats.auth_failures += 1;
                    "authentication failed: peer sent AUTHENTICATION_FAILED (PSK or identity mismatch)".to_string()
                }
                Some(e) => format!("IKE_AUTH failed: peer sent {}", codec::notify_name(e.ntype)),
                None => "IKE_AUTH failed: response without IDr/AUTH".to_string(),
            };
            self.fail_initiator(now, sa, &reason);
            return false;
        };
        let peer_id = Identity::from_wire(id_type, id_data);
        if let Some(want) = &sa.cfg.remote_id {
            if peer_id.as_ref().ok() != Some(want) {
                self.stats.auth_failures += 1;
                let got = peer_id.map(|i| i.to_string()).unwrap_or_else(|e| e);
                self.fail_initiator(now, sa, &format!("authentication failed: peer identity '{got}' is not the configured '{want}'"));
                return false;
            }
        }
        let verified = sa
            .psk_auth(&sa.cfg.psk, false, &id_body(id_type, id_data))
            .is_some_and(|expected| ct_eq(&expected, auth_data));
        if method != codec::AUTH_PSK || !verified {
            self.stats.auth_failures += 1;
            self.fail_initiator(
                now,
                sa,
                "authentication failed: peer's AUTH payload does not verify with our PSK",
            );
            return false;
        }
        self.established(now, sa);
        if let Some((name, spi_in)) = child {
            self.finish_initiated_child(now, sa, payloads, name, spi_in, None, None, None);
        }
        let more: Vec<String> = sa
            .cfg
            .children
            .iter()
            .skip(1)
            .map(|c| c.name.clone())
            .collect();
        sa.tasks.extend(more.into_iter().map(Task::CreateChild));
        true
    }

    fn established(&mut self, now: Instant, sa: &mut IkeSa) {
        sa.state = IkeState::Established;
        sa.established_at = Some(now);
        sa.expire_at = None;
        sa.last_inbound = now;
        sa.rekey_at = self.jittered(now, sa.cfg.rekey_time);
        self.stats.ike_established += 1;
        self.emit_ike_up(sa);
    }

    /// Initiator side of child creation (IKE_AUTH or CREATE_CHILD_SA response).
    #[allow(clippy::too_many_arguments)]
    fn finish_initiated_child(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        payloads: &[Payload],
        name: String,
        spi_in: u32,
        nonce_i: Option<&[u8]>,
        dh: Option<DhPrivate>,
        rekey_of: Option<u32>,
    ) -> Option<u32> {
        let ccfg = sa.cfg.children.iter().find(|c| c.name == name).cloned()?;
        if let Some(e) = codec::first_error_notify(payloads) {
            match e.ntype {
                n::NO_PROPOSAL_CHOSEN => {
                    self.stats.no_proposal += 1;
                    warn!(
                        conn = %sa.cfg.name,
                        "CHILD_SA {name} not established: peer sent NO_PROPOSAL_CHOSEN; offered {}",
                        select::describe(&select::esp_to_wire(&ccfg.proposals, spi_in, nonce_i.is_some()))
                    );
                }
                n::TS_UNACCEPTABLE => {
                    self.stats.ts_unacceptable += 1;
                    warn!(
                        conn = %sa.cfg.name,
                        "CHILD_SA {name} not established: peer sent TS_UNACCEPTABLE for {} === {}",
                        ts_list(&prefixes_to_ts(&ccfg.local_ts)),
                        ts_list(&prefixes_to_ts(&ccfg.remote_ts))
                    );
                }
                t => {
                    warn!(conn = %sa.cfg.name, "CHILD_SA {name} not established: peer sent {}", codec::notify_name(t))
                }
            }
            return None;
        }
        let Collected {
            sa: sa_p,
            nonce: nonce_r,
            ke,
            tsi,
            tsr,
            ..
        } = Collected::from(payloads);
        let chosen = match sa_p {
            Some([one]) => select::esp_from_chosen(&ccfg.proposals, one, dh.is_some()),
            _ => None,
        };
        let local_ts = tsi
            .map(|t| select::narrow(&t, &prefixes_to_ts(&ccfg.local_ts)))
            .unwrap_or_default();
        let remote_ts = tsr
            .map(|t| select::narrow(&t, &prefixes_to_ts(&ccfg.remote_ts)))
            .unwrap_or_default();
        let Some((spi_out, algs)) = chosen else {
            warn!(conn = %sa.cfg.name, "CHILD_SA {name}: peer chose an ESP proposal we did not offer");
            return None;
        };
        if local_ts.is_empty() || remote_ts.is_empty() {
            warn!(conn = %sa.cfg.name, "CHILD_SA {name}: peer's traffic selectors are outside ours");
            sa.tasks.push_front(Task::DeleteChild(spi_in));
        }
        let (ni, nr): (Vec<u8>, Vec<u8>) = match (nonce_i, nonce_r) {
            (Some(ni), Some(nr)) => (ni.to_vec(), nr.to_vec()),
            (None, _) => (sa.nonce_i.clone(), sa.nonce_r.clone()),
            (Some(_), None) => {
                warn!(conn = %sa.cfg.name, "CHILD_SA {name}: response without nonce");
                return None;
            }
        };
        let shared = match (&dh, ke) {
            (None, _) => None,
            (Some(d), Some((g, data)))
                if g == d.group().transform_id() && algs.dh == Some(d.group()) =>
            {
                match d.shared_secret(data) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        warn!(conn = %sa.cfg.name, "CHILD_SA {name}: bad KE: {e}");
                        return None;
                    }
                }
            }
            _ => {
                warn!(conn = %sa.cfg.name, "CHILD_SA {name}: response lacks the PFS KE payload");
                return None;
            }
        };
        let choice = ChildChoice {
            cfg: ccfg,
            spi_out,
            algs,
            local_ts,
            remote_ts,
        };
        self.install_child(
            now,
            sa,
            choice,
            spi_in,
            shared.as_deref().map(|s| &s[..]),
            &ni,
            &nr,
            true,
            rekey_of,
        );
        Some(spi_in)
    }

    /// Creates the CHILD SA state and emits ChildUp with keys oriented for our side.
    #[allow(clippy::too_many_arguments)]
    fn install_child(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        choice: ChildChoice,
        spi_in: u32,
        shared: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
        we_initiated: bool,
        rekey_of: Option<u32>,
    ) {
        let (Some(ike_algs), Some(k)) = (sa.algs, &sa.keys) else {
            return;
        };
        let ChildChoice {
            cfg: ccfg,
            spi_out,
            algs,
            local_ts,
            remote_ts,
        } = choice;
        let ck = keys::child_keys(ike_algs.prf, &k.sk_d, shared, ni, nr, algs.encr, algs.integ);
        let (ek_out, ik_out, ek_in, ik_in) = if we_initiated {
            (ck.encr_i2r, ck.integ_i2r, ck.encr_r2i, ck.integ_r2i)
        } else {
            (ck.encr_r2i, ck.integ_r2i, ck.encr_i2r, ck.integ_i2r)
        };
        let rekey_at = self.jittered(now, ccfg.rekey_time);
        info!(
            conn = %sa.cfg.name,
            "CHILD_SA {}{{{:08x}_i {:08x}_o}} {} with {}, {} === {}{}",
            ccfg.name,
            spi_in,
            spi_out,
            if rekey_of.is_some() { "rekeyed" } else { "established" },
            algs.describe(),
            ts_list(&local_ts),
            ts_list(&remote_ts),
            if sa.udp_encap { ", UDP-encapsulated" } else { "" }
        );
        if rekey_of.is_some() {
            self.stats.child_rekeyed += 1;
        } else {
            self.stats.child_established += 1;
        }
        self.events.push_back(Event::ChildUp(ChildSa {
            conn: sa.cfg.name.clone(),
            child: ccfg.name.clone(),
            spi_in,
            spi_out,
            encr: algs.encr,
            integ: algs.integ,
            esn: algs.esn,
            dh: algs.dh,
            encr_key_in: ek_in,
            integ_key_in: ik_in,
            encr_key_out: ek_out,
            integ_key_out: ik_out,
            local_ts: local_ts.clone(),
            remote_ts: remote_ts.clone(),
            local: sa.local,
            remote: sa.remote,
            udp_encap: sa.udp_encap,
            replay_window: ccfg.replay_window,
            rekey_of,
        }));
        sa.children.push(Child {
            name: ccfg.name.clone(),
            spi_in,
            spi_out,
            algs,
            local_ts,
            remote_ts,
            installed_at: now,
            rekey_at,
            state: ChildState::Installed,
            udp_encap: sa.udp_encap,
            last_activity: None,
            peer_rekeyed: None,
            expire_at: None,
        });
    }

    /// Responder: picks the child config, proposal and narrowed selectors for a request;
    /// Ok also carries the number of the peer's proposal chosen. Err = the notify to answer.
    #[allow(clippy::too_many_arguments)]
    fn negotiate_child(
        &mut self,
        sa: &IkeSa,
        props: &[codec::Proposal],
        tsi: &[TrafficSelector],
        tsr: &[TrafficSelector],
        with_dh: bool,
        ke_group: Option<u16>,
        only: Option<&str>,
    ) -> Result<(ChildChoice, u8), u16> {
        let mut proposal_matched = false;
        for c in sa
            .cfg
            .children
            .iter()
            .filter(|c| only.is_none_or(|o| o == c.name))
        {
            let Some((rp, algs)) = select::select_esp(&c.proposals, props, with_dh, ke_group)
            else {
                continue;
            };
            proposal_matched = true;
            let remote_ts = select::narrow(tsi, &prefixes_to_ts(&c.remote_ts));
            let local_ts = select::narrow(tsr, &prefixes_to_ts(&c.local_ts));
            if remote_ts.is_empty() || local_ts.is_empty() {
                continue;
            }
            let spi: [u8; 4] = rp.spi.as_slice().try_into().unwrap_or([0; 4]);
            let choice = ChildChoice {
                cfg: c.clone(),
                spi_out: u32::from_be_bytes(spi),
                algs,
                local_ts,
                remote_ts,
            };
            return Ok((choice, rp.num));
        }
        if proposal_matched {
            self.stats.ts_unacceptable += 1;
            let cfgd: Vec<String> = sa
                .cfg
                .children
                .iter()
                .map(|c| {
                    format!(
                        "{} === {}",
                        ts_list(&prefixes_to_ts(&c.local_ts)),
                        ts_list(&prefixes_to_ts(&c.remote_ts))
                    )
                })
                .collect();
            warn!(conn = %sa.cfg.name, "traffic selectors unacceptable: received {} === {}, configured {}", ts_list(tsr), ts_list(tsi), cfgd.join(", "));
            Err(n::TS_UNACCEPTABLE)
        } else {
            self.stats.no_proposal += 1;
            let cfgd: Vec<String> = sa
                .cfg
                .children
                .iter()
                .map(|c| select::describe(&select::esp_to_wire(&c.proposals, 0, with_dh)))
                .collect();
            warn!(conn = %sa.cfg.name, "no acceptable ESP proposal: received {}, configured {}", select::describe(props), cfgd.join(", "));
            Err(n::NO_PROPOSAL_CHOSEN)
        }
    }

    fn on_auth_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        msg_id: u32,
        payloads: &[Payload],
    ) -> bool {
        let Collected {
            idi,
            idr,
            auth,
            sa: sa_p,
            tsi,
            tsr,
            ..
        } = Collected::from(payloads);
        let peer_id = idi.and_then(|(t, d)| Identity::from_wire(t, d).ok());
        let our_id_wanted = idr.and_then(|(t, d)| Identity::from_wire(t, d).ok());
        let verified = match (idi, &peer_id, auth) {
            (Some((t, d)), Some(pid), Some((codec::AUTH_PSK, adata))) => {
                let body = id_body(t, d);
                let cands: Vec<&IkeConfig> = self
                    .configs
                    .iter()
                    .filter(|c| conn_matches_addrs(c, sa.local.ip(), sa.remote.ip()))
                    .filter(|c| c.remote_id.as_ref().is_none_or(|r| r == pid))
                    .collect();
                // Prefer connections whose local ID is the one the peer asked for.
                let preferred: Vec<&IkeConfig> = cands
                    .iter()
                    .copied()
                    .filter(|c| Some(&c.local_id) == our_id_wanted.as_ref())
                    .collect();
                let order = if preferred.is_empty() {
                    cands
                } else {
                    preferred
                };
                order
                    .into_iter()
                    .find(|c| {
                        sa.psk_auth(&c.psk, true, &body)
                            .is_some_and(|expected| ct_eq(&expected, adata))
                    })
                    .cloned()
            }
            _ => None,
        };
        let Some(cfg) = verified else {
            self.stats.auth_failures += 1;
            let who = peer_id
                .map(|i| i.to_string())
                .unwrap_or_else(|| "<no valid IDi>".into());
            warn!("authentication of '{who}' ({}) failed: PSK or identity mismatch; answering AUTHENTICATION_FAILED", sa.remote);
            self.send_notify(sa, EXCH_IKE_AUTH, msg_id, n::AUTHENTICATION_FAILED, vec![]);
            self.forget(sa);
            return false;
        };
        sa.cfg = cfg;
        if codec::find_notify(payloads, n::INITIAL_CONTACT).is_some() {
            self.drop_stale_sas(sa);
        }
        let our_id = &sa.cfg.local_id;
        let body = id_body(our_id.id_type(), &our_id.data());
        let Some(our_auth) = sa.psk_auth(&sa.cfg.psk, false, &body) else {
            return false;
        };
        let mut resp = vec![
            Payload::IdR {
                id_type: our_id.id_type(),
                data: our_id.data(),
            },
            Payload::Auth {
                method: codec::AUTH_PSK,
                data: our_auth.to_vec(),
            },
        ];
        sa.pending = None;
        self.established(now, sa);
        if let (Some(props), Some(tsi), Some(tsr)) = (sa_p, tsi, tsr) {
            match self.negotiate_child(sa, props, &tsi, &tsr, false, None, None) {
                Ok((choice, num)) => {
                    let spi_in = self.new_child_spi(Some(sa));
                    resp.push(Payload::Sa(vec![select::esp_reply(
                        num,
                        &choice.algs,
                        spi_in,
                    )]));
                    resp.push(Payload::TsI(select::ts_to_wire(&choice.remote_ts)));
                    resp.push(Payload::TsR(select::ts_to_wire(&choice.local_ts)));
                    let (ni, nr) = (sa.nonce_i.clone(), sa.nonce_r.clone());
                    self.send_response(sa, EXCH_IKE_AUTH, msg_id, &resp);
                    self.install_child(now, sa, choice, spi_in, None, &ni, &nr, false, None);
                    return true;
                }
                Err(nt) => resp.push(Payload::notify(nt, vec![])),
            }
        }
        self.send_response(sa, EXCH_IKE_AUTH, msg_id, &resp);
        true
    }

    /// INITIAL_CONTACT: the peer has no other SAs with us; drop whatever we still hold.
    fn drop_stale_sas(&mut self, sa: &IkeSa) {
        let stale: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, s)| {
                s.cfg.name == sa.cfg.name
                    && s.remote.ip() == sa.remote.ip()
                    && matches!(s.state, IkeState::Established | IkeState::Rekeyed)
            })
            .map(|(k, _)| *k)
            .collect();
        for id in stale {
            if let Some(mut old) = self.sas.remove(&id) {
                self.emit_all_down(&mut old, "replaced (peer sent INITIAL_CONTACT)");
                self.forget(&old);
            }
        }
    }

    // ---------------------------------------------------------------- protected messages

    fn on_response(&mut self, now: Instant, sa: &mut IkeSa, data: &[u8], msg: &Message) -> bool {
        let Some(p) = &sa.pending else {
            self.stats.bad_msgid_dropped += 1;
            return true;
        };
        if p.msg_id != msg.header.msg_id {
            self.stats.bad_msgid_dropped += 1;
            return true;
        }
        if msg.header.exchange == EXCH_IKE_SA_INIT {
            if !matches!(p.kind, PendingKind::Init) {
                self.stats.malformed_dropped += 1;
                return true;
            }
            sa.last_inbound = now;
            return self.on_init_response(now, sa, data, msg);
        }
        let (Some(sk), Some(loc)) = (&sa.sk, &msg.sk) else {
            self.stats.malformed_dropped += 1;
            return true;
        };
        let payloads = match sk.open(data, loc) {
            Ok(p) => p,
            Err(SkError::Integrity) => {
                self.stats.decrypt_failed += 1;
                return true;
            }
            Err(e) => {
                debug!(conn = %sa.cfg.name, "dropping response: {e}");
                self.stats.malformed_dropped += 1;
                return true;
            }
        };
        sa.last_inbound = now;
        let Some(pending) = sa.pending.take() else {
            return true;
        };
        if sa.state == IkeState::Deleting && !matches!(pending.kind, PendingKind::DeleteIke) {
            self.send_delete_ike(now, sa);
            return true;
        }
        debug!(conn = %sa.cfg.name, msg_id = pending.msg_id, "received {} response", pending.kind.name());
        match pending.kind {
            PendingKind::Init => true,
            PendingKind::Auth { child } => self.on_auth_response(now, sa, &payloads, child),
            PendingKind::CreateChild {
                child,
                spi_in,
                nonce,
                dh,
                rekey_of,
            } => {
                self.on_create_child_response(
                    now, sa, &payloads, child, spi_in, nonce, dh, rekey_of,
                );
                true
            }
            PendingKind::RekeyIke { spi, nonce, dh } => {
                self.on_ike_rekey_response(now, sa, &payloads, spi, nonce, dh)
            }
            PendingKind::DeleteChildren(spis) => {
                for spi in spis {
                    if let Some(i) = sa.children.iter().position(|c| c.spi_in == spi) {
                        let c = sa.children.remove(i);
                        let reason = if c.state == ChildState::Rekeyed {
                            "rekeyed"
                        } else {
                            "deleted"
                        };
                        self.emit_child_down(&sa.cfg.name.clone(), &c, reason);
                    }
                }
                true
            }
            PendingKind::DeleteIke => {
                if sa.state == IkeState::Rekeyed {
                    self.drop_replaced(sa);
                }
                self.forget(sa);
                false
            }
            PendingKind::Dpd => true,
        }
    }

    fn on_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        msg: &Message,
    ) -> bool {
        let (Some(sk), Some(loc)) = (&sa.sk, &msg.sk) else {
            self.stats.malformed_dropped += 1;
            return true;
        };
        let mid = msg.header.msg_id;
        let opened = sk.open(data, loc);
        if let Err(SkError::Integrity) = opened {
            self.stats.decrypt_failed += 1;
            return true;
        }
        if let Some((cmid, cached)) = &sa.cached_response {
            if *cmid == mid && mid.wrapping_add(1) == sa.peer_msg_id {
                // The peer did not get our response: re-send it, do not process again.
                debug!(conn = %sa.cfg.name, msg_id = mid, "retransmitted request, re-sending cached response");
                self.stats.responses_resent += 1;
                let d = cached.clone();
                self.transmit(local, remote, d);
                sa.last_inbound = now; // authenticated, so the peer is alive
                return true;
            }
        }
        if mid != sa.peer_msg_id {
            debug!(conn = %sa.cfg.name, "request with message ID {mid}, expected {}", sa.peer_msg_id);
            self.stats.bad_msgid_dropped += 1;
            return true;
        }
        let payloads = match opened {
            Ok(p) => p,
            Err(SkError::Parse(ParseError::UnsupportedCritical(pt))) => {
                sa.peer_msg_id = sa.peer_msg_id.wrapping_add(1);
                self.send_notify(
                    sa,
                    msg.header.exchange,
                    mid,
                    n::UNSUPPORTED_CRITICAL_PAYLOAD,
                    vec![pt],
                );
                return sa.state != IkeState::InitReplied;
            }
            Err(e) => {
                debug!(conn = %sa.cfg.name, "dropping request: {e}");
                self.stats.malformed_dropped += 1;
                return true;
            }
        };
        sa.last_inbound = now;
        // The peer may have floated to 4500 or its NAT mapping changed: answer where it is.
        if (sa.local, sa.remote) != (local, remote) {
            debug!(conn = %sa.cfg.name, "peer moved from {} to {} (local {})", sa.remote, remote, local);
            sa.local = local;
            sa.remote = remote;
            if local.port() == NATT_PORT {
                sa.udp_encap = true;
            }
        }
        sa.peer_msg_id = sa.peer_msg_id.wrapping_add(1);
        debug!(conn = %sa.cfg.name, msg_id = mid, exchange = msg.header.exchange, "received request");
        match (msg.header.exchange, sa.state) {
            (EXCH_IKE_AUTH, IkeState::InitReplied) => self.on_auth_request(now, sa, mid, &payloads),
            (_, IkeState::InitReplied) | (EXCH_IKE_AUTH, _) => {
                self.send_notify(sa, msg.header.exchange, mid, n::INVALID_SYNTAX, vec![]);
                sa.state != IkeState::InitReplied
            }
            (EXCH_CREATE_CHILD_SA, IkeState::Established) => {
                self.on_create_child_request(now, sa, mid, &payloads)
            }
            (EXCH_CREATE_CHILD_SA, _) => {
                self.send_notify(sa, EXCH_CREATE_CHILD_SA, mid, n::TEMPORARY_FAILURE, vec![]);
                true
            }
            (EXCH_INFORMATIONAL, _) => self.on_informational_request(now, sa, mid, &payloads),
            _ => {
                self.stats.malformed_dropped += 1;
                true
            }
        }
    }

    fn on_informational_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        msg_id: u32,
        payloads: &[Payload],
    ) -> bool {
        let mut delete_ike = false;
        let mut ours = Vec::new();
        for p in payloads {
            match p {
                Payload::Delete {
                    protocol: PROTO_IKE,
                    ..
                } => delete_ike = true,
                Payload::Delete {
                    protocol: PROTO_ESP,
                    spi_size: 4,
                    spis,
                } => {
                    for s in spis {
                        let Ok(b) = <[u8; 4]>::try_from(s.as_slice()) else {
                            continue;
                        };
                        let spi_out = u32::from_be_bytes(b);
                        if let Some(i) = sa.children.iter().position(|c| c.spi_out == spi_out) {
                            let c = sa.children.remove(i);
                            ours.push(c.spi_in.to_be_bytes().to_vec());
                            let reason = if c.state == ChildState::Rekeyed {
                                "rekeyed"
                            } else {
                                "deleted by peer"
                            };
                            self.emit_child_down(&sa.cfg.name.clone(), &c, reason);
                        }
                    }
                }
                Payload::Notify(nt) => {
                    debug!(conn = %sa.cfg.name, "INFORMATIONAL notify {}", codec::notify_name(nt.ntype))
                }
                _ => {}
            }
        }
        if delete_ike {
            self.send_response(sa, EXCH_INFORMATIONAL, msg_id, &[]);
            match sa.state {
                IkeState::Rekeyed => self.drop_replaced(sa),
                IkeState::Deleting => {}
                _ => {
                    self.emit_all_down(sa, "deleted by peer");
                    // start_action=start means "keep it up", like strongSwan's close_action=start.
                    if sa.cfg.start_action == StartAction::Start {
                        let at = later(now, sa.cfg.retransmit.timeout);
                        self.schedule_restart(&sa.cfg.name.clone(), at);
                    }
                }
            }
            self.forget(sa);
            return false;
        }
        let resp = if ours.is_empty() {
            vec![]
        } else {
            vec![Payload::Delete {
                protocol: PROTO_ESP,
                spi_size: 4,
                spis: ours,
            }]
        };
        self.send_response(sa, EXCH_INFORMATIONAL, msg_id, &resp);
        true
    }

    // ---------------------------------------------------------------- CREATE_CHILD_SA

    fn on_create_child_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        msg_id: u32,
        payloads: &[Payload],
    ) -> bool {
        let Collected {
            sa: sa_p,
            nonce: nonce_i,
            ke,
            tsi,
            tsr,
            ..
        } = Collected::from(payloads);
        let (Some(props), Some(nonce_i)) = (sa_p, nonce_i) else {
            self.send_notify(sa, EXCH_CREATE_CHILD_SA, msg_id, n::INVALID_SYNTAX, vec![]);
            return true;
        };
        if props.iter().any(|p| p.protocol == PROTO_IKE) {
            return self.on_ike_rekey_request(now, sa, msg_id, props, nonce_i, ke);
        }
        let (Some(tsi), Some(tsr)) = (tsi, tsr) else {
            self.send_notify(sa, EXCH_CREATE_CHILD_SA, msg_id, n::INVALID_SYNTAX, vec![]);
            return true;
        };
        let mut rekey_of = None;
        let mut only = None;
        if let Some(r) = codec::find_notify(payloads, n::REKEY_SA) {
            let spi = <[u8; 4]>::try_from(r.spi.as_slice())
                .map(u32::from_be_bytes)
                .unwrap_or(0);
            match sa.children.iter().find(|c| {
                c.spi_out == spi && matches!(c.state, ChildState::Installed | ChildState::Rekeying)
            }) {
                Some(c) => {
                    rekey_of = Some(c.spi_in);
                    only = Some(c.name.clone());
                }
                None => {
                    debug!(conn = %sa.cfg.name, "peer rekeys unknown CHILD_SA {spi:08x}");
                    let nt = codec::Notify {
                        protocol: PROTO_ESP,
                        spi: r.spi.clone(),
                        ntype: n::CHILD_SA_NOT_FOUND,
                        data: vec![],
                    };
                    self.send_response(sa, EXCH_CREATE_CHILD_SA, msg_id, &[Payload::Notify(nt)]);
                    return true;
                }
            }
        }
        let ke_group = ke.map(|(g, _)| g);
        let (choice, num) =
            match self.negotiate_child(sa, props, &tsi, &tsr, true, ke_group, only.as_deref()) {
                Ok(x) => x,
                Err(nt) => {
                    self.send_notify(sa, EXCH_CREATE_CHILD_SA, msg_id, nt, vec![]);
                    return true;
                }
            };
        let mut shared = None;
        let mut our_ke = None;
        if let Some(g) = choice.algs.dh {
            match ke {
                Some((kg, data)) if kg == g.transform_id() => {
                    let d = DhPrivate::generate(g, &mut *self.rng);
                    match d.shared_secret(data) {
                        Ok(s) => shared = Some(s),
                        Err(e) => {
                            debug!(conn = %sa.cfg.name, "bad KE in CREATE_CHILD_SA: {e}");
                            self.send_notify(
                                sa,
                                EXCH_CREATE_CHILD_SA,
                                msg_id,
                                n::INVALID_SYNTAX,
                                vec![],
                            );
                            return true;
                        }
                    }
                    our_ke = Some(Payload::Ke {
                        group: kg,
                        data: d.public_value(),
                    });
                }
                _ => {
                    self.stats.invalid_ke_sent += 1;
                    self.send_notify(
                        sa,
                        EXCH_CREATE_CHILD_SA,
                        msg_id,
                        n::INVALID_KE_PAYLOAD,
                        g.transform_id().to_be_bytes().to_vec(),
                    );
                    return true;
                }
            }
        }
        let spi_in = self.new_child_spi(Some(sa));
        let nonce_r = self.random_bytes(NONCE_LEN);
        let mut resp = vec![
            Payload::Sa(vec![select::esp_reply(num, &choice.algs, spi_in)]),
            Payload::Nonce(nonce_r.clone()),
        ];
        resp.extend(our_ke);
        resp.push(Payload::TsI(select::ts_to_wire(&choice.remote_ts)));
        resp.push(Payload::TsR(select::ts_to_wire(&choice.local_ts)));
        self.send_response(sa, EXCH_CREATE_CHILD_SA, msg_id, &resp);
        self.install_child(
            now,
            sa,
            choice,
            spi_in,
            shared.as_deref().map(|s| &s[..]),
            nonce_i,
            &nonce_r,
            false,
            rekey_of,
        );
        if let Some(old) = rekey_of.and_then(|o| sa.child_by_in_mut(o)) {
            old.peer_rekeyed = Some((nonce_i.to_vec(), nonce_r, spi_in));
            if old.state == ChildState::Installed {
                // The peer deletes the old SA; do not keep it forever if it never does.
                old.state = ChildState::Rekeyed;
                old.rekey_at = None;
                old.expire_at = Some(now + REPLACED_SA_TIMEOUT);
            }
        }
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn on_create_child_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        payloads: &[Payload],
        name: String,
        spi_in: u32,
        nonce: Vec<u8>,
        dh: Option<DhPrivate>,
        rekey_of: Option<u32>,
    ) {
        if let Some(e) = codec::first_error_notify(payloads) {
            if let Some(old) = rekey_of.and_then(|o| sa.child_by_in_mut(o)) {
                if old.state == ChildState::Rekeying {
                    old.state = ChildState::Installed;
                }
            }
            match e.ntype {
                n::INVALID_KE_PAYLOAD => {
                    let g = requested_group(&e.data);
                    let acceptable = g
                        .and_then(DhGroup::from_transform)
                        .is_some_and(|g| dh.as_ref().is_none_or(|d| d.group() != g));
                    if let (Some(old), true) = (rekey_of, acceptable) {
                        sa.tasks.push_front(Task::RekeyChild(old, g));
                        return;
                    }
                }
                n::TEMPORARY_FAILURE => {
                    if let Some(old) = rekey_of {
                        let delay = self.temporary_failure_delay();
                        if let Some(c) = sa.child_by_in_mut(old) {
                            c.rekey_at = Some(now + delay);
                        }
                        debug!(conn = %sa.cfg.name, "CHILD_SA rekey got TEMPORARY_FAILURE, retrying in {delay:?}");
                        return;
                    }
                }
                n::CHILD_SA_NOT_FOUND => {
                    if let Some(i) =
                        rekey_of.and_then(|o| sa.children.iter().position(|c| c.spi_in == o))
                    {
                        let c = sa.children.remove(i);
                        self.emit_child_down(
                            &sa.cfg.name.clone(),
                            &c,
                            "peer does not know it (CHILD_SA_NOT_FOUND)",
                        );
                        let nm = c.name.clone();
                        sa.tasks.push_back(Task::CreateChild(nm));
                        return;
                    }
                }
                _ => {}
            }
            // Report (NO_PROPOSAL_CHOSEN etc.) and retry a failed rekey later.
            self.finish_initiated_child(
                now,
                sa,
                payloads,
                name,
                spi_in,
                Some(&nonce),
                None,
                rekey_of,
            );
            if let Some(c) = rekey_of.and_then(|o| sa.child_by_in_mut(o)) {
                c.rekey_at = Some(now + Duration::from_secs(60));
            }
            return;
        }
        let nonce_r = Collected::from(payloads).nonce;
        let created = self.finish_initiated_child(
            now,
            sa,
            payloads,
            name,
            spi_in,
            Some(&nonce),
            dh,
            rekey_of,
        );
        let Some(old_spi) = rekey_of else { return };
        let Some(new_spi) = created else {
            if let Some(c) = sa.child_by_in_mut(old_spi) {
                c.state = ChildState::Installed;
                c.rekey_at = Some(now + Duration::from_secs(60));
            }
            return;
        };
        let conn = sa.cfg.name.clone();
        let Some(old) = sa.child_by_in_mut(old_spi) else {
            // The old SA vanished meanwhile (deleted by the peer): keep the new one.
            return;
        };
        old.state = ChildState::Rekeyed;
        old.rekey_at = None;
        if let (Some((pni, pnr, _)), Some(nr)) = (&old.peer_rekeyed, &nonce_r) {
            // Simultaneous rekey: the SA of the exchange with the lowest nonce is redundant
            // and deleted by its initiator (RFC 7296 2.8.1).
            let ours_min = std::cmp::min(nonce.as_slice(), *nr);
            let theirs_min = std::cmp::min(pni.as_slice(), pnr.as_slice());
            if ours_min < theirs_min {
                info!(conn = %conn, "simultaneous CHILD_SA rekey: ours lost, deleting redundant {new_spi:08x}");
                old.expire_at = Some(now + REPLACED_SA_TIMEOUT);
                if let Some(c) = sa.child_by_in_mut(new_spi) {
                    c.state = ChildState::Deleting;
                    c.rekey_at = None;
                }
                sa.tasks.push_front(Task::DeleteChild(new_spi));
                return;
            }
            info!(conn = %conn, "simultaneous CHILD_SA rekey: ours won");
        }
        sa.tasks.push_front(Task::DeleteChild(old_spi));
    }

    // ---------------------------------------------------------------- IKE rekey

    fn on_ike_rekey_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        msg_id: u32,
        props: &[codec::Proposal],
        nonce_i: &[u8],
        ke: Option<(u16, &[u8])>,
    ) -> bool {
        // Our own exchanges must finish first (strongSwan does the same).
        let collision = matches!(&sa.pending, Some(p) if !matches!(p.kind, PendingKind::Dpd));
        let busy = sa.children.iter().any(|c| c.state == ChildState::Rekeying);
        if collision || busy {
            // Let the peer retry later; our own rekey (if any) proceeds.
            debug!(conn = %sa.cfg.name, "peer rekeys IKE_SA while we are busy rekeying: TEMPORARY_FAILURE");
            self.send_notify(
                sa,
                EXCH_CREATE_CHILD_SA,
                msg_id,
                n::TEMPORARY_FAILURE,
                vec![],
            );
            return true;
        }
        let (Some(old_algs), Some(old_keys)) = (sa.algs, &sa.keys) else {
            return true;
        };
        let Some((ke_group, ke_data)) = ke else {
            self.send_notify(sa, EXCH_CREATE_CHILD_SA, msg_id, n::INVALID_SYNTAX, vec![]);
            return true;
        };
        let valid: Vec<codec::Proposal> = props
            .iter()
            .filter(|p| p.protocol == PROTO_IKE && p.spi.len() == 8)
            .cloned()
            .collect();
        let Some((rp, algs)) = select::select_ike(&sa.cfg.proposals, &valid, Some(ke_group)) else {
            self.stats.no_proposal += 1;
            warn!(
                conn = %sa.cfg.name,
                "no acceptable proposal for IKE rekey: received {}, configured {}",
                select::describe(props),
                select::describe(&select::ike_to_wire(&sa.cfg.proposals, &[]))
            );
            self.send_notify(
                sa,
                EXCH_CREATE_CHILD_SA,
                msg_id,
                n::NO_PROPOSAL_CHOSEN,
                vec![],
            );
            return true;
        };
        if algs.dh.transform_id() != ke_group {
            self.stats.invalid_ke_sent += 1;
            self.send_notify(
                sa,
                EXCH_CREATE_CHILD_SA,
                msg_id,
                n::INVALID_KE_PAYLOAD,
                algs.dh.transform_id().to_be_bytes().to_vec(),
            );
            return true;
        }
        let new_spi_i = <[u8; 8]>::try_from(rp.spi.as_slice())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        let dh = DhPrivate::generate(algs.dh, &mut *self.rng);
        let Ok(shared) = dh.shared_secret(ke_data) else {
            self.send_notify(sa, EXCH_CREATE_CHILD_SA, msg_id, n::INVALID_SYNTAX, vec![]);
            return true;
        };
        let new_spi_r = self.new_ike_spi();
        let nonce_r = self.random_bytes(NONCE_LEN);
        let seed = keys::rekey_skeyseed(old_algs.prf, &old_keys.sk_d, &shared, nonce_i, &nonce_r);
        let new_keys = keys::derive_ike_keys(&algs, &seed, nonce_i, &nonce_r, new_spi_i, new_spi_r);
        let Ok(sk) = SkCrypto::new(&algs, &new_keys, false) else {
            return true;
        };
        let resp = vec![
            Payload::Sa(vec![select::ike_reply(
                rp.num,
                &algs,
                &new_spi_r.to_be_bytes(),
            )]),
            Payload::Nonce(nonce_r.clone()),
            Payload::Ke {
                group: algs.dh.transform_id(),
                data: dh.public_value(),
            },
        ];
        self.send_response(sa, EXCH_CREATE_CHILD_SA, msg_id, &resp);
        let new = self.successor(
            now,
            sa,
            false,
            new_spi_i,
            new_spi_r,
            algs,
            new_keys,
            sk,
            nonce_i.to_vec(),
            nonce_r,
        );
        self.install_successor(now, sa, new);
        true
    }

    fn on_ike_rekey_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        payloads: &[Payload],
        spi: u64,
        nonce: Vec<u8>,
        dh: DhPrivate,
    ) -> bool {
        if let Some(e) = codec::first_error_notify(payloads) {
            match e.ntype {
                n::INVALID_KE_PAYLOAD => {
                    let g = requested_group(&e.data);
                    if g.and_then(DhGroup::from_transform)
                        .is_some_and(|g| g != dh.group())
                    {
                        sa.tasks.push_front(Task::RekeyIke(g));
                        return true;
                    }
                }
                n::TEMPORARY_FAILURE => {}
                n::NO_PROPOSAL_CHOSEN => self.stats.no_proposal += 1,
                _ => {}
            }
            let delay = if e.ntype == n::TEMPORARY_FAILURE {
                self.temporary_failure_delay()
            } else {
                Duration::from_secs(60)
            };
            warn!(conn = %sa.cfg.name, "IKE_SA rekey failed: peer sent {}, retrying in {:?}", codec::notify_name(e.ntype), delay);
            sa.rekey_at = Some(now + delay);
            return true;
        }
        let (Some(old_algs), Some(old_keys)) = (sa.algs, &sa.keys) else {
            return true;
        };
        let Collected {
            sa: sa_p,
            nonce: nonce_r,
            ke,
            ..
        } = Collected::from(payloads);
        let chosen = match sa_p {
            Some([one]) if one.spi.len() == 8 => select::ike_from_chosen(one)
                .filter(|a| select::ike_choice_ok(&sa.cfg.proposals, a) && a.dh == dh.group())
                .map(|a| {
                    (
                        a,
                        <[u8; 8]>::try_from(one.spi.as_slice())
                            .map(u64::from_be_bytes)
                            .unwrap_or(0),
                    )
                }),
            _ => None,
        };
        let shared = ke
            .filter(|(g, _)| *g == dh.group().transform_id())
            .and_then(|(_, d)| dh.shared_secret(d).ok());
        let (Some((algs, new_spi_r)), Some(nonce_r), Some(shared)) = (chosen, nonce_r, shared)
        else {
            warn!(conn = %sa.cfg.name, "invalid IKE rekey response, retrying later");
            sa.rekey_at = Some(now + Duration::from_secs(60));
            return true;
        };
        let seed = keys::rekey_skeyseed(old_algs.prf, &old_keys.sk_d, &shared, &nonce, nonce_r);
        let new_keys = keys::derive_ike_keys(&algs, &seed, &nonce, nonce_r, spi, new_spi_r);
        let Ok(sk) = SkCrypto::new(&algs, &new_keys, true) else {
            return true;
        };
        let new = self.successor(
            now,
            sa,
            true,
            spi,
            new_spi_r,
            algs,
            new_keys,
            sk,
            nonce,
            nonce_r.to_vec(),
        );
        self.install_successor(now, sa, new);
        // We initiated the rekey, so we delete the old SA.
        self.send_delete_ike(now, sa);
        true
    }

    /// The IKE SA replacing `old` after a rekey; children and queued work move over.
    #[allow(clippy::too_many_arguments)]
    fn successor(
        &mut self,
        now: Instant,
        old: &mut IkeSa,
        initiator: bool,
        spi_i: u64,
        spi_r: u64,
        algs: IkeAlgs,
        keys: keys::IkeKeys,
        sk: SkCrypto,
        nonce_i: Vec<u8>,
        nonce_r: Vec<u8>,
    ) -> IkeSa {
        let rekey_at = self.jittered(now, old.cfg.rekey_time);
        let mut tasks: VecDeque<Task> = std::mem::take(&mut old.tasks);
        tasks.retain(|t| !matches!(t, Task::RekeyIke(_) | Task::Dpd));
        IkeSa {
            algs: Some(algs),
            keys: Some(keys),
            sk: Some(sk),
            nonce_i,
            nonce_r,
            nat_detected: old.nat_detected,
            udp_encap: old.udp_encap,
            tasks,
            children: std::mem::take(&mut old.children),
            established_at: Some(now),
            rekey_at,
            rekeyed: true,
            ..IkeSa::new(
                old.cfg.clone(),
                initiator,
                spi_i,
                spi_r,
                IkeState::Established,
                old.local,
                old.remote,
                now,
            )
        }
    }

    fn install_successor(&mut self, now: Instant, old: &mut IkeSa, mut new: IkeSa) {
        info!(
            conn = %old.cfg.name,
            "IKE_SA {}[{:016x}_i {:016x}_r] rekeyed to [{:016x}_i {:016x}_r]",
            old.cfg.name,
            old.spi_i,
            old.spi_r,
            new.spi_i,
            new.spi_r
        );
        self.stats.ike_rekeyed += 1;
        old.state = IkeState::Rekeyed;
        old.rekey_at = None;
        old.expire_at = Some(now + REPLACED_SA_TIMEOUT);
        self.emit_keylog(&new);
        self.emit_ike_up(&new);
        self.run_tasks(now, &mut new);
        self.sas.insert(new.our_spi(), new);
    }
}

fn crypto_prf(key: &[u8], data: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    crate::crypto::prf(PrfAlg::HmacSha1, key, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_matches_strongswan_and_never_overflows() {
        let rt = RetransmitConfig {
            timeout: Duration::from_secs(4),
            base: 1.8,
            tries: 5,
        };
        let got: Vec<u128> = (1..=5).map(|n| backoff(&rt, n).as_millis()).collect();
        assert_eq!(got, vec![7200, 12960, 23328, 41990, 75582]);
        let silly = RetransmitConfig {
            timeout: Duration::from_secs(4),
            base: f64::NAN,
            tries: u32::MAX,
        };
        assert_eq!(backoff(&silly, 3), Duration::from_secs(4));
        let huge = RetransmitConfig {
            timeout: Duration::MAX,
            base: 1e300,
            tries: u32::MAX,
        };
        assert_eq!(backoff(&huge, u32::MAX), MAX_DELAY);
    }
}
