//! The operator's verbs against the real binary in network namespaces: initiate / terminate /
//! rekey that wait and stream the exchanges, `reload` (what changed, refused configs, route
//! and BGP-policy changes applied in place with the SAs untouched), `list-conns`, `log`.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Tunnels that also route to the BGP peer's tunnel address.
const TUN_LB: &str = "[connection.tunnel]\ninterface = \"ipsec30\"\naddress = \"10.255.0.1/32\"\nmtu = 1400\nroutes = [\"10.255.0.2/32\", \"10.2.0.0/24\"]\n";
const TUN_RB: &str = "[connection.tunnel]\ninterface = \"ipsec30\"\naddress = \"10.255.0.2/32\"\nmtu = 1400\nroutes = [\"10.255.0.1/32\", \"10.1.0.0/24\"]\n";

/// eBGP between the two gateways over the tunnel (ipsecgw to ipsecgw).
fn bgp(side: Side, local_pref: u32) -> String {
    let (me, peer, my_as, peer_as, net) = match side {
        Side::Left => ("10.255.0.1", "10.255.0.2", 65001, 65002, "10.1.0.0/24"),
        Side::Right => ("10.255.0.2", "10.255.0.1", 65002, 65001, "10.2.0.0/24"),
    };
    format!(
        "[connection.bgp]\nlocal_as = {my_as}\npeer_as = {peer_as}\npeer_address = \"{peer}\"\nlocal_address = \"{me}\"\nhold_time = \"9s\"\nconnect_retry = \"1s\"\nnetworks = [\"{net}\"]\nimport = [\"10.0.0.0/8 le 32\"]\nimport_local_pref = {local_pref}\n"
    )
}

fn spis(c: &serde_json::Value) -> (String, Vec<String>) {
    let ike = c["ike"]["spi_i"].as_str().unwrap_or("").to_string();
    let children = c["children"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|ch| ch["spi_in"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    (ike, children)
}

#[test]
fn initiate_terminate_rekey_wait_and_stream() {
    if !netns_env_ok(&[]) {
        return;
    }
    let mut lab = Lab::new("wait");
    lab.start_ipsecgw(Side::Left, &GwConf::tunneled(Side::Left).render(&lab));

    // Nobody answers: the exchanges stream, and the wait ends with the reason, non-zero.
    let (code, out, err) = lab.cli(Side::Left, "initiate gw --timeout 3s");
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("sending IKE_SA_INIT to 192.0.2.2:500"),
        "{out}"
    );
    assert!(out.contains("retransmit 1 of IKE_SA_INIT"), "{out}");
    assert!(
        err.contains("gw: timed out after 3s") && err.contains("no answer"),
        "{err}"
    );
    let (code, _, err) = lab.cli(Side::Left, "terminate gw");
    assert_eq!(code, 0, "{err}");

    // The peer is there but has another PSK: AUTHENTICATION_FAILED, at once, non-zero.
    let mut r = GwConf::tunneled(Side::Right);
    r.psk = "another-psk-0123456789";
    let right = lab.start_ipsecgw(Side::Right, &r.render(&lab));
    let (code, out, err) = lab.cli(Side::Left, "initiate gw --timeout 20s");
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("sending IKE_AUTH"), "{out}");
    assert!(err.contains("authentication failed"), "{err}");

    // The right PSK (through `reload`): up, with every step printed, exit 0.
    std::fs::write(
        lab.side_dir(Side::Right).join("ipsecgw.toml"),
        GwConf::tunneled(Side::Right).render(&lab),
    )
    .unwrap();
    let (code, out, err) = lab.cli(Side::Right, "reload");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("restarted: gw"), "{out}");
    let _ = right;
    let (code, out, err) = lab.cli(Side::Left, "initiate gw");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for want in [
        "sending IKE_SA_INIT to 192.0.2.2:500",
        "sending IKE_AUTH",
        "IKE SA established: 192.0.2.1:500 <-> 192.0.2.2:500",
        "CHILD SA net installed",
        "connection 'gw' established",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    assert!(lab.ping(Side::Left, "10.1.0.1", "10.2.0.1", 2));

    // Rekeys wait for the new SAs and name them.
    let (old_ike, old_children) = spis(&lab.conn(Side::Left));
    let (code, out, err) = lab.cli(Side::Left, "rekey gw --child");
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("CHILD SAs of 'gw' rekeyed: new inbound SPIs"),
        "{out}"
    );
    let (_, now_children) = spis(&lab.conn(Side::Left));
    assert!(
        now_children.iter().all(|s| !old_children.contains(s)),
        "{old_children:?} -> {now_children:?}"
    );
    let (code, out, err) = lab.cli(Side::Left, "rekey gw --ike");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("IKE SA of 'gw' rekeyed"), "{out}");
    assert_ne!(spis(&lab.conn(Side::Left)).0, old_ike);

    // terminate waits until the connection is down.
    let (code, out, err) = lab.cli(Side::Left, "terminate gw");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("connection 'gw' terminated"), "{out}");
    assert_eq!(lab.conn(Side::Left)["state"], "down");
    // Unknown names and bad timeouts fail at once.
    let (code, _, err) = lab.cli(Side::Left, "initiate nosuch");
    assert_eq!(code, 2);
    assert!(err.contains("no connection named 'nosuch'"), "{err}");
    let (code, _, err) = lab.cli(Side::Left, "initiate gw --timeout soon");
    assert_eq!(code, 1);
    assert!(err.contains("--timeout soon"), "{err}");
}

