//! The packet path: plain OS threads (not tokio tasks) moving packets between the TUN devices
//! and the NAT-T UDP sockets (RFC 3948) or a raw IPPROTO_ESP socket, through the sans-IO ESP
//! core in `crate::esp`.
//!
//! Threads: one receive loop per UDP socket (recvmmsg batches), one for the raw ESP socket,
//! one transmit loop per TUN device (reads a batch, encapsulates, sendmmsg), one keepalive
//! timer. The SA tables are an immutable snapshot (`Arc<Tables>`) swapped on every change;
//! the packet loops take one snapshot per batch, so lookups need no lock. Each SA direction
//! sits in its own mutex, which a loop takes once per run of packets for the same SA (in
//! practice once per batch) and which only one thread normally touches.
//!
//! Offloads: TUN devices open with IFF_VNET_HDR + TSO/GRO when the kernel allows (TSO
//! super-packets are split before encryption; decrypted packets are written in batches the
//! TUN coalesces). The NAT-T sockets use UDP GSO for runs of same-size ESP packets to one
//! peer and UDP GRO on receive; both fall back to one datagram per packet.

mod flow;
mod stats;
mod sys;

pub use stats::{DropCounters, SaCounters};

use crate::esp::{packet_spi, InboundSa, OutboundSa, SaParams};
use crate::ike::{ChildSa, TrafficSelector};
use flow::Flow;
use stats::{GlobalStats, SaStats};
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use sys::{RawAddr, RecvBatch, BATCH};
use tokio::sync::mpsc;

/// How often the loops look at the shutdown flag when idle.
const IDLE_WAKE: Duration = Duration::from_millis(200);
/// RFC 3948 4: NAT-T keepalive interval (strongSwan's default is 20 s as well).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// Socket buffers for the UDP and raw sockets.
const SOCKET_BUFFER: usize = 8 << 20;
/// Receive buffer per UDP message: room for a UDP GRO super-datagram.
const UDP_RX_BUF_LEN: usize = 65536;
/// Receive buffer per raw ESP datagram: jumbo frames fit; larger ones count as truncated.
const RAW_RX_BUF_LEN: usize = 9216;
/// One TUN read: the largest IP packet.
const TUN_BUF_LEN: usize = 65536;
/// Headroom in front of packets written to a TUN (the virtio-net header with offloads).
const TUN_OFFSET: usize = tun_rs::VIRTIO_NET_HDR_LEN;
/// RFC 3948 2.2: IKE on port 4500 is prefixed with four zero bytes.
const NON_ESP_MARKER: [u8; 4] = [0; 4];

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

/// Handle to the running packet threads. Cheap to clone.
#[derive(Clone)]
pub struct Dataplane {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Dataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataplane")
            .field("udp", &self.shared.udp.len())
            .finish_non_exhaustive()
    }
}

struct UdpEndpoint {
    socket: UdpSocket,
    local: SocketAddr,
    /// UDP GSO sends work on this socket (cleared after the kernel refuses one).
    gso: AtomicBool,
}

struct Tunnel {
    conn: String,
    ifname: String,
    /// IFF_VNET_HDR with TSO/GRO is on for this device.
    offload: bool,
    dev: tun_rs::SyncDevice,
    stop: AtomicBool,
}

/// Inbound half of an installed CHILD SA.
struct InSa {
    esp: Mutex<InboundSa>,
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
    esp: Mutex<OutboundSa>,
    local_ts: Vec<TrafficSelector>,
    remote_ts: Vec<TrafficSelector>,
    via: Via,
    dest: RawAddr,
    stats: Arc<SaStats>,
}

struct Installed {
    conn: String,
    child: String,
    spi_in: u32,
    spi_out: u32,
    udp_encap: bool,
    inb: Arc<InSa>,
    outb: Arc<OutSa>,
    /// False once a rekeyed successor took over sending (make-before-break).
    out_active: bool,
}

#[derive(Default)]
struct State {
    /// Oldest first; the outbound lists are built newest first.
    sas: Vec<Installed>,
    tunnels: HashMap<String, (Arc<Tunnel>, Option<JoinHandle<()>>)>,
}

struct InRoute {
    sa: Arc<InSa>,
    tun: Option<Arc<Tunnel>>,
}

/// Immutable lookup tables; replaced as a whole on every change.
#[derive(Default)]
struct Tables {
    inbound: HashMap<u32, InRoute>,
    /// conn -> SAs allowed to send, newest first.
    outbound: HashMap<String, Vec<Arc<OutSa>>>,
    /// UDP-encapsulated outbound SAs, for NAT-T keepalives.
    keepalive: Vec<Arc<OutSa>>,
}

