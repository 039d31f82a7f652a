//! The attacker: IKE_SA_INIT requests from spoofed source addresses and ports, crafted on a
//! raw socket (IP header included) from one real request with a fresh random SPIi each, no
//! state kept. The spoofed range is routed back to the generator's veth, where a raw UDP
//! socket counts what the responder answered (COOKIE demands or anything else).

use super::udp::{enter_netns, sockaddr};
use ipsecgw::ike::codec::{notify, Message, Payload};
use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Spoofed sources: 198.18.0.0/15 (RFC 2544 benchmarking range).
pub const SPOOF_BASE: u32 = 0xC612_0000;
pub const SPOOF_NET: &str = "198.18.0.0/15";

#[derive(Clone, Debug, Default)]
pub struct FloodStats {
    pub sent: u64,
    pub send_errors: u64,
    pub secs: f64,
    /// Answers seen on the wire to spoofed addresses.
    pub cookie_answers: u64,
    pub other_answers: u64,
}

pub struct Flood {
    stop: Arc<AtomicBool>,
    sender: JoinHandle<io::Result<FloodStats>>,
    listener: JoinHandle<io::Result<(u64, u64)>>,
}

/// xorshift64*: cheap randomness for SPIs, addresses and ports.
struct Xs(u64);
impl Xs {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn raw_socket(proto: libc::c_int) -> io::Result<OwnedFd> {
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// IPv4 + UDP header in front of `ike` (the kernel fills the IP checksum and length; a UDP
/// checksum of 0 means none).
fn packet(src: SocketAddrV4, dst: SocketAddrV4, ike: &[u8]) -> Vec<u8> {
    let udp_len = (8 + ike.len()) as u16;
    let mut p = Vec::with_capacity(20 + udp_len as usize);
    p.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src.ip().octets());
    p.extend_from_slice(&dst.ip().octets());
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(ike);
    p
}

fn send_loop(
    ns: &str,
    template: &[u8],
    dst: SocketAddrV4,
    pps: u64,
    stop: &AtomicBool,
) -> io::Result<FloodStats> {
    enter_netns(ns)?;
    let fd = raw_socket(libc::IPPROTO_RAW)?;
    let to = sockaddr(dst);
    let mut rng = Xs(0x9E37_79B9_7F4A_7C15 ^ std::process::id() as u64);
    let mut st = FloodStats::default();
    let t0 = Instant::now();
    let mut ike = template.to_vec();
    while !stop.load(Ordering::Relaxed) {
        let due = (t0.elapsed().as_secs_f64() * pps as f64) as u64;
        while st.sent + st.send_errors < due {
            ike[..8].copy_from_slice(&rng.next().to_be_bytes());
            let r = rng.next();
            let src_ip = Ipv4Addr::from(SPOOF_BASE | (r as u32 & 0x1_FFFF));
            let port = 1024 + ((r >> 32) as u16 % 60000);
            let p = packet(SocketAddrV4::new(src_ip, port), dst, &ike);
            let n = unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    p.as_ptr() as *const libc::c_void,
                    p.len(),
                    0,
                    &to as *const libc::sockaddr_in as *const libc::sockaddr,
                    size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            if n < 0 {
                st.send_errors += 1;
            } else {
                st.sent += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    st.secs = t0.elapsed().as_secs_f64();
    Ok(st)
}

/// Counts the responder's answers to spoofed addresses: (cookie demands, others).
fn listen_loop(ns: &str, from: Ipv4Addr, stop: &AtomicBool) -> io::Result<(u64, u64)> {
    enter_netns(ns)?;
    let fd = raw_socket(libc::IPPROTO_UDP)?;
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    let mut buf = vec![0u8; 65536];
    let (mut cookies, mut others) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        if n < 28 {
            continue;
        }
        let p = &buf[..n as usize];
        let ihl = (p[0] & 0x0f) as usize * 4;
        let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
        let dst = u32::from_be_bytes([p[16], p[17], p[18], p[19]]);
        if src != from || dst & 0xFFFE_0000 != SPOOF_BASE || p.len() < ihl + 8 {
            continue;
        }
        let cookie = Message::parse(&p[ihl + 8..]).is_ok_and(|m| {
            m.payloads
                .iter()
                .any(|x| matches!(x, Payload::Notify(nt) if nt.ntype == notify::COOKIE))
        });
        if cookie {
            cookies += 1;
        } else {
            others += 1;
        }
    }
    Ok((cookies, others))
}

impl Flood {
    /// Starts flooding `dst` at `pps` requests per second from inside namespace `ns`.
    pub fn start(ns: &str, template: Vec<u8>, dst: SocketAddrV4, pps: u64) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let (s1, s2) = (stop.clone(), stop.clone());
        let (ns1, ns2) = (ns.to_string(), ns.to_string());
        let listener = std::thread::spawn(move || listen_loop(&ns2, *dst.ip(), &s2));
        let sender = std::thread::spawn(move || send_loop(&ns1, &template, dst, pps, &s1));
        Flood {
            stop,
            sender,
            listener,
        }
    }

    pub fn stop(self) -> FloodStats {
        self.stop.store(true, Ordering::Relaxed);
        let mut st = self
            .sender
            .join()
            .expect("flood thread")
            .expect("flood socket (root needed)");
        let (c, o) = self
            .listener
            .join()
            .expect("listener")
            .expect("raw UDP socket");
        st.cookie_answers = c;
        st.other_answers = o;
        st
    }
}
