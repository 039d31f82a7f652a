//! BGP-4 wire format (RFC 4271) with the extensions the speaker negotiates: capabilities
//! (RFC 5492), 4-octet AS numbers (RFC 6793), multiprotocol NLRI (RFC 4760), route refresh
//! (RFC 2918) and the RFC 7606 split between "reset the session" and "treat as withdraw".
//!
//! Decoding never panics: every length comes from the wire and is checked before use.
//! Errors that require a session reset come back as the [`Notification`] to send.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::prefix::IpPrefix;

pub const MARKER: [u8; 16] = [0xff; 16];
pub const HEADER_LEN: usize = 19;
pub const MAX_MESSAGE_LEN: usize = 4096;
pub const BGP_VERSION: u8 = 4;
/// Stand-in for a 4-octet AS number in 2-octet fields (RFC 6793).
pub const AS_TRANS: u16 = 23456;

pub const AFI_IPV4: u16 = 1;
pub const AFI_IPV6: u16 = 2;
pub const SAFI_UNICAST: u8 = 1;

pub const TYPE_OPEN: u8 = 1;
pub const TYPE_UPDATE: u8 = 2;
pub const TYPE_NOTIFICATION: u8 = 3;
pub const TYPE_KEEPALIVE: u8 = 4;
pub const TYPE_ROUTE_REFRESH: u8 = 5;

// Path attribute type codes.
pub const ATTR_ORIGIN: u8 = 1;
pub const ATTR_AS_PATH: u8 = 2;
pub const ATTR_NEXT_HOP: u8 = 3;
pub const ATTR_MED: u8 = 4;
pub const ATTR_LOCAL_PREF: u8 = 5;
pub const ATTR_ATOMIC_AGGREGATE: u8 = 6;
pub const ATTR_AGGREGATOR: u8 = 7;
pub const ATTR_MP_REACH: u8 = 14;
pub const ATTR_MP_UNREACH: u8 = 15;
pub const ATTR_AS4_PATH: u8 = 17;
pub const ATTR_AS4_AGGREGATOR: u8 = 18;

// Attribute flag bits.
pub const FLAG_OPTIONAL: u8 = 0x80;
pub const FLAG_TRANSITIVE: u8 = 0x40;
pub const FLAG_PARTIAL: u8 = 0x20;
pub const FLAG_EXT_LEN: u8 = 0x10;

// Capability codes.
pub const CAP_MULTIPROTOCOL: u8 = 1;
pub const CAP_ROUTE_REFRESH: u8 = 2;
pub const CAP_FOUR_OCTET_AS: u8 = 65;

/// NOTIFICATION error codes and the subcodes this speaker uses (RFC 4271 4.5, RFC 4486, RFC 6608).
pub mod err {
    pub const HEADER: u8 = 1;
    pub const HEADER_NOT_SYNC: u8 = 1;
    pub const HEADER_BAD_LENGTH: u8 = 2;
    pub const HEADER_BAD_TYPE: u8 = 3;

    pub const OPEN: u8 = 2;
    pub const OPEN_BAD_VERSION: u8 = 1;
    pub const OPEN_BAD_PEER_AS: u8 = 2;
    pub const OPEN_BAD_BGP_ID: u8 = 3;
    pub const OPEN_UNSUPPORTED_PARAM: u8 = 4;
    pub const OPEN_BAD_HOLD_TIME: u8 = 6;

    pub const UPDATE: u8 = 3;
    pub const UPDATE_MALFORMED_ATTR_LIST: u8 = 1;
    pub const UPDATE_UNRECOGNIZED_WELL_KNOWN: u8 = 2;
    pub const UPDATE_ATTR_FLAGS: u8 = 4;
    pub const UPDATE_OPTIONAL_ATTR: u8 = 9;
    pub const UPDATE_INVALID_NETWORK: u8 = 10;

    pub const HOLD_TIMER_EXPIRED: u8 = 4;

    pub const FSM: u8 = 5;
    pub const FSM_IN_OPENSENT: u8 = 1;
    pub const FSM_IN_OPENCONFIRM: u8 = 2;
    pub const FSM_IN_ESTABLISHED: u8 = 3;

    pub const CEASE: u8 = 6;
    pub const CEASE_MAX_PREFIXES: u8 = 1;
    pub const CEASE_ADMIN_SHUTDOWN: u8 = 2;
    pub const CEASE_ADMIN_RESET: u8 = 4;
    pub const CEASE_COLLISION: u8 = 7;

