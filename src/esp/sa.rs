//! One direction of an ESP SA: keyed transforms plus the sequence counter (outbound) or the
//! anti-replay window (inbound).
//!
//! Both directions work on `&self` so several packet workers can share one SA: the outbound
//! counter is an atomic (each batch reserves a run of numbers), the replay window sits behind
//! a short lock taken twice per batch (pre-check before the crypto, check-and-set after it).

use super::replay::{ReplayError, ReplayWindow, MAX_WINDOW};
use super::transform::{Backend, Item, Transform, CHUNK};
use super::{
    DropReason, EspError, SaParams, ESP_HEADER_LEN, NEXT_HEADER_IPV4, NEXT_HEADER_IPV6,
    NEXT_HEADER_NONE,
};
use crate::crypto::{EncrAlg, IntegAlg};
use rand::RngCore;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Layout numbers fixed per SA.
#[derive(Clone, Copy, Debug)]
struct Layout {
    iv_len: usize,
    /// Alignment of (payload + padding + 2).
    block_len: usize,
    icv_len: usize,
}

impl Layout {
    fn of(encr: EncrAlg, icv_len: usize) -> Layout {
        Layout {
            iv_len: encr.iv_len(),
            block_len: encr.block_len(),
            icv_len,
        }
    }
    fn header_len(&self) -> usize {
        ESP_HEADER_LEN + self.iv_len
    }
    fn pad_len(&self, inner_len: usize) -> usize {
        let payload = inner_len + 2;
        (self.block_len - payload % self.block_len) % self.block_len
    }
}

/// One packet of a batch, in place: the bytes are `buf[start..start + len]`. Encapsulation
/// writes the ESP header in front (`start` moves back) and the trailer and ICV behind;
/// decapsulation leaves `start..start + len` on the inner packet. `len == 0` after
/// encapsulation marks a packet that could not be sent (no room, not IP).
pub struct PacketBuf<'a> {
    pub buf: &'a mut [u8],
    pub start: usize,
    pub len: usize,
}

/// A packet that decapsulated: its next header and full sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decapsulated {
    pub next_header: u8,
    pub seq: u64,
}

/// Sending side of an SA.
pub struct OutboundSa {
    spi: u32,
    encr: EncrAlg,
    integ: Option<IntegAlg>,
    esn: bool,
    transform: Transform,
    layout: Layout,
    /// Next sequence number to use (full 64 bits; the wire carries the low 32).
    next_seq: AtomicU64,
}

