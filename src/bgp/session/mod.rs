//! The per-neighbour finite state machine (RFC 4271 8): transport, OPEN, timers, teardown.
//! Routes in and out are in `routes`.

mod routes;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::msg::{
    self, err, AsPath, Capability, Message, Notification, Open, Origin, AFI_IPV4, AS_TRANS,
    BGP_VERSION, HEADER_LEN, SAFI_UNICAST,
};
use super::{BgpConfig, BgpEvent, BgpState, ImportCounters};
use crate::prefix::IpPrefix;

/// Hold timer while waiting for the peer's OPEN (RFC 4271 8.2.2 suggests 4 minutes).
const OPEN_HOLD: Duration = Duration::from_secs(240);
/// After a max-prefix Cease, stay down this long (at least) before trying again, so a peer
/// that keeps sending too much does not make the session flap every few seconds.
const MAX_PREFIX_IDLE: Duration = Duration::from_secs(60);
/// NLRI per UPDATE we send: 700 × at most 5 bytes stays well below 4096 with our attributes.
const NLRI_PER_UPDATE: usize = 700;
/// How long the higher-addressed side prefers its own pending connect over an inbound one.
const COLLISION_GRACE: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Outbound,
    Inbound,
}

/// A route learned from the peer, after import policy.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Route {
    next_hop: IpAddr,
    as_path: AsPath,
    origin: Origin,
    med: Option<u32>,
    local_pref: u32,
}

/// One BGP neighbour. See the module docs of `crate::bgp` for the driver contract.
pub struct Session {
    cfg: BgpConfig,
    state: BgpState,
    /// ManualStart given and no ManualStop since: restart automatically after errors.
    started: bool,
    direction: Option<Direction>,
    inbuf: Vec<u8>,
    outq: VecDeque<Vec<u8>>,
    events: VecDeque<BgpEvent>,

    connect_retry_at: Option<Instant>,
    /// When the current active connect attempt began (collision handling).
    connect_started_at: Option<Instant>,
    hold_at: Option<Instant>,
    keepalive_at: Option<Instant>,
    idle_restart_at: Option<Instant>,

    four_octet: bool,
    peer_id: Option<Ipv4Addr>,
    /// Negotiated hold time in seconds, from the peer's accepted OPEN until teardown.
    peer_hold: Option<u16>,
    established_at: Option<Instant>,
    last_now: Instant,
    last_error: Option<String>,

    adj_in: BTreeMap<IpPrefix, Route>,
    /// What the driver was told to install: prefix → next hop.
    installed: BTreeMap<IpPrefix, IpAddr>,
    /// What the peer currently has from us.
    announced: BTreeSet<IpPrefix>,
    import_counters: ImportCounters,
    /// The "no import policy" warning was logged since the session came up.
    no_policy_warned: bool,
}

fn after(now: Instant, d: Duration) -> Option<Instant> {
    now.checked_add(d)
}

fn due(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|d| d <= now)
}

impl Session {
    pub fn new(cfg: BgpConfig, now: Instant) -> Session {
        Session {
            cfg,
            state: BgpState::Idle,
            started: false,
            direction: None,
            inbuf: Vec::new(),
            outq: VecDeque::new(),
            events: VecDeque::new(),
            connect_retry_at: None,
            connect_started_at: None,
            hold_at: None,
            keepalive_at: None,
            idle_restart_at: None,
            four_octet: false,
            peer_id: None,
            peer_hold: None,
            established_at: None,
            last_now: now,
            last_error: None,
            adj_in: BTreeMap::new(),
            installed: BTreeMap::new(),
            announced: BTreeSet::new(),
            import_counters: ImportCounters::default(),
            no_policy_warned: false,
        }
    }

    pub fn config(&self) -> &BgpConfig {
        &self.cfg
    }

    pub fn state(&self) -> BgpState {
        self.state
    }

    fn has_transport(&self) -> bool {
        matches!(
            self.state,
            BgpState::OpenSent | BgpState::OpenConfirm | BgpState::Established
        )
    }

    /// ManualStart: connect actively (unless passive) and keep the session up.
    pub fn start(&mut self, now: Instant) {
        self.last_now = now;
        if self.started && self.state != BgpState::Idle {
            return;
        }
        self.started = true;
        self.idle_restart_at = None;
        self.begin(now);
    }

    /// Idle → Connect (active) or Active (passive).
    fn begin(&mut self, now: Instant) {
        self.idle_restart_at = None;
        if self.cfg.passive {
            self.state = BgpState::Active;
            self.connect_retry_at = None;
        } else {
            self.state = BgpState::Connect;
            self.connect_retry_at = after(now, self.cfg.connect_retry);
            self.connect_started_at = Some(now);
            self.events.push_back(BgpEvent::Connect);
        }
    }

