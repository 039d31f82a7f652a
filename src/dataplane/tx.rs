//! TUN -> ESP: one batch of packets read from a tunnel device, each matched to an outbound
//! SA by its traffic selectors, encapsulated in place (the ESP header goes into headroom the
//! read left in front) and sent in read order: UDP GSO super-datagrams per run of packets
//! to one peer when the socket takes them, else sendmmsg.

use super::flow::Flow;
use super::sys::{self, RawAddr};
use super::table::OutList;
use super::worker::Worker;
use super::{OutSa, Shared, Tunnel, Via};
use crate::esp::{PacketBuf, CHUNK, HEADROOM, TAILROOM};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;

/// Packets one batch aims for, and the slots it has (a TSO super-packet splits into up to
/// IDEAL_BATCH_SIZE segments, so a read needs that many free slots).
const TX_TARGET: usize = 64;
const TX_SLOTS: usize = TX_TARGET + tun_rs::IDEAL_BATCH_SIZE;
/// One TUN read: the virtio-net header plus the largest IP packet.
const TUN_READ_LEN: usize = tun_rs::VIRTIO_NET_HDR_LEN + 65536;
const NO_SA: u32 = u32::MAX;

/// A run of consecutive packets for one SA, with its reserved sequence numbers.
#[derive(Clone, Copy)]
struct Run {
    sa: u32,
    first: usize,
    count: usize,
    seq: u64,
}

/// Buffers of one worker's transmit side, reused for every batch.
pub(super) struct TxBufs {
    original: Vec<u8>,
    slots: Vec<Vec<u8>>,
    slot_len: usize,
    sizes: Vec<usize>,
    sa_of: Vec<u32>,
    runs: Vec<Run>,
}

impl TxBufs {
    pub fn new(mtu: usize) -> TxBufs {
        let slot_len = HEADROOM + mtu.max(1500) + TAILROOM;
        TxBufs {
            original: vec![0u8; TUN_READ_LEN],
            slots: (0..TX_SLOTS).map(|_| vec![0u8; slot_len]).collect(),
            slot_len,
            sizes: vec![0; TX_SLOTS],
            sa_of: vec![NO_SA; TX_SLOTS],
            runs: Vec::with_capacity(TX_SLOTS),
        }
    }

    /// Grows the slots when a tunnel with a larger MTU appeared (configuration time only).
    fn fit(&mut self, mtu: usize) {
        let need = HEADROOM + mtu + TAILROOM;
        if need > self.slot_len {
            *self = TxBufs::new(mtu);
        }
    }
}

/// First SA (newest first) whose selectors cover the packet: local_ts the source, remote_ts
/// the destination.
fn select_outbound<'t>(sas: Option<&'t OutList>, flow: &Flow) -> Option<&'t OutSa> {
    sas?.values().map(|sa| &**sa).find(|sa| {
        flow.matches(&sa.local_ts, flow.src, flow.src_port)
            && flow.matches(&sa.remote_ts, flow.dst, flow.dst_port)
    })
}

