//! Cryptographic transforms behind small traits, so the protocol cores never name a crate.
//!
//! Keyed objects (`CbcCipher`, `Mac`, `Aead`) do their key schedule once, when an SA is
//! installed; the per-packet calls only run the cipher. Everything secret is zeroized on drop.

mod algs;
mod cipher;
mod dh;
pub mod fast;
mod mac;
pub mod proposal;

pub use algs::{DhGroup, EncrAlg, IntegAlg, PrfAlg};
pub use cipher::{new_aead, new_cbc, Aead, CbcCipher};
pub use dh::DhPrivate;
pub use mac::{new_mac, prf, prf_plus, Mac};

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
        }
    }
}

impl std::error::Error for CryptoError {}
