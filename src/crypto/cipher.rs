//! Block ciphers in CBC mode (IKE SK payloads, ESP) and AES-GCM (RFC 4106 ESP, RFC 5282 IKE).

use super::{CryptoError, EncrAlg};
use aes::cipher::{
    block_padding::NoPadding, BlockCipher, BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit,
};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce};
use zeroize::Zeroize;

/// Keyed CBC block cipher: the key schedule is done once per SA; per packet only the cipher runs.
pub trait CbcCipher: Send + Sync {
    fn block_len(&self) -> usize;
    /// Encrypts `buf` in place. `iv` is one block; `buf.len()` is a multiple of the block
    /// length (the caller pads). On a length violation the buffer is wiped, never sent clear.
    fn encrypt(&self, iv: &[u8], buf: &mut [u8]);
    /// Decrypts `buf` in place (same length rules). On a length violation the buffer is wiped.
    fn decrypt(&self, iv: &[u8], buf: &mut [u8]);
}

/// Keyed AEAD, AES-GCM with a 16-byte tag: nonce = 4-byte salt (from keymat) || 8-byte IV.
pub trait Aead: Send + Sync {
    fn seal(&self, iv: &[u8; 8], aad: &[u8], buf: &mut [u8]) -> [u8; 16];
    /// Decrypts in place if the tag verifies (constant time); false leaves garbage in `buf`.
    fn open(&self, iv: &[u8; 8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool;
}

struct Cbc<C> {
    cipher: C,
}

impl<C> CbcCipher for Cbc<C>
where
    C: BlockCipher + BlockEncryptMut + BlockDecryptMut + Clone + Send + Sync,
{
    fn block_len(&self) -> usize {
        C::block_size()
    }

    fn encrypt(&self, iv: &[u8], buf: &mut [u8]) {
        let len = buf.len();
        let ok = cbc::Encryptor::<C>::inner_iv_slice_init(self.cipher.clone(), iv)
            .ok()
            .and_then(|enc| {
                enc.encrypt_padded_mut::<NoPadding>(buf, len)
                    .ok()
                    .map(|_| ())
            });
        if ok.is_none() {
            buf.zeroize();
        }
    }

    fn decrypt(&self, iv: &[u8], buf: &mut [u8]) {
        // The cbc crate decrypts several blocks in parallel (AES-NI pipelining).
        let ok = cbc::Decryptor::<C>::inner_iv_slice_init(self.cipher.clone(), iv)
            .ok()
            .and_then(|dec| dec.decrypt_padded_mut::<NoPadding>(buf).ok().map(|_| ()));
        if ok.is_none() {
            buf.zeroize();
        }
    }
}

fn check_len(alg: EncrAlg, expected: usize, key: &[u8]) -> Result<(), CryptoError> {
    if key.len() == expected {
        Ok(())
    } else {
        Err(CryptoError::BadKeyLength {
            alg: alg.name(),
            expected,
            got: key.len(),
        })
    }
}

/// A keyed CBC cipher for `alg` (AES-CBC-128/256 or 3DES-CBC).
pub fn new_cbc(alg: EncrAlg, key: &[u8]) -> Result<Box<dyn CbcCipher>, CryptoError> {
    check_len(alg, alg.key_len(), key)?;
    let bad = |_| CryptoError::BadKeyLength {
        alg: alg.name(),
        expected: alg.key_len(),
        got: key.len(),
    };
    Ok(match alg {
        EncrAlg::AesCbc128 => Box::new(Cbc {
            cipher: aes::Aes128::new_from_slice(key).map_err(bad)?,
        }),
        EncrAlg::AesCbc256 => Box::new(Cbc {
            cipher: aes::Aes256::new_from_slice(key).map_err(bad)?,
        }),
        EncrAlg::TripleDesCbc => Box::new(Cbc {
            cipher: des::TdesEde3::new_from_slice(key).map_err(bad)?,
        }),
        EncrAlg::AesGcm16_128 | EncrAlg::AesGcm16_256 => {
            return Err(CryptoError::NotCbc(alg.name()))
        }
    })
}

struct Gcm<A> {
    aead: A,
    salt: [u8; 4],
}

impl<A> Drop for Gcm<A> {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

impl<A: AeadInPlace + Send + Sync> Aead for Gcm<A> {
    fn seal(&self, iv: &[u8; 8], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        let nonce = self.nonce(iv);
        match self
            .aead
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, buf)
        {
            Ok(tag) => {
                let mut out = [0u8; 16];
                out.copy_from_slice(&tag[..16]);
                out
            }
            // Only reachable for inputs beyond 2^36 bytes; never emit plaintext.
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
        let nonce = self.nonce(iv);
        self.aead
            .decrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                aad,
                buf,
                aes_gcm::Tag::from_slice(tag),
            )
            .is_ok()
    }
}

impl<A> Gcm<A> {
    fn nonce(&self, iv: &[u8; 8]) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&self.salt);
        n[4..].copy_from_slice(iv);
        n
    }
}

