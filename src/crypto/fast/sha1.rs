//! HMAC-SHA1 with the SHA extensions (SHA-NI), several messages interleaved.
//!
//! The key is absorbed once per SA: the states after the ipad and opad blocks are kept, so
//! a packet costs its own blocks plus one outer block. SHA1RNDS4 has a long latency, so up
//! to `LANES` packets are hashed in lock-step, which keeps the unit busy.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Messages hashed side by side with SHA-NI.
pub const LANES: usize = 4;

/// Fewest messages worth a sixteen-lane AVX-512 pass (measured: benches/esp.rs).
#[cfg(target_arch = "x86_64")]
const X16_MIN: usize = 9;

const IV: [u32; 5] = [
    0x6745_2301,
    0xefcd_ab89,
    0x98ba_dcfe,
    0x1032_5476,
    0xc3d2_e1f0,
];

#[cfg(target_arch = "x86_64")]
/// SHA-1 compression of one 64-byte block per lane, `N` lanes interleaved. With AVX-512VL
/// the compiler has 32 vector registers, enough for four lanes without spilling.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1,avx512f,avx512vl")]
unsafe fn compress_wide<const N: usize>(states: &mut [[u32; 5]; N], blocks: &[*const u8; N]) {
    compress_body::<N>(states, blocks)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn compress<const N: usize>(states: &mut [[u32; 5]; N], blocks: &[*const u8; N]) {
    compress_body::<N>(states, blocks)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn compress_body<const N: usize>(states: &mut [[u32; 5]; N], blocks: &[*const u8; N]) {
    let mask = _mm_set_epi64x(0x0001_0203_0405_0607, 0x0809_0a0b_0c0d_0e0f);
    let mut abcd = [_mm_setzero_si128(); N];
    let mut e0 = [_mm_setzero_si128(); N];
    let mut abcd_save = [_mm_setzero_si128(); N];
    let mut e_save = [_mm_setzero_si128(); N];
    let mut w = [[_mm_setzero_si128(); 4]; N];
    for l in 0..N {
        let s = &states[l];
        abcd[l] = _mm_set_epi32(s[0] as i32, s[1] as i32, s[2] as i32, s[3] as i32);
        e0[l] = _mm_set_epi32(s[4] as i32, 0, 0, 0);
        abcd_save[l] = abcd[l];
        e_save[l] = e0[l];
        for (j, wj) in w[l].iter_mut().enumerate() {
            let m = _mm_loadu_si128(blocks[l].add(16 * j) as *const __m128i);
            *wj = _mm_shuffle_epi8(m, mask);
        }
    }
    // Group 0: E + W0; then each group: E = nexte(ABCD of two steps back, W_i).
    let mut prev = [_mm_setzero_si128(); N];
    for l in 0..N {
        let e = _mm_add_epi32(e0[l], w[l][0]);
        prev[l] = abcd[l];
        abcd[l] = _mm_sha1rnds4_epu32::<0>(abcd[l], e);
    }
    macro_rules! group {
        ($i:expr, $f:literal) => {
            for l in 0..N {
                let wi = if $i < 4 {
                    w[l][$i % 4]
                } else {
                    // W_i = msg2(msg1(W_{i-4}, W_{i-3}) ^ W_{i-2}, W_{i-1})
                    let t = _mm_sha1msg1_epu32(w[l][$i % 4], w[l][($i + 1) % 4]);
                    let t = _mm_xor_si128(t, w[l][($i + 2) % 4]);
                    let v = _mm_sha1msg2_epu32(t, w[l][($i + 3) % 4]);
                    w[l][$i % 4] = v;
                    v
                };
                let e = _mm_sha1nexte_epu32(prev[l], wi);
                prev[l] = abcd[l];
                abcd[l] = _mm_sha1rnds4_epu32::<$f>(abcd[l], e);
            }
        };
    }
    group!(1, 0);
    group!(2, 0);
    group!(3, 0);
    group!(4, 0);
    group!(5, 1);
    group!(6, 1);
    group!(7, 1);
    group!(8, 1);
    group!(9, 1);
    group!(10, 2);
    group!(11, 2);
    group!(12, 2);
    group!(13, 2);
    group!(14, 2);
    group!(15, 3);
    group!(16, 3);
    group!(17, 3);
    group!(18, 3);
    group!(19, 3);
    for l in 0..N {
        let e = _mm_sha1nexte_epu32(prev[l], e_save[l]);
        let a = _mm_add_epi32(abcd[l], abcd_save[l]);
        let mut out = [0u32; 4];
        _mm_storeu_si128(out.as_mut_ptr().cast(), a);
        let s = &mut states[l];
        s[0] = out[3];
        s[1] = out[2];
        s[2] = out[1];
        s[3] = out[0];
        s[4] = _mm_extract_epi32::<3>(e) as u32;
    }
}

/// Plain SHA-1 compression without the SHA extensions (key setup; fallback).
fn compress_soft(state: &mut [u32; 5], block: &[u8; 64]) {
    let b = sha1::digest::generic_array::GenericArray::from_slice(block);
    sha1::compress(state, std::slice::from_ref(b));
}

/// A keyed HMAC-SHA1: the chaining values after the ipad and the opad block.
// The CPU flags are read by the x86_64 code only.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub struct HmacSha1 {
    inner: [u32; 5],
    outer: [u32; 5],
    ni: bool,
    /// AVX-512VL as well: four lanes fit the register file.
    wide: bool,
    /// AVX-512F/BW: sixteen messages at once (`sha1_x16`).
    x16: bool,
}

impl Drop for HmacSha1 {
    fn drop(&mut self) {
        self.inner.zeroize();
        self.outer.zeroize();
    }
}

/// One message to authenticate: `main` followed by `extra` (the ESN high half, or empty).
#[derive(Clone, Copy)]
pub struct Msg<'a> {
    pub main: &'a [u8],
    pub extra: &'a [u8],
}

