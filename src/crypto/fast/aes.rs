//! AES with AES-NI: key schedules for 128/192/256-bit keys, CBC encryption of several
//! independent packets interleaved (CBC is serial inside a packet, so the pipeline is filled
//! with other packets), and CBC decryption of one packet eight blocks at a time.
//!
//! Callers check `super::cbc_available()` first; every function here is `unsafe` only
//! because of the CPU features it is compiled for.

use std::arch::x86_64::*;
use zeroize::Zeroize;

mod vaes;

/// Most rounds (AES-256); round keys 0..=rounds.
const MAX_RK: usize = 15;

/// Expanded AES key: encryption round keys and the equivalent-inverse-cipher decryption keys.
#[derive(Clone)]
pub struct AesKey {
    rounds: usize,
    /// VAES on AVX-512: sixteen lanes / blocks per step (`vaes`).
    wide: bool,
    enc: [[u8; 16]; MAX_RK],
    dec: [[u8; 16]; MAX_RK],
}

impl Drop for AesKey {
    fn drop(&mut self) {
        self.enc.zeroize();
        self.dec.zeroize();
    }
}

/// SubWord(w) of FIPS-197 through AESKEYGENASSIST (lane 1 in, lane 0 out).
#[target_feature(enable = "aes,sse2")]
unsafe fn sub_word(w: u32) -> u32 {
    let v = _mm_set_epi32(0, 0, w as i32, 0);
    _mm_cvtsi128_si32(_mm_aeskeygenassist_si128::<0>(v)) as u32
}

impl AesKey {
    /// Key of 16, 24 or 32 bytes; None for any other length or without AES-NI.
    pub fn new(key: &[u8]) -> Option<AesKey> {
        if !super::cbc_available() {
            return None;
        }
        // SAFETY: AES-NI and SSE2 are present (checked above).
        unsafe { Self::expand(key) }
    }