impl fmt::Debug for OutboundSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundSa")
            .field("spi", &format_args!("{:08x}", self.spi))
            .field("encr", &self.encr)
            .field("integ", &self.integ)
            .field("esn", &self.esn)
            .field("next_seq", &self.next_seq.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Non-ESN: rekey when fewer than 2^24 numbers are left, so IKE has time for a CREATE_CHILD_SA.
const REKEY_MARGIN_32: u64 = 1 << 24;
/// ESN: the same idea, with a margin of 2^32 packets.
const REKEY_MARGIN_64: u64 = 1 << 32;

impl OutboundSa {
    pub fn new(p: &SaParams) -> Result<OutboundSa, EspError> {
        Self::build(p, false, Backend::Auto)
    }

    /// With an explicit implementation (`Backend::Reference` for comparisons).
    pub fn with_backend(p: &SaParams, backend: Backend) -> Result<OutboundSa, EspError> {
        Self::build(p, false, backend)
    }

    fn build(
        p: &SaParams,
        allow_no_integrity: bool,
        backend: Backend,
    ) -> Result<OutboundSa, EspError> {
        let transform = Transform::new(p, allow_no_integrity, backend)?;
        let layout = Layout::of(p.encr, transform.icv_len());
        Ok(OutboundSa {
            spi: p.spi,
            encr: p.encr,
            integ: p.integ,
            esn: p.esn,
            transform,
            layout,
            next_seq: AtomicU64::new(1),
        })
    }

    /// Encryption-only SA for the RFC 3602 known-answer tests.
    #[cfg(test)]
    pub(crate) fn new_unauthenticated(p: &SaParams) -> Result<OutboundSa, EspError> {
        Self::build(p, true, Backend::Auto)
    }

    pub fn spi(&self) -> u32 {
        self.spi
    }

    pub fn encr(&self) -> EncrAlg {
        self.encr
    }

    pub fn integ(&self) -> Option<IntegAlg> {
        self.integ
    }

    pub fn esn(&self) -> bool {
        self.esn
    }

    /// True when the fast path (`crate::crypto::fast`) handles this SA.
    pub fn is_fast(&self) -> bool {
        self.transform.is_fast()
    }

    /// Bytes needed in front of an inner packet for the ESP header and IV.
    pub fn header_len(&self) -> usize {
        self.layout.header_len()
    }

    /// Sequence number of the last packet sent (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.next_seq
            .load(Ordering::Relaxed)
            .min(self.max_seq() + 1)
            - 1
    }

    fn max_seq(&self) -> u64 {
        if self.esn {
            // One short of 2^64 - 1 so the counter itself never overflows.
            u64::MAX - 1
        } else {
            u64::from(u32::MAX)
        }
    }

    /// True once the counter is close enough to the end that the SA should be replaced.
    pub fn needs_rekey(&self) -> bool {
        let margin = if self.esn {
            REKEY_MARGIN_64
        } else {
            REKEY_MARGIN_32
        };
        self.next_seq.load(Ordering::Relaxed) > self.max_seq() - margin
    }

    /// Bytes added around an inner packet of `inner_len` bytes (header, IV, padding,
    /// trailer, ICV): what the outer MTU must leave room for.
    pub fn overhead(&self, inner_len: usize) -> usize {
        self.encapsulated_len(inner_len) - inner_len
    }

    /// Length of the ESP packet for an inner packet of `inner_len` bytes.
    pub fn encapsulated_len(&self, inner_len: usize) -> usize {
        let l = &self.layout;
        l.header_len() + inner_len + l.pad_len(inner_len) + 2 + l.icv_len
    }

    /// Reserves up to `n` consecutive sequence numbers (one atomic step, so concurrent
    /// senders never share one): returns the first and how many were granted (at least 1).
    pub fn reserve_seq(&self, n: usize) -> Result<(u64, usize), EspError> {
        let max = self.max_seq();
        let want = n.max(1) as u64;
        let mut granted = 0;
        let got = self
            .next_seq
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |next| {
                if next > max {
                    return None;
                }
                granted = want.min(max - next + 1);
                // max < u64::MAX, so next + granted <= max + 1 cannot overflow.
                Some(next + granted)
            });
        match got {
            Ok(first) => Ok((first, granted as usize)),
            Err(_) => Err(EspError::SeqExhausted),
        }
    }

    /// Encapsulates one IPv4/IPv6 packet into `out` (cleared first; its capacity is reused, so
    /// steady state does not allocate). The next header is 4 or 41 from the version nibble.
    pub fn encapsulate(
        &mut self,
        inner: &[u8],
        rng: &mut dyn RngCore,
        out: &mut Vec<u8>,
    ) -> Result<(), EspError> {
        let next_header = match inner.first().map(|b| b >> 4) {
            Some(4) => NEXT_HEADER_IPV4,
            Some(6) => NEXT_HEADER_IPV6,
            _ => return Err(EspError::NotIp),
        };
        self.encapsulate_with_next_header(inner, next_header, rng, out)
    }

    /// Like `encapsulate` with an explicit next header (e.g. 59 for a dummy packet).
    pub fn encapsulate_with_next_header(
        &mut self,
        inner: &[u8],
        next_header: u8,
        rng: &mut dyn RngCore,
        out: &mut Vec<u8>,
    ) -> Result<(), EspError> {
        let (seq, _) = self.reserve_seq(1)?;
        let hdr = self.layout.header_len();
        out.clear();
        out.resize(hdr, 0);
        self.fill_iv(seq, rng, &mut out[ESP_HEADER_LEN..hdr]);
        self.seal_vec(seq, inner, next_header, out);
        Ok(())
    }

    /// A fresh unpredictable IV per packet for CBC (RFC 3602 2.1); for GCM the 64-bit
    /// sequence number, which is unique (RFC 4106 3.1).
    fn fill_iv(&self, seq: u64, rng: &mut dyn RngCore, iv: &mut [u8]) {
        if self.transform.is_aead() {
            iv.copy_from_slice(&seq.to_be_bytes());
        } else {
            rng.fill_bytes(iv);
        }
    }

    /// Tests and the fuzz harness: continue the counter at `next` (to reach any sequence number).
    pub(crate) fn set_next_seq_for_test(&mut self, next: u64) {
        self.next_seq.store(next, Ordering::Relaxed);
    }

    /// Known-answer tests: encapsulate with a given IV and sequence number.
    #[cfg(test)]
    pub(crate) fn encapsulate_with_iv(
        &mut self,
        seq: u64,
        iv: &[u8],
        inner: &[u8],
        next_header: u8,
        out: &mut Vec<u8>,
    ) {
        let hdr = self.layout.header_len();
        out.clear();
        out.resize(hdr, 0);
        out[ESP_HEADER_LEN..hdr].copy_from_slice(iv);
        self.seal_vec(seq, inner, next_header, out);
    }

    /// `out` holds header-length bytes with the IV in place; fills in the rest.
    fn seal_vec(&self, seq: u64, inner: &[u8], next_header: u8, out: &mut Vec<u8>) {
        let l = self.layout;
        let hdr = l.header_len();
        let pad_len = l.pad_len(inner.len());
        out.extend_from_slice(inner);
        out.resize(hdr + inner.len() + pad_len + 2 + l.icv_len, 0);
        self.write_header_and_trailer(out, seq, inner.len(), next_header);
        let ct = inner.len() + pad_len + 2;
        let mut items = [Item {
            pkt: out,
            hdr,
            ct,
            seq,
            ok: true,
        }];
        self.transform.seal(&mut items, self.esn);
    }

    /// SPI and sequence number in front, monotonic padding 1, 2, 3, ... (RFC 4303 2.4), pad
    /// length and next header behind the inner packet of `inner_len` bytes at `hdr`.
    fn write_header_and_trailer(&self, pkt: &mut [u8], seq: u64, inner_len: usize, nh: u8) {
        let hdr = self.layout.header_len();
        let pad_len = self.layout.pad_len(inner_len);
        pkt[0..4].copy_from_slice(&self.spi.to_be_bytes());
        pkt[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        let t = hdr + inner_len;
        for (i, b) in pkt[t..t + pad_len].iter_mut().enumerate() {
            *b = (i + 1) as u8;
        }
        pkt[t + pad_len] = pad_len as u8;
        pkt[t + pad_len + 1] = nh;
    }

    /// Encapsulates every packet in place with sequence numbers `first_seq`, `first_seq + 1`,
    /// ... (reserved with `reserve_seq`). A packet needs `header_len()` bytes free in front
    /// of `start` and `TAILROOM` behind its end; one without room, or not IPv4/IPv6, is left
    /// with `len == 0` (its number is skipped). Returns how many were encapsulated. Nothing
    /// is allocated.
    pub fn encapsulate_batch(
        &self,
        first_seq: u64,
        pkts: &mut [PacketBuf<'_>],
        rng: &mut dyn RngCore,
    ) -> usize {
        let l = self.layout;
        let hdr = l.header_len();
        let mut done = 0;
        let mut seq = first_seq;
        for chunk in pkts.chunks_mut(CHUNK) {
            let mut ivs = [0u8; 16 * CHUNK];
            if !self.transform.is_aead() {
                rng.fill_bytes(&mut ivs[..l.iv_len * chunk.len()]);
            }
            let mut items: [Item<'_>; CHUNK] = std::array::from_fn(|_| Item {
                pkt: &mut [],
                hdr,
                ct: 0,
                seq: 0,
                ok: true,
            });
            let mut k = 0;
            for (i, p) in chunk.iter_mut().enumerate() {
                let s = seq;
                seq += 1;
                let nh = match p.buf.get(p.start).map(|b| b >> 4) {
                    Some(4) => NEXT_HEADER_IPV4,
                    Some(6) => NEXT_HEADER_IPV6,
                    _ => {
                        p.len = 0;
                        continue;
                    }
                };
                let ct = p.len + l.pad_len(p.len) + 2;
                let end = p.start + ct + l.icv_len;
                if p.start < hdr || end > p.buf.len() {
                    p.len = 0;
                    continue;
                }
                let begin = p.start - hdr;
                let inner_len = p.len;
                p.start = begin;
                p.len = hdr + ct + l.icv_len;
                let pkt = &mut p.buf[begin..end];
                if self.transform.is_aead() {
                    pkt[ESP_HEADER_LEN..hdr].copy_from_slice(&s.to_be_bytes());
                } else {
                    pkt[ESP_HEADER_LEN..hdr]
                        .copy_from_slice(&ivs[l.iv_len * i..l.iv_len * (i + 1)]);
                }
                self.write_header_and_trailer(pkt, s, inner_len, nh);
                items[k] = Item {
                    pkt,
                    hdr,
                    ct,
                    seq: s,
                    ok: true,
                };
                k += 1;
            }
            self.transform.seal(&mut items[..k], self.esn);
            done += k;
        }
        done
    }
}