struct Shared {
    tables: RwLock<Arc<Tables>>,
    state: Mutex<State>,
    udp: Vec<UdpEndpoint>,
    raw: Option<OwnedFd>,
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

    fn rebuild(&self, state: &State) {
        let mut t = Tables::default();
        for s in &state.sas {
            let tun = state.tunnels.get(&s.conn).map(|(t, _)| t.clone());
            t.inbound.insert(
                s.spi_in,
                InRoute {
                    sa: s.inb.clone(),
                    tun,
                },
            );
        }
        for s in state.sas.iter().rev().filter(|s| s.out_active) {
            t.outbound
                .entry(s.conn.clone())
                .or_default()
                .push(s.outb.clone());
            if s.udp_encap {
                t.keepalive.push(s.outb.clone());
            }
        }
        *self.tables.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(t);
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

impl Dataplane {
    /// Takes over the sockets and starts the receive and keepalive threads.
    pub fn start(cfg: DataplaneConfig) -> io::Result<Dataplane> {
        let mut udp = Vec::with_capacity(cfg.udp_sockets.len());
        for socket in cfg.udp_sockets {
            let local = socket.local_addr()?;
            socket.set_nonblocking(false)?;
            sys::set_buffers(socket.as_raw_fd(), SOCKET_BUFFER);
            sys::set_recv_timeout(socket.as_raw_fd(), IDLE_WAKE)?;
            // Best effort: without GRO every datagram arrives on its own, which also works.
            sys::enable_udp_gro(socket.as_raw_fd());
            udp.push(UdpEndpoint {
                socket,
                local,
                gso: AtomicBool::new(true),
            });
        }
        let raw = if cfg.raw_esp {
            let fd = sys::raw_esp_socket()?;
            sys::set_buffers(fd.as_raw_fd(), SOCKET_BUFFER);
            sys::set_recv_timeout(fd.as_raw_fd(), IDLE_WAKE)?;
            Some(fd)
        } else {
            None
        };
        let shared = Arc::new(Shared {
            tables: RwLock::new(Arc::new(Tables::default())),
            state: Mutex::new(State::default()),
            udp,
            raw,
            ike_tx: cfg.ike_tx,
            shutdown: AtomicBool::new(false),
            drops: GlobalStats::default(),
            threads: Mutex::new(Vec::new()),
            epoch: Instant::now(),
            keepalive_ms: AtomicU64::new(KEEPALIVE_INTERVAL.as_millis() as u64),
            tun_offload: AtomicBool::new(true),
        });
        let dp = Dataplane {
            shared: shared.clone(),
        };
        let mut handles = Vec::new();
        for i in 0..shared.udp.len() {
            let s = shared.clone();
            let name = format!("esp-rx-{}", shared.udp[i].local);
            match spawn(name, move || udp_rx_loop(&s, i)) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    dp.stop_threads(handles);
                    return Err(e);
                }
            }
        }
        if shared.raw.is_some() {
            let s = shared.clone();
            match spawn("esp-rx-raw".into(), move || raw_rx_loop(&s)) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    dp.stop_threads(handles);
                    return Err(e);
                }
            }
        }
        let s = shared.clone();
        match spawn("esp-keepalive".into(), move || keepalive_loop(&s)) {
            Ok(h) => handles.push(h),
            Err(e) => {
                dp.stop_threads(handles);
                return Err(e);
            }
        }
        *lock(&shared.threads) = handles;
        Ok(dp)
    }

    fn stop_threads(&self, handles: Vec<JoinHandle<()>>) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for h in handles {
            let _ = h.join();
        }
    }

    /// Creates and opens the TUN device for `conn` (layer 3, no packet information) and starts
    /// its transmit thread. Addresses and routes are configured elsewhere (crate::routing).
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
        let tun = Arc::new(Tunnel {
            conn: conn.to_string(),
            ifname: ifname.to_string(),
            offload,
            dev,
            stop: AtomicBool::new(false),
        });
        let s = self.shared.clone();
        let t = tun.clone();
        let handle = spawn(format!("esp-tx-{ifname}"), move || tun_tx_loop(&s, &t))?;
        state.tunnels.insert(conn.to_string(), (tun, Some(handle)));
        self.shared.rebuild(&state);
        tracing::info!(conn, ifname, ifindex, mtu, offload, "tunnel device up");
        Ok(ifindex)
    }

    /// Stops the transmit thread and closes the TUN device (the interface disappears).
    pub fn remove_tunnel(&self, conn: &str) {
        let removed = {
            let mut state = lock(&self.shared.state);
            let removed = state.tunnels.remove(conn);
            self.shared.rebuild(&state);
            removed
        };
        if let Some((tun, handle)) = removed {
            tun.stop.store(true, Ordering::SeqCst);
            if let Some(h) = handle {
                let _ = h.join();
            }
            tracing::info!(conn, ifname = %tun.ifname, "tunnel device removed");
        }
    }

    /// Installs both directions of a CHILD SA. With `rekey_of = Some(old_spi_in)` the new
    /// outbound SA takes over at once, while the old inbound SA keeps accepting until
    /// `remove(old_spi_in)` (make-before-break).
    pub fn install(&self, sa: &ChildSa) -> Result<(), String> {
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
        let inbound =
            InboundSa::new(&params_in).map_err(|e| format!("inbound SA {:08x}: {e}", sa.spi_in))?;
        let outbound = OutboundSa::new(&params_out)
            .map_err(|e| format!("outbound SA {:08x}: {e}", sa.spi_out))?;
        let (via, dest) = if sa.udp_encap {
            let idx = self
                .shared
                .socket_for(sa.local)
                .ok_or_else(|| format!("no UDP 4500 socket for local address {}", sa.local.ip()))?;
            (Via::Udp(idx), RawAddr::from_socket_addr(sa.remote))
        } else {
            if self.shared.raw.is_none() {
                return Err(
                    "SA without UDP encapsulation needs the raw ESP socket (raw_esp = true)".into(),
                );
            }
            let dest = sys::raw_dest(sa.remote.ip()).ok_or_else(|| {
                format!("raw ESP to {} is not supported (IPv4 only)", sa.remote.ip())
            })?;
            (Via::Raw, dest)
        };
        let stats = Arc::new(SaStats::default());
        let inb = Arc::new(InSa {
            esp: Mutex::new(inbound),
            local_ts: sa.local_ts.clone(),
            remote_ts: sa.remote_ts.clone(),
            stats: stats.clone(),
        });
        let outb = Arc::new(OutSa {
            esp: Mutex::new(outbound),
            local_ts: sa.local_ts.clone(),
            remote_ts: sa.remote_ts.clone(),
            via,
            dest,
            stats,
        });
        let mut state = lock(&self.shared.state);
        if state.sas.iter().any(|s| s.spi_in == sa.spi_in) {
            return Err(format!(
                "inbound SPI {:08x} is already installed",
                sa.spi_in
            ));
        }
        if let Some(old) = sa.rekey_of {
            for s in state.sas.iter_mut().filter(|s| s.spi_in == old) {
                s.out_active = false;
            }
        }
        state.sas.push(Installed {
            conn: sa.conn.clone(),
            child: sa.child.clone(),
            spi_in: sa.spi_in,
            spi_out: sa.spi_out,
            udp_encap: sa.udp_encap,
            inb,
            outb,
            out_active: true,
        });
        self.shared.rebuild(&state);
        tracing::info!(conn = %sa.conn, child = %sa.child, spi_in = %format_args!("{:08x}", sa.spi_in),
            spi_out = %format_args!("{:08x}", sa.spi_out), encap = sa.udp_encap, "CHILD SA installed");
        Ok(())
    }

    /// Removes the SA pair whose inbound SPI is `spi_in`. The cipher objects (and their keys)
    /// are dropped as soon as no packet thread holds the old snapshot (at most one batch).
    pub fn remove(&self, spi_in: u32) {
        let mut state = lock(&self.shared.state);
        let before = state.sas.len();
        state.sas.retain(|s| s.spi_in != spi_in);
        if state.sas.len() != before {
            self.shared.rebuild(&state);
            tracing::info!(spi_in = %format_args!("{spi_in:08x}"), "CHILD SA removed");
        }
    }

    /// One row per installed SA pair.
    pub fn counters(&self) -> Vec<SaCounters> {
        let state = lock(&self.shared.state);
        let epoch = self.shared.epoch;
        state
            .sas
            .iter()
            .map(|s| {
                let needs_rekey = lock(&s.outb.esp).needs_rekey();
                s.inb.stats.snapshot(
                    &s.conn,
                    &s.child,
                    s.spi_in,
                    s.spi_out,
                    s.udp_encap,
                    s.out_active,
                    needs_rekey,
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
            .map(|(t, _)| t.offload)
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

    /// Sends an IKE message from the NAT-T socket bound to `local` (the non-ESP marker is
    /// added here), so IKE floated to port 4500 leaves from the same socket ESP uses.
    pub fn send_ike(&self, local: SocketAddr, remote: SocketAddr, data: &[u8]) -> io::Result<()> {
        let idx = self.shared.socket_for(local).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no UDP 4500 socket for {}", local.ip()),
            )
        })?;
        let mut msg = Vec::with_capacity(data.len() + 4);
        msg.extend_from_slice(&NON_ESP_MARKER);
        msg.extend_from_slice(data);
        self.shared.udp[idx]
            .socket
            .send_to(&msg, remote)
            .map(|_| ())
    }

    /// Stops every thread and closes the TUN devices. Idempotent.
    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        let tunnels: Vec<_> = {
            let mut state = lock(&self.shared.state);
            let t: Vec<_> = state.tunnels.drain().collect();
            state.sas.clear();
            self.shared.rebuild(&state);
            t
        };
        for (_, (tun, handle)) in tunnels {
            tun.stop.store(true, Ordering::SeqCst);
            if let Some(h) = handle {
                let _ = h.join();
            }
        }
        let handles: Vec<_> = lock(&self.shared.threads).drain(..).collect();
        for h in handles {
            let _ = h.join();
        }
    }

    /// The peer of the CHILD SA with inbound SPI `spi_in` moved (its NAT mapping changed,
    /// RFC 7296 2.23): its outbound half sends to `remote` from now on, keeping its sequence
    /// numbers. False if no such SA is installed (or `remote` is unreachable the way it sends).
    pub fn update_remote(&self, spi_in: u32, remote: SocketAddr) -> bool {
        use rand::RngCore;
        let mut state = lock(&self.shared.state);
        let Some(s) = state.sas.iter_mut().find(|s| s.spi_in == spi_in) else {
            return false;
        };
        let dest = match s.outb.via {
            Via::Udp(_) => RawAddr::from_socket_addr(remote),
            Via::Raw => match sys::raw_dest(remote.ip()) {
                Some(d) => d,
                None => return false,
            },
        };
        // The cipher state (and its sequence counter) moves to a new outbound half. The old
        // half may still be in a snapshot a packet thread holds for one batch: it keeps a
        // throwaway key, so whatever it sends is unreadable and reuses no sequence number.
        let esp = {
            let mut old = lock(&s.outb.esp);
            let random = |n: usize| {
                let mut k = zeroize::Zeroizing::new(vec![0u8; n]);
                rand::rngs::OsRng.fill_bytes(&mut k);
                k
            };
            let throwaway = OutboundSa::new(&SaParams {
                spi: old.spi(),
                encr: old.encr(),
                integ: old.integ(),
                encr_key: random(old.encr().keymat_len()),
                integ_key: random(old.integ().map_or(0, |i| i.key_len())),
                esn: old.esn(),
                replay_window: 0,
            });
            match throwaway {
                Ok(t) => std::mem::replace(&mut *old, t),
                Err(_) => return false,
            }
        };
        s.outb = Arc::new(OutSa {
            esp: Mutex::new(esp),
            local_ts: s.outb.local_ts.clone(),
            remote_ts: s.outb.remote_ts.clone(),
            via: s.outb.via,
            dest,
            stats: s.outb.stats.clone(),
        });
        self.shared.rebuild(&state);
        tracing::info!(spi_in = %format_args!("{spi_in:08x}"), %remote, "CHILD SA follows the peer");
        true
    }
}

