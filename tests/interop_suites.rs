//! Every algorithm of the Azure VPN gateway's custom policy table and of strongSwan's default
//! proposal, negotiated with a real strongSwan 5.9.8 (charon + kernel-libipsec) in both roles,
//! with traffic through each tunnel, a CHILD SA rekey with PFS in every group and an IKE SA
//! rekey in every group, from either end.
//!
//! One namespace pair, one charon and one ipsecgw carry all of it: each suite runs twice
//! (ipsecgw initiates, strongSwan initiates), each run on its own pair of underlay addresses
//! (so each side picks its connection by address), its own traffic selectors and its own TUN.
//! Assertions read what strongSwan reports (`swanctl --list-sas`) next to `ipsecgw status`.

mod common;
use common::*;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// One suite: the proposals (both ends configure exactly these) and what strongSwan must
/// report for the IKE SA and, after the PFS rekey, for the CHILD SA.
struct Suite {
    ike: &'static str,
    esp: &'static str,
    swan_ike: &'static str,
    swan_esp: &'static str,
}

const fn s(
    ike: &'static str,
    esp: &'static str,
    swan_ike: &'static str,
    swan_esp: &'static str,
) -> Suite {
    Suite {
        ike,
        esp,
        swan_ike,
        swan_esp,
    }
}

/// Together: every encryption, integrity, PRF and KE transform ipsecgw implements, in IKE and
/// in ESP. The ESP proposal carries the suite's group, used for PFS on the rekey.
const SUITES: [Suite; 12] = [
    s(
        "aes128-sha256-ecp256",
        "aes128gcm16-ecp256",
        "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/ECP_256",
        "ESP:AES_GCM_16-128/ECP_256",
    ),
    s(
        "aes192-sha384-ecp384",
        "aes192-sha384-ecp384",
        "AES_CBC-192/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384",
        "ESP:AES_CBC-192/HMAC_SHA2_384_192/ECP_384",
    ),
    s(
        "aes256-sha512-ecp521",
        "aes256-sha512-ecp521",
        "AES_CBC-256/HMAC_SHA2_512_256/PRF_HMAC_SHA2_512/ECP_521",
        "ESP:AES_CBC-256/HMAC_SHA2_512_256/ECP_521",
    ),
    s(
        "aes256gcm16-prfsha384-curve25519",
        "aes256gcm16-curve25519",
        "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519",
        "ESP:AES_GCM_16-256/CURVE_25519",
    ),
    s(
        "aes128gcm16-prfsha256-modp3072",
        "aes192gcm16-modp3072",
        "AES_GCM_16-128/PRF_HMAC_SHA2_256/MODP_3072",
        "ESP:AES_GCM_16-192/MODP_3072",
    ),
    s(
        "chacha20poly1305-prfsha256-modp4096",
        "chacha20poly1305-modp4096",
        "CHACHA20_POLY1305/PRF_HMAC_SHA2_256/MODP_4096",
        "ESP:CHACHA20_POLY1305/MODP_4096",
    ),
    s(
        "aes192gcm12-prfsha512-modp2048s256",
        "aes256gcm12-modp2048s256",
        "AES_GCM_12-192/PRF_HMAC_SHA2_512/MODP_2048_256",
        "ESP:AES_GCM_12-256/MODP_2048_256",
    ),
    s(
        "aes128gcm8-prfsha1-modp1536",
        "aes128gcm8-modp1536",
        "AES_GCM_8-128/PRF_HMAC_SHA1/MODP_1536",
        "ESP:AES_GCM_8-128/MODP_1536",
    ),
    s(
        "aes128-md5-prfmd5-modp768",
        "null-md5-modp768",
        "AES_CBC-128/HMAC_MD5_96/PRF_HMAC_MD5/MODP_768",
        "ESP:NULL/HMAC_MD5_96/MODP_768",
    ),
    s(
        "3des-aesxcbc-modp1024",
        "3des-aesxcbc-modp1024",
        "3DES_CBC/AES_XCBC_96/PRF_AES128_XCBC/MODP_1024",
        "ESP:3DES_CBC/AES_XCBC_96/MODP_1024",
    ),
    s(
        "aes256-sha1-modp2048",
        "null-sha1-modp2048",
        "AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048",
        "ESP:NULL/HMAC_SHA1_96/MODP_2048",
    ),
    s(
        "aes192gcm16-prfsha256-modp1024",
        "aes128-sha256-modp1024",
        "AES_GCM_16-192/PRF_HMAC_SHA2_256/MODP_1024",
        "ESP:AES_CBC-128/HMAC_SHA2_256_128/MODP_1024",
    ),
];

