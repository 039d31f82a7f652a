//! Harness for the real-world tests: network namespaces joined by a veth "underlay", real
//! strongSwan (charon with kernel-libipsec) and BIRD processes, and the real `ipsecgw`
//! binary. Everything a test starts is stopped by PID and every namespace is deleted when the
//! `Lab` is dropped, also when the test panics. On panic the daemons' logs are printed.
//!
//! A test that cannot run (not root, a tool missing) fails with a message naming the one
//! opt-out, IPSECGW_SKIP_NETNS=1.
#![allow(dead_code)]

pub mod schema;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const PSK: &str = "lab-psk-0123456789";
pub const LEFT_UL: &str = "192.0.2.1";
pub const RIGHT_UL: &str = "192.0.2.2";
/// The lab's route-based TUN on each side, routing the other side's LAN through the tunnel.
pub const TUN_L: &str = "[connection.tunnel]\ninterface = \"ipsec30\"\naddress = \"10.255.0.1/32\"\nmtu = 1400\nroutes = [\"10.2.0.0/24\"]\n";
pub const TUN_R: &str = "[connection.tunnel]\ninterface = \"ipsec30\"\naddress = \"10.255.0.2/32\"\nmtu = 1400\nroutes = [\"10.1.0.0/24\"]\n";

/// True when the test should run. With IPSECGW_SKIP_NETNS=1 it says so and returns false;
/// otherwise it panics if the environment cannot run it.
pub fn netns_env_ok(tools: &[&str]) -> bool {
    if std::env::var("IPSECGW_SKIP_NETNS").as_deref() == Ok("1") {
        eprintln!("SKIPPED by IPSECGW_SKIP_NETNS=1 (network-namespace test)");
        return false;
    }
    let uid = unsafe { libc::geteuid() };
    assert_eq!(
        uid, 0,
        "this test needs root (network namespaces); set IPSECGW_SKIP_NETNS=1 to skip it explicitly"
    );
    for t in tools.iter().chain(["ip"].iter()) {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {t}"))
            .output()
            .map(|o| o.status.success());
        assert!(
            found.unwrap_or(false),
            "this test needs `{t}` (the README's test command installs it: see .ci/run); set IPSECGW_SKIP_NETNS=1 to skip it explicitly"
        );
    }
    true
}

pub fn sh(cmd: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("spawn sh")
}

/// Runs a command that must succeed.
pub fn must(cmd: &str) -> String {
    let o = sh(cmd);
    assert!(
        o.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Polls `f` until it returns Some or the timeout passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    Left,
    Right,
}

impl Side {
    pub fn ul(self) -> &'static str {
        match self {
            Side::Left => LEFT_UL,
            Side::Right => RIGHT_UL,
        }
    }
    pub fn peer(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }
    pub fn lan_ip(self) -> &'static str {
        match self {
            Side::Left => "10.1.0.1",
            Side::Right => "10.2.0.1",
        }
    }
    pub fn lan_net(self) -> &'static str {
        match self {
            Side::Left => "10.1.0.0/24",
            Side::Right => "10.2.0.0/24",
        }
    }
    /// Loopback-style BGP endpoint (the reference deployment's 10.2.30.125 / 10.10.30.254).
    pub fn bgp_ip(self) -> &'static str {
        match self {
            Side::Left => "10.2.30.125",
            Side::Right => "10.10.30.254",
        }
    }
    pub fn tag(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }
}

struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

