//! One measured run: a fresh responder, optionally a flood, the fleet of initiators, and
//! what the kernel and the responder report before, during and after.

use super::fleet::{self, FleetConfig, FleetResult, ADDR_NET};
use super::flood::{Flood, FloodStats, SPOOF_NET};
use super::responder::{self, Responder};
use super::udp::enter_netns;
use crate::common::{must, Lab, Side};
use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set by SIGINT/SIGTERM: the fleet stops, the run returns, the lab is dropped (cleaned up).
pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

pub fn catch_ctrl_c() {
    let h = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    unsafe {
        libc::signal(libc::SIGINT, h);
        libc::signal(libc::SIGTERM, h);
    }
}

/// The lab's two namespaces, plus: the generated peers' /16 and the spoofed /15 are local to
/// the generator (AnyIP routes) and routed there from the responder.
pub fn lab(tag: &str) -> Lab {
    let lab = Lab::new(tag);
    let (l, r) = (
        lab.ns(Side::Left).to_string(),
        lab.ns(Side::Right).to_string(),
    );
    for net in [ADDR_NET, SPOOF_NET] {
        must(&format!("ip -n {l} route add local {net} dev lo"));
        must(&format!(
            "ip -n {r} route add {net} via {}",
            Side::Left.ul()
        ));
    }
    lab
}

#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub label: String,
    pub ike: String,
    pub flood_pps: u64,
    pub fleet: FleetResult,
    pub peers: usize,
    pub cpu_secs: f64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub rss_peak_kib: u64,
    pub counters: BTreeMap<String, u64>,
    pub flood: Option<FloodStats>,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.fleet.completed as f64 / self.fleet.elapsed.as_secs_f64().max(1e-9)
    }
    pub fn per_core(&self) -> f64 {
        self.fleet.completed as f64 / self.cpu_secs.max(1e-9)
    }
    pub fn kib_per_sa(&self) -> f64 {
        (self.rss_after_kib as f64 - self.rss_before_kib as f64)
            / self.fleet.completed.max(1) as f64
    }
}

/// Runs the fleet against `resp` (already started), flooding at `flood_pps` if non-zero.
pub fn measure(lab: &Lab, resp: &Responder, cfg: &FleetConfig, flood_pps: u64) -> Outcome {
    responder::check_pid(resp);
    std::thread::sleep(Duration::from_millis(500));
    let ns = lab.ns(Side::Left).to_string();
    let rss_before = responder::rss_kib(resp.pid);
    let dst = SocketAddrV4::new(cfg.responder, 500);
    let flood = (flood_pps > 0).then(|| {
        let f = Flood::start(&ns, fleet::init_request(cfg), dst, flood_pps);
        // Let it fill the half-open table first: the legit peers meet a responder under attack.
        std::thread::sleep(Duration::from_secs(1));
        f
    });
    let cpu0 = responder::cpu_secs(resp.pid);
    let mut peak = responder::rss_kib(resp.pid);
    let fleet = std::thread::scope(|s| {
        let h = s.spawn(|| {
            enter_netns(&ns).expect("enter the generator namespace");
            fleet::run(cfg, &STOP)
        });
        while !h.is_finished() {
            std::thread::sleep(Duration::from_millis(100));
            peak = peak.max(responder::rss_kib(resp.pid));
        }
        h.join().expect("fleet thread").expect("fleet sockets")
    });
    let cpu = responder::cpu_secs(resp.pid) - cpu0;
    let flood = flood.map(Flood::stop);
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        peak = peak.max(responder::rss_kib(resp.pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    let rss_after = responder::rss_kib(resp.pid);
    Outcome {
        label: resp.label.clone(),
        ike: cfg.ike.clone(),
        flood_pps,
        peers: cfg.peers,
        fleet,
        cpu_secs: cpu,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        rss_peak_kib: peak.max(rss_after),
        counters: responder::counters(lab, resp),
        flood,
    }
}
