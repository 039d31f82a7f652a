//! AES-GCM (RFC 4106 ESP, 16-byte ICV) with VAES and VPCLMULQDQ on 512-bit registers:
//! counter mode four blocks per instruction, sixteen blocks in flight, and GHASH computed as
//! POLYVAL (RFC 8452 appendix A) over sixteen blocks per reduction with precomputed powers of
//! the hash key. Encryption and hashing are two passes over data that sits in L1.
//!
//! Built only when `super::gcm_available()`; the portable path is the aes-gcm crate.

use super::aes::AesKey;
use std::arch::x86_64::*;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Keyed AES-GCM with the 4-byte salt of RFC 4106.
pub struct AesGcm {
    key: AesKey,
    /// `htable[i]` = H^(16 - i) in POLYVAL's representation (little-endian bytes).
    htable: [[u8; 16]; 16],
    salt: [u8; 4],
}

impl Drop for AesGcm {
    fn drop(&mut self) {
        self.htable.zeroize();
        self.salt.zeroize();
    }
}

const FEATURES_OK: fn() -> bool = super::gcm_available;

impl AesGcm {
    /// `key` of 16 or 32 bytes (24 works as well); None without the CPU features.
    pub fn new(key: &[u8], salt: [u8; 4]) -> Option<AesGcm> {
        if !FEATURES_OK() {
            return None;
        }
        let key = AesKey::new(key)?;
        let mut h = [0u8; 16];
        key.encrypt_block(&mut h);
        // POLYVAL key = mulX_POLYVAL(ByteReverse(H)).
        let v = u128::from_be_bytes(h);
        let mut hp = v << 1;
        if v >> 127 == 1 {
            hp ^= (1u128 << 127) | (1u128 << 126) | (1u128 << 121) | 1;
        }
        h.zeroize();
        let mut g = AesGcm {
            key,
            htable: [[0u8; 16]; 16],
            salt,
        };
        // SAFETY: PCLMULQDQ/SSE4.1 present (gcm_available).
        unsafe { g.powers(hp.to_le_bytes()) };
        Some(g)
    }

    #[target_feature(enable = "pclmulqdq,sse2,sse4.1")]
    unsafe fn powers(&mut self, h1: [u8; 16]) {
        let h = _mm_loadu_si128(h1.as_ptr().cast());
        let mut p = h;
        for k in 1..=16 {
            _mm_storeu_si128(self.htable[16 - k].as_mut_ptr().cast(), p);
            p = dot(p, h);
        }
    }

    /// Encrypts `data` in place; returns the 16-byte tag over `aad` and the ciphertext.
    pub fn seal(&self, iv: &[u8; 8], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
        // SAFETY: the features were checked in `new`; every access is bounds-checked or masked.
        unsafe {
            self.ctr(iv, data);
            self.tag(iv, aad, data)
        }
    }

    /// Checks the tag (constant time) and only then decrypts in place.
    pub fn open(&self, iv: &[u8; 8], aad: &[u8], data: &mut [u8], tag: &[u8]) -> bool {
        // SAFETY: as in `seal`.
        unsafe {
            let t = self.tag(iv, aad, data);
            if tag.len() != 16 || !bool::from(t.ct_eq(tag)) {
                return false;
            }
            self.ctr(iv, data);
        }
        true
    }

