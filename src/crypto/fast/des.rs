//! 3DES-CBC (EDE3) for the ESP fast path: table-driven DES (the S-boxes and the P
//! permutation folded into eight 64-entry tables, the expansion done with two rotations per
//! round), the inner FP/IP pairs of EDE left out, and four packets (encryption) or four
//! blocks (decryption) interleaved so the round latency is hidden. Portable Rust, no
//! intrinsics.
//!
//! The key schedule and the IP/FP/P bit permutations are those of the RustCrypto  crate
//! 0.8 (MIT OR Apache-2.0), which stays the reference this is tested against.

use std::sync::OnceLock;
use zeroize::Zeroize;

const SHIFTS: [u8; 16] = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1];

// S-boxes indexed directly by the six input bits (rows and columns already rearranged).
#[rustfmt::skip]
const SBOXES: [[u8; 64]; 8] = [
    [
        14,  0,  4, 15, 13,  7,  1,  4,  2, 14, 15,  2, 11, 13,  8,  1,
         3, 10, 10,  6,  6, 12, 12, 11,  5,  9,  9,  5,  0,  3,  7,  8,
         4, 15,  1, 12, 14,  8,  8,  2, 13,  4,  6,  9,  2,  1, 11,  7,
        15,  5, 12, 11,  9,  3,  7, 14,  3, 10, 10,  0,  5,  6,  0, 13,
    ],
    [
        15,  3,  1, 13,  8,  4, 14,  7,  6, 15, 11,  2,  3,  8,  4, 14,
         9, 12,  7,  0,  2,  1, 13, 10, 12,  6,  0,  9,  5, 11, 10,  5,
         0, 13, 14,  8,  7, 10, 11,  1, 10,  3,  4, 15, 13,  4,  1,  2,
         5, 11,  8,  6, 12,  7,  6, 12,  9,  0,  3,  5,  2, 14, 15,  9,
    ],
    [
        10, 13,  0,  7,  9,  0, 14,  9,  6,  3,  3,  4, 15,  6,  5, 10,
         1,  2, 13,  8, 12,  5,  7, 14, 11, 12,  4, 11,  2, 15,  8,  1,
        13,  1,  6, 10,  4, 13,  9,  0,  8,  6, 15,  9,  3,  8,  0,  7,
        11,  4,  1, 15,  2, 14, 12,  3,  5, 11, 10,  5, 14,  2,  7, 12,
    ],
    [
         7, 13, 13,  8, 14, 11,  3,  5,  0,  6,  6, 15,  9,  0, 10,  3,
         1,  4,  2,  7,  8,  2,  5, 12, 11,  1, 12, 10,  4, 14, 15,  9,
        10,  3,  6, 15,  9,  0,  0,  6, 12, 10, 11,  1,  7, 13, 13,  8,
        15,  9,  1,  4,  3,  5, 14, 11,  5, 12,  2,  7,  8,  2,  4, 14,
    ],
    [
         2, 14, 12, 11,  4,  2,  1, 12,  7,  4, 10,  7, 11, 13,  6,  1,
         8,  5,  5,  0,  3, 15, 15, 10, 13,  3,  0,  9, 14,  8,  9,  6,
         4, 11,  2,  8,  1, 12, 11,  7, 10,  1, 13, 14,  7,  2,  8, 13,
        15,  6,  9, 15, 12,  0,  5,  9,  6, 10,  3,  4,  0,  5, 14,  3,
    ],
    [
        12, 10,  1, 15, 10,  4, 15,  2,  9,  7,  2, 12,  6,  9,  8,  5,
         0,  6, 13,  1,  3, 13,  4, 14, 14,  0,  7, 11,  5,  3, 11,  8,
         9,  4, 14,  3, 15,  2,  5, 12,  2,  9,  8,  5, 12, 15,  3, 10,
         7, 11,  0, 14,  4,  1, 10,  7,  1,  6, 13,  0, 11,  8,  6, 13,
    ],
    [
         4, 13, 11,  0,  2, 11, 14,  7, 15,  4,  0,  9,  8,  1, 13, 10,
         3, 14, 12,  3,  9,  5,  7, 12,  5,  2, 10, 15,  6,  8,  1,  6,
         1,  6,  4, 11, 11, 13, 13,  8, 12,  1,  3,  4,  7, 10, 14,  7,
        10,  9, 15,  5,  6,  0,  8, 15,  0, 14,  5,  2,  9,  3,  2, 12,
    ],
    [
        13,  1,  2, 15,  8, 13,  4,  8,  6, 10, 15,  3, 11,  7,  1,  4,
        10, 12,  9,  5,  3,  6, 14, 11,  5,  0,  0, 14, 12,  9,  7,  2,
         7,  2, 11,  1,  4, 14,  1,  7,  9,  4, 12, 10, 14,  8,  2, 13,
         0, 15,  6, 12, 10,  9, 13,  0, 15,  3,  3,  5,  5,  6,  8, 11,
    ],
];

