//! "No allocation per packet in steady state": a counting global allocator (this test binary
//! only) around the batch encapsulation and decapsulation paths the data plane workers run,
//! for every algorithm, after one warm-up batch.

use ipsecgw::crypto::{EncrAlg, IntegAlg};
use ipsecgw::esp::{Backend, InboundSa, OutboundSa, PacketBuf, SaParams, HEADROOM, TAILROOM};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use zeroize::Zeroizing;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Only the test's own thread is counted: libtest's and rand's helper threads may allocate
    // at any time, and the batch paths under test run on the calling thread.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    // `try_with`: the allocator is also called while thread-locals are being torn down.
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const BATCH: usize = 64;

fn params(encr: EncrAlg, integ: Option<IntegAlg>) -> SaParams {
    SaParams {
        spi: 0x4242_0001,
        encr,
        integ,
        encr_key: Zeroizing::new(vec![7; encr.keymat_len()]),
        integ_key: Zeroizing::new(integ.map_or(Vec::new(), |i| vec![9; i.key_len()])),
        esn: true,
        replay_window: 1024,
    }
}

/// One batch out and back in, with buffers owned by the caller (as the workers own theirs).
fn round_trip(
    tx: &OutboundSa,
    rx: &InboundSa,
    bufs: &mut [Vec<u8>],
    lens: &mut [usize],
    starts: &mut [usize],
    rng: &mut dyn rand::RngCore,
) -> usize {
    for (i, (b, l)) in bufs.iter_mut().zip(lens.iter_mut()).enumerate() {
        *l = 100 + (i * 97) % 1300;
        b[HEADROOM] = 0x45;
    }
    let mut pkts: [PacketBuf<'_>; BATCH] = std::array::from_fn(|_| PacketBuf {
        buf: &mut [],
        start: 0,
        len: 0,
    });
    for ((p, b), l) in pkts.iter_mut().zip(bufs.iter_mut()).zip(lens.iter()) {
        *p = PacketBuf {
            buf: b.as_mut_slice(),
            start: HEADROOM,
            len: *l,
        };
    }
    let (first, n) = tx.reserve_seq(BATCH).unwrap();
    assert_eq!(n, BATCH);
    assert_eq!(tx.encapsulate_batch(first, &mut pkts, rng), BATCH);
    for (p, s) in pkts.iter().zip(starts.iter_mut()) {
        *s = p.start;
    }
    let mut res = [Err(ipsecgw::esp::DropReason::Truncated); BATCH];
    rx.decapsulate_batch(&mut pkts, &mut res);
    res.iter().filter(|r| r.is_ok()).count()
}

#[test]
fn encap_and_decap_batches_do_not_allocate() {
    let mut rng = rand::thread_rng();
    let suites = [
        (EncrAlg::AesCbc256, Some(IntegAlg::HmacSha1_96)),
        (EncrAlg::AesCbc128, Some(IntegAlg::HmacSha256_128)),
        (EncrAlg::AesGcm16_256, None),
        (EncrAlg::TripleDesCbc, Some(IntegAlg::HmacSha1_96)),
    ];
    for (encr, integ) in suites {
        for backend in [Backend::Auto, Backend::Reference] {
            let p = params(encr, integ);
            let tx = OutboundSa::with_backend(&p, backend).unwrap();
            let rx = InboundSa::with_backend(&p, backend).unwrap();
            let mut bufs = vec![vec![0u8; HEADROOM + 1400 + TAILROOM]; BATCH];
            let mut lens = vec![0usize; BATCH];
            let mut starts = vec![0usize; BATCH];
            // warm-up: thread-local RNG state, CPU feature detection
            assert_eq!(
                round_trip(&tx, &rx, &mut bufs, &mut lens, &mut starts, &mut rng),
                BATCH
            );
            ALLOCS.store(0, Ordering::SeqCst);
            COUNTING.with(|c| c.set(true));
            let mut ok = 0;
            for _ in 0..20 {
                ok += round_trip(&tx, &rx, &mut bufs, &mut lens, &mut starts, &mut rng);
            }
            COUNTING.with(|c| c.set(false));
            assert_eq!(
                ok,
                20 * BATCH,
                "{encr:?} {backend:?}: every packet came back"
            );
            assert_eq!(
                ALLOCS.load(Ordering::SeqCst),
                0,
                "{encr:?} {backend:?}: allocations while encapsulating and decapsulating {} packets",
                20 * BATCH
            );
        }
    }
}
