//! The decoded form of BGP messages and path attributes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use super::Notification;
use crate::prefix::IpPrefix;

/// One whole BGP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    pub version: u8,
    /// 2-octet "My Autonomous System"; AS_TRANS when the real AS needs 4 octets.
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// The speaker's real AS: the 4-octet capability if present, else My AS.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(self.my_as as u32)
    }

    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
    }

    pub fn has(&self, cap: &Capability) -> bool {
        self.capabilities.contains(cap)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    Multiprotocol {
        afi: u16,
        safi: u8,
    },
    RouteRefresh,
    FourOctetAs(u32),
    /// Anything else (graceful restart, enhanced route refresh, ...): kept, never acted on.
    Other {
        code: u8,
        value: Vec<u8>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteRefresh {
    pub afi: u16,
    /// RFC 7313 message subtype (0 = normal request).
    pub subtype: u8,
    pub safi: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Origin::Igp => "igp",
            Origin::Egp => "egp",
            Origin::Incomplete => "incomplete",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AsSegment {
    Set(Vec<u32>),
    Sequence(Vec<u32>),
}

pub(super) const SEG_SET: u8 = 1;
pub(super) const SEG_SEQUENCE: u8 = 2;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AsPath {
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    pub fn sequence(asns: Vec<u32>) -> Self {
        AsPath {
            segments: vec![AsSegment::Sequence(asns)],
        }
    }

    /// Path length for best-path selection: each AS in a sequence counts, a set counts once
    /// (RFC 4271 9.1.2.2).
    pub fn path_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s {
                AsSegment::Sequence(a) => a.len(),
                AsSegment::Set(a) => usize::from(!a.is_empty()),
            })
            .sum()
    }

    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| match s {
            AsSegment::Sequence(a) | AsSegment::Set(a) => a.contains(&asn),
        })
    }

    /// The neighbouring AS: first AS of a leading AS_SEQUENCE.
    pub fn first_as(&self) -> Option<u32> {
        match self.segments.first() {
            Some(AsSegment::Sequence(a)) => a.first().copied(),
            _ => None,
        }
    }

    /// All ASNs in order, sets flattened (for display and status).
    pub fn flat(&self) -> Vec<u32> {
        self.segments
            .iter()
            .flat_map(|s| match s {
                AsSegment::Sequence(a) | AsSegment::Set(a) => a.iter().copied(),
            })
            .collect()
    }

    pub(super) fn needs_as4(&self) -> bool {
        self.flat().iter().any(|&a| a > 0xffff)
    }
}

impl fmt::Display for AsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.segments {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let (open, close, asns) = match seg {
                AsSegment::Sequence(a) => ("", "", a),
                AsSegment::Set(a) => ("{", "}", a),
            };
            let list: Vec<String> = asns.iter().map(|a| a.to_string()).collect();
            write!(f, "{open}{}{close}", list.join(" "))?;
        }
        Ok(())
    }
}

/// MP_REACH_NLRI (RFC 4760). `nlri` is filled for IPv4/IPv6 unicast only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpReach {
    pub afi: u16,
    pub safi: u8,
    pub next_hop: Option<IpAddr>,
    pub nlri: Vec<IpPrefix>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpUnreach {
    pub afi: u16,
    pub safi: u8,
    pub withdrawn: Vec<IpPrefix>,
}

/// An attribute this speaker does not interpret (kept for completeness; never re-advertised
/// because the speaker has a single peer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawAttr {
    pub flags: u8,
    pub type_code: u8,
    pub value: Vec<u8>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathAttrs {
    pub origin: Option<Origin>,
    /// With a 2-octet peer this is already merged with AS4_PATH (RFC 6793 4.2.3).
    pub as_path: Option<AsPath>,
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<u32>,
    /// Only meaningful on iBGP; an eBGP speaker never sends it and discards it on receipt.
    pub local_pref: Option<u32>,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    pub other: Vec<RawAttr>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    pub withdrawn: Vec<IpPrefix>,
    pub attrs: PathAttrs,
    pub nlri: Vec<IpPrefix>,
}

/// A decoded UPDATE plus what RFC 7606 says to do with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedUpdate {
    pub update: Update,
    /// Set when an attribute was malformed in a way that calls for "treat-as-withdraw": every
    /// NLRI of this UPDATE (traditional and MP_REACH) must be handled as withdrawn.
    pub treat_as_withdraw: Option<String>,
    /// Attributes dropped under "attribute discard" (logged, otherwise harmless).
    pub discarded: Vec<String>,
}