/// Swap bits in `a` using a delta swap
fn delta_swap(a: u64, delta: u64, mask: u64) -> u64 {
    let b = (a ^ (a >> delta)) & mask;
    a ^ b ^ (b << delta)
}

/// Swap bits using the PC-1 table
fn pc1(mut key: u64) -> u64 {
    key = delta_swap(key, 2, 0x3333000033330000);
    key = delta_swap(key, 4, 0x0f0f0f0f00000000);
    key = delta_swap(key, 8, 0x009a000a00a200a8);
    key = delta_swap(key, 16, 0x00006c6c0000cccc);
    key = delta_swap(key, 1, 0x1045500500550550);
    key = delta_swap(key, 32, 0x00000000f0f0f5fa);
    key = delta_swap(key, 8, 0x00550055006a00aa);
    key = delta_swap(key, 2, 0x0000333330000300);
    key & 0xFFFFFFFFFFFFFF00
}

/// Swap bits using the PC-2 table
fn pc2(key: u64) -> u64 {
    let key = key.rotate_left(61);
    let b1 = (key & 0x0021000002000000) >> 7;
    let b2 = (key & 0x0008020010080000) << 1;
    let b3 = key & 0x0002200000000000;
    let b4 = (key & 0x0000000000100020) << 19;
    let b5 = (key.rotate_left(54) & 0x0005312400000011).wrapping_mul(0x0000000094200201)
        & 0xea40100880000000;
    let b6 = (key.rotate_left(7) & 0x0022110000012001).wrapping_mul(0x0001000000610006)
        & 0x1185004400000000;
    let b7 = (key.rotate_left(6) & 0x0000520040200002).wrapping_mul(0x00000080000000c1)
        & 0x0028811000200000;
    let b8 = (key & 0x01000004c0011100).wrapping_mul(0x0000000000004284) & 0x0400082244400000;
    let b9 = (key.rotate_left(60) & 0x0000000000820280).wrapping_mul(0x0000000000089001)
        & 0x0000000110880000;
    let b10 = (key.rotate_left(49) & 0x0000000000024084).wrapping_mul(0x0000000002040005)
        & 0x000000000a030000;
    b1 | b2 | b3 | b4 | b5 | b6 | b7 | b8 | b9 | b10
}

/// Swap bits using the reverse FP table
fn fp(mut message: u64) -> u64 {
    message = delta_swap(message, 24, 0x000000FF000000FF);
    message = delta_swap(message, 24, 0x00000000FF00FF00);
    message = delta_swap(message, 36, 0x000000000F0F0F0F);
    message = delta_swap(message, 18, 0x0000333300003333);
    delta_swap(message, 9, 0x0055005500550055)
}

/// Swap bits using the IP table
fn ip(mut message: u64) -> u64 {
    message = delta_swap(message, 9, 0x0055005500550055);
    message = delta_swap(message, 18, 0x0000333300003333);
    message = delta_swap(message, 36, 0x000000000F0F0F0F);
    message = delta_swap(message, 24, 0x00000000FF00FF00);
    delta_swap(message, 24, 0x000000FF000000FF)
}