    pub const ROUTE_REFRESH: u8 = 7;
    pub const ROUTE_REFRESH_BAD_LENGTH: u8 = 1;
}

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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl Notification {
    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Self {
        Notification {
            code,
            subcode,
            data,
        }
    }

    /// Cease with an RFC 8203/9003 shutdown communication (a length-prefixed UTF-8 text).
    pub fn cease_with_text(subcode: u8, text: &str) -> Self {
        let mut end = text.len().min(255);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut data = vec![end as u8];
        data.extend_from_slice(&text.as_bytes()[..end]);
        Notification::new(err::CEASE, subcode, data)
    }

    /// Human-readable form, e.g. "Cease / Administrative Shutdown: \"maintenance\"".
    pub fn describe(&self) -> String {
        let (code, sub) = names(self.code, self.subcode);
        let mut s = match sub {
            Some(sub) => format!("{code} / {sub}"),
            None => format!("{code} / subcode {}", self.subcode),
        };
        let shutdown_text = self.code == err::CEASE
            && (self.subcode == err::CEASE_ADMIN_SHUTDOWN
                || self.subcode == err::CEASE_ADMIN_RESET);
        if shutdown_text {
            if let Some((&len, rest)) = self.data.split_first() {
                if let Some(text) = rest.get(..len as usize) {
                    // The peer's text goes into logs: escape newlines, terminal escapes, quotes.
                    let text = String::from_utf8_lossy(text);
                    s.push_str(&format!(": \"{}\"", text.escape_debug()));
                    return s;
                }
            }
        }
        if !self.data.is_empty() {
            s.push_str(" (data ");
            for b in self.data.iter().take(32) {
                s.push_str(&format!("{b:02x}"));
            }
            s.push(')');
        }
        s
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl std::error::Error for Notification {}

fn names(code: u8, subcode: u8) -> (&'static str, Option<&'static str>) {
    match code {
        1 => (
            "Message Header Error",
            match subcode {
                1 => Some("Connection Not Synchronized"),
                2 => Some("Bad Message Length"),
                3 => Some("Bad Message Type"),
                _ => None,
            },
        ),
        2 => (
            "OPEN Message Error",
            match subcode {
                0 => Some("Unspecific"),
                1 => Some("Unsupported Version Number"),
                2 => Some("Bad Peer AS"),
                3 => Some("Bad BGP Identifier"),
                4 => Some("Unsupported Optional Parameter"),
                6 => Some("Unacceptable Hold Time"),
                7 => Some("Unsupported Capability"),
                11 => Some("Role Mismatch"),
                _ => None,
            },
        ),
        3 => (
            "UPDATE Message Error",
            match subcode {
                1 => Some("Malformed Attribute List"),
                2 => Some("Unrecognized Well-known Attribute"),
                3 => Some("Missing Well-known Attribute"),
                4 => Some("Attribute Flags Error"),
                5 => Some("Attribute Length Error"),
                6 => Some("Invalid ORIGIN Attribute"),
                8 => Some("Invalid NEXT_HOP Attribute"),
                9 => Some("Optional Attribute Error"),
                10 => Some("Invalid Network Field"),
                11 => Some("Malformed AS_PATH"),
                _ => None,
            },
        ),
        4 => ("Hold Timer Expired", (subcode == 0).then_some("Unspecific")),
        5 => (
            "Finite State Machine Error",
            match subcode {
                0 => Some("Unspecified"),
                1 => Some("Unexpected Message in OpenSent"),
                2 => Some("Unexpected Message in OpenConfirm"),
                3 => Some("Unexpected Message in Established"),
                _ => None,
            },
        ),
        6 => (
            "Cease",
            match subcode {
                0 => Some("Unspecific"),
                1 => Some("Maximum Number of Prefixes Reached"),
                2 => Some("Administrative Shutdown"),
                3 => Some("Peer De-configured"),
                4 => Some("Administrative Reset"),
                5 => Some("Connection Rejected"),
                6 => Some("Other Configuration Change"),
                7 => Some("Connection Collision Resolution"),
                8 => Some("Out of Resources"),
                9 => Some("Hard Reset"),
                10 => Some("BFD Down"),
                _ => None,
            },
        ),
        7 => (
            "ROUTE-REFRESH Message Error",
            (subcode == 1).then_some("Invalid Message Length"),
        ),
        _ => ("Unknown Error Code", None),
    }
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

const SEG_SET: u8 = 1;
const SEG_SEQUENCE: u8 = 2;

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

    fn needs_as4(&self) -> bool {
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

// ---------------------------------------------------------------------------------------------
// Reading helpers: a cursor that returns None instead of panicking.

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    fn remaining(&self) -> usize {
        self.buf.len()
    }
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// The fixed header of one message, validated (RFC 4271 6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub length: usize,
    pub msg_type: u8,
}

/// Validates the 19-byte header at the start of `buf` (which must hold at least 19 bytes).
pub fn parse_header(buf: &[u8]) -> Result<Header, Notification> {
    let (marker, rest) = match (buf.get(..16), buf.get(16..HEADER_LEN)) {
        (Some(m), Some(r)) => (m, r),
        _ => {
            return Err(Notification::new(
                err::HEADER,
                err::HEADER_BAD_LENGTH,
                vec![],
            ))
        }
    };
    if marker != MARKER {
        return Err(Notification::new(err::HEADER, err::HEADER_NOT_SYNC, vec![]));
    }
    let length = u16::from_be_bytes([rest[0], rest[1]]) as usize;
    let msg_type = rest[2];
    let bad_len = || Notification::new(err::HEADER, err::HEADER_BAD_LENGTH, rest[..2].to_vec());
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&length) {
        return Err(bad_len());
    }
    let ok = match msg_type {
        TYPE_OPEN => length >= HEADER_LEN + 10,
        TYPE_UPDATE => length >= HEADER_LEN + 4,
        TYPE_NOTIFICATION => length >= HEADER_LEN + 2,
        TYPE_KEEPALIVE => length == HEADER_LEN,
        TYPE_ROUTE_REFRESH => length >= HEADER_LEN,
        _ => {
            return Err(Notification::new(
                err::HEADER,
                err::HEADER_BAD_TYPE,
                vec![msg_type],
            ))
        }
    };
    if !ok {
        return Err(bad_len());
    }
    Ok(Header { length, msg_type })
}

/// Decodes one complete message (header included). `four_octet_as` says whether both sides
/// announced the 4-octet AS capability (it changes the AS_PATH encoding).
///
/// For UPDATEs use [`decode_update`] when the RFC 7606 verdict is needed; here a
/// treat-as-withdraw UPDATE is returned with its attributes as far as they parsed.
pub fn decode(buf: &[u8], four_octet_as: bool) -> Result<Message, Notification> {
    let header = parse_header(buf)?;
    let body = buf
        .get(HEADER_LEN..header.length)
        .ok_or_else(|| Notification::new(err::HEADER, err::HEADER_BAD_LENGTH, vec![]))?;
    match header.msg_type {
        TYPE_OPEN => decode_open(body).map(Message::Open),
        TYPE_UPDATE => decode_update(body, four_octet_as).map(|d| Message::Update(d.update)),
        TYPE_NOTIFICATION => decode_notification(body).map(Message::Notification),
        TYPE_KEEPALIVE => Ok(Message::Keepalive),
        TYPE_ROUTE_REFRESH => decode_route_refresh(body).map(Message::RouteRefresh),
        t => Err(Notification::new(
            err::HEADER,
            err::HEADER_BAD_TYPE,
            vec![t],
        )),
    }
}

pub fn decode_open(body: &[u8]) -> Result<Open, Notification> {
    let mut r = Reader::new(body);
    let malformed = || Notification::new(err::OPEN, 0, vec![]);
    let version = r.u8().ok_or_else(malformed)?;
    if version != BGP_VERSION {
        // Data: the largest version we support (RFC 4271 6.2).
        return Err(Notification::new(
            err::OPEN,
            err::OPEN_BAD_VERSION,
            vec![0, BGP_VERSION],
        ));
    }
    let my_as = r.u16().ok_or_else(malformed)?;
    let hold_time = r.u16().ok_or_else(malformed)?;
    let bgp_id = Ipv4Addr::from(r.u32().ok_or_else(malformed)?);
    let mut opt_len = r.u8().ok_or_else(malformed)? as usize;
    // RFC 9072 extended optional parameters: length 255 followed by type 255.
    let extended = opt_len == 255 && r.buf.first() == Some(&255);
    if extended {
        r.u8();
        opt_len = r.u16().ok_or_else(malformed)? as usize;
    }
    let params = r.take(opt_len).ok_or_else(malformed)?;
    if !r.is_empty() {
        return Err(malformed());
    }
    let mut capabilities = Vec::new();
    let mut p = Reader::new(params);
    while !p.is_empty() {
        let ptype = p.u8().ok_or_else(malformed)?;
        let plen = if extended {
            p.u16()
        } else {
            p.u8().map(u16::from)
        }
        .ok_or_else(malformed)?;
        let pval = p.take(plen as usize).ok_or_else(malformed)?;
        if ptype != 2 {
            return Err(Notification::new(
                err::OPEN,
                err::OPEN_UNSUPPORTED_PARAM,
                vec![],
            ));
        }
        let mut c = Reader::new(pval);
        while !c.is_empty() {
            let code = c.u8().ok_or_else(malformed)?;
            let clen = c.u8().ok_or_else(malformed)?;
            let value = c.take(clen as usize).ok_or_else(malformed)?;
            capabilities.push(parse_capability(code, value));
        }
    }
    Ok(Open {
        version,
        my_as,
        hold_time,
        bgp_id,
        capabilities,
    })
}

fn parse_capability(code: u8, value: &[u8]) -> Capability {
    match (code, value) {
        (CAP_MULTIPROTOCOL, [a0, a1, _, safi]) => Capability::Multiprotocol {
            afi: u16::from_be_bytes([*a0, *a1]),
            safi: *safi,
        },
        (CAP_ROUTE_REFRESH, []) => Capability::RouteRefresh,
        (CAP_FOUR_OCTET_AS, [a, b, c, d]) => {
            Capability::FourOctetAs(u32::from_be_bytes([*a, *b, *c, *d]))
        }
        _ => Capability::Other {
            code,
            value: value.to_vec(),
        },
    }
}

pub fn decode_notification(body: &[u8]) -> Result<Notification, Notification> {
    match body {
        [code, subcode, data @ ..] => Ok(Notification::new(*code, *subcode, data.to_vec())),
        _ => Err(Notification::new(
            err::HEADER,
            err::HEADER_BAD_LENGTH,
            vec![],
        )),
    }
}

pub fn decode_route_refresh(body: &[u8]) -> Result<RouteRefresh, Notification> {
    match body {
        [a0, a1, subtype, safi] => Ok(RouteRefresh {
            afi: u16::from_be_bytes([*a0, *a1]),
            subtype: *subtype,
            safi: *safi,
        }),
        _ => {
            let len = ((body.len() + HEADER_LEN) as u16).to_be_bytes();
            // RFC 7313: the whole message goes back as data; the length is the useful part.
            Err(Notification::new(
                err::ROUTE_REFRESH,
                err::ROUTE_REFRESH_BAD_LENGTH,
                len.to_vec(),
            ))
        }
    }
}

/// Reads a sequence of (length, prefix) NLRI entries. None on any overrun or bad length.
fn read_prefixes(buf: &[u8], v6: bool) -> Option<Vec<IpPrefix>> {
    let width: u8 = if v6 { 128 } else { 32 };
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = r.u8()?;
        if len > width {
            return None;
        }
        let bytes = r.take(len.div_ceil(8) as usize)?;
        let addr = if v6 {
            let mut a = [0u8; 16];
            a.get_mut(..bytes.len())?.copy_from_slice(bytes);
            IpAddr::V6(Ipv6Addr::from(a))
        } else {
            let mut a = [0u8; 4];
            a.get_mut(..bytes.len())?.copy_from_slice(bytes);
            IpAddr::V4(Ipv4Addr::from(a))
        };
        // Trailing bits are "irrelevant" (RFC 4271 4.3): mask them rather than reject.
        out.push(IpPrefix::new(addr, len).ok()?);
    }
    Some(out)
}

fn write_prefix(out: &mut Vec<u8>, p: &IpPrefix) {
    out.push(p.len());
    let n = p.len().div_ceil(8) as usize;
    match p.addr() {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()[..n.min(4)]),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()[..n.min(16)]),
    }
}

