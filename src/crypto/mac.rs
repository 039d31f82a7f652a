//! HMAC-based integrity (truncated ICVs) and PRFs, including prf+ (RFC 7296 2.13).

use super::{CryptoError, IntegAlg, PrfAlg};
use hmac::{Hmac, Mac as _};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Keyed truncated MAC (HMAC-SHA1-96, HMAC-SHA256-128).
pub trait Mac: Send + Sync {
    fn icv_len(&self) -> usize;
    /// Writes the first `icv_len()` bytes of the MAC over the concatenated `parts` into `out`.
    fn sign(&self, parts: &[&[u8]], out: &mut [u8]);
    /// Constant-time comparison of the truncated MAC with `icv`.
    fn verify(&self, parts: &[&[u8]], icv: &[u8]) -> bool;
}

/// Holds the keyed HMAC state (inner/outer pads already absorbed), cloned per packet so the
/// key is hashed once per SA, not once per packet.
struct HmacMac<M: FlatHmacState> {
    keyed: M,
    icv_len: usize,
}

/// HMAC states that may be wiped with `zeroize_flat_type`.
///
/// # Safety
/// Implementors must be flat: no pointers, references or heap data, no Drop glue, and the
/// all-zero bit pattern must be a valid value (what `zeroize::zeroize_flat_type` requires).
unsafe trait FlatHmacState: Clone {}
// SAFETY: hmac 0.12 / digest 0.10 HMAC states over SHA-1 and SHA-256 are plain arrays and
// integers (chaining values, block counters, a block buffer with a u8 position) and
// PhantomData, with no Drop impl; all-zero is a valid (empty-buffer) state.
unsafe impl FlatHmacState for Hmac<Sha1> {}
// SAFETY: as above.
unsafe impl FlatHmacState for Hmac<Sha256> {}

impl<M: FlatHmacState> Drop for HmacMac<M> {
    fn drop(&mut self) {
        // The absorbed pads are key-equivalent, so they are wiped.
        // SAFETY: `keyed` is a valid, exclusively borrowed M, and FlatHmacState guarantees
        // M is flat, has no Drop glue and accepts the all-zero pattern left behind.
        unsafe { zeroize::zeroize_flat_type(&mut self.keyed as *mut M) }
    }
}

macro_rules! hmac_impl {
    ($digest:ty) => {
        impl Mac for HmacMac<Hmac<$digest>> {
            fn icv_len(&self) -> usize {
                self.icv_len
            }

            fn sign(&self, parts: &[&[u8]], out: &mut [u8]) {
                let mut m = self.keyed.clone();
                parts.iter().for_each(|p| m.update(p));
                let full = m.finalize().into_bytes();
                let n = self.icv_len.min(out.len());
                out[..n].copy_from_slice(&full[..n]);
            }

            fn verify(&self, parts: &[&[u8]], icv: &[u8]) -> bool {
                let mut m = self.keyed.clone();
                parts.iter().for_each(|p| m.update(p));
                let full = m.finalize().into_bytes();
                icv.len() == self.icv_len && bool::from(full[..self.icv_len].ct_eq(icv))
            }
        }
    };
}
hmac_impl!(Sha1);
hmac_impl!(Sha256);

/// A keyed integrity transform. The key must be exactly `alg.key_len()` bytes.
pub fn new_mac(alg: IntegAlg, key: &[u8]) -> Result<Box<dyn Mac>, CryptoError> {
    if key.len() != alg.key_len() {
        return Err(CryptoError::BadKeyLength {
            alg: alg.name(),
            expected: alg.key_len(),
            got: key.len(),
        });
    }
    // HMAC accepts any key length, so new_from_slice cannot fail here.
    Ok(match alg {
        IntegAlg::HmacSha1_96 => Box::new(HmacMac {
            keyed: <Hmac<Sha1>>::new_from_slice(key).expect("HMAC takes any key length"),
            icv_len: alg.icv_len(),
        }),
        IntegAlg::HmacSha256_128 => Box::new(HmacMac {
            keyed: <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes any key length"),
            icv_len: alg.icv_len(),
        }),
    })
}

/// prf(key, data...) with the full output length.
pub fn prf(alg: PrfAlg, key: &[u8], data: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    fn run<M: hmac::Mac + hmac::digest::KeyInit>(key: &[u8], data: &[&[u8]]) -> Zeroizing<Vec<u8>> {
        let mut m = <M as hmac::Mac>::new_from_slice(key).expect("HMAC takes any key length");
        data.iter().for_each(|d| m.update(d));
        Zeroizing::new(m.finalize().into_bytes().to_vec())
    }
    match alg {
        PrfAlg::HmacSha1 => run::<Hmac<Sha1>>(key, data),
        PrfAlg::HmacSha256 => run::<Hmac<Sha256>>(key, data),
    }
}

/// prf+ (RFC 7296 2.13): T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n), truncated to `len`.
/// At most 255 iterations are defined; asking for more yields only what 255 give.
pub fn prf_plus(alg: PrfAlg, key: &[u8], seed: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(len + alg.out_len()));
    let mut t: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
    let mut n: u8 = 1;
    while out.len() < len {
        t = prf(alg, key, &[&t, seed, &[n]]);
        out.extend_from_slice(&t);
        if n == 255 {
            break;
        }
        n += 1;
    }
    out.truncate(len);
    out
}

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
    fn hmac_sha1_rfc2202_case2() {
        let out = prf(
            PrfAlg::HmacSha1,
            b"Jefe",
            &[b"what do ya want ", b"for nothing?"],
        );
        assert_eq!(*out, hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"));
    }

    #[test]
    fn hmac_sha256_rfc4231_case2() {
        let out = prf(
            PrfAlg::HmacSha256,
            b"Jefe",
            &[b"what do ya want for nothing?"],
        );
        assert_eq!(
            *out,
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    #[test]
    fn truncated_mac_sign_verify() {
        let key = [0x0bu8; 20];
        let m = new_mac(IntegAlg::HmacSha1_96, &key).unwrap();
        let mut icv = [0u8; 12];
        m.sign(&[b"Hi ", b"There"], &mut icv);
        // RFC 2202 case 1 truncated to 96 bits
        assert_eq!(icv.to_vec(), hex("b617318655057264e28bc0b6"));
        assert!(m.verify(&[b"Hi There"], &icv));
        let mut bad = icv;
        bad[11] ^= 0x80;
        assert!(!m.verify(&[b"Hi There"], &bad));
        assert!(!m.verify(&[b"Hi There"], &icv[..11]));
        assert!(new_mac(IntegAlg::HmacSha1_96, &key[..19]).is_err());
    }

    #[test]
    fn prf_plus_matches_definition() {
        let key = b"key";
        let seed = b"seed";
        let out = prf_plus(PrfAlg::HmacSha1, key, seed, 50);
        let t1 = prf(PrfAlg::HmacSha1, key, &[seed, &[1]]);
        let t2 = prf(PrfAlg::HmacSha1, key, &[&t1, seed, &[2]]);
        let t3 = prf(PrfAlg::HmacSha1, key, &[&t2, seed, &[3]]);
        let mut expect = t1.to_vec();
        expect.extend_from_slice(&t2);
        expect.extend_from_slice(&t3[..10]);
        assert_eq!(*out, expect);
    }
}
