//! Block ciphers in CBC mode (IKE SK payloads, ESP: AES-128/192/256 per RFC 3602, 3DES per
//! RFC 2451) and ESP's NULL encryption (RFC 2410). The AEAD ciphers are in `aead.rs`.

use super::{CryptoError, EncrAlg};
use aes::cipher::{
    block_padding::NoPadding, BlockCipher, BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit,
};
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

/// The key schedule in a `WipedBox`: its padding and the idle half of the aes crate's
/// backend union are wiped too.
struct Cbc<C> {
    cipher: super::WipedBox<C>,
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
        let ok = cbc::Encryptor::<C>::inner_iv_slice_init(C::clone(&self.cipher), iv)
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
        let ok = cbc::Decryptor::<C>::inner_iv_slice_init(C::clone(&self.cipher), iv)
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

/// ENCR_NULL (RFC 2410): the identity, for ESP with integrity only. It goes through the
/// non-AEAD path like a CBC cipher with a 0-byte IV, so ESP frames it unchanged.
struct NullCipher;

impl CbcCipher for NullCipher {
    fn block_len(&self) -> usize {
        EncrAlg::Null.block_len()
    }

    fn encrypt(&self, _iv: &[u8], _buf: &mut [u8]) {}

    fn decrypt(&self, _iv: &[u8], _buf: &mut [u8]) {}
}

/// A keyed non-AEAD cipher for `alg`: AES-CBC-128/192/256, 3DES-CBC, or NULL (empty key).
pub fn new_cbc(alg: EncrAlg, key: &[u8]) -> Result<Box<dyn CbcCipher>, CryptoError> {
    check_len(alg, alg.key_len(), key)?;
    let bad = |_| CryptoError::BadKeyLength {
        alg: alg.name(),
        expected: alg.key_len(),
        got: key.len(),
    };
    Ok(match alg {
        EncrAlg::AesCbc128 => Box::new(Cbc {
            cipher: super::WipedBox::new(aes::Aes128::new_from_slice(key).map_err(bad)?),
        }),
        EncrAlg::AesCbc192 => Box::new(Cbc {
            cipher: super::WipedBox::new(aes::Aes192::new_from_slice(key).map_err(bad)?),
        }),
        EncrAlg::AesCbc256 => Box::new(Cbc {
            cipher: super::WipedBox::new(aes::Aes256::new_from_slice(key).map_err(bad)?),
        }),
        EncrAlg::TripleDesCbc => Box::new(Cbc {
            cipher: super::WipedBox::new(des::TdesEde3::new_from_slice(key).map_err(bad)?),
        }),
        EncrAlg::Null => Box::new(NullCipher),
        _ => return Err(CryptoError::NotCbc(alg.name())),
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
    fn aes192_cbc_sp800_38a_f23() {
        // NIST SP 800-38A F.2.3/F.2.4, CBC-AES192: four blocks.
        let c = new_cbc(
            EncrAlg::AesCbc192,
            &hex("8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b"),
        )
        .unwrap();
        let iv = hex("000102030405060708090a0b0c0d0e0f");
        let pt = hex(concat!(
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51",
            "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
        ));
        let mut buf = pt.clone();
        c.encrypt(&iv, &mut buf);
        assert_eq!(
            buf,
            hex(concat!(
                "4f021db243bc633d7178183a9fa071e8b4d9ada9ad7dedf4e5e738763f69145a",
                "571b242012fb7ae07fa9baac3df102e008b0e27988598881d920a9e64f5615cd"
            ))
        );
        c.decrypt(&iv, &mut buf);
        assert_eq!(buf, pt);
        assert!(new_cbc(EncrAlg::AesCbc192, &[0u8; 16]).is_err());
    }

    #[test]
    fn null_cipher_is_the_identity_and_takes_no_key() {
        let c = new_cbc(EncrAlg::Null, &[]).unwrap();
        let mut buf = *b"plain text, integrity only";
        c.encrypt(&[], &mut buf);
        assert_eq!(&buf, b"plain text, integrity only");
        c.decrypt(&[], &mut buf);
        assert_eq!(&buf, b"plain text, integrity only");
        assert!(new_cbc(EncrAlg::Null, &[0u8; 1]).is_err());
        assert_eq!(EncrAlg::Null.iv_len(), 0);
        assert!(!EncrAlg::Null.is_aead());
    }
}
