//! Socket -> TUN: one recvmmsg batch from a NAT-T UDP socket (with UDP GRO, each message may
//! hold many ESP packets) or from the raw ESP socket, decapsulated in place in runs of one SPI
//! (several packets per call, so the fast path can interleave them), checked against the
//! SA's traffic selectors and written to the tunnel devices in receive order.

use super::flow::Flow;
use super::lane::Lane;
use super::sys::RecvBatch;
use super::table::Tables;
use super::worker::Worker;
use super::{IkeDatagram, InSa, Shared, Tunnel, TUN_OFFSET};
use crate::esp::{packet_spi, Decapsulated, DropReason, PacketBuf, CHUNK, NON_ESP_MARKER};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Receive buffer per message: room for a UDP GRO super-datagram.
const RX_BUF_LEN: usize = 65536;

/// Buffers of one worker's receive side, reused for every batch.
pub(super) struct RxBufs {
    batch: RecvBatch,
    out: TunOut,
    pending: Pending,
}

impl RxBufs {
    pub fn new() -> RxBufs {
        RxBufs {
            batch: RecvBatch::new(RX_BUF_LEN),
            out: TunOut::default(),
            pending: Pending::default(),
        }
    }
}

/// What becomes of an authenticated packet once its sequence number is committed.
#[derive(Clone, Copy)]
enum Fate {
    /// Written to the tunnel: index in TunOut, inner length.
    Deliver(usize, usize),
    TsViolation,
    NoTunnel,
    Dropped(DropReason),
}

/// Packets decrypted in parallel whose sequence numbers are recorded in the replay window in
/// arrival order (under the lane's turn), so a later batch finished first never pushes an
/// earlier one out of the window.
#[derive(Default)]
struct Pending {
    /// One entry per run of one SA: the SA and the range of `items` it owns.
    runs: Vec<(Arc<InSa>, usize, usize)>,
    items: Vec<(u64, Fate)>,
}

impl Pending {
    fn commit(&mut self, shared: &Shared, out: &mut TunOut, now_ns: u64) {
        for (sa, a, e) in self.runs.drain(..) {
            let items = &self.items[a..e];
            let mut seqs = [0u64; CHUNK];
            let mut res = [Ok(Decapsulated {
                next_header: 0,
                seq: 0,
            }); CHUNK];
            for (s, (seq, _)) in seqs.iter_mut().zip(items) {
                *s = *seq;
            }
            let n = items.len().min(CHUNK);
            sa.esp.commit_batch(&seqs[..n], &mut res[..n]);
            let mut authenticated = false;
            for (r, (_, fate)) in res.iter().zip(items) {
                if r.is_err() {
                    sa.stats.count_drop(DropReason::Replay);
                    if let Fate::Deliver(i, _) = fate {
                        out.valid[*i] = false;
                    }
                    continue;
                }
                authenticated = true;
                match *fate {
                    Fate::Deliver(_, len) => {
                        sa.stats.packets_in.inc();
                        sa.stats.bytes_in.add(len as u64);
                    }
                    Fate::TsViolation => sa.stats.ts_violations.inc(),
                    Fate::NoTunnel => shared.drops.no_tunnel.inc(),
                    Fate::Dropped(reason) => sa.stats.count_drop(reason),
                }
            }
            if authenticated {
                sa.stats.last_inbound_ns.store(now_ns, Ordering::Relaxed);
            }
        }
        self.items.clear();
    }
}

/// Packets handed to the TUN in one `send_multiple` call (tun-rs' IDEAL_BATCH_SIZE).
const STAGE_SLOTS: usize = tun_rs::IDEAL_BATCH_SIZE;
/// Capacity of a staging buffer: a whole coalesced TCP super-packet (the largest IP packet).
/// tun-rs' GRO appends a segment to the first packet of its flow only while that buffer's
/// capacity holds the result, so with MTU-sized buffers it would never coalesce anything.
const STAGE_CAP: usize = 2 * TUN_OFFSET + 65535;
/// Offset of gso_type in the virtio-net header (after the flags byte).
const VNET_GSO_TYPE: usize = 1;

