//! The load generator of `benches/ike_load.rs` at small scale against the real binary, in
//! namespaces this test creates: 300 generated peers (three per source address, each its own
//! identity) complete IKE_SA_INIT + IKE_AUTH with a CHILD SA while spoofed IKE_SA_INITs
//! flood the responder. Needs root; the one opt-out is IPSECGW_SKIP_NETNS=1.

mod common;
#[path = "../benches/ike_load/mod.rs"]
mod ike_load;

use common::{netns_env_ok, Side, RIGHT_UL};
use ike_load::fleet::FleetConfig;
use ike_load::responder::{self, PSK};
use ike_load::run;
use std::path::Path;
use std::time::Duration;

const PEERS: usize = 300;

#[test]
fn every_handshake_completes_under_a_spoofed_flood_and_memory_stays_bounded() {
    if !netns_env_ok(&[]) {
        return;
    }
    let mut lab = run::lab("iload");
    let bin = Path::new(env!("CARGO_BIN_EXE_ipsecgw"));
    let (ike, esp) = ("aes256-sha1-modp1024", "aes256-sha1");
    let resp = responder::start_ipsecgw(&mut lab, bin, "ipsecgw", ike, esp);
    let cfg = FleetConfig {
        peers: PEERS,
        concurrency: 50,
        addresses: PEERS / 3,
        ike: ike.into(),
        esp: esp.into(),
        psk: PSK.into(),
        responder: RIGHT_UL.parse().unwrap(),
        give_up: Duration::from_secs(20),
        ike_only: false,
    };
    let o = run::measure(&lab, &resp, &cfg, 3000);
    eprintln!(
        "{} done in {:.1}s, responder CPU {:.2}s, RSS {} -> {} KiB (peak {}), counters {:?}, flood {:?}",
        o.fleet.completed,
        o.fleet.elapsed.as_secs_f64(),
        o.cpu_secs,
        o.rss_before_kib,
        o.rss_after_kib,
        o.rss_peak_kib,
        o.counters,
        o.flood
    );
    assert_eq!(
        o.fleet.completed, PEERS,
        "every legitimate handshake completed"
    );
    assert_eq!(o.fleet.failed, 0);
    // The responder's own account: one "CHILD_SA ... established" log line per handshake.
    assert_eq!(o.counters["log_child_sa_established"], PEERS as u64);
    let st = lab.status_json(Side::Right);
    let hub = &st["connections"][0];
    assert_eq!(hub["name"], "hub");
    assert_eq!(hub["state"], "established", "{hub}");
    // The flood was answered with cookie demands (seen on the wire at the spoofed
    // addresses), and so were legitimate peers while it lasted; none of it cost a peer.
    let flood = o.flood.as_ref().expect("flood ran");
    assert!(flood.sent > 1000, "flood sent {}", flood.sent);
    assert!(
        flood.cookie_answers > flood.sent / 2,
        "the responder demanded cookies from the flood: {flood:?}"
    );
    // ... and its own status counts at least as many cookie demands as reached the flood.
    let cookies = o.counters.get("cookies_sent").copied();
    assert!(
        cookies.is_some_and(|n| n >= flood.cookie_answers),
        "status ike_engine.cookies_sent {cookies:?} < {} seen at the spoofed addresses",
        flood.cookie_answers
    );
    // The socket readers answered the flood (cookie gate): at least 90 % of the demands seen
    // at the spoofed addresses never reached the IKE loop (the first ones do, before the
    // half-open count reaches the threshold).
    let by_gate = o.counters.get("cookies_sent_by_gate").copied();
    assert!(
        by_gate.is_some_and(|n| n >= flood.cookie_answers * 9 / 10 && Some(n) <= cookies),
        "status ike_engine.cookies_sent_by_gate {by_gate:?}, {} seen at the spoofed addresses, \
         cookies_sent {cookies:?}",
        flood.cookie_answers
    );
    assert!(
        o.fleet.cookies_received > 0,
        "legitimate peers met the cookie demand"
    );
    // Memory: a few MiB for 300 SAs plus the half-open table; never the flood's size.
    assert!(
        o.rss_peak_kib < 64 * 1024,
        "responder RSS peaked at {} KiB",
        o.rss_peak_kib
    );
    assert!(lab.is_running(resp.pid), "the responder survived");
}
