//! AES-GCM with 8- and 12-byte ICVs (ENCR_AES_GCM_8/12, RFC 4106, RFC 5282), built from the
//! same RustCrypto parts aes-gcm uses (AES, CTR32, GHASH) because aes-gcm offers no 8-byte
//! tag. GCM's shorter tags are the leading bytes of the full one (NIST SP 800-38D 5.2.1.2),
//! so the tests check this against aes-gcm itself and against the McGrew-Viega vectors.

use super::aead::{nonce, Aead};
use super::CryptoError;
use aes::cipher::{
    consts::U16, BlockCipher, BlockEncrypt, BlockEncryptMut, BlockSizeUser, InnerIvInit, KeyInit,
    StreamCipher, StreamCipherCoreWrapper,
};
use ghash::universal_hash::UniversalHash;
use ghash::GHash;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Keyed AES-GCM whose ICV is `icv_len` (8 or 12) bytes.
pub(crate) struct ShortTagGcm<C> {
    /// The AES key schedule (the aes crate wipes it on drop; the `WipedBox` its padding and
    /// the idle half of the backend union).
    cipher: crate::crypto::WipedBox<C>,
    /// H = E_K(0^128), the GHASH key: as secret as the AES key.
    h: [u8; 16],
    salt: [u8; 4],
    icv_len: usize,
}

impl<C> Drop for ShortTagGcm<C> {
    fn drop(&mut self) {
        self.h.zeroize();
        self.salt.zeroize();
    }
}

impl<C> ShortTagGcm<C>
where
    C: KeyInit + BlockCipher + BlockEncrypt + BlockEncryptMut + BlockSizeUser<BlockSize = U16>,
    C: Clone + Send + Sync,
{
    pub fn new(key: &[u8], salt: [u8; 4], icv_len: usize) -> Result<Self, CryptoError> {
        let cipher = C::new_from_slice(key).map_err(|_| CryptoError::BadKeyLength {
            alg: "AES-GCM",
            expected: C::key_size(),
            got: key.len(),
        })?;
        let mut h = [0u8; 16];
        cipher.encrypt_block((&mut h).into());
        Ok(ShortTagGcm {
            cipher: crate::crypto::WipedBox::new(cipher),
            h,
            salt,
            icv_len: icv_len.min(16),
        })
    }

    /// J0 = nonce || 0^31 || 1 for a 96-bit nonce (SP 800-38D 7.1 step 2).
    fn j0(&self, iv: &[u8; 8]) -> [u8; 16] {
        let mut j = [0u8; 16];
        j[..12].copy_from_slice(&nonce(&self.salt, iv));
        j[15] = 1;
        j
    }

    /// The full 16-byte tag: E_K(J0) xor GHASH_H(A || pad || C || pad || len(A) || len(C)).
    fn full_tag(&self, j0: &[u8; 16], aad: &[u8], ct: &[u8]) -> [u8; 16] {
        let mut g = GHash::new(&self.h.into());
        g.update_padded(aad);
        g.update_padded(ct);
        let mut lens = [0u8; 16];
        lens[..8].copy_from_slice(&((aad.len() as u64) * 8).to_be_bytes());
        lens[8..].copy_from_slice(&((ct.len() as u64) * 8).to_be_bytes());
        g.update(&[lens.into()]);
        let s = g.finalize();
        let mut tag = *j0;
        self.cipher.encrypt_block((&mut tag).into());
        for (t, x) in tag.iter_mut().zip(s.iter()) {
            *t ^= x;
        }
        tag
    }

    /// CTR mode from inc32(J0) (SP 800-38D 7.1 step 3). False if `buf` exceeds GCM's
    /// 2^32-2 blocks, which no IP packet does.
    fn ctr(&self, j0: &[u8; 16], buf: &mut [u8]) -> bool {
        let mut ctr0 = *j0;
        ctr0[15] = 2;
        let core = ctr::CtrCore::<C, ctr::flavors::Ctr32BE>::inner_iv_init(
            C::clone(&self.cipher),
            (&ctr0).into(),
        );
        StreamCipherCoreWrapper::from_core(core)
            .try_apply_keystream(buf)
            .is_ok()
    }
}

impl<C> Aead for ShortTagGcm<C>
where
    C: KeyInit + BlockCipher + BlockEncrypt + BlockEncryptMut + BlockSizeUser<BlockSize = U16>,
    C: Clone + Send + Sync,
{
    fn seal(&self, iv: &[u8; 8], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        let j0 = self.j0(iv);
        if !self.ctr(&j0, buf) {
            buf.zeroize();
            return [0u8; 16];
        }
        let full = self.full_tag(&j0, aad, buf);
        let mut out = [0u8; 16];
        out[..self.icv_len].copy_from_slice(&full[..self.icv_len]);
        out
    }

    fn open(&self, iv: &[u8; 8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        if tag.len() != self.icv_len {
            return false;
        }
        let j0 = self.j0(iv);
        // Verify before decrypting anything (constant-time compare of the truncated tag).
        let full = self.full_tag(&j0, aad, buf);
        if !bool::from(full[..self.icv_len].ct_eq(tag)) {
            return false;
        }
        self.ctr(&j0, buf)
    }

    fn icv_len(&self) -> usize {
        self.icv_len
    }
}
