//! ESP decapsulation (`esp::InboundSa::decapsulate`) on an SA with known keys.

use super::ike::ike_suites;
use super::Input;
use crate::esp::{InboundSa, OutboundSa, SaParams, MAX_WINDOW};
use rand::rngs::StdRng;
use rand::SeedableRng;
use zeroize::Zeroizing;

const SPI: u32 = 0xc0ff_ee01;

/// `esp_decap`. Input: `suite u8 | flags u8 | records`; flags bit 0 = ESN, bits 1-2 = replay
/// window (0, 32, 64, the maximum). Record tag bit 0 clear: a raw packet; set: a packet sealed
/// with the same SA's keys, body `seq u64 | next header u8 | tamper offset u16 | tamper xor u8 |
/// inner packet` (without ESN only the low 32 bits of seq count). A sealed packet the SA
/// accepts must come back as it was sent; a tampered one must be refused.
pub fn esp_decap(data: &[u8]) {
    let mut input = Input::new(data);
    let suites = ike_suites();
    let (encr, integ) = suites[usize::from(input.u8()) % suites.len()];
    let flags = input.u8();
    let esn = flags & 1 != 0;
    let params = SaParams {
        spi: SPI,
        encr,
        integ,
        encr_key: Zeroizing::new(vec![0x42; encr.keymat_len()]),
        integ_key: Zeroizing::new(vec![0x24; integ.map_or(0, |i| i.key_len())]),
        esn,
        replay_window: [0, 32, 64, MAX_WINDOW][usize::from(flags >> 1 & 3)],
    };
    let (Ok(mut rx), Ok(mut tx)) = (InboundSa::new(&params), OutboundSa::new(&params)) else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(3);
    let mut out = Vec::new();
    while let Some((tag, body)) = input.record() {
        if tag & 1 == 0 {
            let mut packet = body.to_vec();
            let _ = rx.decapsulate(&mut packet);
            continue;
        }
        let mut r = Input::new(body);
        let seq = if esn {
            r.u64()
        } else {
            u64::from(r.u64() as u32)
        };
        let next_header = r.u8();
        let (at, xor) = (usize::from(r.u16()), r.u8());
        let inner = r.rest();
        tx.set_next_seq_for_test(seq);
        if tx
            .encapsulate_with_next_header(inner, next_header, &mut rng, &mut out)
            .is_err()
        {
            continue;
        }
        let tampered = xor != 0 && !out.is_empty();
        if tampered {
            let at = at % out.len();
            out[at] ^= xor;
        }
        if let Ok(got) = rx.decapsulate(&mut out) {
            assert!(!tampered, "{encr:?}/{integ:?}: tampered packet accepted");
            assert_eq!(got.seq, seq, "{encr:?}/{integ:?}: sequence number");
            assert_eq!(got.next_header, next_header);
            assert_eq!(got.packet, inner, "{encr:?}/{integ:?}: inner packet");
        }
    }
    let _ = rx.highest_seq();
}