// ------------------------------------------------------------------------------------------
// Receive side

/// Holds the lock of the SA the previous packet went to, so a batch for one SA locks once.
struct HeldInbound<'t> {
    spi: u32,
    route: &'t InRoute,
    sa: MutexGuard<'t, InboundSa>,
}

/// Decrypted packets waiting to be written to a TUN device, written together at the end of
/// a receive batch (or when the next packet belongs to another tunnel) so the TUN can
/// coalesce TCP segments (GRO) when offloads are on. Buffers are reused across batches.
struct TunOut<'t> {
    store: TunStore,
    count: usize,
    tun: Option<&'t Tunnel>,
}

/// The part of `TunOut` that lives as long as the receive thread.
#[derive(Default)]
struct TunStore {
    bufs: Vec<Vec<u8>>,
    gro: tun_rs::GROTable,
}

impl<'t> TunOut<'t> {
    fn new(store: TunStore) -> TunOut<'t> {
        TunOut {
            store,
            count: 0,
            tun: None,
        }
    }

    /// Flushes and hands the buffers back for the next batch.
    fn finish(mut self, shared: &Shared) -> TunStore {
        self.flush(shared);
        self.store
    }

    fn push(&mut self, shared: &Shared, tun: &'t Tunnel, pkt: &[u8]) {
        if self.tun.is_some_and(|t| !std::ptr::eq(t, tun)) {
            self.flush(shared);
        }
        self.tun = Some(tun);
        if self.count == self.store.bufs.len() {
            self.store.bufs.push(Vec::with_capacity(2048));
        }
        if let Some(b) = self.store.bufs.get_mut(self.count) {
            // Headroom for the virtio-net header the offload path writes in front.
            b.clear();
            b.resize(TUN_OFFSET, 0);
            b.extend_from_slice(pkt);
            self.count += 1;
        }
    }

    fn flush(&mut self, shared: &Shared) {
        if let (Some(tun), Some(bufs)) = (self.tun, self.store.bufs.get_mut(..self.count)) {
            if !bufs.is_empty() {
                if let Err(e) = tun.dev.send_multiple(&mut self.store.gro, bufs, TUN_OFFSET) {
                    shared.drops.tun_write_errors.inc();
                    tracing::debug!(ifname = %tun.ifname, "TUN write: {e}");
                }
            }
        }
        self.count = 0;
        self.tun = None;
    }
}

