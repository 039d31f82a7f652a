//! Fixed-size Montgomery arithmetic modulo an odd prime of exactly 64·N bits (every MODP prime
//! has its top bit set). Numbers are `[u64; N]`, least significant limb first. A product is
//! formed in full (`W` = 2·N limbs; a dedicated squaring computes each cross product once)
//! and then reduced word by word (separated operand scanning). Every loop bound depends only
//! on N and the final subtraction is a masked select, so the instruction and memory-access
//! sequence is the same for every value: no secret-dependent branch or index.
//!
//! Rows of the product and of the reduction go two at a time, each with its own carry chain,
//! so that their multiplications overlap. The double-width buffer of each product and every
//! copy of it are wiped before the function returns: during an exponentiation the operands
//! are secret-derived.

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroize;

/// acc + a·b + carry as (low, high) words; cannot overflow 128 bits.
#[inline(always)]
fn mac(acc: u64, a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = (acc as u128) + (a as u128) * (b as u128) + (carry as u128);
    (t as u64, (t >> 64) as u64)
}

/// a + b + carry as (sum, carry out).
#[inline(always)]
fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = (a as u128) + (b as u128) + (carry as u128);
    (t as u64, (t >> 64) as u64)
}

/// A modulus p with 2^(64N-1) < p < 2^(64N), p odd, and the constants Montgomery form needs
/// (R = 2^(64N)). All public.
pub(crate) struct Modulus<const N: usize, const W: usize> {
    p: [u64; N],
    /// -p^-1 mod 2^64.
    p_inv: u64,
    /// R mod p: 1 in Montgomery form.
    one: [u64; N],
    /// R^2 mod p: converts into Montgomery form with one multiplication.
    r2: [u64; N],
}

impl<const N: usize, const W: usize> Modulus<N, W> {
    // Rows are processed in pairs: N must be even (it is for every MODP prime size).
    const WIDE_IS_TWICE_N: () = assert!(W == 2 * N && N >= 2 && N % 2 == 0);