/// Decrypted packets waiting to be written to tunnel devices, in receive order; written at
/// the end of the batch, per run of one device, so the TUN can coalesce TCP segments (GRO)
/// when offloads are on.
#[derive(Default)]
struct TunOut {
    bufs: Vec<Vec<u8>>,
    /// Index into `tuns` per buffered packet.
    tun_of: Vec<usize>,
    /// False for a packet whose sequence number turned out to be a replay.
    valid: Vec<bool>,
    /// The devices of this batch (few: usually one).
    tuns: Vec<Arc<Tunnel>>,
    count: usize,
    gro: tun_rs::GROTable,
    /// Large buffers the packets of an offload device are copied into before the write, so
    /// GRO can coalesce up to 64 KiB per write (`STAGE_CAP`); allocated on first use. The
    /// copy (one memcpy per packet) bounds the memory: the per-packet buffers above stay
    /// small however many packets a batch holds.
    stage: Vec<Vec<u8>>,
}

impl TunOut {
    /// Buffers `pkt` for `tun`; its index.
    fn push(&mut self, tun: &Arc<Tunnel>, pkt: &[u8]) -> usize {
        let t = match self.tuns.iter().position(|t| Arc::ptr_eq(t, tun)) {
            Some(t) => t,
            None => {
                self.tuns.push(tun.clone());
                self.tuns.len() - 1
            }
        };
        if self.count == self.bufs.len() {
            self.bufs.push(Vec::with_capacity(2048));
            self.tun_of.push(0);
            self.valid.push(true);
        }
        let b = &mut self.bufs[self.count];
        // Headroom for the virtio-net header the offload path writes in front.
        b.clear();
        b.resize(TUN_OFFSET, 0);
        b.extend_from_slice(pkt);
        self.tun_of[self.count] = t;
        self.valid[self.count] = true;
        self.count += 1;
        self.count - 1
    }

    fn flush(&mut self, shared: &Shared) {
        let mut a = 0;
        while a < self.count {
            if !self.valid[a] {
                a += 1;
                continue;
            }
            let t = self.tun_of[a];
            let mut e = a + 1;
            while e < self.count && self.tun_of[e] == t && self.valid[e] {
                e += 1;
            }
            let tun = &self.tuns[t];
            if tun.offload {
                if self.stage.is_empty() {
                    self.stage = (0..STAGE_SLOTS)
                        .map(|_| Vec::with_capacity(STAGE_CAP))
                        .collect();
                }
                for chunk in self.bufs[a..e].chunks(STAGE_SLOTS) {
                    for (s, b) in self.stage.iter_mut().zip(chunk) {
                        s.clear();
                        s.extend_from_slice(b);
                    }
                    let staged = &mut self.stage[..chunk.len()];
                    write_tun(shared, tun, &mut self.gro, staged);
                    // GRO marks the packets it grew with a GSO type in their virtio-net header.
                    let grown = staged.iter().filter(|b| b[VNET_GSO_TYPE] != 0).count();
                    shared.drops.tun_gro_writes.add(grown as u64);
                }
            } else {
                write_tun(shared, tun, &mut self.gro, &mut self.bufs[a..e]);
            }
            a = e;
        }
        self.count = 0;
        self.tuns.clear();
    }
}

fn write_tun(shared: &Shared, tun: &Tunnel, gro: &mut tun_rs::GROTable, bufs: &mut [Vec<u8>]) {
    if let Err(err) = tun.dev.send_multiple(gro, bufs, TUN_OFFSET) {
        shared.drops.tun_write_errors.inc();
        tracing::debug!(ifname = %tun.ifname, "TUN write: {err}");
    }
}

pub(super) fn udp(shared: &Shared, w: &mut Worker, idx: usize) {
    let Some(ep) = shared.udp.get(idx) else {
        return;
    };
    let fd = ep.socket.as_raw_fd();
    batch(shared, w, fd, idx as u64, &ep.lane, |r, emit| {
        // UDP GRO hands over several datagrams of the same size back to back.
        let seg = r.gro_size.unwrap_or(r.data.len()).max(1);
        if seg < r.data.len() {
            shared.drops.gro_receives.inc();
        }
        let from = r.from;
        for datagram in r.data.chunks_mut(seg) {
            if datagram == [0xff] {
                // RFC 3948 2.3: NAT-keepalive.
                shared.drops.keepalives_received.inc();
            } else if datagram.len() >= 4 && datagram[..4] == NON_ESP_MARKER {
                let Some(remote) = from else { continue };
                let d = IkeDatagram {
                    local: ep.local,
                    remote,
                    data: datagram[4..].to_vec(),
                };
                if shared.ike_tx.try_send(d).is_err() {
                    shared.drops.ike_queue_full.inc();
                }
            } else if datagram.len() >= 8 {
                emit(datagram);
            } else {
                shared.drops.not_esp.inc();
            }
        }
    });
}

