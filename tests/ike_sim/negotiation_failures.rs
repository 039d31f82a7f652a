//! Handshakes that fail: wrong PSK or identity, no common IKE or ESP proposal, unacceptable
//! traffic selectors (the IKE SA stays when only the CHILD SA fails).

use crate::harness::*;
use crate::netsim::{A_IP, B_IP};
use ipsecgw::ike::{AuthFailure, ConnState, DownReason, Failure, ProposalKind};
use std::time::Duration;
use zeroize::Zeroizing;

#[test]
fn wrong_psk_fails_on_both_sides() {
    let (ca, mut cb) = pair();
    cb.psk = Zeroizing::new(b"another-psk".to_vec());
    let mut sim = Sim::new(ca, cb, 10);
    sim.initiate();
    sim.run_for(Duration::from_secs(1));
    assert!(sim.ike_ups(Side::A).is_empty());
    assert!(sim.ike_ups(Side::B).is_empty());
    let downs = sim.ike_downs(Side::A);
    assert_eq!(downs.len(), 1);
    assert_eq!(
        downs[0],
        DownReason::Failed(Failure::AuthFailed(AuthFailure::RejectedByPeer))
    );
    assert!(
        downs[0].to_string().contains("AUTHENTICATION_FAILED"),
        "{downs:?}"
    );
    assert_eq!(sim.b.stats().auth_failures, 1);
    assert_eq!(sim.a.stats().auth_failures, 1);
    assert_eq!(sim.a.status(sim.now)[0].state, ConnState::Down);
    assert_eq!(sim.b.status(sim.now)[0].state, ConnState::Down);
    // B, the responder, remembers why too.
    assert!(matches!(
        sim.b.status(sim.now)[0]
            .last_error
            .as_ref()
            .map(|l| &l.failure),
        Some(Failure::AuthFailed(AuthFailure::NoMatchingPsk { .. }))
    ));
    assert!(sim.a.poll_timeout().is_none(), "nothing left to do on A");
    // The responder kept no SA: a replay of A's IKE_AUTH hits an unknown SPI.
    let auth = sim
        .wire
        .iter()
        .find(|(_, s, t)| *s == Side::A && exch(t).0 == 35)
        .unwrap()
        .2
        .clone();
    let before = sim.b.stats().unknown_spi_dropped;
    let now = sim.now;
    sim.b
        .handle_datagram(now, auth.remote, auth.local, &auth.data);
    assert_eq!(sim.b.stats().unknown_spi_dropped, before + 1);
}

#[test]
fn wrong_remote_id_fails() {
    let (mut ca, cb) = pair();
    ca.remote_id = Some("vpn.example.com".parse().unwrap());
    let mut sim = Sim::new(ca, cb, 11);
    sim.initiate();
    sim.run_for(Duration::from_secs(1));
    // B has no connection for IDr=vpn.example.com with that ID... it falls back to address
    // match, authenticates, but A rejects B's identity.
    let downs = sim.ike_downs(Side::A);
    assert_eq!(downs.len(), 1);
    assert!(
        matches!(
            &downs[0],
            DownReason::Failed(Failure::AuthFailed(AuthFailure::PeerIdentity { .. }))
        ),
        "{downs:?}"
    );
    assert!(downs[0].to_string().contains("authentication failed"));
}

#[test]
fn no_proposal_chosen() {
    let ca = cfg("c", A_IP, Some(B_IP), &["3des-sha1-modp1024"], &ESP3);
    let cb = cfg("c", B_IP, Some(A_IP), &["aes256-sha1-modp1024"], &ESP3);
    let mut sim = Sim::new(ca, cb, 12);
    sim.initiate();
    sim.run_for(Duration::from_secs(1));
    let downs = sim.ike_downs(Side::A);
    assert_eq!(downs.len(), 1);
    assert!(
        downs[0].to_string().contains("NO_PROPOSAL_CHOSEN"),
        "{downs:?}"
    );
    let Some(Failure::NoProposalChosen(m)) = downs[0].failure() else {
        panic!("{downs:?}");
    };
    assert_eq!((m.kind, m.theirs.as_deref()), (ProposalKind::Ike, None));
    assert!(m.ours.contains("3DES_CBC"), "{m:?}");
    assert_eq!(sim.b.stats().no_proposal, 1);
    let st = &sim.b.status(sim.now)[0];
    assert!(st.ike.is_none());
    // The responder saw both offers.
    let Some(Failure::NoProposalChosen(m)) = st.last_error.as_ref().map(|l| &l.failure) else {
        panic!("{st:?}");
    };
    assert!(m.ours.contains("AES_CBC_256"), "{m:?}");
    assert!(
        m.theirs.as_deref().unwrap_or("").contains("3DES_CBC"),
        "{m:?}"
    );
}

#[test]
fn esp_no_proposal_keeps_ike_sa() {
    let ca = cfg("c", A_IP, Some(B_IP), &IKE3, &["3des-sha1"]);
    let cb = cfg("c", B_IP, Some(A_IP), &IKE3, &["aes256-sha1"]);
    let sim = established(ca, cb, 13);
    assert!(sim.child_ups(Side::A).is_empty());
    assert!(sim.child_ups(Side::B).is_empty());
    assert_eq!(sim.b.stats().no_proposal, 1);
    assert_eq!(sim.a.stats().no_proposal, 1);
}

#[test]
fn ts_unacceptable_keeps_ike_sa() {
    let (mut ca, mut cb) = pair();
    ca.children[0].local_ts = vec!["10.1.0.0/24".parse().unwrap()];
    cb.children[0].remote_ts = vec!["172.16.0.0/12".parse().unwrap()];
    let sim = established(ca, cb, 91);
    assert!(sim.child_ups(Side::A).is_empty() && sim.child_ups(Side::B).is_empty());
    assert_eq!(sim.b.stats().ts_unacceptable, 1);
    assert_eq!(sim.a.stats().ts_unacceptable, 1);
}
