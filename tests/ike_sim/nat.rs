//! NAT traversal: forced encapsulation, staying on 500 without a NAT, NAT detection, and when
//! the peer address may (only behind a NAT) and may not move.

use crate::harness::*;
use crate::netsim::{A_IP, B_IP};
use ipsecgw::ike::Event;
use std::net::{IpAddr, SocketAddr};

#[test]
fn encap_always_floats_to_4500() {
    let (mut ca, cb) = pair();
    ca.encap_always = true;
    let sim = established(ca, cb, 100);
    let (a, b) = (&sim.child_ups(Side::A)[0], &sim.child_ups(Side::B)[0]);
    assert!(a.udp_encap && b.udp_encap);
    assert_eq!(
        a.remote,
        SocketAddr::new(B_IP.parse::<IpAddr>().unwrap(), 4500)
    );
    assert_eq!(
        b.remote,
        SocketAddr::new(A_IP.parse::<IpAddr>().unwrap(), 4500)
    );
    assert_eq!(a.local.port(), 4500);
    // IKE_SA_INIT on 500, everything after on 4500.
    for (_, _, t) in &sim.wire {
        let port = if exch(t).0 == 34 { 500 } else { 4500 };
        assert_eq!((t.local.port(), t.remote.port()), (port, port));
    }
    let st = sim.b.status(sim.now);
    assert!(st[0].ike.as_ref().unwrap().nat_detected);
    assert!(st[0].children[0].udp_encap);
}

#[test]
fn no_nat_stays_on_500() {
    let (ca, cb) = pair();
    let sim = established(ca, cb, 101);
    let a = &sim.child_ups(Side::A)[0];
    assert!(!a.udp_encap);
    assert!(sim
        .wire
        .iter()
        .all(|(_, _, t)| t.local.port() == 500 && t.remote.port() == 500));
}

#[test]
fn nat_between_peers_is_detected() {
    // A is behind a NAT: B sees A's packets from 203.0.113.7:31000.
    let (ca, mut cb) = pair();
    cb.remote_addrs = vec![];
    cb.remote_id = None;
    let mut sim = Sim::new(ca, cb, 102);
    let nat: SocketAddr = "203.0.113.7:31000".parse().unwrap();
    let nat45: SocketAddr = "203.0.113.7:31001".parse().unwrap();
    // Custom pump: rewrite addresses like a NAT would.
    let now = sim.now;
    sim.a.initiate(now, "c").unwrap();
    for _ in 0..20 {
        while let Some(t) = sim.a.poll_transmit() {
            let src = if t.local.port() == 4500 { nat45 } else { nat };
            sim.b.handle_datagram(now, t.remote, src, &t.data);
        }
        while let Some(t) = sim.b.poll_transmit() {
            let dst_port = if t.remote == nat45 { 4500 } else { 500 };
            assert!(
                t.remote == nat || t.remote == nat45,
                "B answers the NAT mapping"
            );
            sim.a.handle_datagram(
                now,
                SocketAddr::new(A_IP.parse().unwrap(), dst_port),
                t.local,
                &t.data,
            );
        }
    }
    let mut ups = vec![];
    while let Some(e) = sim.b.poll_event() {
        if let Event::ChildUp(c) = e {
            ups.push(c);
        }
    }
    assert_eq!(ups.len(), 1);
    assert!(ups[0].udp_encap);
    assert_eq!(ups[0].remote, nat45);
    assert!(sim.b.status(now)[0].ike.as_ref().unwrap().nat_detected);
    assert!(sim.a.status(now)[0].ike.as_ref().unwrap().nat_detected);
}

/// Issue 11 finding 6: without a NAT between the peers (RFC 7296 2.23), an authenticated
/// request from another address or port does not move the IKE SA.
#[test]
fn peer_address_follows_only_behind_a_nat() {
    let (ca, cb) = pair();
    let mut sim = established(ca, cb, 232);
    let now = sim.now;
    sim.a.rekey(now, "c", false).unwrap();
    let moved: SocketAddr = format!("{A_IP}:1234").parse().unwrap();
    let t = sim.a.poll_transmit().expect("CREATE_CHILD_SA request");
    sim.b.handle_datagram(now, t.remote, moved, &t.data);
    let answer = sim.b.poll_transmit().expect("B answers");
    assert_eq!(
        answer.remote, moved,
        "a response goes where its request came from"
    );
    let st = sim.b.status(sim.now);
    assert_eq!(
        st[0].ike.as_ref().unwrap().remote,
        format!("{A_IP}:500").parse::<SocketAddr>().unwrap(),
        "no NAT detected: the SA stays on the address it was set up with"
    );
    // B's own next request goes to the old address.
    sim.a
        .handle_datagram(now, answer.remote, answer.local, &answer.data);
    while let Some(t) = sim.a.poll_transmit() {
        sim.b.handle_datagram(now, t.remote, moved, &t.data);
        let answer = sim.b.poll_transmit().expect("B answers");
        assert_eq!(answer.remote, moved);
    }
    let now = sim.now;
    sim.b.rekey(now, "c", false).unwrap();
    let req = sim.b.poll_transmit().expect("B's request");
    assert_eq!(
        req.remote,
        format!("{A_IP}:500").parse::<SocketAddr>().unwrap()
    );
}

