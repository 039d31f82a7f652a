//! Handshakes that succeed: every suite, proposal order, COOKIE and INVALID_KE round trips,
//! traffic selectors, IPv6, a second CHILD SA, any-address responders and both ends initiating.

use crate::harness::*;
use crate::netsim::{A_IP, B_IP};
use ipsecgw::crypto::proposal::{parse_esp, parse_ike};
use ipsecgw::crypto::{DhGroup, EncrAlg};
use ipsecgw::ike::{ConnState, DownReason, Event, StartAction, Transmit};
use std::time::Duration;

#[test]
fn handshake_every_ike_and_esp_proposal() {
    for (i, ike) in IKE3.iter().enumerate() {
        for (j, esp) in ESP3.iter().enumerate() {
            let ca = cfg("c", A_IP, Some(B_IP), &[ike], &[esp]);
            let cb = cfg("c", B_IP, Some(A_IP), &IKE3, &ESP3);
            let sim = established(ca, cb, (i * 3 + j) as u64);
            let (ua, ub) = (sim.ike_ups(Side::A), sim.ike_ups(Side::B));
            assert_eq!(ua[0].0, ub[0].0, "same SPIi");
            assert_eq!(ua[0].1, ub[0].1, "same SPIr");
            let ca = sim.child_ups(Side::A);
            let cb = sim.child_ups(Side::B);
            assert_eq!((ca.len(), cb.len()), (1, 1));
            assert_mirrored(&ca[0], &cb[0]);
            assert_eq!(ca[0].encr, parse_esp(esp).unwrap().encr[0]);
            assert_eq!(ca[0].rekey_of, None);
            assert!(!ca[0].esn);
            // IKE keys agree too (KeyLog).
            let keylog = |s: Side| {
                sim.events(s)
                    .into_iter()
                    .find_map(|e| match e {
                        Event::KeyLog {
                            sk_ei,
                            sk_ar,
                            sk_d,
                            encr,
                            ..
                        } => Some((sk_ei.to_vec(), sk_ar.to_vec(), sk_d.to_vec(), *encr)),
                        _ => None,
                    })
                    .unwrap()
            };
            assert_eq!(keylog(Side::A), keylog(Side::B));
            assert_eq!(keylog(Side::A).3, parse_ike(ike).unwrap().encr[0]);
            let st = sim.a.status(sim.now);
            assert_eq!(st[0].state, ConnState::Established);
            let ike_st = st[0].ike.as_ref().unwrap();
            assert_eq!((ike_st.spi_i, ike_st.spi_r), (ua[0].0, ua[0].1));
            assert_eq!(st[0].children[0].spi_in, ca[0].spi_in);
            assert!(st[0].in_flight.is_none() && st[0].last_error.is_none());
        }
    }
}

#[test]
fn responder_proposal_order_wins() {
    let ca = cfg(
        "c",
        A_IP,
        Some(B_IP),
        &[
            "3des-sha1-modp1024",
            "aes128-sha1-modp1024",
            "aes256-sha1-modp1024",
        ],
        &["3des-sha1", "aes256-sha1"],
    );
    let cb = cfg("c", B_IP, Some(A_IP), &IKE3, &ESP3);
    let sim = established(ca, cb, 7);
    let enc = sim
        .events(Side::A)
        .into_iter()
        .find_map(|e| match e {
            Event::IkeUp { encr, dh, .. } => Some((*encr, *dh)),
            _ => None,
        })
        .unwrap();
    assert_eq!(enc, (EncrAlg::AesCbc256, DhGroup::Modp1024));
    assert_eq!(sim.child_ups(Side::A)[0].encr, EncrAlg::AesCbc256);
    let st = sim.b.status(sim.now);
    assert_eq!(st[0].ike.as_ref().unwrap().algs.encr, EncrAlg::AesCbc256);
    assert_eq!(
        st[0].ike.as_ref().unwrap().algs.prf,
        ipsecgw::crypto::PrfAlg::HmacSha1
    );
}

