//! ESP encapsulation / decapsulation per 1400-byte inner packet, in batches of 32 as the
//! data plane runs them, on the fast path (`crate::crypto::fast`, picked at run time) and on
//! the crate path used before it (RustCrypto, one packet at a time), side by side.
//!
//! Run: `cargo bench --bench esp` (add `-- --quick` for a short run). At the end it prints a
//! table, per packet, fast next to crate, read from criterion's estimates of this run.
//!
//! Time is the benchmark thread's CPU time (CLOCK_THREAD_CPUTIME_ID), not wall time: on a
//! shared machine a preempted thread then does not count the other jobs' time.
//! The copies that give every round fresh packets (inner packets for encapsulation, the
//! ciphertext for decapsulation, which works in place) are made outside the timed part, just
//! before it (`BatchSize::PerIteration`): the packets are in cache, as after a TUN or socket
//! read.
//! CI (scripts/test.sh) runs each case once, in criterion's test mode:
//! `cargo test --release --bench esp`.

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{black_box, BatchSize, Criterion, Throughput};
use ipsecgw::crypto::{EncrAlg, IntegAlg};
use ipsecgw::esp::{Backend, InboundSa, OutboundSa, PacketBuf, SaParams, HEADROOM, TAILROOM};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Duration;
use zeroize::Zeroizing;

const INNER_LEN: usize = 1400;
const BATCH: usize = 32;
const GROUP: &str = "esp-1400B-x32";

const SUITES: [(&str, EncrAlg, Option<IntegAlg>); 4] = [
    (
        "aes256-sha1",
        EncrAlg::AesCbc256,
        Some(IntegAlg::HmacSha1_96),
    ),
    ("aes256gcm16", EncrAlg::AesGcm16_256, None),
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
];

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
        // The replay check is a few instructions; disabled so one batch can be decrypted
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

/// CPU time of the calling thread, in nanoseconds.
struct ThreadCpu;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a live timespec; the clock id is a constant the kernel knows.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, i: u64) -> u64 {
        thread_cpu_ns().saturating_sub(i)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        static WALL: WallTime = WallTime;
        // same unit (nanoseconds) as wall time
        WALL.formatter()
    }
}

fn bench(c: &mut Criterion<ThreadCpu>) {
    let inner = inner_packet();
    let mut group = c.benchmark_group(GROUP);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.measurement_time(Duration::from_secs(3));
    for (name, encr, integ) in SUITES {
        let p = params(encr, integ);
        let mut rng = StdRng::seed_from_u64(1);

        // the fast path: one batch of 32, in place, in buffers that hold the inner packets
        // the way a TUN read leaves them (filled outside the timed part)
        let fast_tx = OutboundSa::new(&p).unwrap();
        let mut buf = vec![0u8; HEADROOM + INNER_LEN + TAILROOM];
        buf[HEADROOM..HEADROOM + INNER_LEN].copy_from_slice(&inner);
        group.bench_function(format!("{name}/encap/fast"), |b| {
            b.iter_batched_ref(
                || vec![buf.clone(); BATCH],
                |bufs| {
                    let mut pkts: [PacketBuf<'_>; BATCH] = std::array::from_fn(|_| PacketBuf {
                        buf: &mut [],
                        start: 0,
                        len: 0,
                    });
                    for (p, buf) in pkts.iter_mut().zip(bufs.iter_mut()) {
                        *p = PacketBuf {
                            buf,
                            start: HEADROOM,
                            len: INNER_LEN,
                        };
                    }
                    let (first, _) = fast_tx.reserve_seq(BATCH).unwrap();
                    black_box(fast_tx.encapsulate_batch(first, &mut pkts, &mut rng))
                },
                BatchSize::PerIteration,
            )
        });
        // the crate path: packet by packet
        let mut ref_tx = OutboundSa::with_backend(&p, Backend::Reference).unwrap();
        let mut out = Vec::with_capacity(2048);
        group.bench_function(format!("{name}/encap/crate"), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    ref_tx
                        .encapsulate(black_box(&inner), &mut rng, &mut out)
                        .unwrap();
                }
                black_box(out.len())
            })
        });

        let mut packet = Vec::new();
        OutboundSa::new(&p)
            .unwrap()
            .encapsulate(&inner, &mut rng, &mut packet)
            .unwrap();
        let fast_rx = InboundSa::new(&p).unwrap();
        let mut res = vec![Err(ipsecgw::esp::DropReason::Truncated); BATCH];
        // Decryption works in place: every round gets fresh copies of the packet, made
        // outside the timed part (setup of iter_batched_ref), so only decapsulation counts.
        let fresh = || vec![packet.clone(); BATCH];
        group.bench_function(format!("{name}/decap/fast"), |b| {
            b.iter_batched_ref(
                fresh,
                |scratch| {
                    let mut pkts: [PacketBuf<'_>; BATCH] = std::array::from_fn(|_| PacketBuf {
                        buf: &mut [],
                        start: 0,
                        len: 0,
                    });
                    for (p, s) in pkts.iter_mut().zip(scratch.iter_mut()) {
                        let len = s.len();
                        *p = PacketBuf {
                            buf: s,
                            start: 0,
                            len,
                        };
                    }
                    fast_rx.decapsulate_batch(&mut pkts, &mut res);
                    black_box(res[BATCH - 1].is_ok())
                },
                BatchSize::PerIteration,
            )
        });
        let mut ref_rx = InboundSa::with_backend(&p, Backend::Reference).unwrap();
        group.bench_function(format!("{name}/decap/crate"), |b| {
            b.iter_batched_ref(
                fresh,
                |scratch| {
                    for s in scratch.iter_mut() {
                        let got = ref_rx.decapsulate(black_box(s)).unwrap();
                        black_box(got.packet.len());
                    }
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// Mean time per packet (µs) of one case from criterion's estimates of this run.
fn per_packet_us(case: &str) -> Option<f64> {
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let path = format!(
        "{dir}/criterion/{GROUP}/{}/new/estimates.json",
        case.replace('/', "_")
    );
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(v["mean"]["point_estimate"].as_f64()? / 1000.0 / BATCH as f64)
}

fn main() {
    let mut c = Criterion::default()
        .with_measurement(ThreadCpu)
        .configure_from_args();
    // `cargo bench` passes --bench; `cargo test --bench esp` runs each case once (test mode).
    let testing = !std::env::args().any(|a| a == "--bench");
    bench(&mut c);
    c.final_summary();
    if testing {
        return;
    }
    println!();
    println!(
        "CPU time per 1400-byte packet, batch of {BATCH} ({})",
        ipsecgw::crypto::fast::describe()
    );
    println!(
        "| suite | direction | fast path µs | crate path µs (per packet, RustCrypto) | speed-up |"
    );
    println!("|---|---|---|---|---|");
    for (name, _, _) in SUITES {
        for dir in ["encap", "decap"] {
            let f = per_packet_us(&format!("{name}/{dir}/fast"));
            let r = per_packet_us(&format!("{name}/{dir}/crate"));
            if let (Some(f), Some(r)) = (f, r) {
                println!("| {name} | {dir} | {f:.3} | {r:.3} | {:.1}x |", r / f);
            }
        }
    }
}
