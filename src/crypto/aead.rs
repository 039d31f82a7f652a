//! AEAD ciphers for IKE's SK payload and for ESP, one construction for both: AES-GCM with
//! 8-, 12- and 16-byte ICVs (RFC 4106 for ESP, RFC 5282 for IKE) and ChaCha20-Poly1305
//! (RFC 7634 for both). Each keymat is the key followed by a 4-byte salt; the 12-byte nonce
//! is salt || the 8-byte IV carried in the packet. The AAD is the caller's: RFC 4106 5 for
//! ESP (SPI | sequence number), RFC 5282 5.1 for IKE (header .. SK payload header).

use super::gcm_short::ShortTagGcm;
use super::{CryptoError, EncrAlg};
use aes::cipher::KeyInit;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm, Nonce};
use zeroize::Zeroize;

/// Keyed AEAD: nonce = 4-byte salt (from keymat) || 8-byte IV.
pub trait Aead: Send + Sync {
    /// Encrypts `buf` in place and returns the tag. Only the first `icv_len()` bytes are
    /// the ICV (GCM truncates its tag, NIST SP 800-38D 5.2.1.2); the rest is zero.
    fn seal(&self, iv: &[u8; 8], aad: &[u8], buf: &mut [u8]) -> [u8; 16];
    /// Decrypts in place if the tag verifies (constant time); `tag` must be exactly
    /// `icv_len()` bytes. false leaves garbage in `buf`.
    fn open(&self, iv: &[u8; 8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool;
    /// ICV bytes on the wire: 8, 12 or 16.
    fn icv_len(&self) -> usize {
        16
    }
    /// `seal`, writing exactly the ICV into `icv` (which must be `icv_len()` bytes; if not,
    /// `buf` is wiped and false returned, so no plaintext leaves by mistake).
    fn seal_icv(&self, iv: &[u8; 8], aad: &[u8], buf: &mut [u8], icv: &mut [u8]) -> bool {
        if icv.len() != self.icv_len() {
            buf.zeroize();
            return false;
        }
        let tag = self.seal(iv, aad, buf);
        icv.copy_from_slice(&tag[..icv.len()]);
        true
    }
}

/// The 12-byte nonce of RFC 4106 4 / RFC 7634 2: salt || IV.
pub(crate) fn nonce(salt: &[u8; 4], iv: &[u8; 8]) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(salt);
    n[4..].copy_from_slice(iv);
    n
}

/// A RustCrypto AEAD with a 16-byte tag (aes-gcm's AES-GCM-16, ChaCha20-Poly1305).
struct Full16<A> {
    /// In a `WipedBox`: the aes crate's backend union is wiped whole (see wiped_box.rs).
    aead: super::WipedBox<A>,
    salt: [u8; 4],
}

impl<A> Drop for Full16<A> {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

impl<A: AeadInPlace + Send + Sync> Aead for Full16<A> {
    fn seal(&self, iv: &[u8; 8], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        let n = nonce(&self.salt, iv);
        match self
            .aead
            .encrypt_in_place_detached(Nonce::from_slice(&n), aad, buf)
        {
            Ok(tag) => {
                let mut out = [0u8; 16];
                out.copy_from_slice(&tag[..16]);
                out
            }
            // Only reachable for inputs beyond the cipher's limit; never emit plaintext.
            Err(_) => {
                buf.zeroize();
                [0u8; 16]
            }
        }
    }

    fn open(&self, iv: &[u8; 8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        if tag.len() != 16 {
            return false;
        }
        let n = nonce(&self.salt, iv);
        self.aead
            .decrypt_in_place_detached(Nonce::from_slice(&n), aad, buf, tag.into())
            .is_ok()
    }
}

type Aes192Gcm = AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>;

/// A keyed AEAD for `alg` (any AES-GCM or ChaCha20-Poly1305); `keymat` is the key followed
/// by the 4-byte salt, `alg.keymat_len()` bytes, exactly as prf+ hands it out for IKE
/// (SK_ei/SK_er, RFC 5282 7.1) and for ESP (KEYMAT, RFC 4106 8.1, RFC 7634 2).
pub fn new_aead(alg: EncrAlg, keymat: &[u8]) -> Result<Box<dyn Aead>, CryptoError> {
    if !alg.is_aead() {
        return Err(CryptoError::NotAead(alg.name()));
    }
    if keymat.len() != alg.keymat_len() {
        return Err(CryptoError::BadKeyLength {
            alg: alg.name(),
            expected: alg.keymat_len(),
            got: keymat.len(),
        });
    }
    let (key, salt_bytes) = keymat.split_at(alg.key_len());
    let mut salt = [0u8; 4];
    salt.copy_from_slice(salt_bytes);
    let bad = |_| CryptoError::BadKeyLength {
        alg: alg.name(),
        expected: alg.keymat_len(),
        got: keymat.len(),
    };
    use EncrAlg::*;
    Ok(match alg {
        AesGcm16_128 => Box::new(Full16 {
            aead: super::WipedBox::new(Aes128Gcm::new_from_slice(key).map_err(bad)?),
            salt,
        }),
        AesGcm16_192 => Box::new(Full16 {
            aead: super::WipedBox::new(Aes192Gcm::new_from_slice(key).map_err(bad)?),
            salt,
        }),
        AesGcm16_256 => Box::new(Full16 {
            aead: super::WipedBox::new(Aes256Gcm::new_from_slice(key).map_err(bad)?),
            salt,
        }),
        ChaCha20Poly1305 => Box::new(Full16 {
            aead: super::WipedBox::new(
                chacha20poly1305::ChaCha20Poly1305::new_from_slice(key).map_err(bad)?,
            ),
            salt,
        }),
        AesGcm8_128 | AesGcm12_128 => {
            Box::new(ShortTagGcm::<aes::Aes128>::new(key, salt, alg.icv_len())?)
        }
        AesGcm8_192 | AesGcm12_192 => {
            Box::new(ShortTagGcm::<aes::Aes192>::new(key, salt, alg.icv_len())?)
        }
        AesGcm8_256 | AesGcm12_256 => {
            Box::new(ShortTagGcm::<aes::Aes256>::new(key, salt, alg.icv_len())?)
        }
        AesCbc128 | AesCbc192 | AesCbc256 | TripleDesCbc | Null => {
            return Err(CryptoError::NotAead(alg.name()))
        }
    })
}
