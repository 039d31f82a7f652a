//! AES-CBC on 512-bit registers (VAES, AVX-512F): four blocks per instruction. Encryption
//! runs sixteen packets at once (lane group q of register q holds packets 4q..4q+3), so
//! four independent chains keep the unit busy; decryption handles sixteen consecutive
//! blocks of one packet per step.

use super::{AesKey, MAX_RK};
use std::arch::x86_64::*;

/// Packets encrypted side by side.
pub const LANES: usize = 16;

#[inline(always)]
unsafe fn load4(p: [*const u8; 4]) -> __m512i {
    let v = _mm512_castsi128_si512(_mm_loadu_si128(p[0].cast()));
    let v = _mm512_inserti32x4::<1>(v, _mm_loadu_si128(p[1].cast()));
    let v = _mm512_inserti32x4::<2>(v, _mm_loadu_si128(p[2].cast()));
    _mm512_inserti32x4::<3>(v, _mm_loadu_si128(p[3].cast()))
}

#[inline(always)]
unsafe fn store4(p: [*mut u8; 4], v: __m512i) {
    _mm_storeu_si128(p[0].cast(), _mm512_castsi512_si128(v));
    _mm_storeu_si128(p[1].cast(), _mm512_extracti32x4_epi32::<1>(v));
    _mm_storeu_si128(p[2].cast(), _mm512_extracti32x4_epi32::<2>(v));
    _mm_storeu_si128(p[3].cast(), _mm512_extracti32x4_epi32::<3>(v));
}

#[inline(always)]
unsafe fn lane(v: __m512i, i: usize) -> __m128i {
    match i {
        0 => _mm512_castsi512_si128(v),
        1 => _mm512_extracti32x4_epi32::<1>(v),
        2 => _mm512_extracti32x4_epi32::<2>(v),
        _ => _mm512_extracti32x4_epi32::<3>(v),
    }
}

impl AesKey {
    #[target_feature(enable = "avx512f")]
    unsafe fn load_wide(&self, keys: &[[u8; 16]; MAX_RK]) -> [__m512i; MAX_RK] {
        let mut rk = [_mm512_setzero_si512(); MAX_RK];
        for (d, s) in rk.iter_mut().zip(keys.iter()).take(self.rounds + 1) {
            *d = _mm512_broadcast_i32x4(_mm_loadu_si128(s.as_ptr().cast()));
        }
        rk
    }

    /// Exactly `LANES` lanes, `R` rounds (== self.rounds). Blocks every lane has run sixteen
    /// wide; what is left of longer lanes goes one lane at a time.
    #[target_feature(enable = "avx512f,vaes,aes,sse2")]
    pub(super) unsafe fn cbc_encrypt_x16<const R: usize>(
        &self,
        group: &mut [(&[u8; 16], &mut [u8])],
    ) {
        let rk = self.load_wide(&self.enc);
        let mut blocks = [0usize; LANES];
        let mut ptrs = [std::ptr::null_mut::<u8>(); LANES];
        let mut ivs = [std::ptr::null::<u8>(); LANES];
        for (i, (iv, data)) in group.iter_mut().enumerate().take(LANES) {
            ivs[i] = iv.as_ptr();
            blocks[i] = data.len() / 16;
            ptrs[i] = data.as_mut_ptr();
        }
        let mut st: [__m512i; 4] =
            std::array::from_fn(|q| load4(std::array::from_fn(|j| ivs[4 * q + j])));
        let common = blocks.iter().copied().min().unwrap_or(0);
        for b in 0..common {
            for (q, s) in st.iter_mut().enumerate() {
                let p = load4(std::array::from_fn(|j| {
                    ptrs[4 * q + j].add(16 * b).cast_const()
                }));
                *s = _mm512_ternarylogic_epi32::<0x96>(*s, p, rk[0]);
            }
            for k in rk.iter().take(R).skip(1) {
                for s in st.iter_mut() {
                    *s = _mm512_aesenc_epi128(*s, *k);
                }
            }
            for (q, s) in st.iter_mut().enumerate() {
                *s = _mm512_aesenclast_epi128(*s, rk[R]);
                store4(std::array::from_fn(|j| ptrs[4 * q + j].add(16 * b)), *s);
            }
        }
        let rk1 = self.load_enc();
        for i in 0..LANES {
            let mut s = lane(st[i / 4], i % 4);
            for b in common..blocks[i] {
                let p = ptrs[i].add(16 * b) as *mut __m128i;
                s = _mm_xor_si128(_mm_xor_si128(s, _mm_loadu_si128(p)), rk1[0]);
                for k in rk1.iter().take(R).skip(1) {
                    s = _mm_aesenc_si128(s, *k);
                }
                s = _mm_aesenclast_si128(s, rk1[R]);
                _mm_storeu_si128(p, s);
            }
        }
    }

    /// CBC decryption of `data` in place, sixteen blocks per step; returns the blocks done
    /// (a multiple of 16) and the last ciphertext block before them, for the narrow code.
    #[target_feature(enable = "avx512f,vaes,aes,sse2")]
    pub(super) unsafe fn cbc_decrypt_x16<const R: usize>(
        &self,
        iv: &[u8; 16],
        data: &mut [u8],
    ) -> (usize, __m128i) {
        const W: usize = 16;
        let rk = self.load_wide(&self.dec);
        let nblocks = data.len() / 16;
        let base = data.as_mut_ptr();
        let mut prev = _mm_loadu_si128(iv.as_ptr().cast());
        let mut b = 0;
        while b + W <= nblocks {
            let c: [__m512i; 4] =
                std::array::from_fn(|q| _mm512_loadu_si512(base.add(16 * (b + 4 * q)).cast()));
            // chain[q] = the ciphertext one block back: [c[q-1].3, c[q].0, c[q].1, c[q].2]
            let before = _mm512_broadcast_i32x4(prev);
            let chain: [__m512i; 4] = std::array::from_fn(|q| {
                _mm512_alignr_epi64::<6>(c[q], if q == 0 { before } else { c[q - 1] })
            });
            let mut s: [__m512i; 4] = std::array::from_fn(|q| _mm512_xor_si512(c[q], rk[0]));
            for k in rk.iter().take(R).skip(1) {
                for x in s.iter_mut() {
                    *x = _mm512_aesdec_epi128(*x, *k);
                }
            }
            for q in 0..4 {
                let x = _mm512_aesdeclast_epi128(s[q], rk[R]);
                _mm512_storeu_si512(
                    base.add(16 * (b + 4 * q)).cast(),
                    _mm512_xor_si512(x, chain[q]),
                );
            }
            prev = _mm512_extracti32x4_epi32::<3>(c[3]);
            b += W;
        }
        (b, prev)
    }
}
