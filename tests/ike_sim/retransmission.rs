//! Lost and duplicated datagrams: retransmission timing, cached responses, giving up, and
//! start_action=start trying again after a failed attempt.

use crate::harness::*;
use ipsecgw::ike::{
    ConnState, DownReason, Event, ExchangeKind, Failure, RetransmitConfig, StartAction,
};
use std::time::Duration;

#[test]
fn lost_first_ike_auth_is_retransmitted() {
    let (ca, cb) = pair();
    let mut sim = Sim::new(ca, cb, 3);
    let mut dropped = false;
    sim.filter = Box::new(move |side, t| {
        let (x, resp, _) = exch(t);
        if side == Side::A && x == 35 && !resp && !dropped {
            dropped = true;
            return Fate::Drop;
        }
        Fate::Deliver
    });
    sim.initiate();
    sim.run_for(Duration::from_secs(1));
    assert!(sim.ike_ups(Side::A).is_empty());
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.ike_ups(Side::A).len(), 1);
    assert_eq!(sim.child_ups(Side::B).len(), 1);
    assert_eq!(sim.a.stats().retransmits, 1);
    let auth_sends: Vec<Duration> = sim
        .wire
        .iter()
        .filter(|(_, s, t)| *s == Side::A && exch(t).0 == 35)
        .map(|(d, _, _)| *d)
        .collect();
    assert_eq!(auth_sends, vec![Duration::ZERO, Duration::from_secs(4)]);
    assert_mirrored(&sim.child_ups(Side::A)[0], &sim.child_ups(Side::B)[0]);
}

#[test]
fn duplicated_requests_get_cached_responses() {
    let (ca, cb) = pair();
    let mut sim = Sim::new(ca, cb, 4);
    sim.filter = Box::new(|_, t| {
        if exch(t).1 {
            Fate::Deliver
        } else {
            Fate::Duplicate
        }
    });
    sim.initiate();
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.ike_ups(Side::A).len(), 1);
    assert_eq!(sim.ike_ups(Side::B).len(), 1);
    assert_eq!(
        sim.child_ups(Side::B).len(),
        1,
        "duplicate IKE_AUTH must not create a second CHILD SA"
    );
    let sb = sim.b.stats();
    // IKE_SA_INIT and IKE_AUTH were both answered from the cache once.
    assert_eq!(sb.responses_resent, 2);
    // The duplicate responses are dropped by A as unexpected.
    assert!(sim.a.stats().bad_msgid_dropped >= 1);
    // DPD-style INFORMATIONAL duplicated too: still one SA each, still answering.
    let now = sim.now;
    sim.a.rekey(now, "c", false).unwrap();
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.installed(Side::A).len(), 1);
    assert_eq!(sim.installed(Side::B).len(), 1);
    assert_mirrored(&sim.installed(Side::A)[0], &sim.installed(Side::B)[0]);
}

#[test]
fn retransmits_until_exhaustion_then_down() {
    let (mut ca, cb) = pair();
    ca.retransmit = RetransmitConfig {
        timeout: Duration::from_secs(2),
        base: 2.0,
        tries: 3,
    };
    let mut sim = Sim::new(ca, cb, 5);
    sim.filter = Box::new(|side, _| {
        if side == Side::A {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    sim.initiate();
    sim.run_for(Duration::from_secs(29));
    let sends: Vec<Duration> = sim
        .wire
        .iter()
        .filter(|(_, s, _)| *s == Side::A)
        .map(|(d, _, _)| *d)
        .collect();
    assert_eq!(
        sends,
        vec![0, 2, 6, 14]
            .into_iter()
            .map(Duration::from_secs)
            .collect::<Vec<_>>()
    );
    assert!(sim.ike_downs(Side::A).is_empty());
    sim.run_for(Duration::from_secs(2));
    let downs = sim.ike_downs(Side::A);
    assert_eq!(downs.len(), 1);
    assert!(downs[0].to_string().contains("not responding"), "{downs:?}");
    assert!(
        matches!(
            &downs[0],
            DownReason::Failed(Failure::PeerNotResponding {
                exchange: ExchangeKind::IkeSaInit,
                retransmits: 3,
                ..
            })
        ),
        "{downs:?}"
    );
    assert!(!downs[0].is_dead_peer(), "never came up: not a dead peer");
    assert_eq!(
        sim.ev_a
            .iter()
            .find(|(_, e)| matches!(e, Event::IkeDown { .. }))
            .unwrap()
            .0,
        Duration::from_secs(30)
    );
    assert_eq!(sim.a.stats().retransmits, 3);
    let st = &sim.a.status(sim.now)[0];
    assert_eq!(st.state, ConnState::Down);
    assert_eq!(
        st.last_error.as_ref().map(|l| &l.failure),
        downs[0].failure(),
        "the status says why"
    );
    // start_action = none: no re-initiation.
    sim.run_for(Duration::from_secs(100));
    assert_eq!(sim.wire.iter().filter(|(_, s, _)| *s == Side::A).count(), 4);
}

#[test]
fn start_action_start_reinitiates_after_failure() {
    let (mut ca, cb) = pair();
    ca.start_action = StartAction::Start;
    ca.retransmit = RetransmitConfig {
        timeout: Duration::from_secs(1),
        base: 1.0,
        tries: 1,
    };
    let mut sim = Sim::new(ca, cb, 6);
    let mut n = 0;
    // The peer is unreachable for the first attempt only.
    sim.filter = Box::new(move |side, _| {
        if side == Side::A && n < 2 {
            n += 1;
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.ike_downs(Side::A).len(), 1);
    assert_eq!(sim.ike_ups(Side::A).len(), 1);
    assert_eq!(sim.installed(Side::B).len(), 1);
}