fn invalid_network() -> Notification {
    Notification::new(err::UPDATE, err::UPDATE_INVALID_NETWORK, vec![])
}

fn malformed_attr_list() -> Notification {
    Notification::new(err::UPDATE, err::UPDATE_MALFORMED_ATTR_LIST, vec![])
}

/// Decodes an UPDATE body (RFC 4271 4.3) with RFC 7606 error handling:
/// - `Err(notification)`: the session must be reset (unlocatable NLRI, NLRI parse errors,
///   malformed MP_REACH/MP_UNREACH, unrecognized well-known attribute);
/// - `Ok` with `treat_as_withdraw` set: malformed attribute, the NLRI are to be withdrawn;
/// - `Ok` with `discarded`: attributes dropped, route otherwise fine.
pub fn decode_update(body: &[u8], four_octet_as: bool) -> Result<DecodedUpdate, Notification> {
    let mut r = Reader::new(body);
    let wlen = r.u16().ok_or_else(malformed_attr_list)? as usize;
    let wbuf = r.take(wlen).ok_or_else(malformed_attr_list)?;
    let alen = r.u16().ok_or_else(malformed_attr_list)? as usize;
    let abuf = r.take(alen).ok_or_else(malformed_attr_list)?;
    let nbuf = r.buf;
    let withdrawn = read_prefixes(wbuf, false).ok_or_else(invalid_network)?;
    let nlri = read_prefixes(nbuf, false).ok_or_else(invalid_network)?;

    let mut attrs = PathAttrs::default();
    let mut treat_as_withdraw: Option<String> = None;
    let mut discarded = Vec::new();
    let mut as4_path: Option<AsPath> = None;
    let mut seen = [false; 256];
    let mut a = Reader::new(abuf);
    let mut withdraw = |why: String| {
        if treat_as_withdraw.is_none() {
            treat_as_withdraw = Some(why);
        }
    };
    while !a.is_empty() {
        let Some(hdr) = a.buf.get(..2) else {
            withdraw("attribute header truncated".into());
            break;
        };
        let (flags, type_code) = (hdr[0], hdr[1]);
        let hdr_len = if flags & FLAG_EXT_LEN != 0 { 4 } else { 3 };
        if a.remaining() < hdr_len {
            withdraw(format!("attribute {type_code} header truncated"));
            break;
        }
        a.take(2);
        let len = if flags & FLAG_EXT_LEN != 0 {
            a.u16().map(usize::from)
        } else {
            a.u8().map(usize::from)
        };
        let Some(value) = len.and_then(|l| a.take(l)) else {
            // RFC 7606 4: rely on Total Path Attribute Length to find the NLRI.
            withdraw(format!(
                "attribute {type_code} length overruns the path attributes"
            ));
            break;
        };
        let is_mp = type_code == ATTR_MP_REACH || type_code == ATTR_MP_UNREACH;
        if seen[type_code as usize] {
            if is_mp {
                return Err(malformed_attr_list());
            }
            discarded.push(format!("duplicate attribute {type_code}"));
            continue;
        }
        seen[type_code as usize] = true;

        let expected_flags = match type_code {
            ATTR_ORIGIN
            | ATTR_AS_PATH
            | ATTR_NEXT_HOP
            | ATTR_LOCAL_PREF
            | ATTR_ATOMIC_AGGREGATE => Some(FLAG_TRANSITIVE),
            ATTR_MED | ATTR_MP_REACH | ATTR_MP_UNREACH => Some(FLAG_OPTIONAL),
            ATTR_AGGREGATOR | ATTR_AS4_PATH | ATTR_AS4_AGGREGATOR => {
                Some(FLAG_OPTIONAL | FLAG_TRANSITIVE)
            }
            _ => None,
        };
        if let Some(exp) = expected_flags {
            if flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE) != exp {
                if is_mp {
                    return Err(Notification::new(
                        err::UPDATE,
                        err::UPDATE_ATTR_FLAGS,
                        vec![],
                    ));
                }
                withdraw(format!("attribute {type_code} has flags {flags:#04x}"));
                continue;
            }
        }
        match type_code {
            ATTR_ORIGIN => match value {
                [0] => attrs.origin = Some(Origin::Igp),
                [1] => attrs.origin = Some(Origin::Egp),
                [2] => attrs.origin = Some(Origin::Incomplete),
                _ => withdraw(format!("malformed ORIGIN {value:02x?}")),
            },
            ATTR_AS_PATH => match parse_as_path(value, four_octet_as) {
                Some(p) => attrs.as_path = Some(p),
                None => withdraw("malformed AS_PATH".into()),
            },
            ATTR_NEXT_HOP => match value {
                [a, b, c, d] => attrs.next_hop = Some(Ipv4Addr::new(*a, *b, *c, *d)),
                _ => withdraw(format!("NEXT_HOP length {}", value.len())),
            },
            ATTR_MED => match value {
                [a, b, c, d] => attrs.med = Some(u32::from_be_bytes([*a, *b, *c, *d])),
                _ => withdraw(format!("MULTI_EXIT_DISC length {}", value.len())),
            },
            ATTR_LOCAL_PREF => match value {
                [a, b, c, d] => attrs.local_pref = Some(u32::from_be_bytes([*a, *b, *c, *d])),
                _ => discarded.push(format!("LOCAL_PREF length {}", value.len())),
            },
            ATTR_ATOMIC_AGGREGATE | ATTR_AGGREGATOR | ATTR_AS4_AGGREGATOR => {
                // Not used for route selection here; RFC 7606 says discard if malformed.
                attrs.other.push(RawAttr {
                    flags,
                    type_code,
                    value: value.to_vec(),
                });
            }
            ATTR_AS4_PATH => match parse_as_path(value, true) {
                Some(p) => as4_path = Some(p),
                None => discarded.push("malformed AS4_PATH".into()),
            },
            ATTR_MP_REACH => attrs.mp_reach = Some(parse_mp_reach(value)?),
            ATTR_MP_UNREACH => attrs.mp_unreach = Some(parse_mp_unreach(value)?),
            _ => {
                if flags & FLAG_OPTIONAL == 0 {
                    // A well-known attribute we do not know (RFC 4271 6.3).
                    let mut data = vec![flags, type_code];
                    data.extend_from_slice(value);
                    return Err(Notification::new(
                        err::UPDATE,
                        err::UPDATE_UNRECOGNIZED_WELL_KNOWN,
                        data,
                    ));
                }
                attrs.other.push(RawAttr {
                    flags,
                    type_code,
                    value: value.to_vec(),
                });
            }
        }
    }

    if let Some(as4) = as4_path {
        if four_octet_as {
            discarded.push("AS4_PATH from a 4-octet speaker".into());
        } else if let Some(path) = attrs.as_path.take() {
            attrs.as_path = Some(merge_as4_path(path, as4));
        }
    }

    let has_reach = !nlri.is_empty() || attrs.mp_reach.as_ref().is_some_and(|m| !m.nlri.is_empty());
    if has_reach && treat_as_withdraw.is_none() {
        let missing = if attrs.origin.is_none() {
            Some("ORIGIN")
        } else if attrs.as_path.is_none() {
            Some("AS_PATH")
        } else if !nlri.is_empty() && attrs.next_hop.is_none() {
            Some("NEXT_HOP")
        } else {
            None
        };
        if let Some(m) = missing {
            treat_as_withdraw = Some(format!("missing well-known attribute {m}"));
        }
    }
    Ok(DecodedUpdate {
        update: Update {
            withdrawn,
            attrs,
            nlri,
        },
        treat_as_withdraw,
        discarded,
    })
}