/// The last one or two blocks of a message: its tail, `extra`, the padding and the length.
struct Tail {
    buf: [u8; 128],
    blocks: usize,
}

impl Tail {
    fn new(m: &Msg<'_>) -> Tail {
        let full = m.main.len() / 64 * 64;
        let rest = &m.main[full..];
        let mut buf = [0u8; 128];
        let mut n = rest.len();
        buf[..n].copy_from_slice(rest);
        // ESP puts at most 4 bytes here; more never fits the fixed tail, so it is cut off
        // (callers never pass more).
        let extra = &m.extra[..m.extra.len().min(8)];
        buf[n..n + extra.len()].copy_from_slice(extra);
        n += extra.len();
        buf[n] = 0x80;
        let blocks = if n + 1 + 8 <= 64 { 1 } else { 2 };
        // bit length includes the ipad block already absorbed
        let bits = ((64 + m.main.len() + extra.len()) as u64) * 8;
        buf[64 * blocks - 8..64 * blocks].copy_from_slice(&bits.to_be_bytes());
        Tail { buf, blocks }
    }
}

impl HmacSha1 {
    pub fn new(key: &[u8]) -> HmacSha1 {
        let mut k = [0u8; 64];
        if key.len() > 64 {
            let d = <sha1::Sha1 as sha1::Digest>::digest(key);
            k[..20].copy_from_slice(&d);
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let mut ipad = [0u8; 64];
        let mut opad = [0u8; 64];
        for i in 0..64 {
            ipad[i] = k[i] ^ 0x36;
            opad[i] = k[i] ^ 0x5c;
        }
        let mut inner = IV;
        let mut outer = IV;
        compress_soft(&mut inner, &ipad);
        compress_soft(&mut outer, &opad);
        k.zeroize();
        ipad.zeroize();
        opad.zeroize();
        HmacSha1 {
            inner,
            outer,
            ni: super::sha_available(),
            wide: super::sha_available() && super::gcm_available(),
            x16: super::sha16_available(),
        }
    }

    /// Full 20-byte HMACs of every message into `out` (same length as `msgs`).
    pub fn macs(&self, msgs: &[Msg<'_>], out: &mut [[u8; 20]]) {
        #[cfg(target_arch = "x86_64")]
        let (msgs, out) = {
            let (mut msgs, mut out) = (msgs, out);
            // Sixteen lanes cost about as much as X16_MIN messages on SHA-NI: fill them.
            while self.x16 && msgs.len() >= X16_MIN {
                let n = msgs.len().min(super::sha1_x16::LANES);
                let (m, rest) = msgs.split_at(n);
                let (o, orest) = std::mem::take(&mut out).split_at_mut(n);
                // SAFETY: AVX-512F/BW are present (`x16`).
                unsafe { self.group16(m, o) };
                msgs = rest;
                out = orest;
            }
            if self.ni {
                self.macs_ni(msgs, out);
                return;
            }
            (msgs, out)
        };
        for (mm, oo) in msgs.iter().zip(out.iter_mut()) {
            self.one_soft(mm, oo);
        }
    }

    /// Up to sixteen messages with AVX-512, lanes of different lengths masked off once done.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn group16(&self, msgs: &[Msg<'_>], out: &mut [[u8; 20]]) {
        use super::sha1_x16::{self as x16, LANES as L};
        let n = msgs.len().min(L);
        let empty = Msg {
            main: &[],
            extra: &[],
        };
        let mut tails: [Tail; L] =
            std::array::from_fn(|l| Tail::new(if l < n { &msgs[l] } else { &empty }));
        let mut total = [0usize; L];
        for l in 0..n {
            total[l] = msgs[l].main.len() / 64 + tails[l].blocks;
        }
        let most = total.iter().copied().max().unwrap_or(0);
        let idle = [0u8; 64];
        let mut st = x16::States::splat(&self.inner);
        for b in 0..most {
            let mut active: u16 = 0;
            let ptrs: [*const u8; L] = std::array::from_fn(|l| {
                if b >= total[l] {
                    return idle.as_ptr();
                }
                active |= 1 << l;
                let full = msgs[l].main.len() / 64;
                if b < full {
                    msgs[l].main.as_ptr().add(64 * b)
                } else {
                    tails[l].buf.as_ptr().add(64 * (b - full))
                }
            });
            x16::compress(&mut st, x16::load_blocks(&ptrs), active);
        }
        let mut os = x16::States::splat(&self.outer);
        x16::compress(&mut os, x16::outer_block(&st), 0xffff);
        let mut lanes = os.lanes();
        for (o, s) in out.iter_mut().zip(lanes.iter()).take(n) {
            for (j, v) in s.iter().enumerate() {
                o[4 * j..4 * j + 4].copy_from_slice(&v.to_be_bytes());
            }
        }
        lanes.zeroize();
        for t in tails.iter_mut() {
            t.buf.zeroize();
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn macs_ni(&self, msgs: &[Msg<'_>], out: &mut [[u8; 20]]) {
        for (m, o) in msgs.chunks(LANES).zip(out.chunks_mut(LANES)) {
            if self.wide && m.len() == LANES {
                // SAFETY: SHA-NI, SSE4.1 and AVX-512VL are present (checked in `new`).
                unsafe { self.group::<LANES>(m, o) }
            } else {
                for (mm, oo) in m.chunks(2).zip(o.chunks_mut(2)) {
                    if mm.len() == 2 {
                        // SAFETY: SHA-NI and SSE4.1 are present (`ni`).
                        unsafe { self.group::<2>(mm, oo) }
                    } else {
                        // SAFETY: as above.
                        unsafe { self.group::<1>(mm, oo) }
                    }
                }
            }
        }
    }

    /// Truncated MAC of one message compared in constant time with `icv`.
    pub fn verify(&self, mac: &[u8; 20], icv: &[u8]) -> bool {
        icv.len() <= 20 && !icv.is_empty() && bool::from(mac[..icv.len()].ct_eq(icv))
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn group<const N: usize>(&self, msgs: &[Msg<'_>], out: &mut [[u8; 20]]) {
        let mut tails: [Tail; N] = std::array::from_fn(|l| Tail::new(&msgs[l]));
        let mut states = [self.inner; N];
        let mut total = [0usize; N];
        for l in 0..N {
            total[l] = msgs[l].main.len() / 64 + tails[l].blocks;
        }
        let block_ptr = |l: usize, b: usize, tails: &[Tail; N]| -> *const u8 {
            let full = msgs[l].main.len() / 64;
            if b < full {
                msgs[l].main.as_ptr().add(64 * b)
            } else {
                tails[l].buf.as_ptr().add(64 * (b - full))
            }
        };
        let common = total.iter().copied().min().unwrap_or(0);
        for b in 0..common {
            let ptrs: [*const u8; N] = std::array::from_fn(|l| block_ptr(l, b, &tails));
            if self.wide {
                compress_wide::<N>(&mut states, &ptrs);
            } else {
                compress::<N>(&mut states, &ptrs);
            }
        }
        for l in 0..N {
            let mut st = [states[l]];
            for b in common..total[l] {
                compress::<1>(&mut st, &[block_ptr(l, b, &tails)]);
            }
            states[l] = st[0];
        }
        // Outer hash: one block each.
        let mut outer_blocks = [[0u8; 64]; N];
        for l in 0..N {
            let ob = &mut outer_blocks[l];
            for (j, v) in states[l].iter().enumerate() {
                ob[4 * j..4 * j + 4].copy_from_slice(&v.to_be_bytes());
            }
            ob[20] = 0x80;
            ob[56..64].copy_from_slice(&((64u64 + 20) * 8).to_be_bytes());
        }
        let mut os = [self.outer; N];
        let ptrs: [*const u8; N] = std::array::from_fn(|l| outer_blocks[l].as_ptr());
        if self.wide {
            compress_wide::<N>(&mut os, &ptrs);
        } else {
            compress::<N>(&mut os, &ptrs);
        }
        for l in 0..N {
            for (j, v) in os[l].iter().enumerate() {
                out[l][4 * j..4 * j + 4].copy_from_slice(&v.to_be_bytes());
            }
        }
        for t in tails.iter_mut() {
            t.buf.zeroize();
        }
        outer_blocks.zeroize();
    }

    fn one_soft(&self, m: &Msg<'_>, out: &mut [u8; 20]) {
        let mut tail = Tail::new(m);
        let mut st = self.inner;
        for c in m.main.chunks_exact(64) {
            compress_soft(&mut st, c.try_into().unwrap_or(&[0u8; 64]));
        }
        for b in 0..tail.blocks {
            let mut blk = [0u8; 64];
            blk.copy_from_slice(&tail.buf[64 * b..64 * b + 64]);
            compress_soft(&mut st, &blk);
        }
        let mut ob = [0u8; 64];
        for (j, v) in st.iter().enumerate() {
            ob[4 * j..4 * j + 4].copy_from_slice(&v.to_be_bytes());
        }
        ob[20] = 0x80;
        ob[56..64].copy_from_slice(&((64u64 + 20) * 8).to_be_bytes());
        let mut os = self.outer;
        compress_soft(&mut os, &ob);
        for (j, v) in os.iter().enumerate() {
            out[4 * j..4 * j + 4].copy_from_slice(&v.to_be_bytes());
        }
        tail.buf.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};

    fn reference(key: &[u8], m: &Msg<'_>) -> [u8; 20] {
        let mut h = <Hmac<sha1::Sha1>>::new_from_slice(key).unwrap();
        h.update(m.main);
        h.update(m.extra);
        h.finalize().into_bytes().into()
    }

    #[test]
    fn rfc2202_case_1_and_2() {
        let k = HmacSha1::new(&[0x0b; 20]);
        let mut out = [[0u8; 20]];
        k.macs(
            &[Msg {
                main: b"Hi There",
                extra: b"",
            }],
            &mut out,
        );
        assert_eq!(
            out[0].to_vec(),
            reference(
                &[0x0b; 20],
                &Msg {
                    main: b"Hi There",
                    extra: b""
                }
            )
        );
        assert_eq!(out[0][..4], [0xb6, 0x17, 0x31, 0x86]);
        let k = HmacSha1::new(b"Jefe");
        k.macs(
            &[Msg {
                main: b"what do ya want for nothing?",
                extra: b"",
            }],
            &mut out,
        );
        assert_eq!(out[0][..4], [0xef, 0xfc, 0xdf, 0x6a]);
    }

    #[test]
    fn every_length_and_lane_mix_matches_the_hmac_crate() {
        let key: Vec<u8> = (0..20u8).map(|i| i * 7 + 1).collect();
        let k = HmacSha1::new(&key);
        let data: Vec<u8> = (0..2000u32).map(|i| (i * 13 + 5) as u8).collect();
        for base in [0usize, 1, 50, 55, 56, 63, 64, 119, 120, 1400, 1432] {
            // 23: sixteen lanes (AVX-512) and seven more (SHA-NI), where present
            let msgs: Vec<Msg<'_>> = (0..23)
                .map(|i| Msg {
                    main: &data[..base + (i * 37) % 130],
                    extra: if i % 2 == 0 { &data[1990..1994] } else { b"" },
                })
                .collect();
            let mut out = vec![[0u8; 20]; msgs.len()];
            k.macs(&msgs, &mut out);
            for (m, o) in msgs.iter().zip(&out) {
                assert_eq!(*o, reference(&key, m), "len {}", m.main.len());
            }
            // the portable path gives the same
            let mut soft = HmacSha1::new(&key);
            soft.ni = false;
            soft.wide = false;
            soft.x16 = false;
            let mut narrow = HmacSha1::new(&key);
            narrow.wide = false;
            narrow.x16 = false;
            let mut out3 = vec![[0u8; 20]; msgs.len()];
            narrow.macs(&msgs, &mut out3);
            assert_eq!(out, out3);
            let mut out2 = vec![[0u8; 20]; msgs.len()];
            soft.macs(&msgs, &mut out2);
            assert_eq!(out, out2);
        }
        // keys longer than a block are hashed first
        let long = [0xaa; 80];
        let k = HmacSha1::new(&long);
        let m = Msg {
            main: b"Test Using Larger Than Block-Size Key - Hash Key First",
            extra: b"",
        };
        let mut out = [[0u8; 20]];
        k.macs(&[m], &mut out);
        assert_eq!(out[0], reference(&long, &m));
    }
}
