//! `ipsecgw demo`: two gateways in two fresh network namespaces, set up like the reference
//! deployment (IKEv2 PSK, ESP aes256-sha1, eBGP AS 65021 <-> AS 65515 over the tunnel),
//! traffic across, both status tables, then everything removed again, also on Ctrl-C.
//!
//! The namespaces and the veth "underlay" are lab plumbing made with `ip`; the gateways
//! themselves configure their tunnels and routes over netlink, as in production.

use crate::control::{self, Command, Request, StatusReport};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Proc, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The demo runs the example pair shipped in deploy/, with the control sockets moved.
const LEFT_CONF: &str = include_str!("../../deploy/configs/pair/left.toml");
const RIGHT_CONF: &str = include_str!("../../deploy/configs/pair/right.toml");
const LEFT_LAN: Ipv4Addr = Ipv4Addr::new(10, 2, 30, 1);
const RIGHT_LAN: Ipv4Addr = Ipv4Addr::new(10, 10, 1, 1);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Why the demo stopped.
#[derive(Debug)]
enum DemoError {
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// `ip ARGS` failed; its stderr.
    Ip {
        args: String,
        stderr: String,
    },
    /// An OS call failed: what was being done, and the error.
    Io {
        what: String,
        source: io::Error,
    },
    /// A gateway exited before the end, with its log.
    GatewayExited {
        name: String,
        status: String,
        log: String,
    },
    /// Tunnel and BGP not up in time.
    NotUp,
    PingFailed,
    NoStatus(String),
    ThreadPanicked,
}

impl DemoError {
    fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> DemoError {
        let what = what.into();
        move |source| DemoError::Io { what, source }
    }
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DemoError::Interrupted => f.write_str("interrupted"),
            DemoError::Ip { args, stderr } => write!(f, "ip {args}: {stderr}"),
            DemoError::Io { what, source } => write!(f, "{what}: {source}"),
            DemoError::GatewayExited { name, status, log } => {
                write!(f, "the {name} gateway exited ({status}):\n{log}")
            }
            DemoError::NotUp => f.write_str("the tunnel and BGP did not come up within 60 s"),
            DemoError::PingFailed => f.write_str("ping across the tunnel failed"),
            DemoError::NoStatus(name) => write!(f, "cannot read the {name} gateway's status"),
            DemoError::ThreadPanicked => f.write_str("receiver thread panicked"),
        }
    }
}

impl std::error::Error for DemoError {}

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
            // SAFETY: kill(2) takes no pointers; the child is not yet waited for, so its pid
            // cannot have been reused by another process.
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