fn esp_in<'t>(
    shared: &Shared,
    tables: &'t Tables,
    held: &mut Option<HeldInbound<'t>>,
    sink: &mut TunOut<'t>,
    data: &mut [u8],
    now_ns: u64,
) {
    let Some(spi) = packet_spi(data) else {
        shared.drops.truncated.inc();
        return;
    };
    if held.as_ref().map(|h| h.spi) != Some(spi) {
        *held = None;
        match tables.inbound.get(&spi) {
            Some(route) => {
                *held = Some(HeldInbound {
                    spi,
                    route,
                    sa: lock(&route.sa.esp),
                })
            }
            None => {
                shared.drops.unknown_spi.inc();
                return;
            }
        }
    }
    let Some(h) = held.as_mut() else { return };
    let route: &'t InRoute = h.route;
    let sa = &route.sa;
    match h.sa.decapsulate(data) {
        Ok(inner) => {
            sa.stats.last_inbound_ns.store(now_ns, Ordering::Relaxed);
            let ok = Flow::parse(inner.packet).is_some_and(|f| {
                f.matches(&sa.remote_ts, f.src, f.src_port)
                    && f.matches(&sa.local_ts, f.dst, f.dst_port)
            });
            if !ok {
                sa.stats.ts_violations.inc();
                return;
            }
            let Some(tun) = &route.tun else {
                shared.drops.no_tunnel.inc();
                return;
            };
            sink.push(shared, tun, inner.packet);
            sa.stats.packets_in.inc();
            sa.stats.bytes_in.add(inner.packet.len() as u64);
        }
        Err(reason) => sa.stats.count_drop(reason),
    }
}

