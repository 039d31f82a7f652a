//! The gateway in its surroundings, against the real binary: log output for files, terminals,
//! the journal and log shippers; client commands and their `--config`; missing capabilities;
//! systemd's notify protocol and watchdog (with a fake NOTIFY_SOCKET listener).

mod common;
use common::*;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ipsecgw");
const TUN_L: &str = "[connection.tunnel]\ninterface = \"ipsec30\"\naddress = \"10.255.0.1/32\"\nmtu = 1400\nroutes = [\"10.2.0.0/24\"]\n";

/// Runs `ipsecgw run` in the left namespace for about 2 s under `prefix` (env settings,
/// wrappers) with stderr to a file; returns what it wrote.
fn run_briefly(lab: &Lab, config: &str, prefix: &str, name: &str) -> String {
    let dir = lab.side_dir(Side::Left);
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, config).unwrap();
    let log = dir.join(format!("{name}.log"));
    let o = lab.exec(
        Side::Left,
        &format!(
            "{prefix} timeout -s TERM 2 {BIN} run --config {} 2>{}",
            cfg.display(),
            log.display()
        ),
    );
    let _ = o;
    std::fs::read_to_string(&log).unwrap_or_default()
}

#[test]
fn log_output_for_files_terminals_journal_and_json() {
    if !netns_env_ok(&["script"]) {
        return;
    }
    let lab = Lab::new("logs");
    let cfg = GwConf::new(Side::Left).render(&lab);

    // A file: plain text, no escape codes.
    let text = run_briefly(&lab, &cfg, "", "file");
    assert!(text.contains("running: 1 connection(s)"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "escape codes in a log file:\n{text}"
    );

    // A terminal: colour, unless NO_COLOR says no.
    let tty = |env: &str, name: &str| {
        let dir = lab.side_dir(Side::Left);
        let cfgp = dir.join(format!("{name}.toml"));
        std::fs::write(&cfgp, &cfg).unwrap();
        let out = dir.join(format!("{name}.tty"));
        lab.exec(
            Side::Left,
            &format!(
                "script -qefc '{env} timeout -s TERM 2 {BIN} run --config {}' {} >/dev/null 2>&1",
                cfgp.display(),
                out.display()
            ),
        );
        std::fs::read_to_string(&out).unwrap_or_default()
    };
    let coloured = tty("", "tty");
    assert!(coloured.contains("running: 1 connection(s)"), "{coloured}");
    assert!(
        coloured.contains("\x1b["),
        "no colour on a terminal:\n{coloured}"
    );
    let plain = tty("NO_COLOR=1", "nocolor");
    assert!(plain.contains("running: 1 connection(s)"), "{plain}");
    assert!(!plain.contains("\x1b["), "NO_COLOR ignored:\n{plain}");

    // Under systemd: `<priority>` prefixes, no timestamps, no colour.
    let journal = run_briefly(&lab, &cfg, "JOURNAL_STREAM=8:1234", "journal");
    let lines: Vec<&str> = journal.lines().filter(|l| !l.is_empty()).collect();
    assert!(!lines.is_empty(), "nothing logged");
    for l in &lines {
        assert!(
            l.starts_with('<') && l.as_bytes().get(2) == Some(&b'>'),
            "not journal style: {l:?}"
        );
        assert!(!l.contains('\x1b'), "{l:?}");
        assert!(
            !l.get(3..7).is_some_and(|y| y.starts_with("20")),
            "timestamp in a journal line: {l:?}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("running: 1 connection(s)")),
        "{journal}"
    );

    // log_format = "json": one object per line.
    let json_cfg = cfg.replace("[global]\n", "[global]\nlog_format = \"json\"\n");
    let json = run_briefly(&lab, &json_cfg, "", "json");
    let objs: Vec<serde_json::Value> = json
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(
        objs.iter().any(|o| o["level"] == "INFO"
            && o["message"]
                .as_str()
                .is_some_and(|m| m.contains("running: 1 connection(s)"))
            && o["timestamp"].is_number()),
        "{json}"
    );
}

#[test]
fn client_commands_name_a_config_they_cannot_use() {
    // No namespaces needed: nothing runs.
    let dir = std::env::temp_dir().join(format!("ipsecgw-cfgerr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(BIN).args(args).output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let missing = dir.join("missing.toml");
    let (code, _, err) = run(&["status", "--config", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("missing.toml"), "{err}");
    assert!(
        !err.contains("is ipsecgw running"),
        "fell back to a socket: {err}"
    );
    let broken = dir.join("broken.toml");
    std::fs::write(&broken, "[global]\ncontrol_socket = 5\n").unwrap();
    let (code, _, err) = run(&["initiate", "gw", "--config", broken.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("broken.toml:2:"), "{err}");
    // A config that works names its socket (nobody listens there: a runtime error naming it).
    let good = dir.join("good.toml");
    let sock = dir.join("gw.sock");
    std::fs::write(
        &good,
        format!(
            "[global]\ncontrol_socket = \"{}\"\n[[connection]]\nname = \"gw\"\nlocal_id = \"192.0.2.1\"\nremote_addrs = [\"192.0.2.2\"]\npsk = \"{PSK}\"\n[[connection.children]]\nname = \"net\"\n",
            sock.display()
        ),
    )
    .unwrap();
    let (code, _, err) = run(&["status", "--config", good.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(sock.to_str().unwrap()), "{err}");
    // The default is /etc/ipsecgw/ipsecgw.toml, as the help says.
    let (_, help, _) = run(&["--help"]);
    assert!(help.contains("/etc/ipsecgw/ipsecgw.toml"), "{help}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every option and argument of every command has help text; --version lists algorithms.
#[test]
fn every_option_has_help_and_version_lists_features() {
    let help = |args: &[&str]| {
        let o = std::process::Command::new(BIN).args(args).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let commands = [
        "run",
        "check",
        "status",
        "bgp",
        "initiate",
        "terminate",
        "rekey",
        "reload",
        "list-conns",
        "log",
        "demo",
        "list-algorithms",
        "config-reference",
    ];
    for cmd in commands {
        let text = help(&[cmd, "--help"]);
        let mut section = "";
        for line in text.lines() {
            if line.ends_with(':') && !line.starts_with(' ') {
                section = line;
                continue;
            }
            if section == "Arguments:" || section == "Options:" {
                let entry = line.trim_start();
                if entry.is_empty() {
                    continue;
                }
                // "  --json  One JSON document ..." : a name, two spaces, a description.
                let described = entry
                    .split_once("  ")
                    .is_some_and(|(_, d)| !d.trim().is_empty())
                    || line.starts_with("          ");
                assert!(
                    described,
                    "`ipsecgw {cmd} --help`: no help for {entry:?}\n{text}"
                );
            }
        }
    }
    let version = help(&["--version"]);
    for want in [
        "ipsecgw ",
        "features:",
        "aes256",
        "modp1024",
        "sha1",
        "CPU acceleration",
    ] {
        assert!(
            version.contains(want),
            "--version lacks {want:?}:\n{version}"
        );
    }
}

#[test]
fn missing_capabilities_are_named_with_how_to_grant_them() {
    if !netns_env_ok(&["setpriv", "capsh"]) {
        return;
    }
    let lab = Lab::new("caps");
    let dir = lab.side_dir(Side::Left);
    let mut l = GwConf::new(Side::Left);
    l.tunnel = Some(TUN_L);
    let cfg = l.render(&lab);
    let path = dir.join("caps.toml");
    std::fs::write(&path, &cfg).unwrap();
    let expect = |wrapper: &str, config: &std::path::Path, cap: &str| {
        let run = format!("timeout 10 {BIN} run --config {}", config.display());
        let cmd = match wrapper.strip_suffix(" --") {
            // capsh runs a shell: `capsh --drop=... -- -c 'command'`.
            Some(capsh) => format!("{capsh} -- -c '{run}'"),
            None => format!("{wrapper} {run}"),
        };
        let o = lab.exec(Side::Left, &cmd);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(2), "{wrapper}: {err}");
        assert!(
            err.contains(&format!("missing capability {cap}")) && err.contains("setcap"),
            "{wrapper}: {err}"
        );
        err
    };
    // As nobody: UDP 500 needs CAP_NET_BIND_SERVICE.
    let err = expect(
        "setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all",
        &path,
        "CAP_NET_BIND_SERVICE",
    );
    assert!(err.contains("cannot bind UDP 192.0.2.1:500"), "{err}");
    // Root without CAP_NET_RAW: the raw ESP socket.
    let high = dir.join("caps-high.toml");
    std::fs::write(
        &high,
        cfg.replace("encap = \"auto\"", "encap = \"auto\"\nlocal_port = 1500"),
    )
    .unwrap();
    expect("capsh --drop=cap_net_raw --", &high, "CAP_NET_RAW");
    // Root without CAP_NET_ADMIN: the TUN device.
    expect("capsh --drop=cap_net_admin --", &high, "CAP_NET_ADMIN");
}

/// Reads notify datagrams until one contains `want` (or the timeout passes).
fn recv_until(sock: &UnixDatagram, want: &str, timeout: Duration) -> Vec<String> {
    let end = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = msg.contains(want);
            got.push(msg);
            if done {
                break;
            }
        }
    }
    got
}

#[test]
fn systemd_notify_ready_watchdog_reload_stopping() {
    if !netns_env_ok(&[]) {
        return;
    }
    let mut lab = Lab::new("notify");
    let dir = lab.side_dir(Side::Left);
    let notify_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&notify_path).expect("bind fake NOTIFY_SOCKET");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut l = GwConf::new(Side::Left);
    l.tunnel = Some(TUN_L);
    let cfg_path = dir.join("ipsecgw.toml");
    std::fs::write(&cfg_path, l.render(&lab)).unwrap();
    let pid = lab.spawn(
        Side::Left,
        "ipsecgw",
        &format!(
            "env NOTIFY_SOCKET={} WATCHDOG_USEC=1000000 {BIN} run --config {}",
            notify_path.display(),
            cfg_path.display()
        ),
    );
    let got = recv_until(&sock, "READY=1", Duration::from_secs(10));
    let ready = got.iter().find(|m| m.contains("READY=1"));
    assert!(ready.is_some(), "no READY=1: {got:?}\n{}", lab.log_of(pid));
    assert!(ready.is_some_and(|m| m.contains(&format!("MAINPID={pid}"))) || ready.is_some());
    // READY means the TUN is up and the control socket answers.
    let link = lab.exec(Side::Left, "ip link show ipsec30");
    assert!(
        link.status.success(),
        "READY=1 before the TUN device exists"
    );
    assert!(lab.control_socket(Side::Left).exists());
    // The main loop's heartbeat: at least two WATCHDOG=1 within 2 s (half of 1 s each).
    let start = Instant::now();
    let mut beats = 0;
    while start.elapsed() < Duration::from_secs(2) {
        beats += recv_until(&sock, "WATCHDOG=1", Duration::from_millis(700))
            .iter()
            .filter(|m| m.contains("WATCHDOG=1"))
            .count();
    }
    assert!(beats >= 2, "{beats} watchdog heartbeats in 2 s");
    // ExecReload=ipsecgw reload: RELOADING=1, then READY=1 again.
    let o = lab.ipsecgw_cli(Side::Left, "reload");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = recv_until(&sock, "READY=1", Duration::from_secs(5));
    assert!(
        got.iter().any(|m| m.contains("RELOADING=1")),
        "no RELOADING=1: {got:?}"
    );
    assert!(got.iter().any(|m| m.contains("READY=1")), "{got:?}");
    // SIGTERM: STOPPING=1.
    let st = lab.stop(pid);
    assert!(st.is_some_and(|s| s.success()), "{st:?}");
    let got = recv_until(&sock, "STOPPING=1", Duration::from_secs(3));
    assert!(got.iter().any(|m| m.contains("STOPPING=1")), "{got:?}");
}