/// One connection of the run: suite `suite`, initiated by ipsecgw (`we_initiate`) or by
/// strongSwan. Index `n` (1-based) picks its addresses, selectors and TUN.
struct Run {
    n: usize,
    suite: usize,
    we_initiate: bool,
}

impl Run {
    fn name(&self) -> String {
        format!("{}{}", if self.we_initiate { "i" } else { "r" }, self.suite)
    }
    fn left_ul(&self) -> String {
        format!("192.0.2.{}", 10 + self.n)
    }
    fn right_ul(&self) -> String {
        format!("192.0.2.{}", 100 + self.n)
    }
    fn left_lan(&self) -> String {
        format!("10.1.{}.1", self.n)
    }
    fn right_lan(&self) -> String {
        format!("10.2.{}.1", self.n)
    }
    fn suite(&self) -> &'static Suite {
        &SUITES[self.suite]
    }
}

fn runs() -> Vec<Run> {
    let mut v = Vec::new();
    for we_initiate in [true, false] {
        for suite in 0..SUITES.len() {
            v.push(Run {
                n: v.len() + 1,
                suite,
                we_initiate,
            });
        }
    }
    v
}

/// ipsecgw's config: one connection per run, each with its own TUN routing the peer's LAN.
fn gw_config(lab: &Lab, runs: &[Run]) -> String {
    let mut c = format!(
        "[global]\ncontrol_socket = \"{}\"\nlog_level = \"debug\"\nretransmit_timeout = \"2s\"\nretransmit_tries = 4\n",
        lab.control_socket(Side::Left).display()
    );
    for r in runs {
        let su = r.suite();
        let _ = write!(
            c,
            r#"
[[connection]]
name = "{name}"
local_addrs = ["{lu}"]
remote_addrs = ["{ru}"]
psk = "{PSK}"
ike_proposals = ["{ike}"]
start_action = "{start}"

[[connection.children]]
name = "net"
local_ts = ["10.1.{n}.0/24"]
remote_ts = ["10.2.{n}.0/24"]
esp_proposals = ["{esp}"]

[connection.tunnel]
interface = "su{n}"
address = "10.255.{n}.1/32"
mtu = 1400
routes = ["10.2.{n}.0/24"]
"#,
            name = r.name(),
            lu = r.left_ul(),
            ru = r.right_ul(),
            ike = su.ike,
            esp = su.esp,
            start = if r.we_initiate { "start" } else { "none" },
            n = r.n,
        );
    }
    c
}

/// strongSwan's swanctl.conf: the mirror image, one connection (and child) per run.
fn swan_config(runs: &[Run]) -> String {
    let mut c = String::from("connections {\n");
    for r in runs {
        let su = r.suite();
        let _ = write!(
            c,
            r#"    {name} {{
        version = 2
        local_addrs = {ru}
        remote_addrs = {lu}
        proposals = {ike}
        encap = no
        mobike = no
        rekey_time = 4h
        local {{
            auth = psk
        }}
        remote {{
            auth = psk
        }}
        children {{
            c{name} {{
                mode = tunnel
                local_ts = 10.2.{n}.0/24
                remote_ts = 10.1.{n}.0/24
                esp_proposals = {esp}
                start_action = none
                close_action = none
                rekey_time = 1h
            }}
        }}
    }}
"#,
            name = r.name(),
            lu = r.left_ul(),
            ru = r.right_ul(),
            ike = su.ike,
            esp = su.esp,
            n = r.n,
        );
    }
    let _ = write!(
        c,
        "}}\nsecrets {{\n    ike-all {{\n        secret = \"{PSK}\"\n    }}\n}}\n"
    );
    c
}

