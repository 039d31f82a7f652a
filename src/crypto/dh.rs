//! MODP Diffie-Hellman (RFC 2409 group 2, RFC 3526 group 14) with constant-time
//! exponentiation: crypto-bigint's Montgomery form runs the same sequence of operations for
//! every exponent, unlike num-bigint's `modpow` (kept as the oracle in the tests).

use super::{CryptoError, DhGroup};
use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::Uint;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// RFC 2409 6.2, the 1024-bit MODP group (group 2).
const MODP1024_P: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF";
/// RFC 3526 3, the 2048-bit MODP group (group 14).
const MODP2048_P: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF";

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
        .collect()
}

/// The prime of `group`, big-endian, exactly `public_len()` bytes.
pub(crate) fn prime(group: DhGroup) -> Vec<u8> {
    hex_bytes(match group {
        DhGroup::Modp1024 => MODP1024_P,
        DhGroup::Modp2048 => MODP2048_P,
    })
}

/// Big-endian bytes of `x`, in a buffer sized up front: growing a Vec while collecting would
/// leave copies of a secret behind in freed memory.
fn to_be<const L: usize>(x: &Uint<L>) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(Uint::<L>::BYTES));
    for w in x.as_words().iter().rev() {
        out.extend_from_slice(&w.to_be_bytes());
    }
    out
}

/// base^exp mod p in constant time; all three are big-endian and exactly L*8 bytes long.
fn modexp<const L: usize>(base: &[u8], exp: &[u8], p: &[u8]) -> Zeroizing<Vec<u8>> {
    let params = DynResidueParams::new(&Uint::<L>::from_be_slice(p));
    let mut e = Uint::<L>::from_be_slice(exp);
    let b = DynResidue::new(&Uint::<L>::from_be_slice(base), params);
    // Fuzz builds only: exponents stay below 2^64 (see `DhPrivate::generate`).
    let bits = if cfg!(fuzzing) { 64 } else { Uint::<L>::BITS };
    // The result in Montgomery form is as secret as the value it stands for.
    let mut y = b.pow_bounded_exp(&e, bits);
    let mut r = y.retrieve();
    let out = to_be(&r);
    e.zeroize();
    y.zeroize();
    r.zeroize();
    out
}

fn modexp_group(group: DhGroup, base: &[u8], exp: &[u8]) -> Zeroizing<Vec<u8>> {
    let p = prime(group);
    match group {
        DhGroup::Modp1024 => modexp::<16>(base, exp, &p),
        DhGroup::Modp2048 => modexp::<32>(base, exp, &p),
    }
}

/// Our half of a Diffie-Hellman exchange. The private exponent is wiped on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DhPrivate {
    #[zeroize(skip)]
    group: DhGroup,
    x: Vec<u8>,
}

impl std::fmt::Debug for DhPrivate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DhPrivate({}, <redacted>)", self.group.name())
    }
}

impl DhPrivate {
    /// A fresh private exponent below 2^(bits-1), hence below p.
    pub fn generate(group: DhGroup, rng: &mut dyn rand::RngCore) -> DhPrivate {
        let mut x = vec![0u8; group.public_len()];
        rng.fill_bytes(&mut x);
        x[0] &= 0x7f;
        if cfg!(fuzzing) {
            // cargo-fuzz builds (`--cfg fuzzing`) only: a 64-bit exponent, so the handshake the
            // IKE engine harnesses replay for every input costs ~1/15 (src/fuzzing/engine.rs).
            let n = x.len().saturating_sub(8);
            x[..n].fill(0);
        }
        DhPrivate { group, x }
    }

    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// g^x mod p (g = 2), big-endian, padded to the prime's length.
    pub fn public_value(&self) -> Vec<u8> {
        let mut g = vec![0u8; self.group.public_len()];
        if let Some(last) = g.last_mut() {
            *last = 2;
        }
        modexp_group(self.group, &g, &self.x).to_vec()
    }

    /// Validates the peer's value (RFC 6989 2.1: right length and 1 < y < p-1), then computes
    /// y^x mod p, zero-padded to the prime's length as RFC 7296 2.14 requires.
    pub fn shared_secret(&self, peer_public: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        validate_public(self.group, peer_public)?;
        Ok(modexp_group(self.group, peer_public, &self.x))
    }
}

/// RFC 6989 2.1 check of a received MODP public value.
pub(crate) fn validate_public(group: DhGroup, y: &[u8]) -> Result<(), CryptoError> {
    if y.len() != group.public_len() {
        return Err(CryptoError::BadPublicValue(
            "length does not match the group",
        ));
    }
    let mut p_minus_1 = prime(group);
    if let Some(last) = p_minus_1.last_mut() {
        *last -= 1; // p is odd, so no borrow
    }
    let (leading, last) = y.split_at(y.len() - 1);
    if leading.iter().all(|&b| b == 0) && last[0] <= 1 {
        return Err(CryptoError::BadPublicValue("value is 0 or 1"));
    }
    // Big-endian byte strings of equal length compare like the numbers they encode.
    if y >= p_minus_1.as_slice() {
        return Err(CryptoError::BadPublicValue("value is p-1 or larger"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigUint;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn primes_pass_fermat() {
        // A typo in the constants would almost surely make them composite.
        for g in DhGroup::ALL {
            let p = BigUint::from_bytes_be(&prime(g));
            assert_eq!(prime(g).len(), g.public_len());
            let two = BigUint::from(2u32);
            assert_eq!(
                two.modpow(&(&p - 1u32), &p),
                BigUint::from(1u32),
                "{}",
                g.name()
            );
        }
    }

    #[test]
    fn constant_time_modexp_matches_num_bigint_oracle() {
        let mut rng = StdRng::seed_from_u64(7);
        for g in DhGroup::ALL {
            let p = BigUint::from_bytes_be(&prime(g));
            for _ in 0..3 {
                let a = DhPrivate::generate(g, &mut rng);
                let x = BigUint::from_bytes_be(&a.x);
                let expect = BigUint::from(2u32).modpow(&x, &p);
                assert_eq!(BigUint::from_bytes_be(&a.public_value()), expect);
                assert_eq!(a.public_value().len(), g.public_len());
            }
        }
    }

    #[test]
    fn both_sides_agree() {
        let mut rng = StdRng::seed_from_u64(9);
        for g in DhGroup::ALL {
            let a = DhPrivate::generate(g, &mut rng);
            let b = DhPrivate::generate(g, &mut rng);
            let s1 = a.shared_secret(&b.public_value()).unwrap();
            let s2 = b.shared_secret(&a.public_value()).unwrap();
            assert_eq!(*s1, *s2);
            assert_eq!(s1.len(), g.public_len());
        }
    }

    #[test]
    fn rfc6989_rejects_degenerate_values() {
        let mut rng = StdRng::seed_from_u64(1);
        let a = DhPrivate::generate(DhGroup::Modp1024, &mut rng);
        let p = prime(DhGroup::Modp1024);
        let mut zero = vec![0u8; 128];
        assert!(a.shared_secret(&zero).is_err());
        zero[127] = 1;
        assert!(a.shared_secret(&zero).is_err());
        let mut pm1 = p.clone();
        pm1[127] -= 1;
        assert!(a.shared_secret(&pm1).is_err());
        assert!(a.shared_secret(&p).is_err());
        assert!(a.shared_secret(&[0xff; 128]).is_err());
        assert!(a.shared_secret(&[2u8; 64]).is_err());
        zero[127] = 2;
        assert!(a.shared_secret(&zero).is_ok());
    }
}
