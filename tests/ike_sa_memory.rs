//! What one established IKE SA (with its CHILD SA) costs a hub responder in heap bytes,
//! counted by a global allocator while peers come up one after another in memory. The load
//! generator (benches/ike_load.rs) measures the whole daemon; this pins the engine's share so
//! a field that grows it shows up in an ordinary `cargo test`.

mod netsim;

use ipsecgw::ike::{Engine, Event, IkeConfig};
use netsim::{conf, Conf};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

/// Live heap bytes of the whole test process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const PEERS: usize = 400;

/// The load generator's hub: any address, any identity, one PSK, aes256-sha256-curve25519.
fn hub_cfg() -> IkeConfig {
    let mut c = conf("192.0.2.2", None)
        .name("hub")
        .psk(b"hub-psk-0123456789")
        .ike(&["aes256-sha256-curve25519"])
        .ts(
            vec!["10.0.0.0/16".parse().unwrap()],
            vec!["100.96.0.0/16".parse().unwrap()],
        )
        .any_id();
    c.children[0].name = "spokes".into();
    c
}

/// Peer `i`: its own address, FQDN identity and inner /32.
fn peer_cfg(i: usize) -> IkeConfig {
    let ip = format!("100.64.{}.{}", i / 250, 1 + i % 250);
    let mut c = conf(&ip, Some("192.0.2.2"))
        .name("up")
        .psk(b"hub-psk-0123456789")
        .ike(&["aes256-sha256-curve25519"])
        .ts(
            vec![format!("100.96.{}.{}/32", i / 250, 1 + i % 250)
                .parse()
                .unwrap()],
            vec!["10.0.0.0/16".parse().unwrap()],
        );
    c.local_id = format!("peer{i}.branch.test").parse().unwrap();
    c
}

/// Runs one peer's handshake against the hub to completion; true when its CHILD SA is up.
fn handshake(hub: &mut Engine, now: &mut Instant, i: usize) -> bool {
    let mut peer = Engine::new(
        vec![peer_cfg(i)],
        Box::new(StdRng::seed_from_u64(1000 + i as u64)),
        *now,
    );
    peer.initiate(*now, "up").unwrap();
    let mut up = false;
    loop {
        let mut moved = false;
        while let Some(t) = peer.poll_transmit() {
            moved = true;
            hub.handle_datagram(*now, t.remote, t.local, &t.data);
        }
        while let Some(t) = hub.poll_transmit() {
            moved = true;
            peer.handle_datagram(*now, t.remote, t.local, &t.data);
        }
        while let Some(ev) = hub.poll_event() {
            up |= matches!(ev, Event::ChildUp(_));
            assert!(
                !matches!(ev, Event::IkeDown { .. }),
                "hub lost an SA: {ev:?}"
            );
        }
        if !moved {
            return up;
        }
        *now += Duration::from_millis(1);
    }
}

#[test]
fn an_established_hub_sa_costs_little_heap() {
    let mut now = Instant::now();
    let mut hub = Engine::new(vec![hub_cfg()], Box::new(StdRng::seed_from_u64(1)), now);
    // Warm up the hub's tables and the one-time allocations (tracing, lazies).
    for i in 0..50 {
        assert!(handshake(&mut hub, &mut now, i));
    }
    let before = LIVE.load(Ordering::Relaxed);
    for i in 50..50 + PEERS {
        assert!(handshake(&mut hub, &mut now, i), "peer {i} came up");
    }
    let per_sa = (LIVE.load(Ordering::Relaxed) - before) / PEERS as isize;
    eprintln!("hub engine heap per established IKE SA + CHILD SA: {per_sa} bytes");
    assert!(
        per_sa < 4000,
        "one established IKE SA holds {per_sa} heap bytes in the engine"
    );
}
