//! The batch (fast) path against the reference (crate) path, and one inbound SA shared by
//! several threads.

use super::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

fn params(encr: EncrAlg, integ: Option<IntegAlg>, esn: bool, window: u32) -> SaParams {
    SaParams {
        spi: 0x0a0b_0c0d,
        encr,
        integ,
        encr_key: Zeroizing::new((0..encr.keymat_len() as u8).map(|i| i ^ 0x5c).collect()),
        integ_key: Zeroizing::new(integ.map_or(Vec::new(), |i| {
            (0..i.key_len() as u8).map(|b| b * 3).collect()
        })),
        esn,
        replay_window: window,
    }
}

const SUITES: [(EncrAlg, Option<IntegAlg>); 6] = [
    (EncrAlg::AesCbc256, Some(IntegAlg::HmacSha1_96)),
    (EncrAlg::AesCbc128, Some(IntegAlg::HmacSha1_96)),
    (EncrAlg::AesGcm16_256, None),
    (EncrAlg::AesGcm16_128, None),
    (EncrAlg::AesCbc128, Some(IntegAlg::HmacSha256_128)),
    (EncrAlg::TripleDesCbc, Some(IntegAlg::HmacSha1_96)),
];

fn inner(len: usize, fill: u8) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len.max(20))
        .map(|i| fill.wrapping_add(i as u8))
        .collect();
    p[0] = 0x45;
    p
}

