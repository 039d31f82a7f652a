//! AES-XCBC-MAC (RFC 3566): the AES_XCBC_96 integrity transform and, untruncated with the
//! key rule of RFC 4434, PRF_AES128_XCBC.

use super::mac::Mac;
use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// The derived keys of RFC 3566 4: K1 keys the CBC chain, K2/K3 whiten the last block.
pub(crate) struct Xcbc {
    /// Aes128 wipes its key schedule on drop (the aes crate's `zeroize` feature).
    k1: Aes128,
    k2: [u8; 16],
    k3: [u8; 16],
}

impl Drop for Xcbc {
    fn drop(&mut self) {
        self.k2.zeroize();
        self.k3.zeroize();
    }
}

impl Xcbc {
    pub fn new(key: &[u8; 16]) -> Xcbc {
        let k = Aes128::new(key.into());
        let derive = |byte: u8| {
            let mut b = [byte; 16];
            k.encrypt_block((&mut b).into());
            b
        };
        let k1 = Zeroizing::new(derive(0x01));
        Xcbc {
            k1: Aes128::new((&*k1).into()),
            k2: derive(0x02),
            k3: derive(0x03),
        }
    }

    /// The full 128-bit MAC over the concatenation of `parts` (RFC 3566 4, steps 3-6).
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 16] {
        let mut e = [0u8; 16];
        // The block being filled; it is only encrypted once more input follows, because the
        // last block (complete or not) gets K2/K3 instead.
        let mut block = [0u8; 16];
        let mut fill = 0usize;
        for part in parts {
            for &byte in part.iter() {
                if fill == 16 {
                    for (x, b) in e.iter_mut().zip(block.iter()) {
                        *x ^= b;
                    }
                    self.k1.encrypt_block((&mut e).into());
                    fill = 0;
                }
                block[fill] = byte;
                fill += 1;
            }
        }
        let whitening = if fill == 16 {
            &self.k2
        } else {
            // Pad with a single 1 bit and zeros (step 6b); the empty message is one such block.
            block[fill] = 0x80;
            block[fill + 1..].iter_mut().for_each(|b| *b = 0);
            &self.k3
        };
        for ((x, b), k) in e.iter_mut().zip(block.iter()).zip(whitening.iter()) {
            *x ^= b ^ k;
        }
        self.k1.encrypt_block((&mut e).into());
        block.zeroize();
        e
    }
}

/// AES-XCBC-MAC-96 (RFC 3566): a 128-bit key, the MAC truncated to 96 bits.
pub(crate) struct XcbcMac96(pub Xcbc);

impl Mac for XcbcMac96 {
    fn icv_len(&self) -> usize {
        12
    }

    fn sign(&self, parts: &[&[u8]], out: &mut [u8]) {
        let full = self.0.mac(parts);
        let n = 12.min(out.len());
        out[..n].copy_from_slice(&full[..n]);
    }

    fn verify(&self, parts: &[&[u8]], icv: &[u8]) -> bool {
        let full = self.0.mac(parts);
        icv.len() == 12 && bool::from(full[..12].ct_eq(icv))
    }
}

/// AES-XCBC-PRF-128 (RFC 4434 2): keys shorter than 128 bits are zero-padded, longer ones
/// are first reduced with AES-XCBC-PRF-128 under the all-zero key.
pub(crate) fn prf(key: &[u8], data: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    let mut k = Zeroizing::new([0u8; 16]);
    if key.len() <= 16 {
        k[..key.len()].copy_from_slice(key);
    } else {
        *k = Xcbc::new(&[0u8; 16]).mac(&[key]);
    }
    Zeroizing::new(Xcbc::new(&k).mac(data).to_vec())
}
