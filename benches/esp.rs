//! ESP encapsulate / decapsulate throughput on 1400-byte inner packets, per algorithm.
//! Run: `cargo bench --bench esp` (add `-- --quick` for a short run).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ipsecgw::crypto::{EncrAlg, IntegAlg};
use ipsecgw::esp::{InboundSa, OutboundSa, SaParams};
use rand::rngs::StdRng;
use rand::SeedableRng;
use zeroize::Zeroizing;

const INNER_LEN: usize = 1400;

fn params(encr: EncrAlg, integ: Option<IntegAlg>) -> SaParams {
    SaParams {
        spi: 0x1234_5678,
        encr,
        integ,
        encr_key: Zeroizing::new((0..encr.keymat_len() as u8).collect()),
        integ_key: Zeroizing::new(
            integ.map_or(Vec::new(), |i| (0..i.key_len() as u8).rev().collect()),
        ),
        esn: false,
        // The replay check is a few instructions; disabled so one packet can be decrypted
        // over and over.
        replay_window: 0,
    }
}

fn inner_packet() -> Vec<u8> {
    let mut p: Vec<u8> = (0..INNER_LEN).map(|i| i as u8).collect();
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(INNER_LEN as u16).to_be_bytes());
    p
}

fn bench(c: &mut Criterion) {
    let suites = [
        (
            "aes256-sha1",
            EncrAlg::AesCbc256,
            Some(IntegAlg::HmacSha1_96),
        ),
        (
            "aes128-sha1",
            EncrAlg::AesCbc128,
            Some(IntegAlg::HmacSha1_96),
        ),
        (
            "3des-sha1",
            EncrAlg::TripleDesCbc,
            Some(IntegAlg::HmacSha1_96),
        ),
        ("aes256gcm16", EncrAlg::AesGcm16_256, None),
    ];
    let inner = inner_packet();
    let mut group = c.benchmark_group("esp-1400B");
    group.throughput(Throughput::Bytes(INNER_LEN as u64));
    for (name, encr, integ) in suites {
        let p = params(encr, integ);
        let mut tx = OutboundSa::new(&p).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let mut out = Vec::with_capacity(2048);
        group.bench_function(format!("encapsulate/{name}"), |b| {
            b.iter(|| {
                tx.encapsulate(black_box(&inner), &mut rng, &mut out)
                    .unwrap();
                black_box(out.len())
            })
        });

        let mut rx = InboundSa::new(&p).unwrap();
        let mut packet = Vec::new();
        OutboundSa::new(&p)
            .unwrap()
            .encapsulate(&inner, &mut rng, &mut packet)
            .unwrap();
        let mut scratch = packet.clone();
        group.bench_function(format!("decapsulate/{name}"), |b| {
            b.iter(|| {
                scratch.copy_from_slice(&packet);
                let got = rx.decapsulate(black_box(&mut scratch)).unwrap();
                black_box(got.packet.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
