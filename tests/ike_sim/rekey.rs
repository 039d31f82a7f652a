//! CHILD and IKE SA rekeying: on request, by jittered timers, and both ends at once.

use crate::harness::*;
use crate::netsim::{A_IP, B_IP};
use ipsecgw::ike::{ChildDownReason, ConnState, DownReason, Event};
use std::time::Duration;

#[test]
fn child_rekey_with_and_without_pfs() {
    for (seed, esp) in [(20u64, "aes256-sha1"), (21, "aes128-sha1-modp1024")] {
        let ca = cfg("c", A_IP, Some(B_IP), &IKE3, &[esp]);
        let cb = cfg("c", B_IP, Some(A_IP), &IKE3, &[esp]);
        let mut sim = established(ca, cb, seed);
        let old_a = sim.child_ups(Side::A)[0].clone();
        let old_b = sim.child_ups(Side::B)[0].clone();
        let now = sim.now;
        sim.a.rekey(now, "c", false).unwrap();
        sim.run_for(Duration::from_secs(1));
        let ups_a = sim.child_ups(Side::A);
        let ups_b = sim.child_ups(Side::B);
        assert_eq!((ups_a.len(), ups_b.len()), (2, 2), "{esp}");
        let (na, nb) = (&ups_a[1], &ups_b[1]);
        assert_mirrored(na, nb);
        assert_eq!(na.rekey_of, Some(old_a.spi_in));
        assert_eq!(nb.rekey_of, Some(old_b.spi_in));
        assert_ne!(&na.encr_key_in[..], &old_a.encr_key_in[..]);
        assert_ne!(na.spi_in, old_a.spi_in);
        let pfs = esp.contains("modp");
        assert_eq!(na.dh.is_some(), pfs);
        // Old SAs deleted on both sides, new ones remain.
        assert_eq!(
            sim.child_downs(Side::A),
            vec![(old_a.spi_in, ChildDownReason::Rekeyed)]
        );
        assert_eq!(
            sim.child_downs(Side::B),
            vec![(old_b.spi_in, ChildDownReason::Rekeyed)]
        );
        assert_eq!(sim.installed(Side::A).len(), 1);
        assert_eq!(sim.b.status(sim.now)[0].children.len(), 1);
        // And the responder can rekey too.
        let now = sim.now;
        sim.b.rekey(now, "c", false).unwrap();
        sim.run_for(Duration::from_secs(1));
        let (_, ib) = sim.one_mirrored_pair(esp);
        assert_eq!(ib.rekey_of, Some(nb.spi_in));
    }
}

#[test]
fn ike_rekey_moves_children() {
    let (ca, cb) = pair();
    let mut sim = established(ca, cb, 30);
    let old = sim.ike_ups(Side::A)[0];
    let child_a = sim.child_ups(Side::A)[0].clone();
    let now = sim.now;
    sim.a.rekey(now, "c", true).unwrap();
    sim.run_for(Duration::from_secs(1));
    let (ua, ub) = (sim.ike_ups(Side::A), sim.ike_ups(Side::B));
    assert_eq!((ua.len(), ub.len()), (2, 2));
    assert_eq!(ua[1], ub[1]);
    assert!(ua[1].2, "rekeyed flag");
    assert_ne!((ua[1].0, ua[1].1), (old.0, old.1));
    assert_eq!(sim.ike_downs(Side::A), vec![DownReason::Rekeyed]);
    assert_eq!(sim.ike_downs(Side::B), vec![DownReason::Rekeyed]);
    assert!(sim.child_downs(Side::A).is_empty() && sim.child_downs(Side::B).is_empty());
    let st = sim.a.status(sim.now);
    assert_eq!(st[0].ike.as_ref().unwrap().spi_i, ua[1].0);
    assert_eq!(st[0].children[0].spi_in, child_a.spi_in);
    // The new IKE SA works (keys agree): rekey the child over it, from the other side.
    let now = sim.now;
    sim.b.rekey(now, "c", false).unwrap();
    sim.run_for(Duration::from_secs(1));
    let (ia, _) = sim.one_mirrored_pair("IKE rekey");
    assert_eq!(ia.rekey_of, Some(child_a.spi_in));
    // Rekey the IKE SA again, from B this time.
    let now = sim.now;
    sim.b.rekey(now, "c", true).unwrap();
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.ike_ups(Side::A).len(), 3);
    assert_eq!(sim.ike_ups(Side::A)[2], sim.ike_ups(Side::B)[2]);
    assert_eq!(sim.a.stats().ike_rekeyed, 2);
}

#[test]
fn rekey_timers_fire_with_jitter() {
    let (mut ca, mut cb) = pair();
    ca.rekey_time = Duration::from_secs(3600);
    ca.children[0].rekey_time = Duration::from_secs(600);
    cb.rekey_time = Duration::from_secs(7200);
    cb.children[0].rekey_time = Duration::from_secs(1200);
    let mut sim = established(ca, cb, 40);
    let st = sim.a.status(sim.now);
    let rekey_in = st[0].ike.as_ref().unwrap().rekey_in_secs.unwrap();
    assert!((3240..=3600).contains(&rekey_in), "{rekey_in}");
    sim.run_for(Duration::from_secs(601));
    let ups = sim.child_ups(Side::A);
    assert_eq!(ups.len(), 2, "child rekeyed once by A's timer");
    let when = sim
        .ev_a
        .iter()
        .filter(|(_, e)| matches!(e, Event::ChildUp(_)))
        .nth(1)
        .unwrap()
        .0;
    assert!(
        when >= Duration::from_secs(540) && when <= Duration::from_secs(600),
        "{when:?}"
    );
    sim.run_for(Duration::from_secs(3600));
    assert!(sim.ike_ups(Side::A).len() >= 2, "IKE SA rekeyed by timer");
    sim.one_mirrored_pair("after the timer rekeys");
}

#[test]
fn simultaneous_child_rekey_resolves_to_one_sa() {
    for seed in 50..56 {
        let (ca, cb) = pair();
        let mut sim = established(ca, cb, seed);
        let now = sim.now;
        sim.a.rekey(now, "c", false).unwrap();
        sim.b.rekey(now, "c", false).unwrap();
        sim.run_for(Duration::from_secs(5));
        sim.one_mirrored_pair(&format!("seed {seed}"));
    }
}

#[test]
fn simultaneous_ike_rekey_converges() {
    let (ca, cb) = pair();
    let mut sim = established(ca, cb, 60);
    let now = sim.now;
    sim.a.rekey(now, "c", true).unwrap();
    sim.b.rekey(now, "c", true).unwrap();
    sim.run_for(Duration::from_secs(30));
    let (sa, sb) = (sim.a.status(sim.now), sim.b.status(sim.now));
    assert_eq!(sa[0].state, ConnState::Established);
    assert_eq!(
        sa[0].ike.as_ref().unwrap().spi_i,
        sb[0].ike.as_ref().unwrap().spi_i
    );
    assert_eq!(
        sa[0].ike.as_ref().unwrap().spi_r,
        sb[0].ike.as_ref().unwrap().spi_r
    );
    // The surviving SA still works.
    let now = sim.now;
    sim.a.rekey(now, "c", false).unwrap();
    sim.run_for(Duration::from_secs(1));
    sim.one_mirrored_pair("after simultaneous IKE rekeys");
}
