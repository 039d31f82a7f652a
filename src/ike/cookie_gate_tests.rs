//! The cookie gate on its own: what it lets through, what it answers, and its secrets.

use super::*;
use crate::ike::codec;
use crate::ike::codec::{Message, Payload, FLAG_INITIATOR, FLAG_RESPONSE, IKE_VERSION};
use rand::SeedableRng;

const SPI_I: u64 = 0x1122_3344_5566_7788;

fn gate() -> CookieGate {
    let g = CookieGate::new(&mut StdRng::seed_from_u64(7));
    g.set_threshold(0); // under load from the start
    g
}

fn remote() -> SocketAddr {
    "198.51.100.7:500".parse().unwrap()
}

/// An IKE_SA_INIT request (SA, KE, Nonce), with a COOKIE notify first when given one.
fn request(spi_i: u64, nonce: &[u8], cookie: Option<&[u8]>) -> Vec<u8> {
    let ke = Payload::Ke {
        group: 31,
        data: vec![9; 32],
    };
    init_request_with(spi_i, cookie, Payload::Sa(vec![]), ke, nonce)
}

/// The bytes of an IKE_SA_INIT request with these SA, KE and Nonce payloads, after a COOKIE
/// notify when given one (also what the engine's tests send).
pub(in crate::ike) fn init_request_with(
    spi_i: u64,
    cookie: Option<&[u8]>,
    sa: Payload,
    ke: Payload,
    nonce: &[u8],
) -> Vec<u8> {
    let mut payloads = vec![];
    if let Some(c) = cookie {
        payloads.push(Payload::notify(n::COOKIE, c.to_vec()));
    }
    payloads.extend([sa, ke, Payload::Nonce(nonce.to_vec())]);
    let h = Header {
        spi_i,
        spi_r: 0,
        next_payload: 0,
        version: IKE_VERSION,
        exchange: EXCH_IKE_SA_INIT,
        flags: FLAG_INITIATOR,
        msg_id: 0,
        length: 0,
    };
    codec::encode_plain(h, &payloads)
}

/// The cookie of an answer, after checking it is the stateless COOKIE reply to `spi_i`.
fn cookie_of(answer: &Screened, spi_i: u64) -> Vec<u8> {
    let Screened::Answer(bytes) = answer else {
        panic!("expected a COOKIE answer, got {answer:?}");
    };
    let m = Message::parse(bytes).expect("the answer parses");
    assert_eq!(m.header.spi_i, spi_i);
    assert_eq!(m.header.spi_r, 0);
    assert_eq!(m.header.exchange, EXCH_IKE_SA_INIT);
    assert_eq!(m.header.flags, FLAG_RESPONSE);
    assert_eq!(m.payloads.len(), 1);
    codec::find_notify(&m.payloads, n::COOKIE)
        .expect("a COOKIE notify")
        .data
        .clone()
}

#[test]
fn not_under_load_everything_passes() {
    let g = CookieGate::new(&mut StdRng::seed_from_u64(7));
    g.set_threshold(100);
    g.set_half_open(99);
    let t = Instant::now();
    assert_eq!(
        g.screen(t, remote(), &request(SPI_I, &[1; 32], None)),
        Screened::Pass
    );
    assert_eq!(g.demand(t, 99, (&[1; 32], remote(), SPI_I), None), None);
    assert_eq!(g.answered(), 0);
    g.set_half_open(100);
    assert!(g.under_load());
    assert!(matches!(
        g.screen(t, remote(), &request(SPI_I, &[1; 32], None)),
        Screened::Answer(_)
    ));
    assert_eq!(g.answered(), 1);
}

#[test]
fn a_request_without_cookie_is_answered_and_its_cookie_then_passes() {
    let g = gate();
    let t = Instant::now();
    let nonce = [3u8; 32];
    let c = cookie_of(&g.screen(t, remote(), &request(SPI_I, &nonce, None)), SPI_I);
    assert_eq!(c.len(), 4 + 20, "version + HMAC-SHA1");
    assert_eq!(&c[..4], &[0, 0, 0, 1], "the first secret is version 1");
    assert_eq!(
        g.screen(t, remote(), &request(SPI_I, &nonce, Some(&c))),
        Screened::Pass
    );
    // The engine's side of the same decision agrees.
    assert_eq!(g.demand(t, 5, (&nonce, remote(), SPI_I), Some(&c)), None);
    // Same secret, same inputs: the same cookie (stateless).
    let again = cookie_of(&g.screen(t, remote(), &request(SPI_I, &nonce, None)), SPI_I);
    assert_eq!(again, c);
    assert_eq!(g.answered(), 2);
}