/// What a receive batch works with: one tables snapshot, the held SA lock, the TUN writes.
struct RxBatch<'t> {
    shared: &'t Shared,
    tables: &'t Tables,
    held: Option<HeldInbound<'t>>,
    sink: TunOut<'t>,
    now_ns: u64,
}

impl RxBatch<'_> {
    fn esp_in(&mut self, esp: &mut [u8]) {
        esp_in(
            self.shared,
            self.tables,
            &mut self.held,
            &mut self.sink,
            esp,
            self.now_ns,
        )
    }
}

/// A receive thread: recvmmsg batches from `fd` until shutdown. `each` gets every datagram
/// that fit its buffer; truncated ones are counted here.
fn rx_loop<F>(shared: &Shared, fd: RawFd, buf_len: usize, what: &str, mut each: F)
where
    F: FnMut(&mut RxBatch<'_>, sys::Received<'_>),
{
    let mut batch = RecvBatch::new(buf_len);
    let mut store = TunStore::default();
    while !shared.shutdown.load(Ordering::Relaxed) {
        let n = match batch.recv(fd) {
            Ok(0) => continue,
            Ok(n) => n,
            Err(e) => {
                shared.drops.recv_errors.inc();
                tracing::warn!("{what} recvmmsg: {e}");
                std::thread::sleep(IDLE_WAKE);
                continue;
            }
        };
        let tables = shared.snapshot();
        let mut rx = RxBatch {
            shared,
            tables: &tables,
            held: None,
            sink: TunOut::new(std::mem::take(&mut store)),
            now_ns: shared.now_ns(),
        };
        for i in 0..n {
            let Some(r) = batch.get_mut(i) else {
                continue;
            };
            if r.truncated {
                shared.drops.truncated.inc();
                continue;
            }
            each(&mut rx, r);
        }
        // The SA lock goes before the TUN writes.
        drop(rx.held);
        store = rx.sink.finish(shared);
    }
}