    /// ManualStop: Cease/Administrative Shutdown with `reason`, withdraw everything learned.
    pub fn stop(&mut self, now: Instant, reason: &str) {
        self.last_now = now;
        if self.has_transport() {
            self.send(&Message::Notification(Notification::cease_with_text(
                err::CEASE_ADMIN_SHUTDOWN,
                reason,
            )));
        }
        self.started = false;
        let why = format!("stopped: {reason}");
        self.teardown(now, why, None);
    }

    /// TCP is connected: ours after a `Connect`, or an inbound one the driver adopted.
    pub fn transport_up(&mut self, now: Instant) {
        self.last_now = now;
        match self.state {
            BgpState::Connect => self.open_sent(now, Direction::Outbound),
            BgpState::Active => self.open_sent(now, Direction::Inbound),
            BgpState::Idle => self.events.push_back(BgpEvent::Disconnect),
            // One transport at a time: a second one must go through accept_inbound.
            _ => tracing::debug!(
                "bgp {}: transport_up in {:?} ignored",
                self.cfg.peer_address,
                self.state
            ),
        }
    }

    /// The driver accepted a TCP connection from the peer. Returns true if it must adopt it
    /// (closing its current stream or pending connect, if any), false if it must close it.
    pub fn accept_inbound(&mut self, now: Instant) -> bool {
        self.last_now = now;
        let adopt = match self.state {
            BgpState::Idle | BgpState::Established => false,
            BgpState::Active => true,
            // Our own connect may be completing right now (a collision): the side with the
            // higher address keeps its attempt for a short grace period, so both ends settle on
            // its connection; after that a hung connect must not lock the peer out.
            BgpState::Connect => {
                let grace = (self.cfg.connect_retry / 2).min(COLLISION_GRACE);
                let young = self
                    .connect_started_at
                    .is_some_and(|t| now.saturating_duration_since(t) < grace);
                !(young && self.cfg.local_address > self.cfg.peer_address)
            }
            // Peer's id unknown yet: the connection initiated by the higher address wins.
            BgpState::OpenSent => {
                self.direction == Some(Direction::Outbound)
                    && self.cfg.peer_address > self.cfg.local_address
            }
            BgpState::OpenConfirm => {
                self.direction == Some(Direction::Outbound)
                    && self
                        .peer_id
                        .is_some_and(|id| u32::from(id) > u32::from(self.cfg.router_id))
            }
        };
        if adopt {
            tracing::debug!(
                "bgp {}: adopting inbound connection in {:?}",
                self.cfg.peer_address,
                self.state
            );
            self.inbuf.clear();
            self.outq.clear();
            self.peer_id = None;
            self.peer_hold = None;
            self.open_sent(now, Direction::Inbound);
        }
        adopt
    }

    /// The connect attempt failed or the stream closed.
    pub fn transport_failed(&mut self, now: Instant) {
        self.last_now = now;
        match self.state {
            BgpState::Connect | BgpState::OpenSent => {
                if self.state == BgpState::OpenSent {
                    self.last_error = Some("connection closed before OPEN".into());
                }
                self.inbuf.clear();
                self.hold_at = None;
                self.direction = None;
                self.state = BgpState::Active;
                self.connect_retry_at = if self.cfg.passive {
                    None
                } else {
                    after(now, self.cfg.connect_retry)
                };
            }
            BgpState::OpenConfirm | BgpState::Established => {
                // The stream is gone already: no Disconnect request, nothing to send.
                self.direction = None;
                self.outq.clear();
                self.teardown_inner(
                    now,
                    "connection closed".into(),
                    Some(self.cfg.connect_retry),
                    false,
                );
            }
            BgpState::Idle | BgpState::Active => {}
        }
    }

    fn open_sent(&mut self, now: Instant, dir: Direction) {
        self.direction = Some(dir);
        self.connect_retry_at = None;
        self.inbuf.clear();
        self.state = BgpState::OpenSent;
        self.hold_at = after(now, OPEN_HOLD);
        self.keepalive_at = None;
        let open = self.our_open();
        self.send(&Message::Open(open));
    }

    fn our_open(&self) -> Open {
        let my_as = u16::try_from(self.cfg.local_as).unwrap_or(AS_TRANS);
        let hold = u16::try_from(self.cfg.hold_time.as_secs()).unwrap_or(u16::MAX);
        Open {
            version: BGP_VERSION,
            my_as,
            hold_time: hold,
            bgp_id: self.cfg.router_id,
            capabilities: vec![
                Capability::Multiprotocol {
                    afi: AFI_IPV4,
                    safi: SAFI_UNICAST,
                },
                Capability::RouteRefresh,
                Capability::FourOctetAs(self.cfg.local_as),
            ],
        }
    }

