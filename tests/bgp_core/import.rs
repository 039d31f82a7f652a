//! Import: the prefix-list, RFC 8212's default deny for eBGP, and routes that are refused
//! whatever the policy says because they cover an IKE peer or our own underlay address.

use super::peer::{route, Peer};
use super::*;

/// The IKE peer and our own underlay address, as `[[connection]]` would protect them.
const IKE_PEER: &str = "192.0.2.2";
const UNDERLAY: &str = "192.0.2.1";

fn installed(peer: &Peer) -> Vec<IpPrefix> {
    let mut v: Vec<IpPrefix> = peer
        .events
        .iter()
        .filter_map(|e| match e {
            BgpEvent::InstallRoute { prefix, .. } => Some(*prefix),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn received(peer: &Peer) -> Vec<IpPrefix> {
    peer.s
        .rib()
        .iter()
        .filter(|r| r.direction == RibDirection::Received)
        .map(|r| r.prefix)
        .collect()
}

#[test]
fn ebgp_without_an_import_policy_accepts_nothing_rfc_8212() {
    let mut cfg = cfg_a();
    cfg.import = None;
    let mut peer = Peer::established(cfg, true);
    let logs = capture_logs(|| {
        peer.update(route(&["10.2.0.0/24", "10.3.0.0/16"], vec![65515]));
        peer.update(route(&["10.4.0.0/24"], vec![65515]));
        peer.drain();
    });
    assert!(installed(&peer).is_empty(), "{:?}", peer.events);
    assert!(received(&peer).is_empty());
    let st = peer.s.status();
    assert_eq!(st.prefixes_received, 0);
    assert_eq!(st.import.refused_by_policy, 3);
    assert_eq!(st.import.refused_protected, 0);
    assert_eq!(st.state, BgpState::Established, "refusing is not an error");
    // Said once per session, at warning level, not once per route.
    assert_eq!(
        logs.matches("no import prefix-list, so no route from AS65515 is accepted (RFC 8212)")
            .count(),
        1,
        "{logs}"
    );
    assert!(logs.contains("WARN"), "{logs}");
}

#[test]
fn ibgp_without_an_import_policy_accepts_everything() {
    // RFC 8212 is about eBGP; the core also speaks iBGP (tests, future use).
    let mut cfg = BgpConfig::new(65515, 65515, ip(A_ADDR), ip(B_ADDR));
    cfg.import = None;
    let mut peer = Peer::established(cfg, true);
    peer.update(route(&["10.2.0.0/24"], vec![]));
    peer.drain();
    assert_eq!(installed(&peer), vec![p("10.2.0.0/24")]);
    assert_eq!(peer.s.status().import.refused_by_policy, 0);
}

#[test]
fn import_prefix_list_accepts_only_what_it_permits() {
    let mut cfg = cfg_a();
    cfg.import = Some(vec![
        "10.2.0.0/16 le 24".parse().unwrap(),
        "172.16.5.0/24".parse().unwrap(),
    ]);
    let mut peer = Peer::established(cfg, true);
    peer.update(route(
        &[
            "10.2.0.0/24",   // permitted
            "10.2.1.0/25",   // longer than le 24
            "10.3.0.0/16",   // outside
            "172.16.5.0/24", // exact entry
            "172.16.5.0/25", // exact entries match only themselves
        ],
        vec![65515, 65001],
    ));
    peer.drain();
    assert_eq!(installed(&peer), vec![p("10.2.0.0/24"), p("172.16.5.0/24")]);
    assert_eq!(received(&peer), vec![p("10.2.0.0/24"), p("172.16.5.0/24")]);
    let st = peer.s.status();
    assert_eq!(st.prefixes_received, 2);
    assert_eq!(st.import.refused_by_policy, 3);
    // Withdrawing a refused prefix is harmless; withdrawing an accepted one works as ever.
    peer.update(Update {
        withdrawn: vec![p("10.3.0.0/16"), p("10.2.0.0/24")],
        ..Update::default()
    });
    peer.drain();
    assert!(peer.events.contains(&BgpEvent::WithdrawRoute {
        prefix: p("10.2.0.0/24")
    }));
    assert_eq!(received(&peer), vec![p("172.16.5.0/24")]);
}

#[test]
fn routes_covering_the_ike_peer_or_our_underlay_are_always_refused() {
    let mut cfg = cfg_a();
    // The policy would take anything: the protection does not depend on it.
    cfg.import = Some(vec![accept_all()]);
    cfg.protected = vec![ip(IKE_PEER), ip(UNDERLAY)];
    let mut peer = Peer::established(cfg, true);
    let hostile = [
        "192.0.2.2/32", // a host route to the IKE peer
        "192.0.2.0/25", // a more-specific of the underlay subnet: both addresses
        "128.0.0.0/1",  // half of 0/0 + 128/1: covers 192.0.2.x
        "0.0.0.0/0",    // the default route covers everything
        "192.0.2.1/32", // our own underlay address
        "192.0.0.0/16", // any covering prefix
    ];
    let mut all: Vec<&str> = hostile.to_vec();
    all.extend(["0.0.0.0/1", "10.2.0.0/24"]);
    let logs = capture_logs(|| {
        peer.update(route(&all, vec![65515]));
        peer.drain();
    });
    // 0.0.0.0/1 covers neither address (0.x to 127.x): the policy decides, and took it.
    assert_eq!(installed(&peer), vec![p("0.0.0.0/1"), p("10.2.0.0/24")]);
    let st = peer.s.status();
    assert_eq!(st.import.refused_protected, hostile.len() as u64);
    assert_eq!(st.import.refused_by_policy, 0);
    assert_eq!(st.prefixes_received, 2);
    assert_eq!(st.state, BgpState::Established);
    // One warning line for the UPDATE, naming each route and what it covers.
    let line = logs
        .lines()
        .find(|l| l.contains("covering an IKE peer or local underlay address"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{logs}"));
    assert!(
        line.contains("WARN") && line.contains("refused 6 route(s)"),
        "{line}"
    );
    for (prefix, covers) in [
        ("192.0.2.2/32", IKE_PEER),
        ("128.0.0.0/1", IKE_PEER),
        ("192.0.2.1/32", UNDERLAY),
    ] {
        assert!(
            line.contains(&format!("{prefix} (covers {covers})")),
            "{prefix}: {line}"
        );
    }
    // A later, harmless announcement of the same prefix is still refused; the others stay.
    peer.events.clear();
    peer.update(route(&["192.0.2.2/32"], vec![65515]));
    peer.drain();
    assert!(installed(&peer).is_empty());
    assert_eq!(peer.s.status().import.refused_protected, 7);
}

#[test]
fn a_protected_address_added_later_withdraws_the_routes_covering_it() {
    let mut peer = Peer::established(cfg_a(), true);
    peer.update(route(&["198.51.100.0/24", "10.2.0.0/24"], vec![65515]));
    peer.drain();
    assert_eq!(
        installed(&peer),
        vec![p("10.2.0.0/24"), p("198.51.100.0/24")]
    );
    // E.g. another connection's IKE peer, or a %any peer's address once its SA is up.
    peer.events.clear();
    let now = peer.now;
    let logs = capture_logs(|| peer.s.set_protected(now, vec![ip("198.51.100.7")]));
    peer.drain();
    assert_eq!(
        peer.events,
        vec![BgpEvent::WithdrawRoute {
            prefix: p("198.51.100.0/24")
        }]
    );
    assert_eq!(received(&peer), vec![p("10.2.0.0/24")]);
    assert_eq!(peer.s.status().import.refused_protected, 1);
    assert!(
        logs.contains("198.51.100.0/24 (covers 198.51.100.7)"),
        "{logs}"
    );
}

#[test]
fn refused_routes_do_not_count_towards_max_prefixes_and_counters_survive_a_reset() {
    let mut cfg = cfg_a();
    cfg.max_prefixes = 2;
    cfg.import = Some(vec!["10.2.0.0/16 le 24".parse().unwrap()]);
    let mut peer = Peer::established(cfg, true);
    // Ten refused prefixes cost nothing (they are not kept) and do not trip the limit.
    let refused: Vec<String> = (0..10).map(|i| format!("10.{}.0.0/16", 100 + i)).collect();
    let refused: Vec<&str> = refused.iter().map(String::as_str).collect();
    peer.update(route(&refused, vec![65515]));
    peer.update(route(&["10.2.0.0/24"], vec![65515]));
    peer.drain();
    assert_eq!(peer.s.state(), BgpState::Established);
    assert_eq!(installed(&peer), vec![p("10.2.0.0/24")]);
    assert_eq!(peer.s.status().import.refused_by_policy, 10);
    // The counters are the session's, not the connection's: a reset keeps them.
    peer.s.stop(peer.now, "test");
    assert_eq!(peer.s.status().import.refused_by_policy, 10);
}
