//! The packet path: a fixed pool of worker threads (not tokio tasks, not a thread per tunnel)
//! moving packets between the TUN devices and the NAT-T UDP sockets (RFC 3948) or a raw
//! IPPROTO_ESP socket, through the sans-IO ESP core in `crate::esp`.
//!
//! Every source (each TUN device, each UDP socket, the raw socket) sits in one epoll set,
//! armed one-shot: the worker that takes an event owns that source, reads a batch, takes a
//! ticket in the source's lane and re-arms it, so the next batch can go to another worker
//! while this one encrypts or decrypts. Writes happen in ticket order (`lane`). The threads
//! are `workers` (one per core by default, at most 16) plus one keepalive timer, whatever the
//! number of tunnels; an idle tunnel costs one file descriptor and a few hundred bytes.
//!
//! The SA tables are an immutable snapshot (`Arc<Tables>`) swapped on every change; a batch
//! takes one snapshot. Their maps are persistent (`table`): a change copies one path. SAs
//! are shared without locks: outbound sequence numbers are reserved atomically (in read
//! order, while the source is owned), the replay window has its own short lock
//! (`crate::esp::InboundSa`).
//!
//! Offloads: TUN devices open with IFF_VNET_HDR + TSO/GRO when the kernel allows (TSO
//! super-packets are split before encryption; decrypted packets are written in batches the
//! TUN coalesces). The NAT-T sockets use UDP GSO for runs of same-size ESP packets to one
//! peer and UDP GRO on receive; both fall back to one datagram per packet.

pub(crate) mod flow;
mod lane;
mod rx;
mod stats;
mod sys;
mod table;
mod tx;
mod worker;

pub use stats::{DropCounters, SaCounters};

use crate::esp::{EspError, InboundSa, OutboundSa, SaParams};
use crate::ike::{ChildSa, TrafficSelector};
use lane::Lane;
use stats::{GlobalStats, SaStats};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use sys::RawAddr;
use table::{Installed, State, Tables};
use tokio::sync::mpsc;

/// How often idle workers look at the shutdown flag.
const IDLE_WAKE: Duration = Duration::from_millis(200);
/// RFC 3948 4: NAT-T keepalive interval (strongSwan's default is 20 s as well).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// Socket buffers for the UDP and raw sockets.
const SOCKET_BUFFER: usize = 8 << 20;
/// Headroom in front of packets written to a TUN (the virtio-net header with offloads).
const TUN_OFFSET: usize = tun_rs::VIRTIO_NET_HDR_LEN;
/// Most packet workers, whatever the number of cores.
const MAX_WORKERS: usize = 16;
/// epoll tokens: UDP socket i is i, the raw socket RAW_TOKEN, tunnels from TUN_TOKEN_BASE.
const RAW_TOKEN: u64 = 1 << 40;
const TUN_TOKEN_BASE: u64 = 1 << 41;

/// What the daemon hands over when starting the dataplane.
pub struct DataplaneConfig {
    /// Bound to <local>:4500 (NAT-T), one per local address.
    pub udp_sockets: Vec<UdpSocket>,
    /// Also open a raw IPPROTO_ESP socket for unencapsulated ESP (IPv4).
    pub raw_esp: bool,
    /// IKE messages seen on port 4500 (non-ESP marker stripped) go here (try_send).
    pub ike_tx: mpsc::Sender<IkeDatagram>,
}

/// An IKE message received on the NAT-T port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeDatagram {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub data: Vec<u8>,
}

/// Why a CHILD SA could not be installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallError {
    /// The ESP core refused the keys or parameters of one direction.
    Sa {
        spi: u32,
        inbound: bool,
        error: EspError,
    },
    /// UDP encapsulation asked for, but no 4500 socket serves this local address.
    NoUdpSocket(IpAddr),
    /// Plain ESP asked for, but the raw ESP socket was not opened (`raw_esp = false`).
    NoRawSocket,
    /// Plain ESP to an IPv6 peer (the raw socket is IPv4 only).
    RawIpv6(IpAddr),
    /// An SA with this inbound SPI is already installed.
    AlreadyInstalled(u32),
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallError::Sa {
                spi,
                inbound,
                error,
            } => {
                let dir = if *inbound { "inbound" } else { "outbound" };
                write!(f, "{dir} SA {spi:08x}: {error}")
            }
            InstallError::NoUdpSocket(ip) => write!(f, "no UDP 4500 socket for local address {ip}"),
            InstallError::NoRawSocket => write!(
                f,
                "SA without UDP encapsulation needs the raw ESP socket (raw_esp = true)"
            ),
            InstallError::RawIpv6(ip) => {
                write!(f, "raw ESP to {ip} is not supported (IPv4 only)")
            }
            InstallError::AlreadyInstalled(spi) => {
                write!(f, "inbound SPI {spi:08x} is already installed")
            }
        }
    }
}