fn parse_as_path(value: &[u8], four_octet: bool) -> Option<AsPath> {
    let mut r = Reader::new(value);
    let mut segments = Vec::new();
    while !r.is_empty() {
        let seg_type = r.u8()?;
        let count = r.u8()? as usize;
        if count == 0 {
            return None;
        }
        let mut asns = Vec::with_capacity(count);
        for _ in 0..count {
            asns.push(if four_octet {
                r.u32()?
            } else {
                r.u16()? as u32
            });
        }
        segments.push(match seg_type {
            SEG_SET => AsSegment::Set(asns),
            SEG_SEQUENCE => AsSegment::Sequence(asns),
            // Confederation segments never come from an eBGP peer (RFC 7606 7.2).
            _ => return None,
        });
    }
    Some(AsPath { segments })
}

/// RFC 6793 4.2.3: keep the leading part of AS_PATH that AS4_PATH does not cover.
fn merge_as4_path(as_path: AsPath, as4: AsPath) -> AsPath {
    let (n, n4) = (as_path.path_len(), as4.path_len());
    if n < n4 {
        return as_path;
    }
    let mut keep = n - n4;
    let mut segments = Vec::new();
    for seg in as_path.segments {
        if keep == 0 {
            break;
        }
        match seg {
            AsSegment::Sequence(a) => {
                let take = a.len().min(keep);
                keep -= take;
                segments.push(AsSegment::Sequence(a.into_iter().take(take).collect()));
            }
            AsSegment::Set(a) => {
                keep -= 1;
                segments.push(AsSegment::Set(a));
            }
        }
    }
    segments.extend(as4.segments);
    AsPath { segments }
}

fn mp_error() -> Notification {
    Notification::new(err::UPDATE, err::UPDATE_OPTIONAL_ATTR, vec![])
}

