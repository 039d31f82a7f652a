//! strongSwan's proposal keywords, as one table: the parser reads it, and so does
//! `ipsecgw list-algorithms`. The first keyword of each algorithm is its canonical one (the
//! one `Display` writes); the others are strongSwan's aliases.

use super::{DhGroup, EncrAlg, IntegAlg, PrfAlg};

/// What a keyword names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    Encr(EncrAlg),
    Integ(IntegAlg),
    Prf(PrfAlg),
    Ke(DhGroup),
    /// `esn` / `noesn`: ESP's extended sequence numbers transform.
    Esn(bool),
}

/// Where a proposal is used: the known keywords differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Context {
    Ike,
    Esp,
}

impl Context {
    pub fn label(self) -> &'static str {
        match self {
            Context::Ike => "IKE",
            Context::Esp => "ESP",
        }
    }
}

use EncrAlg as E;
use IntegAlg as I;
use PrfAlg as P;
use Transform::*;

/// Every keyword this build accepts, canonical first per algorithm.
pub const KEYWORDS: &[(&str, Transform)] = &[
    ("aes128", Encr(E::AesCbc128)),
    ("aes", Encr(E::AesCbc128)),
    ("aes192", Encr(E::AesCbc192)),
    ("aes256", Encr(E::AesCbc256)),
    ("3des", Encr(E::TripleDesCbc)),
    ("aes128gcm16", Encr(E::AesGcm16_128)),
    ("aes128gcm128", Encr(E::AesGcm16_128)),
    ("aes128gcm", Encr(E::AesGcm16_128)),
    ("aes192gcm16", Encr(E::AesGcm16_192)),
    ("aes192gcm128", Encr(E::AesGcm16_192)),
    ("aes192gcm", Encr(E::AesGcm16_192)),
    ("aes256gcm16", Encr(E::AesGcm16_256)),
    ("aes256gcm128", Encr(E::AesGcm16_256)),
    ("aes256gcm", Encr(E::AesGcm16_256)),
    ("aes128gcm12", Encr(E::AesGcm12_128)),
    ("aes128gcm96", Encr(E::AesGcm12_128)),
    ("aes192gcm12", Encr(E::AesGcm12_192)),
    ("aes192gcm96", Encr(E::AesGcm12_192)),
    ("aes256gcm12", Encr(E::AesGcm12_256)),
    ("aes256gcm96", Encr(E::AesGcm12_256)),
    ("aes128gcm8", Encr(E::AesGcm8_128)),
    ("aes128gcm64", Encr(E::AesGcm8_128)),
    ("aes192gcm8", Encr(E::AesGcm8_192)),
    ("aes192gcm64", Encr(E::AesGcm8_192)),
    ("aes256gcm8", Encr(E::AesGcm8_256)),
    ("aes256gcm64", Encr(E::AesGcm8_256)),
    ("chacha20poly1305", Encr(E::ChaCha20Poly1305)),
    ("null", Encr(E::Null)),
    ("md5", Integ(I::HmacMd5_96)),
    ("sha1", Integ(I::HmacSha1_96)),
    ("sha", Integ(I::HmacSha1_96)),
    ("aesxcbc", Integ(I::AesXcbc96)),
    ("sha256", Integ(I::HmacSha256_128)),
    ("sha2_256", Integ(I::HmacSha256_128)),
    ("sha384", Integ(I::HmacSha384_192)),
    ("sha2_384", Integ(I::HmacSha384_192)),
    ("sha512", Integ(I::HmacSha512_256)),
    ("sha2_512", Integ(I::HmacSha512_256)),
    ("prfmd5", Prf(P::HmacMd5)),
    ("prfsha1", Prf(P::HmacSha1)),
    ("prfaesxcbc", Prf(P::AesXcbc128)),
    ("prfsha256", Prf(P::HmacSha256)),
    ("prfsha384", Prf(P::HmacSha384)),
    ("prfsha512", Prf(P::HmacSha512)),
    ("modp768", Ke(DhGroup::Modp768)),
    ("modp1024", Ke(DhGroup::Modp1024)),
    ("modp1536", Ke(DhGroup::Modp1536)),
    ("modp2048", Ke(DhGroup::Modp2048)),
    ("modp3072", Ke(DhGroup::Modp3072)),
    ("modp4096", Ke(DhGroup::Modp4096)),
    ("modp2048s256", Ke(DhGroup::Modp2048s256)),
    ("ecp256", Ke(DhGroup::Ecp256)),
    ("ecp384", Ke(DhGroup::Ecp384)),
    ("ecp521", Ke(DhGroup::Ecp521)),
    ("curve25519", Ke(DhGroup::Curve25519)),
    ("x25519", Ke(DhGroup::Curve25519)),
    ("esn", Esn(true)),
    ("noesn", Esn(false)),
];

/// The transform a keyword names (case-insensitive), whatever the context.
pub fn lookup(word: &str) -> Option<Transform> {
    let w = word.to_ascii_lowercase();
    KEYWORDS.iter().find(|(k, _)| *k == w).map(|(_, t)| *t)
}

/// Why a known transform is refused in `ctx`, or None if it is allowed there.
pub fn refused_in(t: Transform, ctx: Context) -> Option<&'static str> {
    match (t, ctx) {
        (Encr(e), Context::Ike) if !e.allowed_in_ike() => {
            Some("NULL encryption is for ESP proposals only")
        }
        (Prf(_), Context::Esp) => Some("PRF keywords are for IKE proposals only"),
        (Esn(_), Context::Ike) => Some("'esn'/'noesn' are for ESP proposals only"),
        _ => None,
    }
}

/// The keywords naming `t`, canonical first.
pub fn keywords_of(t: Transform) -> impl Iterator<Item = &'static str> {
    KEYWORDS
        .iter()
        .filter(move |(_, x)| *x == t)
        .map(|(k, _)| *k)
}

impl Transform {
    /// Accepted only when configured by name, and flagged by `check`.
    pub fn is_weak(self) -> bool {
        match self {
            Encr(e) => e.is_weak(),
            Integ(i) => i.is_weak(),
            Prf(p) => p.is_weak(),
            Ke(g) => g.is_weak(),
            Esn(_) => false,
        }
    }
}
