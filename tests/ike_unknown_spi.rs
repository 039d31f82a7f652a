//! Issue 11, "Rate limits": requests for IKE SAs the engine does not have (DPD after our
//! restart, or a flood with made-up SPIs) are answered with an unprotected INVALID_IKE_SPI
//! (RFC 7296 2.21.4) at most at a bounded global rate, never to a response, never larger
//! than the request; everything else is a counted drop.

use ipsecgw::ike::codec::{
    self, notify as n, Header, Message, Payload, EXCH_INFORMATIONAL, FLAG_INITIATOR, FLAG_RESPONSE,
    IKE_VERSION,
};
use ipsecgw::ike::{Engine, INVALID_SPI_BURST, INVALID_SPI_PER_SECOND};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const LOCAL: &str = "192.0.2.1:500";

fn request(rng: &mut StdRng, flags: u8, pad: usize) -> Vec<u8> {
    let h = Header {
        spi_i: rng.next_u64() | 1,
        spi_r: rng.next_u64() | 1,
        next_payload: 0,
        version: IKE_VERSION,
        exchange: EXCH_INFORMATIONAL,
        flags,
        msg_id: rng.next_u32(),
        length: 0,
    };
    let payloads: Vec<Payload> = if pad == 0 {
        Vec::new()
    } else {
        vec![Payload::notify(n::AUTHENTICATION_FAILED, vec![0x42; pad])]
    };
    codec::encode_plain(h, &payloads)
}

fn drain(e: &mut Engine) -> Vec<(SocketAddr, Vec<u8>)> {
    std::iter::from_fn(|| e.poll_transmit())
        .map(|t| (t.remote, t.data))
        .collect()
}

#[test]
fn ten_thousand_unknown_spi_requests_get_at_most_the_bounded_answers() {
    let t0 = Instant::now();
    let mut e = Engine::new(vec![], Box::new(StdRng::seed_from_u64(1)), t0);
    let mut rng = StdRng::seed_from_u64(7);
    let local: SocketAddr = LOCAL.parse().unwrap();
    let mut answers = Vec::new();
    // 10,000 DPD-sized requests within 10 s of engine time (1,000 a second), from many ports.
    let total = 10_000u64;
    for i in 0..total {
        let now = t0 + Duration::from_millis(i);
        let remote: SocketAddr = format!("198.51.100.7:{}", 1024 + (i % 60_000))
            .parse()
            .unwrap();
        let req = request(&mut rng, FLAG_INITIATOR, 8);
        e.handle_datagram(now, local, remote, &req);
        for (to, a) in drain(&mut e) {
            assert_eq!(
                to, remote,
                "the answer goes back where the request came from"
            );
            assert!(
                a.len() <= req.len(),
                "amplified: {} > {}",
                a.len(),
                req.len()
            );
            let m = Message::parse(&a).expect("answer parses");
            let rh = Message::parse(&req).unwrap().header;
            assert_eq!(
                (m.header.spi_i, m.header.spi_r, m.header.msg_id),
                (rh.spi_i, rh.spi_r, rh.msg_id)
            );
            assert!(m.header.is_response() && !m.header.from_initiator());
            assert!(codec::find_notify(&m.payloads, n::INVALID_IKE_SPI).is_some());
            answers.push(a);
        }
    }
    let bound = INVALID_SPI_BURST + 10 * INVALID_SPI_PER_SECOND;
    let s = e.stats();
    assert!(
        answers.len() as u64 <= bound,
        "{} answers > bound {bound}",
        answers.len()
    );
    assert!(
        answers.len() as u64 >= bound - 1,
        "the rate allows answers: {}",
        answers.len()
    );
    assert_eq!(s.unknown_spi_dropped, total);
    assert_eq!(s.invalid_spi_sent, answers.len() as u64);
    assert_eq!(s.invalid_spi_limited, total - answers.len() as u64);
    assert_eq!(s.sent, answers.len() as u64);
}

#[test]
fn responses_and_requests_smaller_than_the_answer_are_never_answered() {
    let t0 = Instant::now();
    let mut e = Engine::new(vec![], Box::new(StdRng::seed_from_u64(1)), t0);
    let mut rng = StdRng::seed_from_u64(9);
    let local: SocketAddr = LOCAL.parse().unwrap();
    let remote: SocketAddr = "198.51.100.7:500".parse().unwrap();
    for i in 0..1000u64 {
        let now = t0 + Duration::from_secs(i);
        // A response (with or without the initiator flag) gets nothing, ever.
        e.handle_datagram(now, local, remote, &request(&mut rng, FLAG_RESPONSE, 8));
        e.handle_datagram(
            now,
            local,
            remote,
            &request(&mut rng, FLAG_RESPONSE | FLAG_INITIATOR, 8),
        );
        // A bare 28-byte header: the 36-byte answer would amplify it.
        e.handle_datagram(now, local, remote, &request(&mut rng, FLAG_INITIATOR, 0));
    }
    assert!(drain(&mut e).is_empty());
    let s = e.stats();
    assert_eq!(s.unknown_spi_dropped, 3000);
    assert_eq!(
        (s.invalid_spi_sent, s.invalid_spi_limited, s.sent),
        (0, 0, 0)
    );
    // The bucket was never drawn on: a proper request now is answered.
    e.handle_datagram(
        t0 + Duration::from_secs(1000),
        local,
        remote,
        &request(&mut rng, 0, 8),
    );
    let a = drain(&mut e);
    assert_eq!(a.len(), 1);
    let m = Message::parse(&a[0].1).unwrap();
    assert!(
        m.header.from_initiator(),
        "answer to the original responder's request"
    );
}
