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