/// A keyed AES-GCM-16 for `alg`; `keymat` is the key followed by the 4-byte salt.
pub fn new_aead(alg: EncrAlg, keymat: &[u8]) -> Result<Box<dyn Aead>, CryptoError> {
    if !alg.is_aead() {
        return Err(CryptoError::NotAead(alg.name()));
    }
    check_len(alg, alg.keymat_len(), keymat)?;
    let (key, salt_bytes) = keymat.split_at(alg.key_len());
    let mut salt = [0u8; 4];
    salt.copy_from_slice(salt_bytes);
    let bad = |_| CryptoError::BadKeyLength {
        alg: alg.name(),
        expected: alg.keymat_len(),
        got: keymat.len(),
    };
    Ok(match alg {
        EncrAlg::AesGcm16_128 => Box::new(Gcm {
            aead: Aes128Gcm::new_from_slice(key).map_err(bad)?,
            salt,
        }),
        _ => Box::new(Gcm {
            aead: Aes256Gcm::new_from_slice(key).map_err(bad)?,
            salt,
        }),
    })
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
    fn aes_cbc_rfc3602_case1() {
        // RFC 3602 4, Case #1: one block, 128-bit key.
        let c = new_cbc(EncrAlg::AesCbc128, &hex("06a9214036b8a15b512e03d534120006")).unwrap();
        let iv = hex("3dafba429d9eb430b422da802c9fac41");
        let mut buf = b"Single block msg".to_vec();
        c.encrypt(&iv, &mut buf);
        assert_eq!(buf, hex("e353779c1079aeb82708942dbe77181a"));
        c.decrypt(&iv, &mut buf);
        assert_eq!(&buf, b"Single block msg");
    }

    #[test]
    fn aes_cbc_rfc3602_case2() {
        // RFC 3602 4, Case #2: two blocks.
        let c = new_cbc(EncrAlg::AesCbc128, &hex("c286696d887c9aa0611bbb3e2025a45a")).unwrap();
        let iv = hex("562e17996d093d28ddb3ba695a2e6f58");
        let mut buf = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
        c.encrypt(&iv, &mut buf);
        assert_eq!(
            buf,
            hex("d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1")
        );
    }

    #[test]
    fn tdes_roundtrip_and_bad_lengths() {
        let c = new_cbc(EncrAlg::TripleDesCbc, &[7u8; 24]).unwrap();
        let mut buf = *b"0123456789abcdef";
        c.encrypt(&[1u8; 8], &mut buf);
        assert_ne!(&buf, b"0123456789abcdef");
        c.decrypt(&[1u8; 8], &mut buf);
        assert_eq!(&buf, b"0123456789abcdef");
        // misaligned input is wiped, never left as plaintext
        let mut odd = *b"0123456789";
        c.encrypt(&[1u8; 8], &mut odd);
        assert_eq!(odd, [0u8; 10]);
        assert!(new_cbc(EncrAlg::AesCbc256, &[0u8; 16]).is_err());
        assert!(new_cbc(EncrAlg::AesGcm16_128, &[0u8; 16]).is_err());
    }

    #[test]
    fn gcm_mcgrew_test_case_3() {
        // draft-mcgrew-gcm-test-01 / GCM spec test case 3 (AES-128, 96-bit IV, no AAD):
        // key feffe9928665731c6d6a8f9467308308, IV cafebabefacedbaddecaf888.
        let mut keymat = hex("feffe9928665731c6d6a8f9467308308");
        keymat.extend(hex("cafebabe")); // salt = first 4 IV bytes
        let g = new_aead(EncrAlg::AesGcm16_128, &keymat).unwrap();
        let iv: [u8; 8] = hex("facedbaddecaf888").try_into().unwrap();
        let pt = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255");
        let mut buf = pt.clone();
        let tag = g.seal(&iv, &[], &mut buf);
        assert_eq!(buf, hex("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985"));
        assert_eq!(tag.to_vec(), hex("4d5c2af327cd64a62cf35abd2ba6fab4"));
        assert!(g.open(&iv, &[], &mut buf, &tag));
        assert_eq!(buf, pt);
        let mut bad = tag;
        bad[0] ^= 1;
        assert!(!g.open(&iv, &[], &mut buf.clone(), &bad));
    }
}