fn parse_mp_reach(value: &[u8]) -> Result<MpReach, Notification> {
    let mut r = Reader::new(value);
    let afi = r.u16().ok_or_else(mp_error)?;
    let safi = r.u8().ok_or_else(mp_error)?;
    let nh_len = r.u8().ok_or_else(mp_error)? as usize;
    let nh = r.take(nh_len).ok_or_else(mp_error)?;
    r.u8().ok_or_else(mp_error)?; // reserved
    let known = safi == SAFI_UNICAST && (afi == AFI_IPV4 || afi == AFI_IPV6);
    if !known {
        return Ok(MpReach {
            afi,
            safi,
            next_hop: None,
            nlri: vec![],
        });
    }
    let next_hop = match nh {
        [a, b, c, d] => Some(IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d))),
        // IPv6 global (+ optional link-local): the global one is the next hop.
        _ if nh.len() == 16 || nh.len() == 32 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(nh.get(..16).ok_or_else(mp_error)?);
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => return Err(mp_error()),
    };
    let nlri = read_prefixes(r.buf, afi == AFI_IPV6).ok_or_else(mp_error)?;
    Ok(MpReach {
        afi,
        safi,
        next_hop,
        nlri,
    })
}

fn parse_mp_unreach(value: &[u8]) -> Result<MpUnreach, Notification> {
    let mut r = Reader::new(value);
    let afi = r.u16().ok_or_else(mp_error)?;
    let safi = r.u8().ok_or_else(mp_error)?;
    let known = safi == SAFI_UNICAST && (afi == AFI_IPV4 || afi == AFI_IPV6);
    let withdrawn = if known {
        read_prefixes(r.buf, afi == AFI_IPV6).ok_or_else(mp_error)?
    } else {
        vec![]
    };
    Ok(MpUnreach {
        afi,
        safi,
        withdrawn,
    })
}

// ---------------------------------------------------------------------------------------------
// Encoding

fn finish(msg_type: u8, body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MARKER);
    // Callers keep bodies under 4096 bytes; saturate rather than wrap if one does not.
    let len = u16::try_from(HEADER_LEN + body.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(msg_type);
    out.extend_from_slice(&body);
    out
}

/// Encodes one message with its header. `four_octet_as` selects the AS_PATH encoding.
pub fn encode(msg: &Message, four_octet_as: bool) -> Vec<u8> {
    match msg {
        Message::Open(o) => finish(TYPE_OPEN, encode_open(o)),
        Message::Update(u) => finish(TYPE_UPDATE, encode_update(u, four_octet_as)),
        Message::Notification(n) => {
            let mut body = vec![n.code, n.subcode];
            body.extend_from_slice(&n.data);
            finish(TYPE_NOTIFICATION, body)
        }
        Message::Keepalive => finish(TYPE_KEEPALIVE, vec![]),
        Message::RouteRefresh(rr) => {
            let mut body = rr.afi.to_be_bytes().to_vec();
            body.extend_from_slice(&[rr.subtype, rr.safi]);
            finish(TYPE_ROUTE_REFRESH, body)
        }
    }
}

fn encode_open(o: &Open) -> Vec<u8> {
    let mut caps = Vec::new();
    for c in &o.capabilities {
        match c {
            Capability::Multiprotocol { afi, safi } => {
                caps.extend_from_slice(&[CAP_MULTIPROTOCOL, 4]);
                caps.extend_from_slice(&afi.to_be_bytes());
                caps.extend_from_slice(&[0, *safi]);
            }
            Capability::RouteRefresh => caps.extend_from_slice(&[CAP_ROUTE_REFRESH, 0]),
            Capability::FourOctetAs(asn) => {
                caps.extend_from_slice(&[CAP_FOUR_OCTET_AS, 4]);
                caps.extend_from_slice(&asn.to_be_bytes());
            }
            Capability::Other { code, value } => {
                let v = &value[..value.len().min(255)];
                caps.extend_from_slice(&[*code, v.len() as u8]);
                caps.extend_from_slice(v);
            }
        }
    }
    let mut body = vec![o.version];
    body.extend_from_slice(&o.my_as.to_be_bytes());
    body.extend_from_slice(&o.hold_time.to_be_bytes());
    body.extend_from_slice(&o.bgp_id.octets());
    if caps.is_empty() {
        body.push(0);
    } else {
        // One Capabilities parameter per 255 bytes of capabilities, split on capability
        // boundaries is not needed for the handful this speaker sends.
        let caps = &caps[..caps.len().min(253)];
        body.push(caps.len() as u8 + 2);
        body.push(2);
        body.push(caps.len() as u8);
        body.extend_from_slice(caps);
    }
    body
}

