//! The BGP core driven with simulated time: two sessions wired back to back in memory, and
//! single sessions fed hand-made bytes.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ipsecgw::bgp::msg::{
    self, err, Capability, Message, Notification, Open, PathAttrs, RouteRefresh, Update,
};
use ipsecgw::bgp::{AsPath, BgpConfig, BgpEvent, BgpState, Origin, RibDirection, Session};
use ipsecgw::prefix::IpPrefix;

fn p(s: &str) -> IpPrefix {
    s.parse().unwrap()
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const A_ADDR: &str = "10.2.30.125";
const B_ADDR: &str = "10.10.30.254";

/// The ipsecgw side of the Azure example: AS65021, announces 10.2.30.0/25 (plus one prefix the
/// prefix-list must hold back), local-preference 200 on import.
fn cfg_a() -> BgpConfig {
    let mut c = BgpConfig::new(65021, 65515, ip(A_ADDR), ip(B_ADDR));
    c.multihop = 5;
    c.networks = vec![p("10.2.30.0/25"), p("192.168.99.0/24")];
    c.export = vec!["10.2.30.0/25".parse().unwrap()];
    c.import_local_pref = 200;
    c
}

/// The Azure/BIRD side: AS65515, passive, announces 10.2.0.0/24.
fn cfg_b() -> BgpConfig {
    let mut c = BgpConfig::new(65515, 65021, ip(B_ADDR), ip(A_ADDR));
    c.passive = true;
    c.networks = vec![p("10.2.0.0/24")];
    c
}

/// Two sessions and a simulated TCP connection between them.
struct Pair {
    a: Session,
    b: Session,
    now: Instant,
    connected: bool,
    /// Link is cut: bytes vanish (for hold timer tests).
    cut: bool,
    a_events: Vec<BgpEvent>,
    b_events: Vec<BgpEvent>,
    /// (time, message) sent by each side.
    a_sent: Vec<(Instant, Message)>,
    b_sent: Vec<(Instant, Message)>,
}

impl Pair {
    fn new(a: BgpConfig, b: BgpConfig) -> Pair {
        let now = Instant::now();
        Pair {
            a: Session::new(a, now),
            b: Session::new(b, now),
            now,
            connected: false,
            cut: false,
            a_events: vec![],
            b_events: vec![],
            a_sent: vec![],
            b_sent: vec![],
        }
    }

    fn start(&mut self) {
        self.b.start(self.now);
        self.a.start(self.now);
        self.pump();
    }

    fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut progress = false;
            while let Some(bytes) = self.a.poll_transmit() {
                progress = true;
                self.a_sent
                    .push((self.now, msg::decode(&bytes, true).expect("a sent garbage")));
                if self.connected && !self.cut {
                    self.b.handle_data(self.now, &bytes);
                }
            }
            while let Some(bytes) = self.b.poll_transmit() {
                progress = true;
                self.b_sent
                    .push((self.now, msg::decode(&bytes, true).expect("b sent garbage")));
                if self.connected && !self.cut {
                    self.a.handle_data(self.now, &bytes);
                }
            }
            while let Some(ev) = self.a.poll_event() {
                progress = true;
                match &ev {
                    BgpEvent::Connect => {
                        if !self.cut && self.b.state() == BgpState::Active {
                            self.a.transport_up(self.now);
                            assert!(self.b.accept_inbound(self.now), "b refused the connection");
                            self.connected = true;
                        } else {
                            self.a.transport_failed(self.now);
                        }
                    }
                    BgpEvent::Disconnect if self.connected => {
                        self.connected = false;
                        self.b.transport_failed(self.now);
                    }
                    _ => {}
                }
                self.a_events.push(ev);
            }
            while let Some(ev) = self.b.poll_event() {
                progress = true;
                if ev == BgpEvent::Disconnect && self.connected {
                    self.connected = false;
                    self.a.transport_failed(self.now);
                }
                self.b_events.push(ev);
            }
            if !progress {
                return;
            }
        }
        panic!("pump did not settle");
    }

    /// Advances simulated time to `now + d`, firing every timer on the way.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = end;
        self.pump();
    }

    fn established(&self) -> bool {
        self.a.state() == BgpState::Established && self.b.state() == BgpState::Established
    }
}

fn keepalives(sent: &[(Instant, Message)]) -> Vec<Instant> {
    sent.iter()
        .filter(|(_, m)| *m == Message::Keepalive)
        .map(|(t, _)| *t)
        .collect()
}