/// Swap bits using the P table
fn p(block: u64) -> u64 {
    let block = block.rotate_left(44);
    let b1 = (block & 0x0000000000200000) << 32;
    let b2 = (block & 0x0000000000480000) << 13;
    let b3 = (block & 0x0000088000000000) << 12;
    let b4 = (block & 0x0000002020120000) << 25;
    let b5 = (block & 0x0000000442000000) << 14;
    let b6 = (block & 0x0000000001800000) << 37;
    let b7 = (block & 0x0000000004000000) << 24;
    let b8 = (block & 0x0000020280015000).wrapping_mul(0x0000020080800083) & 0x02000a6400000000;
    let b9 = (block.rotate_left(29) & 0x01001400000000aa).wrapping_mul(0x0000210210008081)
        & 0x0902c01200000000;
    let b10 = (block & 0x0000000910040000).wrapping_mul(0x0000000c04000020) & 0x8410010000000000;
    b1 | b2 | b3 | b4 | b5 | b6 | b7 | b8 | b9 | b10
}

/// Performs a left rotate on a 28 bit number
fn rotate(mut val: u64, shift: u8) -> u64 {
    let top_bits = val >> (28 - shift);
    val <<= shift;

    (val | top_bits) & 0x0FFFFFFF
}

/// Generate the 16 subkeys
fn gen_keys(key: u64) -> [u64; 16] {
    let mut keys: [u64; 16] = [0; 16];
    let key = pc1(key);

    // The most significant bit is bit zero, and there are only 56 bits in
    // the key after applying PC1, so we need to remove the eight least
    // significant bits from the key.
    let key = key >> 8;

    let mut c = key >> 28;
    let mut d = key & 0x0FFFFFFF;
    for i in 0..16 {
        c = rotate(c, SHIFTS[i]);
        d = rotate(d, SHIFTS[i]);

        // We need the `<< 8` because the most significant bit is bit zero,
        // so we need to shift our 56 bit value 8 bits to the left.
        keys[i] = pc2(((c << 28) | d) << 8);
    }

    keys
}

/// SP[i][x]: S-box i applied to the six bits x, put through P, as the 32-bit f output.
fn sp() -> &'static [[u32; 64]; 8] {
    static SP: OnceLock<[[u32; 64]; 8]> = OnceLock::new();
    SP.get_or_init(|| {
        let mut t = [[0u32; 64]; 8];
        for (i, (row, sbox)) in t.iter_mut().zip(SBOXES.iter()).enumerate() {
            for (x, v) in row.iter_mut().enumerate() {
                let s = u64::from(sbox[x]) << (60 - i * 4);
                *v = (p(s) >> 32) as u32;
            }
        }
        t
    })
}

/// The subkey chunks of one round, arranged for the two rotations of the expansion:
/// chunk 2j of E(R) is byte j (from the low end, rotating) of rotl(R, 5), chunk 2j+1 of
/// rotl(R, 9).
#[derive(Clone, Copy, Default)]
struct RoundKey {
    x: u32,
    y: u32,
}

fn round_keys(key: u64) -> [RoundKey; 16] {
    let mut out = [RoundKey::default(); 16];
    let mut ks = gen_keys(key);
    for (o, &k) in out.iter_mut().zip(ks.iter()) {
        let c = |i: usize| ((k >> (58 - 6 * i)) & 0x3f) as u32;
        o.x = c(0) | c(2) << 24 | c(4) << 16 | c(6) << 8;
        o.y = c(1) | c(3) << 24 | c(5) << 16 | c(7) << 8;
    }
    ks.zeroize();
    out
}

#[inline(always)]
fn f(sp: &[[u32; 64]; 8], r: u32, k: RoundKey) -> u32 {
    let x = r.rotate_left(5) ^ k.x;
    let y = r.rotate_left(9) ^ k.y;
    sp[0][(x & 63) as usize]
        | sp[2][((x >> 24) & 63) as usize]
        | sp[4][((x >> 16) & 63) as usize]
        | sp[6][((x >> 8) & 63) as usize]
        | sp[1][(y & 63) as usize]
        | sp[3][((y >> 24) & 63) as usize]
        | sp[5][((y >> 16) & 63) as usize]
        | sp[7][((y >> 8) & 63) as usize]
}