    /// None unless `p_be` is 8·N big-endian bytes of an odd number with its top bit set.
    pub fn new(p_be: &[u8]) -> Option<Self> {
        let () = Self::WIDE_IS_TWICE_N;
        let p = from_be::<N>(p_be)?;
        if p[0] & 1 == 0 || p[N - 1] >> 63 == 0 {
            return None;
        }
        // Newton's iteration doubles the correct low bits each step: 1 -> 2 -> ... -> 64.
        let mut inv: u64 = 1;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(p[0].wrapping_mul(inv)));
        }
        // R mod p = R - p, as p > R/2. Then R^2 mod p by doubling it 64N times mod p.
        let mut one = [0u64; N];
        let mut borrow = 0u64;
        for (o, &pj) in one.iter_mut().zip(&p) {
            let (d, b1) = 0u64.overflowing_sub(pj);
            let (d, b2) = d.overflowing_sub(borrow);
            *o = d;
            borrow = (b1 | b2) as u64;
        }
        let mut r2 = one;
        for _ in 0..64 * N {
            let mut carry = 0u64;
            for limb in r2.iter_mut() {
                let top = *limb >> 63;
                *limb = (*limb << 1) | carry;
                carry = top;
            }
            r2 = sub_p_if(&r2, carry, &p);
        }
        Some(Modulus {
            p,
            p_inv: inv.wrapping_neg(),
            one,
            r2,
        })
    }

    pub fn one(&self) -> [u64; N] {
        self.one
    }

    /// a·R mod p, for a < p.
    pub fn to_mont(&self, a: &[u64; N]) -> [u64; N] {
        self.mul(a, &self.r2)
    }

    /// a·R^-1 mod p: back from Montgomery form. (a + m·p)/R <= p, so the reduction's
    /// conditional subtraction leaves the canonical value.
    pub fn to_plain(&self, a: &[u64; N]) -> [u64; N] {
        let mut t = [0u64; W];
        t[..N].copy_from_slice(a);
        self.redc(&mut t)
    }

    /// a·b·R^-1 mod p, for a, b < p: the full product, then `redc`. Rows of the product
    /// go two at a time with a carry chain each, so that their multiplications overlap.
    #[inline]
    pub fn mul(&self, a: &[u64; N], b: &[u64; N]) -> [u64; N] {
        let mut t = [0u64; W];
        for i in (0..N).step_by(2) {
            let (b0, b1) = (b[i], b[i + 1]);
            let (mut c0, mut c1);
            (t[i], c0) = mac(t[i], a[0], b0, 0);
            c1 = 0;
            for j in 1..N {
                let x;
                (x, c0) = mac(t[i + j], a[j], b0, c0);
                (t[i + j], c1) = mac(x, a[j - 1], b1, c1);
            }
            (t[i + N], c1) = mac(c0, a[N - 1], b1, c1);
            t[i + N + 1] = c1;
        }
        self.redc(&mut t)
    }

    /// a²·R^-1 mod p, for a < p: the cross products a[i]·a[j] (i < j) once, two rows at
    /// a time as in `mul`, then doubled with the squares a[i]² added in the same pass.
    #[inline]
    pub fn sqr(&self, a: &[u64; N]) -> [u64; N] {
        let mut t = [0u64; W];
        for i in (0..N - 2).step_by(2) {
            let (ai, ai1) = (a[i], a[i + 1]);
            let (mut c0, mut c1);
            (t[2 * i + 1], c0) = mac(t[2 * i + 1], ai1, ai, 0);
            (t[2 * i + 2], c0) = mac(t[2 * i + 2], a[i + 2], ai, c0);
            c1 = 0;
            for q in 2 * i + 3..i + N {
                let x;
                (x, c0) = mac(t[q], a[q - i], ai, c0);
                (t[q], c1) = mac(x, a[q - i - 1], ai1, c1);
            }
            (t[i + N], c1) = mac(c0, a[N - 1], ai1, c1);
            t[i + N + 1] = c1;
        }
        // The last pair: a[N-2]·a[N-1] only.
        (t[2 * N - 3], t[2 * N - 2]) = mac(t[2 * N - 3], a[N - 1], a[N - 2], 0);
        let (mut top, mut c) = (0u64, 0u64);
        for (pair, &ai) in t.chunks_exact_mut(2).zip(a) {
            let (lo, hi) = (pair[0], pair[1]);
            let sq = (ai as u128) * (ai as u128);
            (pair[0], c) = adc((lo << 1) | top, sq as u64, c);
            (pair[1], c) = adc((hi << 1) | (lo >> 63), (sq >> 64) as u64, c);
            top = hi >> 63;
        }
        self.redc(&mut t)
    }

    /// Montgomery reduction of t < p·R: t·R^-1 mod p. Wipes t.
    #[inline(always)]
    fn redc(&self, t: &mut [u64; W]) -> [u64; N] {
        let p = &self.p;
        // Two reduction rows at a time, as in `mul`: row i+1's factor is known as soon as
        // row i has passed limb i+1.
        let mut hi = 0u64;
        for i in (0..N).step_by(2) {
            let m0 = t[i].wrapping_mul(self.p_inv);
            let (_, mut c0) = mac(t[i], m0, p[0], 0);
            (t[i + 1], c0) = mac(t[i + 1], m0, p[1], c0);
            let m1 = t[i + 1].wrapping_mul(self.p_inv);
            let (_, mut c1) = mac(t[i + 1], m1, p[0], 0);
            for j in 1..N - 1 {
                let x;
                (x, c0) = mac(t[i + 1 + j], m0, p[j + 1], c0);
                (t[i + 1 + j], c1) = mac(x, m1, p[j], c1);
            }
            let (v, h0) = adc(t[i + N], c0, hi);
            (t[i + N], c1) = mac(v, m1, p[N - 1], c1);
            (t[i + N + 1], hi) = adc(t[i + N + 1], c1, h0);
        }
        let mut r = [0u64; N];
        r.copy_from_slice(&t[N..]);
        t.zeroize();
        // r + hi·R < 2p: one conditional subtraction.
        let out = sub_p_if(&r, hi, &self.p);
        r.zeroize();
        out
    }
}

/// x - p if x + carry·R >= p, else x; carry is 0 or 1 and x + carry·R < 2p.
#[inline(always)]
fn sub_p_if<const N: usize>(x: &[u64; N], carry: u64, p: &[u64; N]) -> [u64; N] {
    let mut d = [0u64; N];
    let mut borrow = 0u64;
    for j in 0..N {
        let (v, b1) = x[j].overflowing_sub(p[j]);
        let (v, b2) = v.overflowing_sub(borrow);
        d[j] = v;
        borrow = (b1 | b2) as u64;
    }
    // Keep x only when x < p: the subtraction borrowed and there was no carry.
    let keep_x = Choice::from((borrow & !carry & 1) as u8);
    let mut out = [0u64; N];
    for j in 0..N {
        out[j] = u64::conditional_select(&d[j], &x[j], keep_x);
    }
    d.zeroize();
    out
}