fn ip(args: &str) -> Result<(), DemoError> {
    let out = Proc::new("ip")
        .args(args.split_whitespace())
        .output()
        .map_err(DemoError::io("cannot run ip"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DemoError::Ip {
            args: args.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn status(sock: &Path) -> Option<StatusReport> {
    control::request(sock, &Request::new(Command::Status))
        .ok()?
        .into_result()
        .ok()
}

fn check_interrupt() -> Result<(), DemoError> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err(DemoError::Interrupted)
    } else {
        Ok(())
    }
}

pub fn run() -> ExitCode {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("ipsecgw demo: needs root (it creates network namespaces and TUN devices)");
        return ExitCode::from(1);
    }
    // SAFETY: on_signal is an extern "C" fn that only stores to an atomic, which is
    // async-signal-safe; it stays valid for the life of the process.
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

fn steps(d: &mut Demo) -> Result<(), DemoError> {
    std::fs::create_dir_all(&d.dir)
        .map_err(DemoError::io(format!("cannot create {}", d.dir.display())))?;
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
    let exe = std::env::current_exe().map_err(DemoError::io("cannot find my own binary"))?;
    let dir = d.dir.display().to_string();
    // The responder first, so the initiator's first IKE_SA_INIT finds it listening.
    for (ns, name, conf) in [(&r, "right", RIGHT_CONF), (&l, "left", LEFT_CONF)] {
        let path = d.dir.join(format!("{name}.toml"));
        let sock = format!("{dir}/{name}.sock");
        std::fs::write(&path, conf.replace("/run/ipsecgw/control.sock", &sock))
            .map_err(DemoError::io(format!("writing {}", path.display())))?;
        let log_path = d.dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)
            .map_err(DemoError::io(format!("creating {}", log_path.display())))?;
        let child = Proc::new("ip")
            .args(["netns", "exec", ns])
            .arg(&exe)
            .args(["run", "--config"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(DemoError::io("duplicating the log file"))?,
            )
            .stderr(log)
            .spawn()
            .map_err(DemoError::io(format!("cannot start the {name} gateway")))?;
        d.gateways.push((name.to_string(), child));
        // Its control socket appears once its IKE sockets are bound.
        let t0 = Instant::now();
        while !Path::new(&sock).exists() && t0.elapsed() < Duration::from_secs(5) {
            check_interrupt()?;
            std::thread::sleep(Duration::from_millis(20));
        }
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
                return Err(DemoError::GatewayExited {
                    name: name.clone(),
                    status: st.to_string(),
                    log,
                });
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
            .map_or("-".into(), |b| control::bgp_state_name(b.state).to_string());
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
            return Err(DemoError::NotUp);
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
    // Our own ICMP echo (a raw socket in the left namespace): a fresh machine may lack ping.
    let rtts = icmp_echo(&l, LEFT_LAN, RIGHT_LAN, 3)?;
    for (seq, rtt) in rtts.iter().enumerate() {
        match rtt {
            Some(t) => println!(
                "   64 bytes from {RIGHT_LAN}: icmp_seq={} time={:.3} ms",
                seq + 1,
                t.as_secs_f64() * 1e3
            ),
            None => println!("   no reply for icmp_seq={}", seq + 1),
        }
    }
    let received = rtts.iter().filter(|r| r.is_some()).count();
    let loss = 100 * (rtts.len() - received) / rtts.len().max(1);
    println!(
        "   {} packets transmitted, {received} received, {loss}% packet loss",
        rtts.len()
    );
    if received == 0 {
        return Err(DemoError::PingFailed);
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
            None => return Err(DemoError::NoStatus(name.to_string())),
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

/// ICMP echo from `src` to `dst` inside namespace `ns`, one request every 200 ms; the
/// round-trip time of each, or None when no reply came within 2 s.
fn icmp_echo(
    ns: &str,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    count: u16,
) -> Result<Vec<Option<Duration>>, DemoError> {
    let sockaddr = |a: Ipv4Addr| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(a).to_be(),
        },
        sin_zero: [0; 8],
    };
    crate::routing::netns::in_netns(ns, move || {
        let os_err = |what: String| DemoError::Io {
            what,
            source: io::Error::last_os_error(),
        };
        // SAFETY: socket() returns a new descriptor or -1; a valid one is owned from here on.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
        if fd < 0 {
            return Err(os_err("raw ICMP socket".into()));
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let from_addr = sockaddr(src);
        // SAFETY: the address points to a live sockaddr_in of `len` bytes.
        if unsafe { libc::bind(raw, &from_addr as *const _ as *const libc::sockaddr, len) } != 0 {
            return Err(os_err(format!("bind {src}")));
        }
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        let tv_len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
        // SAFETY: the option value points to a live timeval of `tv_len` bytes.
        let set = unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                tv_len,
            )
        };
        if set != 0 {
            return Err(os_err("SO_RCVTIMEO".into()));
        }
        let ident = (std::process::id() & 0xffff) as u16;
        let to = sockaddr(dst);
        let mut out = Vec::new();
        for seq in 1..=count {
            let mut msg = vec![8u8, 0, 0, 0];
            msg.extend_from_slice(&ident.to_be_bytes());
            msg.extend_from_slice(&seq.to_be_bytes());
            msg.extend(std::iter::repeat_n(0x5a, 56));
            let ck = inet_checksum(&msg);
            msg[2..4].copy_from_slice(&ck.to_be_bytes());
            let t0 = Instant::now();
            // SAFETY: msg and the destination are live for the call, with the lengths given.
            let sent = unsafe {
                libc::sendto(
                    raw,
                    msg.as_ptr() as *const libc::c_void,
                    msg.len(),
                    0,
                    &to as *const _ as *const libc::sockaddr,
                    len,
                )
            };
            let mut rtt = None;
            let mut buf = [0u8; 2048];
            while sent > 0 && rtt.is_none() && t0.elapsed() < Duration::from_secs(2) {
                // SAFETY: buf is a live, writable buffer of buf.len() bytes.
                let n =
                    unsafe { libc::recv(raw, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
                let Some(pkt) = usize::try_from(n).ok().and_then(|n| buf.get(..n)) else {
                    continue;
                };
                // The kernel hands raw IPv4 sockets the IP header too.
                if pkt.len() < 20 {
                    continue;
                }
                let ihl = usize::from(pkt[0] & 0x0f) * 4;
                let Some(icmp) = pkt.get(ihl..ihl + 8) else {
                    continue;
                };
                let from = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
                if icmp[0] == 0
                    && from == dst
                    && icmp[4..6] == ident.to_be_bytes()
                    && icmp[6..8] == seq.to_be_bytes()
                {
                    rtt = Some(t0.elapsed());
                }
            }
            out.push(rtt);
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(out)
    })
    .map_err(DemoError::io(format!("netns {ns}")))?
}

/// RFC 1071 Internet checksum.
fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn learned_route(ns: &str) -> bool {
    Proc::new("ip")
        .args(["-n", ns, "route", "show", "10.10.1.0/24"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("ipsec30"))
        .unwrap_or(false)
}

/// A single TCP stream through the tunnel, sender in `left`, receiver in `right`.
fn tcp_throughput(left: &str, right: &str, dur: Duration) -> Result<f64, DemoError> {
    use crate::routing::netns::in_netns;
    let addr = SocketAddr::V4(SocketAddrV4::new(RIGHT_LAN, 5201));
    let right = right.to_string();
    let server = std::thread::spawn(move || {
        in_netns(&right, move || -> Result<u64, DemoError> {
            let l = TcpListener::bind(addr).map_err(DemoError::io("listen"))?;
            let (mut s, _) = l.accept().map_err(DemoError::io("accept"))?;
            let mut buf = vec![0u8; 1 << 16];
            let mut total = 0u64;
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return Ok(total),
                    Ok(n) => total += n as u64,
                    Err(e) => return Err(DemoError::io("read")(e)),
                }
            }
        })
        .map_err(DemoError::io("netns"))?
    });
    std::thread::sleep(Duration::from_millis(300));
    let left = left.to_string();
    let sent = in_netns(&left, move || -> Result<(u64, Duration), DemoError> {
        let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
            .map_err(DemoError::io("connect"))?;
        let mut s = sock;
        let buf = vec![0x5au8; 1 << 16];
        let t0 = Instant::now();
        let mut total = 0u64;
        while t0.elapsed() < dur && !INTERRUPTED.load(Ordering::SeqCst) {
            s.write_all(&buf).map_err(DemoError::io("write"))?;
            total += buf.len() as u64;
        }
        s.shutdown(std::net::Shutdown::Write).ok();
        Ok((total, t0.elapsed()))
    })
    .map_err(DemoError::io("netns"))??;
    let received = server.join().map_err(|_| DemoError::ThreadPanicked)??;
    let secs = sent.1.as_secs_f64().max(0.001);
    Ok(received as f64 * 8.0 / secs / 1e6)
}