/// Bytes a packet needs behind its end for padding, trailer and ICV (any algorithm here).
pub const TAILROOM: usize = 64;
/// Bytes a packet needs in front for the ESP header and the largest IV.
pub const HEADROOM: usize = ESP_HEADER_LEN + 16;

/// A decapsulated packet: borrowed from the buffer given to `decapsulate`.
#[derive(Debug)]
pub struct Inner<'a> {
    pub next_header: u8,
    /// Full (ESN-reconstructed) sequence number.
    pub seq: u64,
    /// The inner IP packet (padding and trailer removed).
    pub packet: &'a [u8],
}

/// Receiving side of an SA.
pub struct InboundSa {
    spi: u32,
    encr: EncrAlg,
    integ: Option<IntegAlg>,
    esn: bool,
    transform: Transform,
    layout: Layout,
    window: Mutex<ReplayWindow>,
}

impl fmt::Debug for InboundSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundSa")
            .field("spi", &format_args!("{:08x}", self.spi))
            .field("encr", &self.encr)
            .field("integ", &self.integ)
            .field("esn", &self.esn)
            .field("window", &*self.window())
            .finish_non_exhaustive()
    }
}

impl InboundSa {
    pub fn new(p: &SaParams) -> Result<InboundSa, EspError> {
        Self::build(p, false, Backend::Auto)
    }