#[test]
fn cookie_round_trip() {
    let (ca, cb) = pair();
    let mut sim = Sim::new(ca, cb, 8);
    sim.b.set_cookie_threshold(0);
    sim.initiate();
    sim.run_for(Duration::from_millis(10));
    assert_eq!(sim.ike_ups(Side::A).len(), 1);
    assert_eq!(sim.ike_ups(Side::B).len(), 1);
    assert_eq!(sim.b.stats().cookies_sent, 1);
    let inits: Vec<&Transmit> = sim
        .wire
        .iter()
        .filter(|(_, s, t)| *s == Side::A && exch(t).0 == 34)
        .map(|(_, _, t)| t)
        .collect();
    assert_eq!(inits.len(), 2);
    // The second IKE_SA_INIT starts with the COOKIE notify (next payload = N).
    assert_eq!(inits[1].data[16], 41);
    assert_mirrored(&sim.child_ups(Side::A)[0], &sim.child_ups(Side::B)[0]);
}

#[test]
fn invalid_ke_round_trip() {
    let ca = cfg(
        "c",
        A_IP,
        Some(B_IP),
        &["aes256-sha1-modp2048", "aes256-sha1-modp1024"],
        &ESP3,
    );
    let cb = cfg("c", B_IP, Some(A_IP), &["aes256-sha1-modp1024"], &ESP3);
    let sim = established(ca, cb, 9);
    assert_eq!(sim.b.stats().invalid_ke_sent, 1);
    let dh = sim
        .events(Side::A)
        .into_iter()
        .find_map(|e| match e {
            Event::IkeUp { dh, .. } => Some(*dh),
            _ => None,
        })
        .unwrap();
    assert_eq!(dh, DhGroup::Modp1024);
    assert_mirrored(&sim.child_ups(Side::A)[0], &sim.child_ups(Side::B)[0]);
}

