//! How SAs go down and come back: DPD, deletes from either side, terminate_all, config
//! reloads, start_action=start after a peer delete, INITIAL_CONTACT after a peer restart.

use crate::harness::*;
use ipsecgw::ike::{
    ChildDownReason, ConnState, DownReason, DpdAction, Engine, RetransmitConfig, StartAction,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Duration;

#[test]
fn dpd_detects_dead_peer() {
    for action in [DpdAction::Clear, DpdAction::Restart] {
        let (mut ca, cb) = pair();
        ca.dpd_delay = Duration::from_secs(10);
        ca.dpd_action = action;
        ca.retransmit = RetransmitConfig {
            timeout: Duration::from_secs(1),
            base: 2.0,
            tries: 2,
        };
        let mut sim = established(ca, cb, 70);
        let spi = sim.child_ups(Side::A)[0].spi_in;
        // Traffic keeps DPD quiet.
        sim.run_for(Duration::from_secs(8));
        let t = sim.now;
        sim.a.child_activity(spi, Some(t));
        sim.run_for(Duration::from_secs(9));
        assert_eq!(sim.a.stats().dpd_sent, 0);
        sim.run_for(Duration::from_secs(2));
        assert_eq!(sim.a.stats().dpd_sent, 1, "DPD 10 s after the last traffic");
        assert!(sim.ike_downs(Side::A).is_empty(), "a live peer answers DPD");
        // Now the peer dies.
        sim.filter = Box::new(|side, _| {
            if side == Side::A {
                Fate::Drop
            } else {
                Fate::Deliver
            }
        });
        sim.run_for(Duration::from_secs(20));
        let downs = sim.ike_downs(Side::A);
        assert_eq!(downs.len(), 1, "{downs:?}");
        assert!(downs[0].to_string().contains("DPD"), "{downs:?}");
        assert!(downs[0].is_dead_peer(), "{downs:?}");
        assert_eq!(sim.child_downs(Side::A).len(), 1);
        let inits_after = sim
            .wire
            .iter()
            .filter(|(_, s, t)| *s == Side::A && exch(t).0 == 34)
            .count();
        match action {
            DpdAction::Clear => assert_eq!(inits_after, 1, "clear: no re-initiation"),
            DpdAction::Restart => assert!(inits_after >= 2, "restart: re-initiated"),
        }
    }
}

#[test]
fn delete_from_either_side() {
    for side in [Side::A, Side::B] {
        let (ca, cb) = pair();
        let mut sim = established(ca, cb, 80);
        let now = sim.now;
        sim.engine(side).terminate(now, "c").unwrap();
        sim.run_for(Duration::from_secs(1));
        for s in [Side::A, Side::B] {
            assert_eq!(sim.ike_downs(s).len(), 1, "{side:?} -> {s:?}");
            assert_eq!(sim.child_downs(s).len(), 1);
            assert_eq!(sim.engine(s).status(now)[0].state, ConnState::Down);
        }
        let other = if side == Side::A { Side::B } else { Side::A };
        assert_eq!(sim.ike_downs(other)[0], DownReason::DeletedByPeer);
        assert_eq!(sim.ike_downs(side)[0], DownReason::Terminated);
        assert!(sim.a.poll_timeout().is_none() && sim.b.poll_timeout().is_none());
    }
}

#[test]
fn terminate_all_sends_delete() {
    let (ca, cb) = pair();
    let mut sim = established(ca, cb, 81);
    let now = sim.now;
    sim.a.terminate_all(now);
    // Events are emitted at once (SIGTERM path), the Delete goes out.
    assert!(sim.a.poll_event().is_some());
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.ike_downs(Side::B).len(), 1);
}

#[test]
fn reload_keeps_unchanged_and_restarts_changed() {
    let (mut ca, cb) = pair();
    ca.start_action = StartAction::Start;
    let mut sim = Sim::new(ca.clone(), cb, 120);
    sim.run_for(Duration::from_millis(10));
    assert_eq!(
        sim.ike_ups(Side::A).len(),
        1,
        "start_action=start initiates by itself"
    );
    let now = sim.now;
    sim.a.reload(now, vec![ca.clone()]);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.ike_ups(Side::A).len(), 1, "unchanged: SA kept");
    let mut changed = ca.clone();
    changed.children[0].replay_window = 128;
    let now = sim.now;
    sim.a.reload(now, vec![changed]);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.ike_downs(Side::A).len(), 1);
    assert_eq!(sim.ike_ups(Side::A).len(), 2, "changed: restarted");
    assert_eq!(sim.child_ups(Side::A).last().unwrap().replay_window, 128);
    let now = sim.now;
    sim.a.reload(now, vec![]);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.ike_downs(Side::A).len(), 2, "removed: deleted");
    assert!(sim.a.status(now).is_empty());
    assert_eq!(sim.b.status(sim.now)[0].state, ConnState::Down);
}

#[test]
fn start_action_start_reinitiates_after_peer_delete() {
    let (mut ca, cb) = pair();
    ca.start_action = StartAction::Start;
    let mut sim = Sim::new(ca, cb, 180);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.ike_ups(Side::A).len(), 1);
    let now = sim.now;
    sim.b.terminate(now, "c").unwrap();
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.ike_downs(Side::A), vec![DownReason::DeletedByPeer]);
    assert_eq!(
        sim.ike_ups(Side::A).len(),
        1,
        "waits a retransmit timeout first"
    );
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.ike_ups(Side::A).len(), 2, "kept up: re-initiated");
    sim.one_mirrored_pair("after re-initiation");
}

#[test]
fn initial_contact_replaces_stale_sa_after_peer_restart() {
    let (ca, cb) = pair();
    let mut sim = established(ca.clone(), cb, 190);
    let old_b = sim.child_ups(Side::B)[0].spi_in;
    // A "reboots": a fresh engine with the same config knows nothing of the old SA.
    sim.a = Engine::new(vec![ca], Box::new(StdRng::seed_from_u64(191)), sim.now);
    sim.initiate();
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.ike_ups(Side::B).len(), 2);
    let replaced = DownReason::ReplacedByInitialContact;
    assert_eq!(sim.ike_downs(Side::B), vec![replaced.clone()]);
    assert_eq!(
        sim.child_downs(Side::B),
        vec![(old_b, ChildDownReason::Ike(replaced))]
    );
    assert_eq!(sim.installed(Side::B).len(), 1);
    assert_eq!(sim.b.status(sim.now)[0].state, ConnState::Established);
}
