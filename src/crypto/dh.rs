//! The key exchange front the IKE code uses for every group: `DhPrivate` (one type for MODP,
//! ECP and Curve25519, so the engine stays generic) and the `KeyExchange` trait it
//! implements. Keys come from the RNG the caller injects; secrets are wiped on drop.

use super::ecdh::{EcpKey, X25519Key};
use super::modp::ModpKey;
use super::{ecdh, modp, DhGroup, GroupKind};
use std::fmt;
use zeroize::Zeroizing;

/// Why a key exchange value was refused. Names the check, never a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeError {
    /// The KE data is not the group's public value length.
    WrongLength {
        group: DhGroup,
        expected: usize,
        got: usize,
    },
    /// MODP: not 1 < y < p-1 (RFC 6989 2.1).
    OutOfRange { group: DhGroup },
    /// MODP group 24: y^q != 1 mod p, a small-subgroup value (RFC 6989 2.2).
    NotInSubgroup { group: DhGroup },
    /// ECP: a coordinate >= p or the point is not on the curve (RFC 6989 2.3).
    NotOnCurve { group: DhGroup },
    /// ECP: the all-zero value, the point at infinity as some stacks encode it.
    Identity { group: DhGroup },
    /// Curve25519: the shared secret is all zero, the peer sent a low-order point (RFC 8031 2.3).
    ZeroSharedSecret { group: DhGroup },
    /// A private value given to `from_private_bytes` is out of range for the group.
    BadPrivateValue { group: DhGroup },
}

impl KeError {
    pub fn group(&self) -> DhGroup {
        match *self {
            KeError::WrongLength { group, .. }
            | KeError::OutOfRange { group }
            | KeError::NotInSubgroup { group }
            | KeError::NotOnCurve { group }
            | KeError::Identity { group }
            | KeError::ZeroSharedSecret { group }
            | KeError::BadPrivateValue { group } => group,
        }
    }
}

impl fmt::Display for KeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.group().name();
        match self {
            KeError::WrongLength { expected, got, .. } => {
                write!(
                    f,
                    "{g}: key exchange value is {got} bytes, expected {expected}"
                )
            }
            KeError::OutOfRange { .. } => write!(f, "{g}: public value is not in 2..p-2"),
            KeError::NotInSubgroup { .. } => {
                write!(f, "{g}: public value is not in the prime-order subgroup")
            }
            KeError::NotOnCurve { .. } => {
                write!(f, "{g}: public value is not a point on the curve")
            }
            KeError::Identity { .. } => write!(f, "{g}: public value is the point at infinity"),
            KeError::ZeroSharedSecret { .. } => {
                write!(f, "{g}: shared secret is all zero (low-order public value)")
            }
            KeError::BadPrivateValue { .. } => write!(f, "{g}: private value out of range"),
        }
    }
}

impl std::error::Error for KeError {}

/// One side of a key exchange, whatever the group.
pub trait KeyExchange: Send + Sync {
    fn group(&self) -> DhGroup;
    /// Our KE payload data: exactly `group().public_len()` bytes.
    fn public_value(&self) -> Vec<u8>;
    /// Validates the peer's KE data and returns g^ir, `group().shared_len()` bytes.
    fn shared_secret(&self, peer_public: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeError>;
}

enum Backend {
    Modp(ModpKey),
    Ecp256(EcpKey<p256::NistP256>),
    Ecp384(EcpKey<p384::NistP384>),
    Ecp521(EcpKey<p521::NistP521>),
    X25519(X25519Key),
    /// Key generation failed in a way the curve crates rule out; kept as a value that
    /// refuses every exchange rather than a panic.
    Unusable,
}

/// Our half of a key exchange in any supported group. The private value is wiped on drop
/// (each backend holds it in a zeroizing type); the public value is computed once.
pub struct DhPrivate {
    group: DhGroup,
    backend: Backend,
    public: Vec<u8>,
}

impl fmt::Debug for DhPrivate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DhPrivate({}, <redacted>)", self.group.name())
    }
}