fn udp_rx_loop(shared: &Shared, idx: usize) {
    let Some(ep) = shared.udp.get(idx) else {
        return;
    };
    let what = format!("UDP {}", ep.local);
    rx_loop(
        shared,
        ep.socket.as_raw_fd(),
        UDP_RX_BUF_LEN,
        &what,
        |rx, r| {
            // UDP GRO hands over several datagrams of the same size back to back.
            let seg = r.gro_size.unwrap_or(r.data.len()).max(1);
            if seg < r.data.len() {
                shared.drops.gro_receives.inc();
            }
            for datagram in r.data.chunks_mut(seg) {
                match datagram {
                    // RFC 3948 2.3: NAT-keepalive.
                    [0xff] => shared.drops.keepalives_received.inc(),
                    [0, 0, 0, 0, ike @ ..] => {
                        let Some(remote) = r.from else { continue };
                        let d = IkeDatagram {
                            local: ep.local,
                            remote,
                            data: ike.to_vec(),
                        };
                        if shared.ike_tx.try_send(d).is_err() {
                            shared.drops.ike_queue_full.inc();
                        }
                    }
                    esp if esp.len() >= 8 => rx.esp_in(esp),
                    _ => shared.drops.not_esp.inc(),
                }
            }
        },
    );
}

fn raw_rx_loop(shared: &Shared) {
    let Some(raw) = shared.raw.as_ref() else {
        return;
    };
    rx_loop(
        shared,
        raw.as_raw_fd(),
        RAW_RX_BUF_LEN,
        "raw ESP",
        |rx, r| {
            let data = r.data;
            // The raw IPv4 socket delivers the IP header first: skip IHL words.
            let ihl = match data.first() {
                Some(b) if b >> 4 == 4 => usize::from(b & 0x0f) * 4,
                _ => {
                    shared.drops.not_esp.inc();
                    return;
                }
            };
            if ihl < 20 || data.get(9) != Some(&(libc::IPPROTO_ESP as u8)) {
                shared.drops.not_esp.inc();
                return;
            }
            match data.get_mut(ihl..) {
                Some(esp) if esp.len() >= 8 => rx.esp_in(esp),
                _ => shared.drops.truncated.inc(),
            }
        },
    );
}

// ------------------------------------------------------------------------------------------
// Transmit side

struct HeldOutbound<'t> {
    index: usize,
    sa: &'t OutSa,
    esp: MutexGuard<'t, OutboundSa>,
}

/// First SA (newest first) whose selectors cover the packet: local_ts the source, remote_ts
/// the destination.
fn select_outbound(sas: &[Arc<OutSa>], flow: &Flow) -> Option<usize> {
    sas.iter().position(|sa| {
        flow.matches(&sa.local_ts, flow.src, flow.src_port)
            && flow.matches(&sa.remote_ts, flow.dst, flow.dst_port)
    })
}

