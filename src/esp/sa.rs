//! One direction of an ESP SA: keyed transforms plus the sequence counter (outbound) or the
//! anti-replay window (inbound).

use super::replay::{ReplayError, ReplayWindow, MAX_WINDOW};
use super::{
    DropReason, EspError, SaParams, ESP_HEADER_LEN, NEXT_HEADER_IPV4, NEXT_HEADER_IPV6,
    NEXT_HEADER_NONE,
};
use crate::crypto::{new_aead, new_cbc, new_mac, Aead, CbcCipher, EncrAlg, IntegAlg, Mac};
use rand::RngCore;
use std::fmt;

/// Keyed transform of an SA. Dropping it drops the cipher objects, which wipe their keys.
enum Transform {
    /// CBC cipher with a separate HMAC (encrypt-then-MAC). `mac` is None only in the
    /// encryption-only test constructor (RFC 3602 vectors carry no ICV).
    Cbc {
        cipher: Box<dyn CbcCipher>,
        mac: Option<Box<dyn Mac>>,
    },
    Gcm {
        aead: Box<dyn Aead>,
    },
}

impl Transform {
    fn new(p: &SaParams, allow_no_integrity: bool) -> Result<Transform, EspError> {
        if p.encr.is_aead() {
            if p.integ.is_some() {
                return Err(EspError::UnexpectedIntegrity);
            }
            Ok(Transform::Gcm {
                aead: new_aead(p.encr, &p.encr_key)?,
            })
        } else {
            let mac = match p.integ {
                Some(alg) => Some(new_mac(alg, &p.integ_key)?),
                None if allow_no_integrity => None,
                None => return Err(EspError::MissingIntegrity),
            };
            Ok(Transform::Cbc {
                cipher: new_cbc(p.encr, &p.encr_key)?,
                mac,
            })
        }
    }

    fn icv_len(&self) -> usize {
        match self {
            Transform::Cbc { mac, .. } => mac.as_ref().map_or(0, |m| m.icv_len()),
            Transform::Gcm { .. } => 16,
        }
    }
}

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
}