    /// With an explicit implementation (`Backend::Reference` for comparisons).
    pub fn with_backend(p: &SaParams, backend: Backend) -> Result<InboundSa, EspError> {
        Self::build(p, false, backend)
    }

    fn build(
        p: &SaParams,
        allow_no_integrity: bool,
        backend: Backend,
    ) -> Result<InboundSa, EspError> {
        if p.replay_window > MAX_WINDOW {
            return Err(EspError::ReplayWindowTooLarge(p.replay_window));
        }
        let transform = Transform::new(p, allow_no_integrity, backend)?;
        let layout = Layout::of(p.encr, transform.icv_len());
        Ok(InboundSa {
            spi: p.spi,
            encr: p.encr,
            integ: p.integ,
            esn: p.esn,
            transform,
            layout,
            window: Mutex::new(ReplayWindow::new(p.replay_window, p.esn)),
        })
    }

    #[cfg(test)]
    pub(crate) fn new_unauthenticated(p: &SaParams) -> Result<InboundSa, EspError> {
        Self::build(p, true, Backend::Auto)
    }

    #[cfg(test)]
    pub(crate) fn window_mut(&mut self) -> &mut ReplayWindow {
        self.window.get_mut().unwrap_or_else(|e| e.into_inner())
    }

    fn window(&self) -> MutexGuard<'_, ReplayWindow> {
        // A panic elsewhere must not wedge the SA: the window itself is always consistent.
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn spi(&self) -> u32 {
        self.spi
    }

    pub fn encr(&self) -> EncrAlg {
        self.encr
    }

    pub fn integ(&self) -> Option<IntegAlg> {
        self.integ
    }

    pub fn esn(&self) -> bool {
        self.esn
    }

    /// True when the fast path (`crate::crypto::fast`) handles this SA.
    pub fn is_fast(&self) -> bool {
        self.transform.is_fast()
    }

    /// Highest authenticated sequence number.
    pub fn highest_seq(&self) -> u64 {
        self.window().top()
    }

