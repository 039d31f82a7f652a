//! IKE fragmentation (RFC 7383) between two in-memory engines with simulated time: the
//! network here hands each batch of datagrams to the test, which may lose, reorder,
//! duplicate or forge fragments before they are delivered.

mod netsim;
use ipsecgw::ike::FragmentationMode;
use netsim::*;
use std::time::Duration;

#[test]
fn big_ike_auth_goes_in_fragments_both_ways() {
    let mut sim = Sim::new(big_pair(FragmentationMode::Yes, FragmentationMode::Yes), 1);
    sim.establish();
    sim.assert_up_once();
    let req = sim.fragments(Side::A, EXCH_IKE_AUTH, false);
    let resp = sim.fragments(Side::B, EXCH_IKE_AUTH, true);
    assert!(req.len() >= 3, "request in {} fragments", req.len());
    assert!(resp.len() >= 3, "response in {} fragments", resp.len());
    let total = req[0].1.fragment().unwrap().1;
    let numbers: Vec<u16> = req.iter().map(|(_, d)| d.fragment().unwrap().0).collect();
    assert_eq!(numbers, (1..=total).collect::<Vec<_>>());
    // Every fragment fits the configured 576-byte datagram (20 IP + 8 UDP headers).
    for (_, d) in req.iter().chain(&resp) {
        assert!(d.t.data.len() + 28 <= 576, "{} bytes", d.t.data.len());
    }
    let (sa, sb) = (sim.a.stats(), sim.b.stats());
    assert_eq!(sa.fragments_sent, req.len() as u64);
    assert_eq!(sb.fragments_received, req.len() as u64);
    assert_eq!(sb.fragments_sent, resp.len() as u64);
    assert_eq!((sa.fragments_reassembled, sb.fragments_reassembled), (1, 1));
    assert_eq!(sa.fragments_dropped + sb.fragments_dropped, 0);
    let ike = sim.a.status(sim.now)[0].ike.clone().unwrap();
    assert!(ike.fragments.negotiated);
    assert_eq!(ike.fragments.sent, req.len() as u64);
    assert_eq!(ike.fragments.received, resp.len() as u64);
    // IKE_SA_INIT is never fragmented.
    assert!(sim
        .sent
        .iter()
        .all(|(_, d)| d.exchange() != 34 || d.fragment().is_none()));
}

#[test]
fn small_messages_and_unwilling_peers_are_not_fragmented() {
    // Small IKE_AUTH: support negotiated, nothing fragmented.
    let small = (
        cfg(A_IP, B_IP, (1, 2), 1, frag(FragmentationMode::Yes, 576)),
        cfg(B_IP, A_IP, (2, 1), 1, frag(FragmentationMode::Yes, 576)),
    );
    let mut sim = Sim::new(small, 2);
    sim.establish();
    sim.assert_up_once();
    assert!(sim.sent.iter().all(|(_, d)| d.fragment().is_none()));
    assert!(
        sim.a.status(sim.now)[0]
            .ike
            .clone()
            .unwrap()
            .fragments
            .negotiated
    );

    // B does not announce support: A sends its big IKE_AUTH whole (the network here
    // carries it), and B answers whole.
    let mut sim = Sim::new(big_pair(FragmentationMode::Yes, FragmentationMode::No), 3);
    sim.establish();
    sim.assert_up_once();
    assert!(sim.sent.iter().all(|(_, d)| d.fragment().is_none()));
    assert!(
        !sim.a.status(sim.now)[0]
            .ike
            .clone()
            .unwrap()
            .fragments
            .negotiated
    );

    // A accepts but does not send fragments; B fragments its response.
    let mut sim = Sim::new(
        big_pair(FragmentationMode::Accept, FragmentationMode::Force),
        4,
    );
    sim.establish();
    sim.assert_up_once();
    assert!(sim.fragments(Side::A, EXCH_IKE_AUTH, false).is_empty());
    assert!(sim.fragments(Side::B, EXCH_IKE_AUTH, true).len() >= 3);
}

#[test]
fn lost_request_fragment_makes_the_initiator_resend_every_fragment() {
    let mut sim = Sim::new(big_pair(FragmentationMode::Yes, FragmentationMode::Yes), 5);
    let mut lost = false;
    sim.net = Box::new(move |batch| {
        batch.retain(|d| {
            let drop = !lost && d.from == Side::A && d.fragment().is_some_and(|f| f.0 == 2);
            lost |= drop;
            !drop
        })
    });
    sim.establish();
    sim.assert_up_once();
    let req = sim.fragments(Side::A, EXCH_IKE_AUTH, false);
    let total = usize::from(req[0].1.fragment().unwrap().1);
    // Sent twice, whole: at 0 s and at the 4 s retransmission.
    assert_eq!(req.len(), 2 * total);
    assert!(req[total..]
        .iter()
        .all(|(t, _)| *t == Duration::from_secs(4)));
    assert_eq!(sim.a.stats().retransmits, 1);
    // B kept fragment 1 and 3.. from the first transmission: their copies are duplicates.
    assert_eq!(sim.b.stats().fragments_dropped, (total - 1) as u64);
}

