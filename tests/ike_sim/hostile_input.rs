//! Garbage, replays, spoofed and malformed datagrams and absurd settings: never a panic, never
//! a lost SA, no reflection, no false sign of life.

use crate::harness::*;
use crate::netsim::{A_IP, B_IP};
use ipsecgw::ike::{ConnState, RetransmitConfig, Transmit};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::SocketAddr;
use std::time::Duration;

#[test]
fn garbage_never_panics_and_sa_survives() {
    let (ca, cb) = pair();
    let mut sim = established(ca, cb, 110);
    let captured: Vec<Transmit> = sim.wire.iter().map(|(_, _, t)| t.clone()).collect();
    let mut rng = StdRng::seed_from_u64(999);
    let now = sim.now;
    let a_local: SocketAddr = format!("{A_IP}:500").parse().unwrap();
    let b_remote: SocketAddr = format!("{B_IP}:500").parse().unwrap();
    for i in 0..3000 {
        let data: Vec<u8> = if i % 3 == 0 {
            (0..rng.gen_range(0..400)).map(|_| rng.gen()).collect()
        } else {
            let mut d = captured[rng.gen_range(0..captured.len())].data.clone();
            for _ in 0..rng.gen_range(1..4) {
                let p = rng.gen_range(0..d.len());
                d[p] = rng.gen();
            }
            if i % 5 == 0 {
                d.truncate(rng.gen_range(0..d.len()));
            }
            if i % 7 == 0 {
                // Keep the length field honest so deeper parsers are reached.
                let l = d.len() as u32;
                if d.len() >= 28 {
                    d[24..28].copy_from_slice(&l.to_be_bytes());
                }
            }
            d
        };
        sim.a.handle_datagram(now, a_local, b_remote, &data);
        sim.b.handle_datagram(now, b_remote, a_local, &data);
    }
    // Replayed old messages are harmless too.
    for t in &captured {
        sim.a.handle_datagram(now, t.remote, t.local, &t.data);
        sim.b.handle_datagram(now, t.remote, t.local, &t.data);
    }
    // Drain whatever the engines answered (e.g. half-open responses) without delivering.
    while sim.a.poll_transmit().is_some() {}
    while sim.b.poll_transmit().is_some() {}
    let (sa, sb) = (sim.a.stats(), sim.b.stats());
    assert!(
        sa.malformed_dropped + sa.unknown_spi_dropped + sa.decrypt_failed > 1000,
        "{sa:?}"
    );
    assert!(sb.decrypt_failed > 0, "{sb:?}");
    // Existing SAs survived and still work: rekey the child.
    assert_eq!(sim.a.status(now)[0].state, ConnState::Established);
    sim.a.rekey(now, "c", false).unwrap();
    sim.run_for(Duration::from_secs(1));
    sim.one_mirrored_pair("after garbage");
    assert!(sim.ike_downs(Side::A).is_empty() && sim.ike_downs(Side::B).is_empty());
}

#[test]
fn unknown_critical_payload_in_ike_sa_init_is_answered() {
    use ipsecgw::ike::codec::{self, Header, Payload};
    let (ca, cb) = pair();
    let mut sim = Sim::new(ca, cb, 170);
    let h = Header {
        spi_i: 0x1122334455667788,
        spi_r: 0,
        next_payload: 0,
        version: codec::IKE_VERSION,
        exchange: codec::EXCH_IKE_SA_INIT,
        flags: codec::FLAG_INITIATOR,
        msg_id: 0,
        length: 0,
    };
    let msg = codec::encode_plain(
        h,
        &[Payload::Other {
            ptype: 222,
            critical: true,
            body: vec![1, 2],
        }],
    );
    let now = sim.now;
    let (b_local, a_remote): (SocketAddr, SocketAddr) = (
        format!("{B_IP}:500").parse().unwrap(),
        format!("{A_IP}:500").parse().unwrap(),
    );
    sim.b.handle_datagram(now, b_local, a_remote, &msg);
    let t = sim.b.poll_transmit().expect("a response");
    let parsed = codec::Message::parse(&t.data).unwrap();
    let nt = codec::find_notify(
        &parsed.payloads,
        codec::notify::UNSUPPORTED_CRITICAL_PAYLOAD,
    )
    .unwrap();
    assert_eq!(nt.data, vec![222]);
    assert_eq!(t.remote, a_remote);
    // A non-critical unknown payload is skipped: the request is otherwise judged normally
    // (here: it lacks SA/KE/Nonce, so INVALID_SYNTAX).
    let msg = codec::encode_plain(
        h_clone(),
        &[Payload::Other {
            ptype: 222,
            critical: false,
            body: vec![1, 2],
        }],
    );
    sim.b.handle_datagram(now, b_local, a_remote, &msg);
    let t = sim.b.poll_transmit().expect("a response");
    let parsed = codec::Message::parse(&t.data).unwrap();
    assert!(codec::find_notify(&parsed.payloads, codec::notify::INVALID_SYNTAX).is_some());
    assert!(sim.b.status(now)[0].ike.is_none());

    fn h_clone() -> Header {
        Header {
            spi_i: 0x99,
            spi_r: 0,
            next_payload: 0,
            version: codec::IKE_VERSION,
            exchange: codec::EXCH_IKE_SA_INIT,
            flags: codec::FLAG_INITIATOR,
            msg_id: 0,
            length: 0,
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Arbitrary datagrams at an engine holding an established SA: no panic, SA intact.
    #[test]
    fn engine_survives_arbitrary_datagrams(datagrams in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), 1..40), header_of in 0usize..6) {
        let (ca, cb) = pair();
        let mut sim = established(ca, cb, 200);
        let captured: Vec<Transmit> = sim.wire.iter().map(|(_, _, t)| t.clone()).collect();
        let now = sim.now;
        for mut d in datagrams {
            // Half of them carry a real IKE header of this session so the SA lookup succeeds.
            if header_of < captured.len() && d.len() % 2 == 0 {
                let hdr = &captured[header_of].data[..28];
                let mut m = hdr.to_vec();
                m.extend_from_slice(&d);
                let l = m.len() as u32;
                m[24..28].copy_from_slice(&l.to_be_bytes());
                d = m;
            }
            let (la, lb): (SocketAddr, SocketAddr) = (format!("{A_IP}:500").parse().unwrap(), format!("{B_IP}:500").parse().unwrap());
            sim.a.handle_datagram(now, la, lb, &d);
            sim.b.handle_datagram(now, lb, la, &d);
        }
        while sim.a.poll_transmit().is_some() {}
        while sim.b.poll_transmit().is_some() {}
        proptest::prop_assert_eq!(sim.a.status(now)[0].state, ConnState::Established);
        proptest::prop_assert_eq!(sim.b.status(now)[0].state, ConnState::Established);
        proptest::prop_assert!(sim.ike_downs(Side::A).is_empty());
    }
}