fn tun_tx_loop(shared: &Shared, tun: &Tunnel) {
    let fd: RawFd = tun.dev.as_raw_fd();
    let mut rng = rand::thread_rng();
    // One TUN read (with offloads a TSO super-packet of up to 64 KiB plus the virtio-net
    // header), split into at most IDEAL_BATCH_SIZE IP packets. calloc'd: pages are only
    // touched when used.
    let mut original = vec![0u8; TUN_OFFSET + TUN_BUF_LEN];
    let mut split: Vec<Vec<u8>> = (0..tun_rs::IDEAL_BATCH_SIZE)
        .map(|_| vec![0u8; TUN_BUF_LEN])
        .collect();
    let mut sizes = vec![0usize; tun_rs::IDEAL_BATCH_SIZE];
    // Reused output buffers: no allocation per packet once they reached full size.
    let mut outs: Vec<Vec<u8>> = (0..MAX_OUT).map(|_| Vec::with_capacity(2048)).collect();
    let mut dests = vec![
        Dest {
            via: Via::Raw,
            addr: RawAddr::empty(),
            sa: 0
        };
        MAX_OUT
    ];
    while !shared.shutdown.load(Ordering::Relaxed) && !tun.stop.load(Ordering::Relaxed) {
        match sys::poll_readable(fd, IDLE_WAKE) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(ifname = %tun.ifname, "poll: {e}");
                std::thread::sleep(IDLE_WAKE);
                continue;
            }
        }
        let tables = shared.snapshot();
        let sas: &[Arc<OutSa>] = tables.outbound.get(&tun.conn).map_or(&[], |v| v.as_slice());
        let mut count = 0;
        let mut device_failed = false;
        {
            let mut held: Option<HeldOutbound<'_>> = None;
            while count < BATCH {
                let n = match tun
                    .dev
                    .recv_multiple(&mut original, &mut split, &mut sizes, 0)
                {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        shared.drops.not_ip_outbound.inc();
                        tracing::debug!(ifname = %tun.ifname, "TUN read: {e}");
                        // An error from read(2) itself (e.g. EBADFD once the device was
                        // deleted under us) repeats forever: leave the batch so the stop
                        // flags are seen, and back off. A malformed GSO packet (an error
                        // from tun-rs, no errno) is just skipped.
                        if e.raw_os_error().is_some() {
                            device_failed = true;
                            break;
                        }
                        continue;
                    }
                };
                for (buf, &size) in split.iter().zip(sizes.iter()).take(n) {
                    let Some(pkt) = buf.get(..size) else { continue };
                    let Some(flow) = Flow::parse(pkt) else {
                        shared.drops.not_ip_outbound.inc();
                        continue;
                    };
                    let Some(index) = select_outbound(sas, &flow) else {
                        shared.drops.no_sa_outbound.inc();
                        continue;
                    };
                    if held.as_ref().map(|h| h.index) != Some(index) {
                        held = None;
                        let Some(sa) = sas.get(index) else { continue };
                        held = Some(HeldOutbound {
                            index,
                            sa,
                            esp: lock(&sa.esp),
                        });
                    }
                    let Some(h) = held.as_mut() else { continue };
                    let (Some(out), Some(dest)) = (outs.get_mut(count), dests.get_mut(count))
                    else {
                        break;
                    };
                    match h.esp.encapsulate(pkt, &mut rng, out) {
                        Ok(()) => {
                            *dest = Dest {
                                via: h.sa.via,
                                addr: h.sa.dest,
                                sa: index,
                            };
                            h.sa.stats.packets_out.inc();
                            h.sa.stats.bytes_out.add(pkt.len() as u64);
                            count += 1;
                        }
                        Err(crate::esp::EspError::SeqExhausted) => shared.drops.seq_exhausted.inc(),
                        Err(_) => shared.drops.not_ip_outbound.inc(),
                    }
                }
            }
        }
        flush(shared, &outs[..count], &dests[..count]);
        if device_failed {
            std::thread::sleep(IDLE_WAKE);
        }
    }
}

/// Where one encapsulated packet goes.
#[derive(Clone, Copy)]
struct Dest {
    via: Via,
    addr: RawAddr,
    /// Index of the SA in the batch's outbound list: equal index, equal destination.
    sa: usize,
}

/// Most packets one TX batch can hold: BATCH reads plus one split TSO super-packet.
const MAX_OUT: usize = BATCH + tun_rs::IDEAL_BATCH_SIZE;

/// Sends the encapsulated packets: per run of packets for the same SA, UDP GSO
/// super-datagrams when the socket takes them, else sendmmsg batches.
fn flush(shared: &Shared, outs: &[Vec<u8>], dests: &[Dest]) {
    let mut start = 0;
    while start < outs.len().min(dests.len()) {
        let d = dests[start];
        let end = (start..outs.len().min(dests.len()))
            .find(|&i| dests[i].via != d.via || dests[i].sa != d.sa)
            .unwrap_or(outs.len().min(dests.len()));
        let mut pkts: [&[u8]; MAX_OUT] = [&[]; MAX_OUT];
        let mut n = 0;
        for (slot, out) in pkts.iter_mut().zip(&outs[start..end]) {
            *slot = out.as_slice();
            n += 1;
        }
        let run = &pkts[..n];
        match d.via {
            Via::Udp(i) => match shared.udp.get(i) {
                Some(ep) => {
                    let fd = ep.socket.as_raw_fd();
                    let mut sent = 0;
                    if run.len() > 1 && ep.gso.load(Ordering::Relaxed) {
                        let (done, msgs, err) = sys::send_gso(fd, run, &d.addr);
                        sent = done;
                        shared.drops.gso_sends.add(msgs as u64);
                        if let Some(e) = err {
                            // Refused (no GSO support, or segments above the path MTU):
                            // plain datagrams from now on; the kernel may fragment those.
                            if !matches!(e.kind(), io::ErrorKind::WouldBlock)
                                && e.raw_os_error() != Some(libc::ENOBUFS)
                            {
                                ep.gso.store(false, Ordering::Relaxed);
                                tracing::info!(local = %ep.local, "UDP GSO off: {e}");
                            }
                        }
                    }
                    send_plain(shared, fd, run.get(sent..).unwrap_or(&[]), &d.addr);
                }
                None => shared.drops.send_errors.add(run.len() as u64),
            },
            Via::Raw => match shared.raw.as_ref() {
                Some(raw) => send_plain(shared, raw.as_raw_fd(), run, &d.addr),
                None => shared.drops.send_errors.add(run.len() as u64),
            },
        }
        start = end;
    }
}