#[test]
fn reload_applies_route_and_bgp_policy_changes_without_touching_sas() {
    if !netns_env_ok(&[]) {
        return;
    }
    let mut lab = Lab::new("reload");
    let right_bgp = bgp(Side::Right, 100);
    let mut r = GwConf::new(Side::Right);
    r.tunnel = Some(TUN_RB);
    r.extra = &right_bgp;
    lab.start_ipsecgw(Side::Right, &r.render(&lab));
    let left_bgp = bgp(Side::Left, 100);
    let mut l = GwConf::new(Side::Left);
    l.tunnel = Some(TUN_LB);
    l.start_action = "start";
    l.extra = &left_bgp;
    lab.start_ipsecgw(Side::Left, &l.render(&lab));
    let up = lab.wait_state(Side::Left, "established");
    let before = spis(&up);
    let bgp_up = |lab: &Lab| {
        wait_for(Duration::from_secs(20), || {
            let c = lab.conn(Side::Left);
            (c["bgp"]["state"] == "established").then_some(c)
        })
        .unwrap_or_else(|| panic!("BGP not established: {}", lab.conn(Side::Left)))
    };
    bgp_up(&lab);
    // The real documents match their versioned schemas (docs/schema/).
    let status = lab.status_json(Side::Left);
    assert_eq!(status["schema"], "ipsecgw/status/v1");
    schema::assert_valid("status-v1.json", &status);
    let bgp_doc = wait_for(Duration::from_secs(15), || {
        let o = lab.ipsecgw_cli(Side::Left, "bgp --json");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
        (v["routes"].as_array()?.len() >= 2).then_some(v)
    })
    .expect("bgp --json with received and announced routes");
    assert_eq!(bgp_doc["schema"], "ipsecgw/bgp/v1");
    schema::assert_valid("bgp-v1.json", &bgp_doc);

    // Only the static routes change: applied in place, the SAs stay.
    let path = lab.side_dir(Side::Left).join("ipsecgw.toml");
    let routes = TUN_LB.replace("\"10.2.0.0/24\"]", "\"10.2.0.0/24\", \"10.3.0.0/24\"]");
    let mut l2 = GwConf::new(Side::Left);
    l2.tunnel = Some(&routes);
    l2.start_action = "start";
    l2.extra = &left_bgp;
    std::fs::write(&path, l2.render(&lab)).unwrap();
    let (code, out, err) = lab.cli(Side::Left, "reload");
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("updated in place (SAs kept): gw (routes)"),
        "{out}"
    );
    let route = String::from_utf8_lossy(&lab.exec(Side::Left, "ip route show 10.3.0.0/24").stdout)
        .into_owned();
    assert!(
        route.contains("dev ipsec30"),
        "new route not installed: {route}"
    );
    let after = lab.conn(Side::Left);
    assert_eq!(
        spis(&after),
        before,
        "a route-only reload touched the SAs: {after}"
    );
    assert!(lab.ping(Side::Left, "10.1.0.1", "10.2.0.1", 2));

    // Only the BGP policy changes: the session restarts with it, the SAs stay.
    let pref = bgp(Side::Left, 200);
    l2.extra = &pref;
    std::fs::write(&path, l2.render(&lab)).unwrap();
    let (code, out, err) = lab.cli(Side::Left, "reload");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("gw (BGP policy (session restarted))"), "{out}");
    bgp_up(&lab);
    let after = lab.conn(Side::Left);
    assert_eq!(
        spis(&after),
        before,
        "a BGP-policy reload touched the SAs: {after}"
    );
    let pref_200 = wait_for(Duration::from_secs(15), || {
        let o = lab.ipsecgw_cli(Side::Left, "bgp --json");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
        v["routes"]
            .as_array()?
            .iter()
            .any(|r| r["direction"] == "received" && r["local_pref"] == 200)
            .then_some(())
    });
    assert!(pref_200.is_some(), "new local-pref not applied");

    // A broken config is refused with its problems, exit 1, the running one kept.
    std::fs::write(&path, "[global]\nlog_level = \"loud\"\n").unwrap();
    let (code, out, err) = lab.cli(Side::Left, "reload");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("refused") && err.contains("ipsecgw.toml:2:"),
        "{err}"
    );
    assert_eq!(spis(&lab.conn(Side::Left)), before);

    // A real change restarts the connection, and says so.
    let mut l3 = GwConf::new(Side::Left);
    l3.tunnel = Some(&routes);
    l3.start_action = "start";
    l3.extra = &pref;
    l3.esp = "aes128-sha1";
    std::fs::write(&path, l3.render(&lab)).unwrap();
    let (code, out, err) = lab.cli(Side::Left, "reload");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("restarted: gw"), "{out}");
}

