//! IKE responder under load (issue 11): handshakes per second per responder core, memory per
//! established IKE SA, and both again under a spoofed IKE_SA_INIT flood, for ipsecgw and for
//! strongSwan in the same run. Needs root (network namespaces); prints a Markdown table.
//!
//!     cargo bench --bench ike_load -- --peers 10000 --concurrency 200 --flood-pps 20000
//!
//! Options: --peers N, --concurrency C, --addresses A (source addresses; default one per
//! peer), --flood-pps P (0: no flood runs), --groups modp1024,curve25519,
//! --responders ipsecgw,strongswan, --swan-peers N (strongSwan's count if it must be lower),
//! --before PATH (an older ipsecgw binary, measured as "ipsecgw-before"), --json PATH.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "ike_load/mod.rs"]
mod ike_load;

use ike_load::fleet::FleetConfig;
use ike_load::responder::{self, PSK};
use ike_load::run::{self, Outcome};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

struct Args {
    peers: usize,
    swan_peers: Option<usize>,
    concurrency: usize,
    addresses: Option<usize>,
    flood_pps: u64,
    groups: Vec<String>,
    responders: Vec<String>,
    before: Option<PathBuf>,
    json: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        peers: 10_000,
        swan_peers: None,
        concurrency: 200,
        addresses: None,
        flood_pps: 20_000,
        groups: vec!["modp1024".into(), "curve25519".into()],
        responders: vec!["ipsecgw".into(), "strongswan".into()],
        before: None,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        let list = |s: String| s.split(',').map(str::to_string).collect::<Vec<_>>();
        match k.as_str() {
            "--peers" => a.peers = v().parse().expect("--peers N"),
            "--swan-peers" => a.swan_peers = Some(v().parse().expect("--swan-peers N")),
            "--concurrency" => a.concurrency = v().parse().expect("--concurrency N"),
            "--addresses" => a.addresses = Some(v().parse().expect("--addresses N")),
            "--flood-pps" => a.flood_pps = v().parse().expect("--flood-pps N"),
            "--groups" => a.groups = list(v()),
            "--responders" => a.responders = list(v()),
            "--before" => a.before = Some(v().into()),
            "--json" => a.json = Some(v().into()),
            "--bench" => {}
            other => panic!("unknown option {other}"),
        }
    }
    a
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn row(o: &Outcome) -> String {
    let f = &o.fleet;
    let flood = o.flood.as_ref().map_or("-".into(), |s| {
        format!(
            "{:.0}/s: {} cookies, {} other",
            s.sent as f64 / s.secs.max(1e-9),
            s.cookie_answers,
            s.other_answers
        )
    });
    let counters: Vec<String> = o.counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "| {} | {} | {} | {}/{} | {:.1} | {:.0} | {:.2} | **{:.0}** | {:.1} → {:.1} | {:.1} | {:.1} | {:.0}/{:.0} | {} | {} | {} |",
        o.label,
        o.ike,
        if o.flood_pps > 0 { "flood" } else { "clean" },
        f.completed,
        o.peers,
        f.elapsed.as_secs_f64(),
        o.rate(),
        o.cpu_secs,
        o.per_core(),
        mib(o.rss_before_kib),
        mib(o.rss_after_kib),
        o.kib_per_sa(),
        mib(o.rss_peak_kib),
        f.latency_p50.as_secs_f64() * 1e3,
        f.latency_p99.as_secs_f64() * 1e3,
        f.cookies_received,
        flood,
        counters.join(" "),
    )
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let a = args();
    assert!(
        common::netns_env_ok(&["swanctl", "/usr/lib/ipsec/charon"]),
        "skipped"
    );
    run::catch_ctrl_c();
    let mut lab = run::lab("load");
    let esp = "aes256-sha1";
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_ipsecgw"));
    let mut outcomes: Vec<Outcome> = vec![];
    let load_before = load_average();
    let mut who: Vec<(String, Option<PathBuf>)> = vec![];
    for r in &a.responders {
        match r.as_str() {
            "ipsecgw" => who.push(("ipsecgw".into(), Some(bin.clone()))),
            "strongswan" => who.push(("strongSwan".into(), None)),
            other => panic!("unknown responder {other}"),
        }
    }
    if let Some(b) = &a.before {
        who.insert(1, ("ipsecgw-before".into(), Some(b.clone())));
    }
    // (IKE proposal, flood): the clean and flooded MODP-1024 runs, then a modern group clean.
    let mut plan: Vec<(String, u64)> = vec![];
    for (i, g) in a.groups.iter().enumerate() {
        let prf = if g == "modp1024" { "sha1" } else { "sha256" };
        let ike = format!("aes256-{prf}-{g}");
        plan.push((ike.clone(), 0));
        if i == 0 && a.flood_pps > 0 {
            plan.push((ike, a.flood_pps));
        }
    }
    for (ike, flood) in &plan {
        for (label, path) in &who {
            if run::STOP.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let resp = match path {
                Some(p) => responder::start_ipsecgw(&mut lab, p, label, ike, esp),
                None => responder::start_charon(&mut lab, ike, esp),
            };
            let peers = match (path, a.swan_peers) {
                (None, Some(n)) => n,
                _ => a.peers,
            };
            let cfg = FleetConfig {
                peers,
                concurrency: a.concurrency,
                addresses: a.addresses.unwrap_or(peers),
                ike: ike.clone(),
                esp: esp.into(),
                psk: PSK.into(),
                responder: common::RIGHT_UL.parse::<Ipv4Addr>().expect("address"),
                give_up: Duration::from_secs(30),
                ike_only: path.is_none(),
            };
            eprintln!("== {label} {ike} flood={flood} peers={peers}");
            let o = run::measure(&lab, &resp, &cfg, *flood);
            eprintln!("{}", row(&o));
            outcomes.push(o);
            lab.stop(resp.pid);
        }
    }
    println!(
        "\n{} peers, concurrency {}, load average {} before / {} after; {} cores\n",
        a.peers,
        a.concurrency,
        load_before,
        load_average(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| responder | IKE | run | done | wall s | handshakes/s | responder CPU s | handshakes/s per core | RSS MiB before → after | KiB per SA | RSS peak MiB | p50/p99 ms | cookies to legit peers | flood (answers seen) | responder's counters |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for o in &outcomes {
        println!("{}", row(o));
    }
    ratios(&outcomes);
    if let Some(p) = &a.json {
        std::fs::write(p, json(&outcomes)).expect("write JSON");
    }
}

