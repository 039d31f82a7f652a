//! The BGP core driven with simulated time: two sessions wired back to back in memory, and
//! single sessions fed hand-made bytes.
//!
//! - `pair`: two sessions back to back (FSM, timers, announcements both ways);
//! - `peer`: one session fed hand-made bytes (OPEN/UPDATE errors, AS_PATH rules, collisions);
//! - `import`: the import prefix-list, RFC 8212 and the routes that may never be installed;
//! - `fuzz`: property tests that nothing panics and UPDATEs round-trip.

mod fuzz;
mod import;
mod pair;
mod peer;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ipsecgw::bgp::msg::{
    self, err, Capability, Message, Notification, Open, PathAttrs, RouteRefresh, Update,
};
use ipsecgw::bgp::{
    AsPath, BgpConfig, BgpEvent, BgpState, Origin, PrefixFilter, RibDirection, Session,
};
use ipsecgw::prefix::IpPrefix;

fn p(s: &str) -> IpPrefix {
    s.parse().unwrap()
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const A_ADDR: &str = "10.2.30.125";
const B_ADDR: &str = "10.10.30.254";

/// The ipsecgw side of the Azure example: AS65021, announces 10.2.30.0/25 (plus one prefix the
/// prefix-list must hold back), local-preference 200 on import.
fn cfg_a() -> BgpConfig {
    let mut c = BgpConfig::new(65021, 65515, ip(A_ADDR), ip(B_ADDR));
    c.multihop = 5;
    c.networks = vec![p("10.2.30.0/25"), p("192.168.99.0/24")];
    c.export = vec!["10.2.30.0/25".parse().unwrap()];
    c.import = Some(vec![accept_all()]);
    c.import_local_pref = 200;
    c
}

/// The Azure/BIRD side: AS65515, passive, announces 10.2.0.0/24.
fn cfg_b() -> BgpConfig {
    let mut c = BgpConfig::new(65515, 65021, ip(B_ADDR), ip(A_ADDR));
    c.passive = true;
    c.networks = vec![p("10.2.0.0/24")];
    c.import = Some(vec!["10.2.0.0/16 le 32".parse().unwrap()]);
    c
}

/// An import entry matching every IPv4 prefix.
fn accept_all() -> PrefixFilter {
    "0.0.0.0/0 le 32".parse().unwrap()
}

/// Captures formatted `tracing` output of one closure.
fn capture_logs(f: impl FnOnce()) -> String {
    // One global subscriber writing to a per-thread buffer, not `with_default` per test:
    // tracing caches each callsite's interest globally, so a callsite first hit on a thread
    // with no subscriber could stay disabled for a test capturing on another thread.
    use std::cell::RefCell;
    thread_local! {
        static CAPTURE: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
    }
    struct ThreadBuf;
    impl std::io::Write for ThreadBuf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            CAPTURE.with(|c| {
                if let Some(v) = c.borrow_mut().as_mut() {
                    v.extend_from_slice(b);
                }
            });
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        tracing_subscriber::fmt()
            .with_writer(|| ThreadBuf)
            .with_ansi(false)
            .try_init()
            .expect("the test binary's one subscriber");
    });
    CAPTURE.with(|c| *c.borrow_mut() = Some(Vec::new()));
    f();
    let bytes = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
    String::from_utf8(bytes).unwrap()
}
