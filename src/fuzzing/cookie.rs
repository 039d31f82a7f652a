//! The socket readers' stateless COOKIE screen (`ike::CookieGate`): the one piece of IKE that
//! reads unauthenticated datagrams outside the engine.

use crate::ike::codec::{self, notify as n, Message, Payload};
use crate::ike::{CookieGate, Screened};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::net::SocketAddr;
use std::time::Instant;

/// `cookie_gate`: one arbitrary datagram screened under load. An answer must be a parseable
/// reply carrying a COOKIE; the same request with that cookie put first must then pass, and the
/// request without it must be answered again (the gate keeps no state per sender).
pub fn cookie_gate(data: &[u8]) {
    let gate = CookieGate::new(&mut StdRng::seed_from_u64(7));
    gate.set_threshold(0);
    let now = Instant::now();
    let remote: SocketAddr = ([198, 51, 100, 7], 500).into();
    let Screened::Answer(reply) = gate.screen(now, remote, data) else {
        return;
    };
    let answer = Message::parse(&reply).expect("the gate's answer parses");
    let cookie = codec::find_notify(&answer.payloads, n::COOKIE)
        .expect("the gate's answer carries a COOKIE")
        .data
        .clone();
    assert!(
        matches!(gate.screen(now, remote, data), Screened::Answer(_)),
        "a request without a cookie passed the second time"
    );
    // A request the codec cannot read is answered too, but its sender cannot retry it in a form
    // we could rebuild here; the engine drops it.
    let Ok(req) = Message::parse(data) else {
        return;
    };
    if req.sk.is_some() {
        return;
    }
    let mut payloads = vec![Payload::notify(n::COOKIE, cookie)];
    payloads.extend(req.payloads);
    let retry = codec::encode_plain(req.header, &payloads);
    assert!(
        matches!(gate.screen(now, remote, &retry), Screened::Pass),
        "the request with the gate's own cookie was answered again"
    );
}
