//! Every algorithm of issue 10 through two IKE engines in memory (simulated time, seeded
//! randomness): IKE_SA_INIT, IKE_AUTH, CHILD rekey with PFS from either side and IKE rekey in
//! every KE group; INVALID_KE_PAYLOAD retries into every group; hostile KE values refused
//! with a notify, never a panic; and the CHILD SA keys carry ESP packets both ways.

mod netsim;
use ipsecgw::crypto::proposal::{parse_esp, parse_ike};
use ipsecgw::crypto::{DhGroup, EncrAlg, IntegAlg};
use ipsecgw::esp::{InboundSa, OutboundSa, SaParams};
use ipsecgw::ike::codec::{self, notify, Message, Payload};
use ipsecgw::ike::{ChildSa, Event};
use netsim::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Two engines on a lossless wire with `ike` / `esp` each, retransmitting 3 times.
fn pair(a: (&str, &str), b: (&str, &str), seed: u64) -> Sim {
    let c = |local, remote, (ike, esp): (&str, &str)| {
        conf(local, Some(remote))
            .ike(&[ike])
            .esp(&[esp])
            .retransmit(3)
    };
    Sim::engines(
        vec![c(A_IP, B_IP, a)],
        vec![c(B_IP, A_IP, b)],
        (seed, seed ^ 0xb),
    )
}

/// (rekeyed, DH group) of every IKE SA that came up on A.
fn ike_ups(p: &Sim) -> Vec<(bool, DhGroup)> {
    p.events_of(Side::A)
        .filter_map(|e| match e {
            Event::IkeUp { rekeyed, dh, .. } => Some((*rekeyed, *dh)),
            _ => None,
        })
        .collect()
}

fn esp_params(c: &ChildSa, inbound: bool) -> SaParams {
    let (spi, ek, ik) = if inbound {
        (c.spi_in, &c.encr_key_in, &c.integ_key_in)
    } else {
        (c.spi_out, &c.encr_key_out, &c.integ_key_out)
    };
    SaParams {
        spi,
        encr: c.encr,
        integ: c.integ,
        encr_key: ek.clone(),
        integ_key: ik.clone(),
        esn: c.esn,
        replay_window: 64,
    }
}

/// A's CHILD SA and B's mirror each other, and ESP packets sealed with one side's keys open
/// with the other's, both ways.
fn assert_esp_works(a: &ChildSa, b: &ChildSa, what: &str) {
    assert_eq!((a.spi_in, a.spi_out), (b.spi_out, b.spi_in), "{what}");
    assert_eq!((a.encr, a.integ, a.dh), (b.encr, b.integ, b.dh), "{what}");
    assert_eq!(a.encr_key_out.len(), a.encr.keymat_len(), "{what}");
    let mut rng = StdRng::seed_from_u64(5);
    for (tx, rx) in [(a, b), (b, a)] {
        let mut out = OutboundSa::new(&esp_params(tx, false)).unwrap();
        let mut inb = InboundSa::new(&esp_params(rx, true)).unwrap();
        let mut inner = vec![0x45u8; 60];
        inner[2..4].copy_from_slice(&60u16.to_be_bytes());
        let mut pkt = Vec::new();
        out.encapsulate(&inner, &mut rng, &mut pkt).unwrap();
        let got = inb
            .decapsulate(&mut pkt)
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert_eq!(got.packet, &inner[..], "{what}");
    }
}