    /// Decapsulates a tunnel-mode packet (starting at the SPI) in place. Order: length checks,
    /// replay pre-check, ICV (before any decryption), decryption, padding, window update,
    /// next header. Never panics on any input.
    pub fn decapsulate<'a>(&mut self, packet: &'a mut [u8]) -> Result<Inner<'a>, DropReason> {
        self.decapsulate_one(packet, true)
    }

    /// Without the tunnel-mode next header policy (known-answer vectors use next header 1).
    #[cfg(test)]
    pub(crate) fn decapsulate_any<'a>(
        &mut self,
        packet: &'a mut [u8],
    ) -> Result<Inner<'a>, DropReason> {
        self.decapsulate_one(packet, false)
    }

    fn decapsulate_one<'a>(
        &self,
        packet: &'a mut [u8],
        tunnel: bool,
    ) -> Result<Inner<'a>, DropReason> {
        let len = packet.len();
        let mut pkts = [PacketBuf {
            buf: packet,
            start: 0,
            len,
        }];
        let mut res = [Err(DropReason::Truncated)];
        self.decapsulate_inner(&mut pkts, &mut res, tunnel);
        let [PacketBuf { buf, start, len }] = pkts;
        let d = res[0]?;
        let buf: &'a [u8] = buf;
        Ok(Inner {
            next_header: d.next_header,
            seq: d.seq,
            packet: &buf[start..start + len],
        })
    }

    /// Decapsulates every packet in place (each starting at its SPI); `out[i]` gets the
    /// result of `pkts[i]`, and a packet that decapsulated is left on its inner packet.
    /// Same checks and order as `decapsulate`: `open_batch` then `commit_batch`.
    pub fn decapsulate_batch(
        &self,
        pkts: &mut [PacketBuf<'_>],
        out: &mut [Result<Decapsulated, DropReason>],
    ) {
        self.decapsulate_inner(pkts, out, true)
    }

    /// The part of decapsulation that several workers may run at once: length and SPI
    /// checks, a pre-check against the replay window (as committed so far), ICV, decryption,
    /// padding and next header. `seqs[i]` gets the full sequence number of every packet that
    /// authenticated (0 otherwise), also of dummy and bad-next-header packets, which use up
    /// their number. Nothing is recorded in the window: `commit_batch` does that, in order.
    pub fn open_batch(
        &self,
        pkts: &mut [PacketBuf<'_>],
        out: &mut [Result<Decapsulated, DropReason>],
        seqs: &mut [u64],
    ) {
        for ((p, o), s) in pkts
            .chunks_mut(CHUNK)
            .zip(out.chunks_mut(CHUNK))
            .zip(seqs.chunks_mut(CHUNK))
        {
            self.open_inner(p, o, s, true);
        }
    }

    /// Records the authenticated sequence numbers of an opened batch in the replay window
    /// (one lock): a number seen before (or fallen out of the window) turns its result into
    /// `Replay`. Call in the order the packets arrived.
    pub fn commit_batch(&self, seqs: &[u64], out: &mut [Result<Decapsulated, DropReason>]) {
        let mut win = self.window();
        for (&seq, r) in seqs.iter().zip(out.iter_mut()) {
            if seq == 0 {
                continue;
            }
            if win.check_full(seq).is_err() {
                *r = Err(DropReason::Replay);
            } else {
                win.update(seq);
            }
        }
    }

    fn decapsulate_inner(
        &self,
        pkts: &mut [PacketBuf<'_>],
        out: &mut [Result<Decapsulated, DropReason>],
        tunnel: bool,
    ) {
        let mut seqs = [0u64; CHUNK];
        for (p, o) in pkts.chunks_mut(CHUNK).zip(out.chunks_mut(CHUNK)) {
            self.open_inner(p, o, &mut seqs, tunnel);
            self.commit_batch(&seqs[..p.len()], o);
        }
    }

    /// `open_batch` for at most CHUNK packets.
    fn open_inner(
        &self,
        pkts: &mut [PacketBuf<'_>],
        out: &mut [Result<Decapsulated, DropReason>],
        seqs_out: &mut [u64],
        tunnel: bool,
    ) {
        let l = self.layout;
        let hdr = l.header_len();
        // Smallest ciphertext: one block for CBC, the two trailer bytes for GCM.
        let min_ct = if self.transform.is_aead() {
            2
        } else {
            l.block_len
        };
        let n = pkts.len().min(CHUNK).min(out.len()).min(seqs_out.len());
        let (chunk, res) = (&mut pkts[..n], &mut out[..n]);
        seqs_out[..n].iter_mut().for_each(|s| *s = 0);
        {
            // 1. lengths, SPI and the replay pre-check (one lock for the chunk)
            let mut seqs = [0u64; CHUNK];
            {
                let win = self.window();
                for ((p, r), s) in chunk.iter().zip(res.iter_mut()).zip(seqs.iter_mut()) {
                    *r = Err(DropReason::Truncated);
                    let Some(pkt) = p.buf.get(p.start..p.start + p.len) else {
                        continue;
                    };
                    if pkt.len() < hdr + min_ct + l.icv_len {
                        continue;
                    }
                    let ct_len = pkt.len() - hdr - l.icv_len;
                    if !self.transform.is_aead() && !ct_len.is_multiple_of(l.block_len) {
                        *r = Err(DropReason::BadLength);
                        continue;
                    }
                    if u32::from_be_bytes([pkt[0], pkt[1], pkt[2], pkt[3]]) != self.spi {
                        *r = Err(DropReason::WrongSpi);
                        continue;
                    }
                    let seq_low = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
                    match win.check(seq_low) {
                        Ok(seq) => {
                            *s = seq;
                            *r = Ok(Decapsulated {
                                next_header: 0,
                                seq,
                            });
                        }
                        Err(ReplayError::Replay) => *r = Err(DropReason::Replay),
                        Err(ReplayError::OutOfRange) => *r = Err(DropReason::SeqOutOfRange),
                    }
                }
            }
            // 2. ICV, then decryption of what verified
            // (offset of the inner packet from `start`, its length, next header) per packet
            let mut inner = [(0usize, 0usize, 0u8); CHUNK];
            {
                let mut items: [Item<'_>; CHUNK] = std::array::from_fn(|_| Item {
                    pkt: &mut [],
                    hdr,
                    ct: 0,
                    seq: 0,
                    ok: false,
                });
                let mut idx = [0usize; CHUNK];
                let mut k = 0;
                for (i, (p, r)) in chunk.iter_mut().zip(res.iter()).enumerate() {
                    if r.is_err() {
                        continue;
                    }
                    let pkt = &mut p.buf[p.start..p.start + p.len];
                    let ct = pkt.len() - hdr - l.icv_len;
                    items[k] = Item {
                        pkt,
                        hdr,
                        ct,
                        seq: seqs[i],
                        ok: true,
                    };
                    idx[k] = i;
                    k += 1;
                }
                self.transform.open(&mut items[..k], self.esn);
                // 3. trailer and padding of what authenticated
                for (it, &i) in items.iter().zip(idx.iter()).take(k) {
                    if !it.ok {
                        res[i] = Err(DropReason::AuthFailed);
                        continue;
                    }
                    let ct = &it.pkt[hdr..hdr + it.ct];
                    let (trailer_start, nh, pad_len) = match ct {
                        [.., pad_len, nh] => (it.ct - 2, *nh, usize::from(*pad_len)),
                        _ => {
                            res[i] = Err(DropReason::Truncated);
                            continue;
                        }
                    };
                    if pad_len > trailer_start {
                        res[i] = Err(DropReason::BadPadding);
                        continue;
                    }
                    let inner_len = trailer_start - pad_len;
                    let padding = &ct[inner_len..trailer_start];
                    if !padding
                        .iter()
                        .enumerate()
                        .all(|(j, &b)| usize::from(b) == j + 1)
                    {
                        res[i] = Err(DropReason::BadPadding);
                        continue;
                    }
                    inner[i] = (hdr, inner_len, nh);
                }
            }
            // 4. authenticated and well-formed: the number is used (commit_batch records
            // it), then the next header policy
            for (i, (p, r)) in chunk.iter_mut().zip(res.iter_mut()).enumerate() {
                let Ok(d) = r else { continue };
                let seq = d.seq;
                seqs_out[i] = seq;
                let (off, len, nh) = inner[i];
                if nh == NEXT_HEADER_NONE {
                    *r = Err(DropReason::Dummy);
                    continue;
                }
                let pkt = &p.buf[p.start + off..p.start + off + len];
                if tunnel {
                    let version = pkt.first().map(|b| b >> 4);
                    let consistent = matches!(
                        (nh, version),
                        (NEXT_HEADER_IPV4, Some(4)) | (NEXT_HEADER_IPV6, Some(6))
                    );
                    if !consistent {
                        *r = Err(DropReason::BadNextHeader);
                        continue;
                    }
                }
                p.start += off;
                p.len = len;
                *r = Ok(Decapsulated {
                    next_header: nh,
                    seq,
                });
            }
        }
    }
}
