//! Cryptographic transforms behind small traits, so the protocol cores never name a crate.
//!
//! Keyed objects (`CbcCipher`, `Mac`, `Aead`) do their key schedule once, when an SA is
//! installed; the per-packet calls only run the cipher. Key exchange goes through
//! `DhPrivate` (any group) and the `KeyExchange` trait. Everything secret is zeroized on drop.

mod aead;
mod algs;
mod cipher;
mod dh;
mod dh_group;
mod ecdh;
pub mod fast;
mod gcm_short;
pub mod keywords;
pub mod listing;
mod mac;
mod modp;
mod modp_params;
pub mod proposal;
mod wiped_box;
mod xcbc;

#[cfg(test)]
mod kat_ke;
#[cfg(test)]
mod kat_sym;

pub use aead::{new_aead, Aead};
pub use algs::{EncrAlg, IntegAlg, PrfAlg};
pub use cipher::{new_cbc, CbcCipher};
pub use dh::{validate_public, DhPrivate, KeError, KeyExchange};
pub use dh_group::{DhGroup, GroupKind};
pub use listing::list_algorithms;
pub use mac::{new_mac, prf, prf_plus, skeyseed_key, Mac};
pub use modp::modp_prime;
pub use wiped_box::WipedBox;

use std::fmt;

/// Errors of the crypto layer. They name what was wrong, never a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    BadKeyLength {
        alg: &'static str,
        expected: usize,
        got: usize,
    },
    NotAead(&'static str),
    NotCbc(&'static str),
    BadPublicValue(&'static str),
    /// A key exchange value refused by its group's checks.
    InvalidKe(KeError),
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CryptoError::BadKeyLength { alg, expected, got } => {
                write!(f, "{alg}: key is {got} bytes, expected {expected}")
            }
            CryptoError::NotAead(a) => write!(f, "{a} is not an AEAD algorithm"),
            CryptoError::NotCbc(a) => write!(f, "{a} is not a CBC algorithm"),
            CryptoError::BadPublicValue(why) => {
                write!(f, "invalid Diffie-Hellman public value: {why}")
            }
            CryptoError::InvalidKe(e) => write!(f, "invalid key exchange value: {e}"),
        }
    }
}

impl std::error::Error for CryptoError {}

impl From<KeError> for CryptoError {
    fn from(e: KeError) -> Self {
        CryptoError::InvalidKe(e)
    }
}