#[test]
fn list_conns_and_log_follow() {
    if !netns_env_ok(&[]) {
        return;
    }
    let mut lab = Lab::new("listlog");
    lab.start_ipsecgw(Side::Right, &GwConf::tunneled(Side::Right).render(&lab));
    lab.start_ipsecgw(Side::Left, &GwConf::tunneled(Side::Left).render(&lab));

    // Defaults resolved, the PSK never shown.
    let (code, out, err) = lab.cli(Side::Left, "list-conns");
    assert_eq!(code, 0, "{err}");
    for want in [
        "[connection]",
        "name = \"gw\"",
        "rekey_time = \"4h\"",
        "dpd_action = \"restart\"",
        "[connection.children.net]",
        "rekey_time = \"1h\"",
        "replay_window = 64",
        "[connection.tunnel]",
        "routes = [\"10.2.0.0/24\"]",
        "psk = (set, not shown)",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    assert!(!out.contains(PSK), "the PSK leaked: {out}");
    let (_, json, _) = lab.cli(Side::Left, "list-conns --json");
    let v: serde_json::Value = serde_json::from_str(&json).expect("list-conns --json");
    assert_eq!(v["connections"][0]["name"], "gw");

    // `log --follow` streams the daemon's lines while an initiate runs.
    let bin = env!("CARGO_BIN_EXE_ipsecgw");
    let mut follower = Command::new(bin)
        .args(["--socket"])
        .arg(lab.control_socket(Side::Left))
        .args(["log", "--follow", "--level", "info"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ipsecgw log");
    let stdout = follower.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(5));
    assert!(
        first
            .as_deref()
            .is_ok_and(|l| l.contains("following the log")),
        "{first:?}"
    );
    let (code, out, err) = lab.cli(Side::Left, "initiate gw");
    assert_eq!(code, 0, "{out}{err}");
    let mut seen = Vec::new();
    let established = wait_for(Duration::from_secs(10), || {
        while let Ok(l) = rx.try_recv() {
            seen.push(l);
        }
        seen.iter()
            .any(|l| l.contains("INFO") && l.contains("established"))
            .then_some(())
    });
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(established.is_some(), "log lines seen: {seen:#?}");
    assert!(
        !seen.iter().any(|l| l.contains("DEBUG")),
        "--level info let debug lines through: {seen:#?}"
    );
}
