//! Batch crypto for the ESP fast path, hand-written with `std::arch` intrinsics and chosen at
//! run time by CPU feature:
//!
//! - AES-CBC (AES-NI): several packets encrypted interleaved, decryption eight blocks wide;
//! - HMAC-SHA1 (SHA-NI): keyed states precomputed, four packets hashed in lock-step;
//! - AES-GCM (VAES + VPCLMULQDQ, AVX-512): 16 blocks in flight, GHASH aggregated;
//! - 3DES-CBC: table-driven DES, four packets / blocks interleaved (portable Rust).
//!
//! The intrinsics are compiled for x86_64 only (`cfg(target_arch)`) and used only after
//! run-time feature detection. Elsewhere `portable.rs` gives the same interface: AES-CBC
//! through the `aes` crate, still several packets interleaved; HMAC-SHA1 with portable
//! compression; no fast GCM. Anything not covered (another algorithm) uses the crate path in
//! `crate::crypto` (RustCrypto), which stays the reference the tests compare against.
//! `IPSECGW_CRYPTO=reference` forces the crate path (benchmarks, debugging).

#[cfg(target_arch = "x86_64")]
pub mod aes;
pub mod des;
#[cfg(target_arch = "x86_64")]
pub mod gcm;
// Also built for the tests on x86_64, where they compare it with the crates.
#[cfg(any(not(target_arch = "x86_64"), test))]
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
mod portable;
pub mod sha1;
#[cfg(target_arch = "x86_64")]
mod sha1_x16;
#[cfg(not(target_arch = "x86_64"))]
pub use portable::{aes, gcm};

use std::sync::OnceLock;

#[derive(Clone, Copy, Debug)]
struct Features {
    cbc: bool,
    sha: bool,
    /// VAES on AVX-512F: sixteen-lane AES-CBC.
    cbc16: bool,
    /// AVX-512F/BW: sixteen-lane multi-buffer SHA-1.
    sha16: bool,
    gcm: bool,
}

fn features() -> Features {
    static F: OnceLock<Features> = OnceLock::new();
    *F.get_or_init(|| {
        let off = reference_forced();
        #[cfg(target_arch = "x86_64")]
        {
            let cbc = !off
                && std::arch::is_x86_feature_detected!("aes")
                && std::arch::is_x86_feature_detected!("sse4.1");
            let sha = !off && cbc && std::arch::is_x86_feature_detected!("sha");
            let gcm = cbc
                && std::arch::is_x86_feature_detected!("pclmulqdq")
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("vaes")
                && std::arch::is_x86_feature_detected!("vpclmulqdq");
            let cbc16 = cbc
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("vaes");
            let sha16 = !off
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw");
            Features {
                cbc,
                sha,
                cbc16,
                sha16,
                gcm,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = off;
            Features {
                cbc: false,
                sha: false,
                cbc16: false,
                sha16: false,
                gcm: false,
            }
        }
    })
}

/// AES-NI (with SSE4.1): the AES-CBC fast path with intrinsics.
pub fn cbc_available() -> bool {
    features().cbc
}

/// The fast path's AES-CBC runs (intrinsics on x86_64 with AES-NI, the portable lanes on
/// other CPUs), unless `IPSECGW_CRYPTO=reference`.
pub fn cbc_lanes_available() -> bool {
    cfg!(not(target_arch = "x86_64")) && !reference_forced() || features().cbc
}

fn reference_forced() -> bool {
    std::env::var("IPSECGW_CRYPTO").is_ok_and(|v| v == "reference")
}

/// SHA-NI: interleaved HMAC-SHA1 (without it the fast path hashes with portable code).
pub fn sha_available() -> bool {
    features().sha
}

/// VAES on AVX-512F: AES-CBC sixteen packets (encryption) or blocks (decryption) at a time.
pub fn cbc16_available() -> bool {
    features().cbc16
}

/// AVX-512F/BW: HMAC-SHA1 sixteen messages at a time.
pub fn sha16_available() -> bool {
    features().sha16
}

/// VAES + VPCLMULQDQ on AVX-512: the AES-GCM fast path.
pub fn gcm_available() -> bool {
    features().gcm
}

/// Which implementation the ESP fast path runs on this machine, for logs and benchmarks.
pub fn describe() -> String {
    let f = features();
    format!(
        "aes-cbc: {}, hmac-sha1: {}, aes-gcm: {}, 3des-cbc: table-driven x4",
        if f.cbc16 {
            "VAES-512 x16 lanes"
        } else if f.cbc {
            "AES-NI x8 lanes"
        } else if cbc_lanes_available() {
            "aes crate x8 lanes"
        } else {
            "crate"
        },
        if f.sha16 && f.sha {
            "AVX-512 x16 lanes + SHA-NI x4 lanes"
        } else if f.sha16 {
            "AVX-512 x16 lanes"
        } else if f.sha {
            "SHA-NI x4 lanes"
        } else if cbc_lanes_available() {
            "portable"
        } else {
            "crate"
        },
        if f.gcm {
            "VAES-512/VPCLMULQDQ"
        } else {
            "crate"
        },
    )
}

/// Test helper shared by the AES-NI and the portable lanes: `lanes` buffers of different
/// lengths (1 + (i * 7) % max_blocks blocks) CBC-encrypted side by side by `encrypt_lanes`
/// must equal CBC through the `aes` crate, block by block, and `decrypt` must undo them.
#[cfg(test)]
pub(crate) fn check_cbc_lanes(
    key: &[u8],
    lanes: usize,
    max_blocks: usize,
    encrypt_lanes: impl Fn(&mut [(&[u8; 16], &mut [u8])]),
    decrypt: impl Fn(&[u8; 16], &mut [u8]),
) {
    use ::aes::cipher::{BlockEncrypt, KeyInit};
    let reference = |x: &mut ::aes::Block| match key.len() {
        16 => ::aes::Aes128::new_from_slice(key).unwrap().encrypt_block(x),
        24 => ::aes::Aes192::new_from_slice(key).unwrap().encrypt_block(x),
        _ => ::aes::Aes256::new_from_slice(key).unwrap().encrypt_block(x),
    };
    let mut bufs: Vec<Vec<u8>> = (0..lanes)
        .map(|i| {
            (0..16 * (1 + (i * 7) % max_blocks))
                .map(|j| (i * 31 + j) as u8)
                .collect()
        })
        .collect();
    let ivs: Vec<[u8; 16]> = (0..lanes).map(|i| [i as u8 ^ 0x5a; 16]).collect();
    let plain = bufs.clone();
    {
        let mut lanes: Vec<(&[u8; 16], &mut [u8])> = ivs
            .iter()
            .zip(bufs.iter_mut())
            .map(|(iv, b)| (iv, b.as_mut_slice()))
            .collect();
        encrypt_lanes(&mut lanes);
    }
    for ((iv, p), c) in ivs.iter().zip(&plain).zip(&bufs) {
        let mut chain = *iv;
        for (pb, cb) in p.chunks(16).zip(c.chunks(16)) {
            let mut x = ::aes::Block::default();
            for j in 0..16 {
                x[j] = pb[j] ^ chain[j];
            }
            reference(&mut x);
            assert_eq!(x.as_slice(), cb, "key length {}", key.len());
            chain.copy_from_slice(cb);
        }
    }
    for ((iv, p), c) in ivs.iter().zip(&plain).zip(bufs.iter_mut()) {
        decrypt(iv, c);
        assert_eq!(c, p);
    }
}
