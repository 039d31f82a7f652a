//! The IKEv2 engine: the IKE SA table and its indexes, dispatch of datagrams to the message
//! layer and the exchanges, timers, the operator calls, and the queues the driver polls.
//! Everything about one exchange lives in `exchange/`, everything about messages on the
//! wire in `message/`.

use super::codec::{notify as n, Header, Message, ParseError, EXCH_IKE_SA_INIT};
use super::cookie_gate::CookieGate;
use super::ctx::{Ctx, Output, Request};
use super::exchange::ike_sa_init;
use super::exchange::{self, SaFate};
use super::lifecycle;
use super::message::{self, Inbound};
use super::reason::{DownReason, IkeError};
use super::sa::{queue_rekey, ChildState, IkeSa, IkeState, Task};
use super::status::{self, Attempts, ConnStatus, EngineStats};
use super::table::{PeerKey, Registry, Timers};
use super::unknown_spi::{self, InvalidSpiLimiter, Verdict};
use super::{Event, IkeConfig, StartAction, Transmit};
use rand::RngCore;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
use tracing::{debug, info, warn};

/// Caps on responder half-open IKE SAs (each holds its IKE_SA_INIT request and keys for
/// `HALF_OPEN_TIMEOUT`, 30 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HalfOpenLimits {
    /// In all.
    pub total: usize,
    /// From one peer IP address (any port).
    pub per_address: usize,
}

impl Default for HalfOpenLimits {
    fn default() -> Self {
        HalfOpenLimits {
            total: 5000,
            per_address: 100,
        }
    }
}

/// The IKEv2 protocol engine for all configured connections.
pub struct Engine {
    /// Shared with the SAs running under them: one copy per connection, not per SA.
    configs: Vec<Arc<IkeConfig>>,
    rng: Box<dyn RngCore + Send>,
    /// IKE SAs by our own SPI.
    /// Boxed: the table's spare capacity then costs a pointer, not a whole IkeSa.
    sas: HashMap<u64, Box<IkeSa>>,
    /// Which SAs a connection has, and which SA holds a CHILD SA.
    reg: Registry,
    /// The next deadline of every SA.
    timers: Timers,
    /// Responder half-open SAs by (peer address, SPIi), to answer retransmitted IKE_SA_INITs.
    init_index: HashMap<(SocketAddr, u64), u64>,
    /// SAs in IkeState::InitReplied (the cookie threshold and the caps count them), in all
    /// and per peer address.
    half_open: usize,
    half_open_by_ip: HashMap<IpAddr, usize>,
    limits: HalfOpenLimits,
    /// Connections to (re-)initiate at a given time.
    restart_at: BTreeMap<String, Instant>,
    out: Output,
    /// Shared with the daemon's socket readers, which answer floods before they get here.
    cookies: Arc<CookieGate>,
    /// Bounds the INVALID_IKE_SPI answers to requests for IKE SAs we do not have.
    invalid_spi: InvalidSpiLimiter,
    /// SA timer runs, for tests that check expiry touches only what is due.
    #[cfg(test)]
    timer_runs: usize,
}

impl Engine {
    pub fn new(configs: Vec<IkeConfig>, mut rng: Box<dyn RngCore + Send>, now: Instant) -> Engine {
        let cookies = Arc::new(CookieGate::new(&mut *rng));
        let restart_at = configs
            .iter()
            .filter(|c| c.start_action == StartAction::Start && !c.remote_addrs.is_empty())
            .map(|c| (c.name.clone(), now))
            .collect();
        Engine {
            configs: configs.into_iter().map(Arc::new).collect(),
            rng,
            sas: HashMap::new(),
            reg: Registry::default(),
            timers: Timers::default(),
            init_index: HashMap::new(),
            half_open: 0,
            half_open_by_ip: HashMap::new(),
            limits: HalfOpenLimits::default(),
            restart_at,
            out: Output::default(),
            cookies,
            invalid_spi: InvalidSpiLimiter::default(),
            #[cfg(test)]
            timer_runs: 0,
        }
    }