    /// Bytes from the TCP stream, in any chunking.
    pub fn handle_data(&mut self, now: Instant, bytes: &[u8]) {
        self.last_now = now;
        if !self.has_transport() {
            return;
        }
        self.inbuf.extend_from_slice(bytes);
        while self.has_transport() {
            let Some(head) = self.inbuf.get(..HEADER_LEN) else {
                break;
            };
            let header = match msg::parse_header(head) {
                Ok(h) => h,
                Err(n) => {
                    self.fatal(now, n);
                    break;
                }
            };
            if self.inbuf.len() < header.length {
                break;
            }
            let message: Vec<u8> = self.inbuf.drain(..header.length).collect();
            let body = message.get(HEADER_LEN..).unwrap_or(&[]);
            self.handle_message(now, header.msg_type, body);
        }
        if !self.has_transport() {
            self.inbuf.clear();
        }
    }

    fn handle_message(&mut self, now: Instant, msg_type: u8, body: &[u8]) {
        if msg_type == msg::TYPE_NOTIFICATION {
            let reason = match msg::decode_notification(body) {
                Ok(n) => format!("received NOTIFICATION: {}", n.describe()),
                Err(_) => "received malformed NOTIFICATION".into(),
            };
            // The peer closes the stream after a NOTIFICATION; we close our side too.
            tracing::warn!("bgp {}: {reason}", self.cfg.peer_address);
            self.teardown(now, reason, Some(self.cfg.connect_retry));
            return;
        }
        match (self.state, msg_type) {
            (BgpState::OpenSent, msg::TYPE_OPEN) => match msg::decode_open(body) {
                Ok(open) => self.handle_open(now, open),
                Err(n) => self.fatal(now, n),
            },
            (BgpState::OpenConfirm, msg::TYPE_KEEPALIVE) => {
                self.state = BgpState::Established;
                self.established_at = Some(now);
                self.restart_hold(now);
                self.events.push_back(BgpEvent::Established);
                tracing::debug!(
                    "bgp {}: session established (AS{}, hold {}s)",
                    self.cfg.peer_address,
                    self.cfg.peer_as,
                    self.hold_time().as_secs()
                );
                self.announce_all(now);
            }
            (BgpState::Established, msg::TYPE_KEEPALIVE) => self.restart_hold(now),
            (BgpState::Established, msg::TYPE_UPDATE) => {
                self.restart_hold(now);
                match msg::decode_update(body, self.four_octet) {
                    Ok(d) => self.handle_update(now, d),
                    Err(n) => self.fatal(now, n),
                }
            }
            (BgpState::Established, msg::TYPE_ROUTE_REFRESH) => {
                match msg::decode_route_refresh(body) {
                    Ok(rr) => {
                        self.restart_hold(now);
                        if rr.afi == AFI_IPV4 && rr.safi == SAFI_UNICAST {
                            tracing::debug!(
                                "bgp {}: route refresh requested",
                                self.cfg.peer_address
                            );
                            let all: Vec<IpPrefix> = self.announced.iter().copied().collect();
                            self.send_announce(now, &all);
                        }
                    }
                    Err(n) => self.fatal(now, n),
                }
            }
            (state, _) => {
                let sub = match state {
                    BgpState::OpenSent => err::FSM_IN_OPENSENT,
                    BgpState::OpenConfirm => err::FSM_IN_OPENCONFIRM,
                    _ => err::FSM_IN_ESTABLISHED,
                };
                self.fatal(now, Notification::new(err::FSM, sub, vec![]));
            }
        }
    }

    fn handle_open(&mut self, now: Instant, open: Open) {
        if let Err(n) = self.validate_open(&open) {
            self.fatal(now, n);
            return;
        }
        let hold = open
            .hold_time
            .min(u16::try_from(self.cfg.hold_time.as_secs()).unwrap_or(u16::MAX));
        self.four_octet = open.four_octet_as().is_some();
        self.peer_id = Some(open.bgp_id);
        self.peer_hold = Some(hold);
        self.state = BgpState::OpenConfirm;
        self.send(&Message::Keepalive);
        self.restart_hold(now);
        self.keepalive_at = if hold == 0 {
            None
        } else {
            after(now, self.keepalive_time())
        };
    }

