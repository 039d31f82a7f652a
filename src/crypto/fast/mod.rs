//! Batch crypto for the ESP fast path, hand-written with `std::arch` intrinsics and chosen at
//! run time by CPU feature:
//!
//! - AES-CBC (AES-NI): several packets encrypted interleaved, decryption eight blocks wide;
//! - HMAC-SHA1 (SHA-NI): keyed states precomputed, four packets hashed in lock-step;
//! - AES-GCM (VAES + VPCLMULQDQ, AVX-512): 16 blocks in flight, GHASH aggregated;
//! - 3DES-CBC: table-driven DES, four packets / blocks interleaved (portable Rust).
//!
//! Anything not covered (another CPU, another algorithm) uses the crate path in
//! `crate::crypto` (RustCrypto), which stays the reference the tests compare against.
//! `IPSECGW_CRYPTO=reference` forces the crate path (benchmarks, debugging).

pub mod aes;
pub mod des;
pub mod gcm;
pub mod sha1;

use std::sync::OnceLock;

#[derive(Clone, Copy, Debug)]
struct Features {
    cbc: bool,
    sha: bool,
    gcm: bool,
}

fn features() -> Features {
    static F: OnceLock<Features> = OnceLock::new();
    *F.get_or_init(|| {
        let off = std::env::var("IPSECGW_CRYPTO").is_ok_and(|v| v == "reference");
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
            Features { cbc, sha, gcm }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = off;
            Features {
                cbc: false,
                sha: false,
                gcm: false,
            }
        }
    })
}

/// AES-NI (with SSE4.1): the AES-CBC fast path.
pub fn cbc_available() -> bool {
    features().cbc
}

/// SHA-NI: interleaved HMAC-SHA1 (without it the fast path hashes with portable code).
pub fn sha_available() -> bool {
    features().sha
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
        if f.cbc { "AES-NI x8 lanes" } else { "crate" },
        if f.sha {
            "SHA-NI x4 lanes"
        } else if f.cbc {
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