/// Moves datagrams between A (behind a NAT whose mapping of A's port 4500 is `mapped`, and
/// of 500 is `mapped500`) and B until both are quiet.
fn pump_through_nat(sim: &mut Sim, mapped500: SocketAddr, mapped: SocketAddr) {
    let now = sim.now;
    for _ in 0..20 {
        while let Some(t) = sim.a.poll_transmit() {
            let src = if t.local.port() == 4500 {
                mapped
            } else {
                mapped500
            };
            sim.b.handle_datagram(now, t.remote, src, &t.data);
        }
        while let Some(t) = sim.b.poll_transmit() {
            // The NAT forwards only what is sent to a live mapping.
            let dst_port = if t.remote == mapped {
                4500
            } else if t.remote == mapped500 {
                500
            } else {
                continue;
            };
            let a_local = SocketAddr::new(A_IP.parse().unwrap(), dst_port);
            sim.a.handle_datagram(now, a_local, t.local, &t.data);
        }
    }
    while let Some(e) = sim.a.poll_event() {
        sim.ev_a.push((now - sim.base, e));
    }
    while let Some(e) = sim.b.poll_event() {
        sim.ev_b.push((now - sim.base, e));
    }
}

/// Issue 9: when the NAT in front of the peer picks a new port, the next authenticated
/// request moves the IKE SA and the CHILD SAs must follow (Event::PeerMoved).
#[test]
fn nat_mapping_change_moves_the_sa_and_its_children() {
    let (ca, mut cb) = pair();
    cb.remote_addrs = vec![];
    cb.remote_id = None;
    let mut sim = Sim::new(ca, cb, 233);
    let nat500: SocketAddr = "203.0.113.7:31000".parse().unwrap();
    let nat45: SocketAddr = "203.0.113.7:31001".parse().unwrap();
    let now = sim.now;
    sim.a.initiate(now, "c").unwrap();
    pump_through_nat(&mut sim, nat500, nat45);
    let child_b = sim.one_mirrored_pair("through the NAT").1;
    assert_eq!(child_b.remote, nat45);
    let moved_events = |sim: &Sim| -> Vec<(SocketAddr, Vec<u32>)> {
        sim.events(Side::B)
            .into_iter()
            .filter_map(|e| match e {
                Event::PeerMoved {
                    remote, children, ..
                } => Some((*remote, children.clone())),
                _ => None,
            })
            .collect()
    };
    assert!(moved_events(&sim).is_empty());

    // The NAT forgets the mapping; A's next packets leave from another port.
    let renat: SocketAddr = "203.0.113.7:40002".parse().unwrap();
    // A spoofed, unauthenticated packet from yet another port moves nothing.
    let (spi_i, spi_r, _) = sim.ike_ups(Side::B)[0];
    let b_local: SocketAddr = format!("{B_IP}:4500").parse().unwrap();
    let spoof: SocketAddr = "203.0.113.7:50000".parse().unwrap();
    let now = sim.now;
    sim.b
        .handle_datagram(now, b_local, spoof, &spoofed_short_sk(spi_i, spi_r, 37, 2));
    assert!(sim.b.poll_transmit().is_none());
    assert!(moved_events(&sim).is_empty());
    // A's next request (a CHILD rekey here; DPD does the same) comes from the new port.
    sim.a.rekey(now, "c", false).unwrap();
    pump_through_nat(&mut sim, nat500, renat);
    assert_eq!(
        moved_events(&sim),
        vec![(renat, vec![child_b.spi_in])],
        "B reports the move for the CHILD SA installed then"
    );
    let st = &sim.b.status(sim.now)[0];
    assert_eq!(st.ike.as_ref().unwrap().remote, renat);
    // The rekeyed CHILD SA was set up at the new address, and the exchange completed there.
    let (_, new_b) = sim.one_mirrored_pair("rekeyed after the move");
    assert_eq!(new_b.remote, renat);
    assert_eq!(new_b.rekey_of, Some(child_b.spi_in));
}