pub(super) fn raw(shared: &Shared, w: &mut Worker) {
    let Some(raw) = shared.raw.as_ref() else {
        return;
    };
    batch(
        shared,
        w,
        raw.as_raw_fd(),
        super::RAW_TOKEN,
        &shared.raw_lane,
        |r, emit| {
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
                Some(esp) if esp.len() >= 8 => emit(esp),
                _ => shared.drops.truncated.inc(),
            }
        },
    );
}

/// One receive batch from `fd`: read and take a ticket while owning the socket, re-arm it,
/// decapsulate, then write in ticket order. `split` turns each message into ESP packets.
fn batch<F>(shared: &Shared, w: &mut Worker, fd: RawFd, token: u64, lane: &Lane, mut split: F)
where
    F: for<'a> FnMut(super::sys::Received<'a>, &mut dyn FnMut(&'a mut [u8])),
{
    let RxBufs {
        batch,
        out,
        pending,
    } = &mut w.rx;
    let n = match batch.recv(fd, true) {
        Ok(n) => n,
        Err(e) => {
            shared.drops.recv_errors.inc();
            tracing::warn!("recvmmsg: {e}");
            0
        }
    };
    let mut ticket = (n > 0).then(|| lane.ticket());
    if let Err(e) = shared.epoll.rearm(fd, token) {
        tracing::warn!("epoll re-arm: {e}");
    }
    let Some(ticket) = ticket.as_mut() else {
        return;
    };
    let tables = shared.snapshot();
    let now_ns = shared.now_ns();
    {
        let mut run = Run {
            pkts: std::array::from_fn(|_| PacketBuf {
                buf: &mut [],
                start: 0,
                len: 0,
            }),
            k: 0,
            spi: 0,
        };
        for r in batch.iter_mut(n) {
            if r.truncated {
                shared.drops.truncated.inc();
                continue;
            }
            split(r, &mut |esp: &mut [u8]| {
                let spi = packet_spi(esp).unwrap_or(0);
                if run.k == CHUNK || (run.k > 0 && run.spi != spi) {
                    run.open(shared, &tables, out, pending);
                }
                let len = esp.len();
                run.pkts[run.k] = PacketBuf {
                    buf: esp,
                    start: 0,
                    len,
                };
                run.spi = spi;
                run.k += 1;
            });
        }
        run.open(shared, &tables, out, pending);
    }
    ticket.wait_turn();
    pending.commit(shared, out, now_ns);
    out.flush(shared);
}

/// Up to CHUNK packets of one SPI, gathered across messages.
struct Run<'a> {
    pkts: [PacketBuf<'a>; CHUNK],
    k: usize,
    spi: u32,
}

impl Run<'_> {
    /// Decrypts the run (in parallel with other workers) and buffers what passed; the
    /// sequence numbers are committed later, in order.
    fn open(&mut self, shared: &Shared, tables: &Tables, out: &mut TunOut, pending: &mut Pending) {
        let k = std::mem::take(&mut self.k);
        if k == 0 {
            return;
        }
        let Some(route) = tables.inbound.get(&self.spi) else {
            shared.drops.unknown_spi.add(k as u64);
            return;
        };
        let sa = &route.sa;
        let mut res = [Err(DropReason::Truncated); CHUNK];
        let mut seqs = [0u64; CHUNK];
        sa.esp
            .open_batch(&mut self.pkts[..k], &mut res[..k], &mut seqs[..k]);
        let first = pending.items.len();
        for ((p, r), &seq) in self.pkts[..k].iter().zip(res.iter()).zip(seqs.iter()) {
            let fate = match r {
                Ok(_) => {
                    let inner = &p.buf[p.start..p.start + p.len];
                    let ok = Flow::parse(inner).is_some_and(|f| {
                        f.matches(&sa.remote_ts, f.src, f.src_port)
                            && f.matches(&sa.local_ts, f.dst, f.dst_port)
                    });
                    match &route.tun {
                        _ if !ok => Fate::TsViolation,
                        None => Fate::NoTunnel,
                        Some(tun) => Fate::Deliver(out.push(tun, inner), inner.len()),
                    }
                }
                // authenticated, but not delivered: the number is used all the same
                Err(reason) if seq != 0 => Fate::Dropped(*reason),
                Err(reason) => {
                    sa.stats.count_drop(*reason);
                    continue;
                }
            };
            pending.items.push((seq, fate));
        }
        if pending.items.len() > first {
            pending.runs.push((sa.clone(), first, pending.items.len()));
        }
    }
}