/// AAD for GCM (RFC 4106 5): SPI | seq (32) or SPI | seq high | seq low with ESN.
fn gcm_aad(spi: u32, seq: u64, esn: bool, buf: &mut [u8; 12]) -> usize {
    buf[..4].copy_from_slice(&spi.to_be_bytes());
    if esn {
        buf[4..8].copy_from_slice(&((seq >> 32) as u32).to_be_bytes());
        buf[8..12].copy_from_slice(&(seq as u32).to_be_bytes());
        12
    } else {
        buf[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        8
    }
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
    next_seq: u64,
}

impl fmt::Debug for OutboundSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundSa")
            .field("spi", &format_args!("{:08x}", self.spi))
            .field("encr", &self.encr)
            .field("integ", &self.integ)
            .field("esn", &self.esn)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

/// Non-ESN: rekey when fewer than 2^24 numbers are left, so IKE has time for a CREATE_CHILD_SA.
const REKEY_MARGIN_32: u64 = 1 << 24;
/// ESN: the same idea, with a margin of 2^32 packets.
const REKEY_MARGIN_64: u64 = 1 << 32;

impl OutboundSa {
    pub fn new(p: &SaParams) -> Result<OutboundSa, EspError> {
        Self::build(p, false)
    }

    fn build(p: &SaParams, allow_no_integrity: bool) -> Result<OutboundSa, EspError> {
        let transform = Transform::new(p, allow_no_integrity)?;
        let layout = Layout::of(p.encr, transform.icv_len());
        Ok(OutboundSa {
            spi: p.spi,
            encr: p.encr,
            integ: p.integ,
            esn: p.esn,
            transform,
            layout,
            next_seq: 1,
        })
    }

    /// Encryption-only SA for the RFC 3602 known-answer tests.
    #[cfg(test)]
    pub(crate) fn new_unauthenticated(p: &SaParams) -> Result<OutboundSa, EspError> {
        Self::build(p, true)
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

    /// Sequence number of the last packet sent (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
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
        self.next_seq > self.max_seq() - margin
    }

    /// Bytes added around an inner packet of `inner_len` bytes (header, IV, padding,
    /// trailer, ICV): what the outer MTU must leave room for.
    pub fn overhead(&self, inner_len: usize) -> usize {
        self.encapsulated_len(inner_len) - inner_len
    }

    /// Length of the ESP packet for an inner packet of `inner_len` bytes.
    pub fn encapsulated_len(&self, inner_len: usize) -> usize {
        let l = &self.layout;
        let payload = inner_len + 2;
        let padded = payload.div_ceil(l.block_len) * l.block_len;
        l.header_len() + padded + l.icv_len
    }

    fn take_seq(&mut self) -> Result<u64, EspError> {
        let seq = self.next_seq;
        if seq > self.max_seq() {
            return Err(EspError::SeqExhausted);
        }
        // max_seq < u64::MAX, so this cannot overflow.
        self.next_seq = seq + 1;
        Ok(seq)
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
        let seq = self.take_seq()?;
        let hdr = self.layout.header_len();
        out.clear();
        out.resize(hdr, 0);
        match self.transform {
            // A fresh unpredictable IV per packet (RFC 3602 2.1: CBC IVs must not be guessable).
            Transform::Cbc { .. } => rng.fill_bytes(&mut out[ESP_HEADER_LEN..hdr]),
            // GCM needs uniqueness only (RFC 4106 3.1): the 64-bit sequence number is unique.
            Transform::Gcm { .. } => out[ESP_HEADER_LEN..hdr].copy_from_slice(&seq.to_be_bytes()),
        }
        self.seal(seq, inner, next_header, out);
        Ok(())
    }

    /// Tests and the fuzz harness: continue the counter at `next` (to reach any sequence number).
    pub(crate) fn set_next_seq_for_test(&mut self, next: u64) {
        self.next_seq = next;
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
        self.seal(seq, inner, next_header, out);
    }

    /// `out` holds header-length bytes with the IV in place; fills in the rest.
    fn seal(&self, seq: u64, inner: &[u8], next_header: u8, out: &mut Vec<u8>) {
        let l = self.layout;
        let hdr = l.header_len();
        let payload = inner.len() + 2;
        let pad_len = (l.block_len - payload % l.block_len) % l.block_len;
        let ct_len = payload + pad_len;
        out[0..4].copy_from_slice(&self.spi.to_be_bytes());
        out[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        out.extend_from_slice(inner);
        // Monotonic padding 1, 2, 3, ... (RFC 4303 2.4).
        out.extend((1..=pad_len as u8).take(pad_len));
        out.push(pad_len as u8);
        out.push(next_header);
        out.resize(hdr + ct_len + l.icv_len, 0);
        let seq_hi = ((seq >> 32) as u32).to_be_bytes();
        match &self.transform {
            Transform::Cbc { cipher, mac } => {
                let (head, rest) = out.split_at_mut(hdr);
                let (ct, icv) = rest.split_at_mut(ct_len);
                cipher.encrypt(&head[ESP_HEADER_LEN..], ct);
                if let Some(mac) = mac {
                    // ICV over SPI..ciphertext, plus the implicit ESN high half (RFC 4303 2.2.1).
                    if self.esn {
                        mac.sign(&[head, ct, &seq_hi], icv);
                    } else {
                        mac.sign(&[head, ct], icv);
                    }
                }
            }
            Transform::Gcm { aead } => {
                let mut aad = [0u8; 12];
                let aad_len = gcm_aad(self.spi, seq, self.esn, &mut aad);
                let (head, rest) = out.split_at_mut(hdr);
                let (ct, icv) = rest.split_at_mut(ct_len);
                let mut iv = [0u8; 8];
                iv.copy_from_slice(&head[ESP_HEADER_LEN..]);
                let tag = aead.seal(&iv, &aad[..aad_len], ct);
                icv.copy_from_slice(&tag);
            }
        }
    }
}

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
    window: ReplayWindow,
}

impl fmt::Debug for InboundSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundSa")
            .field("spi", &format_args!("{:08x}", self.spi))
            .field("encr", &self.encr)
            .field("integ", &self.integ)
            .field("esn", &self.esn)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl InboundSa {
    pub fn new(p: &SaParams) -> Result<InboundSa, EspError> {
        Self::build(p, false)
    }

    fn build(p: &SaParams, allow_no_integrity: bool) -> Result<InboundSa, EspError> {
        if p.replay_window > MAX_WINDOW {
            return Err(EspError::ReplayWindowTooLarge(p.replay_window));
        }
        let transform = Transform::new(p, allow_no_integrity)?;
        let layout = Layout::of(p.encr, transform.icv_len());
        Ok(InboundSa {
            spi: p.spi,
            encr: p.encr,
            integ: p.integ,
            esn: p.esn,
            transform,
            layout,
            window: ReplayWindow::new(p.replay_window, p.esn),
        })
    }

    #[cfg(test)]
    pub(crate) fn new_unauthenticated(p: &SaParams) -> Result<InboundSa, EspError> {
        Self::build(p, true)
    }

    #[cfg(test)]
    pub(crate) fn window_mut(&mut self) -> &mut ReplayWindow {
        &mut self.window
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

    /// Highest authenticated sequence number.
    pub fn highest_seq(&self) -> u64 {
        self.window.top()
    }

    /// Decapsulates a tunnel-mode packet (starting at the SPI) in place. Order: length checks,
    /// replay pre-check, ICV (before any decryption), decryption, padding, window update,
    /// next header. Never panics on any input.
    pub fn decapsulate<'a>(&mut self, packet: &'a mut [u8]) -> Result<Inner<'a>, DropReason> {
        self.decapsulate_inner(packet, true)
    }

    /// Without the tunnel-mode next header policy (known-answer vectors use next header 1).
    #[cfg(test)]
    pub(crate) fn decapsulate_any<'a>(
        &mut self,
        packet: &'a mut [u8],
    ) -> Result<Inner<'a>, DropReason> {
        self.decapsulate_inner(packet, false)
    }

    fn decapsulate_inner<'a>(
        &mut self,
        packet: &'a mut [u8],
        tunnel: bool,
    ) -> Result<Inner<'a>, DropReason> {
        let l = self.layout;
        let hdr = l.header_len();
        // Smallest ciphertext: one block for CBC, the two trailer bytes for GCM.
        let min_ct = match self.transform {
            Transform::Cbc { .. } => l.block_len,
            Transform::Gcm { .. } => 2,
        };
        if packet.len() < hdr + min_ct + l.icv_len {
            return Err(DropReason::Truncated);
        }
        let ct_len = packet.len() - hdr - l.icv_len;
        if matches!(self.transform, Transform::Cbc { .. }) && ct_len % l.block_len != 0 {
            return Err(DropReason::BadLength);
        }
        let spi = u32::from_be_bytes([packet[0], packet[1], packet[2], packet[3]]);
        if spi != self.spi {
            return Err(DropReason::WrongSpi);
        }
        let seq_low = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let seq = self.window.check(seq_low).map_err(|e| match e {
            ReplayError::Replay => DropReason::Replay,
            ReplayError::OutOfRange => DropReason::SeqOutOfRange,
        })?;
        let seq_hi = ((seq >> 32) as u32).to_be_bytes();

        {
            let (head, rest) = packet.split_at_mut(hdr);
            let (ct, icv) = rest.split_at_mut(ct_len);
            match &self.transform {
                Transform::Cbc { cipher, mac } => {
                    if let Some(mac) = mac {
                        // Verify (constant time) before decrypting anything.
                        let ok = if self.esn {
                            mac.verify(&[head, ct, &seq_hi], icv)
                        } else {
                            mac.verify(&[head, ct], icv)
                        };
                        if !ok {
                            return Err(DropReason::AuthFailed);
                        }
                    }
                    cipher.decrypt(&head[ESP_HEADER_LEN..], ct);
                }
                Transform::Gcm { aead } => {
                    let mut aad = [0u8; 12];
                    let aad_len = gcm_aad(self.spi, seq, self.esn, &mut aad);
                    let mut iv = [0u8; 8];
                    iv.copy_from_slice(&head[ESP_HEADER_LEN..]);
                    if !aead.open(&iv, &aad[..aad_len], ct, icv) {
                        return Err(DropReason::AuthFailed);
                    }
                }
            }
        }

        let packet: &'a [u8] = packet;
        let ct = &packet[hdr..hdr + ct_len];
        let (trailer_start, next_header, pad_len) = match ct {
            [.., pad_len, nh] => (ct_len - 2, *nh, usize::from(*pad_len)),
            _ => return Err(DropReason::Truncated),
        };
        if pad_len > trailer_start {
            return Err(DropReason::BadPadding);
        }
        let inner_len = trailer_start - pad_len;
        let padding = &ct[inner_len..trailer_start];
        if !padding
            .iter()
            .enumerate()
            .all(|(i, &b)| usize::from(b) == i + 1)
        {
            return Err(DropReason::BadPadding);
        }
        // Authenticated and well-formed: this sequence number is now used.
        self.window.update(seq);
        let inner = &ct[..inner_len];
        if next_header == NEXT_HEADER_NONE {
            return Err(DropReason::Dummy);
        }
        if tunnel {
            let version = inner.first().map(|b| b >> 4);
            let consistent = matches!(
                (next_header, version),
                (NEXT_HEADER_IPV4, Some(4)) | (NEXT_HEADER_IPV6, Some(6))
            );
            if !consistent {
                return Err(DropReason::BadNextHeader);
            }
        }
        Ok(Inner {
            next_header,
            seq,
            packet: inner,
        })
    }
}