#[test]
fn traffic_selector_narrowing() {
    let (ca, mut cb) = pair();
    cb.children[0].local_ts = vec![
        "10.2.0.0/24".parse().unwrap(),
        "10.3.0.0/16".parse().unwrap(),
    ];
    cb.children[0].remote_ts = vec!["10.1.0.0/24".parse().unwrap()];
    let sim = established(ca, cb, 90);
    let (a, b) = (&sim.child_ups(Side::A)[0], &sim.child_ups(Side::B)[0]);
    let s = |v: &Vec<ipsecgw::ike::TrafficSelector>| {
        v.iter().map(|t| t.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(s(&a.local_ts), vec!["10.1.0.0/24"]);
    assert_eq!(s(&a.remote_ts), vec!["10.2.0.0/24", "10.3.0.0/16"]);
    assert_eq!(a.local_ts, b.remote_ts);
    assert_eq!(a.remote_ts, b.local_ts);
    assert!(a.remote_ts[0].contains("10.2.0.9".parse().unwrap()));
    assert!(!a.remote_ts[0].contains("10.4.0.9".parse().unwrap()));
}

#[test]
fn second_child_via_create_child_sa() {
    let (mut ca, mut cb) = pair();
    for c in [&mut ca, &mut cb] {
        let mut second = c.children[0].clone();
        second.name = "bgp".into();
        second.local_ts = vec![if c.name == "c" && c.local_addrs[0].to_string() == A_IP {
            "10.1.0.0/24"
        } else {
            "10.2.0.0/24"
        }
        .parse()
        .unwrap()];
        second.remote_ts = vec![if c.local_addrs[0].to_string() == A_IP {
            "10.2.0.0/24"
        } else {
            "10.1.0.0/24"
        }
        .parse()
        .unwrap()];
        c.children.push(second);
    }
    let sim = established(ca, cb, 130);
    let (ua, ub) = (sim.child_ups(Side::A), sim.child_ups(Side::B));
    assert_eq!((ua.len(), ub.len()), (2, 2));
    assert_eq!(ua[1].child, "bgp");
    assert_mirrored(&ua[1], &ub[1]);
    assert_eq!(sim.a.status(sim.now)[0].children.len(), 2);
}

#[test]
fn responder_any_remote() {
    let (ca, mut cb) = pair();
    cb.remote_addrs = vec![];
    cb.remote_id = None;
    let sim = established(ca, cb, 140);
    assert_mirrored(&sim.child_ups(Side::A)[0], &sim.child_ups(Side::B)[0]);
    let mut sim2 = Sim::new(pair().0, pair().1, 141);
    let now = sim2.now;
    assert!(sim2.b.initiate(now, "nope").is_err());
    let mut cfg_any = pair().1;
    cfg_any.remote_addrs = vec![];
    sim2.b.reload(now, vec![cfg_any]);
    assert!(
        sim2.b.initiate(now, "c").is_err(),
        "cannot initiate to %any"
    );
}

#[test]
fn gcm_ike_and_esp() {
    let ca = cfg(
        "c",
        A_IP,
        Some(B_IP),
        &["aes256gcm16-prfsha256-modp2048"],
        &["aes256gcm16"],
    );
    let cb = cfg(
        "c",
        B_IP,
        Some(A_IP),
        &["aes256gcm16-prfsha256-modp2048"],
        &["aes256gcm16"],
    );
    let sim = established(ca, cb, 150);
    let (a, b) = (&sim.child_ups(Side::A)[0], &sim.child_ups(Side::B)[0]);
    assert_mirrored(a, b);
    assert_eq!(a.encr_key_in.len(), 36, "GCM key || salt");
    assert_eq!(a.integ, None);
}

#[test]
fn both_ends_initiating_converge_to_one_sa() {
    for seed in 160..164 {
        let (mut ca, mut cb) = pair();
        ca.start_action = StartAction::Start;
        cb.start_action = StartAction::Start;
        let mut sim = Sim::new(ca, cb, seed);
        sim.run_for(Duration::from_secs(5));
        let (sa, sb) = (sim.a.status(sim.now), sim.b.status(sim.now));
        assert_eq!(sa[0].state, ConnState::Established);
        assert_eq!(
            sa[0].ike.as_ref().unwrap().spi_i,
            sb[0].ike.as_ref().unwrap().spi_i
        );
        sim.one_mirrored_pair(&format!("seed {seed}"));
        // Nothing left half-open or duplicated after a while.
        sim.run_for(Duration::from_secs(120));
        assert_eq!(sim.installed(Side::A).len(), 1);
        assert_eq!(sim.ike_ups(Side::A).len() - sim.ike_downs(Side::A).len(), 1);
        // Both initiations really happened and one SA was resolved away.
        assert_eq!(sim.ike_ups(Side::A).len(), 2);
        assert_eq!(sim.ike_downs(Side::B), vec![DownReason::Duplicate]);
    }
}

#[test]
fn ipv6_handshake_and_selectors() {
    let mut ca = cfg("c", "2001:db8::1", Some("2001:db8::2"), &IKE3, &ESP3);
    let mut cb = cfg("c", "2001:db8::2", Some("2001:db8::1"), &IKE3, &ESP3);
    ca.children[0].local_ts = vec!["::/0".parse().unwrap()];
    ca.children[0].remote_ts = vec!["::/0".parse().unwrap()];
    cb.children[0].local_ts = vec!["2001:db8:2::/48".parse().unwrap()];
    cb.children[0].remote_ts = vec!["2001:db8:1::/48".parse().unwrap()];
    let mut sim = established(ca, cb, 220);
    let (a, b) = (&sim.child_ups(Side::A)[0], &sim.child_ups(Side::B)[0]);
    assert_mirrored(a, b);
    assert_eq!(a.remote_ts[0].to_string(), "2001:db8:2::/48");
    assert_eq!(a.local_ts[0].to_string(), "2001:db8:1::/48");
    assert!(!a.udp_encap);
    let now = sim.now;
    sim.b.rekey(now, "c", true).unwrap();
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.ike_ups(Side::A).len(), 2);
}