/// strongSwan's `--list-sas` block of one IKE SA (its lines up to the next IKE SA).
fn swan_block(sas: &str, conn: &str) -> Option<String> {
    let head = format!("{conn}: #");
    let start = sas.lines().position(|l| l.starts_with(&head))?;
    let block: Vec<&str> = sas
        .lines()
        .skip(start)
        .enumerate()
        .take_while(|(i, l)| *i == 0 || l.starts_with(' '))
        .map(|(_, l)| l)
        .collect();
    Some(block.join("\n"))
}

/// strongSwan's names for ipsecgw's: `AES_CBC-128` for `AES_CBC_128`, `AES_GCM_8-128` for
/// `AES_GCM_8_128` (the key size after a dash); the other names are the same.
fn swan_name(ours: &str) -> String {
    for p in ["AES_CBC_", "AES_GCM_8_", "AES_GCM_12_", "AES_GCM_16_"] {
        if let Some(bits) = ours.strip_prefix(p) {
            return format!("{}-{bits}", p.trim_end_matches('_'));
        }
    }
    ours.to_string()
}

/// (spi_in, spi_out) of every CHILD SA ipsecgw reports for the run's connection.
fn child_spis(st: &serde_json::Value, r: &Run) -> Vec<(String, String)> {
    let Some(c) = conn_status(st, &r.name()) else {
        return Vec::new();
    };
    c["children"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
                    (s("spi_in"), s("spi_out"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn conn_status<'a>(st: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    st["connections"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
}

/// Waits until every run is established on both sides with the suite's algorithms: the IKE
/// line and the CHILD's cipher as strongSwan prints them, and ipsecgw's status naming the same.
fn wait_all_established(lab: &Lab, runs: &[&Run]) {
    let mut missing = Vec::new();
    let ok = wait_for(Duration::from_secs(60), || {
        let sas = lab.list_sas(Side::Right);
        let st = lab.status_json(Side::Left);
        missing = runs
            .iter()
            .filter(|r| {
                let up = swan_block(&sas, &r.name())
                    .is_some_and(|b| b.contains("ESTABLISHED") && b.contains("INSTALLED"));
                let ours = conn_status(&st, &r.name()).is_some_and(|c| {
                    c["state"] == "established"
                        && c["children"].as_array().is_some_and(|a| !a.is_empty())
                });
                !(up && ours)
            })
            .map(|r| r.name())
            .collect();
        missing.is_empty().then_some(())
    });
    assert!(
        ok.is_some(),
        "not established: {missing:?}\nstrongSwan:\n{}",
        lab.list_sas(Side::Right)
    );
    let sas = lab.list_sas(Side::Right);
    let st = lab.status_json(Side::Left);
    for r in runs {
        let su = r.suite();
        let block = swan_block(&sas, &r.name()).unwrap_or_default();
        assert!(
            block.contains(su.swan_ike),
            "{}: strongSwan does not report IKE {}:\n{block}",
            r.name(),
            su.swan_ike
        );
        // IKE_AUTH carries no KE: the first CHILD SA has no group, the rekey adds it.
        let esp_no_dh = su.swan_esp.rsplit_once('/').map_or(su.swan_esp, |x| x.0);
        assert!(
            block.contains(&format!("{esp_no_dh}\n")) || block.contains(&format!("{esp_no_dh},")),
            "{}: strongSwan does not report {esp_no_dh}:\n{block}",
            r.name()
        );
        let c = conn_status(&st, &r.name()).expect("connection in status");
        let ike = &c["ike"];
        let ours: Vec<String> = [&ike["encr"], &ike["integ"], &ike["prf"], &ike["dh"]]
            .iter()
            .filter_map(|v| v.as_str())
            .map(swan_name)
            .collect();
        assert_eq!(ours.join("/"), su.swan_ike, "{}: ipsecgw status", r.name());
        let child = &c["children"][0];
        let ours: Vec<String> = [&child["encr"], &child["integ"]]
            .iter()
            .filter_map(|v| v.as_str())
            .map(swan_name)
            .collect();
        assert_eq!(
            format!("ESP:{}", ours.join("/")),
            esp_no_dh,
            "{}: ipsecgw status",
            r.name()
        );
        // Our SPIs are strongSwan's, crosswise.
        for spi in [&child["spi_in"], &child["spi_out"]] {
            let spi = spi.as_str().unwrap_or("?");
            assert!(block.contains(spi), "{}: SPI {spi}:\n{block}", r.name());
        }
    }
}

/// A ping each way through every tunnel; the CHILD counters on both ends must have moved.
fn ping_all(lab: &Lab, runs: &[Run]) {
    for r in runs {
        let ok = wait_for(Duration::from_secs(10), || {
            lab.ping(Side::Left, &r.left_lan(), &r.right_lan(), 1)
                .then_some(())
        });
        assert!(ok.is_some(), "{}: no ping left -> right", r.name());
        assert!(
            lab.ping(Side::Right, &r.right_lan(), &r.left_lan(), 2),
            "{}: no ping right -> left",
            r.name()
        );
    }
    let st = lab.status_json(Side::Left);
    for r in runs {
        let children = &conn_status(&st, &r.name()).expect("status")["children"];
        let moved = children.as_array().is_some_and(|a| {
            a.iter().any(|c| {
                c["packets_in"].as_u64().unwrap_or(0) >= 3
                    && c["packets_out"].as_u64().unwrap_or(0) >= 3
                    && c["auth_failures"] == 0
            })
        });
        assert!(moved, "{}: {children}", r.name());
    }
}

/// (spi_i, spi_r) of the IKE SA ipsecgw reports for the run's connection.
fn ike_spis(st: &serde_json::Value, r: &Run) -> (String, String) {
    let ike = &conn_status(st, &r.name()).expect("status")["ike"];
    let s = |k: &str| ike[k].as_str().unwrap_or("").to_string();
    (s("spi_i"), s("spi_r"))
}

/// Rekeys every run's CHILD SA (with `ike`, its IKE SA) from the end that did not initiate
/// it: strongSwan rekeys what ipsecgw initiated (ipsecgw answers the KE), ipsecgw what
/// strongSwan initiated. Waits until `rekeyed(run, snapshot before, strongSwan's block,
/// ipsecgw status)` holds for every run, then pings through every tunnel again.
fn rekey_all<S>(
    lab: &Lab,
    runs: &[Run],
    ike: bool,
    snapshot: impl Fn(&serde_json::Value, &Run) -> S,
    rekeyed: impl Fn(&Run, &S, &str, &serde_json::Value) -> bool,
) {
    let st = lab.status_json(Side::Left);
    let before: Vec<S> = runs.iter().map(|r| snapshot(&st, r)).collect();
    for r in runs {
        if r.we_initiate {
            let arg = match ike {
                true => format!("--rekey --ike {}", r.name()),
                false => format!("--rekey --child c{}", r.name()),
            };
            let (ok, out) = lab.swanctl(Side::Right, &arg, "");
            assert!(ok, "{}: swanctl {arg}: {out}", r.name());
        } else {
            let arg = format!("rekey {}{}", if ike { "--ike " } else { "" }, r.name());
            let o = lab.ipsecgw_cli(Side::Left, &arg);
            assert!(
                o.status.success(),
                "ipsecgw {arg}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    let mut pending = Vec::new();
    let done = wait_for(Duration::from_secs(60), || {
        let sas = lab.list_sas(Side::Right);
        let st = lab.status_json(Side::Left);
        pending = (runs.iter().zip(&before))
            .filter(|(r, b)| !rekeyed(r, b, &swan_block(&sas, &r.name()).unwrap_or_default(), &st))
            .map(|(r, _)| r.name())
            .collect();
        pending.is_empty().then_some(())
    });
    assert!(
        done.is_some(),
        "{} rekey not seen for {pending:?}\nstrongSwan:\n{}",
        if ike { "IKE" } else { "PFS" },
        lab.list_sas(Side::Right)
    );
    ping_all(lab, runs);
}

#[test]
fn every_suite_both_roles_traffic_and_rekeys() {
    if !netns_env_ok(&["swanctl", "/usr/lib/ipsec/charon"]) {
        return;
    }
    let t0 = Instant::now();
    let mut lab = Lab::new("suites");
    let runs = runs();
    for r in &runs {
        must(&format!(
            "ip -n {} addr add {}/24 dev ul-l && ip -n {} addr add {}/24 dev lan0",
            lab.ns(Side::Left),
            r.left_ul(),
            lab.ns(Side::Left),
            r.left_lan()
        ));
        must(&format!(
            "ip -n {} addr add {}/24 dev ul-r && ip -n {} addr add {}/24 dev lan0",
            lab.ns(Side::Right),
            r.right_ul(),
            lab.ns(Side::Right),
            r.right_lan()
        ));
    }
    lab.start_charon(Side::Right, &swan_config(&runs));
    // kernel-libipsec's ipsec0: the left LANs go into it, its policies pick the SA.
    let routed = wait_for(Duration::from_secs(5), || {
        lab.exec(Side::Right, "ip route replace 10.1.0.0/16 dev ipsec0")
            .status
            .success()
            .then_some(())
    });
    assert!(routed.is_some(), "cannot route via strongSwan's ipsec0");
    let gw = lab.start_ipsecgw(Side::Left, &gw_config(&lab, &runs));
    // ipsecgw brings up its half by itself; then strongSwan initiates its half, one by one
    // (concurrent vici initiates stall this charon for its 30 s job timeout).
    let (ours, theirs): (Vec<&Run>, Vec<&Run>) = runs.iter().partition(|r| r.we_initiate);
    wait_all_established(&lab, &ours);
    for r in &theirs {
        let (ok, out) = lab.swanctl(
            Side::Right,
            &format!("--initiate --child c{} --timeout 20", r.name()),
            "",
        );
        assert!(ok, "strongSwan could not initiate {}:\n{out}", r.name());
    }
    wait_all_established(&lab, &runs.iter().collect::<Vec<_>>());
    let up_secs = t0.elapsed().as_secs_f64();
    ping_all(&lab, &runs);

    // CHILD rekey with PFS in the suite's group. Done when ipsecgw shows a new CHILD SA whose
    // SPIs strongSwan shows with the group; the new SAs carry traffic too.
    rekey_all(&lab, &runs, false, child_spis, |r, before, swan, st| {
        let esp = r.suite().swan_esp;
        let pfs = swan.contains(&format!("{esp}\n")) || swan.contains(&format!("{esp},"));
        let new = child_spis(st, r).into_iter().any(|(i, o)| {
            !before.contains(&(i.clone(), o.clone())) && swan.contains(&i) && swan.contains(&o)
        });
        pfs && new
    });
    // IKE SA rekey, KE in the suite's group; the CHILD SAs move to the new IKE SA and keep
    // carrying traffic.
    rekey_all(&lab, &runs, true, ike_spis, |r, old, swan, st| {
        let new = ike_spis(st, r);
        new != *old
            && swan.contains(&new.0)
            && swan.contains(&new.1)
            && swan.contains("ESTABLISHED")
            && swan.contains(r.suite().swan_ike)
    });
    let log = lab.log_of(gw);
    assert!(!log.contains("panicked"), "ipsecgw panicked:\n{log}");
    assert!(lab.is_running(gw), "ipsecgw exited");
    eprintln!(
        "{} suites x 2 roles: established in {up_secs:.1} s, whole test {:.1} s",
        SUITES.len(),
        t0.elapsed().as_secs_f64()
    );
}