/// Two namespaces with an underlay veth (192.0.2.1/24 <-> 192.0.2.2/24) and a LAN stand-in
/// (`lan0`, ifb: this kernel has no dummy driver) on each side.
pub struct Lab {
    pub dir: PathBuf,
    left: String,
    right: String,
    procs: Vec<Proc>,
    extra_logs: Vec<PathBuf>,
    /// Extra lines for the `charon { }` section of the strongswan.conf of charons started
    /// from now on (e.g. "fragment_size = 576").
    pub charon_extra: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Lab {
    pub fn new(tag: &str) -> Lab {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}{}", std::process::id(), n);
        let dir = std::env::temp_dir().join(format!("ipsecgw-test-{tag}-{id}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create lab dir");
        let lab = Lab {
            dir,
            left: format!("igl{id}"),
            right: format!("igr{id}"),
            procs: vec![],
            extra_logs: vec![],
            charon_extra: String::new(),
        };
        must(&format!("ip netns add {}", lab.left));
        must(&format!("ip netns add {}", lab.right));
        must(&format!(
            "ip link add ul-l netns {} type veth peer name ul-r netns {}",
            lab.left, lab.right
        ));
        for side in [Side::Left, Side::Right] {
            let ns = lab.ns(side);
            let ul = if side == Side::Left { "ul-l" } else { "ul-r" };
            must(&format!("ip -n {ns} link set lo up"));
            must(&format!("ip -n {ns} addr add {}/24 dev {ul}", side.ul()));
            must(&format!("ip -n {ns} link set {ul} up"));
            must(&format!("ip -n {ns} link add lan0 type ifb"));
            must(&format!(
                "ip -n {ns} addr add {}/24 dev lan0",
                side.lan_ip()
            ));
            must(&format!("ip -n {ns} link set lan0 up"));
            fs::create_dir_all(lab.side_dir(side)).expect("side dir");
        }
        let ok = wait_for(Duration::from_secs(5), || {
            sh(&format!(
                "ip netns exec {} ping -c1 -W1 {}",
                lab.left, RIGHT_UL
            ))
            .status
            .success()
            .then_some(())
        });
        assert!(ok.is_some(), "underlay veth does not pass traffic");
        lab
    }

    pub fn ns(&self, side: Side) -> &str {
        match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }

    pub fn side_dir(&self, side: Side) -> PathBuf {
        self.dir.join(side.tag())
    }

    /// Runs a shell command inside a namespace.
    pub fn exec(&self, side: Side, cmd: &str) -> Output {
        Command::new("ip")
            .args(["netns", "exec", self.ns(side), "sh", "-c", cmd])
            .output()
            .expect("spawn ip netns exec")
    }

    pub fn ping(&self, side: Side, from: &str, to: &str, count: u32) -> bool {
        self.exec(side, &format!("ping -c{count} -i0.2 -W2 -I {from} {to}"))
            .status
            .success()
    }

    /// Starts a long-running process inside the namespace; it is killed by PID on drop.
    pub fn spawn(&mut self, side: Side, name: &str, cmd: &str) -> u32 {
        let log = self.side_dir(side).join(format!("{name}.out"));
        let out = fs::File::create(&log).expect("log file");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                self.ns(side),
                "sh",
                "-c",
                &format!("exec {cmd}"),
            ])
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn");
        let pid = child.id();
        self.procs.push(Proc {
            name: format!("{}:{name}", side.tag()),
            child,
            log,
        });
        pid
    }

    /// Stops one process started by `spawn` (SIGTERM, then SIGKILL after 5 s).
    pub fn stop(&mut self, pid: u32) -> Option<std::process::ExitStatus> {
        let idx = self.procs.iter().position(|p| p.child.id() == pid)?;
        let mut p = self.procs.remove(idx);
        let st = terminate(&mut p.child);
        self.extra_logs.push(p.log);
        st
    }

    /// Kills one process started by `spawn` with SIGKILL: a crash, or the peer vanishing.
    pub fn kill9(&mut self, pid: u32) {
        if let Some(idx) = self.procs.iter().position(|p| p.child.id() == pid) {
            let mut p = self.procs.remove(idx);
            let _ = p.child.kill();
            let _ = p.child.wait();
            self.extra_logs.push(p.log);
        }
    }

    pub fn is_running(&mut self, pid: u32) -> bool {
        self.procs
            .iter_mut()
            .any(|p| p.child.id() == pid && matches!(p.child.try_wait(), Ok(None)))
    }

    pub fn add_log(&mut self, p: PathBuf) {
        self.extra_logs.push(p);
    }

    // ---- strongSwan ------------------------------------------------------------------

    /// Starts charon with kernel-libipsec in the namespace, with its own strongswan.conf,
    /// vici socket and /run (charon 5.9.8 has a fixed pidfile), and loads `swanctl_conf`.
    pub fn start_charon(&mut self, side: Side, swanctl_conf: &str) -> u32 {
        let d = self.side_dir(side);
        fs::create_dir_all(d.join("varrun")).expect("varrun");
        let vici = d.join("charon.vici");
        let conf = d.join("strongswan.conf");
        let log = d.join("charon.log");
        // A socket file left by an earlier charon of this side would look like a live one.
        let _ = fs::remove_file(&vici);
        let settings = strongswan_conf(&vici, &log).replacen(
            "charon {\n",
            &format!("charon {{\n    {}\n", self.charon_extra),
            1,
        );
        fs::write(&conf, settings).expect("write strongswan.conf");
        fs::write(d.join("swanctl.conf"), swanctl_conf).expect("write swanctl.conf");
        let pid = self.spawn(
            side,
            "charon",
            &format!(
                "sh -c 'mount --bind {} /run && exec env STRONGSWAN_CONF={} /usr/lib/ipsec/charon'",
                d.join("varrun").display(),
                conf.display()
            ),
        );
        self.add_log(log);
        let up = wait_for(Duration::from_secs(15), || vici.exists().then_some(()));
        assert!(up.is_some(), "charon did not create its vici socket");
        let out = self.swanctl(
            side,
            "--load-all --file",
            &d.join("swanctl.conf").display().to_string(),
        );
        assert!(out.0, "swanctl --load-all failed: {}", out.1);
        pid
    }

    /// Loads a new swanctl.conf into this side's charon, starting charon if it is not running.
    pub fn load_swanctl(&mut self, side: Side, conf: &str) {
        let d = self.side_dir(side);
        if !d.join("charon.vici").exists() {
            self.start_charon(side, conf);
            return;
        }
        fs::write(d.join("swanctl.conf"), conf).expect("write swanctl.conf");
        let (ok, out) = self.swanctl(
            side,
            "--load-all --file",
            &d.join("swanctl.conf").display().to_string(),
        );
        assert!(ok, "swanctl --load-all failed: {out}");
    }

    /// Runs `swanctl <sub> <args>` against this side's charon; returns (success, output).
    pub fn swanctl(&self, side: Side, sub: &str, args: &str) -> (bool, String) {
        let d = self.side_dir(side);
        let o = sh(&format!(
            "STRONGSWAN_CONF={} swanctl {sub} {args} --uri unix://{} 2>&1",
            d.join("strongswan.conf").display(),
            d.join("charon.vici").display()
        ));
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    }

    pub fn list_sas(&self, side: Side) -> String {
        self.swanctl(side, "--list-sas", "").1
    }

    // ---- ipsecgw ---------------------------------------------------------------------

    pub fn control_socket(&self, side: Side) -> PathBuf {
        self.side_dir(side).join("ipsecgw.sock")
    }

    /// Writes `config` and runs `ipsecgw run` in the namespace; waits for its control socket.
    pub fn start_ipsecgw(&mut self, side: Side, config: &str) -> u32 {
        self.start_ipsecgw_with(
            side,
            config,
            "ipsecgw=debug,warn,netlink_packet_route=error",
        )
    }

    /// As `start_ipsecgw`, with this `RUST_LOG` filter.
    pub fn start_ipsecgw_with(&mut self, side: Side, config: &str, rust_log: &str) -> u32 {
        let d = self.side_dir(side);
        let path = d.join("ipsecgw.toml");
        fs::write(&path, config).expect("write config");
        let bin = env!("CARGO_BIN_EXE_ipsecgw");
        let keylog = d.join("ipsecgw.keylog");
        let pid = self.spawn(
            side,
            "ipsecgw",
            &format!(
                "env IPSECGW_KEYLOG={} RUST_LOG={rust_log} {bin} run --config {}",
                keylog.display(),
                path.display()
            ),
        );
        let sock = self.control_socket(side);
        let up = wait_for(Duration::from_secs(10), || sock.exists().then_some(()));
        if up.is_none() {
            panic!(
                "ipsecgw did not open its control socket:\n{}",
                self.log_of(pid)
            );
        }
        pid
    }

    /// Rewrites the config of a running ipsecgw and sends SIGHUP; waits until it has reloaded.
    pub fn reload_ipsecgw(&self, side: Side, pid: u32, config: &str) {
        fs::write(self.side_dir(side).join("ipsecgw.toml"), config).expect("write config");
        let before = self.log_of(pid).matches("reload:").count();
        unsafe { libc::kill(pid as i32, libc::SIGHUP) };
        let done = wait_for(Duration::from_secs(5), || {
            (self.log_of(pid).matches("reload:").count() > before).then_some(())
        });
        assert!(
            done.is_some(),
            "ipsecgw did not reload:\n{}",
            self.log_of(pid)
        );
    }

    pub fn log_of(&self, pid: u32) -> String {
        self.procs
            .iter()
            .find(|p| p.child.id() == pid)
            .map(|p| fs::read_to_string(&p.log).unwrap_or_default())
            .unwrap_or_default()
    }

    /// `ipsecgw <args>` against this side's control socket (unix sockets are not tied to a netns).
    pub fn ipsecgw_cli(&self, side: Side, args: &str) -> Output {
        let bin = env!("CARGO_BIN_EXE_ipsecgw");
        sh(&format!(
            "{bin} --socket {} {args}",
            self.control_socket(side).display()
        ))
    }

    pub fn status_json(&self, side: Side) -> serde_json::Value {
        let o = self.ipsecgw_cli(side, "status --json");
        assert!(
            o.status.success(),
            "ipsecgw status failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).expect("status --json is JSON")
    }

    /// (exit code, stdout, stderr) of `ipsecgw --socket ... <args>`.
    pub fn cli(&self, side: Side, args: &str) -> (i32, String, String) {
        let o = self.ipsecgw_cli(side, args);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// The stdout of `ipsecgw <args>`, which must succeed.
    pub fn cli_ok(&self, side: Side, args: &str) -> String {
        let o = self.ipsecgw_cli(side, args);
        assert!(
            o.status.success(),
            "ipsecgw {args}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The first connection of this side's `status --json`.
    pub fn conn(&self, side: Side) -> serde_json::Value {
        self.status_json(side)["connections"][0].clone()
    }

    /// Waits up to 15 s for the first connection to be in state `want`, and returns it.
    pub fn wait_state(&self, side: Side, want: &str) -> serde_json::Value {
        wait_for(Duration::from_secs(15), || {
            let c = self.conn(side);
            (c["state"] == want).then_some(c)
        })
        .unwrap_or_else(|| panic!("{side:?} never reached state {want}: {}", self.conn(side)))
    }

    // ---- BIRD ------------------------------------------------------------------------

    pub fn start_bird(&mut self, side: Side, conf: &str) -> u32 {
        let d = self.side_dir(side);
        fs::write(d.join("bird.conf"), conf).expect("bird.conf");
        let ctl = d.join("bird.ctl");
        let pid = self.spawn(
            side,
            "bird",
            &format!(
                "bird -f -c {} -s {} -P {}",
                d.join("bird.conf").display(),
                ctl.display(),
                d.join("bird.pid").display()
            ),
        );
        self.add_log(d.join("bird.log"));
        assert!(
            wait_for(Duration::from_secs(10), || ctl.exists().then_some(())).is_some(),
            "bird did not start"
        );
        pid
    }

    pub fn birdc(&self, side: Side, cmd: &str) -> String {
        let ctl = self.side_dir(side).join("bird.ctl");
        String::from_utf8_lossy(&sh(&format!("birdc -s {} {cmd}", ctl.display())).stdout)
            .into_owned()
    }
}

fn terminate(child: &mut Child) -> Option<std::process::ExitStatus> {
    let pid = child.id() as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait().ok()
}

impl Drop for Lab {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for mut p in std::mem::take(&mut self.procs).into_iter().rev() {
            terminate(&mut p.child);
            self.extra_logs.push(p.log);
        }
        if panicking {
            for l in &self.extra_logs {
                if let Ok(s) = fs::read_to_string(l) {
                    let tail: Vec<&str> = s.lines().rev().take(150).collect();
                    eprintln!("===== {} (last {} lines)", l.display(), tail.len());
                    tail.iter().rev().for_each(|l| eprintln!("{l}"));
                }
            }
        }
        let _ = sh(&format!("ip netns del {}", self.left));
        let _ = sh(&format!("ip netns del {}", self.right));
        if !panicking {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// strongswan.conf for one charon: explicit plugin list (kdf is required since 5.9.6; md5,
/// xcbc, gcm, chapoly and curve25519 for every suite of issue 10),
/// kernel-libipsec as the IPsec backend (this kernel has no ESP), short retransmits.
pub fn strongswan_conf(vici: &Path, log: &Path) -> String {
    format!(
        r#"charon {{
    load_modular = no
    load = random nonce openssl gmp aes sha1 sha2 md5 hmac xcbc gcm chapoly curve25519 kdf kernel-libipsec kernel-netlink socket-default vici updown
    port = 500
    port_nat_t = 4500
    install_routes = no
    retransmit_tries = 3
    retransmit_timeout = 2.0
    # interop_suites brings up two dozen IKE SAs at once: no COOKIE / half-open blocking.
    cookie_threshold = 100
    block_threshold = 100
    plugins {{
        kernel-netlink {{
            fwmark = 0x2200
        }}
        vici {{
            socket = unix://{vici}
        }}
    }}
    filelog {{
        test {{
            path = {log}
            time_format = %H:%M:%S
            time_add_ms = yes
            ike_name = yes
            append = no
            flush_line = yes
            default = 1
            ike = 4
            cfg = 2
            knl = 2
            enc = 1
            esp = 1
        }}
    }}
    syslog {{
        daemon {{
            default = -1
        }}
    }}
}}
"#,
        vici = vici.display(),
        log = log.display()
    )
}

/// swanctl.conf for a strongSwan peer of ipsecgw.
pub struct SwanConn<'a> {
    pub side: Side,
    pub ike: &'a str,
    pub esp: &'a str,
    pub psk: &'a str,
    pub local_ts: &'a str,
    pub remote_ts: &'a str,
    pub start_action: &'a str,
}

impl SwanConn<'_> {
    /// The lab's usual peer: aes256-sha1-modp1024 / aes256-sha1, TS 0/0, waits for us.
    pub fn new(side: Side) -> SwanConn<'static> {
        SwanConn {
            side,
            ike: "aes256-sha1-modp1024",
            esp: "aes256-sha1",
            psk: PSK,
            local_ts: "0.0.0.0/0",
            remote_ts: "0.0.0.0/0",
            start_action: "none",
        }
    }

    pub fn render(&self) -> String {
        let me = self.side.ul();
        let peer = self.side.peer().ul();
        format!(
            r#"connections {{
    gw {{
        version = 2
        local_addrs = {me}
        remote_addrs = {peer}
        proposals = {ike}
        encap = no
        mobike = no
        dpd_delay = 10s
        rekey_time = 4h
        local {{
            auth = psk
            id = {me}
        }}
        remote {{
            auth = psk
            id = {peer}
        }}
        children {{
            net {{
                mode = tunnel
                local_ts = {lts}
                remote_ts = {rts}
                esp_proposals = {esp}
                start_action = {start}
                dpd_action = restart
                close_action = none
                rekey_time = 1h
            }}
        }}
    }}
}}
secrets {{
    ike-gw {{
        id-a = {me}
        id-b = {peer}
        secret = "{psk}"
    }}
}}
"#,
            ike = self.ike,
            esp = self.esp,
            psk = self.psk,
            lts = self.local_ts,
            rts = self.remote_ts,
            start = self.start_action,
        )
    }
}

