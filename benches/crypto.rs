//! Control-plane crypto costs: key generation and the shared-secret computation of every key
//! exchange group (MODP with the crate's own constant-time Montgomery exponentiation, next to
//! num-bigint's variable-time `modpow`, the reason for the code in src/crypto/modp/; ECP and
//! Curve25519 with RustCrypto / dalek), and prf+ for a CHILD SA's keying material.
//!
//!   cargo bench --bench crypto
//!
//! For MODP the bench also prints "ratio" lines: constant-time shared secret / num-bigint
//! `modpow`, both timed interleaved in the same run (minimum of 30 rounds each), the figure
//! the README quotes because the machine's absolute speed varies.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ipsecgw::crypto::{modp_prime, prf_plus, DhGroup, DhPrivate, PrfAlg};
use num_bigint::BigUint;
use rand::{rngs::StdRng, SeedableRng};
use std::time::{Duration, Instant};

/// How long one run of `f` takes.
fn once(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn dh(c: &mut Criterion) {
    // `cargo bench` passes --bench; `cargo test --bench crypto` does not (one run per case).
    let measuring = std::env::args().any(|a| a == "--bench");
    let mut rng = StdRng::seed_from_u64(1);
    for g in DhGroup::ALL {
        let a = DhPrivate::generate(g, &mut rng);
        let b = DhPrivate::generate(g, &mut rng);
        let peer = b.public_value();
        c.bench_function(&format!("dh/{}/keygen-constant-time", g.name()), |bn| {
            bn.iter(|| DhPrivate::generate(g, &mut rng))
        });
        c.bench_function(
            &format!("dh/{}/shared-secret-constant-time", g.name()),
            |bn| bn.iter(|| a.shared_secret(black_box(&peer)).unwrap()),
        );
        // MODP only: the same computation, variable time, y^x mod p with num-bigint.
        let Some(prime) = modp_prime(g) else {
            continue;
        };
        let p = BigUint::from_bytes_be(&prime);
        let y = BigUint::from_bytes_be(&peer);
        // An exponent as long as ours: p's length, 32 bytes for group 24 (whose constant-time
        // shared secret also checks y^q = 1, a second 256-bit exponentiation).
        let xlen = if g == DhGroup::Modp2048s256 {
            32
        } else {
            g.public_len()
        };
        let mut xb = vec![0u8; xlen];
        rand::RngCore::fill_bytes(&mut rng, &mut xb);
        xb[0] &= 0x7f;
        let x = BigUint::from_bytes_be(&xb);
        c.bench_function(&format!("dh/{}/num-bigint-modpow", g.name()), |bn| {
            bn.iter(|| black_box(&y).modpow(&x, &p))
        });
        if measuring {
            let (mut ct, mut nb) = (Duration::MAX, Duration::MAX);
            for _ in 0..30 {
                ct = ct.min(once(|| {
                    black_box(a.shared_secret(black_box(&peer)).unwrap());
                }));
                nb = nb.min(once(|| {
                    black_box(black_box(&y).modpow(&x, &p));
                }));
            }
            println!(
                "ratio dh/{}: constant-time shared secret {:.0} µs / num-bigint modpow {:.0} µs = {:.2}",
                g.name(),
                ct.as_secs_f64() * 1e6,
                nb.as_secs_f64() * 1e6,
                ct.as_secs_f64() / nb.as_secs_f64()
            );
        }
    }
}

fn keymat(c: &mut Criterion) {
    let key = [7u8; 20];
    let seed = [9u8; 64];
    c.bench_function("prf+/HMAC_SHA1/child-keymat-aes256-sha1", |b| {
        b.iter(|| prf_plus(PrfAlg::HmacSha1, black_box(&key), &seed, 2 * (32 + 20)))
    });
}

criterion_group!(benches, dh, keymat);
criterion_main!(benches);
