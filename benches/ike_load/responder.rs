//! The responder under test, in the lab's right namespace: the real `ipsecgw` binary or
//! strongSwan's charon (kernel-libipsec), each with a hub connection that accepts any peer
//! address and any identity proven by one PSK. Also what the kernel knows about its process:
//! CPU time and resident memory.

use super::fleet::{HUB_NET, INNER_NET};
use crate::common::{wait_for, Lab, Side};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

pub const PSK: &str = "load-psk-0123456789abcdef";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ipsecgw,
    Strongswan,
}

pub struct Responder {
    pub kind: Kind,
    pub pid: u32,
    /// Label in the report (e.g. "ipsecgw", "ipsecgw-before", "strongSwan").
    pub label: String,
}

/// An ipsecgw hub config: one connection for everyone, no DPD (the generator stops talking
/// once its handshakes are done), default cookie threshold and half-open caps.
pub fn ipsecgw_config(lab: &Lab, ike: &str, esp: &str) -> String {
    format!(
        r#"[global]
control_socket = "{sock}"
log_level = "info"

[[connection]]
name = "hub"
local_addrs = ["{me}"]
remote_addrs = ["%any"]
local_id = "{me}"
psk = "{PSK}"
ike_proposals = ["{ike}"]
start_action = "none"
dpd_delay = "0s"

[[connection.children]]
name = "spokes"
local_ts = ["{HUB_NET}"]
remote_ts = ["{INNER_NET}"]
esp_proposals = ["{esp}"]
"#,
        sock = lab.control_socket(Side::Right).display(),
        me = Side::Right.ul(),
    )
}

pub fn start_ipsecgw(lab: &mut Lab, bin: &Path, label: &str, ike: &str, esp: &str) -> Responder {
    let d = lab.side_dir(Side::Right);
    let path = d.join("ipsecgw.toml");
    fs::write(&path, ipsecgw_config(lab, ike, esp)).expect("write config");
    let sock = lab.control_socket(Side::Right);
    let _ = fs::remove_file(&sock);
    // info: one line per established SA, as an operator would run it.
    let pid = lab.spawn(
        Side::Right,
        label,
        &format!(
            "env RUST_LOG=info {} run --config {}",
            bin.display(),
            path.display()
        ),
    );
    let up = wait_for(Duration::from_secs(10), || sock.exists().then_some(()));
    assert!(up.is_some(), "{label} did not open its control socket");
    Responder {
        kind: Kind::Ipsecgw,
        pid,
        label: label.into(),
    }
}