fn find<'a>(os: &'a [Outcome], label: &str, ike: &str, flood: bool) -> Option<&'a Outcome> {
    os.iter()
        .find(|o| o.label == label && o.ike == ike && (o.flood_pps > 0) == flood)
}

/// ipsecgw / strongSwan (and ipsecgw / ipsecgw-before) for each run measured for both.
fn ratios(os: &[Outcome]) {
    println!("\n| ratio | IKE | run | handshakes/s per core | handshakes/s | KiB per SA | flooded rate / clean rate |");
    println!("|---|---|---|---|---|---|---|");
    for other in ["strongSwan", "ipsecgw-before"] {
        for o in os.iter().filter(|o| o.label == "ipsecgw") {
            let flood = o.flood_pps > 0;
            let Some(p) = find(os, other, &o.ike, flood) else {
                continue;
            };
            let frac = |x: &Outcome| {
                find(os, &x.label, &x.ike, false).map(|c| x.rate() / c.rate().max(1e-9))
            };
            let fr = match (flood, frac(o), frac(p)) {
                (true, Some(a), Some(b)) => format!("{a:.2} vs {b:.2}"),
                _ => "-".into(),
            };
            println!(
                "| ipsecgw / {other} | {} | {} | {:.2} | {:.2} | {:.2} | {fr} |",
                o.ike,
                if flood { "flood" } else { "clean" },
                o.per_core() / p.per_core().max(1e-9),
                o.rate() / p.rate().max(1e-9),
                o.kib_per_sa() / p.kib_per_sa().max(1e-9),
            );
        }
    }
}

fn json(os: &[Outcome]) -> String {
    let v: Vec<serde_json::Value> = os
        .iter()
        .map(|o| {
            serde_json::json!({
                "responder": o.label, "ike": o.ike, "flood_pps": o.flood_pps,
                "peers": o.peers, "completed": o.fleet.completed, "failed": o.fleet.failed,
                "wall_secs": o.fleet.elapsed.as_secs_f64(), "handshakes_per_sec": o.rate(),
                "responder_cpu_secs": o.cpu_secs, "handshakes_per_core_sec": o.per_core(),
                "rss_before_kib": o.rss_before_kib, "rss_after_kib": o.rss_after_kib,
                "rss_peak_kib": o.rss_peak_kib, "kib_per_sa": o.kib_per_sa(),
                "cookies_to_legit": o.fleet.cookies_received,
                "flood_sent": o.flood.as_ref().map(|f| f.sent),
                "flood_cookie_answers": o.flood.as_ref().map(|f| f.cookie_answers),
                "responder_counters": o.counters,
            })
        })
        .collect();
    serde_json::to_string_pretty(&v).unwrap_or_default()
}
