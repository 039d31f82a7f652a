//! The BGP core driven with simulated time: two sessions wired back to back in memory, and
//! single sessions fed hand-made bytes.
//!
//! - `pair`: two sessions back to back (FSM, timers, announcements both ways);
//! - `peer`: one session fed hand-made bytes (OPEN/UPDATE errors, import rules, collisions);
//! - `fuzz`: property tests that nothing panics and UPDATEs round-trip.

mod fuzz;
mod pair;
mod peer;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ipsecgw::bgp::msg::{
    self, err, Capability, Message, Notification, Open, PathAttrs, RouteRefresh, Update,
};
use ipsecgw::bgp::{AsPath, BgpConfig, BgpEvent, BgpState, Origin, RibDirection, Session};
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
    c.import_local_pref = 200;
    c
}

/// The Azure/BIRD side: AS65515, passive, announces 10.2.0.0/24.
fn cfg_b() -> BgpConfig {
    let mut c = BgpConfig::new(65515, 65021, ip(B_ADDR), ip(A_ADDR));
    c.passive = true;
    c.networks = vec![p("10.2.0.0/24")];
    c
}
