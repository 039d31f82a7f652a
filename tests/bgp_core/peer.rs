//! One session fed hand-made bytes.

use super::*;

pub(crate) struct Peer {
    pub s: Session,
    pub now: Instant,
    pub events: Vec<BgpEvent>,
    pub four_octet: bool,
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
    .unwrap()
}

impl Peer {
    /// Session A in OpenSent (its OPEN already drained).
    pub(crate) fn opensent(cfg: BgpConfig) -> Peer {
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

    pub(crate) fn established(cfg: BgpConfig, four_octet: bool) -> Peer {
        let mut peer = Peer::opensent(cfg);
        peer.four_octet = four_octet;
        peer.feed(&peer_open(
            65515,
            30,
            Ipv4Addr::new(10, 10, 30, 254),
            four_octet,
        ));
        peer.feed(&msg::encode(&Message::Keepalive, true).unwrap());
        assert_eq!(peer.s.state(), BgpState::Established);
        peer.drain();
        peer.events.clear();
        peer
    }

    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        self.s.handle_data(self.now, bytes);
    }

    pub(crate) fn drain(&mut self) -> Vec<Message> {
        let mut out = vec![];
        while let Some(b) = self.s.poll_transmit() {
            out.push(msg::decode(&b, self.four_octet).expect("session sent garbage"));
        }
        while let Some(e) = self.s.poll_event() {
            self.events.push(e);
        }
        out
    }

    pub(crate) fn update(&mut self, u: Update) {
        let b = msg::encode(&Message::Update(u), self.four_octet).unwrap();
        self.feed(&b);
    }

    pub(crate) fn sent_notification(&mut self) -> Option<(u8, u8)> {
        self.drain().into_iter().find_map(|m| match m {
            Message::Notification(n) => Some((n.code, n.subcode)),
            _ => None,
        })
    }
}

pub(crate) fn route(prefixes: &[&str], path: Vec<u32>) -> Update {
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
            msg::encode(&Message::Keepalive, true).unwrap(),
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
    let mut bytes =
        msg::encode(&Message::Update(route(&["10.2.0.0/24"], vec![65515])), true).unwrap();
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
    let mut bytes =
        msg::encode(&Message::Update(route(&["10.2.0.0/24"], vec![65515])), true).unwrap();
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
    let mut bytes =
        msg::encode(&Message::Update(route(&["10.2.0.0/24"], vec![65515])), true).unwrap();
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
    let mut short = msg::encode(&Message::Keepalive, true).unwrap();
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
    let mut bytes =
        msg::encode(&Message::Update(route(&["10.2.0.0/24"], vec![65515])), true).unwrap();
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
    )
    .unwrap();
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
    peer.feed(&msg::encode(&Message::Keepalive, false).unwrap());
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
    peer.feed(&msg::encode(&Message::Notification(n), true).unwrap());
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