/// Encapsulates `lens` as one batch; returns the ESP packets.
fn encap(tx: &OutboundSa, lens: &[usize], seed: u64) -> Vec<Vec<u8>> {
    let mut bufs: Vec<Vec<u8>> = lens
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            let mut b = vec![0u8; HEADROOM + l.max(20) + TAILROOM];
            b[HEADROOM..HEADROOM + l.max(20)].copy_from_slice(&inner(l, i as u8));
            b
        })
        .collect();
    let (first, n) = tx.reserve_seq(lens.len()).unwrap();
    assert_eq!(n, lens.len());
    let mut pkts: Vec<PacketBuf<'_>> = bufs
        .iter_mut()
        .zip(lens)
        .map(|(b, &l)| PacketBuf {
            buf: b.as_mut_slice(),
            start: HEADROOM,
            len: l.max(20),
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    assert_eq!(tx.encapsulate_batch(first, &mut pkts, &mut rng), lens.len());
    pkts.iter()
        .map(|p| p.buf[p.start..p.start + p.len].to_vec())
        .collect()
}

fn decap(rx: &InboundSa, esp: &[Vec<u8>]) -> Vec<Result<Vec<u8>, DropReason>> {
    let mut bufs = esp.to_vec();
    let mut pkts: Vec<PacketBuf<'_>> = bufs
        .iter_mut()
        .map(|b| {
            let len = b.len();
            PacketBuf {
                buf: b.as_mut_slice(),
                start: 0,
                len,
            }
        })
        .collect();
    let mut res = vec![Err(DropReason::Truncated); pkts.len()];
    rx.decapsulate_batch(&mut pkts, &mut res);
    pkts.iter()
        .zip(res)
        .map(|(p, r)| r.map(|_| p.buf[p.start..p.start + p.len].to_vec()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Same keys, same IVs: the fast path writes byte for byte what the crate path writes,
    /// and each side decapsulates the other's packets.
    #[test]
    fn fast_path_equals_reference(
        lens in proptest::collection::vec(20usize..1600, 1..70),
        suite in 0usize..SUITES.len(),
        esn in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let (encr, integ) = SUITES[suite];
        let p = params(encr, integ, esn, 1024);
        let fast_tx = OutboundSa::new(&p).unwrap();
        let ref_tx = OutboundSa::with_backend(&p, Backend::Reference).unwrap();
        let a = encap(&fast_tx, &lens, seed);
        let b = encap(&ref_tx, &lens, seed);
        prop_assert_eq!(&a, &b);
        let fast_rx = InboundSa::new(&p).unwrap();
        let ref_rx = InboundSa::with_backend(&p, Backend::Reference).unwrap();
        let x = decap(&fast_rx, &b);
        let y = decap(&ref_rx, &a);
        prop_assert_eq!(&x, &y);
        for (r, &l) in x.iter().zip(&lens) {
            prop_assert_eq!(r.as_ref().map(Vec::len).ok(), Some(l.max(20)));
        }
        // the same batch again: every packet is a replay on both paths
        prop_assert!(decap(&fast_rx, &b).iter().all(|r| *r == Err(DropReason::Replay)));
        prop_assert!(decap(&ref_rx, &a).iter().all(|r| *r == Err(DropReason::Replay)));
    }
}

#[test]
fn the_fast_path_is_used_on_this_machine_where_available() {
    let p = params(EncrAlg::AesCbc256, Some(IntegAlg::HmacSha1_96), false, 64);
    assert_eq!(
        OutboundSa::new(&p).unwrap().is_fast(),
        crate::crypto::fast::cbc_lanes_available()
    );
    assert!(!OutboundSa::with_backend(&p, Backend::Reference)
        .unwrap()
        .is_fast());
    let g = params(EncrAlg::AesGcm16_256, None, false, 64);
    assert_eq!(
        InboundSa::new(&g).unwrap().is_fast(),
        crate::crypto::fast::gcm_available()
    );
}

#[test]
fn batch_drops_what_cannot_be_sent_and_tampered_packets() {
    let p = params(EncrAlg::AesCbc256, Some(IntegAlg::HmacSha1_96), false, 64);
    let tx = OutboundSa::new(&p).unwrap();
    let mut no_room = vec![0x45u8; 100];
    let mut not_ip = vec![0u8; HEADROOM + 40 + TAILROOM];
    let mut good = vec![0x45u8; HEADROOM + 40 + TAILROOM];
    let mut pkts = [
        PacketBuf {
            buf: &mut no_room,
            start: 0,
            len: 40,
        },
        PacketBuf {
            buf: &mut not_ip,
            start: HEADROOM,
            len: 40,
        },
        PacketBuf {
            buf: &mut good,
            start: HEADROOM,
            len: 40,
        },
    ];
    let (first, _) = tx.reserve_seq(3).unwrap();
    assert_eq!(
        tx.encapsulate_batch(first, &mut pkts, &mut rand::thread_rng()),
        1
    );
    assert_eq!((pkts[0].len, pkts[1].len), (0, 0));
    let esp = pkts[2].buf[pkts[2].start..pkts[2].start + pkts[2].len].to_vec();
    assert_eq!(
        u32::from_be_bytes(esp[4..8].try_into().unwrap()),
        3,
        "numbers are not reused"
    );
    let rx = InboundSa::new(&p).unwrap();
    let mut bad = esp.clone();
    bad[30] ^= 1;
    let r = decap(&rx, &[bad, esp.clone(), esp[..20].to_vec()]);
    assert_eq!(r[0], Err(DropReason::AuthFailed));
    assert_eq!(r[1].as_ref().map(Vec::len), Ok(40));
    assert_eq!(r[2], Err(DropReason::Truncated));
}

/// Several workers decapsulate one SA at once, every packet delivered twice and out of
/// order: each sequence number is accepted exactly once, and none inside the window is
/// dropped.
#[test]
fn one_inbound_sa_hammered_from_several_threads() {
    for (encr, integ) in [
        (EncrAlg::AesCbc256, Some(IntegAlg::HmacSha1_96)),
        (EncrAlg::AesGcm16_256, None),
    ] {
        const N: usize = 4000;
        const THREADS: usize = 4;
        let p = params(encr, integ, false, 4096);
        let tx = OutboundSa::new(&p).unwrap();
        let lens: Vec<usize> = (0..N).map(|i| 40 + (i * 7) % 200).collect();
        let mut esp = Vec::new();
        for (k, c) in lens.chunks(50).enumerate() {
            esp.extend(encap(&tx, c, k as u64));
        }
        // two copies of everything, locally shuffled (reordering stays inside the window)
        let mut order: Vec<usize> = (0..N).chain(0..N).collect();
        let mut rng = StdRng::seed_from_u64(3);
        for w in order.chunks_mut(64) {
            rand::seq::SliceRandom::shuffle(w, &mut rng);
        }
        let rx = Arc::new(InboundSa::new(&p).unwrap());
        let queue = Arc::new(Mutex::new(
            order.chunks(16).map(<[usize]>::to_vec).collect::<Vec<_>>(),
        ));
        queue.lock().unwrap().reverse();
        let esp = Arc::new(esp);
        let accepted: Arc<Vec<AtomicUsize>> =
            Arc::new((0..N).map(|_| AtomicUsize::new(0)).collect());
        let replays = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (rx, queue, esp, accepted, replays) = (
                    rx.clone(),
                    queue.clone(),
                    esp.clone(),
                    accepted.clone(),
                    replays.clone(),
                );
                std::thread::spawn(move || loop {
                    let Some(batch) = queue.lock().unwrap().pop() else {
                        return;
                    };
                    let pkts: Vec<Vec<u8>> = batch.iter().map(|&i| esp[i].clone()).collect();
                    for (&i, r) in batch.iter().zip(decap(&rx, &pkts)) {
                        match r {
                            Ok(_) => {
                                accepted[i].fetch_add(1, Ordering::SeqCst);
                            }
                            Err(DropReason::Replay) => {
                                replays.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => panic!("packet {i}: {e:?}"),
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for (i, a) in accepted.iter().enumerate() {
            assert_eq!(
                a.load(Ordering::SeqCst),
                1,
                "{encr:?}: sequence number {} accepted {} times",
                i + 1,
                a.load(Ordering::SeqCst)
            );
        }
        assert_eq!(
            replays.load(Ordering::SeqCst),
            N,
            "{encr:?}: every duplicate, and only those, is a replay"
        );
        assert_eq!(rx.highest_seq(), N as u64);
    }
}

/// Many threads reserving numbers from one outbound SA never get the same one twice.
#[test]
fn outbound_sequence_numbers_are_unique_across_threads() {
    let p = params(EncrAlg::AesGcm16_128, None, false, 0);
    let tx = Arc::new(OutboundSa::new(&p).unwrap());
    let got: Vec<Vec<u64>> = (0..4)
        .map(|_| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut v = Vec::new();
                for k in 0..2000 {
                    let (first, n) = tx.reserve_seq(1 + k % 5).unwrap();
                    v.extend(first..first + n as u64);
                }
                v
            })
        })
        .map(|t| t.join().unwrap())
        .collect();
    let mut all: Vec<u64> = got.iter().flatten().copied().collect();
    for v in &got {
        assert!(v.windows(2).all(|w| w[0] < w[1]), "monotonic per thread");
    }
    all.sort_unstable();
    let n = all.len();
    all.dedup();
    assert_eq!(all.len(), n, "a sequence number was handed out twice");
    assert_eq!(all.first(), Some(&1));
    assert_eq!(tx.last_seq(), n as u64);
}