/// An ipsecgw config for one side of the lab.
pub struct GwConf<'a> {
    pub side: Side,
    pub ike: &'a str,
    pub esp: &'a str,
    pub psk: &'a str,
    pub start_action: &'a str,
    pub encap: &'a str,
    /// `None`: no TUN device (IKE-only tests).
    pub tunnel: Option<&'a str>,
    pub local_ts: &'a str,
    pub remote_ts: &'a str,
    pub extra: &'a str,
    /// Extra keys of the `[[connection]]` table.
    pub conn_extra: &'a str,
}

impl<'a> GwConf<'a> {
    pub fn new(side: Side) -> GwConf<'a> {
        GwConf {
            side,
            ike: "aes256-sha1-modp1024",
            esp: "aes256-sha1",
            psk: PSK,
            start_action: "none",
            encap: "auto",
            tunnel: None,
            local_ts: "0.0.0.0/0",
            remote_ts: "0.0.0.0/0",
            extra: "",
            conn_extra: "",
        }
    }

    /// With the lab's TUN (`TUN_L` / `TUN_R`).
    pub fn tunneled(side: Side) -> GwConf<'a> {
        let tun = match side {
            Side::Left => TUN_L,
            Side::Right => TUN_R,
        };
        GwConf {
            tunnel: Some(tun),
            ..GwConf::new(side)
        }
    }

    pub fn render(&self, lab: &Lab) -> String {
        let me = self.side.ul();
        let peer = self.side.peer().ul();
        let tunnel = self.tunnel.unwrap_or("");
        format!(
            r#"[global]
control_socket = "{sock}"
log_level = "debug"
retransmit_timeout = "1s"
retransmit_tries = 3

[[connection]]
name = "gw"
local_addrs = ["{me}"]
remote_addrs = ["{peer}"]
local_id = "{me}"
remote_id = "{peer}"
psk = "{psk}"
ike_proposals = ["{ike}"]
start_action = "{start}"
encap = "{encap}"
dpd_delay = "10s"
{conn_extra}

[[connection.children]]
name = "net"
local_ts = ["{lts}"]
remote_ts = ["{rts}"]
esp_proposals = ["{esp}"]
{tunnel}
{extra}
"#,
            sock = lab.control_socket(self.side).display(),
            psk = self.psk,
            ike = self.ike,
            esp = self.esp,
            start = self.start_action,
            encap = self.encap,
            lts = self.local_ts,
            rts = self.remote_ts,
            extra = self.extra,
            conn_extra = self.conn_extra,
        )
    }
}