fn send_plain(shared: &Shared, fd: RawFd, pkts: &[&[u8]], dest: &RawAddr) {
    if pkts.is_empty() {
        return;
    }
    let (sent, err) = sys::send_batch(fd, pkts, dest);
    if let Some(e) = err {
        shared.drops.send_errors.add((pkts.len() - sent) as u64);
        tracing::debug!("sendmmsg: {e}");
    }
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
        for sa in &tables.keepalive {
            if let Via::Udp(i) = sa.via {
                if let Some(ep) = shared.udp.get(i) {
                    if sys::send_to(ep.socket.as_raw_fd(), &[0xff], &sa.dest).is_ok() {
                        shared.drops.keepalives_sent.inc();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Dataplane>();
    }

    #[test]
    fn start_without_sockets_and_shutdown() {
        // No sockets, no raw ESP: only the keepalive thread runs; shutdown joins it.
        let (tx, _rx) = mpsc::channel(1);
        let dp = Dataplane::start(DataplaneConfig {
            udp_sockets: vec![],
            raw_esp: false,
            ike_tx: tx,
        })
        .unwrap();
        assert!(dp.counters().is_empty());
        assert_eq!(dp.global_drops(), DropCounters::default());
        assert_eq!(dp.tunnel_offload("none"), None);
        dp.remove(0x1234); // unknown: no effect
        dp.remove_tunnel("none");
        let started = Instant::now();
        dp.shutdown();
        assert!(started.elapsed() < Duration::from_secs(2));
        dp.shutdown(); // idempotent
    }

    #[test]
    fn install_refuses_what_it_cannot_send() {
        let (tx, _rx) = mpsc::channel(1);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dp = Dataplane::start(DataplaneConfig {
            udp_sockets: vec![sock],
            raw_esp: false,
            ike_tx: tx,
        })
        .unwrap();
        let ts = TrafficSelector {
            ip_proto: 0,
            start_port: 0,
            end_port: 65535,
            start: "0.0.0.0".parse().unwrap(),
            end: "255.255.255.255".parse().unwrap(),
        };
        let mut sa = ChildSa {
            conn: "c".into(),
            child: "k".into(),
            spi_in: 1,
            spi_out: 2,
            encr: crate::crypto::EncrAlg::AesCbc128,
            integ: Some(crate::crypto::IntegAlg::HmacSha1_96),
            esn: false,
            dh: None,
            encr_key_in: zeroize::Zeroizing::new(vec![1; 16]),
            integ_key_in: zeroize::Zeroizing::new(vec![2; 20]),
            encr_key_out: zeroize::Zeroizing::new(vec![3; 16]),
            integ_key_out: zeroize::Zeroizing::new(vec![4; 20]),
            local_ts: vec![ts.clone()],
            remote_ts: vec![ts],
            local: "127.0.0.1:4500".parse().unwrap(),
            remote: "127.0.0.2:4500".parse().unwrap(),
            udp_encap: false,
            replay_window: 64,
            rekey_of: None,
        };
        // raw ESP was not enabled
        assert!(dp.install(&sa).unwrap_err().contains("raw ESP"));
        sa.udp_encap = true;
        sa.integ_key_in = zeroize::Zeroizing::new(vec![2; 19]);
        assert!(dp.install(&sa).unwrap_err().contains("inbound SA"));
        sa.integ_key_in = zeroize::Zeroizing::new(vec![2; 20]);
        dp.install(&sa).unwrap();
        assert!(dp.install(&sa).unwrap_err().contains("already installed"));
        // make-before-break: the successor sends, the old one only receives
        let mut next = sa.clone();
        next.spi_in = 11;
        next.spi_out = 12;
        next.rekey_of = Some(1);
        dp.install(&next).unwrap();
        let c = dp.counters();
        assert_eq!(c.len(), 2);
        assert!(!c.iter().find(|r| r.spi_in == 1).unwrap().outbound_active);
        assert!(c.iter().find(|r| r.spi_in == 11).unwrap().outbound_active);
        let tables = dp.shared.snapshot();
        assert_eq!(tables.outbound.get("c").map(Vec::len), Some(1));
        assert_eq!(tables.inbound.len(), 2);
        assert_eq!(tables.keepalive.len(), 1);
        drop(tables);
        dp.remove(1);
        assert_eq!(dp.counters().len(), 1);
        assert_eq!(dp.shared.snapshot().inbound.len(), 1);
        dp.shutdown();
    }
}
