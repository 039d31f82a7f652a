//! The fast path's AES and AES-GCM on CPUs other than x86_64: the same interface as the
//! intrinsics modules, built on the `aes` crate (which picks the CPU's AES instructions
//! where it can, else a bitsliced software AES that is fastest several blocks at a time).
//! CBC encryption still interleaves packets: block i of up to eight packets goes through one
//! `encrypt_blocks` call. There is no portable fast GCM: `AesGcm::new` says no and the ESP
//! core uses the `aes-gcm` crate.

pub mod aes {
    use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
    use aes::Block;

    /// Packets encrypted side by side.
    pub const LANES: usize = 8;

    /// Expanded AES key (the crate zeroizes its schedule on drop).
    #[derive(Clone)]
    pub enum AesKey {
        A128(aes::Aes128),
        A192(aes::Aes192),
        A256(aes::Aes256),
    }

    macro_rules! each {
        ($self:expr, $k:ident => $e:expr) => {
            match $self {
                AesKey::A128($k) => $e,
                AesKey::A192($k) => $e,
                AesKey::A256($k) => $e,
            }
        };
    }

    impl AesKey {
        /// Key of 16, 24 or 32 bytes; None for any other length or with `IPSECGW_CRYPTO=reference`.
        pub fn new(key: &[u8]) -> Option<AesKey> {
            if !super::super::cbc_lanes_available() {
                return None;
            }
            match key.len() {
                16 => aes::Aes128::new_from_slice(key).ok().map(AesKey::A128),
                24 => aes::Aes192::new_from_slice(key).ok().map(AesKey::A192),
                32 => aes::Aes256::new_from_slice(key).ok().map(AesKey::A256),
                _ => None,
            }
        }

        pub fn rounds(&self) -> usize {
            match self {
                AesKey::A128(_) => 10,
                AesKey::A192(_) => 12,
                AesKey::A256(_) => 14,
            }
        }

        pub fn encrypt_block(&self, block: &mut [u8; 16]) {
            each!(self, k => k.encrypt_block(Block::from_mut_slice(block)))
        }

        fn encrypt_blocks(&self, blocks: &mut [Block]) {
            each!(self, k => k.encrypt_blocks(blocks))
        }

        fn decrypt_blocks(&self, blocks: &mut [Block]) {
            each!(self, k => k.decrypt_blocks(blocks))
        }

        /// CBC-encrypts every lane in place: `lanes[i]` is (IV, data) with data a multiple of
        /// 16 bytes; lengths may differ.
        pub fn cbc_encrypt_lanes(&self, lanes: &mut [(&[u8; 16], &mut [u8])]) {
            for group in lanes.chunks_mut(LANES) {
                let mut chain = [Block::default(); LANES];
                let mut blocks = [0usize; LANES];
                for (i, (iv, data)) in group.iter().enumerate() {
                    chain[i].copy_from_slice(&iv[..]);
                    blocks[i] = data.len() / 16;
                }
                let most = blocks.iter().copied().max().unwrap_or(0);
                let mut work = [Block::default(); LANES];
                let mut which = [0usize; LANES];
                for b in 0..most {
                    let mut m = 0;
                    for (i, (_, data)) in group.iter().enumerate() {
                        if b < blocks[i] {
                            for (w, (c, p)) in work[m]
                                .iter_mut()
                                .zip(chain[i].iter().zip(&data[16 * b..16 * b + 16]))
                            {
                                *w = c ^ p;
                            }
                            which[m] = i;
                            m += 1;
                        }
                    }
                    self.encrypt_blocks(&mut work[..m]);
                    for (w, &i) in work[..m].iter().zip(&which[..m]) {
                        group[i].1[16 * b..16 * b + 16].copy_from_slice(w);
                        chain[i] = *w;
                    }
                }
            }
        }

        /// CBC-decrypts `data` (a multiple of 16 bytes) in place, eight blocks per call.
        pub fn cbc_decrypt(&self, iv: &[u8; 16], data: &mut [u8]) {
            let mut prev = Block::clone_from_slice(iv);
            let whole = data.len() / 16 * 16;
            let mut rest = &mut data[..whole];
            while !rest.is_empty() {
                let n = (rest.len() / 16).min(LANES);
                let (now, later) = rest.split_at_mut(16 * n);
                let mut ct = [Block::default(); LANES];
                for (c, src) in ct.iter_mut().zip(now.chunks_exact(16)) {
                    c.copy_from_slice(src);
                }
                let mut pt = ct;
                self.decrypt_blocks(&mut pt[..n]);
                for (j, dst) in now.chunks_exact_mut(16).enumerate() {
                    let chain = if j == 0 { prev } else { ct[j - 1] };
                    for (d, (p, c)) in dst.iter_mut().zip(pt[j].iter().zip(chain.iter())) {
                        *d = p ^ c;
                    }
                }
                prev = ct[n - 1];
                rest = later;
            }
        }
    }
}

pub mod gcm {
    use std::convert::Infallible;

    /// No portable fast AES-GCM: never constructed, the crate path serves GCM SAs.
    pub struct AesGcm(Infallible);

    impl AesGcm {
        pub fn new(_key: &[u8], _salt: [u8; 4]) -> Option<AesGcm> {
            None
        }

        pub fn seal(&self, _iv: &[u8; 8], _aad: &[u8], _data: &mut [u8]) -> [u8; 16] {
            match self.0 {}
        }

        pub fn open(&self, _iv: &[u8; 8], _aad: &[u8], _data: &mut [u8], _tag: &[u8]) -> bool {
            match self.0 {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::aes::AesKey;

    #[test]
    fn lanes_match_the_aes_crate_and_decrypt_back() {
        for klen in [16usize, 24, 32] {
            let key: Vec<u8> = (0..klen as u8).collect();
            let k = AesKey::new(&key).unwrap();
            crate::crypto::fast::check_cbc_lanes(
                &key,
                11,
                23,
                |lanes| k.cbc_encrypt_lanes(lanes),
                |iv, data| k.cbc_decrypt(iv, data),
            );
        }
        assert!(AesKey::new(&[0u8; 20]).is_none());
    }
}
