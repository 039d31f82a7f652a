//! MODP Diffie-Hellman (groups 1, 2, 5, 14, 15, 16 and 24) with constant-time
//! exponentiation: own fixed-size Montgomery arithmetic (`modp/montgomery.rs`) runs the same
//! sequence of operations and memory accesses for every exponent of a given length, unlike
//! num-bigint's `modpow` (kept as the oracle in the tests). g^x uses a per-group comb table
//! built once (`modp/exp.rs`); y^x a fixed window. Received values get the RFC 6989 checks.

mod exp;
mod montgomery;

use super::modp_params::{params, ModpParams};
use super::{DhGroup, KeError};
use exp::Comb;
use montgomery::{from_be, to_be, Modulus};
use std::sync::OnceLock;
use zeroize::{Zeroize, Zeroizing};

/// One group's modulus and generator comb, for limb count N (W = 2N). Public data, built on
/// first use and shared by every key of the group.
struct GroupMath<const N: usize, const W: usize> {
    m: Modulus<N, W>,
    g: [u64; N],
    comb: Comb<N>,
}

impl<const N: usize, const W: usize> GroupMath<N, W> {
    fn build(group: DhGroup) -> Option<Self> {
        let prm = shared_params(group)?;
        let m = Modulus::new(&prm.p)?;
        let g = m.to_mont(&from_be(&prm.g)?);
        let comb = Comb::new(&m, &g, exponent_len(group, prm));
        Some(GroupMath { m, g, comb })
    }

    /// base^exp mod p (g^exp when `base` is None), big-endian, p's length. None if `base`
    /// is not p's length.
    fn modexp(&self, base: Option<&[u8]>, exp: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let mut r = match base {
            None => match self.comb.pow(&self.m, exp) {
                Some(r) => r,
                None => exp::pow(&self.m, &self.g, exp),
            },
            Some(b) => {
                let b = self.m.to_mont(&from_be(b)?);
                exp::pow(&self.m, &b, exp)
            }
        };
        let mut plain = self.m.to_plain(&r);
        let mut out = Zeroizing::new(vec![0u8; 8 * N]);
        to_be(&plain, &mut out);
        r.zeroize();
        plain.zeroize();
        Some(out)
    }
}

/// The shared tables of a group, built on first use.
fn cached<const N: usize, const W: usize>(
    cell: &'static OnceLock<Option<GroupMath<N, W>>>,
    group: DhGroup,
) -> Option<&'static GroupMath<N, W>> {
    cell.get_or_init(|| GroupMath::build(group)).as_ref()
}

static MODP768: OnceLock<Option<GroupMath<12, 24>>> = OnceLock::new();
static MODP1024: OnceLock<Option<GroupMath<16, 32>>> = OnceLock::new();
static MODP1536: OnceLock<Option<GroupMath<24, 48>>> = OnceLock::new();
static MODP2048: OnceLock<Option<GroupMath<32, 64>>> = OnceLock::new();
static MODP2048S256: OnceLock<Option<GroupMath<32, 64>>> = OnceLock::new();
static MODP3072: OnceLock<Option<GroupMath<48, 96>>> = OnceLock::new();
static MODP4096: OnceLock<Option<GroupMath<64, 128>>> = OnceLock::new();

/// base^exp mod p in `group` (g^exp for None), in time that depends only on the lengths of
/// `base` and `exp`. None for a curve group or a base that is not p's length.
fn modexp(group: DhGroup, base: Option<&[u8]>, exp: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    match group {
        DhGroup::Modp768 => cached(&MODP768, group)?.modexp(base, exp),
        DhGroup::Modp1024 => cached(&MODP1024, group)?.modexp(base, exp),
        DhGroup::Modp1536 => cached(&MODP1536, group)?.modexp(base, exp),
        DhGroup::Modp2048 => cached(&MODP2048, group)?.modexp(base, exp),
        DhGroup::Modp2048s256 => cached(&MODP2048S256, group)?.modexp(base, exp),
        DhGroup::Modp3072 => cached(&MODP3072, group)?.modexp(base, exp),
        DhGroup::Modp4096 => cached(&MODP4096, group)?.modexp(base, exp),
        DhGroup::Ecp256 | DhGroup::Ecp384 | DhGroup::Ecp521 | DhGroup::Curve25519 => None,
    }
}

