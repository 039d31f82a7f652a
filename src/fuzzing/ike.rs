//! IKE message decoding and SK payload protection (`ike::codec`, `ike::keys`).

use super::Input;
use crate::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg};
use crate::ike::codec::{self, Header, Message, Payload, SkLocation, IKE_VERSION};
use crate::ike::keys::{self, IkeAlgs, SkCrypto, SkError};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// `ike_decode`: one IKE message (without the non-ESP marker) through the codec. A message
/// without SK payload must survive decode -> encode -> decode unchanged (the encoder writes
/// every count and length the decoder read).
pub fn ike_decode(data: &[u8]) {
    let msg = match Message::parse(data) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = codec::first_error_notify(&msg.payloads);
    if msg.sk.is_some() {
        return;
    }
    let again = codec::encode_plain(msg.header.clone(), &msg.payloads);
    let back = Message::parse(&again);
    assert_eq!(
        back.as_ref().map(|m| &m.payloads),
        Ok(&msg.payloads),
        "re-encoded message decodes differently"
    );
}

/// Every IKE cipher suite: each cipher, with each integrity algorithm unless it is an AEAD.
pub(crate) fn ike_suites() -> Vec<(EncrAlg, Option<IntegAlg>)> {
    let mut v = Vec::new();
    for e in EncrAlg::ALL {
        if e.is_aead() {
            v.push((e, None));
        } else {
            v.extend(IntegAlg::ALL.iter().map(|&i| (e, Some(i))));
        }
    }
    v
}

/// Turns a payload chain (generic headers as on the wire) into payloads that encode back to
/// the same bytes, whatever their bodies hold: each becomes `Payload::Other` with its type,
/// critical bit and body. Lengths that lie are cut to what is there.
pub(crate) fn raw_payloads(first: u8, chain: &[u8]) -> Vec<Payload> {
    let mut r = Input::new(chain);
    let mut next = first;
    let mut out = Vec::new();
    while next != codec::PT_NONE && !r.is_empty() {
        let following = r.u8();
        let critical = r.u8() & 0x80 != 0;
        let len = usize::from(r.u16());
        out.push(Payload::Other {
            ptype: next,
            critical,
            body: r.take(len.saturating_sub(4)).to_vec(),
        });
        next = following;
    }
    out
}

/// `ike_sk`: SK payload verify+decrypt (`SkCrypto::open`) on known keys, for every suite.
/// Input: `suite u8 | mode u8 | ...`.
/// - mode 0: `inner next u8 | offset u16 | message`: the message is opened where the codec
///   locates its SK payload, and at the given offset;
/// - mode 1: `exchange | flags | msg_id u32 | first payload | chain`: sealed by one side and
///   opened by the other, which must succeed up to the inner payload parse;
/// - mode 2: as mode 1, then `(offset u16, xor u8)` pairs flip bytes of the sealed message,
///   which the other side must then refuse as an integrity failure.
pub fn ike_sk(data: &[u8]) {
    let mut input = Input::new(data);
    let suites = ike_suites();
    let pick = usize::from(input.u8());
    let Some(&(encr, integ)) = suites.get(pick % suites.len()) else {
        return;
    };
    let algs = IkeAlgs {
        encr,
        integ,
        prf: PrfAlg::ALL[pick / suites.len() % PrfAlg::ALL.len()],
        dh: DhGroup::ALL[0],
    };
    let (ni, nr) = ([0x11u8; 32], [0x22u8; 32]);
    let (spi_i, spi_r) = (0x0102_0304_0506_0708, 0x1112_1314_1516_1718);
    let seed = keys::skeyseed(algs.prf, &ni, &nr, b"fuzz shared secret");
    let make = |initiator: bool| {
        let k = keys::derive_ike_keys(&algs, &seed, &ni, &nr, spi_i, spi_r);
        SkCrypto::new(&algs, &k, initiator)
    };
    let (Ok(initiator), Ok(responder)) = (make(true), make(false)) else {
        return;
    };
    let mode = input.u8() % 3;
    if mode == 0 {
        let given = SkLocation {
            inner_next: input.u8(),
            offset: usize::from(input.u16()),
            fragment: None,
        };
        let msg = input.rest();
        if let Ok(Message { sk: Some(sk), .. }) = Message::parse(msg) {
            let _ = responder.open(msg, &sk);
            let _ = initiator.open(msg, &sk);
        }
        let _ = responder.open(msg, &given);
        return;
    }
    let header = Header {
        spi_i,
        spi_r,
        next_payload: 0,
        version: IKE_VERSION,
        exchange: input.u8(),
        flags: input.u8(),
        msg_id: input.u32(),
        length: 0,
    };
    let first = input.u8();
    let chain_len = usize::from(input.u16());
    let payloads = raw_payloads(first, input.take(chain_len));
    let mut rng = StdRng::seed_from_u64(7);
    let mut sealed = initiator.seal(header, &payloads, &mut rng);
    if sealed.is_empty() {
        // Too long for one SK payload's 16-bit length: `seal` sends nothing rather than a
        // message whose length field lies (issue 11 finding 3; fuzz/regressions/ike_sk).
        return;
    }
    let sk = match Message::parse(&sealed) {
        Ok(Message { sk: Some(sk), .. }) => sk,
        other => panic!("sealed message does not parse as SK message: {other:?}"),
    };
    if mode == 1 {
        let opened = responder.open(&sealed, &sk);
        assert!(
            matches!(opened, Ok(_) | Err(SkError::Parse(_))),
            "{encr:?}/{integ:?}: sealed message refused: {opened:?}"
        );
        return;
    }
    let original = sealed.clone();
    while !input.is_empty() {
        let at = usize::from(input.u16()) % sealed.len();
        sealed[at] ^= input.u8();
    }
    let opened = responder.open(&sealed, &sk);
    if sealed != original {
        assert_eq!(
            opened.as_ref().err(),
            Some(&SkError::Integrity),
            "{encr:?}/{integ:?}: tampered message not refused as integrity failure"
        );
    }
}
