//! Two sessions wired back to back in memory with simulated time.

use super::*;

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
