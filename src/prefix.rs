//! IP prefixes (`10.2.30.0/25`), shared by traffic selectors, routes, BGP and config.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why a prefix was refused. The texts are those `ipsecgw check` prints after the key name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrefixError {
    /// The length exceeds the address width (`/33`).
    TooLong { len: u8, max: u8 },
    /// The address part does not parse.
    NotAPrefix(String),
    /// The length part does not parse.
    BadLength(String),
    /// `10.2.30.1/25`: host bits set, almost always a typo for `masked`.
    HostBits { text: String, masked: IpPrefix },
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefixError::TooLong { len, max } => {
                write!(f, "prefix length /{len} is longer than /{max}")
            }
            PrefixError::NotAPrefix(s) => write!(f, "'{s}' is not an IP prefix"),
            PrefixError::BadLength(s) => write!(f, "'{s}': bad prefix length"),
            PrefixError::HostBits { text, masked } => {
                write!(f, "'{text}' has host bits set (did you mean {masked}?)")
            }
        }
    }
}

impl std::error::Error for PrefixError {}

/// An IPv4 or IPv6 prefix whose host bits are always zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

// `len` is the prefix length, not a size: there is no meaningful `is_empty`.
#[allow(clippy::len_without_is_empty)]
impl IpPrefix {
    /// Builds a prefix, masking host bits. Fails if `len` exceeds the address width.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, PrefixError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(PrefixError::TooLong { len, max });
        }
        Ok(IpPrefix {
            addr: mask(addr, len),
            len,
        })
    }

    /// The host route for one address (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Self {
        let len = if addr.is_ipv4() { 32 } else { 128 };
        IpPrefix { addr, len }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for `0.0.0.0/0` and `::/0`.
    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.len) == self.addr
    }

    /// True if `other` lies entirely inside `self`.
    pub fn covers(&self, other: &IpPrefix) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }

    /// First and last address of the prefix (traffic selectors are ranges on the wire).
    pub fn range(&self) -> (IpAddr, IpAddr) {
        match self.addr {
            IpAddr::V4(a) => {
                let host = if self.len == 0 {
                    u32::MAX
                } else {
                    (1u32 << (32 - self.len)).wrapping_sub(1)
                };
                (
                    IpAddr::V4(a),
                    IpAddr::V4(Ipv4Addr::from(u32::from(a) | host)),
                )
            }
            IpAddr::V6(a) => {
                let host = if self.len == 0 {
                    u128::MAX
                } else {
                    (1u128 << (128 - self.len)).wrapping_sub(1)
                };
                (
                    IpAddr::V6(a),
                    IpAddr::V6(Ipv6Addr::from(u128::from(a) | host)),
                )
            }
        }
    }

    /// The prefix that exactly covers `start..=end`, if the range is a prefix.
    pub fn from_range(start: IpAddr, end: IpAddr) -> Option<Self> {
        (0..=if start.is_ipv4() { 32 } else { 128 })
            .map(|len| IpPrefix::new(start, len).ok())
            .find_map(|p| p.filter(|p| p.addr == start && p.range().1 == end))
    }
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len as u32)
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len as u32)
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

impl FromStr for IpPrefix {
    type Err = PrefixError;
    /// Parses `a.b.c.d/len` or a bare address (host prefix). Host bits must be zero,
    /// as a router would insist: `10.2.30.1/25` is almost always a typo.
    fn from_str(s: &str) -> Result<Self, PrefixError> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| PrefixError::NotAPrefix(s.to_string()))?;
        let Some(l) = l else {
            return Ok(IpPrefix::host(addr));
        };
        let len: u8 = l
            .trim()
            .parse()
            .map_err(|_| PrefixError::BadLength(s.to_string()))?;
        let p = IpPrefix::new(addr, len)?;
        if p.addr != addr {
            return Err(PrefixError::HostBits {
                text: s.to_string(),
                masked: p,
            });
        }
        Ok(p)
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_contain() {
        let p: IpPrefix = "10.2.30.0/25".parse().unwrap();
        assert!(p.contains("10.2.30.127".parse().unwrap()));
        assert!(!p.contains("10.2.30.128".parse().unwrap()));
        assert_eq!(
            "10.2.30.1/25".parse::<IpPrefix>().unwrap_err().to_string(),
            "'10.2.30.1/25' has host bits set (did you mean 10.2.30.0/25?)"
        );
        assert!("10.2.30.0/33".parse::<IpPrefix>().is_err());
        let all: IpPrefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.covers(&p) && !p.covers(&all));
        assert_eq!(all.range().1, "255.255.255.255".parse::<IpAddr>().unwrap());
        assert_eq!(IpPrefix::from_range(p.range().0, p.range().1), Some(p));
        assert_eq!(
            IpPrefix::from_range("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()),
            None
        );
    }
}