    #[target_feature(enable = "aes,sse2")]
    unsafe fn expand(key: &[u8]) -> Option<AesKey> {
        let nk = match key.len() {
            16 => 4,
            24 => 6,
            32 => 8,
            _ => return None,
        };
        let rounds = nk + 6;
        let total = 4 * (rounds + 1);
        let mut w = [0u32; 4 * MAX_RK];
        for (i, c) in key.chunks_exact(4).enumerate() {
            w[i] = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        let mut rcon: u32 = 1;
        for i in nk..total {
            let mut t = w[i - 1];
            if i % nk == 0 {
                // RotWord then SubWord, words little-endian: rotate right by 8.
                t = sub_word(t.rotate_right(8)) ^ rcon;
                rcon = if rcon & 0x80 != 0 {
                    ((rcon << 1) ^ 0x1b) & 0xff
                } else {
                    rcon << 1
                };
            } else if nk > 6 && i % nk == 4 {
                t = sub_word(t);
            }
            w[i] = w[i - nk] ^ t;
        }
        let mut k = AesKey {
            rounds,
            wide: super::cbc16_available(),
            enc: [[0u8; 16]; MAX_RK],
            dec: [[0u8; 16]; MAX_RK],
        };
        for r in 0..=rounds {
            for j in 0..4 {
                k.enc[r][4 * j..4 * j + 4].copy_from_slice(&w[4 * r + j].to_le_bytes());
            }
        }
        w.zeroize();
        // Equivalent inverse cipher: reversed keys, InvMixColumns on the middle ones.
        k.dec[0] = k.enc[rounds];
        k.dec[rounds] = k.enc[0];
        for r in 1..rounds {
            let v = _mm_aesimc_si128(_mm_loadu_si128(k.enc[rounds - r].as_ptr().cast()));
            _mm_storeu_si128(k.dec[r].as_mut_ptr().cast(), v);
        }
        Some(k)
    }

    pub fn rounds(&self) -> usize {
        self.rounds
    }

    /// Encryption round key `r` (0..=rounds), for the GCM code.
    pub(crate) fn enc_key(&self, r: usize) -> &[u8; 16] {
        &self.enc[r]
    }

    /// Encrypts one block (key schedules elsewhere, e.g. the GCM hash key).
    pub fn encrypt_block(&self, block: &mut [u8; 16]) {
        // SAFETY: an AesKey exists only when AES-NI is present (see `new`).
        unsafe { self.encrypt_block_ni(block) }
    }

    #[target_feature(enable = "aes,sse2")]
    unsafe fn encrypt_block_ni(&self, block: &mut [u8; 16]) {
        let rk = self.load_enc();
        let mut b = _mm_loadu_si128(block.as_ptr().cast());
        b = _mm_xor_si128(b, rk[0]);
        for k in &rk[1..self.rounds] {
            b = _mm_aesenc_si128(b, *k);
        }
        b = _mm_aesenclast_si128(b, rk[self.rounds]);
        _mm_storeu_si128(block.as_mut_ptr().cast(), b);
    }

    #[target_feature(enable = "sse2")]
    unsafe fn load_enc(&self) -> [__m128i; MAX_RK] {
        let mut rk = [_mm_setzero_si128(); MAX_RK];
        for (d, s) in rk.iter_mut().zip(self.enc.iter()).take(self.rounds + 1) {
            *d = _mm_loadu_si128(s.as_ptr().cast());
        }
        rk
    }

    #[target_feature(enable = "sse2")]
    unsafe fn load_dec(&self) -> [__m128i; MAX_RK] {
        let mut rk = [_mm_setzero_si128(); MAX_RK];
        for (d, s) in rk.iter_mut().zip(self.dec.iter()).take(self.rounds + 1) {
            *d = _mm_loadu_si128(s.as_ptr().cast());
        }
        rk
    }

    /// CBC-encrypts every lane in place: `lanes[i]` is (IV, data) with data a multiple of 16
    /// bytes. Up to `LANES` lanes run interleaved; lengths may differ.
    pub fn cbc_encrypt_lanes(&self, lanes: &mut [(&[u8; 16], &mut [u8])]) {
        let mut rest = lanes;
        while !rest.is_empty() {
            // Groups of 8, 4, 2, 1: the lane count is a constant inside, so the state stays
            // in registers and the rounds unroll.
            let n = match rest.len() {
                16.. if self.wide => 16,
                8.. => 8,
                4..=7 => 4,
                2..=3 => 2,
                _ => 1,
            };
            let (group, tail) = rest.split_at_mut(n);
            // SAFETY: AES-NI present (AesKey exists); lengths are checked inside.
            unsafe {
                match (n, self.rounds) {
                    (16, 10) => self.cbc_encrypt_x16::<10>(group),
                    (16, 12) => self.cbc_encrypt_x16::<12>(group),
                    (16, _) => self.cbc_encrypt_x16::<14>(group),
                    (8, 10) => self.cbc_encrypt_group::<8, 10>(group),
                    (8, 12) => self.cbc_encrypt_group::<8, 12>(group),
                    (8, _) => self.cbc_encrypt_group::<8, 14>(group),
                    (4, 10) => self.cbc_encrypt_group::<4, 10>(group),
                    (4, 12) => self.cbc_encrypt_group::<4, 12>(group),
                    (4, _) => self.cbc_encrypt_group::<4, 14>(group),
                    (2, 10) => self.cbc_encrypt_group::<2, 10>(group),
                    (2, 12) => self.cbc_encrypt_group::<2, 12>(group),
                    (2, _) => self.cbc_encrypt_group::<2, 14>(group),
                    (_, 10) => self.cbc_encrypt_group::<1, 10>(group),
                    (_, 12) => self.cbc_encrypt_group::<1, 12>(group),
                    (_, _) => self.cbc_encrypt_group::<1, 14>(group),
                }
            }
            rest = tail;
        }
    }

    /// `N` lanes (exactly `group.len()`), `R` rounds (== self.rounds).
    #[target_feature(enable = "aes,sse2")]
    unsafe fn cbc_encrypt_group<const N: usize, const R: usize>(
        &self,
        group: &mut [(&[u8; 16], &mut [u8])],
    ) {
        let rk = self.load_enc();
        let mut state = [_mm_setzero_si128(); N];
        let mut blocks = [0usize; N];
        let mut ptrs = [std::ptr::null_mut::<u8>(); N];
        for i in 0..N {
            let (iv, data) = &mut group[i];
            state[i] = _mm_loadu_si128(iv.as_ptr().cast());
            blocks[i] = data.len() / 16;
            ptrs[i] = data.as_mut_ptr();
        }
        let common = blocks.iter().copied().min().unwrap_or(0);
        // Lock-step over the blocks every lane has.
        for b in 0..common {
            for i in 0..N {
                let p = _mm_loadu_si128(ptrs[i].add(16 * b) as *const __m128i);
                state[i] = _mm_xor_si128(_mm_xor_si128(state[i], p), rk[0]);
            }
            for k in rk.iter().take(R).skip(1) {
                for s in state.iter_mut() {
                    *s = _mm_aesenc_si128(*s, *k);
                }
            }
            for i in 0..N {
                state[i] = _mm_aesenclast_si128(state[i], rk[R]);
                _mm_storeu_si128(ptrs[i].add(16 * b) as *mut __m128i, state[i]);
            }
        }
        // What is left of longer lanes, one lane at a time.
        for i in 0..N {
            let mut s = state[i];
            for b in common..blocks[i] {
                let p = ptrs[i].add(16 * b) as *mut __m128i;
                s = _mm_xor_si128(_mm_xor_si128(s, _mm_loadu_si128(p)), rk[0]);
                for k in rk.iter().take(R).skip(1) {
                    s = _mm_aesenc_si128(s, *k);
                }
                s = _mm_aesenclast_si128(s, rk[R]);
                _mm_storeu_si128(p, s);
            }
        }
    }

    /// CBC-decrypts `data` (a multiple of 16 bytes) in place, eight (sixteen with VAES)
    /// blocks in parallel.
    pub fn cbc_decrypt(&self, iv: &[u8; 16], data: &mut [u8]) {
        // SAFETY: AES-NI present (AesKey exists), VAES/AVX-512F when `wide`; only whole
        // blocks are touched.
        unsafe {
            let (done, prev) = match self.rounds {
                _ if !self.wide || data.len() < 16 * vaes::LANES => {
                    (0, _mm_loadu_si128(iv.as_ptr().cast()))
                }
                10 => self.cbc_decrypt_x16::<10>(iv, data),
                12 => self.cbc_decrypt_x16::<12>(iv, data),
                _ => self.cbc_decrypt_x16::<14>(iv, data),
            };
            match self.rounds {
                10 => self.cbc_decrypt_ni::<10>(prev, data, done),
                12 => self.cbc_decrypt_ni::<12>(prev, data, done),
                _ => self.cbc_decrypt_ni::<14>(prev, data, done),
            }
        }
    }

    /// From block `start` on, `prev` being the ciphertext block before it (or the IV).
    #[target_feature(enable = "aes,sse2")]
    unsafe fn cbc_decrypt_ni<const R: usize>(&self, prev: __m128i, data: &mut [u8], start: usize) {
        const W: usize = 8;
        let rk = self.load_dec();
        let rounds = R;
        let nblocks = data.len() / 16;
        let base = data.as_mut_ptr();
        let mut prev = prev;
        let mut b = start;
        while b + W <= nblocks {
            let mut c = [_mm_setzero_si128(); W];
            let mut s = [_mm_setzero_si128(); W];
            for j in 0..W {
                c[j] = _mm_loadu_si128(base.add(16 * (b + j)) as *const __m128i);
                s[j] = _mm_xor_si128(c[j], rk[0]);
            }
            for k in &rk[1..rounds] {
                for x in s.iter_mut() {
                    *x = _mm_aesdec_si128(*x, *k);
                }
            }
            for j in 0..W {
                let x = _mm_aesdeclast_si128(s[j], rk[rounds]);
                let chain = if j == 0 { prev } else { c[j - 1] };
                _mm_storeu_si128(
                    base.add(16 * (b + j)) as *mut __m128i,
                    _mm_xor_si128(x, chain),
                );
            }
            prev = c[W - 1];
            b += W;
        }
        while b < nblocks {
            let p = base.add(16 * b) as *mut __m128i;
            let c = _mm_loadu_si128(p);
            let mut x = _mm_xor_si128(c, rk[0]);
            for k in &rk[1..rounds] {
                x = _mm_aesdec_si128(x, *k);
            }
            x = _mm_aesdeclast_si128(x, rk[rounds]);
            _mm_storeu_si128(p, _mm_xor_si128(x, prev));
            prev = c;
            b += 1;
        }
    }
}

/// Packets encrypted side by side: enough independent AESENC chains to hide its latency.
pub const LANES: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn fips197_appendix_c_vectors() {
        if !crate::crypto::fast::cbc_available() {
            return; // the portable path is tested everywhere else
        }
        let pt: [u8; 16] = hex("00112233445566778899aabbccddeeff").try_into().unwrap();
        for (key, ct) in [
            (
                "000102030405060708090a0b0c0d0e0f",
                "69c4e0d86a7b0430d8cdb78070b4c55a",
            ),
            (
                "000102030405060708090a0b0c0d0e0f1011121314151617",
                "dda97ca4864cdfe06eaf70a0ec0d7191",
            ),
            (
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "8ea2b7ca516745bfeafc49904b496089",
            ),
        ] {
            let k = AesKey::new(&hex(key)).unwrap();
            let mut b = pt;
            k.encrypt_block(&mut b);
            assert_eq!(b.to_vec(), hex(ct), "key {key}");
            // one-block CBC decryption with a zero IV inverts it
            k.cbc_decrypt(&[0u8; 16], &mut b);
            assert_eq!(b, pt);
        }
        assert!(AesKey::new(&[0u8; 20]).is_none());
    }

