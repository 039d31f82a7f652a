//! Integrity transforms (HMAC with truncated ICVs: RFC 2403, 2404, 4868; AES-XCBC-96: RFC
//! 3566) and PRFs (HMAC, RFC 4868; AES-XCBC-PRF-128, RFC 4434), with prf+ (RFC 7296 2.13).

use super::xcbc::{self, Xcbc, XcbcMac96};
use super::{CryptoError, IntegAlg, PrfAlg};
use hmac::{Hmac, Mac as _};
use md5::Md5;
use sha1::Sha1;
use sha2::{Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Keyed truncated MAC (HMAC-MD5-96, HMAC-SHA1-96, HMAC-SHA2-256/384/512, AES-XCBC-96).
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
// SAFETY: hmac 0.12 / digest 0.10 HMAC states over MD5, SHA-1 and SHA-2 are plain arrays
// and integers (chaining values, block counters, a block buffer with a u8 position) and
// PhantomData, with no Drop impl; all-zero is a valid (empty-buffer) state. hmac's "reset"
// feature adds one more such core state (the ipad digest), flat like the others.
unsafe impl FlatHmacState for Hmac<Sha1> {}
// SAFETY: as above.
unsafe impl FlatHmacState for Hmac<Sha256> {}
// SAFETY: as above (SHA-384 is SHA-512's core with a 48-byte output; u64 state, u128 count).
unsafe impl FlatHmacState for Hmac<Sha384> {}
// SAFETY: as above.
unsafe impl FlatHmacState for Hmac<Sha512> {}
// SAFETY: as above (MD5's core is [u32; 4] plus a u64 block count).
unsafe impl FlatHmacState for Hmac<Md5> {}

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
hmac_impl!(Sha384);
hmac_impl!(Sha512);
hmac_impl!(Md5);

fn hmac_mac<M>(key: &[u8], icv_len: usize) -> Box<dyn Mac>
where
    M: FlatHmacState + hmac::digest::KeyInit + Send + Sync + 'static,
    HmacMac<M>: Mac,
{
    // HMAC accepts any key length, so new_from_slice cannot fail.
    let keyed =
        <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    Box::new(HmacMac { keyed, icv_len })
}

/// A keyed integrity transform. The key must be exactly `alg.key_len()` bytes.
pub fn new_mac(alg: IntegAlg, key: &[u8]) -> Result<Box<dyn Mac>, CryptoError> {
    if key.len() != alg.key_len() {
        return Err(CryptoError::BadKeyLength {
            alg: alg.name(),
            expected: alg.key_len(),
            got: key.len(),
        });
    }
    let icv = alg.icv_len();
    Ok(match alg {
        IntegAlg::HmacMd5_96 => hmac_mac::<Hmac<Md5>>(key, icv),
        IntegAlg::HmacSha1_96 => hmac_mac::<Hmac<Sha1>>(key, icv),
        IntegAlg::HmacSha256_128 => hmac_mac::<Hmac<Sha256>>(key, icv),
        IntegAlg::HmacSha384_192 => hmac_mac::<Hmac<Sha384>>(key, icv),
        IntegAlg::HmacSha512_256 => hmac_mac::<Hmac<Sha512>>(key, icv),
        IntegAlg::AesXcbc96 => {
            let mut k = [0u8; 16];
            k.copy_from_slice(key);
            let mac = Box::new(XcbcMac96(Xcbc::new(&k)));
            zeroize::Zeroize::zeroize(&mut k);
            mac
        }
    })
}

/// An HMAC state wiped when dropped. prf keys HMAC with the PSK (AUTH) and SKEYSEED / SK_d
/// (prf+), and the keyed state (the pads absorbed) is as good as the key. The hmac crate has
/// no zeroize feature, so the state is finalized in place (`finalize_reset`, hmac's "reset"
/// feature) and then overwritten here. It lives on the heap so that one copy exists that we
/// can wipe (a by-value `finalize` would move it into frames we cannot reach), and so the
/// allocator test in tests/secrets_zeroize.rs can see the freed block.
struct WipedHmac<M: FlatHmacState>(M);

impl<M: FlatHmacState> Drop for WipedHmac<M> {
    fn drop(&mut self) {
        // SAFETY: `self.0` is a valid, exclusively borrowed M; FlatHmacState guarantees M is
        // flat, has no Drop glue and accepts the all-zero pattern left behind (the value is
        // never used again: this is its drop).
        unsafe { zeroize::zeroize_flat_type(&mut self.0 as *mut M) }
    }
}

/// prf(key, data...) with the full output length.
pub fn prf(alg: PrfAlg, key: &[u8], data: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    fn run<M>(key: &[u8], data: &[&[u8]]) -> Zeroizing<Vec<u8>>
    where
        M: FlatHmacState + hmac::Mac + hmac::digest::KeyInit + hmac::digest::FixedOutputReset,
    {
        let keyed = <M as hmac::Mac>::new_from_slice(key).expect("HMAC takes any key length");
        let mut m = Box::new(WipedHmac(keyed));
        data.iter().for_each(|d| hmac::Mac::update(&mut m.0, d));
        Zeroizing::new(hmac::Mac::finalize_reset(&mut m.0).into_bytes().to_vec())
    }
    match alg {
        PrfAlg::HmacMd5 => run::<Hmac<Md5>>(key, data),
        PrfAlg::HmacSha1 => run::<Hmac<Sha1>>(key, data),
        PrfAlg::HmacSha256 => run::<Hmac<Sha256>>(key, data),
        PrfAlg::HmacSha384 => run::<Hmac<Sha384>>(key, data),
        PrfAlg::HmacSha512 => run::<Hmac<Sha512>>(key, data),
        PrfAlg::AesXcbc128 => xcbc::prf(key, data),
    }
}

/// The key of SKEYSEED = prf(Ni | Nr, g^ir) (RFC 7296 2.14): Ni | Nr, except that
/// AES-XCBC-PRF-128 takes only the first 64 bits of each nonce.
pub fn skeyseed_key(alg: PrfAlg, ni: &[u8], nr: &[u8]) -> Zeroizing<Vec<u8>> {
    let (ni, nr) = if alg.uses_truncated_nonces() {
        (ni.get(..8).unwrap_or(ni), nr.get(..8).unwrap_or(nr))
    } else {
        (ni, nr)
    };
    let mut key = Zeroizing::new(Vec::with_capacity(ni.len() + nr.len()));
    key.extend_from_slice(ni);
    key.extend_from_slice(nr);
    key
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