impl std::error::Error for InstallError {}

/// Handle to the running packet threads. Cheap to clone.
#[derive(Clone)]
pub struct Dataplane {
    shared: Arc<Shared>,
}

impl fmt::Debug for Dataplane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataplane")
            .field("udp", &self.shared.udp.len())
            .field("workers", &self.shared.workers)
            .finish_non_exhaustive()
    }
}

struct UdpEndpoint {
    socket: UdpSocket,
    local: SocketAddr,
    /// UDP GSO sends work on this socket (cleared after the kernel refuses one).
    gso: AtomicBool,
    lane: Lane,
}

struct Tunnel {
    conn: String,
    ifname: String,
    /// IFF_VNET_HDR with TSO/GRO is on for this device.
    offload: bool,
    mtu: usize,
    dev: tun_rs::SyncDevice,
    token: u64,
    lane: Lane,
}

/// Inbound half of an installed CHILD SA.
struct InSa {
    esp: InboundSa,
    local_ts: Vec<TrafficSelector>,
    remote_ts: Vec<TrafficSelector>,
    stats: Arc<SaStats>,
}

/// How an outbound SA's packets leave.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Via {
    Udp(usize),
    Raw,
}

/// Outbound half of an installed CHILD SA.
struct OutSa {
    esp: OutboundSa,
    local_ts: Vec<TrafficSelector>,
    remote_ts: Vec<TrafficSelector>,
    via: Via,
    /// Where packets go; changes when the peer's NAT mapping moves (`update_remote`).
    dest: RwLock<RawAddr>,
    stats: Arc<SaStats>,
}

impl OutSa {
    fn dest(&self) -> RawAddr {
        *self.dest.read().unwrap_or_else(|e| e.into_inner())
    }
}