/// Up, CHILD rekey from A and from B, IKE rekey from B, CHILD rekey over the new IKE SA:
/// every step agrees on keys and ESP carries packets with them.
fn full_cycle(ike: &str, esp: &str, seed: u64) {
    let mut p = pair((ike, esp), (ike, esp), seed);
    p.initiate("c");
    let want_ike = parse_ike(ike).unwrap();
    let want_esp = parse_esp(esp).unwrap();
    assert_eq!(ike_ups(&p), vec![(false, want_ike.dh[0])], "{ike}");
    let pfs = want_esp.dh.first().copied();
    for (step, from, ike_rekey) in [(1, Side::A, false), (2, Side::B, false), (3, Side::B, true)] {
        if ike_rekey {
            p.rekey(from, true);
            let ups = ike_ups(&p);
            assert_eq!(ups.len(), 2, "{ike}: IKE rekey");
            assert_eq!(ups[1], (true, want_ike.dh[0]), "{ike}: IKE rekey");
            // A CHILD rekey over the new IKE SA proves its keys agree.
            p.rekey(Side::A, false);
        } else {
            p.rekey(from, false);
        }
        let (ca, cb) = (p.children(Side::A), p.children(Side::B));
        assert_eq!(ca.len(), cb.len(), "{ike} / {esp} step {step}");
        let (a, b) = (ca[ca.len() - 1], cb[cb.len() - 1]);
        assert!(
            a.rekey_of.is_some(),
            "{ike} / {esp} step {step}: not a rekey"
        );
        assert_eq!(a.dh, pfs, "{esp} step {step}: PFS group");
        assert_eq!(a.encr, want_esp.encr[0]);
        assert_esp_works(a, b, &format!("{ike} / {esp} step {step}"));
    }
    // The first CHILD SA (IKE_AUTH, no KE) worked too.
    assert_esp_works(p.children(Side::A)[0], p.children(Side::B)[0], esp);
}

const GROUPS: [&str; 11] = [
    "modp768",
    "modp1024",
    "modp1536",
    "modp2048",
    "modp3072",
    "modp4096",
    "modp2048s256",
    "ecp256",
    "ecp384",
    "ecp521",
    "curve25519",
];

#[test]
fn every_group_in_ike_sa_init_child_pfs_and_ike_rekey() {
    for (i, g) in GROUPS.iter().enumerate() {
        full_cycle(
            &format!("aes128-sha256-{g}"),
            &format!("aes128gcm16-{g}"),
            i as u64,
        );
    }
}

#[test]
fn every_cipher_integrity_and_prf_in_ike_and_esp() {
    let mut seed = 100;
    for e in EncrAlg::ALL {
        let integ = if e.is_aead() { "prfsha256" } else { "sha256" };
        if e.allowed_in_ike() {
            full_cycle(
                &format!("{}-{integ}-ecp256", e.keyword()),
                "aes128gcm16",
                seed,
            );
        }
        let esp = if e.is_aead() {
            e.keyword().to_string()
        } else {
            format!("{}-sha256", e.keyword())
        };
        full_cycle("aes128-sha256-ecp256", &esp, seed + 1);
        seed += 2;
    }
    for i in IntegAlg::ALL {
        // The integrity keyword brings its PRF (prfaesxcbc, prfmd5, ...), as in strongSwan.
        full_cycle(
            &format!("aes192-{}-x25519", i.keyword()),
            &format!("aes256-{}", i.keyword()),
            seed,
        );
        seed += 1;
    }
    for prf in ["prfsha384", "prfsha512", "prfmd5", "prfaesxcbc"] {
        full_cycle(
            &format!("chacha20poly1305-{prf}-ecp384"),
            "chacha20poly1305",
            seed,
        );
        seed += 1;
    }
}

#[test]
fn invalid_ke_retry_reaches_every_group() {
    for (i, g) in GROUPS.iter().enumerate() {
        // A sends its KE in the other group first; B accepts only `g`.
        let other = if *g == "modp2048" {
            "ecp256"
        } else {
            "modp2048"
        };
        let mut p = pair(
            (
                &format!("aes256-sha256-{other}-{g}"),
                &format!("aes256gcm16-{other}-{g}"),
            ),
            (&format!("aes256-sha256-{g}"), &format!("aes256gcm16-{g}")),
            200 + i as u64,
        );
        p.initiate("c");
        let want = parse_ike(&format!("aes256-sha256-{g}")).unwrap().dh[0];
        assert_eq!(ike_ups(&p), vec![(false, want)], "{g}");
        // The CHILD rekey's KE goes through INVALID_KE_PAYLOAD the same way.
        p.rekey(Side::A, false);
        let (ca, cb) = (p.children(Side::A), p.children(Side::B));
        assert_eq!(ca.len(), 2, "{g}: CHILD rekey after INVALID_KE");
        assert_eq!(ca[1].dh, Some(want), "{g}");
        assert_esp_works(ca[1], cb[1], g);
        assert_eq!(p.b.stats().invalid_ke_sent, 2, "{g}");
    }
}