pub(super) fn run(shared: &Shared, w: &mut Worker, tun: &Tunnel) {
    w.tx.fit(tun.mtu);
    let b = &mut w.tx;
    // --- while we own the device: read, classify, reserve sequence numbers, take a ticket
    let mut n = 0;
    let mut device_failed = false;
    let free_needed = if tun.offload {
        tun_rs::IDEAL_BATCH_SIZE
    } else {
        1
    };
    while n < TX_TARGET && TX_SLOTS - n >= free_needed {
        match tun.dev.recv_multiple(
            &mut b.original,
            &mut b.slots[n..],
            &mut b.sizes[n..],
            HEADROOM,
        ) {
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                shared.drops.not_ip_outbound.inc();
                tracing::debug!(ifname = %tun.ifname, "TUN read: {e}");
                // An error from read(2) itself (e.g. EBADFD once the device was deleted
                // under us) repeats forever: the device is not armed again. A malformed GSO
                // packet (an error from tun-rs, no errno) is just skipped.
                if e.raw_os_error().is_some() {
                    device_failed = true;
                    break;
                }
            }
        }
    }
    if n == 0 {
        if !device_failed {
            rearm(shared, tun);
        }
        return;
    }
    let tables = shared.snapshot();
    let sas = tables.outbound.get(tun.conn.as_str());
    // The SAs this batch uses, in first-use order; `sa_of` and the runs index into it.
    let mut picked: [Option<&OutSa>; TX_SLOTS] = [None; TX_SLOTS];
    let mut n_picked: usize = 0;
    b.runs.clear();
    for i in 0..n {
        let pkt = &b.slots[i][HEADROOM..HEADROOM + b.sizes[i]];
        b.sa_of[i] = match Flow::parse(pkt) {
            None => {
                shared.drops.not_ip_outbound.inc();
                NO_SA
            }
            Some(flow) => match select_outbound(sas, &flow) {
                Some(sa) => {
                    let last = n_picked.checked_sub(1).and_then(|l| picked[l]);
                    if !last.is_some_and(|l| std::ptr::eq(l, sa)) {
                        picked[n_picked] = Some(sa);
                        n_picked += 1;
                    }
                    (n_picked - 1) as u32
                }
                None => {
                    shared.drops.no_sa_outbound.inc();
                    NO_SA
                }
            },
        };
        match b.runs.last_mut() {
            Some(r) if r.sa == b.sa_of[i] && r.first + r.count == i => r.count += 1,
            _ => b.runs.push(Run {
                sa: b.sa_of[i],
                first: i,
                count: 1,
                seq: 0,
            }),
        }
    }
    for r in b.runs.iter_mut().filter(|r| r.sa != NO_SA) {
        let Some(sa) = picked[r.sa as usize] else {
            continue;
        };
        match sa.esp.reserve_seq(r.count) {
            Ok((first, granted)) => {
                r.seq = first;
                if granted < r.count {
                    shared.drops.seq_exhausted.add((r.count - granted) as u64);
                    r.count = granted;
                }
            }
            Err(_) => {
                shared.drops.seq_exhausted.add(r.count as u64);
                r.count = 0;
            }
        }
    }
    let mut ticket = tun.lane.ticket();
    if !device_failed {
        rearm(shared, tun);
    }

    // --- in parallel with other workers: encapsulate
    for r in b.runs.iter().filter(|r| r.sa != NO_SA && r.count > 0) {
        let Some(sa) = picked[r.sa as usize] else {
            continue;
        };
        let mut done = 0;
        while done < r.count {
            let k = (r.count - done).min(CHUNK);
            let a = r.first + done;
            let mut pkts: [PacketBuf<'_>; CHUNK] = std::array::from_fn(|_| PacketBuf {
                buf: &mut [],
                start: 0,
                len: 0,
            });
            let mut inner_bytes = 0u64;
            for ((p, slot), &size) in pkts
                .iter_mut()
                .zip(b.slots[a..a + k].iter_mut())
                .zip(b.sizes[a..a + k].iter())
            {
                inner_bytes += size as u64;
                *p = PacketBuf {
                    buf: slot.as_mut_slice(),
                    start: HEADROOM,
                    len: size,
                };
            }
            let ok = sa
                .esp
                .encapsulate_batch(r.seq + done as u64, &mut pkts[..k], &mut w.rng);
            for (p, size) in pkts[..k].iter().zip(b.sizes[a..a + k].iter_mut()) {
                // sizes now hold the ESP length (0: not sent), the start is HEADROOM - hdr
                *size = p.len;
            }
            if ok < k {
                shared.drops.not_ip_outbound.add((k - ok) as u64);
            }
            sa.stats.packets_out.add(ok as u64);
            sa.stats.bytes_out.add(inner_bytes);
            done += k;
        }
    }

    // --- in read order: send
    ticket.wait_turn();
    for r in b.runs.iter().filter(|r| r.sa != NO_SA && r.count > 0) {
        let Some(sa) = picked[r.sa as usize] else {
            continue;
        };
        let hdr = sa.esp.header_len();
        let mut refs: [&[u8]; TX_SLOTS] = [&[]; TX_SLOTS];
        let mut m = 0;
        for (slot, &len) in b.slots[r.first..r.first + r.count]
            .iter()
            .zip(b.sizes[r.first..r.first + r.count].iter())
        {
            if len > 0 {
                refs[m] = &slot[HEADROOM - hdr..HEADROOM - hdr + len];
                m += 1;
            }
        }
        send_run(shared, sa.via, &sa.dest(), &refs[..m]);
    }
    drop(ticket);
}

fn rearm(shared: &Shared, tun: &Tunnel) {
    if let Err(e) = shared.epoll.rearm(tun.dev.as_raw_fd(), tun.token) {
        tracing::debug!(ifname = %tun.ifname, "epoll re-arm: {e}");
    }
}

/// Sends packets that all go to `dest`: UDP GSO super-datagrams when the socket takes them,
/// else sendmmsg batches.
fn send_run(shared: &Shared, via: Via, dest: &RawAddr, run: &[&[u8]]) {
    if run.is_empty() {
        return;
    }
    match via {
        Via::Udp(i) => match shared.udp.get(i) {
            Some(ep) => {
                let fd = ep.socket.as_raw_fd();
                let mut sent = 0;
                if run.len() > 1 && ep.gso.load(Ordering::Relaxed) {
                    let (done, msgs, err) = sys::send_gso(fd, run, dest);
                    sent = done;
                    shared.drops.gso_sends.add(msgs as u64);
                    if let Some(e) = err {
                        // Refused (no GSO support, or segments above the path MTU): plain
                        // datagrams from now on; the kernel may fragment those.
                        if !matches!(e.kind(), io::ErrorKind::WouldBlock)
                            && e.raw_os_error() != Some(libc::ENOBUFS)
                        {
                            ep.gso.store(false, Ordering::Relaxed);
                            tracing::info!(local = %ep.local, "UDP GSO off: {e}");
                        }
                    }
                }
                send_plain(shared, fd, run.get(sent..).unwrap_or(&[]), dest);
            }
            None => shared.drops.send_errors.add(run.len() as u64),
        },
        Via::Raw => match shared.raw.as_ref() {
            Some(raw) => send_plain(shared, raw.as_raw_fd(), run, dest),
            None => shared.drops.send_errors.add(run.len() as u64),
        },
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
