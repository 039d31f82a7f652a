//! Small text-to-value converters shared by the section builders, and [`ValueError`], why a
//! value was refused. Its text follows the key name in `check` output:
//! `` `remote_addrs`: "x" is not an IP address ``.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::prefix::{IpPrefix, PrefixError};

/// Why one config value was refused (the offending text is kept for the message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueError {
    /// A connection or child name that is empty or longer than 64 characters.
    NameLength(String),
    /// A name with characters other than letters, digits, `_` and `-`.
    NameChars(String),
    NotAnIp(String),
    /// Where `%any` would also have been accepted.
    NotAnIpOrAny(String),
    NotAnIpv4(String),
    Prefix(PrefixError),
    /// The `/len` of an interface address.
    PrefixLength(String),
    /// Linux limits interface names to 15 bytes.
    InterfaceNameLength(String),
    InterfaceName(String),
    RelativePath(String),
    NotASocketAddr(String),
    /// `0x…` that is not an even number of hex digits (the key itself is never shown).
    PskHex,
    /// Not a count like "5000", "100M" or "1G", or one beyond 2^64.
    Volume(String),
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::NameLength(n) => write!(f, "\"{n}\" must be 1 to 64 characters"),
            ValueError::NameChars(n) => {
                write!(f, "\"{n}\" may only contain letters, digits, '_' and '-'")
            }
            ValueError::NotAnIp(t) => write!(f, "\"{t}\" is not an IP address"),
            ValueError::NotAnIpOrAny(t) => {
                write!(f, "\"{t}\" is not an IP address (or \"%any\")")
            }
            ValueError::NotAnIpv4(t) => write!(f, "\"{t}\" is not an IPv4 address"),
            ValueError::Prefix(e) => e.fmt(f),
            ValueError::PrefixLength(t) => write!(f, "\"{t}\": bad prefix length"),
            ValueError::InterfaceNameLength(n) => write!(
                f,
                "\"{n}\" must be 1 to 15 characters (Linux interface name limit)"
            ),
            ValueError::InterfaceName(n) => write!(f, "\"{n}\" is not a valid interface name"),
            ValueError::RelativePath(p) => write!(f, "\"{p}\" must be an absolute path"),
            ValueError::NotASocketAddr(a) => {
                write!(f, "\"{a}\" is not an address:port like \"127.0.0.1:9813\"")
            }
            ValueError::PskHex => {
                f.write_str("pre-shared key starts with 0x but is not an even number of hex digits")
            }
            ValueError::Volume(t) => write!(
                f,
                "\"{t}\" is not a count like 5000, \"100M\" or \"1G\" (suffixes K, M, G: 1024-based)"
            ),
        }
    }
}

impl std::error::Error for ValueError {}

impl From<PrefixError> for ValueError {
    fn from(e: PrefixError) -> Self {
        ValueError::Prefix(e)
    }
}

pub(super) fn valid_name(name: &str) -> Result<String, ValueError> {
    if name.is_empty() || name.len() > 64 {
        return Err(ValueError::NameLength(name.to_string()));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ValueError::NameChars(name.to_string()));
    }
    Ok(name.to_string())
}

pub(super) fn ip(text: &str) -> Result<IpAddr, ValueError> {
    text.trim()
        .parse()
        .map_err(|_| ValueError::NotAnIp(text.to_string()))
}

pub(super) fn ipv4(text: &str) -> Result<Ipv4Addr, ValueError> {
    text.parse()
        .map_err(|_| ValueError::NotAnIpv4(text.to_string()))
}

/// An address, or None for "%any".
pub(super) fn ip_or_any(text: &str) -> Result<Option<IpAddr>, ValueError> {
    if text.trim() == "%any" {
        Ok(None)
    } else {
        ip(text)
            .map(Some)
            .map_err(|_| ValueError::NotAnIpOrAny(text.to_string()))
    }
}

pub(super) fn prefix(text: &str) -> Result<IpPrefix, ValueError> {
    Ok(text.parse()?)
}

pub(super) fn absolute_path(text: &str) -> Result<PathBuf, ValueError> {
    if Path::new(text).is_absolute() {
        Ok(PathBuf::from(text))
    } else {
        Err(ValueError::RelativePath(text.to_string()))
    }
}

pub(super) fn socket_addr(text: &str) -> Result<SocketAddr, ValueError> {
    text.parse()
        .map_err(|_| ValueError::NotASocketAddr(text.to_string()))
}

/// swanctl's byte/packet counts: digits and an optional K, M or G (times 1024, 1024^2,
/// 1024^3), e.g. Azure's 102400000 KB as "102400000K".
pub(super) fn parse_volume(text: &str) -> Result<u64, ValueError> {
    let bad = || ValueError::Volume(text.to_string());
    let t = text.trim();
    let (digits, factor) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(bad)
}

#[cfg(test)]
mod volume_tests {
    use super::parse_volume;

    #[test]
    fn swanctl_suffixes_and_azure_lifetime() {
        assert_eq!(parse_volume("5000"), Ok(5000));
        assert_eq!(parse_volume("100M"), Ok(100 << 20));
        assert_eq!(parse_volume("1G"), Ok(1 << 30));
        assert_eq!(parse_volume("4k"), Ok(4096));
        // Azure: CHILD SA lifetime 102,400,000 KB.
        assert_eq!(parse_volume("102400000K"), Ok(104_857_600_000));
        for bad in ["", "M", "1.5G", "-1", "1T", "18446744073709551615K", "1 G"] {
            assert!(parse_volume(bad).is_err(), "{bad:?}");
        }
    }
}
