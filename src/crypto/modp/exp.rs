//! Constant-time modular exponentiation on top of `Modulus`:
//! - `pow`: any base, a fixed 5-bit window over every bit position of the exponent (leading
//!   zero windows included), the window's table entry fetched by a full scan.
//! - `Comb`: a fixed base (the group generator), Lim-Lee's comb: the exponent is cut into
//!   `TEETH` rows and `COLUMNS` column blocks; one precomputed table per column block turns
//!   the exponentiation into ~n/(TEETH·COLUMNS) squarings and ~n/TEETH multiplications.
//!
//! Exponents are big-endian byte strings; the bit positions visited depend only on their
//! length (public), the bits themselves only on mask arithmetic. Every secret-derived
//! temporary (accumulator, window table, fetched entry) is wiped before returning.

use super::montgomery::{ct_lookup, Modulus};
use zeroize::Zeroize;

/// Bit `i` (0 = least significant) of the big-endian `exp`; 0 past its end. `i` is public.
#[inline(always)]
fn bit(exp: &[u8], i: usize) -> u64 {
    match exp.len().checked_sub(1 + i / 8).and_then(|at| exp.get(at)) {
        Some(byte) => ((byte >> (i % 8)) & 1) as u64,
        None => 0,
    }
}

/// Bits `lo .. lo+width` of `exp` as a number.
#[inline(always)]
fn window(exp: &[u8], lo: usize, width: usize) -> u64 {
    (0..width).fold(0, |acc, k| acc | (bit(exp, lo + k) << k))
}

const WINDOW: usize = 5;

/// base^exp in Montgomery form, for `base` in Montgomery form. Time depends on exp.len()
/// only.
pub(crate) fn pow<const N: usize, const W: usize>(
    m: &Modulus<N, W>,
    base: &[u64; N],
    exp: &[u8],
) -> [u64; N] {
    let mut table = [[0u64; N]; 1 << WINDOW];
    table[0] = m.one();
    table[1] = *base;
    for k in 2..table.len() {
        table[k] = if k % 2 == 0 {
            m.sqr(&table[k / 2])
        } else {
            m.mul(&table[k - 1], base)
        };
    }
    let windows = (exp.len() * 8).div_ceil(WINDOW);
    let mut acc = m.one();
    let mut entry;
    for w in (0..windows).rev() {
        for _ in 0..WINDOW {
            acc = m.sqr(&acc);
        }
        entry = ct_lookup(&table, window(exp, w * WINDOW, WINDOW));
        acc = m.mul(&acc, &entry);
        entry.zeroize();
    }
    table.zeroize();
    acc
}

/// Rows of the comb: each table holds 2^TEETH products.
const TEETH: usize = 6;
/// Column blocks: one table each.
const COLUMNS: usize = 4;

/// The comb tables for one base and one exponent length. Public data (powers of a public
/// generator); only the choice of entry is secret.
pub(crate) struct Comb<const N: usize> {
    /// `tables[c * 2^TEETH + u]` = prod over teeth t with bit t of u set of
    /// base^(2^(t·rows + c·cols)).
    tables: Vec<[u64; N]>,
    /// Bits per row (a in Lim-Lee).
    rows: usize,
    /// Bits per column block (b in Lim-Lee).
    cols: usize,
    /// The longest exponent the comb covers, in bytes.
    max_len: usize,
}

impl<const N: usize> Comb<N> {
    /// Tables for `base` (Montgomery form) and exponents of up to `max_len` bytes.
    pub fn new<const W: usize>(m: &Modulus<N, W>, base: &[u64; N], max_len: usize) -> Self {
        let rows = (max_len * 8).div_ceil(TEETH).max(1);
        let cols = rows.div_ceil(COLUMNS);
        // base^(2^e) for every tooth t and column block c, found by squaring along e.
        let mut wanted: Vec<(usize, usize, usize)> = (0..TEETH)
            .flat_map(|t| (0..COLUMNS).map(move |c| (t * rows + c * cols, t, c)))
            .collect();
        wanted.sort_unstable();
        let mut powers = [[0u64; N]; TEETH * COLUMNS];
        let (mut cur, mut at) = (*base, 0);
        for (e, t, c) in wanted {
            while at < e {
                cur = m.sqr(&cur);
                at += 1;
            }
            powers[t * COLUMNS + c] = cur;
        }
        let mut tables = vec![m.one(); COLUMNS << TEETH];
        for c in 0..COLUMNS {
            for u in 1..1usize << TEETH {
                let t = u.trailing_zeros() as usize;
                let rest = tables[(c << TEETH) + (u & (u - 1))];
                tables[(c << TEETH) + u] = m.mul(&rest, &powers[t * COLUMNS + c]);
            }
        }
        Comb {
            tables,
            rows,
            cols,
            max_len,
        }
    }

    /// base^exp in Montgomery form; None if `exp` is longer than the comb covers.
    pub fn pow<const W: usize>(&self, m: &Modulus<N, W>, exp: &[u8]) -> Option<[u64; N]> {
        if exp.len() > self.max_len {
            return None;
        }
        let mut acc = m.one();
        let mut entry;
        for k in (0..self.cols).rev() {
            acc = m.sqr(&acc);
            for c in (0..COLUMNS).rev() {
                // Bit k of column block c lies inside each row only while c·cols + k < rows.
                let offset = c * self.cols + k;
                let mut u = 0u64;
                if offset < self.rows {
                    for t in 0..TEETH {
                        u |= bit(exp, t * self.rows + offset) << t;
                    }
                }
                let table = &self.tables[c << TEETH..(c + 1) << TEETH];
                entry = ct_lookup(table, u);
                acc = m.mul(&acc, &entry);
                entry.zeroize();
            }
        }
        Some(acc)
    }
}