#[test]
fn a_cookie_for_other_inputs_or_altered_is_refused() {
    let g = gate();
    let t = Instant::now();
    let nonce = [3u8; 32];
    let c = cookie_of(&g.screen(t, remote(), &request(SPI_I, &nonce, None)), SPI_I);
    let mut flipped = c.clone();
    flipped[10] ^= 1;
    let other_ip: SocketAddr = "198.51.100.8:500".parse().unwrap();
    let other_port: SocketAddr = "198.51.100.7:4500".parse().unwrap();
    let refused = [
        (remote(), request(SPI_I, &nonce, Some(&flipped))),
        (remote(), request(SPI_I, &nonce, Some(&c[..20]))),
        (remote(), request(SPI_I + 1, &nonce, Some(&c))),
        (remote(), request(SPI_I, &[4u8; 32], Some(&c))),
        (other_ip, request(SPI_I, &nonce, Some(&c))),
    ];
    for (i, (from, req)) in refused.into_iter().enumerate() {
        let spi = Header::parse(&req).unwrap().spi_i;
        // Answered with the cookie for what was sent: the same one for an altered copy of
        // it, another for other inputs.
        let fresh = cookie_of(&g.screen(t, from, &req), spi);
        assert_eq!(fresh == c, i < 2, "case {i}");
    }
    assert_eq!(g.answered(), 6);
    // The port is not hashed (RFC 7296 2.6 uses the address): a NAT may change it.
    assert_eq!(
        g.screen(t, other_port, &request(SPI_I, &nonce, Some(&c))),
        Screened::Pass
    );
}

#[test]
fn secrets_rotate_and_the_previous_one_stays_good_until_the_next() {
    let g = gate();
    let t0 = Instant::now();
    let nonce = [5u8; 32];
    let req = request(SPI_I, &nonce, None);
    let c1 = cookie_of(&g.screen(t0, remote(), &req), SPI_I);
    // Just before the change: still version 1.
    let t1 = t0 + ROTATE_EVERY - Duration::from_millis(1);
    assert_eq!(cookie_of(&g.screen(t1, remote(), &req), SPI_I), c1);
    // After one change new cookies carry version 2, and version 1 is still accepted.
    let t2 = t0 + ROTATE_EVERY;
    let c2 = cookie_of(&g.screen(t2, remote(), &req), SPI_I);
    assert_eq!(&c2[..4], &[0, 0, 0, 2]);
    assert_ne!(c2[4..], c1[4..], "a new secret");
    assert_eq!(
        g.screen(t2, remote(), &request(SPI_I, &nonce, Some(&c1))),
        Screened::Pass
    );
    assert_eq!(
        g.screen(t2, remote(), &request(SPI_I, &nonce, Some(&c2))),
        Screened::Pass
    );
    // A cookie claiming a version we never had, with a valid MAC of another: refused.
    let mut forged = c2.clone();
    forged[..4].copy_from_slice(&[0, 0, 0, 3]);
    let r = g.screen(t2, remote(), &request(SPI_I, &nonce, Some(&forged)));
    assert_eq!(cookie_of(&r, SPI_I), c2);
    // After the second change version 1 is stale: answered with a fresh (version 3) cookie.
    let t3 = t2 + ROTATE_EVERY;
    let r = g.screen(t3, remote(), &request(SPI_I, &nonce, Some(&c1)));
    assert_eq!(&cookie_of(&r, SPI_I)[..4], &[0, 0, 0, 3]);
    assert_eq!(
        g.screen(t3, remote(), &request(SPI_I, &nonce, Some(&c2))),
        Screened::Pass
    );
}

#[test]
fn only_new_ike_sa_init_requests_are_screened() {
    let g = gate();
    let t = Instant::now();
    let req = request(SPI_I, &[1; 32], None);
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut d = req.clone();
        f(&mut d);
        d
    };
    let others = [
        with(&|d| d[18] = 35),                        // IKE_AUTH
        with(&|d| d[19] = FLAG_RESPONSE),             // a response
        with(&|d| d[19] = 0),                         // from the responder
        with(&|d| d[8..16].copy_from_slice(&[1; 8])), // SPIr set
        with(&|d| d[23] = 1),                         // message ID 1
        with(&|d| d[17] = 0x10),                      // IKEv1
        req[..req.len() - 1].to_vec(),                // length disagrees with the header
        vec![0u8; 3],                                 // not even a header
    ];
    for d in others {
        assert_eq!(g.screen(t, remote(), &d), Screened::Pass, "{d:02x?}");
    }
    // A chain that runs off the end, or has no Nonce: the engine drops and counts it.
    let no_nonce = {
        let h = Header::parse(&req).unwrap();
        codec::encode_plain(h, &[Payload::Sa(vec![])])
    };
    assert_eq!(g.screen(t, remote(), &no_nonce), Screened::Pass);
    let mut bad_len = req.clone();
    bad_len[HEADER_LEN + 2..HEADER_LEN + 4].copy_from_slice(&[0xff, 0xff]);
    assert_eq!(g.screen(t, remote(), &bad_len), Screened::Pass);
    let mut zero_len = req.clone();
    zero_len[HEADER_LEN + 2..HEADER_LEN + 4].copy_from_slice(&[0, 0]);
    assert_eq!(g.screen(t, remote(), &zero_len), Screened::Pass);
    assert_eq!(g.answered(), 0);
}