    #[test]
    fn lanes_of_different_lengths_match_the_aes_crate() {
        if !crate::crypto::fast::cbc_available() {
            return;
        }
        let key: Vec<u8> = (0..32u8).collect();
        let k = AesKey::new(&key).unwrap();
        // 37 lanes: two groups of sixteen (VAES, where present), then 4 + 1; up to 41 blocks
        // so that decryption runs sixteen blocks wide and then narrow
        crate::crypto::fast::check_cbc_lanes(
            &key,
            37,
            41,
            |lanes| k.cbc_encrypt_lanes(lanes),
            |iv, data| k.cbc_decrypt(iv, data),
        );
    }

    #[test]
    fn sixteen_lanes_of_equal_length_round_trip_like_eight() {
        if !crate::crypto::fast::cbc_available() {
            return;
        }
        let k = AesKey::new(&[0x42u8; 32]).unwrap();
        let mut narrow = k.clone();
        narrow.wide = false;
        let plain: Vec<Vec<u8>> = (0..16)
            .map(|i| (0..16 * 90).map(|j| (i * 3 + j) as u8).collect())
            .collect();
        let ivs: Vec<[u8; 16]> = (0..16).map(|i| [i as u8; 16]).collect();
        let mut outs = Vec::new();
        for key in [&k, &narrow] {
            let mut bufs = plain.clone();
            let mut lanes: Vec<(&[u8; 16], &mut [u8])> = ivs
                .iter()
                .zip(bufs.iter_mut())
                .map(|(iv, b)| (iv, b.as_mut_slice()))
                .collect();
            key.cbc_encrypt_lanes(&mut lanes);
            outs.push(bufs);
        }
        assert_eq!(outs[0], outs[1]);
        for ((iv, p), c) in ivs.iter().zip(&plain).zip(outs[0].iter_mut()) {
            k.cbc_decrypt(iv, c);
            assert_eq!(c, p);
        }
    }
}