/// Keyed 3DES (EDE3): encryption runs k1 forward, k2 backward, k3 forward.
pub struct TdesKey {
    enc: [RoundKey; 48],
    dec: [RoundKey; 48],
}

impl Drop for TdesKey {
    fn drop(&mut self) {
        for k in self.enc.iter_mut().chain(self.dec.iter_mut()) {
            k.x.zeroize();
            k.y.zeroize();
        }
    }
}

/// Blocks (or packets) interleaved.
const W: usize = 4;

impl TdesKey {
    /// A 24-byte key (three DES keys); None for any other length.
    pub fn new(key: &[u8]) -> Option<TdesKey> {
        if key.len() != 24 {
            return None;
        }
        let k = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&key[8 * i..8 * i + 8]);
            u64::from_be_bytes(b)
        };
        let (k1, k2, k3) = (round_keys(k(0)), round_keys(k(1)), round_keys(k(2)));
        let mut enc = [RoundKey::default(); 48];
        let mut dec = [RoundKey::default(); 48];
        for i in 0..16 {
            enc[i] = k1[i];
            enc[16 + i] = k2[15 - i];
            enc[32 + i] = k3[i];
            dec[i] = k3[15 - i];
            dec[16 + i] = k2[i];
            dec[32 + i] = k1[15 - i];
        }
        Some(TdesKey { enc, dec })
    }

    /// N blocks through 48 rounds, interleaved; IP before, FP after.
    #[inline(always)]
    fn crypt<const N: usize>(keys: &[RoundKey; 48], blocks: &mut [u64; N]) {
        let sp = sp();
        let mut l = [0u32; N];
        let mut r = [0u32; N];
        for j in 0..N {
            let d = ip(blocks[j]);
            l[j] = (d >> 32) as u32;
            r[j] = d as u32;
        }
        for (n, k) in keys.iter().enumerate() {
            for j in 0..N {
                let t = l[j] ^ f(sp, r[j], *k);
                l[j] = r[j];
                r[j] = t;
            }
            // Between the three DES passes the halves swap (FP then IP cancel out).
            if n == 15 || n == 31 {
                std::mem::swap(&mut l, &mut r);
            }
        }
        for j in 0..N {
            blocks[j] = fp(u64::from(r[j]) << 32 | u64::from(l[j]));
        }
    }

    /// Encrypts one 8-byte block (tests).
    pub fn encrypt_block(&self, b: &mut [u8; 8]) {
        let mut x = [u64::from_be_bytes(*b)];
        Self::crypt::<1>(&self.enc, &mut x);
        *b = x[0].to_be_bytes();
    }

    /// CBC-encrypts every lane in place: (IV, data) with data a multiple of 8 bytes; four
    /// packets at a time in lock-step.
    pub fn cbc_encrypt_lanes(&self, lanes: &mut [(&[u8; 8], &mut [u8])]) {
        for group in lanes.chunks_mut(W) {
            let n = group.len();
            let mut chain = [0u64; W];
            for (c, (iv, _)) in chain.iter_mut().zip(group.iter()) {
                *c = u64::from_be_bytes(**iv);
            }
            let common = group.iter().map(|(_, d)| d.len() / 8).min().unwrap_or(0);
            let rd = |d: &[u8], b: usize| {
                let mut x = [0u8; 8];
                x.copy_from_slice(&d[8 * b..8 * b + 8]);
                u64::from_be_bytes(x)
            };
            for b in 0..common {
                let mut x = [0u64; W];
                for j in 0..n {
                    x[j] = rd(group[j].1, b) ^ chain[j];
                }
                Self::crypt::<W>(&self.enc, &mut x);
                for j in 0..n {
                    group[j].1[8 * b..8 * b + 8].copy_from_slice(&x[j].to_be_bytes());
                    chain[j] = x[j];
                }
            }
            for j in 0..n {
                let blocks = group[j].1.len() / 8;
                for b in common..blocks {
                    let mut x = [rd(group[j].1, b) ^ chain[j]];
                    Self::crypt::<1>(&self.enc, &mut x);
                    group[j].1[8 * b..8 * b + 8].copy_from_slice(&x[0].to_be_bytes());
                    chain[j] = x[0];
                }
            }
        }
    }

    /// CBC-decrypts `data` (a multiple of 8 bytes) in place, four blocks at a time.
    pub fn cbc_decrypt(&self, iv: &[u8; 8], data: &mut [u8]) {
        let mut prev = u64::from_be_bytes(*iv);
        for chunk in data.chunks_mut(8 * W) {
            let n = chunk.len() / 8;
            let mut c = [0u64; W];
            for (j, cj) in c.iter_mut().enumerate().take(n) {
                let mut x = [0u8; 8];
                x.copy_from_slice(&chunk[8 * j..8 * j + 8]);
                *cj = u64::from_be_bytes(x);
            }
            let mut x = c;
            if n == W {
                Self::crypt::<W>(&self.dec, &mut x);
            } else {
                for xj in x.iter_mut().take(n) {
                    let mut one = [*xj];
                    Self::crypt::<1>(&self.dec, &mut one);
                    *xj = one[0];
                }
            }
            for j in 0..n {
                let p = x[j] ^ if j == 0 { prev } else { c[j - 1] };
                chunk[8 * j..8 * j + 8].copy_from_slice(&p.to_be_bytes());
            }
            if n > 0 {
                prev = c[n - 1];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbc::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};

    #[test]
    fn matches_the_des_crate_block_and_cbc() {
        // the classic DES test key/plaintext, as three identical keys (EDE of one key = DES)
        let k: [u8; 8] = [0x13, 0x34, 0x57, 0x79, 0x9b, 0xbc, 0xdf, 0xf1];
        let key: Vec<u8> = k.iter().chain(k.iter()).chain(k.iter()).copied().collect();
        let t = TdesKey::new(&key).unwrap();
        let mut b = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
        t.encrypt_block(&mut b);
        assert_eq!(b, [0x85, 0xe8, 0x13, 0x54, 0x0f, 0x0a, 0xb4, 0x05]);
        // three different keys, CBC of several lanes of different lengths
        let key: Vec<u8> = (0..24u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
        let t = TdesKey::new(&key).unwrap();
        let ivs: Vec<[u8; 8]> = (0..6).map(|i| [i as u8 * 3 + 1; 8]).collect();
        let plain: Vec<Vec<u8>> = (0..6)
            .map(|i| {
                (0..8 * (1 + (i * 5) % 11))
                    .map(|j| (j * 7 + i) as u8)
                    .collect()
            })
            .collect();
        let mut bufs = plain.clone();
        {
            let mut lanes: Vec<(&[u8; 8], &mut [u8])> = ivs
                .iter()
                .zip(bufs.iter_mut())
                .map(|(iv, b)| (iv, b.as_mut_slice()))
                .collect();
            t.cbc_encrypt_lanes(&mut lanes);
        }
        for ((iv, p), c) in ivs.iter().zip(&plain).zip(&bufs) {
            let mut want = p.clone();
            let len = want.len();
            cbc::Encryptor::<des::TdesEde3>::new_from_slices(&key, iv)
                .unwrap()
                .encrypt_padded_mut::<NoPadding>(&mut want, len)
                .unwrap();
            assert_eq!(c, &want);
            let mut back = c.clone();
            t.cbc_decrypt(iv, &mut back);
            assert_eq!(&back, p);
            let mut back2 = c.clone();
            cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, iv)
                .unwrap()
                .decrypt_padded_mut::<NoPadding>(&mut back2)
                .unwrap();
            assert_eq!(&back2, p);
        }
        assert!(TdesKey::new(&key[..16]).is_none());
    }
}