    fn validate_open(&self, open: &Open) -> Result<(), Notification> {
        if open.asn() != self.cfg.peer_as {
            return Err(Notification::new(
                err::OPEN,
                err::OPEN_BAD_PEER_AS,
                open.my_as.to_be_bytes().to_vec(),
            ));
        }
        if open.hold_time == 1 || open.hold_time == 2 {
            return Err(Notification::new(
                err::OPEN,
                err::OPEN_BAD_HOLD_TIME,
                vec![],
            ));
        }
        let id = open.bgp_id;
        let ibgp_same_id = self.cfg.local_as == self.cfg.peer_as && id == self.cfg.router_id;
        if id.is_unspecified() || id.is_broadcast() || id.is_multicast() || ibgp_same_id {
            return Err(Notification::new(err::OPEN, err::OPEN_BAD_BGP_ID, vec![]));
        }
        Ok(())
    }

    /// The negotiated hold time (zero: no keepalives, or no OPEN accepted yet).
    fn hold_time(&self) -> Duration {
        Duration::from_secs(self.peer_hold.map_or(0, u64::from))
    }

    fn keepalive_time(&self) -> Duration {
        self.hold_time() / 3
    }

    fn restart_hold(&mut self, now: Instant) {
        let hold = self.hold_time();
        self.hold_at = if hold.is_zero() {
            None
        } else {
            after(now, hold)
        };
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        if due(self.idle_restart_at, now) {
            self.idle_restart_at = None;
            if self.started && self.state == BgpState::Idle {
                self.begin(now);
            }
        }
        if due(self.connect_retry_at, now) {
            self.connect_retry_at = None;
            match self.state {
                BgpState::Connect => {
                    // Abandon the attempt that did not complete and try again.
                    self.events.push_back(BgpEvent::Disconnect);
                    self.begin(now);
                }
                BgpState::Active if !self.cfg.passive => self.begin(now),
                _ => {}
            }
        }
        if due(self.hold_at, now) && self.has_transport() {
            self.hold_at = None;
            self.fatal(now, Notification::new(err::HOLD_TIMER_EXPIRED, 0, vec![]));
        }
        if due(self.keepalive_at, now)
            && matches!(self.state, BgpState::OpenConfirm | BgpState::Established)
        {
            self.send(&Message::Keepalive);
            self.keepalive_at = after(now, self.keepalive_time());
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.idle_restart_at,
            self.connect_retry_at,
            self.hold_at,
            self.keepalive_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outq.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<BgpEvent> {
        self.events.pop_front()
    }

    fn send(&mut self, m: &Message) {
        match msg::encode(m, self.four_octet) {
            Ok(bytes) => self.outq.push_back(bytes),
            // Our messages are built to fit (NLRI_PER_UPDATE); this is a bug, not the peer.
            Err(e) => tracing::error!("bgp {}: message not sent: {e}", self.cfg.peer_address),
        }
    }

    /// Sends `n`, then drops the session.
    fn fatal(&mut self, now: Instant, n: Notification) {
        let reason = format!("sent NOTIFICATION: {}", n.describe());
        tracing::warn!("bgp {}: {reason}", self.cfg.peer_address);
        let idle = if n.code == err::CEASE && n.subcode == err::CEASE_MAX_PREFIXES {
            self.cfg.connect_retry.max(MAX_PREFIX_IDLE)
        } else {
            self.cfg.connect_retry
        };
        if self.has_transport() {
            self.send(&Message::Notification(n));
        }
        self.teardown(now, reason, Some(idle));
    }

    fn teardown(&mut self, now: Instant, reason: String, restart_after: Option<Duration>) {
        let close = self.has_transport() || self.state == BgpState::Connect;
        self.teardown_inner(now, reason, restart_after, close);
    }

    /// Back to Idle: Down + withdraw everything when leaving Established, Disconnect if a
    /// transport (or connect attempt) exists, automatic restart later if still started.
    fn teardown_inner(
        &mut self,
        now: Instant,
        reason: String,
        restart_after: Option<Duration>,
        close: bool,
    ) {
        if self.state == BgpState::Established {
            // The daemon logs the Down event; errors were logged where they happened.
            tracing::debug!("bgp {}: session down: {reason}", self.cfg.peer_address);
            self.events.push_back(BgpEvent::Down {
                reason: reason.clone(),
            });
        }
        self.adj_in.clear();
        self.announced.clear();
        for prefix in std::mem::take(&mut self.installed).into_keys() {
            self.events.push_back(BgpEvent::WithdrawRoute { prefix });
        }
        if close {
            self.events.push_back(BgpEvent::Disconnect);
        }
        self.state = BgpState::Idle;
        self.direction = None;
        self.inbuf.clear();
        self.connect_retry_at = None;
        self.hold_at = None;
        self.keepalive_at = None;
        self.established_at = None;
        self.peer_id = None;
        self.peer_hold = None;
        self.four_octet = false;
        self.no_policy_warned = false;
        self.last_error = Some(reason);
        self.idle_restart_at = match restart_after {
            Some(d) if self.started => after(now, d),
            _ => None,
        };
    }
}