#[test]
fn absurd_durations_do_not_panic() {
    let (mut ca, mut cb) = pair();
    for c in [&mut ca, &mut cb] {
        c.rekey_time = Duration::MAX;
        c.dpd_delay = Duration::MAX;
        c.retransmit = RetransmitConfig {
            timeout: Duration::MAX,
            base: f64::INFINITY,
            tries: u32::MAX,
        };
        c.children[0].rekey_time = Duration::MAX;
    }
    let mut sim = established(ca, cb, 210);
    sim.run_for(Duration::from_secs(10));
    let st = sim.a.status(sim.now);
    assert_eq!(st[0].state, ConnState::Established);
    assert!(st[0].ike.as_ref().unwrap().rekey_in_secs.unwrap() > 300 * 24 * 3600);
    let now = sim.now;
    sim.a.rekey(now, "c", true).unwrap();
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.ike_ups(Side::B).len(), 2);
}

/// Issue 11 finding 1: an unauthenticated datagram naming a half-open SA must not make the
/// responder re-send (reflect) its IKE_SA_INIT response to whatever source it claims.
#[test]
fn spoofed_short_sk_does_not_reflect_the_ike_sa_init_response() {
    let (ca, cb) = pair();
    let mut sim = Sim::new(ca, cb, 230);
    // A's IKE_AUTH never arrives: B keeps a half-open SA with its cached IKE_SA_INIT response.
    sim.filter = Box::new(|side, t| {
        if side == Side::A && exch(t).0 == 35 {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    sim.initiate();
    let resp = sim
        .wire
        .iter()
        .find(|(_, s, t)| *s == Side::B && exch(t).0 == 34)
        .expect("IKE_SA_INIT response")
        .2
        .clone();
    let spi_i = u64::from_be_bytes(resp.data[0..8].try_into().unwrap());
    let spi_r = u64::from_be_bytes(resp.data[8..16].try_into().unwrap());
    let victim: SocketAddr = "198.51.100.9:500".parse().unwrap();
    let b_local: SocketAddr = format!("{B_IP}:500").parse().unwrap();
    let now = sim.now;
    for (exchange, msg_id) in [(35u8, 0u32), (34, 0), (37, 0), (35, 1)] {
        let d = spoofed_short_sk(spi_i, spi_r, exchange, msg_id);
        sim.b.handle_datagram(now, b_local, victim, &d);
        let sent: Vec<Transmit> = std::iter::from_fn(|| sim.b.poll_transmit()).collect();
        assert!(
            sent.is_empty(),
            "spoofed exchange {exchange} msg {msg_id} reflected {} datagram(s) to {}",
            sent.len(),
            sent[0].remote
        );
    }
    assert_eq!(sim.b.stats().responses_resent, 0);
    assert!(sim.b.stats().malformed_dropped + sim.b.stats().decrypt_failed >= 4);
}

/// Issue 11 finding 1: spoofed datagrams with the SPIs of an established SA must neither
/// reflect its cached response nor count as a sign of life that keeps DPD quiet.
#[test]
fn spoofed_datagrams_do_not_keep_dpd_from_firing() {
    let (ca, mut cb) = pair();
    cb.dpd_delay = Duration::from_secs(10);
    cb.retransmit = RetransmitConfig {
        timeout: Duration::from_secs(1),
        base: 2.0,
        tries: 2,
    };
    let mut sim = established(ca, cb, 231);
    let (spi_i, spi_r, _) = sim.ike_ups(Side::B)[0];
    // A dies: nothing it sends, nothing sent to it arrives.
    sim.filter = Box::new(|_, _| Fate::Drop);
    let spoof: SocketAddr = "198.51.100.9:500".parse().unwrap();
    let b_local: SocketAddr = format!("{B_IP}:500").parse().unwrap();
    let resent_before = sim.b.stats().responses_resent;
    for _ in 0..24 {
        sim.run_for(Duration::from_secs(5));
        let now = sim.now;
        // msg 1 is the IKE_AUTH request whose response B still caches.
        let d = spoofed_short_sk(spi_i, spi_r, 37, 1);
        sim.b.handle_datagram(now, b_local, spoof, &d);
        sim.pump();
    }
    assert_eq!(sim.b.stats().responses_resent, resent_before);
    assert!(sim.b.stats().dpd_sent >= 1, "DPD never fired");
    let downs = sim.ike_downs(Side::B);
    assert_eq!(downs.len(), 1, "B never declared its dead peer down");
    assert!(downs[0].is_dead_peer(), "{downs:?}");
}