/// The parameters of a MODP group, parsed once and shared by every key of the group (a key
/// used to carry its own copy of p and g).
fn shared_params(group: DhGroup) -> Option<&'static ModpParams> {
    static CELLS: [OnceLock<Option<ModpParams>>; 7] = [const { OnceLock::new() }; 7];
    let at = match group {
        DhGroup::Modp768 => 0,
        DhGroup::Modp1024 => 1,
        DhGroup::Modp1536 => 2,
        DhGroup::Modp2048 => 3,
        DhGroup::Modp2048s256 => 4,
        DhGroup::Modp3072 => 5,
        DhGroup::Modp4096 => 6,
        DhGroup::Ecp256 | DhGroup::Ecp384 | DhGroup::Ecp521 | DhGroup::Curve25519 => return None,
    };
    CELLS.get(at)?.get_or_init(|| params(group)).as_ref()
}

/// Bytes of the private exponent: p's length for the safe-prime groups (strongSwan's
/// default, ANSI X9.42 sizing), 32 for group 24 where x < q < 2^256.
fn exponent_len(group: DhGroup, prm: &ModpParams) -> usize {
    match &prm.q {
        Some(q) => q.len(),
        None => prm.p.len(),
    }
    .min(group.public_len())
}

/// Our half of a MODP exchange. The exponent is wiped on drop (Zeroizing).
pub(crate) struct ModpKey {
    group: DhGroup,
    prm: &'static ModpParams,
    x: Zeroizing<Vec<u8>>,
}

impl ModpKey {
    /// A fresh exponent with its top bit clear and the next one set: 2^(n-2) <= x < 2^(n-1).
    /// That is below p (safe primes) or below q (group 24, q > 2^255), never 0 or 1 even with
    /// a broken RNG, and keeps n-2 random bits, far above each group's strength.
    pub fn generate(group: DhGroup, rng: &mut dyn rand::RngCore) -> Option<ModpKey> {
        let prm = shared_params(group)?;
        // cargo-fuzz builds (`--cfg fuzzing`) only: a 64-bit exponent, so the handshake the IKE
        // engine harnesses replay for every input costs a fraction (src/fuzzing/engine.rs).
        let len = if cfg!(fuzzing) {
            8
        } else {
            exponent_len(group, prm)
        };
        let mut x = Zeroizing::new(vec![0u8; len]);
        rng.fill_bytes(&mut x);
        if let Some(top) = x.first_mut() {
            *top = (*top & 0x3f) | 0x40;
        }
        Some(ModpKey { group, prm, x })
    }

    /// A key with a given exponent (known-answer tests). It must be 1 < x and, for group 24,
    /// x < q; for the safe-prime groups it must be shorter than p or equal in length.
    pub fn from_exponent(group: DhGroup, x: &[u8]) -> Result<ModpKey, KeError> {
        let prm = shared_params(group).ok_or(KeError::BadPrivateValue { group })?;
        let len = exponent_len(group, prm);
        let digits = x.iter().skip_while(|&&b| b == 0).count();
        if digits > len || digits == 0 || (digits == 1 && x.last() == Some(&1)) {
            return Err(KeError::BadPrivateValue { group });
        }
        let mut padded = Zeroizing::new(vec![0u8; len]);
        padded[len - digits..].copy_from_slice(&x[x.len() - digits..]);
        if let Some(q) = &prm.q {
            if padded.as_slice() >= q.as_slice() {
                return Err(KeError::BadPrivateValue { group });
            }
        }
        Ok(ModpKey {
            group,
            prm,
            x: padded,
        })
    }

    /// g^x mod p, big-endian, padded to the prime's length. (Only a group without tables,
    /// which `generate` and `from_exponent` rule out, would give the all-zero value, which
    /// every peer refuses.)
    pub fn public_value(&self) -> Vec<u8> {
        match modexp(self.group, None, &self.x) {
            Some(v) => v.to_vec(),
            None => vec![0u8; self.prm.p.len()],
        }
    }

