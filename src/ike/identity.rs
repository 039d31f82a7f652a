//! IKE identities (RFC 7296 3.5), as configured and as carried in IDi/IDr.

use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::str::FromStr;

/// Why an identity was refused, from the wire or from the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityError {
    /// ID_IPV4_ADDR not 4 bytes, or ID_IPV6_ADDR not 16.
    AddrLength {
        v6: bool,
    },
    /// ID_FQDN or ID_RFC822_ADDR that is not UTF-8.
    NotUtf8,
    /// An ID type this gateway does not handle (DER_ASN1_DN, ...).
    UnsupportedType(u8),
    Empty,
    /// `keyid:` followed by something that is not an even number of hex digits.
    BadKeyId(String),
    /// Not an address, FQDN, user@fqdn or keyid.
    Unrecognized(String),
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::AddrLength { v6: false } => f.write_str("ID_IPV4_ADDR is not 4 bytes"),
            IdentityError::AddrLength { v6: true } => f.write_str("ID_IPV6_ADDR is not 16 bytes"),
            IdentityError::NotUtf8 => f.write_str("identity is not UTF-8"),
            IdentityError::UnsupportedType(t) => write!(f, "unsupported ID type {t}"),
            IdentityError::Empty => f.write_str("empty identity"),
            IdentityError::BadKeyId(s) => {
                write!(f, "'{s}': keyid must be an even number of hex digits")
            }
            IdentityError::Unrecognized(s) => write!(
                f,
                "'{s}' is neither an IP address, an FQDN, user@fqdn nor keyid:HEX"
            ),
        }
    }
}

impl std::error::Error for IdentityError {}

/// An IKE identity. The ID type numbers are those of RFC 7296 3.5.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// ID_IPV4_ADDR (1) or ID_IPV6_ADDR (5)
    Addr(IpAddr),
    /// ID_FQDN (2)
    Fqdn(String),
    /// ID_RFC822_ADDR (3), `user@fqdn`
    UserFqdn(String),
    /// ID_KEY_ID (11), opaque bytes
    KeyId(Vec<u8>),
}

impl Identity {
    /// The RFC 7296 ID type.
    pub fn id_type(&self) -> u8 {
        match self {
            Identity::Addr(IpAddr::V4(_)) => 1,
            Identity::Addr(IpAddr::V6(_)) => 5,
            Identity::Fqdn(_) => 2,
            Identity::UserFqdn(_) => 3,
            Identity::KeyId(_) => 11,
        }
    }

    /// The identification data as sent on the wire (after the 4-byte ID header).
    pub fn data(&self) -> Vec<u8> {
        match self {
            Identity::Addr(IpAddr::V4(a)) => a.octets().to_vec(),
            Identity::Addr(IpAddr::V6(a)) => a.octets().to_vec(),
            Identity::Fqdn(s) | Identity::UserFqdn(s) => s.as_bytes().to_vec(),
            Identity::KeyId(k) => k.clone(),
        }
    }

    /// Parses a received identity. Unknown types and bad lengths are errors, never panics.
    pub fn from_wire(id_type: u8, data: &[u8]) -> Result<Self, IdentityError> {
        match id_type {
            1 => <[u8; 4]>::try_from(data)
                .map(|a| Identity::Addr(IpAddr::from(a)))
                .map_err(|_| IdentityError::AddrLength { v6: false }),
            5 => <[u8; 16]>::try_from(data)
                .map(|a| Identity::Addr(IpAddr::from(a)))
                .map_err(|_| IdentityError::AddrLength { v6: true }),
            2 | 3 => {
                let s = std::str::from_utf8(data).map_err(|_| IdentityError::NotUtf8)?;
                Ok(if id_type == 2 {
                    Identity::Fqdn(s.into())
                } else {
                    Identity::UserFqdn(s.into())
                })
            }
            11 => Ok(Identity::KeyId(data.to_vec())),
            t => Err(IdentityError::UnsupportedType(t)),
        }
    }
}

impl FromStr for Identity {
    type Err = IdentityError;
    /// `192.0.2.1`, `2001:db8::1`, `vpn.example.com`, `user@example.com`, or `keyid:hex`.
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(IdentityError::Empty);
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Identity::Addr(ip));
        }
        if let Some(hex) = s.strip_prefix("keyid:") {
            if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(IdentityError::BadKeyId(s.to_string()));
            }
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0));
            return Ok(Identity::KeyId(bytes.collect()));
        }
        if s.contains('@') {
            return Ok(Identity::UserFqdn(s.into()));
        }
        if s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Ok(Identity::Fqdn(s.into()));
        }
        Err(IdentityError::Unrecognized(s.to_string()))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Addr(a) => write!(f, "{a}"),
            // A received ID is any UTF-8 the peer likes, and it ends up in logs: control
            // characters (newlines, terminal escapes) are shown escaped.
            Identity::Fqdn(s) | Identity::UserFqdn(s) => s.chars().try_for_each(|c| {
                if c.is_control() {
                    write!(f, "{}", c.escape_default())
                } else {
                    f.write_char(c)
                }
            }),
            Identity::KeyId(k) => {
                f.write_str("keyid:")?;
                k.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_ids_cannot_forge_log_lines() {
        let id = Identity::from_wire(2, b"peer.example\n2026-01-01 INFO fake\x1b[31m").unwrap();
        assert_eq!(
            id.to_string(),
            "peer.example\\n2026-01-01 INFO fake\\u{1b}[31m"
        );
        let plain: Identity = "user@vpn.example.com".parse().unwrap();
        assert_eq!(plain.to_string(), "user@vpn.example.com");
    }

    #[test]
    fn errors_are_typed_and_say_what_is_wrong() {
        assert_eq!(
            Identity::from_wire(1, &[1, 2, 3]),
            Err(IdentityError::AddrLength { v6: false })
        );
        assert_eq!(
            Identity::from_wire(9, b"x"),
            Err(IdentityError::UnsupportedType(9))
        );
        assert_eq!(
            Identity::from_wire(5, &[0; 4]).unwrap_err().to_string(),
            "ID_IPV6_ADDR is not 16 bytes"
        );
        assert_eq!(
            "keyid:abc".parse::<Identity>(),
            Err(IdentityError::BadKeyId("keyid:abc".into()))
        );
        assert_eq!(
            "a b".parse::<Identity>().unwrap_err().to_string(),
            "'a b' is neither an IP address, an FQDN, user@fqdn nor keyid:HEX"
        );
    }
}