    pub fn set_keylog(&mut self, on: bool) {
        self.out.keylog = on;
    }

    /// Demand cookies (RFC 7296 2.6) once this many half-open SAs exist.
    pub fn set_cookie_threshold(&mut self, half_open: usize) {
        self.cookies.set_threshold(half_open);
    }

    /// The cookie defence, for socket readers to screen IKE_SA_INIT requests with.
    pub fn cookie_gate(&self) -> Arc<CookieGate> {
        self.cookies.clone()
    }

    /// Caps on half-open IKE SAs: new IKE_SA_INITs beyond them are dropped (and counted)
    /// before any DH work, cookie or not.
    pub fn set_half_open_limits(&mut self, limits: HalfOpenLimits) {
        self.limits = limits;
    }

    /// Half-open (responder, waiting for IKE_AUTH) IKE SAs now.
    pub fn half_open(&self) -> usize {
        self.half_open
    }

    fn count_half_open(&mut self, ip: IpAddr, up: bool) {
        if up {
            self.half_open += 1;
            *self.half_open_by_ip.entry(ip).or_default() += 1;
        } else {
            self.half_open = self.half_open.saturating_sub(1);
            if let Some(n) = self.half_open_by_ip.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.half_open_by_ip.remove(&ip);
                }
            }
        }
        self.cookies.set_half_open(self.half_open);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    /// Counters, the cookie demands the socket readers sent included.
    pub fn stats(&self) -> EngineStats {
        let mut s = self.out.stats.clone();
        s.cookies_sent_by_gate = self.cookies.answered();
        s.cookies_sent += s.cookies_sent_by_gate;
        s
    }

    // ------------------------------------------------------------------ the SA table

    /// The table and, split from it, the context an exchange works in (and the cookie jar,
    /// which only IKE_SA_INIT reads).
    fn split(&mut self, now: Instant) -> (&mut HashMap<u64, Box<IkeSa>>, &CookieGate, Ctx<'_>) {
        let ctx = Ctx {
            now,
            rng: &mut *self.rng,
            out: &mut self.out,
            configs: &self.configs,
            reg: &mut self.reg,
        };
        (&mut self.sas, &self.cookies, ctx)
    }

    /// Runs `f` on SA `key`, then starts its queued work, keeps the indexes and its timer
    /// in step, drops it if it is gone, and carries out what the exchanges asked for.
    fn with_sa(&mut self, now: Instant, key: u64, f: impl FnOnce(&mut IkeSa, &mut Ctx) -> SaFate) {
        let (fate, was_half_open, deadline, ip) = {
            let (sas, _, mut ctx) = self.split(now);
            let Some(sa) = sas.get_mut(&key) else {
                return;
            };
            let was = sa.state == IkeState::InitReplied;
            // Counted under the address it was half-open from (IKE_AUTH may move it).
            let ip = sa.remote.ip();
            let fate = f(sa, &mut ctx);
            if fate == SaFate::Keep {
                exchange::run_tasks(sa, &mut ctx);
                sa.shed_idle();
            }
            (fate, was, lifecycle::deadline(sa), ip)
        };
        let is_half_open = fate == SaFate::Keep
            && self
                .sas
                .get(&key)
                .is_some_and(|s| s.state == IkeState::InitReplied);
        match (was_half_open, is_half_open) {
            (true, false) => self.count_half_open(ip, false),
            (false, true) => self.count_half_open(ip, true),
            _ => {}
        }
        match fate {
            SaFate::Keep => self.timers.set(key, deadline),
            SaFate::Gone => self.remove_sa(key),
        }
        let new_peer = self.index_peer(key);
        self.carry_out(now);
        if let Some(peer) = new_peer {
            self.resolve_duplicates(now, &peer);
        }
    }

    /// Records who SA `key` is with once it is established; returns the peer if this SA
    /// just came up on its own (not by rekeying), for the duplicate check.
    fn index_peer(&mut self, key: u64) -> Option<PeerKey> {
        let sa = self.sas.get(&key)?;
        if sa.state != IkeState::Established {
            return None;
        }
        let peer: PeerKey = (sa.cfg.name.clone(), sa.remote.ip(), sa.peer_id.clone());
        let fresh = !sa.rekeyed;
        (self.reg.set_peer(key, peer.clone()) && fresh).then_some(peer)
    }

    fn insert_sa(&mut self, now: Instant, sa: IkeSa) {
        let key = sa.our_spi();
        self.reg.add_sa(key, &sa.cfg.name);
        for c in &sa.children {
            self.reg.child_added(c.spi_in, key);
        }
        if let Some(k) = sa.init_key {
            self.init_index.insert(k, key);
        }
        if sa.state == IkeState::InitReplied {
            self.count_half_open(sa.remote.ip(), true);
        }
        self.sas.insert(key, Box::new(sa));
        // Starts the work it brought along (a rekeyed SA's queue) and sets its timer.
        self.with_sa(now, key, |_, _| SaFate::Keep);
    }

    /// Drops SA `key` and its index entries (`with_sa` keeps the half-open count).
    fn remove_sa(&mut self, key: u64) {
        let Some(sa) = self.sas.remove(&key) else {
            return;
        };
        self.reg.remove_sa(key);
        for c in &sa.children {
            if self.reg.sa_of_child(c.spi_in) == Some(key) {
                self.reg.child_removed(c.spi_in);
            }
        }
        if let Some(k) = sa.init_key {
            if self.init_index.get(&k) == Some(&key) {
                self.init_index.remove(&k);
            }
        }
        self.timers.set(key, None);
    }

    /// Carries out the requests of the exchanges (they may not touch the table).
    fn carry_out(&mut self, now: Instant) {
        while !self.out.requests.is_empty() {
            for r in std::mem::take(&mut self.out.requests) {
                match r {
                    Request::Restart { conn, at } => {
                        self.restart_at.insert(conn, at);
                    }
                    Request::DropStale {
                        conn,
                        peer,
                        peer_id,
                        keep,
                    } => self.drop_stale(now, (conn, peer, peer_id), keep),
                    Request::Insert(sa) => self.insert_sa(now, *sa),
                }
            }
        }
    }

    /// INITIAL_CONTACT: the peer has no other SAs with us; drop whatever we still hold.
    fn drop_stale(&mut self, now: Instant, peer: PeerKey, keep: u64) {
        for key in self.reg.sas_with(&peer) {
            let stale = key != keep
                && self
                    .sas
                    .get(&key)
                    .is_some_and(|s| matches!(s.state, IkeState::Established | IkeState::Rekeyed));
            if stale {
                self.with_sa(now, key, |sa, ctx| {
                    ctx.all_down(sa, DownReason::ReplacedByInitialContact);
                    SaFate::Gone
                });
            }
        }
    }

    /// Two IKE SAs for one connection and peer (both ends initiated at once): both ends
    /// keep the one with the lowest SPIi and delete the other.
    fn resolve_duplicates(&mut self, now: Instant, peer: &PeerKey) {
        let mut up: Vec<(u64, u64)> = self
            .reg
            .sas_with(peer)
            .into_iter()
            .filter_map(|k| self.sas.get(&k).map(|s| (k, s)))
            .filter(|(_, s)| s.state == IkeState::Established)
            .map(|(k, s)| (s.spi_i, k))
            .collect();
        up.sort_unstable();
        for (spi_i, key) in up.into_iter().skip(1) {
            let conn = &peer.0;
            info!(
                conn,
                "duplicate IKE_SA {spi_i:016x}_i with {}, deleting it", peer.1
            );
            self.delete_sa(now, key, DownReason::Duplicate);
        }
    }

    fn delete_sa(&mut self, now: Instant, key: u64, reason: DownReason) {
        self.with_sa(now, key, |sa, ctx| lifecycle::terminate(sa, ctx, reason));
    }

    // ------------------------------------------------------------------ operator API

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
        let busy = self.reg.sas_of(conn).into_iter().any(|k| {
            self.sas
                .get(&k)
                .is_some_and(|s| !matches!(s.state, IkeState::Deleting | IkeState::Rekeyed))
        });
        if busy {
            return Ok(());
        }
        let (_, _, mut ctx) = self.split(now);
        if let Some(sa) = ike_sa_init::initiate(&mut ctx, cfg) {
            self.insert_sa(now, sa);
        }
        Ok(())
    }

    pub fn terminate(&mut self, now: Instant, conn: &str) -> Result<(), IkeError> {
        let ids = self.reg.sas_of(conn);
        if ids.is_empty() && !self.configs.iter().any(|c| c.name == conn) {
            return Err(IkeError::UnknownConnection(conn.into()));
        }
        self.restart_at.remove(conn);
        for key in ids {
            self.delete_sa(now, key, DownReason::Terminated);
        }
        Ok(())
    }

    pub fn terminate_all(&mut self, now: Instant) {
        self.restart_at.clear();
        let mut keys: Vec<u64> = self.sas.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            self.delete_sa(now, key, DownReason::Shutdown);
        }
    }

    pub fn rekey(&mut self, now: Instant, conn: &str, ike: bool) -> Result<(), IkeError> {
        if !self.configs.iter().any(|c| c.name == conn) {
            return Err(IkeError::UnknownConnection(conn.into()));
        }
        let key = self
            .reg
            .sas_of(conn)
            .into_iter()
            .find(|k| {
                self.sas
                    .get(k)
                    .is_some_and(|s| s.state == IkeState::Established)
            })
            .ok_or_else(|| IkeError::NotEstablished(conn.into()))?;
        self.with_sa(now, key, |sa, _| {
            if ike {
                queue_rekey(&mut sa.tasks, Task::RekeyIke(None));
            } else {
                let installed: Vec<u32> = sa
                    .children
                    .iter()
                    .filter(|c| c.state == ChildState::Installed)
                    .map(|c| c.spi_in)
                    .collect();
                for spi in installed {
                    queue_rekey(&mut sa.tasks, Task::RekeyChild(spi, None));
                }
            }
            SaFate::Keep
        });
        Ok(())
    }

    /// The data plane saw authenticated ESP on this CHILD SA at `last_inbound` (DPD).
    pub fn child_activity(&mut self, spi_in: u32, last_inbound: Option<Instant>) {
        let Some(t) = last_inbound else { return };
        let Some(key) = self.reg.sa_of_child(spi_in) else {
            return;
        };
        // Only ever later: the SA's timer may wake it early, never late.
        if let Some(c) = self
            .sas
            .get_mut(&key)
            .and_then(|s| s.child_by_in_mut(spi_in))
        {
            c.last_activity = Some(c.last_activity.map_or(t, |x| x.max(t)));
        }
    }

    /// The data plane wants this CHILD SA rekeyed now (sequence numbers running out).
    pub fn request_child_rekey(&mut self, now: Instant, spi_in: u32) {
        let Some(key) = self.reg.sa_of_child(spi_in) else {
            return;
        };
        let ready = self.sas.get(&key).is_some_and(|s| {
            s.state == IkeState::Established
                && s.child_by_in(spi_in)
                    .is_some_and(|c| c.state == ChildState::Installed)
        });
        if ready {
            self.with_sa(now, key, |sa, _| {
                queue_rekey(&mut sa.tasks, Task::RekeyChild(spi_in, None));
                SaFate::Keep
            });
        }
    }

    /// What the data plane counted on CHILD SA `spi_in` (bytes and packets of its busier
    /// direction), checked against the child's volume and packet limits.
    pub fn child_usage(&mut self, now: Instant, spi_in: u32, bytes: u64, packets: u64) {
        let Some(key) = self.reg.sa_of_child(spi_in) else {
            return;
        };
        let limited = self
            .sas
            .get(&key)
            .and_then(|s| s.child_by_in(spi_in))
            .is_some_and(|c| c.usage != Default::default());
        if limited {
            self.with_sa(now, key, |sa, ctx| {
                lifecycle::on_usage(sa, ctx, spi_in, (bytes, packets))
            });
        }
    }

    pub fn reload(&mut self, now: Instant, configs: Vec<IkeConfig>) {
        // An unchanged connection keeps its shared copy (its SAs hold it).
        let configs = configs
            .into_iter()
            .map(|c| match self.configs.iter().find(|o| ***o == c) {
                Some(o) => o.clone(),
                None => Arc::new(c),
            })
            .collect();
        let old = std::mem::replace(&mut self.configs, configs);
        for oc in &old {
            let changed = match self.configs.iter().find(|c| c.name == oc.name) {
                Some(nc) if nc == oc => continue,
                changed => changed,
            };
            let restart = changed.is_some_and(|c| {
                c.start_action == StartAction::Start && !c.remote_addrs.is_empty()
            });
            info!(conn = %oc.name, "connection {} {} by reload", oc.name, if changed.is_some() { "changed" } else { "removed" });
            self.restart_at.remove(&oc.name);
            for key in self.reg.sas_of(&oc.name) {
                self.delete_sa(now, key, DownReason::ConfigChanged);
            }
            if restart {
                self.restart_at.insert(oc.name.clone(), now);
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

    /// Every configured connection, from its best SA (established first).
    pub fn status(&self, now: Instant) -> Vec<ConnStatus> {
        let rank = |s: &IkeSa| match s.state {
            IkeState::Established => 0,
            IkeState::AuthSent | IkeState::InitSent | IkeState::InitReplied => 1,
            IkeState::Deleting => 2,
            IkeState::Rekeyed => 3,
        };
        self.configs
            .iter()
            .map(|cfg| {
                let best = self
                    .reg
                    .sas_of(&cfg.name)
                    .into_iter()
                    .filter_map(|k| self.sas.get(&k))
                    .filter(|s| s.state != IkeState::Rekeyed)
                    .min_by_key(|s| (rank(s), s.our_spi()));
                let attempts = Attempts {
                    next_attempt: self.restart_at.get(&cfg.name).copied(),
                    last_error: self.out.last_error.get(&cfg.name),
                };
                status::conn_status(&cfg.name, best.map(|b| &**b), attempts, now)
            })
            .collect()
    }

    // ------------------------------------------------------------------ timers

    pub fn poll_timeout(&self) -> Option<Instant> {
        let restart = self.restart_at.values().min().copied();
        match (self.timers.first(), restart) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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
        for key in self.timers.take_due(now) {
            #[cfg(test)]
            {
                self.timer_runs += 1;
            }
            self.with_sa(now, key, lifecycle::on_timers);
        }
    }

    // ------------------------------------------------------------------ receive path

    /// One received IKE message (without the non-ESP marker).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        self.out.stats.received += 1;
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(ParseError::UnsupportedCritical(pt)) => {
                // Only an unencrypted IKE_SA_INIT request can be answered statelessly.
                match Header::parse(data) {
                    Ok(h) if h.exchange == EXCH_IKE_SA_INIT && !h.is_response() => {
                        debug!("IKE_SA_INIT from {remote} with unsupported critical payload {pt}");
                        let (_, _, mut ctx) = self.split(now);
                        let ntype = n::UNSUPPORTED_CRITICAL_PAYLOAD;
                        message::reply_plain(&mut ctx, (local, remote), &h, ntype, vec![pt]);
                    }
                    _ => self.out.stats.malformed_dropped += 1,
                }
                return;
            }
            Err(e) => {
                debug!("dropping malformed IKE message from {remote}: {e}");
                self.out.stats.malformed_dropped += 1;
                return;
            }
        };
        let h = &msg.header;
        if h.exchange == EXCH_IKE_SA_INIT && !h.is_response() {
            if h.spi_r != 0 || !h.from_initiator() || h.msg_id != 0 {
                self.out.stats.malformed_dropped += 1;
                return;
            }
            self.on_init_request(now, (local, remote), data, &msg);
            return;
        }
        let key = if h.from_initiator() { h.spi_r } else { h.spi_i };
        let Some(sa) = self.sas.get(&key) else {
            debug!("no IKE_SA for SPI {key:016x} (message from {remote})");
            self.on_unknown_spi(now, (local, remote), h, data.len());
            return;
        };
        let init_resp = sa.state == IkeState::InitSent && h.exchange == EXCH_IKE_SA_INIT;
        let spis_ok = h.from_initiator() != sa.initiator
            && h.spi_i == sa.spi_i
            && (h.spi_r == sa.spi_r || init_resp);
        if !spis_ok {
            self.on_unknown_spi(now, (local, remote), h, data.len());
            return;
        }
        self.with_sa(now, key, |sa, ctx| {
            match message::receive(sa, ctx, (local, remote), data, &msg) {
                Inbound::Request(req, payloads) => exchange::on_request(sa, ctx, &req, &payloads),
                Inbound::Response(request, payloads) => {
                    exchange::on_response(sa, ctx, request.exchange, &payloads)
                }
                Inbound::InitResponse => ike_sa_init::on_response(sa, ctx, data, &msg),
                Inbound::Handled(fate) => fate,
            }
        });
    }

    /// A message for an IKE SA we do not have: counted, and a request perhaps answered with
    /// INVALID_IKE_SPI within the global rate (see `unknown_spi`).
    fn on_unknown_spi(
        &mut self,
        now: Instant,
        path: (SocketAddr, SocketAddr),
        h: &Header,
        len: usize,
    ) {
        self.out.stats.unknown_spi_dropped += 1;
        match unknown_spi::decide(&mut self.invalid_spi, now, h, len) {
            Verdict::Drop => {}
            Verdict::Limited => self.out.stats.invalid_spi_limited += 1,
            Verdict::Answer(reply) => {
                self.out.stats.invalid_spi_sent += 1;
                let (_, _, mut ctx) = self.split(now);
                ctx.transmit(path.0, path.1, reply);
            }
        }
    }

    fn on_init_request(
        &mut self,
        now: Instant,
        path: (SocketAddr, SocketAddr),
        data: &[u8],
        msg: &Message,
    ) {
        let (local, remote) = path;
        if let Some(&key) = self.init_index.get(&(remote, msg.header.spi_i)) {
            if let Some(sa) = self.sas.get(&key) {
                // A retransmitted IKE_SA_INIT: answer from the cache, never twice the work.
                if let Some(resp) = message::retransmitted_init(sa, data) {
                    let resp = resp.to_vec();
                    self.out.stats.responses_resent += 1;
                    let (_, _, mut ctx) = self.split(now);
                    for d in resp {
                        ctx.transmit(local, remote, d);
                    }
                }
                return;
            }
        }
        // The caps come before the cookie check and any DH work: a flood from real
        // addresses (which pass cookies) still cannot hold more than this much state.
        let from_ip = self.half_open_by_ip.get(&remote.ip()).copied().unwrap_or(0);
        if self.half_open >= self.limits.total || from_ip >= self.limits.per_address {
            self.out.stats.half_open_dropped += 1;
            debug!(
                "dropping IKE_SA_INIT from {remote}: {} half-open IKE_SAs, {from_ip} from that address",
                self.half_open
            );
            return;
        }
        let half_open = self.half_open;
        let (_, cookies, mut ctx) = self.split(now);
        let sa = ike_sa_init::respond(&mut ctx, cookies, half_open, path, data, msg);
        if let Some(sa) = sa {
            self.insert_sa(now, sa);
        }
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