impl DhPrivate {
    /// A fresh key pair for `group`, drawn from the caller's RNG (the protocol cores inject
    /// theirs; nothing here reads a system source).
    pub fn generate(group: DhGroup, rng: &mut dyn rand::RngCore) -> DhPrivate {
        let backend = match group {
            DhGroup::Ecp256 => EcpKey::generate(group, 256, rng).map(Backend::Ecp256),
            DhGroup::Ecp384 => EcpKey::generate(group, 384, rng).map(Backend::Ecp384),
            DhGroup::Ecp521 => EcpKey::generate(group, 521, rng).map(Backend::Ecp521),
            DhGroup::Curve25519 => Some(Backend::X25519(X25519Key::generate(rng))),
            _ => ModpKey::generate(group, rng).map(Backend::Modp),
        };
        Self::with_backend(group, backend.unwrap_or(Backend::Unusable))
    }

    /// A key pair from a known private value: the MODP exponent or the ECP scalar
    /// (big-endian), or the X25519 scalar (32 bytes, RFC 7748). For known-answer tests and
    /// for comparing keys with a peer's debug log.
    pub fn from_private_bytes(group: DhGroup, private: &[u8]) -> Result<DhPrivate, KeError> {
        let backend = match group.kind() {
            GroupKind::Ecp => match group {
                DhGroup::Ecp256 => Backend::Ecp256(EcpKey::from_scalar(group, private)?),
                DhGroup::Ecp384 => Backend::Ecp384(EcpKey::from_scalar(group, private)?),
                _ => Backend::Ecp521(EcpKey::from_scalar(group, private)?),
            },
            GroupKind::Montgomery => Backend::X25519(X25519Key::from_scalar(private)?),
            GroupKind::Modp => Backend::Modp(ModpKey::from_exponent(group, private)?),
        };
        Ok(Self::with_backend(group, backend))
    }

    fn with_backend(group: DhGroup, backend: Backend) -> DhPrivate {
        let public = match &backend {
            Backend::Modp(k) => k.public_value(),
            Backend::Ecp256(k) => k.public_value(),
            Backend::Ecp384(k) => k.public_value(),
            Backend::Ecp521(k) => k.public_value(),
            Backend::X25519(k) => k.public_value(),
            Backend::Unusable => Vec::new(),
        };
        DhPrivate {
            group,
            backend,
            public,
        }
    }

    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// Our KE payload data: g^x mod p padded to p's length (MODP), x || y (ECP, RFC 5903),
    /// or the 32-byte u-coordinate (Curve25519, RFC 8031).
    pub fn public_value(&self) -> Vec<u8> {
        self.public.clone()
    }

    /// Validates the peer's KE data (RFC 6989 for MODP, point validation for ECP, the
    /// all-zero check for Curve25519) and returns g^ir as RFC 7296 2.14 defines it: p's
    /// length for MODP, the x coordinate for ECP (RFC 5903 7), 32 bytes for Curve25519.
    pub fn shared_secret(&self, peer_public: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeError> {
        match &self.backend {
            Backend::Modp(k) => k.shared_secret(peer_public),
            Backend::Ecp256(k) => k.shared_secret(peer_public),
            Backend::Ecp384(k) => k.shared_secret(peer_public),
            Backend::Ecp521(k) => k.shared_secret(peer_public),
            Backend::X25519(k) => k.shared_secret(peer_public),
            Backend::Unusable => Err(KeError::BadPrivateValue { group: self.group }),
        }
    }
}

impl KeyExchange for DhPrivate {
    fn group(&self) -> DhGroup {
        self.group
    }

    fn public_value(&self) -> Vec<u8> {
        self.public.clone()
    }

    fn shared_secret(&self, peer_public: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeError> {
        DhPrivate::shared_secret(self, peer_public)
    }
}

/// Checks a received KE value for `group` without computing anything secret (RFC 6989).
pub fn validate_public(group: DhGroup, peer_public: &[u8]) -> Result<(), KeError> {
    match group.kind() {
        GroupKind::Modp => modp::validate_public(group, peer_public),
        _ => ecdh::validate_public(group, peer_public),
    }
}
