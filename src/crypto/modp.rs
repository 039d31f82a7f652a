//! MODP Diffie-Hellman (groups 1, 2, 5, 14, 15, 16 and 24) with constant-time
//! exponentiation: crypto-bigint's Montgomery form runs the same sequence of operations for
//! every exponent of a given bound, unlike num-bigint's `modpow` (kept as the oracle in the
//! tests). Received values get the RFC 6989 checks.

use super::modp_params::{params, ModpParams};
use super::{DhGroup, KeError};
use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{Uint, U1024, U1536, U2048, U3072, U4096, U768};
use zeroize::{Zeroize, Zeroizing};

/// Big-endian bytes of `x`, in a buffer sized up front: growing a Vec while collecting would
/// leave copies of a secret behind in freed memory.
fn to_be<const L: usize>(x: &Uint<L>) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(Uint::<L>::BYTES));
    for w in x.as_words().iter().rev() {
        out.extend_from_slice(&w.to_be_bytes());
    }
    out
}

/// base^exp mod p in time that depends only on `exp_bits`, not on the exponent's value.
/// `base` and `p` are exactly Uint<L>::BYTES long; `exp` is at most that long.
fn modexp<const L: usize>(
    base: &[u8],
    exp: &[u8],
    exp_bits: usize,
    p: &[u8],
) -> Zeroizing<Vec<u8>> {
    let params = DynResidueParams::new(&Uint::<L>::from_be_slice(p));
    let mut padded = Zeroizing::new(vec![0u8; Uint::<L>::BYTES]);
    let at = padded.len().saturating_sub(exp.len());
    if let Some(dst) = padded.get_mut(at..) {
        dst.copy_from_slice(
            exp.get(exp.len().saturating_sub(Uint::<L>::BYTES)..)
                .unwrap_or(&[]),
        );
    }
    let mut e = Uint::<L>::from_be_slice(&padded);
    let b = DynResidue::new(&Uint::<L>::from_be_slice(base), params);
    // The result in Montgomery form is as secret as the value it stands for.
    let mut y = b.pow_bounded_exp(&e, exp_bits);
    let mut r = y.retrieve();
    let out = to_be(&r);
    e.zeroize();
    y.zeroize();
    r.zeroize();
    out
}

/// Dispatches on p's size; the limb counts come from crypto-bigint's own aliases, so this is
/// right on 32- and 64-bit targets alike.
fn modexp_sized(base: &[u8], exp: &[u8], exp_bits: usize, p: &[u8]) -> Zeroizing<Vec<u8>> {
    match p.len() {
        96 => modexp::<{ U768::LIMBS }>(base, exp, exp_bits, p),
        128 => modexp::<{ U1024::LIMBS }>(base, exp, exp_bits, p),
        192 => modexp::<{ U1536::LIMBS }>(base, exp, exp_bits, p),
        256 => modexp::<{ U2048::LIMBS }>(base, exp, exp_bits, p),
        384 => modexp::<{ U3072::LIMBS }>(base, exp, exp_bits, p),
        _ => modexp::<{ U4096::LIMBS }>(base, exp, exp_bits, p),
    }
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
    prm: ModpParams,
    x: Zeroizing<Vec<u8>>,
}

impl ModpKey {
    /// A fresh exponent with its top bit clear and the next one set: 2^(n-2) <= x < 2^(n-1).
    /// That is below p (safe primes) or below q (group 24, q > 2^255), never 0 or 1 even with
    /// a broken RNG, and keeps n-2 random bits, far above each group's strength.
    pub fn generate(group: DhGroup, rng: &mut dyn rand::RngCore) -> Option<ModpKey> {
        let prm = params(group)?;
        // cargo-fuzz builds (`--cfg fuzzing`) only: a 64-bit exponent, so the handshake the IKE
        // engine harnesses replay for every input costs a fraction (src/fuzzing/engine.rs).
        let len = if cfg!(fuzzing) {
            8
        } else {
            exponent_len(group, &prm)
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
        let prm = params(group).ok_or(KeError::BadPrivateValue { group })?;
        let len = exponent_len(group, &prm);
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

    fn exp_bits(&self) -> usize {
        self.x.len() * 8
    }

    /// g^x mod p, big-endian, padded to the prime's length.
    pub fn public_value(&self) -> Vec<u8> {
        modexp_sized(&self.prm.g, &self.x, self.exp_bits(), &self.prm.p).to_vec()
    }

    /// Validates the peer's value (RFC 6989), then computes y^x mod p, zero-padded to the
    /// prime's length as RFC 7296 2.14 requires.
    pub fn shared_secret(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeError> {
        validate(self.group, &self.prm, peer)?;
        Ok(modexp_sized(peer, &self.x, self.exp_bits(), &self.prm.p))
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
        let r = modexp_sized(y, q, q.len() * 8, &prm.p);
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
    match params(group) {
        Some(prm) => validate(group, &prm, y),
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
    use rand::{rngs::StdRng, SeedableRng};

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