/// `table[index]`, reading every entry (the index is secret). An index past the end gives 0.
#[inline]
pub(crate) fn ct_lookup<const N: usize>(table: &[[u64; N]], index: u64) -> [u64; N] {
    let mut out = [0u64; N];
    for (k, entry) in table.iter().enumerate() {
        let hit = (k as u64).ct_eq(&index);
        for j in 0..N {
            out[j].conditional_assign(&entry[j], hit);
        }
    }
    out
}

/// The number in `be` (big-endian, exactly 8·N bytes), or None for another length.
pub(crate) fn from_be<const N: usize>(be: &[u8]) -> Option<[u64; N]> {
    if be.len() != 8 * N {
        return None;
    }
    let mut out = [0u64; N];
    for (limb, chunk) in out.iter_mut().zip(be.rchunks_exact(8)) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        *limb = u64::from_be_bytes(w);
    }
    Some(out)
}

/// Writes `x` big-endian into `out` (8·N bytes long).
pub(crate) fn to_be<const N: usize>(x: &[u64; N], out: &mut [u8]) {
    for (limb, chunk) in x.iter().zip(out.rchunks_exact_mut(8)) {
        chunk.copy_from_slice(&limb.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigUint;
    use rand::{rngs::StdRng, RngCore, SeedableRng};

    fn big<const N: usize>(x: &[u64; N]) -> BigUint {
        let mut be = vec![0u8; 8 * N];
        to_be(x, &mut be);
        BigUint::from_bytes_be(&be)
    }

    /// Random odd moduli of full length (not only primes: Montgomery form needs p odd) and
    /// random and edge operands: mul, sqr and the conversions against num-bigint.
    fn check_size<const N: usize, const W: usize>(rng: &mut StdRng, rounds: usize) {
        for round in 0..rounds {
            let mut pb = vec![0u8; 8 * N];
            rng.fill_bytes(&mut pb);
            pb[0] |= 0x80;
            pb[8 * N - 1] |= 1;
            if round % 4 == 0 {
                pb.fill(0xff); // all ones: the carries reach the top
            }
            let m = Modulus::<N, W>::new(&pb).unwrap();
            let p = BigUint::from_bytes_be(&pb);
            let plain = |x: &[u64; N]| big(&m.to_plain(x));
            let pm1 = {
                let mut b = vec![0u8; 8 * N];
                let v = (&p - 1u32).to_bytes_be();
                b[8 * N - v.len()..].copy_from_slice(&v);
                from_be::<N>(&b).unwrap()
            };
            let mut operands = vec![[0u64; N], pm1];
            for _ in 0..6 {
                let mut b = vec![0u8; 8 * N];
                rng.fill_bytes(&mut b);
                let x = BigUint::from_bytes_be(&b) % &p;
                let v = x.to_bytes_be();
                b.fill(0);
                b[8 * N - v.len()..].copy_from_slice(&v);
                operands.push(from_be::<N>(&b).unwrap());
            }
            for a in &operands {
                let am = m.to_mont(a);
                assert_eq!(plain(&am), big(a), "round trip");
                assert_eq!(plain(&m.sqr(&am)), big(a) * big(a) % &p, "sqr");
                for b in &operands {
                    let bm = m.to_mont(b);
                    let want = big(a) * big(b) % &p;
                    assert_eq!(plain(&m.mul(&am, &bm)), want, "mul");
                }
            }
            let idx = (rng.next_u32() % 8) as u64;
            assert_eq!(ct_lookup(&operands, idx), operands[idx as usize]);
            assert_eq!(ct_lookup(&operands, 99), [0u64; N]);
        }
    }

    #[test]
    fn mul_sqr_and_conversions_match_num_bigint() {
        let mut rng = StdRng::seed_from_u64(21);
        check_size::<2, 4>(&mut rng, 200);
        check_size::<4, 8>(&mut rng, 100);
        check_size::<6, 12>(&mut rng, 50);
        check_size::<16, 32>(&mut rng, 20);
        check_size::<64, 128>(&mut rng, 4);
    }
}
