//! The operator's view of a running gateway, in network namespaces: the control socket
//! (status of down connections, initiate, rekey, terminate, errors), Prometheus metrics
//! scraped over HTTP, SIGHUP reloads, and SIGTERM cleaning up routes and addresses.

mod common;
use common::*;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

fn scrape(lab: &Lab, side: Side, addr: &str) -> String {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    ipsecgw::routing::netns::in_netns(lab.ns(side), move || {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
            .expect("connect to metrics");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .expect("netns")
}

/// The metric names the Grafana dashboard's queries use.
fn dashboard_metrics() -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/grafana/ipsecgw-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let re = regex::Regex::new(r"ipsecgw_[a-z_]+").unwrap();
    let mut names: Vec<String> = dash["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .flat_map(|e| {
            re.find_iter(&e)
                .map(|m| m.as_str().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 10, "{names:?}");
    names
}

#[test]
fn control_socket_and_metrics_on_a_running_gateway() {
    if !netns_env_ok(&[]) {
        return;
    }
    let mut lab = Lab::new("ops");
    let cfg = GwConf::tunneled(Side::Right).render(&lab);
    lab.start_ipsecgw(Side::Right, &cfg);
    let cfg = GwConf::tunneled(Side::Left).render(&lab).replace(
        "[global]\n",
        "[global]\nmetrics_listen = \"127.0.0.1:9813\"\n",
    );
    lab.start_ipsecgw(Side::Left, &cfg);

    // The socket is root-only.
    let mode = std::fs::metadata(lab.control_socket(Side::Left))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // A configured connection shows up while it is down.
    let c = lab.conn(Side::Left);
    assert_eq!(c["name"], "gw");
    assert_eq!(c["state"], "down");
    assert!(lab.cli_ok(Side::Left, "status").contains("gw"));

    lab.cli_ok(Side::Left, "initiate gw");
    let up = lab.wait_state(Side::Left, "established");
    assert!(lab.ping(Side::Left, "10.1.0.1", "10.2.0.1", 3));
    assert_eq!(
        up["children"][0]["local_ts"],
        serde_json::json!(["0.0.0.0/0"]),
        "{up}"
    );
    assert_eq!(
        up["children"][0]["remote_ts"],
        serde_json::json!(["0.0.0.0/0"]),
        "{up}"
    );
    let spi_child = up["children"][0]["spi_in"].as_str().unwrap().to_string();
    let spi_ike = up["ike"]["spi_i"].as_str().unwrap().to_string();

    // CHILD rekey: new SPIs, traffic still flows, connection counters keep counting.
    let before = lab.conn(Side::Left)["counters"]["packets_in"]
        .as_u64()
        .unwrap();
    lab.cli_ok(Side::Left, "rekey gw --child");
    let rekeyed = wait_for(Duration::from_secs(10), || {
        let c = lab.conn(Side::Left);
        let spis: Vec<String> = c["children"]
            .as_array()?
            .iter()
            .map(|ch| ch["spi_in"].as_str().unwrap_or("").to_string())
            .collect();
        (!spis.is_empty() && !spis.contains(&spi_child)).then_some(c)
    });
    assert!(
        rekeyed.is_some(),
        "CHILD SA was not rekeyed: {}",
        lab.conn(Side::Left)
    );
    assert!(
        lab.ping(Side::Left, "10.1.0.1", "10.2.0.1", 3),
        "no traffic after CHILD rekey"
    );
    let after = lab.conn(Side::Left)["counters"]["packets_in"]
        .as_u64()
        .unwrap();
    assert!(
        after >= before + 3,
        "connection counters did not survive the rekey: {before} -> {after}"
    );

    // IKE rekey: new IKE SPIs, CHILD SAs stay.
    lab.cli_ok(Side::Left, "rekey gw --ike");
    let ike = wait_for(Duration::from_secs(10), || {
        let c = lab.conn(Side::Left);
        (c["state"] == "established" && c["ike"]["spi_i"].as_str() != Some(&spi_ike)).then_some(c)
    });
    assert!(
        ike.is_some(),
        "IKE SA was not rekeyed: {}",
        lab.conn(Side::Left)
    );
    assert!(
        lab.ping(Side::Left, "10.1.0.1", "10.2.0.1", 2),
        "no traffic after IKE rekey"
    );

    // Metrics, scraped over HTTP inside the namespace and parsed.
    let m = scrape(&lab, Side::Left, "127.0.0.1:9813");
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    let body = m.split("\r\n\r\n").nth(1).unwrap();
    let mut samples = 0;
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(name.starts_with("ipsecgw_"), "{line}");
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad sample value: {line}"));
        samples += 1;
    }
    assert!(samples > 5, "{body}");
    assert!(
        body.contains("ipsecgw_connection_up{connection=\"gw\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("ipsecgw_rekeys_total{connection=\"gw\",sa=\"child\"} 1"),
        "{body}"
    );
    // Every metric the shipped Grafana dashboard queries is one this daemon exports.
    for name in dashboard_metrics() {
        assert!(
            body.contains(&format!("# TYPE {name} ")),
            "deploy/grafana/ipsecgw-dashboard.json queries {name}, which the daemon does not export"
        );
    }

    // Errors are clear and exit 2.
    let o = lab.ipsecgw_cli(Side::Left, "initiate nosuch");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nosuch"));

    lab.cli_ok(Side::Left, "terminate gw");
    lab.wait_state(Side::Left, "down");
    lab.wait_state(Side::Right, "down");
}

#[test]
fn sighup_reload_and_sigterm_cleanup() {
    if !netns_env_ok(&[]) {
        return;
    }
    let mut lab = Lab::new("sig");
    let mut r = GwConf::tunneled(Side::Right);
    r.esp = "aes256-sha1,aes128-sha1";
    let cfg = r.render(&lab).replace(
        "esp_proposals = [\"aes256-sha1,aes128-sha1\"]",
        "esp_proposals = [\"aes256-sha1\", \"aes128-sha1\"]",
    );
    lab.start_ipsecgw(Side::Right, &cfg);
    let mut l = GwConf::tunneled(Side::Left);
    l.start_action = "start";
    let cfg = l.render(&lab);
    let pid = lab.start_ipsecgw(Side::Left, &cfg);
    let up = lab.wait_state(Side::Left, "established");
    let spi = up["ike"]["spi_i"].as_str().unwrap().to_string();
    let route = String::from_utf8_lossy(&lab.exec(Side::Left, "ip route show 10.2.0.0/24").stdout)
        .into_owned();
    assert!(
        route.contains("dev ipsec30") && route.contains("proto 169"),
        "static route missing: {route}"
    );

    // Unchanged config: SIGHUP keeps the SA.
    lab.reload_ipsecgw(Side::Left, pid, &cfg);
    std::thread::sleep(Duration::from_secs(1));
    let same = lab.conn(Side::Left);
    assert_eq!(
        same["ike"]["spi_i"].as_str(),
        Some(spi.as_str()),
        "unchanged connection was restarted"
    );

    // Changed ESP proposal: the connection restarts with it.
    let mut l2 = GwConf::tunneled(Side::Left);
    l2.start_action = "start";
    l2.esp = "aes128-sha1";
    lab.reload_ipsecgw(Side::Left, pid, &l2.render(&lab));
    let changed = wait_for(Duration::from_secs(15), || {
        let c = lab.conn(Side::Left);
        (c["state"] == "established" && c["children"][0]["encr"] == "AES_CBC_128").then_some(c)
    });
    assert!(
        changed.is_some(),
        "changed connection did not restart: {}",
        lab.conn(Side::Left)
    );
    assert!(lab.ping(Side::Left, "10.1.0.1", "10.2.0.1", 2));

    // SIGTERM: exit 0, SA deleted at the peer, our route and address gone.
    let st = lab.stop(pid).expect("exit status");
    assert!(st.success(), "exit status {st}");
    lab.wait_state(Side::Right, "down");
    let route = String::from_utf8_lossy(&lab.exec(Side::Left, "ip route show proto 169").stdout)
        .into_owned();
    assert!(route.trim().is_empty(), "routes left behind: {route}");
    let addr =
        String::from_utf8_lossy(&lab.exec(Side::Left, "ip addr show 2>&1").stdout).into_owned();
    assert!(!addr.contains("10.255.0.1"), "address left behind: {addr}");
}

/// A responder that names no addresses (`%any` both ways, like a hub) still learns the real
/// local address of each exchange: NAT detection finds no NAT and ESP goes raw.
#[test]
fn wildcard_responder_binds_real_addresses() {
    if !netns_env_ok(&[]) {
        return;
    }
    let mut lab = Lab::new("anyaddr");
    let cfg = GwConf::tunneled(Side::Right)
        .render(&lab)
        .replace("local_addrs = [\"192.0.2.2\"]", "local_addrs = [\"%any\"]")
        .replace(
            "remote_addrs = [\"192.0.2.1\"]",
            "remote_addrs = [\"%any\"]",
        )
        .replace("remote_id = \"192.0.2.1\"\n", "");
    lab.start_ipsecgw(Side::Right, &cfg);
    let mut l = GwConf::tunneled(Side::Left);
    l.start_action = "start";
    let cfg = l.render(&lab);
    lab.start_ipsecgw(Side::Left, &cfg);
    let c = lab.wait_state(Side::Right, "established");
    assert_eq!(c["ike"]["nat_detected"], false, "{c}");
    assert_eq!(c["ike"]["local"], "192.0.2.2:500", "{c}");
    assert_eq!(c["children"][0]["encap"], "none", "{c}");
    assert!(lab.ping(Side::Left, "10.1.0.1", "10.2.0.1", 3));
}

/// `ipsecgw run` failing at run time says what and where, and exits 2; a bad config exits 1.
#[test]
fn run_errors_exit_codes_and_messages() {
    if !netns_env_ok(&[]) {
        return;
    }
    let lab = Lab::new("runerr");
    let bin = env!("CARGO_BIN_EXE_ipsecgw");
    let dir = lab.side_dir(Side::Left);
    // An underlay address this host does not have.
    let cfg = GwConf::new(Side::Left).render(&lab).replace(
        "local_addrs = [\"192.0.2.1\"]",
        "local_addrs = [\"192.0.2.99\"]",
    );
    std::fs::write(dir.join("bad-addr.toml"), cfg).unwrap();
    let o = lab.exec(
        Side::Left,
        &format!(
            "timeout 10 {bin} run --config {}",
            dir.join("bad-addr.toml").display()
        ),
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot bind UDP 192.0.2.99:500"), "{err}");
    // A config error is a usage error, with file:line.
    std::fs::write(dir.join("bad.toml"), "[global]\nlog_level = \"loud\"\n").unwrap();
    let o = lab.exec(
        Side::Left,
        &format!(
            "timeout 10 {bin} run --config {}",
            dir.join("bad.toml").display()
        ),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.toml:2:"));
}

/// IKE on a port other than 500 (`local_port` / `remote_port`), e.g. behind a port forward.
#[test]
fn ike_on_a_custom_port() {
    if !netns_env_ok(&[]) {
        return;
    }
    let mut lab = Lab::new("port");
    let ports = "encap = \"auto\"\nlocal_port = 1500\nremote_port = 1500";
    let cfg = GwConf::tunneled(Side::Right)
        .render(&lab)
        .replace("encap = \"auto\"", ports);
    lab.start_ipsecgw(Side::Right, &cfg);
    let mut l = GwConf::tunneled(Side::Left);
    l.start_action = "start";
    let cfg = l.render(&lab).replace("encap = \"auto\"", ports);
    lab.start_ipsecgw(Side::Left, &cfg);
    let c = lab.wait_state(Side::Left, "established");
    assert_eq!(c["ike"]["local"], "192.0.2.1:1500", "{c}");
    assert_eq!(c["ike"]["remote"], "192.0.2.2:1500", "{c}");
    assert!(lab.ping(Side::Left, "10.1.0.1", "10.2.0.1", 3));
}

/// The status says why a connection is down (typed kind + message) and what it is doing
/// while connecting; a connection that never came up is not a DPD failure, a peer that dies
/// on an established SA is exactly one.
#[test]
fn failures_in_status_and_dpd_failure_counting() {
    if !netns_env_ok(&[]) {
        return;
    }
    let mut lab = Lab::new("fail");
    // Fast failure detection: DPD after 2 s idle, 3 retransmits 1 s apart.
    let fast = |c: String| {
        c.replace("dpd_delay = \"10s\"", "dpd_delay = \"2s\"")
            .replace(
                "retransmit_tries = 3",
                "retransmit_tries = 3\nretransmit_base = 1.0",
            )
    };
    let cfg = fast(GwConf::tunneled(Side::Left).render(&lab)).replace(
        "[global]\n",
        "[global]\nmetrics_listen = \"127.0.0.1:9814\"\n",
    );
    lab.start_ipsecgw(Side::Left, &cfg);

    // Nobody answers: IKE_SA_INIT is retransmitted, then the attempt fails.
    lab.ipsecgw_cli(Side::Left, "initiate gw --timeout 0s");
    let trying = wait_for(Duration::from_secs(10), || {
        let c = lab.conn(Side::Left);
        (c["in_flight"]["retransmits"].as_u64()? >= 1).then_some(c)
    })
    .unwrap_or_else(|| panic!("no retransmission in status: {}", lab.conn(Side::Left)));
    assert_eq!(trying["state"], "connecting", "{trying}");
    assert_eq!(trying["in_flight"]["exchange"], "IKE_SA_INIT", "{trying}");
    assert_eq!(trying["peer"], "192.0.2.2:500", "{trying}");
    schema::assert_valid("status-v1.json", &lab.status_json(Side::Left));
    // The table and the metrics say the same while it is trying.
    let table = lab.cli_ok(Side::Left, "status");
    assert!(
        table.contains("gw: CONNECTING, peer 192.0.2.2:500")
            && table.contains("IKE_SA_INIT in flight"),
        "{table}"
    );
    // The metrics are a snapshot taken every second.
    let metric = |want: &str| {
        wait_for(Duration::from_secs(3), || {
            scrape(&lab, Side::Left, "127.0.0.1:9814")
                .contains(want)
                .then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "{want} not in\n{}",
                scrape(&lab, Side::Left, "127.0.0.1:9814")
            )
        })
    };
    metric("ipsecgw_ike_retransmits{connection=\"gw\",exchange=\"IKE_SA_INIT\"}");
    let failed = wait_for(Duration::from_secs(15), || {
        let c = lab.conn(Side::Left);
        (c["state"] == "down" && c["last_error"].is_object()).then_some(c)
    })
    .unwrap_or_else(|| panic!("no failure in status: {}", lab.conn(Side::Left)));
    assert_eq!(
        failed["last_error"]["kind"], "peer_not_responding",
        "{failed}"
    );
    let msg = failed["last_error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("3 retransmits of IKE_SA_INIT"), "{failed}");
    assert_eq!(
        failed["counters"]["dpd_failures"], 0,
        "never came up, so no DPD failure: {failed}"
    );
    schema::assert_valid("status-v1.json", &lab.status_json(Side::Left));
    let table = lab.cli_ok(Side::Left, "status");
    assert!(
        table.contains("last error (") && table.contains("3 retransmits of IKE_SA_INIT"),
        "{table}"
    );
    metric("ipsecgw_last_error{connection=\"gw\",kind=\"peer_not_responding\"} 1");

    // The peer appears: up, and the error is gone.
    let right = lab.start_ipsecgw(
        Side::Right,
        &fast(GwConf::tunneled(Side::Right).render(&lab)),
    );
    lab.cli_ok(Side::Left, "initiate gw");
    let up = lab.wait_state(Side::Left, "established");
    assert!(up.get("last_error").is_none(), "{up}");
    assert!(lab.ping(Side::Left, "10.1.0.1", "10.2.0.1", 2));

    // The peer dies: DPD finds out, once; the restarts that fail after it are no DPD failures.
    lab.kill9(right);
    let dead = wait_for(Duration::from_secs(20), || {
        let c = lab.conn(Side::Left);
        (c["counters"]["dpd_failures"].as_u64()? >= 1).then_some(c)
    })
    .unwrap_or_else(|| panic!("DPD failure not counted: {}", lab.conn(Side::Left)));
    assert_eq!(dead["counters"]["dpd_failures"], 1, "{dead}");
    std::thread::sleep(Duration::from_secs(10));
    let later = lab.conn(Side::Left);
    assert_eq!(
        later["counters"]["dpd_failures"], 1,
        "re-initiations that fail are not DPD failures: {later}"
    );
    assert_eq!(
        later["last_error"]["kind"], "peer_not_responding",
        "{later}"
    );
}