/// strongswan.conf: the tests' verified one (tests/common), with its test-only cookie and
/// block thresholds taken out (so charon's defaults hold: cookie_threshold 10,
/// block_threshold 5, 16 threads), logging at level 0, and a larger IKE SA table (the
/// default of one bucket is meant for a few SAs; strongSwan's docs advise more for many).
fn strongswan_conf(vici: &Path, log: &Path) -> String {
    let conf = crate::common::strongswan_conf(vici, log);
    let mut out = String::new();
    for line in conf.lines() {
        let t = line.trim_start();
        if t.starts_with("cookie_threshold")
            || t.starts_with("block_threshold")
            || t.starts_with('#')
        {
            continue;
        }
        let quiet = ["ike = ", "cfg = ", "knl = ", "enc = ", "esp = "];
        if let Some(k) = quiet.iter().find(|k| t.starts_with(**k)) {
            out.push_str(&format!("            {k}0\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if t == "charon {" {
            out.push_str("    ikesa_table_size = 32768\n    ikesa_table_segments = 16\n");
        }
    }
    out
}

fn swanctl_conf(ike: &str, esp: &str) -> String {
    format!(
        r#"connections {{
    hub {{
        version = 2
        local_addrs = {me}
        remote_addrs = %any
        proposals = {ike}
        mobike = no
        local {{
            auth = psk
            id = {me}
        }}
        remote {{
            auth = psk
            id = %any
        }}
        children {{
            spokes {{
                # kernel-libipsec fails to install the SPD of narrower selectors here
                # ("unable to install IPsec policies"); 0/0 narrows to what each peer offers.
                local_ts = 0.0.0.0/0
                remote_ts = 0.0.0.0/0
                esp_proposals = {esp}
            }}
        }}
    }}
}}
secrets {{
    ike-any {{
        secret = "{PSK}"
    }}
}}
"#,
        me = Side::Right.ul()
    )
}

pub fn start_charon(lab: &mut Lab, ike: &str, esp: &str) -> Responder {
    let d = lab.side_dir(Side::Right);
    fs::create_dir_all(d.join("varrun")).expect("varrun");
    let vici = d.join("charon.vici");
    let conf = d.join("strongswan.conf");
    let log = d.join("charon.log");
    let _ = fs::remove_file(&vici);
    fs::write(&conf, strongswan_conf(&vici, &log)).expect("strongswan.conf");
    fs::write(d.join("swanctl.conf"), swanctl_conf(ike, esp)).expect("swanctl.conf");
    let pid = lab.spawn(
        Side::Right,
        "charon",
        &format!(
            "sh -c 'mount --bind {} /run && exec env STRONGSWAN_CONF={} /usr/lib/ipsec/charon'",
            d.join("varrun").display(),
            conf.display()
        ),
    );
    lab.add_log(log);
    let up = wait_for(Duration::from_secs(15), || vici.exists().then_some(()));
    assert!(up.is_some(), "charon did not create its vici socket");
    let (ok, out) = lab.swanctl(
        Side::Right,
        "--load-all --file",
        &d.join("swanctl.conf").display().to_string(),
    );
    assert!(ok, "swanctl --load-all failed: {out}");
    Responder {
        kind: Kind::Strongswan,
        pid,
        label: "strongSwan".into(),
    }
}

/// The daemon's PID: `ip netns exec` and the shells exec into it, so the spawned PID is it.
pub fn check_pid(r: &Responder) {
    let comm = fs::read_to_string(format!("/proc/{}/comm", r.pid)).unwrap_or_default();
    let want = match r.kind {
        Kind::Ipsecgw => "ipsecgw",
        Kind::Strongswan => "charon",
    };
    assert_eq!(comm.trim(), want, "PID {} is not {want}", r.pid);
}

/// utime + stime of the whole process (all threads), in seconds.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ")" that ends comm: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// VmRSS in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Numeric fields of a JSON document, by key, wherever they are (the engine counters in
/// the status document's `ike_engine`: cookies_sent, half_open_dropped, half_open).
fn numbers(v: &serde_json::Value, out: &mut BTreeMap<String, u64>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if let Some(n) = x.as_u64() {
                    *out.entry(k.clone()).or_default() += n;
                } else {
                    numbers(x, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| numbers(x, out)),
        _ => {}
    }
}

/// What the responder itself reports. ipsecgw: counters from `status --json`, plus the
/// number of "CHILD_SA ... established" lines of its log (one per handshake at info level);
/// strongSwan: `swanctl --stats`.
pub fn counters(lab: &Lab, r: &Responder) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    match r.kind {
        Kind::Ipsecgw => {
            let o = lab.ipsecgw_cli(Side::Right, "status --json");
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&o.stdout) {
                let mut all = BTreeMap::new();
                numbers(&v, &mut all);
                // The engine's attack counters (status `ike_engine`, schema v1).
                for key in [
                    "cookies_sent",
                    "cookies_sent_by_gate",
                    "half_open_dropped",
                    "half_open",
                ] {
                    if let Some(n) = all.get(key) {
                        out.insert(key.to_string(), *n);
                    }
                }
            }
            let log = lab.log_of(r.pid);
            let up = log
                .lines()
                .filter(|l| l.contains("CHILD_SA") && l.contains("established"))
                .count();
            out.insert("log_child_sa_established".into(), up as u64);
        }
        Kind::Strongswan => {
            if std::env::var_os("IKE_LOAD_DEBUG").is_some() {
                let log = lab.side_dir(Side::Right).join("charon.log");
                eprintln!("{}", fs::read_to_string(log).unwrap_or_default());
            }
            let (_, s) = lab.swanctl(Side::Right, "--stats", "");
            // "IKE_SAs: 10000 total, 0 half-open"
            if let Some(l) = s.lines().find(|l| l.trim_start().starts_with("IKE_SAs:")) {
                let nums: Vec<u64> = l
                    .split(|c: char| !c.is_ascii_digit())
                    .filter_map(|x| x.parse().ok())
                    .collect();
                if let [total, half_open, ..] = nums[..] {
                    out.insert("ike_sas".into(), total);
                    out.insert("half_open".into(), half_open);
                }
            }
        }
    }
    out
}