#[test]
fn lost_response_fragment_is_answered_with_the_cached_fragments() {
    let mut sim = Sim::new(big_pair(FragmentationMode::Yes, FragmentationMode::Yes), 6);
    let mut lost = false;
    sim.net = Box::new(move |batch| {
        batch.retain(|d| {
            let drop = !lost && d.from == Side::B && d.fragment().is_some_and(|f| f.0 == 2);
            lost |= drop;
            !drop
        })
    });
    sim.establish();
    sim.assert_up_once();
    let resp = sim.fragments(Side::B, EXCH_IKE_AUTH, true);
    let total = usize::from(resp[0].1.fragment().unwrap().1);
    // A's retransmitted request: only its fragment 1 makes B re-send the response, once,
    // and byte for byte the fragments it sent the first time.
    assert_eq!(resp.len(), 2 * total);
    for i in 0..total {
        assert_eq!(
            resp[i].1.t.data,
            resp[total + i].1.t.data,
            "fragment {}",
            i + 1
        );
    }
    let sb = sim.b.stats();
    assert_eq!(sb.responses_resent, 1);
    assert_eq!(sim.child_ups(Side::B), 1, "the request was processed once");
}

#[test]
fn reordered_and_duplicated_fragments_are_reassembled_once() {
    let mut sim = Sim::new(big_pair(FragmentationMode::Yes, FragmentationMode::Yes), 7);
    sim.net = Box::new(|batch| {
        batch.reverse();
        let copies: Vec<Dgram> = batch
            .iter()
            .filter(|d| d.fragment().is_some())
            .cloned()
            .collect();
        batch.extend(copies);
    });
    sim.establish();
    sim.assert_up_once();
    let (sa, sb) = (sim.a.stats(), sim.b.stats());
    let req = sim.fragments(Side::A, EXCH_IKE_AUTH, false).len() as u64;
    let resp = sim.fragments(Side::B, EXCH_IKE_AUTH, true).len() as u64;
    // The first copy of each is kept; the second copies arrive after the message was
    // whole. At B they are fragments of an answered request: fragment 1 makes B re-send
    // its cached response (once), the others are dropped. At A the response is no longer
    // awaited: dropped by message ID.
    assert_eq!((sa.fragments_reassembled, sb.fragments_reassembled), (1, 1));
    assert_eq!(sb.fragments_received, req);
    assert_eq!(sb.fragments_dropped, req - 1);
    assert_eq!(sb.responses_resent, 1);
    // B sent its response twice (the re-send of the cache); A kept the first copy of each.
    assert_eq!(sa.fragments_received, resp / 2);
    assert!(sa.bad_msgid_dropped >= resp, "{sa:?}");
}

#[test]
fn forged_fragments_are_dropped_before_reassembly() {
    let mut sim = Sim::new(big_pair(FragmentationMode::Yes, FragmentationMode::Yes), 8);
    let mut forged = 0;
    sim.net = Box::new(move |batch| {
        // Ahead of each genuine fragment 2 goes a forgery with the same numbers: if it were
        // kept, the genuine one would be refused as a duplicate and nothing would decrypt.
        let mut out = Vec::new();
        for d in batch.drain(..) {
            if d.fragment().is_some_and(|f| f.0 == 2) && forged < 2 {
                let mut bad = d.clone();
                let n = bad.t.data.len();
                bad.t.data[n - 20] ^= 0x55;
                out.push(bad);
                forged += 1;
            }
            out.push(d);
        }
        *batch = out;
    });
    sim.establish();
    sim.assert_up_once();
    let (sa, sb) = (sim.a.stats(), sim.b.stats());
    assert_eq!(sa.decrypt_failed + sb.decrypt_failed, 2);
    assert_eq!(sa.fragments_dropped + sb.fragments_dropped, 0);
    assert_eq!(sa.retransmits, 0, "no retransmission was needed");
}

#[test]
fn fragments_of_other_message_ids_are_not_kept() {
    let mut sim = Sim::new(big_pair(FragmentationMode::Yes, FragmentationMode::Yes), 9);
    sim.net = Box::new(|batch| {
        // A copy of each request fragment with message ID 7 (beyond the window) goes first.
        let mut out = Vec::new();
        for d in batch.drain(..) {
            if d.fragment().is_some() && !d.is_response() {
                let mut odd = d.clone();
                odd.t.data[20..24].copy_from_slice(&7u32.to_be_bytes());
                out.push(odd);
            }
            out.push(d);
        }
        *batch = out;
    });
    sim.establish();
    sim.assert_up_once();
    let req = sim.fragments(Side::A, EXCH_IKE_AUTH, false).len() as u64;
    let sb = sim.b.stats();
    assert_eq!(sb.bad_msgid_dropped, req);
    assert_eq!(sb.fragments_received, req);
}
