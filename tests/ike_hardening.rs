//! Issue 11 review findings 2-4, reproduced with IKE engines talking in memory (simulated
//! time, seeded randomness): one connection's IKE policy cannot be bypassed through another's,
//! a wide traffic-selector narrowing stays within its bounds, and half-open IKE SAs are capped
//! globally and per source address.

mod netsim;
use ipsecgw::crypto::{DhGroup, EncrAlg};
use ipsecgw::ike::{AuthFailure, Engine, Event, Failure, IkeConfig};
use ipsecgw::prefix::IpPrefix;
use netsim::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::{Duration, Instant};

/// A connection that accepts any peer identity, with its own PSK and IKE proposals.
fn cfg(name: &str, local: &str, remote: Option<&str>, psk: &[u8], ike: &[&str]) -> IkeConfig {
    conf(local, remote).name(name).psk(psk).ike(ike).any_id()
}

/// A (initiator, connections `a`) and B (responder, `b`) on a lossless wire.
fn duo(a: Vec<IkeConfig>, b: Vec<IkeConfig>, seed: u64) -> Sim {
    Sim::engines(a, b, (seed, seed + 1))
}

fn ike_up(d: &Sim, side: Side) -> Option<(String, EncrAlg, DhGroup)> {
    d.events_of(side).find_map(|e| match e {
        Event::IkeUp { conn, encr, dh, .. } => Some((conn.clone(), *encr, *dh)),
        _ => None,
    })
}

const STRONG: &str = "aes256gcm16-prfsha256-modp2048";
const WEAK: &str = "3des-sha1-modp1024";

/// The responder of the review's repro: "weak" listed first, "strong" with its own PSK.
fn strong_and_weak() -> Vec<IkeConfig> {
    vec![
        cfg("weak", B_IP, None, b"weak-psk-0123456789", &[WEAK]),
        cfg("strong", B_IP, None, b"strong-psk-01234567", &[STRONG]),
    ]
}

/// Finding 2: IKE_SA_INIT ran under "weak" (3DES/MODP_1024); the PSK then selected "strong",
/// which allows only AES-GCM/MODP_2048. The SA must not come up as "strong" with 3DES.
#[test]
fn strong_connection_is_not_reached_with_the_weak_connections_algorithms() {
    let a = cfg("c", A_IP, Some(B_IP), b"strong-psk-01234567", &[WEAK]);
    let mut d = duo(vec![a], strong_and_weak(), 11);
    d.initiate("c");
    assert_eq!(
        ike_up(&d, Side::B),
        None,
        "B established: {:?}",
        ike_up(&d, Side::B)
    );
    assert_eq!(ike_up(&d, Side::A), None);
    assert_eq!(d.b.stats().auth_failures, 1);
    assert_eq!(d.b.stats().ike_established, 0);
    let strong = d.b.status(d.now).into_iter().find(|c| c.name == "strong");
    let err = strong.and_then(|c| c.last_error).map(|e| e.failure);
    match err {
        Some(Failure::AuthFailed(AuthFailure::IkeAlgsNotAllowed { conn, algs })) => {
            assert_eq!(conn, "strong");
            assert!(
                algs.contains("3DES") && algs.contains("MODP_1024"),
                "{algs}"
            );
        }
        other => panic!("strong's last error: {other:?}"),
    }
    // The initiator hears AUTHENTICATION_FAILED.
    let a_err = d.a.status(d.now).remove(0).last_error.map(|e| e.failure);
    assert_eq!(
        a_err,
        Some(Failure::AuthFailed(AuthFailure::RejectedByPeer))
    );
}

/// The same responder still serves each connection with its own PSK and algorithms.
#[test]
fn each_connection_establishes_with_its_own_psk_and_algorithms() {
    for (psk, ike, want_conn, want_encr) in [
        (
            &b"weak-psk-0123456789"[..],
            WEAK,
            "weak",
            EncrAlg::TripleDesCbc,
        ),
        (
            b"strong-psk-01234567",
            STRONG,
            "strong",
            EncrAlg::AesGcm16_256,
        ),
    ] {
        let a = cfg("c", A_IP, Some(B_IP), psk, &[ike]);
        let mut d = duo(vec![a], strong_and_weak(), 12);
        d.initiate("c");
        let (conn, encr, _) = ike_up(&d, Side::B).expect("B established");
        assert_eq!((conn.as_str(), encr), (want_conn, want_encr));
        assert!(ike_up(&d, Side::A).is_some());
    }
}

/// Two connections with the same PSK: the identity's choice falls on the one whose proposals
/// allow what IKE_SA_INIT negotiated, not simply the first whose PSK verifies.
#[test]
fn same_psk_picks_the_connection_that_allows_the_algorithms() {
    let psk = b"shared-psk-0123456789";
    let b = vec![
        cfg("strong", B_IP, None, psk, &[STRONG]),
        cfg("weak", B_IP, None, psk, &[WEAK]),
    ];
    let a = cfg("c", A_IP, Some(B_IP), psk, &[WEAK]);
    let mut d = duo(vec![a], b, 13);
    d.initiate("c");
    let (conn, encr, dh) = ike_up(&d, Side::B).expect("B established");
    assert_eq!(
        (conn.as_str(), encr, dh),
        ("weak", EncrAlg::TripleDesCbc, DhGroup::Modp1024)
    );
}