struct Shared {
    tables: RwLock<Arc<Tables>>,
    state: Mutex<State>,
    udp: Vec<UdpEndpoint>,
    raw: Option<OwnedFd>,
    raw_lane: Lane,
    ike_tx: mpsc::Sender<IkeDatagram>,
    shutdown: AtomicBool,
    drops: GlobalStats,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Base for the nanosecond timestamps kept in atomics.
    epoch: Instant,
    /// NAT-T keepalive interval in milliseconds.
    keepalive_ms: AtomicU64,
    /// Open new TUN devices with IFF_VNET_HDR + TSO/GRO offloads.
    tun_offload: AtomicBool,
    epoll: sys::Epoll,
    next_token: AtomicU64,
    /// Largest MTU of any tunnel: the workers size their packet buffers by it.
    max_mtu: AtomicUsize,
    workers: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking packet thread must not wedge the control plane.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn snapshot(&self) -> Arc<Tables> {
        self.tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn now_ns(&self) -> u64 {
        // +1 so that 0 keeps meaning "never".
        self.epoch.elapsed().as_nanos() as u64 + 1
    }

    /// Rebuilds every table (tunnel devices changed: configuration time only).
    fn rebuild(&self, state: &State) {
        self.publish(Tables::build(state));
    }

    /// Makes `t` the snapshot the workers take from their next batch on.
    fn publish(&self, t: Tables) {
        *self.tables.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(t);
    }

    /// A copy of the current tables to change (O(1): the maps share their nodes). Called
    /// with the state lock held, so nothing else publishes in between.
    fn tables_to_change(&self) -> Tables {
        (*self.snapshot()).clone()
    }

    fn socket_for(&self, local: SocketAddr) -> Option<usize> {
        let exact = self.udp.iter().position(|u| u.local.ip() == local.ip());
        let wildcard = || {
            self.udp
                .iter()
                .position(|u| u.local.ip().is_unspecified() && u.local.is_ipv4() == local.is_ipv4())
        };
        let same_family = || {
            self.udp
                .iter()
                .position(|u| u.local.is_ipv4() == local.is_ipv4())
        };
        exact.or_else(wildcard).or_else(same_family)
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(f)
}

/// Workers to start: one per core (IPSECGW_WORKERS overrides), 1..=MAX_WORKERS.
fn worker_count() -> usize {
    std::env::var("IPSECGW_WORKERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, MAX_WORKERS)
}

impl Dataplane {
    /// Takes over the sockets and starts the packet workers and the keepalive thread.
    pub fn start(cfg: DataplaneConfig) -> io::Result<Dataplane> {
        let epoll = sys::Epoll::new()?;
        let mut udp = Vec::with_capacity(cfg.udp_sockets.len());
        for socket in cfg.udp_sockets {
            let local = socket.local_addr()?;
            socket.set_nonblocking(false)?;
            sys::set_buffers(socket.as_raw_fd(), SOCKET_BUFFER);
            // Best effort: without GRO every datagram arrives on its own, which also works.
            sys::enable_udp_gro(socket.as_raw_fd());
            udp.push(UdpEndpoint {
                socket,
                local,
                gso: AtomicBool::new(true),
                lane: Lane::default(),
            });
        }
        let raw = if cfg.raw_esp {
            let fd = sys::raw_esp_socket()?;
            sys::set_buffers(fd.as_raw_fd(), SOCKET_BUFFER);
            Some(fd)
        } else {
            None
        };
        for (i, u) in udp.iter().enumerate() {
            epoll.add(u.socket.as_raw_fd(), i as u64)?;
        }
        if let Some(r) = &raw {
            epoll.add(r.as_raw_fd(), RAW_TOKEN)?;
        }
        let workers = worker_count();
        let shared = Arc::new(Shared {
            tables: RwLock::new(Arc::new(Tables::default())),
            state: Mutex::new(State::default()),
            udp,
            raw,
            raw_lane: Lane::default(),
            ike_tx: cfg.ike_tx,
            shutdown: AtomicBool::new(false),
            drops: GlobalStats::default(),
            threads: Mutex::new(Vec::new()),
            epoch: Instant::now(),
            keepalive_ms: AtomicU64::new(KEEPALIVE_INTERVAL.as_millis() as u64),
            tun_offload: AtomicBool::new(true),
            epoll,
            next_token: AtomicU64::new(TUN_TOKEN_BASE),
            max_mtu: AtomicUsize::new(1500),
            workers,
        });
        let dp = Dataplane {
            shared: shared.clone(),
        };
        let mut handles = Vec::new();
        let mut start = |name: String, f: Box<dyn FnOnce() + Send>| match spawn(name, f) {
            Ok(h) => {
                handles.push(h);
                Ok(())
            }
            Err(e) => Err(e),
        };
        let mut result = Ok(());
        for id in 0..workers {
            let s = shared.clone();
            result = start(
                format!("esp-worker-{id}"),
                Box::new(move || worker::run(&s)),
            );
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            let s = shared.clone();
            result = start("esp-keepalive".into(), Box::new(move || keepalive_loop(&s)));
        }
        if let Err(e) = result {
            dp.stop_threads(handles);
            return Err(e);
        }
        *lock(&shared.threads) = handles;
        tracing::info!(
            workers,
            crypto = %crate::crypto::fast::describe(),
            "data plane started"
        );
        Ok(dp)
    }

    fn stop_threads(&self, handles: Vec<JoinHandle<()>>) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for h in handles {
            let _ = h.join();
        }
    }

    /// Packet worker threads (fixed at start, independent of the number of tunnels).
    pub fn workers(&self) -> usize {
        self.shared.workers
    }

    /// Creates and opens the TUN device for `conn` (layer 3, no packet information) and hands
    /// it to the workers. Addresses and routes are configured elsewhere (crate::routing).
    pub fn add_tunnel(&self, conn: &str, ifname: &str, mtu: u16) -> io::Result<u32> {
        let mut state = lock(&self.shared.state);
        if state.tunnels.contains_key(conn) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("connection {conn} already has a tunnel device"),
            ));
        }
        let build = |offload: bool| {
            tun_rs::DeviceBuilder::new()
                .name(ifname)
                .mtu(mtu)
                .layer(tun_rs::Layer::L3)
                .packet_information(false)
                .with(|b| {
                    b.offload(offload);
                })
                .build_sync()
        };
        let want_offload = self.shared.tun_offload.load(Ordering::Relaxed);
        let dev = match build(want_offload) {
            Ok(dev) => Ok(dev),
            Err(e) if want_offload => {
                tracing::warn!(ifname, "TUN offloads unavailable ({e}); using plain TUN");
                build(false)
            }
            Err(e) => Err(e),
        }
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open TUN device {ifname}: {e}")))?;
        let offload = dev.tcp_gso();
        let ifindex = dev.if_index()?;
        dev.set_nonblocking(true)?;
        let token = self.shared.next_token.fetch_add(1, Ordering::Relaxed);
        let tun = Arc::new(Tunnel {
            conn: conn.to_string(),
            ifname: ifname.to_string(),
            offload,
            mtu: usize::from(mtu),
            dev,
            token,
            lane: Lane::default(),
        });
        self.shared
            .max_mtu
            .fetch_max(usize::from(mtu), Ordering::Relaxed);
        state.tunnels.insert(conn.to_string(), tun.clone());
        self.shared.rebuild(&state);
        self.shared.epoll.add(tun.dev.as_raw_fd(), token)?;
        tracing::info!(conn, ifname, ifindex, mtu, offload, "tunnel device up");
        Ok(ifindex)
    }

    /// Takes the tunnel device away from the workers and closes it (the interface
    /// disappears before this returns).
    pub fn remove_tunnel(&self, conn: &str) {
        let removed = {
            let mut state = lock(&self.shared.state);
            let removed = state.tunnels.remove(conn);
            self.shared.rebuild(&state);
            removed
        };
        if let Some(tun) = removed {
            self.shared.epoll.delete(tun.dev.as_raw_fd());
            close_when_unused(tun, &self.shared);
        }
    }

    /// Installs both directions of a CHILD SA. With `rekey_of = Some(old_spi_in)` the new
    /// outbound SA takes over at once, while the old inbound SA keeps accepting until
    /// `remove(old_spi_in)` (make-before-break).
    pub fn install(&self, sa: &ChildSa) -> Result<(), InstallError> {
        let params_in = SaParams {
            spi: sa.spi_in,
            encr: sa.encr,
            integ: sa.integ,
            encr_key: sa.encr_key_in.clone(),
            integ_key: sa.integ_key_in.clone(),
            esn: sa.esn,
            replay_window: sa.replay_window,
        };
        let params_out = SaParams {
            spi: sa.spi_out,
            encr: sa.encr,
            integ: sa.integ,
            encr_key: sa.encr_key_out.clone(),
            integ_key: sa.integ_key_out.clone(),
            esn: sa.esn,
            replay_window: 0,
        };
        let inbound = InboundSa::new(&params_in).map_err(|error| InstallError::Sa {
            spi: sa.spi_in,
            inbound: true,
            error,
        })?;
        let outbound = OutboundSa::new(&params_out).map_err(|error| InstallError::Sa {
            spi: sa.spi_out,
            inbound: false,
            error,
        })?;
        let (via, dest) = self.route_for(sa.udp_encap, sa.local, sa.remote)?;
        let stats = Arc::new(SaStats::default());
        let inb = Arc::new(InSa {
            esp: inbound,
            local_ts: sa.local_ts.clone(),
            remote_ts: sa.remote_ts.clone(),
            stats: stats.clone(),
        });
        let outb = Arc::new(OutSa {
            esp: outbound,
            local_ts: sa.local_ts.clone(),
            remote_ts: sa.remote_ts.clone(),
            via,
            dest: RwLock::new(dest),
            stats,
        });
        let mut state = lock(&self.shared.state);
        if state.get(sa.spi_in).is_some() {
            return Err(InstallError::AlreadyInstalled(sa.spi_in));
        }
        let mut tables = self.shared.tables_to_change();
        let new = Installed {
            conn: sa.conn.clone(),
            child: sa.child.clone(),
            spi_in: sa.spi_in,
            spi_out: sa.spi_out,
            udp_encap: sa.udp_encap,
            inb,
            outb,
            out_active: true,
            seq: 0,
        };
        state.install(&mut tables, new, sa.rekey_of);
        self.shared.publish(tables);
        tracing::info!(conn = %sa.conn, child = %sa.child, spi_in = %format_args!("{:08x}", sa.spi_in),
            spi_out = %format_args!("{:08x}", sa.spi_out), encap = sa.udp_encap, "CHILD SA installed");
        Ok(())
    }

    /// Socket and destination for packets from `local` to `remote`.
    fn route_for(
        &self,
        udp_encap: bool,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<(Via, RawAddr), InstallError> {
        if udp_encap {
            let idx = self
                .shared
                .socket_for(local)
                .ok_or(InstallError::NoUdpSocket(local.ip()))?;
            Ok((Via::Udp(idx), RawAddr::from_socket_addr(remote)))
        } else {
            if self.shared.raw.is_none() {
                return Err(InstallError::NoRawSocket);
            }
            let dest = sys::raw_dest(remote.ip()).ok_or(InstallError::RawIpv6(remote.ip()))?;
            Ok((Via::Raw, dest))
        }
    }

    /// The peer of the CHILD SA whose inbound SPI is `spi_in` is now at `remote` (its NAT
    /// mapping moved, RFC 7296 2.23): the outbound half sends there from now on, without
    /// resetting its sequence number. False if no such SA is installed.
    pub fn update_remote(&self, spi_in: u32, remote: SocketAddr) -> bool {
        let state = lock(&self.shared.state);
        let Some(s) = state.get(spi_in) else {
            return false;
        };
        let dest = match s.outb.via {
            Via::Udp(_) => RawAddr::from_socket_addr(remote),
            Via::Raw => match sys::raw_dest(remote.ip()) {
                Some(d) => d,
                None => return false,
            },
        };
        *s.outb.dest.write().unwrap_or_else(|e| e.into_inner()) = dest;
        tracing::info!(spi_in = %format_args!("{spi_in:08x}"), %remote, "CHILD SA peer address updated");
        true
    }

    /// Removes the SA pair whose inbound SPI is `spi_in`. The cipher objects (and their keys)
    /// are dropped as soon as no worker holds the old snapshot (at most one batch).
    pub fn remove(&self, spi_in: u32) {
        let mut state = lock(&self.shared.state);
        let mut tables = self.shared.tables_to_change();
        if state.remove(&mut tables, spi_in) {
            self.shared.publish(tables);
            tracing::info!(spi_in = %format_args!("{spi_in:08x}"), "CHILD SA removed");
        }
    }

    /// One row per installed SA pair.
    pub fn counters(&self) -> Vec<SaCounters> {
        let state = lock(&self.shared.state);
        let epoch = self.shared.epoch;
        state
            .in_order()
            .into_iter()
            .map(|s| {
                s.inb.stats.snapshot(
                    &s.conn,
                    &s.child,
                    s.spi_in,
                    s.spi_out,
                    s.udp_encap,
                    s.out_active,
                    s.outb.esp.needs_rekey(),
                    epoch,
                )
            })
            .collect()
    }

    /// Changes the NAT-T keepalive interval (default 20 s); takes effect within one interval.
    pub fn set_keepalive_interval(&self, interval: Duration) {
        let ms = interval.as_millis().clamp(100, u128::from(u32::MAX)) as u64;
        self.shared.keepalive_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether the tunnel device of `conn` runs with offloads (None: no such tunnel).
    pub fn tunnel_offload(&self, conn: &str) -> Option<bool> {
        lock(&self.shared.state)
            .tunnels
            .get(conn)
            .map(|t| t.offload)
    }

    /// Whether TUN devices opened from now on use IFF_VNET_HDR with TSO/GRO offloads
    /// (default on; falls back to a plain TUN when the kernel refuses).
    pub fn set_tun_offload(&self, on: bool) {
        self.shared.tun_offload.store(on, Ordering::Relaxed);
    }

    /// Drops not attributable to an SA.
    pub fn global_drops(&self) -> DropCounters {
        self.shared.drops.snapshot()
    }

    /// Stops every thread and closes the TUN devices. Idempotent.
    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        let handles: Vec<_> = lock(&self.shared.threads).drain(..).collect();
        for h in handles {
            let _ = h.join();
        }
        let tunnels: Vec<_> = {
            let mut state = lock(&self.shared.state);
            let t: Vec<_> = state.tunnels.drain().map(|(_, t)| t).collect();
            state.clear();
            self.shared.rebuild(&state);
            t
        };
        for tun in tunnels {
            self.shared.epoll.delete(tun.dev.as_raw_fd());
            close_when_unused(tun, &self.shared);
        }
    }
}

/// Drops the last reference to a removed tunnel (closing the device) once the worker that
/// may still hold it for one batch has let go; gives up waiting after a second.
fn close_when_unused(tun: Arc<Tunnel>, shared: &Shared) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while Arc::strong_count(&tun) > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let ifname = tun.ifname.clone();
    let conn = tun.conn.clone();
    drop(tun);
    let _ = shared;
    tracing::info!(conn, ifname, "tunnel device removed");
}

// ------------------------------------------------------------------------------------------
// NAT-T keepalives

fn keepalive_loop(shared: &Shared) {
    let mut last = Instant::now();
    while !shared.shutdown.load(Ordering::Relaxed) {
        std::thread::sleep(IDLE_WAKE);
        let interval = Duration::from_millis(shared.keepalive_ms.load(Ordering::Relaxed));
        if last.elapsed() < interval {
            continue;
        }
        last = Instant::now();
        let tables = shared.snapshot();
        for sa in tables.keepalive.values() {
            if let Via::Udp(i) = sa.via {
                if let Some(ep) = shared.udp.get(i) {
                    if sys::send_to(ep.socket.as_raw_fd(), &[0xff], &sa.dest()).is_ok() {
                        shared.drops.keepalives_sent.inc();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
