//! Elliptic-curve key exchange: the NIST prime curves of RFC 5903 (groups 19, 20, 21) with
//! RustCrypto's constant-time p256/p384/p521, and Curve25519 (group 31, RFC 8031) with
//! x25519-dalek. Secret scalars live in types that wipe themselves on drop.

use super::{DhGroup, KeError};
use p256::elliptic_curve::{
    self as ec,
    sec1::{FromEncodedPoint, ModulusSize, ToEncodedPoint},
    zeroize::Zeroize,
    AffinePoint, CurveArithmetic, FieldBytes, FieldBytesSize, PublicKey, SecretKey,
};
use zeroize::Zeroizing;

/// Attempts at drawing a scalar below the group order before assuming the RNG is broken.
/// With a working RNG one attempt fails with probability below 2^-32 (P-256's order is
/// closest to its field size), so 64 failures in a row mean a stuck RNG.
const SCALAR_ATTEMPTS: usize = 64;

/// Our half of an exchange over a NIST curve.
pub(crate) struct EcpKey<C: CurveArithmetic> {
    group: DhGroup,
    /// SecretKey zeroizes its scalar on drop.
    secret: SecretKey<C>,
}

impl<C> EcpKey<C>
where
    C: CurveArithmetic,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
    FieldBytesSize<C>: ModulusSize,
{
    /// A uniformly drawn scalar in [1, n-1] (rejection sampling on `order_bits` random
    /// bits). Should the RNG be stuck, the last draw is forced into [2^(b-2), 2^(b-1)),
    /// which is below n for all three curves, rather than looping forever. None only if the
    /// curve crate refused that forced scalar too (it cannot for P-256/384/521).
    pub fn generate(
        group: DhGroup,
        order_bits: usize,
        rng: &mut dyn rand::RngCore,
    ) -> Option<Self> {
        let mut bytes = FieldBytes::<C>::default();
        let excess = bytes.len() * 8 - order_bits;
        for _ in 0..SCALAR_ATTEMPTS {
            rng.fill_bytes(&mut bytes);
            bytes[0] &= 0xff >> excess;
            if let Ok(secret) = SecretKey::<C>::from_bytes(&bytes) {
                bytes.zeroize();
                return Some(EcpKey { group, secret });
            }
        }
        // Only a broken RNG gets here. Bit b-1 cleared, bit b-2 set (b = order_bits).
        let top_bit = 7 - excess; // position of bit b-1 inside bytes[0]
        bytes[0] &= (1u8 << top_bit) - 1;
        if top_bit == 0 {
            // P-521: bit 520 is byte 0's only bit; bit 519 is byte 1's top bit.
            bytes[1] |= 0x80;
        } else {
            bytes[0] |= 1 << (top_bit - 1);
        }
        let secret = SecretKey::<C>::from_bytes(&bytes);
        bytes.zeroize();
        secret.ok().map(|secret| EcpKey { group, secret })
    }

    /// A key from a given big-endian scalar (known-answer tests); 0 and >= n are refused.
    pub fn from_scalar(group: DhGroup, scalar: &[u8]) -> Result<Self, KeError> {
        let mut bytes = FieldBytes::<C>::default();
        if scalar.len() != bytes.len() {
            return Err(KeError::BadPrivateValue { group });
        }
        bytes.copy_from_slice(scalar);
        let secret = SecretKey::<C>::from_bytes(&bytes);
        bytes.zeroize();
        secret
            .map(|secret| EcpKey { group, secret })
            .map_err(|_| KeError::BadPrivateValue { group })
    }

    /// x || y of our public point (RFC 5903 7: no SEC1 0x04 prefix).
    pub fn public_value(&self) -> Vec<u8> {
        let point = self.secret.public_key().to_encoded_point(false);
        point.as_bytes().get(1..).unwrap_or(&[]).to_vec()
    }

    /// Validates the peer's x || y (right length, not the all-zero "identity" some stacks
    /// send, coordinates below p, on the curve), then returns the x coordinate of the
    /// shared point (RFC 5903 7).
    pub fn shared_secret(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeError> {
        let point = peer_point::<C>(self.group, peer)?;
        let mut scalar = self.secret.to_nonzero_scalar();
        let shared = ec::ecdh::diffie_hellman(scalar, point.as_affine());
        scalar.zeroize();
        Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
    }
}

/// Parses and validates a peer's RFC 5903 public value.
fn peer_point<C>(group: DhGroup, peer: &[u8]) -> Result<PublicKey<C>, KeError>
where
    C: CurveArithmetic,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
    FieldBytesSize<C>: ModulusSize,
{
    let expected = group.public_len();
    if peer.len() != expected {
        return Err(KeError::WrongLength {
            group,
            expected,
            got: peer.len(),
        });
    }
    if peer.iter().all(|&b| b == 0) {
        return Err(KeError::Identity { group });
    }
    let mut sec1 = Vec::with_capacity(expected + 1);
    sec1.push(0x04);
    sec1.extend_from_slice(peer);
    // from_sec1_bytes refuses coordinates >= p, points off the curve and the identity.
    PublicKey::<C>::from_sec1_bytes(&sec1).map_err(|_| KeError::NotOnCurve { group })
}

/// The ECP validation alone (for callers that check a KE payload before keying).
pub(crate) fn validate_public(group: DhGroup, peer: &[u8]) -> Result<(), KeError> {
    match group {
        DhGroup::Ecp256 => peer_point::<p256::NistP256>(group, peer).map(|_| ()),
        DhGroup::Ecp384 => peer_point::<p384::NistP384>(group, peer).map(|_| ()),
        DhGroup::Ecp521 => peer_point::<p521::NistP521>(group, peer).map(|_| ()),
        DhGroup::Curve25519 if peer.len() == 32 => Ok(()),
        _ => Err(KeError::WrongLength {
            group,
            expected: group.public_len(),
            got: peer.len(),
        }),
    }
}

/// Our half of an X25519 exchange (RFC 7748 5, RFC 8031).
pub(crate) struct X25519Key {
    /// StaticSecret zeroizes itself on drop (the crate's `zeroize` feature).
    secret: x25519_dalek::StaticSecret,
}

impl X25519Key {
    /// Any 32 bytes are a valid private key: X25519 clamps them (RFC 7748 5).
    pub fn generate(rng: &mut dyn rand::RngCore) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(bytes.as_mut());
        X25519Key {
            secret: x25519_dalek::StaticSecret::from(*bytes),
        }
    }

    pub fn from_scalar(scalar: &[u8]) -> Result<Self, KeError> {
        let bytes: Zeroizing<[u8; 32]> =
            Zeroizing::new(scalar.try_into().map_err(|_| KeError::BadPrivateValue {
                group: DhGroup::Curve25519,
            })?);
        Ok(X25519Key {
            secret: x25519_dalek::StaticSecret::from(*bytes),
        })
    }

    pub fn public_value(&self) -> Vec<u8> {
        x25519_dalek::PublicKey::from(&self.secret)
            .as_bytes()
            .to_vec()
    }

    /// RFC 8031 2.3: any 32 bytes are accepted as the peer's value, but an all-zero shared
    /// secret (a low-order peer point) aborts the exchange. The check is constant time.
    pub fn shared_secret(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeError> {
        let group = DhGroup::Curve25519;
        let peer: [u8; 32] = peer.try_into().map_err(|_| KeError::WrongLength {
            group,
            expected: 32,
            got: peer.len(),
        })?;
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(peer));
        if !shared.was_contributory() {
            return Err(KeError::ZeroSharedSecret { group });
        }
        Ok(Zeroizing::new(shared.as_bytes().to_vec()))
    }
}
