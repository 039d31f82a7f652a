//! SHA-1 compression of sixteen messages at once with AVX-512 (multi-buffer): lane l of each
//! 512-bit register holds message l's word. SHA-NI runs one message's rounds serially (long
//! latency, a single unit); sixteen lanes of plain integer ops (VPTERNLOGD for the round
//! functions, VPROLD for the rotations) finish a block in fewer cycles per message.
//!
//! Sixteen message blocks are loaded as rows and transposed to word-per-register form; the
//! HMAC outer block needs no transpose (its first five words are the inner digest).

use std::arch::x86_64::*;

/// Messages hashed side by side.
pub const LANES: usize = 16;

/// Chaining values, word i of every lane in `s[i]`.
#[derive(Clone, Copy)]
pub struct States(pub [__m512i; 5]);

impl States {
    #[target_feature(enable = "avx512f")]
    pub unsafe fn splat(s: &[u32; 5]) -> States {
        States(std::array::from_fn(|i| _mm512_set1_epi32(s[i] as i32)))
    }

    /// Lane l's five words.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn lanes(&self) -> [[u32; 5]; LANES] {
        let mut words = [[0u32; LANES]; 5];
        for (w, v) in words.iter_mut().zip(self.0.iter()) {
            _mm512_storeu_si512(w.as_mut_ptr().cast(), *v);
        }
        std::array::from_fn(|l| std::array::from_fn(|i| words[i][l]))
    }
}

/// 16x16 transpose of 32-bit words: out[j] lane i = rows[i] lane j.
#[inline(always)]
unsafe fn transpose(r: &mut [__m512i; 16]) {
    let mut t = [_mm512_setzero_si512(); 16];
    for g in 0..8 {
        t[2 * g] = _mm512_unpacklo_epi32(r[2 * g], r[2 * g + 1]);
        t[2 * g + 1] = _mm512_unpackhi_epi32(r[2 * g], r[2 * g + 1]);
    }
    // u[4g + m]: rows 4g..4g+3, column 4k+m in 128-bit lane k
    let mut u = [_mm512_setzero_si512(); 16];
    for g in 0..4 {
        u[4 * g] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
        u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
        u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    for m in 0..4 {
        let (u0, u1, u2, u3) = (u[m], u[4 + m], u[8 + m], u[12 + m]);
        let v0 = _mm512_shuffle_i32x4::<0x44>(u0, u1);
        let v1 = _mm512_shuffle_i32x4::<0xee>(u0, u1);
        let v2 = _mm512_shuffle_i32x4::<0x44>(u2, u3);
        let v3 = _mm512_shuffle_i32x4::<0xee>(u2, u3);
        r[m] = _mm512_shuffle_i32x4::<0x88>(v0, v2);
        r[4 + m] = _mm512_shuffle_i32x4::<0xdd>(v0, v2);
        r[8 + m] = _mm512_shuffle_i32x4::<0x88>(v1, v3);
        r[12 + m] = _mm512_shuffle_i32x4::<0xdd>(v1, v3);
    }
}

/// Loads one 64-byte block per lane (big-endian words) in word-per-register form.
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn load_blocks(blocks: &[*const u8; LANES]) -> [__m512i; 16] {
    let swap = _mm512_set4_epi32(0x0c0d_0e0f, 0x0809_0a0b, 0x0405_0607, 0x0001_0203);
    let mut r: [__m512i; 16] =
        std::array::from_fn(|l| _mm512_shuffle_epi8(_mm512_loadu_si512(blocks[l].cast()), swap));
    transpose(&mut r);
    r
}

/// One SHA-1 compression in every lane; lanes outside `active` keep their state.
#[target_feature(enable = "avx512f")]
pub unsafe fn compress(st: &mut States, mut w: [__m512i; 16], active: __mmask16) {
    let [mut a, mut b, mut c, mut d, mut e] = st.0;
    macro_rules! round {
        ($t:expr, $f:literal, $k:expr) => {{
            let t = $t;
            if t >= 16 {
                let x = _mm512_ternarylogic_epi32::<0x96>(
                    w[(t + 13) % 16],
                    w[(t + 8) % 16],
                    w[(t + 2) % 16],
                );
                w[t % 16] = _mm512_rol_epi32::<1>(_mm512_xor_si512(x, w[t % 16]));
            }
            let f = _mm512_ternarylogic_epi32::<$f>(b, c, d);
            let kw = _mm512_add_epi32(w[t % 16], _mm512_set1_epi32($k as i32));
            let tmp = _mm512_add_epi32(_mm512_add_epi32(e, kw), f);
            let tmp = _mm512_add_epi32(tmp, _mm512_rol_epi32::<5>(a));
            e = d;
            d = c;
            c = _mm512_rol_epi32::<30>(b);
            b = a;
            a = tmp;
        }};
    }
    macro_rules! twenty {
        ($base:expr, $f:literal, $k:expr) => {
            round!($base, $f, $k);
            round!($base + 1, $f, $k);
            round!($base + 2, $f, $k);
            round!($base + 3, $f, $k);
            round!($base + 4, $f, $k);
            round!($base + 5, $f, $k);
            round!($base + 6, $f, $k);
            round!($base + 7, $f, $k);
            round!($base + 8, $f, $k);
            round!($base + 9, $f, $k);
            round!($base + 10, $f, $k);
            round!($base + 11, $f, $k);
            round!($base + 12, $f, $k);
            round!($base + 13, $f, $k);
            round!($base + 14, $f, $k);
            round!($base + 15, $f, $k);
            round!($base + 16, $f, $k);
            round!($base + 17, $f, $k);
            round!($base + 18, $f, $k);
            round!($base + 19, $f, $k);
        };
    }
    // Ch = b ? c : d (0xca), Parity = b ^ c ^ d (0x96), Maj (0xe8); written out so that `w`
    // is indexed by constants and stays in registers.
    twenty!(0, 0xca, 0x5a82_7999u32);
    twenty!(20, 0x96, 0x6ed9_eba1u32);
    twenty!(40, 0xe8, 0x8f1b_bcdcu32);
    twenty!(60, 0x96, 0xca62_c1d6u32);
    let new = [a, b, c, d, e];
    for (s, n) in st.0.iter_mut().zip(new) {
        *s = _mm512_mask_add_epi32(*s, active, *s, n);
    }
}

/// The HMAC outer block of every lane, straight from the inner digests (no transpose):
/// digest | 0x80 | zeros | bit length of 64 + 20 bytes.
#[target_feature(enable = "avx512f")]
pub unsafe fn outer_block(inner: &States) -> [__m512i; 16] {
    let mut w = [_mm512_setzero_si512(); 16];
    w[..5].copy_from_slice(&inner.0);
    w[5] = _mm512_set1_epi32(0x8000_0000u32 as i32);
    w[15] = _mm512_set1_epi32((64 + 20) * 8);
    w
}
