//! The keyed transform of one SA direction, in two implementations: the crate path
//! (`crate::crypto` trait objects, RustCrypto) and the fast path (`crate::crypto::fast`,
//! intrinsics, several packets at a time). Both work on packets laid out in place:
//! `SPI | seq | IV | ciphertext | ICV`.

use super::{EspError, SaParams, ESP_HEADER_LEN};
use crate::crypto::fast::{aes::AesKey, des::TdesKey, gcm::AesGcm, sha1 as fsha1};
use crate::crypto::{
    new_aead, new_cbc, new_mac, Aead, CbcCipher, EncrAlg, IntegAlg, Mac, WipedBox,
};

/// Which implementation an SA uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The fast path where this CPU and algorithm allow it, else the crate path.
    Auto,
    /// Always the crate path (RustCrypto), packet by packet: the reference.
    Reference,
}

/// Packets handled together by one call of the batch functions (stack arrays of this size).
pub const CHUNK: usize = 32;

// Both are a few hundred bytes and FastCbc is boxed as a whole.
#[allow(clippy::large_enum_variant)]
pub(crate) enum FastCipher {
    Aes(AesKey),
    Tdes(TdesKey),
}

pub(crate) struct FastCbc {
    cipher: FastCipher,
    hmac: fsha1::HmacSha1,
}

pub(crate) enum Transform {
    /// CBC cipher with a separate HMAC (encrypt-then-MAC). `mac` is None only in the
    /// encryption-only test constructor (RFC 3602 vectors carry no ICV).
    Cbc {
        cipher: Box<dyn CbcCipher>,
        mac: Option<Box<dyn Mac>>,
        fast: Option<WipedBox<FastCbc>>,
    },
    /// AES-GCM with an 8-, 12- or 16-byte ICV (RFC 4106) or ChaCha20-Poly1305 (RFC 7634):
    /// the crate path; the fast path only for AES-GCM-16-128/256.
    Aead {
        aead: Box<dyn Aead>,
        fast: Option<WipedBox<AesGcm>>,
    },
}

/// One packet for `seal`/`open`: the whole ESP packet, its header length and ciphertext
/// length (the ICV follows), and its full sequence number.
pub(crate) struct Item<'a> {
    pub pkt: &'a mut [u8],
    pub hdr: usize,
    pub ct: usize,
    pub seq: u64,
    /// open: set to false when the ICV does not verify.
    pub ok: bool,
}

