//! The UDP sockets of the control plane: IKE on 500 or a configured `local_port` (read here,
//! on tokio) and the NAT-T port 4500, whose receive side belongs to the data plane threads
//! (ESP-in-UDP dominates it); IKE found there comes back to us over a channel. We send IKE on
//! 4500 through a duplicate of the same socket so the peer sees one source port. The readers
//! screen IKE_SA_INIT requests with the engine's cookie gate and pass the rest in batches.

use super::error::DaemonError;
use crate::ike::{CookieGate, Screened, Transmit, NATT_PORT};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;

pub const IKE_PORT: u16 = 500;
use crate::esp::NON_ESP_MARKER;

pub struct IkeSockets {
    /// IKE sockets by local address and port (500, or a connection's `local_port`).
    ike: HashMap<SocketAddr, UdpSocket>,
    /// Send side of the NAT-T socket, per local address.
    natt: HashMap<IpAddr, UdpSocket>,
}

/// The host's IPv4 addresses (loopback aside), for a gateway configured without local_addrs.
fn host_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: on success getifaddrs hands us a null-terminated list that stays valid until the
    // single freeifaddrs below; nothing borrowed from it (only copied Ipv4Addr values) outlives
    // that. ifa_addr may be null (checked) and is read as sockaddr_in only when its family says
    // AF_INET; libc allocates the entries suitably aligned for the sockaddr type they hold.
    unsafe {
        if libc::getifaddrs(&mut ifap) != 0 {
            return out;
        }
        let mut p = ifap;
        while !p.is_null() {
            let a = (*p).ifa_addr;
            if !a.is_null() && i32::from((*a).sa_family) == libc::AF_INET {
                let sin = &*(a as *const libc::sockaddr_in);
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() {
                    out.push(IpAddr::V4(ip));
                }
            }
            p = (*p).ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    out
}

/// Receive and send buffer of the IKE sockets. Under a flood the readers answer ~20,000
/// COOKIE demands a second through the socket the IKE loop sends its responses on, and a
/// default-sized buffer (208 KiB) that fills up drops both (EAGAIN), costing honest peers a
/// retransmission timeout; this rides out ~0.2 s of backlog at that rate.
const IKE_SOCKET_BUFFER: usize = 4 << 20;

/// Sets both socket buffers; SO_*BUFFORCE needs CAP_NET_ADMIN (the daemon has it), plain
/// SO_*BUF (capped by net.core.[rw]mem_max) is the fallback.
fn set_buffers(s: &UdpSocket, bytes: usize) {
    use std::os::fd::AsRawFd;
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    let set = |name: libc::c_int| {
        // SAFETY: setsockopt reads one c_int from the pointer we pass, which lives on our
        // stack for the whole call; the fd is the open socket `s` borrows.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                name,
                &v as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if set(force) != 0 {
            set(plain);
        }
    }
}

/// Binds the IKE port(s) and 4500 on every local address. Without configured local addresses
/// it binds each address the host has, rather than the wildcard, so that every datagram arrives
/// with its real local address: NAT detection hashes it, and a wildcard socket cannot tell.
/// Returns our sockets and the 4500 sockets to hand to the data plane.
pub fn bind_all(
    addrs: &[IpAddr],
    ports: &[u16],
) -> Result<(IkeSockets, Vec<UdpSocket>), DaemonError> {
    let bind = |addr: SocketAddr| {
        UdpSocket::bind(addr).map_err(|source| DaemonError::Bind { addr, source })
    };
    let bind_ike = |addr: SocketAddr| {
        let s = bind(addr)?;
        set_buffers(&s, IKE_SOCKET_BUFFER);
        Ok::<_, DaemonError>(s)
    };
    let mut list: Vec<IpAddr> = addrs.to_vec();
    if list.is_empty() {
        list = host_addresses();
    }
    if list.is_empty() {
        list.push(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
    list.sort();
    list.dedup();
    let mut ports: Vec<u16> = ports.iter().copied().filter(|p| *p != NATT_PORT).collect();
    if ports.is_empty() {
        ports.push(IKE_PORT);
    }
    ports.sort_unstable();
    ports.dedup();
    let mut ike = HashMap::new();
    let mut natt_send = HashMap::new();
    let mut natt = Vec::new();
    for a in list {
        for &p in &ports {
            let s = bind_ike(SocketAddr::new(a, p))?;
            ike.insert(SocketAddr::new(a, p), s);
        }
        let s4500 = bind(SocketAddr::new(a, NATT_PORT))?;
        let send4500 = s4500.try_clone().map_err(|source| DaemonError::Socket {
            what: format!("cannot duplicate the {a}:{NATT_PORT} socket"),
            source,
        })?;
        natt.push(s4500);
        natt_send.insert(a, send4500);
    }
    Ok((
        IkeSockets {
            ike,
            natt: natt_send,
        },
        natt,
    ))
}

/// Datagrams a reader handed over in one channel message: it drains its socket on each
/// wake-up, so the IKE loop wakes once per burst instead of once per datagram.
pub struct IkeBatch {
    local: SocketAddr,
    /// The datagrams back to back; `msgs` says where each one is and who sent it.
    bytes: Vec<u8>,
    msgs: Vec<(SocketAddr, std::ops::Range<usize>)>,
}

impl IkeBatch {
    fn new(local: SocketAddr) -> IkeBatch {
        IkeBatch {
            local,
            bytes: Vec::with_capacity(BATCH_BYTES),
            msgs: Vec::with_capacity(BATCH_MAX),
        }
    }

    fn push(&mut self, remote: SocketAddr, data: &[u8]) {
        let at = self.bytes.len();
        self.bytes.extend_from_slice(data);
        self.msgs.push((remote, at..self.bytes.len()));
    }

    fn is_full(&self) -> bool {
        self.msgs.len() >= BATCH_MAX || self.bytes.len() >= BATCH_BYTES
    }

    /// (local, remote, datagram) of each datagram, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, SocketAddr, &[u8])> {
        self.msgs
            .iter()
            .map(|(r, span)| (self.local, *r, &self.bytes[span.clone()]))
    }
}

/// At most this many datagrams (or bytes, past which a batch is sent) per batch.
const BATCH_MAX: usize = 64;
const BATCH_BYTES: usize = 64 * 1024;
/// Spent batches kept for reuse (their buffers keep their capacity).
const POOL_MAX: usize = 16;

/// Spent batches, handed back by the IKE loop to the readers.
#[derive(Clone, Default)]
pub struct BatchPool(Arc<Mutex<Vec<IkeBatch>>>);

impl BatchPool {
    fn take(&self, local: SocketAddr) -> IkeBatch {
        let spare = self.0.lock().ok().and_then(|mut p| p.pop());
        match spare {
            Some(mut b) => {
                b.local = local;
                b
            }
            None => IkeBatch::new(local),
        }
    }

    /// Gives a handled batch back (dropped when the pool is full).
    pub fn put(&self, mut b: IkeBatch) {
        b.bytes.clear();
        b.msgs.clear();
        if let Ok(mut p) = self.0.lock() {
            if p.len() < POOL_MAX {
                p.push(b);
            }
        }
    }
}

impl IkeSockets {
    /// Spawns one reader task per IKE socket (4500 is read by the data plane). Each wake-up
    /// it drains its socket: IKE_SA_INIT requests the cookie gate answers (a flood, while
    /// under load) are answered from here and never reach the IKE loop; the rest go to `tx`
    /// in batches.
    pub fn spawn_readers(
        &self,
        tx: mpsc::Sender<IkeBatch>,
        pool: BatchPool,
        gate: Arc<CookieGate>,
    ) -> Result<(), DaemonError> {
        for (&local, s) in &self.ike {
            let failed = |what: &'static str| {
                move |source| DaemonError::Socket {
                    what: format!("cannot {what} the IKE socket {local}"),
                    source,
                }
            };
            let std_sock = s.try_clone().map_err(failed("duplicate"))?;
            std_sock
                .set_nonblocking(true)
                .map_err(failed("configure"))?;
            let sock = tokio::net::UdpSocket::from_std(std_sock).map_err(failed("register"))?;
            let (tx, pool, gate) = (tx.clone(), pool.clone(), gate.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    if let Err(e) = sock.readable().await {
                        tracing::debug!("IKE receive on {local}: {e}");
                        continue;
                    }
                    let batch = drain(&sock, local, &mut buf, &gate, pool.take(local));
                    if batch.msgs.is_empty() {
                        pool.put(batch);
                    } else if tx.send(batch).await.is_err() {
                        return;
                    }
                }
            });
        }
        Ok(())
    }

    /// Sends one IKE message, from 4500 with the non-ESP marker when the engine says so.
    pub fn send(&self, t: &Transmit) {
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let port = t.local.port();
        let res = if port == NATT_PORT {
            let Some(s) = self
                .natt
                .get(&t.local.ip())
                .or_else(|| self.natt.get(&any))
                .or_else(|| self.natt.values().next())
            else {
                return;
            };
            let mut d = Vec::with_capacity(t.data.len() + 4);
            d.extend_from_slice(&NON_ESP_MARKER);
            d.extend_from_slice(&t.data);
            s.send_to(&d, t.remote)
        } else {
            let Some(s) = self
                .ike
                .get(&t.local)
                .or_else(|| self.ike.get(&SocketAddr::new(any, port)))
                .or_else(|| {
                    self.ike
                        .iter()
                        .find(|(k, _)| k.port() == port)
                        .map(|(_, s)| s)
                })
            else {
                tracing::warn!("no IKE socket for {} (to {})", t.local, t.remote);
                return;
            };
            s.send_to(&t.data, t.remote)
        };
        if let Err(e) = res {
            tracing::warn!("cannot send IKE to {}: {e}", t.remote);
        }
    }
}

/// Reads what `sock` has (until it would block or `batch` is full), answering what the
/// cookie gate answers and keeping the rest in `batch`.
fn drain(
    sock: &tokio::net::UdpSocket,
    local: SocketAddr,
    buf: &mut [u8],
    gate: &CookieGate,
    mut batch: IkeBatch,
) -> IkeBatch {
    let now = Instant::now();
    while !batch.is_full() {
        let (n, remote) = match sock.try_recv_from(buf) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => {
                tracing::debug!("IKE receive on {local}: {e}");
                break;
            }
        };
        match gate.screen(now, remote, &buf[..n]) {
            Screened::Pass => batch.push(remote, &buf[..n]),
            // Nothing kept, nothing retried: a COOKIE demand that cannot go now is one the
            // (likely spoofed) sender does without; an honest initiator retransmits.
            Screened::Answer(reply) => {
                if let Err(e) = sock.try_send_to(&reply, remote) {
                    tracing::trace!("cannot send COOKIE to {remote}: {e}");
                }
            }
        }
    }
    batch
}
