//! `ipsecgw demo`: two gateways in two fresh network namespaces, set up like the reference
//! deployment (IKEv2 PSK, ESP aes256-sha1, eBGP AS 65021 <-> AS 65515 over the tunnel),
//! traffic across, both status tables, then everything removed again, also on Ctrl-C.
//!
//! The namespaces and the veth "underlay" are lab plumbing made with `ip`; the gateways
//! themselves configure their tunnels and routes over netlink, as in production.

use crate::control::{self, Command, Request, StatusReport};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Proc, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The demo runs the example pair shipped in deploy/, with the control sockets moved.
const LEFT_CONF: &str = include_str!("../../deploy/configs/pair/left.toml");
const RIGHT_CONF: &str = include_str!("../../deploy/configs/pair/right.toml");
const LEFT_LAN: &str = "10.2.30.1";
const RIGHT_LAN: &str = "10.10.1.1";

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Everything the demo created; dropping it removes all of it.
struct Demo {
    dir: PathBuf,
    ns: [String; 2],
    gateways: Vec<(String, Child)>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        for (_, child) in &mut self.gateways {
            // SIGTERM: the gateway deletes its SAs and removes its routes itself.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        for (_, child) in &mut self.gateways {
            let end = Instant::now() + Duration::from_secs(5);
            while Instant::now() < end && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.ns {
            let _ = Proc::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ip(args: &str) -> Result<(), String> {
    let out = Proc::new("ip")
        .args(args.split_whitespace())
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn status(sock: &Path) -> Option<StatusReport> {
    control::request(sock, &Request::new(Command::Status))
        .ok()?
        .into_result()
        .ok()
}

fn check_interrupt() -> Result<(), String> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

pub fn run() -> ExitCode {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("ipsecgw demo: needs root (it creates network namespaces and TUN devices)");
        return ExitCode::from(1);
    }
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let id = std::process::id();
    let mut demo = Demo {
        dir: std::env::temp_dir().join(format!("ipsecgw-demo-{id}")),
        ns: [
            format!("ipsecgw-demo-left-{id}"),
            format!("ipsecgw-demo-right-{id}"),
        ],
        gateways: vec![],
    };
    let res = steps(&mut demo);
    print!("cleaning up: stopping both gateways (SIGTERM), deleting namespaces ... ");
    let _ = std::io::stdout().flush();
    drop(demo);
    println!("done");
    match res {
        Ok(()) => {
            println!("demo OK");
            ExitCode::SUCCESS
        }
        Err(_) if INTERRUPTED.load(Ordering::SeqCst) => {
            eprintln!("ipsecgw demo: interrupted, everything removed");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("ipsecgw demo failed: {e}");
            ExitCode::from(2)
        }
    }
}

fn steps(d: &mut Demo) -> Result<(), String> {
    std::fs::create_dir_all(&d.dir)
        .map_err(|e| format!("cannot create {}: {e}", d.dir.display()))?;
    let [l, r] = d.ns.clone();
    println!("== ipsecgw demo: two gateways, IKEv2 PSK + ESP aes256-sha1 + eBGP over the tunnel");
    println!("   {l}: 192.0.2.1, AS 65021, tunnel 10.2.30.125/32, LAN 10.2.30.0/25");
    println!("   {r}: 192.0.2.2, AS 65515, tunnel 10.10.30.254/32, LAN 10.10.1.0/24");
    ip(&format!("netns add {l}"))?;
    ip(&format!("netns add {r}"))?;
    ip(&format!(
        "link add ul-l netns {l} type veth peer name ul-r netns {r}"
    ))?;
    for (ns, ul, addr, lan) in [
        (&l, "ul-l", "192.0.2.1/24", "10.2.30.1/25"),
        (&r, "ul-r", "192.0.2.2/24", "10.10.1.1/24"),
    ] {
        ip(&format!("-n {ns} link set lo up"))?;
        ip(&format!("-n {ns} addr add {addr} dev {ul}"))?;
        ip(&format!("-n {ns} link set {ul} up"))?;
        // No dummy driver on every kernel: an ifb device is an always-up LAN stand-in.
        ip(&format!("-n {ns} link add lan0 type ifb"))?;
        ip(&format!("-n {ns} addr add {lan} dev lan0"))?;
        ip(&format!("-n {ns} link set lan0 up"))?;
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own binary: {e}"))?;
    let dir = d.dir.display().to_string();
    for (ns, name, conf) in [(&l, "left", LEFT_CONF), (&r, "right", RIGHT_CONF)] {
        let path = d.dir.join(format!("{name}.toml"));
        let sock = format!("{dir}/{name}.sock");
        std::fs::write(&path, conf.replace("/run/ipsecgw/control.sock", &sock))
            .map_err(|e| e.to_string())?;
        let log =
            std::fs::File::create(d.dir.join(format!("{name}.log"))).map_err(|e| e.to_string())?;
        let child = Proc::new("ip")
            .args(["netns", "exec", ns])
            .arg(&exe)
            .args(["run", "--config"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start the {name} gateway: {e}"))?;
        d.gateways.push((name.to_string(), child));
    }
    let (lsock, rsock) = (d.dir.join("left.sock"), d.dir.join("right.sock"));

    // Live progress until IKE, CHILD, BGP and the learned route are all there: one line
    // rewritten in place on a terminal, a new line per change otherwise (logs, CI).
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let t0 = Instant::now();
    let mut last = String::new();
    loop {
        check_interrupt()?;
        for (name, child) in &mut d.gateways {
            if let Ok(Some(st)) = child.try_wait() {
                let log =
                    std::fs::read_to_string(d.dir.join(format!("{name}.log"))).unwrap_or_default();
                return Err(format!("the {name} gateway exited ({st}):\n{log}"));
            }
        }
        let s = status(&lsock);
        let c = s.as_ref().and_then(|s| s.connections.first());
        let ike = c.map_or("starting".into(), |c| c.state.to_string());
        let child = c
            .and_then(|c| c.children.first())
            .map_or("-".into(), |ch| ch.state.to_string());
        let bgp = c
            .and_then(|c| c.bgp.as_ref())
            .map_or("-".into(), |b| b.state.to_string());
        let rx = c
            .and_then(|c| c.bgp.as_ref())
            .map_or(0, |b| b.prefixes_received);
        let state = format!("IKE {ike:<12} CHILD {child:<10} BGP {bgp:<12} prefixes received {rx}");
        if tty {
            print!("\r[{:4.1}s] {state}", t0.elapsed().as_secs_f32());
            let _ = std::io::stdout().flush();
        } else if state != last {
            println!("[{:4.1}s] {state}", t0.elapsed().as_secs_f32());
        }
        last = state;
        if bgp == "established" && rx > 0 && learned_route(&l) {
            break;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            println!();
            return Err("the tunnel and BGP did not come up within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if tty {
        println!();
    }
    println!(
        "tunnel and BGP up after {:.1}s; left learned 10.10.1.0/24 via ipsec30",
        t0.elapsed().as_secs_f32()
    );

    println!("\n== ping {RIGHT_LAN} from {LEFT_LAN} (LAN to LAN, following the BGP route)");
    let ping = Proc::new("ip")
        .args([
            "netns", "exec", &l, "ping", "-c", "3", "-i", "0.2", "-W", "2", "-I", LEFT_LAN,
            RIGHT_LAN,
        ])
        .output()
        .map_err(|e| format!("cannot run ping: {e}"))?;
    let out = String::from_utf8_lossy(&ping.stdout);
    out.lines()
        .filter(|l| l.contains("bytes from") || l.contains("packet loss"))
        .for_each(|l| println!("   {l}"));
    if !ping.status.success() {
        return Err("ping across the tunnel failed".into());
    }
    check_interrupt()?;

    println!(
        "\n== throughput: one TCP stream {LEFT_LAN} -> {RIGHT_LAN} for 3 s through the tunnel"
    );
    match tcp_throughput(&l, &r, Duration::from_secs(3)) {
        Ok(mbps) => {
            println!("   {mbps:.0} Mbit/s (indicative; `ipsecgw` bench numbers are in the README)")
        }
        Err(e) => println!("   skipped: {e}"),
    }
    check_interrupt()?;

    for (name, sock) in [("left", &lsock), ("right", &rsock)] {
        println!("\n== status of the {name} gateway (ipsecgw status)");
        match status(sock) {
            Some(s) => print!("{}", control::render_table(&s)),
            None => return Err(format!("cannot read the {name} gateway's status")),
        }
    }
    if let Ok(resp) = control::request(&lsock, &Request::new(Command::Bgp { name: None })) {
        if let Ok(rib) = resp.into_result() {
            println!("\n== BGP table of the left gateway (ipsecgw bgp)");
            print!("{}", control::render_bgp_table(&rib));
        }
    }
    println!();
    Ok(())
}

fn learned_route(ns: &str) -> bool {
    Proc::new("ip")
        .args(["-n", ns, "route", "show", "10.10.1.0/24"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("ipsec30"))
        .unwrap_or(false)
}

/// A single TCP stream through the tunnel, sender in `left`, receiver in `right`.
fn tcp_throughput(left: &str, right: &str, dur: Duration) -> Result<f64, String> {
    use crate::routing::netns::in_netns;
    let addr: SocketAddr = format!("{RIGHT_LAN}:5201")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let right = right.to_string();
    let server = std::thread::spawn(move || {
        in_netns(&right, move || -> Result<u64, String> {
            let l = TcpListener::bind(addr).map_err(|e| format!("listen: {e}"))?;
            let (mut s, _) = l.accept().map_err(|e| format!("accept: {e}"))?;
            let mut buf = vec![0u8; 1 << 16];
            let mut total = 0u64;
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return Ok(total),
                    Ok(n) => total += n as u64,
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
        })
        .map_err(|e| format!("netns: {e}"))?
    });
    std::thread::sleep(Duration::from_millis(300));
    let left = left.to_string();
    let sent = in_netns(&left, move || -> Result<(u64, Duration), String> {
        let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
            .map_err(|e| format!("connect: {e}"))?;
        let mut s = sock;
        let buf = vec![0x5au8; 1 << 16];
        let t0 = Instant::now();
        let mut total = 0u64;
        while t0.elapsed() < dur && !INTERRUPTED.load(Ordering::SeqCst) {
            s.write_all(&buf).map_err(|e| format!("write: {e}"))?;
            total += buf.len() as u64;
        }
        s.shutdown(std::net::Shutdown::Write).ok();
        Ok((total, t0.elapsed()))
    })
    .map_err(|e| format!("netns: {e}"))??;
    let received = server
        .join()
        .map_err(|_| "receiver thread panicked".to_string())??;
    let secs = sent.1.as_secs_f64().max(0.001);
    Ok(received as f64 * 8.0 / secs / 1e6)
}