/// A copy of IKE_SA_INIT `data` whose KE payload carries `ke` instead.
fn with_ke(data: &[u8], ke: &[u8]) -> Vec<u8> {
    let m = Message::parse(data).expect("our own IKE_SA_INIT parses");
    let payloads: Vec<Payload> = m
        .payloads
        .into_iter()
        .map(|p| match p {
            Payload::Ke { group, .. } => Payload::Ke {
                group,
                data: ke.to_vec(),
            },
            other => other,
        })
        .collect();
    codec::encode_plain(m.header, &payloads)
}

/// Hostile KE values for `group`: identities, low-order and off-curve points, out-of-range
/// MODP values, wrong lengths.
fn bad_values(g: DhGroup) -> Vec<(&'static str, Vec<u8>)> {
    let n = g.public_len();
    let mut v = vec![
        ("all zero", vec![0u8; n]),
        ("one byte short", vec![7u8; n - 1]),
        ("one byte long", vec![7u8; n + 1]),
        ("empty", vec![]),
    ];
    let mut one = vec![0u8; n];
    one[n - 1] = 1;
    match g.kind() {
        ipsecgw::crypto::GroupKind::Modp => {
            v.push(("y = 1", one));
            let p = ipsecgw::crypto::modp_prime(g).unwrap();
            let mut p_minus_1 = p.clone();
            p_minus_1[n - 1] -= 1;
            v.push(("y = p - 1", p_minus_1));
            v.push(("y = p", p));
            v.push(("y > p", vec![0xff; n]));
        }
        ipsecgw::crypto::GroupKind::Ecp => {
            let mut xy = vec![0u8; n];
            xy[n / 2 - 1] = 1;
            xy[n - 1] = 1;
            v.push(("(1, 1) is not on the curve", xy));
            v.push(("coordinates >= p", vec![0xff; n]));
        }
        ipsecgw::crypto::GroupKind::Montgomery => {
            // u = 1 is a low-order point: the shared secret would be all zero.
            let mut u = vec![0u8; n];
            u[0] = 1;
            v.push(("u = 1 (low order)", u));
        }
    }
    v
}

#[test]
fn hostile_ke_values_get_a_notify_and_never_an_sa() {
    for (i, g) in GROUPS.iter().enumerate() {
        let group = parse_ike(&format!("aes128-sha256-{g}")).unwrap().dh[0];
        for (what, bad) in bad_values(group) {
            let ike = format!("aes128-sha256-{g}");
            let mut p = pair((&ike, "aes128gcm16"), (&ike, "aes128gcm16"), 300 + i as u64);
            // A's first datagram (IKE_SA_INIT) carries the hostile KE.
            let mut first = true;
            p.net = Box::new(move |batch| {
                for d in batch.iter_mut().filter(|d| d.from == Side::A) {
                    if std::mem::take(&mut first) {
                        d.t.data = with_ke(&d.t.data, &bad);
                    }
                }
            });
            p.initiate("c");
            let reply = p
                .sent_by(Side::B)
                .next()
                .unwrap_or_else(|| panic!("{g} {what}: no answer"));
            let m = Message::parse(reply).unwrap();
            assert!(
                codec::find_notify(&m.payloads, notify::INVALID_SYNTAX).is_some(),
                "{g} {what}: {:?}",
                m.payloads
            );
            assert!(ike_ups(&p).is_empty(), "{g} {what}: an IKE SA came up");
            assert!(p.children(Side::B).is_empty(), "{g} {what}");
        }
    }
}