fn push_attr(out: &mut Vec<u8>, flags: u8, type_code: u8, value: &[u8]) {
    if value.len() > 255 {
        out.extend_from_slice(&[flags | FLAG_EXT_LEN, type_code]);
        out.extend_from_slice(&(value.len().min(0xffff) as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[flags & !FLAG_EXT_LEN, type_code, value.len() as u8]);
    }
    out.extend_from_slice(value);
}

fn encode_as_path(path: &AsPath, four_octet: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for seg in &path.segments {
        let (t, asns) = match seg {
            AsSegment::Set(a) => (SEG_SET, a),
            AsSegment::Sequence(a) => (SEG_SEQUENCE, a),
        };
        for chunk in asns.chunks(255) {
            out.extend_from_slice(&[t, chunk.len() as u8]);
            for &asn in chunk {
                if four_octet {
                    out.extend_from_slice(&asn.to_be_bytes());
                } else {
                    let short = u16::try_from(asn).unwrap_or(AS_TRANS);
                    out.extend_from_slice(&short.to_be_bytes());
                }
            }
        }
    }
    out
}

fn encode_update(u: &Update, four_octet: bool) -> Vec<u8> {
    let mut withdrawn = Vec::new();
    for p in &u.withdrawn {
        write_prefix(&mut withdrawn, p);
    }
    let a = &u.attrs;
    let mut attrs = Vec::new();
    if let Some(o) = a.origin {
        push_attr(&mut attrs, FLAG_TRANSITIVE, ATTR_ORIGIN, &[o as u8]);
    }
    if let Some(p) = &a.as_path {
        push_attr(
            &mut attrs,
            FLAG_TRANSITIVE,
            ATTR_AS_PATH,
            &encode_as_path(p, four_octet),
        );
    }
    if let Some(nh) = a.next_hop {
        push_attr(&mut attrs, FLAG_TRANSITIVE, ATTR_NEXT_HOP, &nh.octets());
    }
    if let Some(med) = a.med {
        push_attr(&mut attrs, FLAG_OPTIONAL, ATTR_MED, &med.to_be_bytes());
    }
    if let Some(lp) = a.local_pref {
        push_attr(
            &mut attrs,
            FLAG_TRANSITIVE,
            ATTR_LOCAL_PREF,
            &lp.to_be_bytes(),
        );
    }
    if let Some(m) = &a.mp_reach {
        let mut v = m.afi.to_be_bytes().to_vec();
        v.push(m.safi);
        match m.next_hop {
            Some(IpAddr::V4(nh)) => {
                v.push(4);
                v.extend_from_slice(&nh.octets());
            }
            Some(IpAddr::V6(nh)) => {
                v.push(16);
                v.extend_from_slice(&nh.octets());
            }
            None => v.push(0),
        }
        v.push(0);
        for p in &m.nlri {
            write_prefix(&mut v, p);
        }
        push_attr(&mut attrs, FLAG_OPTIONAL, ATTR_MP_REACH, &v);
    }
    if let Some(m) = &a.mp_unreach {
        let mut v = m.afi.to_be_bytes().to_vec();
        v.push(m.safi);
        for p in &m.withdrawn {
            write_prefix(&mut v, p);
        }
        push_attr(&mut attrs, FLAG_OPTIONAL, ATTR_MP_UNREACH, &v);
    }
    if let Some(p) = &a.as_path {
        if !four_octet && p.needs_as4() {
            // Carry the real 4-octet path for a 2-octet peer (RFC 6793 4.2.2).
            push_attr(
                &mut attrs,
                FLAG_OPTIONAL | FLAG_TRANSITIVE,
                ATTR_AS4_PATH,
                &encode_as_path(p, true),
            );
        }
    }
    for raw in &a.other {
        push_attr(&mut attrs, raw.flags, raw.type_code, &raw.value);
    }
    let mut body = Vec::new();
    body.extend_from_slice(&(withdrawn.len().min(0xffff) as u16).to_be_bytes());
    body.extend_from_slice(&withdrawn);
    body.extend_from_slice(&(attrs.len().min(0xffff) as u16).to_be_bytes());
    body.extend_from_slice(&attrs);
    for p in &u.nlri {
        write_prefix(&mut body, p);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> IpPrefix {
        s.parse().unwrap()
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn roundtrip(m: Message, four: bool) {
        let bytes = encode(&m, four);
        assert_eq!(parse_header(&bytes).unwrap().length, bytes.len());
        assert_eq!(decode(&bytes, four).unwrap(), m);
    }

    fn full_update() -> Update {
        Update {
            withdrawn: vec![p("10.9.0.0/16"), p("0.0.0.0/0"), p("192.0.2.7/32")],
            attrs: PathAttrs {
                origin: Some(Origin::Egp),
                as_path: Some(AsPath {
                    segments: vec![
                        AsSegment::Sequence(vec![65515, 4_200_000_000]),
                        AsSegment::Set(vec![1, 2]),
                    ],
                }),
                next_hop: Some(Ipv4Addr::new(10, 10, 30, 254)),
                med: Some(77),
                local_pref: Some(200),
                mp_reach: None,
                mp_unreach: None,
                other: vec![RawAttr {
                    flags: FLAG_OPTIONAL | FLAG_TRANSITIVE,
                    type_code: 8,
                    value: vec![0xfd, 0xeb, 0, 1],
                }],
            },
            nlri: vec![p("10.2.0.0/24"), p("10.2.30.0/25"), p("172.16.0.0/12")],
        }
    }

    #[test]
    fn roundtrip_every_message_type() {
        let open = Open {
            version: 4,
            my_as: AS_TRANS,
            hold_time: 30,
            bgp_id: Ipv4Addr::new(10, 2, 30, 125),
            capabilities: vec![
                Capability::Multiprotocol {
                    afi: AFI_IPV4,
                    safi: SAFI_UNICAST,
                },
                Capability::RouteRefresh,
                Capability::FourOctetAs(4_200_000_000),
                Capability::Other {
                    code: 64,
                    value: vec![0, 120],
                },
            ],
        };
        roundtrip(Message::Open(open), true);
        roundtrip(Message::Keepalive, true);
        roundtrip(
            Message::Notification(Notification::new(6, 2, vec![3, b'b', b'y', b'e'])),
            true,
        );
        roundtrip(
            Message::RouteRefresh(RouteRefresh {
                afi: 1,
                subtype: 0,
                safi: 1,
            }),
            true,
        );
        roundtrip(Message::Update(full_update()), true);
        roundtrip(Message::Update(Update::default()), false);
        assert_eq!(
            encode(&Message::Keepalive, true),
            [[0xff; 16].as_slice(), &[0, 19, 4]].concat()
        );
    }

    #[test]
    fn roundtrip_mp_reach_and_unreach() {
        let u = Update {
            withdrawn: vec![],
            attrs: PathAttrs {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence(vec![65515])),
                mp_reach: Some(MpReach {
                    afi: AFI_IPV4,
                    safi: SAFI_UNICAST,
                    next_hop: Some("10.10.30.254".parse().unwrap()),
                    nlri: vec![p("10.2.0.0/24")],
                }),
                mp_unreach: Some(MpUnreach {
                    afi: AFI_IPV6,
                    safi: SAFI_UNICAST,
                    withdrawn: vec![p("2001:db8::/32")],
                }),
                ..PathAttrs::default()
            },
            nlri: vec![],
        };
        roundtrip(Message::Update(u), true);
    }

    #[test]
    fn two_octet_peer_gets_as_trans_and_as4_path_and_merges_back() {
        let mut u = full_update();
        u.attrs.other.clear();
        let bytes = encode(&Message::Update(u.clone()), false);
        let body = &bytes[HEADER_LEN..];
        // The 2-octet AS_PATH carries AS_TRANS where the 4-octet AS does not fit.
        let d = decode_update(body, false).unwrap();
        assert_eq!(d.treat_as_withdraw, None);
        assert_eq!(d.update, u, "AS4_PATH merged back into AS_PATH");
        // A 2-octet speaker that did not pass AS4_PATH on: only AS_TRANS is visible.
        let mut short = u.clone();
        short.attrs.as_path = Some(AsPath::sequence(vec![65515, 4_200_000_000]));
        let b = encode(&Message::Update(short), false);
        let needle = [2u8, 2, 0xff, 0xeb, 0x5b, 0xa0];
        assert!(
            b.windows(needle.len()).any(|w| w == needle),
            "AS_PATH 65515 23456 in 2-octet form"
        );
    }

    #[test]
    fn merge_as4_path_keeps_leading_asns_not_covered() {
        // A 2-octet AS_PATH "100 23456 23456" with AS4_PATH "4200000000 4200000001" (RFC 6793 4.2.3).
        let merged = merge_as4_path(
            AsPath::sequence(vec![100, 23456, 23456]),
            AsPath::sequence(vec![4_200_000_000, 4_200_000_001]),
        );
        assert_eq!(merged.flat(), vec![100, 4_200_000_000, 4_200_000_001]);
        // AS4_PATH longer than AS_PATH: ignored.
        let kept = merge_as4_path(AsPath::sequence(vec![100]), AsPath::sequence(vec![1, 2]));
        assert_eq!(kept.flat(), vec![100]);
    }

    #[test]
    fn parses_bird_open_with_4_octet_as_mp_rr_and_unknown_caps() {
        // BIRD 2 as AS65515, router id 10.10.30.254, hold 30: MP IPv4/unicast, route refresh,
        // graceful restart (aware), 4-octet AS, enhanced route refresh, long-lived GR.
        let bytes = hex("ffffffffffffffffffffffffffffffff 0035 01
             04 ffeb 001e 0a0a1efe 18
             02 16 010400010001 0200 40020078 41040000ffeb 4600 4700");
        let Message::Open(o) = decode(&bytes, false).unwrap() else {
            panic!("not an OPEN")
        };
        assert_eq!((o.version, o.my_as, o.hold_time), (4, 65515, 30));
        assert_eq!(o.bgp_id, Ipv4Addr::new(10, 10, 30, 254));
        assert_eq!(o.asn(), 65515);
        assert!(o.has(&Capability::Multiprotocol { afi: 1, safi: 1 }));
        assert!(o.has(&Capability::RouteRefresh));
        assert_eq!(o.four_octet_as(), Some(65515));
        assert!(o.has(&Capability::Other {
            code: 70,
            value: vec![]
        }));
        assert_eq!(o.capabilities.len(), 6);

        // Same capabilities, one optional parameter each (Cisco style), 4-byte AS 4200000000.
        let bytes = hex("ffffffffffffffffffffffffffffffff 0035 01
             04 5ba0 00b4 c0000201 18
             02 06 010400010001 02 02 0200 02 06 4104fa56ea00 02 02 4600");
        let Message::Open(o) = decode(&bytes, true).unwrap() else {
            panic!("not an OPEN")
        };
        assert_eq!(o.my_as, AS_TRANS);
        assert_eq!(o.asn(), 4_200_000_000);
        assert_eq!(o.hold_time, 180);
        assert_eq!(o.capabilities.len(), 4);
    }

    #[test]
    fn parses_extended_optional_parameters() {
        // RFC 9072: non-ext length 255, type 255, 2-byte length, params with 2-byte lengths.
        let bytes = hex("ffffffffffffffffffffffffffffffff 0027 01
             04 ffeb 001e 0a0a1efe ff ff 0007
             02 0004 0200 4600");
        let bytes = {
            let mut b = bytes;
            let l = b.len() as u16;
            b[16..18].copy_from_slice(&l.to_be_bytes());
            b
        };
        let o = decode_open(&bytes[HEADER_LEN..]).unwrap();
        assert!(o.has(&Capability::RouteRefresh));
        assert_eq!(o.capabilities.len(), 2);
    }

    #[test]
    fn header_errors_have_the_right_codes() {
        let mut ka = encode(&Message::Keepalive, true);
        ka[3] = 0;
        assert_eq!(
            parse_header(&ka).unwrap_err(),
            Notification::new(1, 1, vec![])
        );
        let mut ka = encode(&Message::Keepalive, true);
        ka[16..18].copy_from_slice(&5000u16.to_be_bytes());
        assert_eq!(
            parse_header(&ka).unwrap_err(),
            Notification::new(1, 2, vec![0x13, 0x88])
        );
        let mut ka = encode(&Message::Keepalive, true);
        ka[16..18].copy_from_slice(&18u16.to_be_bytes());
        assert_eq!(
            parse_header(&ka).unwrap_err().subcode,
            err::HEADER_BAD_LENGTH
        );
        let mut ka = encode(&Message::Keepalive, true);
        ka[18] = 9;
        assert_eq!(
            parse_header(&ka).unwrap_err(),
            Notification::new(1, 3, vec![9])
        );
        // KEEPALIVE with a body, OPEN too short.
        let mut ka = encode(&Message::Keepalive, true);
        ka[17] = 20;
        assert_eq!(
            parse_header(&ka).unwrap_err().subcode,
            err::HEADER_BAD_LENGTH
        );
        let mut open = encode(&Message::Keepalive, true);
        open[18] = TYPE_OPEN;
        assert_eq!(
            parse_header(&open).unwrap_err().subcode,
            err::HEADER_BAD_LENGTH
        );
        assert!(parse_header(&[0xff; 10]).is_err());
    }

    #[test]
    fn open_errors() {
        let good = hex("04 ffeb 001e 0a0a1efe 00");
        assert!(decode_open(&good).is_ok());
        let mut v3 = good.clone();
        v3[0] = 3;
        assert_eq!(
            decode_open(&v3).unwrap_err(),
            Notification::new(2, 1, vec![0, 4])
        );
        let auth_param = hex("04 ffeb 001e 0a0a1efe 04 01 02 aabb");
        assert_eq!(
            decode_open(&auth_param).unwrap_err().subcode,
            err::OPEN_UNSUPPORTED_PARAM
        );
        let overrun = hex("04 ffeb 001e 0a0a1efe 08 02 02 0200");
        assert_eq!(decode_open(&overrun).unwrap_err().code, err::OPEN);
        let cap_overrun = hex("04 ffeb 001e 0a0a1efe 04 02 02 4104");
        assert_eq!(decode_open(&cap_overrun).unwrap_err().code, err::OPEN);
        assert!(decode_open(&[4, 1]).is_err());
    }

    /// UPDATE body: withdrawn (none), the given attribute bytes, one NLRI 10.2.0.0/24.
    fn update_with_attrs(attrs: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0];
        b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        b.extend_from_slice(attrs);
        b.extend_from_slice(&[24, 10, 2, 0]);
        b
    }

    const GOOD_ATTRS: &str = "40 01 01 00   40 02 06 02 01 0000ffeb   40 03 04 0a0a1efe";

    #[test]
    fn good_update_parses_clean() {
        let d = decode_update(&update_with_attrs(&hex(GOOD_ATTRS)), true).unwrap();
        assert_eq!(d.treat_as_withdraw, None);
        assert_eq!(d.update.nlri, vec![p("10.2.0.0/24")]);
        assert_eq!(d.update.attrs.as_path, Some(AsPath::sequence(vec![65515])));
    }

    #[test]
    fn bad_origin_value_is_treat_as_withdraw() {
        let attrs = hex("40 01 01 07   40 02 06 02 01 0000ffeb   40 03 04 0a0a1efe");
        let d = decode_update(&update_with_attrs(&attrs), true).unwrap();
        assert!(d.treat_as_withdraw.unwrap().contains("ORIGIN"));
        assert_eq!(
            d.update.nlri,
            vec![p("10.2.0.0/24")],
            "NLRI still located, to be withdrawn"
        );
    }

    #[test]
    fn attribute_length_overrun_is_treat_as_withdraw_with_nlri_found() {
        // NEXT_HOP claims 9 bytes but only 4 remain in the path attributes.
        let attrs = hex("40 01 01 00   40 02 06 02 01 0000ffeb   40 03 09 0a0a1efe");
        let d = decode_update(&update_with_attrs(&attrs), true).unwrap();
        assert!(d.treat_as_withdraw.unwrap().contains("overrun"));
        assert_eq!(d.update.nlri, vec![p("10.2.0.0/24")]);
        // Fewer than 3 bytes left for an attribute header.
        let mut attrs = hex(GOOD_ATTRS);
        attrs.extend_from_slice(&[0x40, 0x05]);
        let d = decode_update(&update_with_attrs(&attrs), true).unwrap();
        assert!(d.treat_as_withdraw.unwrap().contains("truncated"));
    }

    #[test]
    fn other_malformed_attributes_are_treat_as_withdraw() {
        let cases = [
            // wrong flags on ORIGIN (optional bit set)
            "c0 01 01 00   40 02 06 02 01 0000ffeb   40 03 04 0a0a1efe",
            // AS_PATH segment overrun
            "40 01 01 00   40 02 06 02 02 0000ffeb   40 03 04 0a0a1efe",
            // AS_PATH zero-length segment / confed segment
            "40 01 01 00   40 02 02 02 00   40 03 04 0a0a1efe",
            "40 01 01 00   40 02 06 03 01 0000ffeb   40 03 04 0a0a1efe",
            // NEXT_HOP of 5 bytes
            "40 01 01 00   40 02 06 02 01 0000ffeb   40 03 05 0a0a1efe00",
            // MED of 2 bytes
            "40 01 01 00   40 02 06 02 01 0000ffeb   40 03 04 0a0a1efe  80 04 02 0001",
            // missing NEXT_HOP
            "40 01 01 00   40 02 06 02 01 0000ffeb",
        ];
        for c in cases {
            let d = decode_update(&update_with_attrs(&hex(c)), true).unwrap();
            assert!(
                d.treat_as_withdraw.is_some(),
                "{c} should be treat-as-withdraw"
            );
        }
        // Malformed LOCAL_PREF and AS4_PATH are discarded, the route stays.
        let mut a = hex(GOOD_ATTRS);
        a.extend_from_slice(&hex("40 05 02 0001  c0 11 01 02"));
        let d = decode_update(&update_with_attrs(&a), true).unwrap();
        assert_eq!(d.treat_as_withdraw, None);
        assert_eq!(d.discarded.len(), 2);
        // A duplicate attribute: later copy discarded.
        let mut a = hex(GOOD_ATTRS);
        a.extend_from_slice(&hex("40 01 01 02"));
        let d = decode_update(&update_with_attrs(&a), true).unwrap();
        assert_eq!(d.update.attrs.origin, Some(Origin::Igp));
        // Unknown optional transitive attribute: kept, fine.
        let mut a = hex(GOOD_ATTRS);
        a.extend_from_slice(&hex("c0 63 02 abcd"));
        let d = decode_update(&update_with_attrs(&a), true).unwrap();
        assert_eq!(d.treat_as_withdraw, None);
        assert_eq!(d.update.attrs.other.len(), 1);
    }

    #[test]
    fn update_errors_that_reset_the_session() {
        // Total path attribute length runs past the message.
        let mut b = update_with_attrs(&hex(GOOD_ATTRS));
        b[3] = 200;
        assert_eq!(
            decode_update(&b, true).unwrap_err().subcode,
            err::UPDATE_MALFORMED_ATTR_LIST
        );
        // Withdrawn length runs past the message.
        assert_eq!(
            decode_update(&[0, 9, 24, 10], true).unwrap_err().subcode,
            err::UPDATE_MALFORMED_ATTR_LIST
        );
        // Truncated before the attribute length.
        assert!(decode_update(&[0, 0, 0], true).is_err());
        // NLRI with /33, or truncated NLRI.
        let mut b = update_with_attrs(&hex(GOOD_ATTRS));
        let n = b.len();
        b[n - 4] = 33;
        assert_eq!(
            decode_update(&b, true).unwrap_err().subcode,
            err::UPDATE_INVALID_NETWORK
        );
        let mut b = update_with_attrs(&hex(GOOD_ATTRS));
        b.pop();
        assert_eq!(
            decode_update(&b, true).unwrap_err().subcode,
            err::UPDATE_INVALID_NETWORK
        );
        // Unrecognized well-known attribute.
        let mut a = hex(GOOD_ATTRS);
        a.extend_from_slice(&hex("40 63 00"));
        assert_eq!(
            decode_update(&update_with_attrs(&a), true)
                .unwrap_err()
                .subcode,
            err::UPDATE_UNRECOGNIZED_WELL_KNOWN
        );
        // Malformed MP_REACH (next hop length 3) and duplicate MP_UNREACH.
        let mut a = hex(GOOD_ATTRS);
        a.extend_from_slice(&hex("80 0e 08 0001 01 03 0a0a1e 00"));
        assert_eq!(
            decode_update(&update_with_attrs(&a), true)
                .unwrap_err()
                .subcode,
            err::UPDATE_OPTIONAL_ATTR
        );
        let mut a = hex(GOOD_ATTRS);
        a.extend_from_slice(&hex("80 0f 03 000101  80 0f 03 000101"));
        assert_eq!(
            decode_update(&update_with_attrs(&a), true)
                .unwrap_err()
                .subcode,
            err::UPDATE_MALFORMED_ATTR_LIST
        );
    }

    #[test]
    fn notification_descriptions_are_readable() {
        let n = Notification::cease_with_text(err::CEASE_ADMIN_SHUTDOWN, "maintenance");
        assert_eq!(
            n.describe(),
            "Cease / Administrative Shutdown: \"maintenance\""
        );
        assert_eq!(
            Notification::new(4, 0, vec![]).describe(),
            "Hold Timer Expired / Unspecific"
        );
        assert_eq!(
            Notification::new(2, 2, vec![0xff, 0xeb]).describe(),
            "OPEN Message Error / Bad Peer AS (data ffeb)"
        );
        assert_eq!(
            Notification::new(99, 7, vec![]).describe(),
            "Unknown Error Code / subcode 7"
        );
        // Shutdown text longer than its data: falls back to hex, no panic.
        assert!(Notification::new(6, 2, vec![50, b'x'])
            .describe()
            .contains("data"));
        assert_eq!(
            Notification::cease_with_text(2, &"é".repeat(200)).data[0],
            254
        );
        // The peer's text cannot forge log lines.
        let n = Notification::cease_with_text(err::CEASE_ADMIN_RESET, "bye\nINFO \"fake\"\x1b[0m");
        assert_eq!(
            n.describe(),
            "Cease / Administrative Reset: \"bye\\nINFO \\\"fake\\\"\\u{1b}[0m\""
        );
    }

    #[test]
    fn route_refresh_bad_length() {
        assert_eq!(
            decode_route_refresh(&[0, 1, 0]).unwrap_err().code,
            err::ROUTE_REFRESH
        );
    }
}
