//! Socket -> TUN: one recvmmsg batch from a NAT-T UDP socket (with UDP GRO, each message may
//! hold many ESP packets) or from the raw ESP socket, decapsulated in place in runs of one SPI
//! (several packets per call, so the fast path can interleave them), checked against the
//! SA's traffic selectors and written to the tunnel devices in receive order.

use super::flow::Flow;
use super::lane::Lane;
use super::sys::RecvBatch;
use super::worker::Worker;
use super::{IkeDatagram, Shared, Tables, Tunnel, TUN_OFFSET};
use crate::esp::{packet_spi, DropReason, PacketBuf, CHUNK, NON_ESP_MARKER};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Receive buffer per message: room for a UDP GRO super-datagram.
const RX_BUF_LEN: usize = 65536;

/// Buffers of one worker's receive side, reused for every batch.
pub(super) struct RxBufs {
    batch: RecvBatch,
    out: TunOut,
}

impl RxBufs {
    pub fn new() -> RxBufs {
        RxBufs {
            batch: RecvBatch::new(RX_BUF_LEN),
            out: TunOut::default(),
        }
    }
}

/// Decrypted packets waiting to be written to tunnel devices, in receive order; written at
/// the end of the batch, per run of one device, so the TUN can coalesce TCP segments (GRO)
/// when offloads are on.
#[derive(Default)]
struct TunOut {
    bufs: Vec<Vec<u8>>,
    /// Index into `tuns` per buffered packet.
    tun_of: Vec<usize>,
    /// The devices of this batch (few: usually one).
    tuns: Vec<Arc<Tunnel>>,
    count: usize,
    gro: tun_rs::GROTable,
}

impl TunOut {
    fn push(&mut self, tun: &Arc<Tunnel>, pkt: &[u8]) {
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
        }
        let b = &mut self.bufs[self.count];
        // Headroom for the virtio-net header the offload path writes in front.
        b.clear();
        b.resize(TUN_OFFSET, 0);
        b.extend_from_slice(pkt);
        self.tun_of[self.count] = t;
        self.count += 1;
    }

    fn flush(&mut self, shared: &Shared) {
        let mut a = 0;
        while a < self.count {
            let t = self.tun_of[a];
            let mut e = a + 1;
            while e < self.count && self.tun_of[e] == t {
                e += 1;
            }
            let tun = &self.tuns[t];
            if let Err(err) = tun
                .dev
                .send_multiple(&mut self.gro, &mut self.bufs[a..e], TUN_OFFSET)
            {
                shared.drops.tun_write_errors.inc();
                tracing::debug!(ifname = %tun.ifname, "TUN write: {err}");
            }
            a = e;
        }
        self.count = 0;
        self.tuns.clear();
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
    let RxBufs { batch, out } = &mut w.rx;
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
                    run.deliver(shared, &tables, now_ns, out);
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
        run.deliver(shared, &tables, now_ns, out);
    }
    ticket.wait_turn();
    out.flush(shared);
}

/// Up to CHUNK packets of one SPI, gathered across messages.
struct Run<'a> {
    pkts: [PacketBuf<'a>; CHUNK],
    k: usize,
    spi: u32,
}

impl Run<'_> {
    fn deliver(&mut self, shared: &Shared, tables: &Tables, now_ns: u64, out: &mut TunOut) {
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
        sa.esp.decapsulate_batch(&mut self.pkts[..k], &mut res[..k]);
        let mut authenticated = false;
        for (p, r) in self.pkts[..k].iter().zip(res.iter()) {
            match r {
                Ok(_) => {
                    authenticated = true;
                    let inner = &p.buf[p.start..p.start + p.len];
                    let ok = Flow::parse(inner).is_some_and(|f| {
                        f.matches(&sa.remote_ts, f.src, f.src_port)
                            && f.matches(&sa.local_ts, f.dst, f.dst_port)
                    });
                    if !ok {
                        sa.stats.ts_violations.inc();
                        continue;
                    }
                    let Some(tun) = &route.tun else {
                        shared.drops.no_tunnel.inc();
                        continue;
                    };
                    out.push(tun, inner);
                    sa.stats.packets_in.inc();
                    sa.stats.bytes_in.add(inner.len() as u64);
                }
                // A dummy packet authenticated too (RFC 4303 2.6).
                Err(DropReason::Dummy) => {
                    authenticated = true;
                    sa.stats.count_drop(DropReason::Dummy);
                }
                Err(reason) => sa.stats.count_drop(*reason),
            }
        }
        if authenticated {
            sa.stats.last_inbound_ns.store(now_ns, Ordering::Relaxed);
        }
    }
}