    /// Validates the peer's value (RFC 6989), then computes y^x mod p, zero-padded to the
    /// prime's length as RFC 7296 2.14 requires.
    pub fn shared_secret(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeError> {
        validate(self.group, self.prm, peer)?;
        modexp(self.group, Some(peer), &self.x)
            .ok_or(KeError::BadPrivateValue { group: self.group })
    }
}

/// RFC 6989 2.1: the right length and 1 < y < p-1; for a group with a prime-order subgroup
/// (group 24), also y^q = 1 mod p (RFC 6989 2.2), which rules out small-subgroup values.
fn validate(group: DhGroup, prm: &ModpParams, y: &[u8]) -> Result<(), KeError> {
    if y.len() != prm.p.len() {
        return Err(KeError::WrongLength {
            group,
            expected: prm.p.len(),
            got: y.len(),
        });
    }
    let mut p_minus_1 = prm.p.clone();
    if let Some(last) = p_minus_1.last_mut() {
        *last -= 1; // p is odd, so no borrow
    }
    let (leading, last) = y.split_at(y.len() - 1);
    if leading.iter().all(|&b| b == 0) && last[0] <= 1 {
        return Err(KeError::OutOfRange { group });
    }
    // Big-endian byte strings of equal length compare like the numbers they encode.
    if y >= p_minus_1.as_slice() {
        return Err(KeError::OutOfRange { group });
    }
    if let Some(q) = &prm.q {
        let r = modexp(group, Some(y), q).ok_or(KeError::NotInSubgroup { group })?;
        let (leading, last) = r.split_at(r.len() - 1);
        if !(leading.iter().all(|&b| b == 0) && last[0] == 1) {
            return Err(KeError::NotInSubgroup { group });
        }
    }
    Ok(())
}

/// The check of a received public value on its own (for callers that validate before they
/// have generated their own key).
pub(crate) fn validate_public(group: DhGroup, y: &[u8]) -> Result<(), KeError> {
    match shared_params(group) {
        Some(prm) => validate(group, prm, y),
        None => Err(KeError::BadPrivateValue { group }),
    }
}

/// The prime of a MODP group, big-endian (benchmarks, tests); None for the curves.
pub fn modp_prime(group: DhGroup) -> Option<Vec<u8>> {
    params(group).map(|p| p.p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigUint;
    use rand::{rngs::StdRng, RngCore, SeedableRng};

    fn modp_groups() -> impl Iterator<Item = DhGroup> {
        DhGroup::ALL.into_iter().filter(|g| params(*g).is_some())
    }

    fn big(b: &[u8]) -> BigUint {
        BigUint::from_bytes_be(b)
    }

    /// Miller-Rabin with fixed bases: a typo in a constant would make it composite.
    fn probably_prime(n: &BigUint) -> bool {
        let one = BigUint::from(1u32);
        let n1 = n - &one;
        let s = n1.trailing_zeros().unwrap_or(0);
        let d = &n1 >> s;
        [2u32, 3, 5, 7, 11, 13, 17, 19, 23, 29].iter().all(|&a| {
            let mut x = BigUint::from(a).modpow(&d, n);
            if x == one || x == n1 {
                return true;
            }
            for _ in 1..s {
                x = x.modpow(&BigUint::from(2u32), n);
                if x == n1 {
                    return true;
                }
            }
            false
        })
    }

    #[test]
    fn group_constants_are_what_the_rfcs_define() {
        for g in modp_groups() {
            let prm = params(g).unwrap();
            assert_eq!(prm.p.len(), g.public_len(), "{}", g.name());
            assert_eq!(prm.g.len(), g.public_len(), "{}", g.name());
            let p = big(&prm.p);
            assert_eq!(p.bits() as usize, 8 * g.public_len(), "{}", g.name());
            assert!(probably_prime(&p), "{} p", g.name());
            match &prm.q {
                // Safe prime: (p-1)/2 prime too, so g = 2 generates a large subgroup.
                None => assert!(probably_prime(&((&p - 1u32) >> 1)), "{}", g.name()),
                Some(q) => {
                    let q = big(q);
                    assert_eq!(q.bits(), 256);
                    assert!(probably_prime(&q));
                    assert_eq!((&p - 1u32) % &q, BigUint::from(0u32));
                    assert_eq!(big(&prm.g).modpow(&q, &p), BigUint::from(1u32));
                }
            }
        }
    }

    #[test]
    fn constant_time_modexp_matches_num_bigint_oracle() {
        let mut rng = StdRng::seed_from_u64(7);
        for g in modp_groups() {
            let prm = params(g).unwrap();
            let p = big(&prm.p);
            let a = ModpKey::generate(g, &mut rng).unwrap();
            let expect = big(&prm.g).modpow(&big(&a.x), &p);
            let public = a.public_value();
            assert_eq!(big(&public), expect, "{}", g.name());
            assert_eq!(public.len(), g.public_len());
        }
    }

    /// base^exp mod p from the constant-time code against num-bigint's `modpow`.
    fn check(g: DhGroup, base: Option<&[u8]>, exp: &[u8], what: &str) {
        let prm = params(g).unwrap();
        let p = big(&prm.p);
        let b = big(base.unwrap_or(&prm.g));
        let got = modexp(g, base, exp).unwrap();
        assert_eq!(got.len(), prm.p.len(), "{} {what}", g.name());
        let want = b.modpow(&big(exp), &p);
        assert_eq!(
            big(&got),
            want,
            "{} {what}: base {b:x} exp {:x}",
            g.name(),
            big(exp)
        );
    }

    #[test]
    fn random_bases_and_exponents_match_num_bigint() {
        let mut rng = StdRng::seed_from_u64(11);
        for g in modp_groups() {
            let prm = params(g).unwrap();
            let n = prm.p.len();
            let elen = exponent_len(g, &prm);
            let rounds = if n > 256 { 3 } else { 12 };
            for round in 0..rounds {
                let mut y = vec![0u8; n];
                rng.fill_bytes(&mut y);
                y[0] &= 0x7f; // below p (p's top bits are all ones)
                let mut x = vec![0u8; elen];
                rng.fill_bytes(&mut x);
                check(g, Some(&y), &x, &format!("y^x round {round}"));
                // Fixed base through the comb, and the same with a full-length exponent.
                check(g, None, &x, &format!("g^x round {round}"));
                let mut long = vec![0u8; n];
                rng.fill_bytes(&mut long);
                check(g, Some(&y), &long, &format!("y^long round {round}"));
            }
        }
    }

    #[test]
    fn edge_bases_and_exponents_match_num_bigint() {
        let mut rng = StdRng::seed_from_u64(12);
        for g in modp_groups() {
            let prm = params(g).unwrap();
            let n = prm.p.len();
            let elen = exponent_len(g, &prm);
            let p = big(&prm.p);
            let pad = |v: &BigUint| {
                let b = v.to_bytes_be();
                let mut out = vec![0u8; n - b.len()];
                out.extend_from_slice(&b);
                out
            };
            let bases = [
                pad(&BigUint::from(0u32)),
                pad(&BigUint::from(1u32)),
                pad(&BigUint::from(2u32)),
                pad(&(&p - 1u32)),
                pad(&(&p - 2u32)),
                prm.g.clone(),
            ];
            let mut random = vec![0u8; elen];
            rng.fill_bytes(&mut random);
            let mut leading_zero_windows = random.clone();
            leading_zero_windows[..elen / 2].fill(0);
            let mut ones = vec![0xffu8; elen];
            ones[0] = 0x7f;
            let mut top_only = vec![0u8; elen];
            top_only[0] = 0x40;
            let exps: [(&str, Vec<u8>); 7] = [
                ("zero", vec![0u8; elen]),
                ("one", vec![1u8]),
                ("two", [vec![0u8; elen - 1], vec![2]].concat()),
                ("random", random),
                ("leading zero windows", leading_zero_windows),
                ("all ones", ones),
                ("top bit only", top_only),
            ];
            for base in &bases {
                for (what, e) in &exps {
                    check(g, Some(base), e, what);
                }
            }
            for (what, e) in &exps {
                check(g, None, e, &format!("g^x {what}"));
            }
            // Longer than the comb covers: the fixed-window fallback.
            let mut long = vec![0u8; elen + 8];
            rng.fill_bytes(&mut long);
            check(g, None, &long, "g^x past the comb");
            // p-1 as exponent (Fermat: base^(p-1) = 1) and the order q for group 24.
            check(g, Some(&bases[2]), &pad(&(&p - 1u32)), "2^(p-1)");
            if let Some(q) = &prm.q {
                check(g, None, q, "g^q");
            }
        }
    }

    #[test]
    fn montgomery_rejects_what_it_cannot_handle() {
        assert!(Modulus::<2, 4>::new(&[0xff; 16]).is_some());
        assert!(Modulus::<2, 4>::new(&[0xfe; 16]).is_none(), "even");
        assert!(Modulus::<2, 4>::new(&[0x7f; 16]).is_none(), "top bit clear");
        assert!(Modulus::<2, 4>::new(&[0xff; 15]).is_none(), "length");
        assert!(modexp(DhGroup::Modp1024, Some(&[2u8; 127]), &[1]).is_none());
        assert!(modexp(DhGroup::Curve25519, None, &[1]).is_none());
    }

    #[test]
    fn both_sides_agree_and_secrets_are_p_long() {
        let mut rng = StdRng::seed_from_u64(9);
        for g in modp_groups() {
            let a = ModpKey::generate(g, &mut rng).unwrap();
            let b = ModpKey::generate(g, &mut rng).unwrap();
            let s1 = a.shared_secret(&b.public_value()).unwrap();
            let s2 = b.shared_secret(&a.public_value()).unwrap();
            assert_eq!(*s1, *s2, "{}", g.name());
            assert_eq!(s1.len(), g.public_len());
        }
    }

    #[test]
    fn rfc6989_range_checks() {
        let mut rng = StdRng::seed_from_u64(1);
        for g in modp_groups() {
            let a = ModpKey::generate(g, &mut rng).unwrap();
            let n = g.public_len();
            let p = params(g).unwrap().p;
            let mut v = vec![0u8; n];
            assert_eq!(a.shared_secret(&v), Err(KeError::OutOfRange { group: g }));
            v[n - 1] = 1;
            assert_eq!(a.shared_secret(&v), Err(KeError::OutOfRange { group: g }));
            let mut pm1 = p.clone();
            pm1[n - 1] -= 1;
            assert_eq!(a.shared_secret(&pm1), Err(KeError::OutOfRange { group: g }));
            assert_eq!(a.shared_secret(&p), Err(KeError::OutOfRange { group: g }));
            assert!(a.shared_secret(&vec![0xff; n]).is_err());
            assert_eq!(
                a.shared_secret(&v[1..]),
                Err(KeError::WrongLength {
                    group: g,
                    expected: n,
                    got: n - 1
                })
            );
        }
    }

    #[test]
    fn broken_rng_still_gives_a_usable_exponent() {
        let mut zeros = rand::rngs::mock::StepRng::new(0, 0);
        for g in modp_groups() {
            let a = ModpKey::generate(g, &mut zeros).unwrap();
            let b = ModpKey::generate(g, &mut StdRng::seed_from_u64(3)).unwrap();
            assert!(b.shared_secret(&a.public_value()).is_ok(), "{}", g.name());
        }
    }

    #[test]
    fn private_exponent_bounds() {
        assert!(ModpKey::from_exponent(DhGroup::Modp2048s256, &[1]).is_err());
        assert!(ModpKey::from_exponent(DhGroup::Modp2048s256, &[0, 0]).is_err());
        let q = params(DhGroup::Modp2048s256).unwrap().q.unwrap();
        assert!(ModpKey::from_exponent(DhGroup::Modp2048s256, &q).is_err());
        assert!(ModpKey::from_exponent(DhGroup::Modp2048s256, &[0x11; 33]).is_err());
        assert!(ModpKey::from_exponent(DhGroup::Modp1024, &[0x11; 129]).is_err());
        assert!(ModpKey::from_exponent(DhGroup::Modp1024, &[0x11; 128]).is_ok());
        assert!(ModpKey::from_exponent(DhGroup::Ecp256, &[0x11; 32]).is_err());
    }
}