fn notifications(sent: &[(Instant, Message)]) -> Vec<Notification> {
    sent.iter()
        .filter_map(|(_, m)| match m {
            Message::Notification(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn pair_reaches_established_and_exchanges_filtered_prefixes() {
    let mut pair = Pair::new(cfg_a(), cfg_b());
    pair.start();
    assert!(
        pair.established(),
        "a={:?} b={:?}",
        pair.a.state(),
        pair.b.state()
    );
    assert_eq!(pair.a_events.first(), Some(&BgpEvent::Connect));
    assert!(pair.a_events.contains(&BgpEvent::Established));
    assert!(pair.b_events.contains(&BgpEvent::Established));

    // A learns B's LAN via B's address; B learns only what A's prefix-list lets out.
    assert!(pair.a_events.contains(&BgpEvent::InstallRoute {
        prefix: p("10.2.0.0/24"),
        next_hop: ip(B_ADDR)
    }));
    let b_installs: Vec<_> = pair
        .b_events
        .iter()
        .filter(|e| matches!(e, BgpEvent::InstallRoute { .. }))
        .collect();
    assert_eq!(
        b_installs,
        vec![&BgpEvent::InstallRoute {
            prefix: p("10.2.30.0/25"),
            next_hop: ip(A_ADDR)
        }]
    );

    // Import policy: LOCAL_PREF 200 on A (route-map in), default 100 on B.
    let rib = pair.a.rib();
    let learned = rib
        .iter()
        .find(|r| r.direction == RibDirection::Received)
        .unwrap();
    assert_eq!(learned.prefix, p("10.2.0.0/24"));
    assert_eq!(learned.local_pref, Some(200));
    assert_eq!(learned.as_path, "65515");
    assert_eq!(learned.origin, "igp");
    assert!(learned.best);
    let announced: Vec<_> = rib
        .iter()
        .filter(|r| r.direction == RibDirection::Announced)
        .collect();
    assert_eq!(announced.len(), 1);
    assert_eq!(announced[0].prefix, p("10.2.30.0/25"));
    let b_rib = pair.b.rib();
    assert_eq!(
        b_rib
            .iter()
            .find(|r| r.direction == RibDirection::Received)
            .unwrap()
            .local_pref,
        Some(100)
    );

    // LOCAL_PREF never goes out on eBGP; our UPDATE has AS_PATH [65021], NEXT_HOP = update-source.
    let a_update = pair
        .a_sent
        .iter()
        .find_map(|(_, m)| match m {
            Message::Update(u) if !u.nlri.is_empty() => Some(u.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(a_update.nlri, vec![p("10.2.30.0/25")]);
    assert_eq!(a_update.attrs.local_pref, None);
    assert_eq!(a_update.attrs.as_path, Some(AsPath::sequence(vec![65021])));
    assert_eq!(a_update.attrs.next_hop, Some(Ipv4Addr::new(10, 2, 30, 125)));
    assert_eq!(a_update.attrs.origin, Some(Origin::Igp));

    let st = pair.a.status();
    assert_eq!(
        (st.prefixes_received, st.prefixes_announced, st.peer_as),
        (1, 1, 65515)
    );
    assert_eq!(st.peer_router_id, Some(Ipv4Addr::new(10, 10, 30, 254)));
    let json = serde_json::to_value(pair.a.status()).unwrap();
    assert_eq!(json["state"], "established");
    assert_eq!(json["prefixes_received"], 1);
    assert_eq!(json["prefixes_announced"], 1);
    let rib_json = serde_json::to_value(pair.a.rib()).unwrap();
    assert_eq!(rib_json[0]["prefix"], "10.2.0.0/24");
    assert_eq!(rib_json[0]["direction"], "received");
}

#[test]
fn keepalives_every_third_of_negotiated_hold_time() {
    let mut b = cfg_b();
    b.hold_time = Duration::from_secs(90); // negotiated hold = min(30, 90) = 30
    let mut pair = Pair::new(cfg_a(), b);
    pair.start();
    assert!(pair.established());
    let t0 = pair.now;
    let before_a = keepalives(&pair.a_sent).len();
    let before_b = keepalives(&pair.b_sent).len();
    pair.advance(Duration::from_secs(9));
    assert_eq!(
        keepalives(&pair.a_sent).len(),
        before_a,
        "no keepalive before hold/3"
    );
    pair.advance(Duration::from_secs(52));
    let a_kas: Vec<Duration> = keepalives(&pair.a_sent)[before_a..]
        .iter()
        .map(|t| *t - t0)
        .collect();
    let b_kas: Vec<Duration> = keepalives(&pair.b_sent)[before_b..]
        .iter()
        .map(|t| *t - t0)
        .collect();
    let expect: Vec<Duration> = [10, 20, 30, 40, 50, 60]
        .iter()
        .map(|s| Duration::from_secs(*s))
        .collect();
    assert_eq!(a_kas, expect);
    assert_eq!(b_kas, expect);
    assert!(pair.established(), "keepalives keep the session up");
    assert_eq!(pair.a.status().hold_time, Some(30));
    assert_eq!(pair.b.status_at(pair.now).uptime_secs, Some(61));
    assert_eq!(
        pair.b.status().uptime_secs,
        Some(60),
        "status() is as of the last call (t=60)"
    );
}

#[test]
fn hold_time_zero_means_no_keepalives_and_no_hold_timer() {
    let mut a = cfg_a();
    a.hold_time = Duration::ZERO;
    let mut pair = Pair::new(a, cfg_b());
    pair.start();
    assert!(pair.established());
    assert_eq!(pair.a.poll_timeout(), None);
    assert_eq!(pair.b.poll_timeout(), None);
    let n = keepalives(&pair.a_sent).len();
    pair.advance(Duration::from_secs(3600));
    assert_eq!(keepalives(&pair.a_sent).len(), n);
    assert!(pair.established());
}

#[test]
fn hold_timer_expiry_brings_the_session_down_and_withdraws_routes() {
    let mut pair = Pair::new(cfg_a(), cfg_b());
    pair.start();
    assert!(pair.established());
    pair.a_events.clear();
    pair.cut = true;
    let cut_at = pair.now;
    pair.advance(Duration::from_secs(29));
    assert_eq!(pair.a.state(), BgpState::Established);
    pair.advance(Duration::from_secs(2));
    assert_eq!(pair.a.state(), BgpState::Idle);
    let n = notifications(&pair.a_sent);
    assert_eq!(
        n.last().map(|n| (n.code, n.subcode)),
        Some((err::HOLD_TIMER_EXPIRED, 0))
    );
    let down_at = pair.a_sent.last().unwrap().0;
    assert_eq!(down_at - cut_at, Duration::from_secs(30));
    let down = pair.a_events.iter().position(
        |e| matches!(e, BgpEvent::Down { reason } if reason.contains("Hold Timer Expired")),
    );
    let withdraw = pair.a_events.iter().position(|e| {
        *e == BgpEvent::WithdrawRoute {
            prefix: p("10.2.0.0/24"),
        }
    });
    let disconnect = pair
        .a_events
        .iter()
        .position(|e| *e == BgpEvent::Disconnect);
    assert!(
        down.is_some() && withdraw.is_some() && disconnect.is_some(),
        "{:?}",
        pair.a_events
    );
    assert_eq!(pair.a.status().prefixes_received, 0);
    assert!(pair
        .a
        .status()
        .last_error
        .unwrap()
        .contains("Hold Timer Expired"));
    assert!(pair.b_events.contains(&BgpEvent::WithdrawRoute {
        prefix: p("10.2.30.0/25")
    }));

    // The link heals: A restarts by itself after ConnectRetry and the session comes back.
    pair.cut = false;
    pair.advance(Duration::from_secs(6));
    assert!(
        pair.established(),
        "a={:?} b={:?}",
        pair.a.state(),
        pair.b.state()
    );
    assert!(pair.a.rib().iter().any(|r| r.prefix == p("10.2.0.0/24")));
}

#[test]
fn connect_retry_timer_paces_active_attempts() {
    let mut pair = Pair::new(cfg_a(), cfg_b());
    pair.a.start(pair.now); // B not started: every connect fails
    pair.pump();
    pair.advance(Duration::from_secs(16));
    let connects = pair
        .a_events
        .iter()
        .filter(|e| **e == BgpEvent::Connect)
        .count();
    assert_eq!(connects, 4, "t=0,5,10,15: {:?}", pair.a_events);
    assert_eq!(pair.a.state(), BgpState::Active);
    pair.b.start(pair.now);
    pair.advance(Duration::from_secs(5));
    assert!(pair.established());
}

#[test]
fn manual_stop_sends_cease_with_reason_and_withdraws() {
    let mut pair = Pair::new(cfg_a(), cfg_b());
    pair.start();
    assert!(pair.established());
    pair.a.stop(pair.now, "maintenance");
    pair.pump();
    assert_eq!(pair.a.state(), BgpState::Idle);
    assert!(pair.a_events.contains(&BgpEvent::WithdrawRoute {
        prefix: p("10.2.0.0/24")
    }));
    let n = notifications(&pair.a_sent);
    assert_eq!(
        n.last().map(|n| (n.code, n.subcode)),
        Some((err::CEASE, err::CEASE_ADMIN_SHUTDOWN))
    );
    assert!(pair
        .b_events
        .iter()
        .any(|e| matches!(e, BgpEvent::Down { reason } if reason.contains("\"maintenance\""))));
    assert!(pair.b_events.contains(&BgpEvent::WithdrawRoute {
        prefix: p("10.2.30.0/25")
    }));
    // Stopped means stopped: no automatic restart.
    pair.advance(Duration::from_secs(60));
    assert_eq!(pair.a.state(), BgpState::Idle);
    assert_eq!(pair.a.poll_timeout(), None);
    pair.a.start(pair.now);
    pair.advance(Duration::from_secs(1));
    assert!(pair.established());
}

#[test]
fn set_networks_announces_and_withdraws_the_difference() {
    let mut a = cfg_a();
    a.networks = vec![];
    a.export = vec!["10.2.0.0/16 le 25".parse().unwrap()];
    let mut pair = Pair::new(a, cfg_b());
    pair.start();
    assert!(pair.established());
    assert_eq!(pair.b.status().prefixes_received, 0);
    pair.a.set_networks(
        pair.now,
        vec![p("10.2.30.0/25"), p("10.2.31.0/24"), p("10.2.32.0/26")],
    );
    pair.pump();
    assert_eq!(
        pair.b.status().prefixes_received,
        2,
        "/26 is outside 'le 25'"
    );
    assert!(pair.b_events.contains(&BgpEvent::InstallRoute {
        prefix: p("10.2.31.0/24"),
        next_hop: ip(A_ADDR)
    }));
    pair.a.set_networks(pair.now, vec![p("10.2.30.0/25")]);
    pair.pump();
    assert!(pair.b_events.contains(&BgpEvent::WithdrawRoute {
        prefix: p("10.2.31.0/24")
    }));
    assert_eq!(pair.b.status().prefixes_received, 1);
    assert_eq!(pair.a.status().prefixes_announced, 1);
}

#[test]
fn four_octet_local_as_uses_as_trans_in_open() {
    let mut a = cfg_a();
    a.local_as = 4_200_000_021;
    let mut b = cfg_b();
    b.peer_as = 4_200_000_021;
    let mut pair = Pair::new(a, b);
    pair.start();
    assert!(pair.established());
    let Message::Open(open) = &pair.a_sent[0].1 else {
        panic!("first message must be OPEN")
    };
    assert_eq!(open.my_as, msg::AS_TRANS);
    assert_eq!(open.asn(), 4_200_000_021);
    let r = pair
        .b
        .rib()
        .into_iter()
        .find(|r| r.direction == RibDirection::Received)
        .unwrap();
    assert_eq!(r.as_path, "4200000021");
}

#[test]
fn locally_originated_prefix_beats_the_same_prefix_from_the_peer() {
    let mut a = cfg_a();
    a.networks.push(p("10.2.0.0/24"));
    let mut pair = Pair::new(a, cfg_b());
    pair.start();
    assert!(pair.established());
    assert_eq!(pair.a.status().prefixes_received, 1);
    assert!(!pair
        .a_events
        .iter()
        .any(|e| matches!(e, BgpEvent::InstallRoute { .. })));
    assert!(
        !pair
            .a
            .rib()
            .iter()
            .find(|r| r.direction == RibDirection::Received)
            .unwrap()
            .best
    );
    // Stop originating it: the peer's route becomes best and gets installed.
    pair.a.set_networks(pair.now, vec![p("10.2.30.0/25")]);
    pair.pump();
    assert!(pair.a_events.contains(&BgpEvent::InstallRoute {
        prefix: p("10.2.0.0/24"),
        next_hop: ip(B_ADDR)
    }));
}

// ---- single session fed by hand --------------------------------------------------------------

struct Peer {
    s: Session,
    now: Instant,
    events: Vec<BgpEvent>,
    four_octet: bool,
}

fn peer_open(asn: u32, hold: u16, id: Ipv4Addr, four_octet: bool) -> Vec<u8> {
    let mut caps = vec![
        Capability::Multiprotocol { afi: 1, safi: 1 },
        Capability::RouteRefresh,
    ];
    if four_octet {
        caps.push(Capability::FourOctetAs(asn));
    }
    let my_as = u16::try_from(asn).unwrap_or(msg::AS_TRANS);
    msg::encode(
        &Message::Open(Open {
            version: 4,
            my_as,
            hold_time: hold,
            bgp_id: id,
            capabilities: caps,
        }),
        true,
    )
}

impl Peer {
    /// Session A in OpenSent (its OPEN already drained).
    fn opensent(cfg: BgpConfig) -> Peer {
        let now = Instant::now();
        let mut s = Session::new(cfg, now);
        s.start(now);
        assert_eq!(s.poll_event(), Some(BgpEvent::Connect));
        s.transport_up(now);
        let open = s.poll_transmit().unwrap();
        assert!(matches!(msg::decode(&open, true), Ok(Message::Open(_))));
        assert_eq!(s.state(), BgpState::OpenSent);
        Peer {
            s,
            now,
            events: vec![],
            four_octet: true,
        }
    }

    fn established(cfg: BgpConfig, four_octet: bool) -> Peer {
        let mut peer = Peer::opensent(cfg);
        peer.four_octet = four_octet;
        peer.feed(&peer_open(
            65515,
            30,
            Ipv4Addr::new(10, 10, 30, 254),
            four_octet,
        ));
        peer.feed(&msg::encode(&Message::Keepalive, true));
        assert_eq!(peer.s.state(), BgpState::Established);
        peer.drain();
        peer.events.clear();
        peer
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.s.handle_data(self.now, bytes);
    }

    fn drain(&mut self) -> Vec<Message> {
        let mut out = vec![];
        while let Some(b) = self.s.poll_transmit() {
            out.push(msg::decode(&b, self.four_octet).expect("session sent garbage"));
        }
        while let Some(e) = self.s.poll_event() {
            self.events.push(e);
        }
        out
    }

    fn update(&mut self, u: Update) {
        let b = msg::encode(&Message::Update(u), self.four_octet);
        self.feed(&b);
    }

    fn sent_notification(&mut self) -> Option<(u8, u8)> {
        self.drain().into_iter().find_map(|m| match m {
            Message::Notification(n) => Some((n.code, n.subcode)),
            _ => None,
        })
    }
}

fn route(prefixes: &[&str], path: Vec<u32>) -> Update {
    Update {
        withdrawn: vec![],
        attrs: PathAttrs {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(path)),
            next_hop: Some(Ipv4Addr::new(10, 10, 30, 254)),
            med: Some(5),
            ..PathAttrs::default()
        },
        nlri: prefixes.iter().map(|s| p(s)).collect(),
    }
}

#[test]
fn open_with_bad_version_peer_as_hold_time_or_id_gets_the_right_notification() {
    let cases: Vec<(Vec<u8>, (u8, u8))> = vec![
        (
            {
                let mut b = peer_open(65515, 30, Ipv4Addr::new(10, 10, 30, 254), true);
                b[19] = 3;
                b
            },
            (err::OPEN, err::OPEN_BAD_VERSION),
        ),
        (
            peer_open(65099, 30, Ipv4Addr::new(10, 10, 30, 254), true),
            (err::OPEN, err::OPEN_BAD_PEER_AS),
        ),
        (
            peer_open(65515, 2, Ipv4Addr::new(10, 10, 30, 254), true),
            (err::OPEN, err::OPEN_BAD_HOLD_TIME),
        ),
        (
            peer_open(65515, 1, Ipv4Addr::new(10, 10, 30, 254), true),
            (err::OPEN, err::OPEN_BAD_HOLD_TIME),
        ),
        (
            peer_open(65515, 30, Ipv4Addr::UNSPECIFIED, true),
            (err::OPEN, err::OPEN_BAD_BGP_ID),
        ),
        // A KEEPALIVE before the OPEN is an FSM error (RFC 6608).
        (
            msg::encode(&Message::Keepalive, true),
            (err::FSM, err::FSM_IN_OPENSENT),
        ),
    ];
    for (bytes, want) in cases {
        let mut peer = Peer::opensent(cfg_a());
        peer.feed(&bytes);
        assert_eq!(peer.sent_notification(), Some(want));
        assert_eq!(peer.s.state(), BgpState::Idle);
        assert!(peer.events.contains(&BgpEvent::Disconnect));
        assert!(
            peer.s
                .status()
                .last_error
                .unwrap()
                .contains("OPEN Message Error")
                || want.0 == err::FSM
        );
    }
}

#[test]
fn open_split_across_reads_and_hold_time_negotiated_down() {
    let mut peer = Peer::opensent(cfg_a());
    let open = peer_open(65515, 9, Ipv4Addr::new(10, 10, 30, 254), true);
    for byte in &open {
        peer.feed(std::slice::from_ref(byte));
    }
    assert_eq!(peer.s.state(), BgpState::OpenConfirm);
    assert_eq!(peer.drain(), vec![Message::Keepalive]);
    assert_eq!(
        peer.s.poll_timeout(),
        Some(peer.now + Duration::from_secs(3)),
        "keepalive at 9/3 s"
    );
}

#[test]
fn bad_origin_in_update_is_treat_as_withdraw_not_a_reset() {
    let mut peer = Peer::established(cfg_a(), true);
    peer.update(route(&["10.2.0.0/24", "10.3.0.0/16"], vec![65515]));
    peer.drain();
    assert_eq!(peer.s.status().prefixes_received, 2);
    // Same prefix again with ORIGIN = 7: hand-encoded because the codec cannot produce it.
    let mut bytes = msg::encode(&Message::Update(route(&["10.2.0.0/24"], vec![65515])), true);
    let origin_at = bytes
        .windows(3)
        .position(|w| w == [0x40, 0x01, 0x01])
        .unwrap()
        + 3;
    bytes[origin_at] = 7;
    peer.feed(&bytes);
    assert_eq!(peer.sent_notification(), None);
    assert_eq!(peer.s.state(), BgpState::Established);
    assert!(peer.events.contains(&BgpEvent::WithdrawRoute {
        prefix: p("10.2.0.0/24")
    }));
    assert_eq!(peer.s.status().prefixes_received, 1);
}

#[test]
fn attribute_length_overrun_is_treat_as_withdraw() {
    let mut peer = Peer::established(cfg_a(), true);
    peer.update(route(&["10.2.0.0/24"], vec![65515]));
    peer.drain();
    let mut bytes = msg::encode(&Message::Update(route(&["10.2.0.0/24"], vec![65515])), true);
    // MED (last attribute, 80 04 04 ...) claims 200 bytes.
    let med_at = bytes
        .windows(3)
        .position(|w| w == [0x80, 0x04, 0x04])
        .unwrap();
    bytes[med_at + 2] = 200;
    peer.feed(&bytes);
    assert_eq!(peer.sent_notification(), None);
    assert_eq!(peer.s.state(), BgpState::Established);
    assert!(peer.events.contains(&BgpEvent::WithdrawRoute {
        prefix: p("10.2.0.0/24")
    }));
}

#[test]
fn truncated_update_resets_with_notification() {
    // Total path attribute length runs beyond the message: NLRI cannot be located.
    let mut peer = Peer::established(cfg_a(), true);
    peer.update(route(&["10.2.0.0/24"], vec![65515]));
    peer.drain();
    let mut bytes = msg::encode(&Message::Update(route(&["10.2.0.0/24"], vec![65515])), true);
    bytes[21..23].copy_from_slice(&500u16.to_be_bytes());
    peer.feed(&bytes);
    assert_eq!(
        peer.sent_notification(),
        Some((err::UPDATE, err::UPDATE_MALFORMED_ATTR_LIST))
    );
    assert_eq!(peer.s.state(), BgpState::Idle);
    assert!(peer
        .events
        .iter()
        .any(|e| matches!(e, BgpEvent::Down { .. })));
    assert!(peer.events.contains(&BgpEvent::WithdrawRoute {
        prefix: p("10.2.0.0/24")
    }));

    // A message header whose length is below the minimum for an UPDATE.
    let mut peer = Peer::established(cfg_a(), true);
    let mut short = msg::encode(&Message::Keepalive, true);
    short[16..18].copy_from_slice(&21u16.to_be_bytes());
    short[18] = msg::TYPE_UPDATE;
    short.extend_from_slice(&[0, 0]);
    peer.feed(&short);
    assert_eq!(
        peer.sent_notification(),
        Some((err::HEADER, err::HEADER_BAD_LENGTH))
    );

    // NLRI with a /40 prefix.
    let mut peer = Peer::established(cfg_a(), true);
    let mut bytes = msg::encode(&Message::Update(route(&["10.2.0.0/24"], vec![65515])), true);
    let n = bytes.len();
    bytes[n - 4] = 40;
    peer.feed(&bytes);
    assert_eq!(
        peer.sent_notification(),
        Some((err::UPDATE, err::UPDATE_INVALID_NETWORK))
    );
}

#[test]
fn routes_with_our_as_in_the_path_are_rejected() {
    let mut peer = Peer::established(cfg_a(), true);
    peer.update(route(&["10.2.0.0/24"], vec![65515, 65021, 65000]));
    peer.drain();
    assert_eq!(peer.s.status().prefixes_received, 0);
    assert!(peer.events.is_empty());
    // A first AS other than the peer's: treat-as-withdraw.
    peer.update(route(&["10.4.0.0/24"], vec![65000]));
    peer.drain();
    assert_eq!(peer.s.status().prefixes_received, 0);
    assert_eq!(peer.s.state(), BgpState::Established);
}

#[test]
fn max_prefixes_exceeded_sends_cease_and_withdraws() {
    let mut cfg = cfg_a();
    cfg.max_prefixes = 2;
    let mut peer = Peer::established(cfg, true);
    peer.update(route(&["10.2.0.0/24", "10.3.0.0/24"], vec![65515]));
    peer.drain();
    assert_eq!(
        peer.events
            .iter()
            .filter(|e| matches!(e, BgpEvent::InstallRoute { .. }))
            .count(),
        2
    );
    peer.update(route(&["10.5.0.0/24"], vec![65515]));
    let sent = peer.drain();
    let n = sent
        .iter()
        .find_map(|m| match m {
            Message::Notification(n) => Some(n.clone()),
            _ => None,
        })
        .expect("a NOTIFICATION");
    assert_eq!((n.code, n.subcode), (err::CEASE, err::CEASE_MAX_PREFIXES));
    assert_eq!(
        n.data,
        vec![0, 1, 1, 0, 0, 0, 2],
        "AFI 1, SAFI 1, limit 2 (RFC 4486)"
    );
    assert_eq!(peer.s.state(), BgpState::Idle);
    assert!(peer.events.contains(&BgpEvent::WithdrawRoute {
        prefix: p("10.2.0.0/24")
    }));
    assert!(peer.events.contains(&BgpEvent::WithdrawRoute {
        prefix: p("10.3.0.0/24")
    }));
    assert!(!peer.events.contains(&BgpEvent::InstallRoute {
        prefix: p("10.5.0.0/24"),
        next_hop: ip(B_ADDR)
    }));
    // Stays down for a while rather than flapping at ConnectRetry pace.
    assert!(peer.s.poll_timeout().unwrap() >= peer.now + Duration::from_secs(60));
}

/// Captures formatted `tracing` output of one closure.
fn capture_logs(f: impl FnOnce()) -> String {
    use std::sync::{Arc, Mutex};
    #[derive(Clone)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf(Arc::new(Mutex::new(Vec::new())));
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buf.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn max_prefixes_logs_the_cisco_style_warning() {
    let mut cfg = cfg_a();
    cfg.max_prefixes = 1;
    let mut peer = Peer::established(cfg, true);
    let logs = capture_logs(|| peer.update(route(&["10.2.0.0/24", "10.3.0.0/24"], vec![65515])));
    assert!(logs.contains("WARN"), "{logs}");
    assert!(
        logs.contains("maximum-prefix limit 1 reached from 10.10.30.254"),
        "{logs}"
    );
}

#[test]
fn route_refresh_is_answered_with_our_announcements() {
    let mut peer = Peer::established(cfg_a(), true);
    let rr = msg::encode(
        &Message::RouteRefresh(RouteRefresh {
            afi: 1,
            subtype: 0,
            safi: 1,
        }),
        true,
    );
    peer.feed(&rr);
    let sent = peer.drain();
    let nlri: Vec<IpPrefix> = sent
        .iter()
        .flat_map(|m| match m {
            Message::Update(u) => u.nlri.clone(),
            _ => vec![],
        })
        .collect();
    assert_eq!(nlri, vec![p("10.2.30.0/25")]);
}

#[test]
fn withdraw_and_replacement_update_install_events() {
    let mut peer = Peer::established(cfg_a(), true);
    peer.update(route(&["10.2.0.0/24"], vec![65515]));
    let mut other_nh = route(&["10.2.0.0/24"], vec![65515, 65516]);
    other_nh.attrs.next_hop = Some(Ipv4Addr::new(10, 10, 30, 253));
    peer.update(other_nh);
    peer.update(Update {
        withdrawn: vec![p("10.2.0.0/24")],
        ..Update::default()
    });
    peer.update(Update::default()); // End-of-RIB: harmless
    peer.drain();
    assert_eq!(
        peer.events,
        vec![
            BgpEvent::InstallRoute {
                prefix: p("10.2.0.0/24"),
                next_hop: ip("10.10.30.254")
            },
            BgpEvent::InstallRoute {
                prefix: p("10.2.0.0/24"),
                next_hop: ip("10.10.30.253")
            },
            BgpEvent::WithdrawRoute {
                prefix: p("10.2.0.0/24")
            },
        ]
    );
    assert_eq!(peer.s.state(), BgpState::Established);
}

#[test]
fn mp_reach_ipv4_routes_are_accepted() {
    let mut peer = Peer::established(cfg_a(), true);
    let u = Update {
        attrs: PathAttrs {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(vec![65515])),
            mp_reach: Some(msg::MpReach {
                afi: 1,
                safi: 1,
                next_hop: Some(ip("10.10.30.254")),
                nlri: vec![p("10.7.0.0/16")],
            }),
            ..PathAttrs::default()
        },
        ..Update::default()
    };
    peer.update(u);
    peer.drain();
    assert_eq!(
        peer.events,
        vec![BgpEvent::InstallRoute {
            prefix: p("10.7.0.0/16"),
            next_hop: ip(B_ADDR)
        }]
    );
}

#[test]
fn two_octet_peer_gets_as4_path_for_a_4_octet_local_as() {
    let mut cfg = cfg_a();
    cfg.local_as = 4_200_000_021;
    let mut peer = Peer::opensent(cfg);
    peer.four_octet = false;
    peer.feed(&peer_open(65515, 30, Ipv4Addr::new(10, 10, 30, 254), false));
    peer.feed(&msg::encode(&Message::Keepalive, false));
    assert_eq!(peer.s.state(), BgpState::Established);
    let sent = peer.drain();
    let u = sent
        .iter()
        .find_map(|m| match m {
            Message::Update(u) if !u.nlri.is_empty() => Some(u.clone()),
            _ => None,
        })
        .unwrap();
    // Decoded as a 2-octet speaker would: merged back from AS_TRANS + AS4_PATH.
    assert_eq!(u.attrs.as_path, Some(AsPath::sequence(vec![4_200_000_021])));
    // A 2-octet UPDATE from the peer is understood.
    peer.update(route(&["10.2.0.0/24"], vec![65515]));
    peer.drain();
    assert_eq!(peer.s.status().prefixes_received, 1);
}

#[test]
fn inbound_connection_collision_rules() {
    let now = Instant::now();
    // Connect/Active: adopt the inbound connection.
    let mut s = Session::new(cfg_a(), now);
    s.start(now);
    assert!(s.accept_inbound(now));
    assert_eq!(s.state(), BgpState::OpenSent);
    // The higher-addressed side keeps its own fresh connect attempt for a grace period
    // (the peer adopts that connection), then gives in so a hung connect cannot lock it out.
    let mut high_cfg = cfg_b();
    high_cfg.passive = false;
    let mut high = Session::new(high_cfg, now);
    high.start(now);
    assert_eq!(high.state(), BgpState::Connect);
    assert!(!high.accept_inbound(now + Duration::from_millis(100)));
    assert_eq!(high.state(), BgpState::Connect);
    assert!(high.accept_inbound(now + Duration::from_millis(1500)));
    assert_eq!(high.state(), BgpState::OpenSent);
    // Idle: refuse.
    let mut idle = Session::new(cfg_a(), now);
    assert!(!idle.accept_inbound(now));
    // OpenSent on our outbound connection: the higher address's connection wins.
    // A = 10.2.30.125 < B = 10.10.30.254, so A gives up its own and takes B's.
    let mut a = Peer::opensent(cfg_a());
    assert!(a.s.accept_inbound(a.now));
    assert!(matches!(
        msg::decode(&a.s.poll_transmit().unwrap(), true),
        Ok(Message::Open(_))
    ));
    let mut b_cfg = cfg_b();
    b_cfg.passive = false;
    let mut b = Peer::opensent(b_cfg);
    assert!(!b.s.accept_inbound(b.now));
    // Established: refuse.
    let mut e = Peer::established(cfg_a(), true);
    assert!(!e.s.accept_inbound(e.now));
    assert_eq!(e.s.state(), BgpState::Established);
}

#[test]
fn adopting_an_inbound_connection_in_openconfirm_forgets_the_old_negotiation() {
    // A (lower router id) in OpenConfirm on its own connection: B's connection wins.
    let mut a = Peer::opensent(cfg_a());
    a.feed(&peer_open(65515, 20, Ipv4Addr::new(10, 10, 30, 254), true));
    a.drain();
    assert_eq!(a.s.state(), BgpState::OpenConfirm);
    assert_eq!(a.s.status().hold_time, Some(20));
    assert!(a.s.accept_inbound(a.now));
    assert_eq!(a.s.state(), BgpState::OpenSent);
    let st = a.s.status();
    assert_eq!(
        st.hold_time, None,
        "no hold time is negotiated on the new connection yet"
    );
    assert_eq!(st.peer_router_id, None);
}

#[test]
fn notification_from_peer_is_readable_in_status() {
    let mut peer = Peer::established(cfg_a(), true);
    peer.update(route(&["10.2.0.0/24"], vec![65515]));
    let n = Notification::cease_with_text(err::CEASE_ADMIN_RESET, "clear ip bgp");
    peer.feed(&msg::encode(&Message::Notification(n), true));
    peer.drain();
    assert_eq!(peer.s.state(), BgpState::Idle);
    let err = peer.s.status().last_error.unwrap();
    assert_eq!(
        err,
        "received NOTIFICATION: Cease / Administrative Reset: \"clear ip bgp\""
    );
    assert!(peer.events.contains(&BgpEvent::WithdrawRoute {
        prefix: p("10.2.0.0/24")
    }));
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn random_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8)) {
            for established in [false, true] {
                let mut peer = if established { Peer::established(cfg_a(), true) } else { Peer::opensent(cfg_a()) };
                for c in &chunks {
                    peer.feed(c);
                    peer.now += Duration::from_millis(10);
                    peer.s.handle_timeout(peer.now);
                }
                peer.drain();
                let _ = peer.s.status();
            }
        }

        #[test]
        fn random_bodies_behind_valid_headers_never_panic(
            ty in 1u8..6,
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut peer = Peer::established(cfg_a(), true);
            let mut m = vec![0xffu8; 16];
            m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
            m.push(ty);
            m.extend_from_slice(&body);
            peer.feed(&m);
            peer.drain();
            let _ = peer.s.rib();
        }

        #[test]
        fn random_updates_round_trip(
            withdrawn in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..20),
            nlri in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..20),
            segments in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u32>(), 1..20)), 0..4),
            origin in 0u8..3,
            med in proptest::option::of(any::<u32>()),
            next_hop in any::<u32>(),
            four_octet in any::<bool>(),
        ) {
            let pfx = |(a, l): (u32, u8)| IpPrefix::new(IpAddr::V4(Ipv4Addr::from(a)), l).unwrap();
            let as_path = AsPath {
                segments: segments
                    .into_iter()
                    .map(|(set, asns)| if set { msg::AsSegment::Set(asns) } else { msg::AsSegment::Sequence(asns) })
                    .collect(),
            };
            let u = Update {
                withdrawn: withdrawn.into_iter().map(pfx).collect(),
                attrs: PathAttrs {
                    origin: Some([Origin::Igp, Origin::Egp, Origin::Incomplete][origin as usize]),
                    as_path: Some(as_path),
                    next_hop: Some(Ipv4Addr::from(next_hop)),
                    med,
                    ..PathAttrs::default()
                },
                nlri: nlri.into_iter().map(pfx).collect(),
            };
            let bytes = msg::encode(&Message::Update(u.clone()), four_octet);
            let body = &bytes[msg::HEADER_LEN..];
            let d = msg::decode_update(body, four_octet).unwrap();
            prop_assert_eq!(d.treat_as_withdraw, None);
            prop_assert_eq!(d.update, u);
        }

        #[test]
        fn mutated_updates_never_panic(idx in 0usize..80, val in any::<u8>()) {
            let mut peer = Peer::established(cfg_a(), true);
            let mut u = route(&["10.2.0.0/24", "10.3.0.0/16"], vec![65515, 65516]);
            u.withdrawn = vec![p("10.9.0.0/16")];
            let mut bytes = msg::encode(&Message::Update(u), true);
            let n = bytes.len();
            bytes[19 + idx % (n - 19)] = val;
            peer.feed(&bytes);
            peer.drain();
        }
    }
}