/// AAD for AES-GCM (RFC 4106 5) and ChaCha20-Poly1305 (RFC 7634 3): SPI | seq (32) or SPI | seq high | seq low with ESN.
fn gcm_aad(spi: &[u8], seq: u64, esn: bool, buf: &mut [u8; 12]) -> usize {
    buf[..4].copy_from_slice(spi);
    if esn {
        buf[4..8].copy_from_slice(&((seq >> 32) as u32).to_be_bytes());
        buf[8..12].copy_from_slice(&(seq as u32).to_be_bytes());
        12
    } else {
        buf[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        8
    }
}

/// Hands the IV and ciphertext of every item (at most CHUNK) to a multi-lane CBC encryption
/// with `B`-byte blocks (the IV is copied out: it sits in the same packet).
fn cbc_lanes<const B: usize>(
    items: &mut [Item<'_>],
    encrypt: impl FnOnce(&mut [(&[u8; B], &mut [u8])]),
) {
    let n = items.len().min(CHUNK);
    let mut ivs = [[0u8; B]; CHUNK];
    let unused = [0u8; B];
    let mut lanes: [(&[u8; B], &mut [u8]); CHUNK] = std::array::from_fn(|_| (&unused, &mut [][..]));
    for ((it, iv), lane) in items
        .iter_mut()
        .zip(ivs.iter_mut())
        .zip(lanes.iter_mut())
        .take(n)
    {
        iv.copy_from_slice(&it.pkt[ESP_HEADER_LEN..it.hdr]);
        *lane = (iv, &mut it.pkt[it.hdr..it.hdr + it.ct]);
    }
    encrypt(&mut lanes[..n]);
}

impl Transform {
    pub fn new(
        p: &SaParams,
        allow_no_integrity: bool,
        backend: Backend,
    ) -> Result<Transform, EspError> {
        let fast_ok = backend == Backend::Auto;
        if p.encr.is_aead() {
            if p.integ.is_some() {
                return Err(EspError::UnexpectedIntegrity);
            }
            let aead = new_aead(p.encr, &p.encr_key)?;
            let fast = match p.encr {
                EncrAlg::AesGcm16_128 | EncrAlg::AesGcm16_256 if fast_ok => {
                    let (key, salt) = p.encr_key.split_at(p.encr.key_len());
                    let salt: [u8; 4] = salt.try_into().map_err(|_| {
                        EspError::Crypto(crate::crypto::CryptoError::BadKeyLength {
                            alg: p.encr.name(),
                            expected: p.encr.keymat_len(),
                            got: p.encr_key.len(),
                        })
                    })?;
                    AesGcm::new(key, salt).map(WipedBox::new)
                }
                _ => None,
            };
            Ok(Transform::Aead { aead, fast })
        } else {
            let mac = match p.integ {
                Some(alg) => Some(new_mac(alg, &p.integ_key)?),
                None if allow_no_integrity => None,
                None => return Err(EspError::MissingIntegrity),
            };
            let cipher = new_cbc(p.encr, &p.encr_key)?;
            let fast_cipher = match p.encr {
                EncrAlg::AesCbc128 | EncrAlg::AesCbc256 if fast_ok => {
                    AesKey::new(&p.encr_key).map(FastCipher::Aes)
                }
                // table-driven, portable: no CPU feature needed
                EncrAlg::TripleDesCbc if fast_ok => TdesKey::new(&p.encr_key).map(FastCipher::Tdes),
                _ => None,
            };
            let fast = match (p.integ, fast_cipher) {
                (Some(IntegAlg::HmacSha1_96), Some(c)) => Some(WipedBox::new(FastCbc {
                    cipher: c,
                    hmac: fsha1::HmacSha1::new(&p.integ_key),
                })),
                _ => None,
            };
            Ok(Transform::Cbc { cipher, mac, fast })
        }
    }

    pub fn icv_len(&self) -> usize {
        match self {
            Transform::Cbc { mac, .. } => mac.as_ref().map_or(0, |m| m.icv_len()),
            Transform::Aead { aead, .. } => aead.icv_len(),
        }
    }

    /// AEAD: the IV is the sequence number and the ciphertext needs no block alignment.
    pub fn is_aead(&self) -> bool {
        matches!(self, Transform::Aead { .. })
    }

    /// True when the fast path handles this SA.
    pub fn is_fast(&self) -> bool {
        match self {
            Transform::Cbc { fast, .. } => fast.is_some(),
            Transform::Aead { fast, .. } => fast.is_some(),
        }
    }

    /// Encrypts and authenticates every item (at most CHUNK); headers and IVs are in place.
    pub fn seal(&self, items: &mut [Item<'_>], esn: bool) {
        match self {
            Transform::Cbc {
                fast: Some(f),
                mac: Some(_),
                ..
            } => {
                match &f.cipher {
                    FastCipher::Aes(aes) => cbc_lanes(items, |l| aes.cbc_encrypt_lanes(l)),
                    FastCipher::Tdes(tdes) => cbc_lanes(items, |l| tdes.cbc_encrypt_lanes(l)),
                }
                self.cbc_macs(f, items, esn, |it, mac, icv_len| {
                    let end = it.hdr + it.ct;
                    it.pkt[end..end + icv_len].copy_from_slice(&mac[..icv_len]);
                });
            }
            Transform::Cbc { cipher, mac, .. } => {
                for it in items.iter_mut() {
                    let seq_hi = ((it.seq >> 32) as u32).to_be_bytes();
                    let (head, rest) = it.pkt.split_at_mut(it.hdr);
                    let (ct, icv) = rest.split_at_mut(it.ct);
                    cipher.encrypt(&head[ESP_HEADER_LEN..], ct);
                    if let Some(mac) = mac {
                        // ICV over SPI..ciphertext, plus the implicit ESN high half (RFC 4303 2.2.1).
                        if esn {
                            mac.sign(&[head, ct, &seq_hi], icv);
                        } else {
                            mac.sign(&[head, ct], icv);
                        }
                    }
                }
            }
            Transform::Aead { aead, fast } => {
                for it in items.iter_mut() {
                    let mut aad = [0u8; 12];
                    let (head, rest) = it.pkt.split_at_mut(it.hdr);
                    let aad_len = gcm_aad(&head[..4], it.seq, esn, &mut aad);
                    let (ct, icv) = rest.split_at_mut(it.ct);
                    let mut iv = [0u8; 8];
                    iv.copy_from_slice(&head[ESP_HEADER_LEN..ESP_HEADER_LEN + 8]);
                    match fast {
                        Some(g) => icv[..16].copy_from_slice(&g.seal(&iv, &aad[..aad_len], ct)),
                        // Writes exactly the ICV: 8, 12 or 16 bytes.
                        None => {
                            aead.seal_icv(&iv, &aad[..aad_len], ct, icv);
                        }
                    }
                }
            }
        }
    }

    /// Verifies every item (ICV before any decryption) and decrypts those that verified;
    /// `ok` says which. At most CHUNK items.
    pub fn open(&self, items: &mut [Item<'_>], esn: bool) {
        match self {
            Transform::Cbc {
                fast: Some(f),
                mac: Some(_),
                ..
            } => {
                self.cbc_macs(f, items, esn, |it, mac, icv_len| {
                    let end = it.hdr + it.ct;
                    it.ok = f.hmac.verify(mac, &it.pkt[end..end + icv_len]);
                });
                for it in items.iter_mut().filter(|it| it.ok) {
                    let (head, rest) = it.pkt.split_at_mut(it.hdr);
                    let iv = &head[ESP_HEADER_LEN..];
                    let ct = &mut rest[..it.ct];
                    match &f.cipher {
                        FastCipher::Aes(aes) => {
                            let mut v = [0u8; 16];
                            v.copy_from_slice(iv);
                            aes.cbc_decrypt(&v, ct);
                        }
                        FastCipher::Tdes(tdes) => {
                            let mut v = [0u8; 8];
                            v.copy_from_slice(iv);
                            tdes.cbc_decrypt(&v, ct);
                        }
                    }
                }
            }
            Transform::Cbc { cipher, mac, .. } => {
                for it in items.iter_mut() {
                    let seq_hi = ((it.seq >> 32) as u32).to_be_bytes();
                    let (head, rest) = it.pkt.split_at_mut(it.hdr);
                    let (ct, icv) = rest.split_at_mut(it.ct);
                    if let Some(mac) = mac {
                        // Verify (constant time) before decrypting anything.
                        it.ok = if esn {
                            mac.verify(&[head, ct, &seq_hi], icv)
                        } else {
                            mac.verify(&[head, ct], icv)
                        };
                        if !it.ok {
                            continue;
                        }
                    }
                    cipher.decrypt(&head[ESP_HEADER_LEN..], ct);
                }
            }
            Transform::Aead { aead, fast } => {
                for it in items.iter_mut() {
                    let mut aad = [0u8; 12];
                    let (head, rest) = it.pkt.split_at_mut(it.hdr);
                    let aad_len = gcm_aad(&head[..4], it.seq, esn, &mut aad);
                    let (ct, icv) = rest.split_at_mut(it.ct);
                    let mut iv = [0u8; 8];
                    iv.copy_from_slice(&head[ESP_HEADER_LEN..ESP_HEADER_LEN + 8]);
                    it.ok = match fast {
                        Some(g) => g.open(&iv, &aad[..aad_len], ct, &icv[..16]),
                        None => aead.open(&iv, &aad[..aad_len], ct, icv),
                    };
                }
            }
        }
    }

    /// HMAC-SHA1 of every item's SPI..ciphertext (+ ESN high half), several at a time; `each`
    /// gets the item, the full MAC and the ICV length.
    fn cbc_macs(
        &self,
        f: &FastCbc,
        items: &mut [Item<'_>],
        esn: bool,
        mut each: impl FnMut(&mut Item<'_>, &[u8; 20], usize),
    ) {
        let icv_len = self.icv_len();
        let n = items.len().min(CHUNK);
        let mut his = [[0u8; 4]; CHUNK];
        for (h, it) in his.iter_mut().zip(items.iter()) {
            *h = ((it.seq >> 32) as u32).to_be_bytes();
        }
        let mut macs = [[0u8; 20]; CHUNK];
        {
            let mut msgs = [fsha1::Msg {
                main: &[],
                extra: &[],
            }; CHUNK];
            for (k, it) in items.iter().enumerate().take(n) {
                msgs[k] = fsha1::Msg {
                    main: &it.pkt[..it.hdr + it.ct],
                    extra: if esn { &his[k] } else { &[] },
                };
            }
            f.hmac.macs(&msgs[..n], &mut macs[..n]);
        }
        for (it, mac) in items.iter_mut().zip(macs.iter()).take(n) {
            each(it, mac, icv_len);
        }
        zeroize::Zeroize::zeroize(&mut macs);
    }
}