/// Finding 3: 255 TSi narrowed against two remote prefixes. Before the fix the responder
/// produced 256 selectors, more than a TS payload can count, and answered with a malformed
/// reply; now it narrows to the per-child bound and both ends install the same selectors.
#[test]
fn wide_narrowing_stays_within_the_bound_and_both_ends_agree() {
    let mut a = cfg("c", A_IP, Some(B_IP), b"psk-0123456789", &[WEAK]);
    let mut tsi: Vec<IpPrefix> = vec!["0.0.0.0/0".parse().unwrap()];
    tsi.extend((1..=254).map(|i| format!("10.0.0.{i}/32").parse::<IpPrefix>().unwrap()));
    assert_eq!(tsi.len(), 255);
    a.children[0].local_ts = tsi;
    let mut b = cfg("c", B_IP, Some(A_IP), b"psk-0123456789", &[WEAK]);
    b.children[0].remote_ts = vec![
        "10.0.0.0/24".parse().unwrap(),
        "10.0.0.0/16".parse().unwrap(),
    ];
    let mut d = duo(vec![a], vec![b], 14);
    d.initiate("c");
    assert!(ike_up(&d, Side::B).is_some() && ike_up(&d, Side::A).is_some());
    let cb = d
        .children(Side::B)
        .first()
        .copied()
        .expect("B installed the CHILD SA");
    let ca = d
        .children(Side::A)
        .first()
        .copied()
        .expect("A installed the CHILD SA");
    assert!(
        (1..=64).contains(&cb.remote_ts.len()),
        "{}",
        cb.remote_ts.len()
    );
    assert_eq!(ca.local_ts, cb.remote_ts);
    assert_eq!(ca.remote_ts, cb.local_ts);
    assert_eq!(d.b.stats().ts_over_limit, 1);
    assert_eq!(d.a.stats().malformed_dropped, 0);
    assert_eq!(d.b.stats().malformed_dropped, 0);
}

/// One IKE_SA_INIT request of a real initiator, to replay with other SPIs and sources.
fn init_request() -> Vec<u8> {
    let a = cfg("c", A_IP, Some(B_IP), b"psk-0123456789", &[WEAK]);
    let now = Instant::now();
    let mut e = Engine::new(vec![a], Box::new(StdRng::seed_from_u64(40)), now);
    e.initiate(now, "c").unwrap();
    e.poll_transmit().expect("IKE_SA_INIT").data
}

/// Sends `n` IKE_SA_INITs (fresh SPIs) from `ip` to B; returns how many B answered.
fn flood(b: &mut Engine, now: Instant, req: &[u8], ip: &str, n: u64, spi_base: u64) -> usize {
    let local: std::net::SocketAddr = format!("{B_IP}:500").parse().unwrap();
    let mut answered = 0;
    for i in 0..n {
        let mut d = req.to_vec();
        d[..8].copy_from_slice(&(spi_base + i).to_be_bytes());
        let from = format!("{ip}:{}", 1024 + i % 60000).parse().unwrap();
        b.handle_datagram(now, local, from, &d);
        answered += std::iter::from_fn(|| b.poll_transmit()).count();
    }
    answered
}

fn responder() -> Engine {
    let b = cfg("c", B_IP, None, b"psk-0123456789", &[WEAK]);
    let mut e = Engine::new(vec![b], Box::new(StdRng::seed_from_u64(41)), Instant::now());
    // Real addresses pass cookies: the caps must hold without them.
    e.set_cookie_threshold(usize::MAX);
    e
}

/// Finding 4: one address cannot hold more than its share of half-open SAs, and the drops
/// are counted; other addresses are not affected.
#[test]
fn half_open_sas_are_capped_per_address() {
    let mut b = responder();
    b.set_half_open_limits(ipsecgw::ike::HalfOpenLimits {
        total: 1000,
        per_address: 100,
    });
    let now = Instant::now();
    let req = init_request();
    assert_eq!(flood(&mut b, now, &req, "198.51.100.1", 150, 1 << 32), 100);
    assert_eq!(b.half_open(), 100);
    assert_eq!(b.stats().half_open_dropped, 50);
    assert_eq!(flood(&mut b, now, &req, "198.51.100.2", 10, 2 << 32), 10);
    assert_eq!(b.half_open(), 110);
}

/// Finding 4: the global cap holds against many addresses; once the half-open SAs expire a
/// legitimate initiator establishes again.
#[test]
fn half_open_sas_are_capped_in_all_and_expire() {
    let mut b = responder();
    b.set_half_open_limits(ipsecgw::ike::HalfOpenLimits {
        total: 300,
        per_address: 100,
    });
    let t0 = Instant::now();
    let req = init_request();
    let mut answered = 0;
    for k in 1..=5u64 {
        let ip = format!("198.51.100.{k}");
        answered += flood(&mut b, t0, &req, &ip, 100, k << 32);
    }
    assert_eq!(answered, 300);
    assert_eq!(b.half_open(), 300);
    assert_eq!(b.stats().half_open_dropped, 200);
    // A legitimate peer arriving now is dropped too (the cap is what bounds the state)...
    let a = cfg("c", A_IP, Some(B_IP), b"psk-0123456789", &[WEAK]);
    let mut d = duo(vec![a.clone()], vec![], 42);
    d.b = b;
    (d.now, d.base) = (t0, t0);
    d.initiate("c");
    assert_eq!(ike_up(&d, Side::B), None);
    // ...until the flood's half-open SAs expire (30 s), all in one timer run.
    let later = t0 + Duration::from_secs(31);
    d.b.handle_timeout(later);
    assert_eq!(d.b.half_open(), 0);
    let mut fresh = duo(vec![a], vec![], 43);
    fresh.b = d.b;
    (fresh.now, fresh.base) = (later, later);
    fresh.initiate("c");
    assert!(ike_up(&fresh, Side::B).is_some(), "legit peer after expiry");
}