    fn j0(&self, iv: &[u8; 8]) -> [u8; 16] {
        let mut j = [0u8; 16];
        j[..4].copy_from_slice(&self.salt);
        j[4..12].copy_from_slice(iv);
        j[15] = 1;
        j
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,vpclmulqdq,pclmulqdq,aes,sse4.1")]
    unsafe fn tag(&self, iv: &[u8; 8], aad: &[u8], data: &[u8]) -> [u8; 16] {
        let mut s = _mm_setzero_si128();
        s = self.ghash(s, aad);
        s = self.ghash(s, data);
        let mut lens = [0u8; 16];
        lens[..8].copy_from_slice(&((aad.len() as u64) * 8).to_be_bytes());
        lens[8..].copy_from_slice(&((data.len() as u64) * 8).to_be_bytes());
        s = self.ghash(s, &lens);
        let mut out = [0u8; 16];
        _mm_storeu_si128(out.as_mut_ptr().cast(), s);
        out.reverse();
        let mut ek = self.j0(iv);
        self.key.encrypt_block(&mut ek);
        for (o, k) in out.iter_mut().zip(ek) {
            *o ^= k;
        }
        out
    }

    /// GHASH update over `data` (zero-padded to whole blocks), as POLYVAL on reversed blocks.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,vpclmulqdq,pclmulqdq,sse4.1")]
    unsafe fn ghash(&self, mut s: __m128i, data: &[u8]) -> __m128i {
        let rev = rev_mask();
        let nblocks = data.len().div_ceil(16);
        let tbl = self.htable.as_ptr() as *const u8;
        let mut i = 0;
        // Whole 256-byte chunks only: a partial last block goes through the masked path.
        while data.len() - 16 * i >= 256 {
            let p = data.as_ptr().add(16 * i);
            let (mut lo, mut mid, mut hi) = (zero(), zero(), zero());
            for g in 0..4 {
                let mut x = _mm512_shuffle_epi8(_mm512_loadu_si512(p.add(64 * g).cast()), rev);
                if g == 0 {
                    x = _mm512_xor_si512(x, _mm512_zextsi128_si512(s));
                }
                let h = _mm512_loadu_si512(tbl.add(64 * g).cast());
                mul_acc(x, h, &mut lo, &mut mid, &mut hi);
            }
            s = reduce(lo, mid, hi);
            i += 16;
        }
        let rem = nblocks - i;
        if rem > 0 {
            let (mut lo, mut mid, mut hi) = (zero(), zero(), zero());
            let base = 16 - rem;
            for g in 0..rem.div_ceil(4) {
                let start = 16 * (i + 4 * g);
                let avail = data.len() - start;
                let bmask: u64 = if avail >= 64 {
                    u64::MAX
                } else {
                    (1u64 << avail) - 1
                };
                let mut x = _mm512_maskz_loadu_epi8(bmask, data.as_ptr().add(start).cast());
                x = _mm512_shuffle_epi8(x, rev);
                if g == 0 {
                    x = _mm512_xor_si512(x, _mm512_zextsi128_si512(s));
                }
                let lanes = (rem - 4 * g).min(4);
                let qmask: u8 = ((1u16 << (2 * lanes)) - 1) as u8;
                let h = _mm512_maskz_loadu_epi64(qmask, tbl.add(16 * (base + 4 * g)).cast());
                mul_acc(x, h, &mut lo, &mut mid, &mut hi);
            }
            s = reduce(lo, mid, hi);
        }
        s
    }

    /// Counter mode from counter 2 (J0 + 1), XORed into `data` in place.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,vaes,aes,sse4.1")]
    unsafe fn ctr(&self, iv: &[u8; 8], data: &mut [u8]) {
        let rounds = self.key.rounds();
        let mut rk = [_mm512_setzero_si512(); 15];
        for (r, k) in rk.iter_mut().enumerate().take(rounds + 1) {
            *k = _mm512_broadcast_i32x4(_mm_loadu_si128(self.key.enc_key(r).as_ptr().cast()));
        }
        let rev = rev_mask();
        // Counter blocks kept byte-reversed: the 32-bit counter is then dword 0 of each lane.
        let mut j = self.j0(iv);
        j[15] = 0;
        j.reverse();
        let base = _mm512_broadcast_i32x4(_mm_loadu_si128(j.as_ptr().cast()));
        let first: [u32; 16] = [2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0];
        let mut ctr = _mm512_add_epi32(base, _mm512_loadu_si512(first.as_ptr().cast()));
        let four: [u32; 16] = [4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0];
        let four = _mm512_loadu_si512(four.as_ptr().cast());
        let len = data.len();
        let p = data.as_mut_ptr();
        let mut off = 0;
        while len - off >= 256 {
            let mut b = [_mm512_setzero_si512(); 4];
            for x in b.iter_mut() {
                *x = _mm512_xor_si512(_mm512_shuffle_epi8(ctr, rev), rk[0]);
                ctr = _mm512_add_epi32(ctr, four);
            }
            for k in &rk[1..rounds] {
                for x in b.iter_mut() {
                    *x = _mm512_aesenc_epi128(*x, *k);
                }
            }
            for (g, x) in b.iter().enumerate() {
                let ks = _mm512_aesenclast_epi128(*x, rk[rounds]);
                let q = p.add(off + 64 * g);
                _mm512_storeu_si512(q.cast(), _mm512_xor_si512(_mm512_loadu_si512(q.cast()), ks));
            }
            off += 256;
        }
        while off < len {
            let avail = len - off;
            let m: u64 = if avail >= 64 {
                u64::MAX
            } else {
                (1u64 << avail) - 1
            };
            let mut x = _mm512_xor_si512(_mm512_shuffle_epi8(ctr, rev), rk[0]);
            ctr = _mm512_add_epi32(ctr, four);
            for k in &rk[1..rounds] {
                x = _mm512_aesenc_epi128(x, *k);
            }
            let ks = _mm512_aesenclast_epi128(x, rk[rounds]);
            let q = p.add(off);
            let d = _mm512_maskz_loadu_epi8(m, q.cast());
            _mm512_mask_storeu_epi8(q.cast(), m, _mm512_xor_si512(d, ks));
            off += 64;
        }
        for k in rk.iter_mut() {
            *k = _mm512_setzero_si512();
        }
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn zero() -> __m512i {
    _mm512_setzero_si512()
}

#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn rev_mask() -> __m512i {
    _mm512_broadcast_i32x4(_mm_set_epi8(
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    ))
}

/// Accumulates the unreduced 256-bit products x * h of the four lanes.
#[target_feature(enable = "avx512f,vpclmulqdq")]
unsafe fn mul_acc(x: __m512i, h: __m512i, lo: &mut __m512i, mid: &mut __m512i, hi: &mut __m512i) {
    *lo = _mm512_xor_si512(*lo, _mm512_clmulepi64_epi128::<0x00>(x, h));
    *hi = _mm512_xor_si512(*hi, _mm512_clmulepi64_epi128::<0x11>(x, h));
    let m = _mm512_ternarylogic_epi64::<0x96>(
        *mid,
        _mm512_clmulepi64_epi128::<0x01>(x, h),
        _mm512_clmulepi64_epi128::<0x10>(x, h),
    );
    *mid = m;
}

/// Sums the four lanes and reduces: (lo, mid, hi) * x^-128 mod the POLYVAL polynomial.
#[target_feature(enable = "avx512f,avx512vl,pclmulqdq,sse2")]
unsafe fn reduce(lo: __m512i, mid: __m512i, hi: __m512i) -> __m128i {
    let fold = |v: __m512i| {
        let a = _mm_xor_si128(_mm512_castsi512_si128(v), _mm512_extracti32x4_epi32::<1>(v));
        let b = _mm_xor_si128(
            _mm512_extracti32x4_epi32::<2>(v),
            _mm512_extracti32x4_epi32::<3>(v),
        );
        _mm_xor_si128(a, b)
    };
    let (l, m, h) = (fold(lo), fold(mid), fold(hi));
    let l = _mm_xor_si128(l, _mm_slli_si128::<8>(m));
    let h = _mm_xor_si128(h, _mm_srli_si128::<8>(m));
    mont(l, h)
}

/// Montgomery reduction of (l, h) (Gueron's POLYVAL reduction, two folds by 0xc2...).
#[target_feature(enable = "pclmulqdq,sse2")]
unsafe fn mont(l: __m128i, h: __m128i) -> __m128i {
    let poly = _mm_set_epi64x(0xc200_0000_0000_0000u64 as i64, 1);
    let t = _mm_clmulepi64_si128::<0x10>(l, poly);
    let l = _mm_xor_si128(_mm_shuffle_epi32::<78>(l), t);
    let t = _mm_clmulepi64_si128::<0x10>(l, poly);
    let l = _mm_xor_si128(_mm_shuffle_epi32::<78>(l), t);
    _mm_xor_si128(l, h)
}

/// POLYVAL dot product a * b * x^-128.
#[target_feature(enable = "pclmulqdq,sse2")]
unsafe fn dot(a: __m128i, b: __m128i) -> __m128i {
    let lo = _mm_clmulepi64_si128::<0x00>(a, b);
    let hi = _mm_clmulepi64_si128::<0x11>(a, b);
    let m = _mm_xor_si128(
        _mm_clmulepi64_si128::<0x01>(a, b),
        _mm_clmulepi64_si128::<0x10>(a, b),
    );
    let lo = _mm_xor_si128(lo, _mm_slli_si128::<8>(m));
    let hi = _mm_xor_si128(hi, _mm_srli_si128::<8>(m));
    mont(lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::aead::{AeadInPlace, KeyInit};

    #[test]
    fn matches_the_aes_gcm_crate_for_every_length() {
        if !super::super::gcm_available() {
            return;
        }
        for key_len in [16usize, 32] {
            let key: Vec<u8> = (0..key_len as u8)
                .map(|i| i.wrapping_mul(29) ^ 0x11)
                .collect();
            let salt = [9, 8, 7, 6];
            let g = AesGcm::new(&key, salt).unwrap();
            for len in (0..300).chain([1400, 1403, 1500, 4000]) {
                let pt: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
                let iv = [len as u8, 1, 2, 3, 4, 5, 6, 7];
                let aad =
                    &[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, len as u8, 1, 2, 3, 4][..8 + 4 * (len % 2)];
                let mut nonce = [0u8; 12];
                nonce[..4].copy_from_slice(&salt);
                nonce[4..].copy_from_slice(&iv);
                let mut want = pt.clone();
                let tag = if key_len == 16 {
                    aes_gcm::Aes128Gcm::new_from_slice(&key)
                        .unwrap()
                        .encrypt_in_place_detached((&nonce).into(), aad, &mut want)
                        .unwrap()
                } else {
                    aes_gcm::Aes256Gcm::new_from_slice(&key)
                        .unwrap()
                        .encrypt_in_place_detached((&nonce).into(), aad, &mut want)
                        .unwrap()
                };
                let mut got = pt.clone();
                let t = g.seal(&iv, aad, &mut got);
                assert_eq!(got, want, "ciphertext, len {len}");
                assert_eq!(t.as_slice(), tag.as_slice(), "tag, len {len}");
                assert!(g.open(&iv, aad, &mut got, &t));
                assert_eq!(got, pt);
                let mut bad = t;
                bad[15] ^= 1;
                let mut c = want.clone();
                assert!(!g.open(&iv, aad, &mut c, &bad));
                assert_eq!(c, want, "nothing is decrypted when the tag fails");
            }
        }
    }
}
