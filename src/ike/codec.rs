//! IKEv2 wire format (RFC 7296 section 3): header, generic payload chain and the payloads
//! this gateway uses. Parsing is strict and total: every length is checked against the
//! bytes that are really there, nothing panics, and a lie is a [`ParseError`].

use std::fmt;
use std::net::IpAddr;

use crate::wire::{Overflow, Reader, Truncated, Writer};

/// A message or payload that cannot be encoded: a length or count does not fit its field.
pub type EncodeError = Overflow;

pub const HEADER_LEN: usize = 28;
pub const IKE_VERSION: u8 = 0x20;

// Exchange types.
pub const EXCH_IKE_SA_INIT: u8 = 34;
pub const EXCH_IKE_AUTH: u8 = 35;
pub const EXCH_CREATE_CHILD_SA: u8 = 36;
pub const EXCH_INFORMATIONAL: u8 = 37;

// Header flags.
pub const FLAG_INITIATOR: u8 = 0x08;
pub const FLAG_VERSION: u8 = 0x10;
pub const FLAG_RESPONSE: u8 = 0x20;

// Payload types.
pub const PT_NONE: u8 = 0;
pub const PT_SA: u8 = 33;
pub const PT_KE: u8 = 34;
pub const PT_IDI: u8 = 35;
pub const PT_IDR: u8 = 36;
pub const PT_CERT: u8 = 37;
pub const PT_CERTREQ: u8 = 38;
pub const PT_AUTH: u8 = 39;
pub const PT_NONCE: u8 = 40;
pub const PT_NOTIFY: u8 = 41;
pub const PT_DELETE: u8 = 42;
pub const PT_VENDOR: u8 = 43;
pub const PT_TSI: u8 = 44;
pub const PT_TSR: u8 = 45;
pub const PT_SK: u8 = 46;
pub const PT_CP: u8 = 47;
pub const PT_EAP: u8 = 48;

// Protocol ids (proposals, notify, delete).
pub const PROTO_IKE: u8 = 1;
pub const PROTO_ESP: u8 = 3;

// Transform types.
pub const TT_ENCR: u8 = 1;
pub const TT_PRF: u8 = 2;
pub const TT_INTEG: u8 = 3;
pub const TT_DH: u8 = 4;
pub const TT_ESN: u8 = 5;
pub const ATTR_KEY_LENGTH: u16 = 14;

// AUTH methods.
pub const AUTH_PSK: u8 = 2;

// TS types.
pub const TS_IPV4_ADDR_RANGE: u8 = 7;
pub const TS_IPV6_ADDR_RANGE: u8 = 8;

/// Notify message types (RFC 7296 3.10.1 and later registrations) that we send or act on.
pub mod notify {
    pub const UNSUPPORTED_CRITICAL_PAYLOAD: u16 = 1;
    pub const INVALID_IKE_SPI: u16 = 4;
    pub const INVALID_MAJOR_VERSION: u16 = 5;
    pub const INVALID_SYNTAX: u16 = 7;
    pub const INVALID_MESSAGE_ID: u16 = 9;
    pub const INVALID_SPI: u16 = 11;
    pub const NO_PROPOSAL_CHOSEN: u16 = 14;
    pub const INVALID_KE_PAYLOAD: u16 = 17;
    pub const AUTHENTICATION_FAILED: u16 = 24;
    pub const SINGLE_PAIR_REQUIRED: u16 = 34;
    pub const NO_ADDITIONAL_SAS: u16 = 35;
    pub const INTERNAL_ADDRESS_FAILURE: u16 = 36;
    pub const FAILED_CP_REQUIRED: u16 = 37;
    pub const TS_UNACCEPTABLE: u16 = 38;
    pub const INVALID_SELECTORS: u16 = 39;
    pub const TEMPORARY_FAILURE: u16 = 43;
    pub const CHILD_SA_NOT_FOUND: u16 = 44;
    /// Error types are below this value; status types at or above it.
    pub const FIRST_STATUS: u16 = 16384;
    pub const INITIAL_CONTACT: u16 = 16384;
    pub const NAT_DETECTION_SOURCE_IP: u16 = 16388;
    pub const NAT_DETECTION_DESTINATION_IP: u16 = 16389;
    pub const COOKIE: u16 = 16390;
    pub const USE_TRANSPORT_MODE: u16 = 16391;
    pub const REKEY_SA: u16 = 16393;
    pub const ESP_TFC_PADDING_NOT_SUPPORTED: u16 = 16394;
    pub const NON_FIRST_FRAGMENTS_ALSO: u16 = 16395;
}

/// Readable name of a notify type, for logs.
pub fn notify_name(t: u16) -> String {
    use notify::*;
    let name = match t {
        UNSUPPORTED_CRITICAL_PAYLOAD => "UNSUPPORTED_CRITICAL_PAYLOAD",
        INVALID_IKE_SPI => "INVALID_IKE_SPI",
        INVALID_MAJOR_VERSION => "INVALID_MAJOR_VERSION",
        INVALID_SYNTAX => "INVALID_SYNTAX",
        INVALID_MESSAGE_ID => "INVALID_MESSAGE_ID",
        INVALID_SPI => "INVALID_SPI",
        NO_PROPOSAL_CHOSEN => "NO_PROPOSAL_CHOSEN",
        INVALID_KE_PAYLOAD => "INVALID_KE_PAYLOAD",
        AUTHENTICATION_FAILED => "AUTHENTICATION_FAILED",
        SINGLE_PAIR_REQUIRED => "SINGLE_PAIR_REQUIRED",
        NO_ADDITIONAL_SAS => "NO_ADDITIONAL_SAS",
        INTERNAL_ADDRESS_FAILURE => "INTERNAL_ADDRESS_FAILURE",
        FAILED_CP_REQUIRED => "FAILED_CP_REQUIRED",
        TS_UNACCEPTABLE => "TS_UNACCEPTABLE",
        INVALID_SELECTORS => "INVALID_SELECTORS",
        TEMPORARY_FAILURE => "TEMPORARY_FAILURE",
        CHILD_SA_NOT_FOUND => "CHILD_SA_NOT_FOUND",
        INITIAL_CONTACT => "INITIAL_CONTACT",
        NAT_DETECTION_SOURCE_IP => "NAT_DETECTION_SOURCE_IP",
        NAT_DETECTION_DESTINATION_IP => "NAT_DETECTION_DESTINATION_IP",
        COOKIE => "COOKIE",
        USE_TRANSPORT_MODE => "USE_TRANSPORT_MODE",
        REKEY_SA => "REKEY_SA",
        _ => return format!("NOTIFY({t})"),
    };
    name.to_string()
}

/// Why a message could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Fewer bytes than a header or length field claims.
    Truncated(&'static str),
    /// A length field that is impossible (too small, or disagrees with its container).
    BadLength(&'static str),
    /// Not IKEv2 (major version != 2).
    BadVersion(u8),
    /// A payload whose content is invalid.
    Invalid(&'static str),
    /// An unknown payload with the critical bit set: answer UNSUPPORTED_CRITICAL_PAYLOAD.
    UnsupportedCritical(u8),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Truncated(w) => write!(f, "truncated {w}"),
            ParseError::BadLength(w) => write!(f, "bad length in {w}"),
            ParseError::BadVersion(v) => write!(f, "unsupported IKE version 0x{v:02x}"),
            ParseError::Invalid(w) => write!(f, "invalid {w}"),
            ParseError::UnsupportedCritical(t) => write!(f, "unsupported critical payload {t}"),
        }
    }
}

impl std::error::Error for ParseError {}

type Result<T> = std::result::Result<T, ParseError>;

impl From<Truncated> for ParseError {
    fn from(t: Truncated) -> Self {
        ParseError::Truncated(t.what)
    }
}

/// The fixed IKE header (RFC 7296 3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub spi_i: u64,
    pub spi_r: u64,
    pub next_payload: u8,
    pub version: u8,
    pub exchange: u8,
    pub flags: u8,
    pub msg_id: u32,
    pub length: u32,
}

impl Header {
    pub fn parse(data: &[u8]) -> Result<Header> {
        let mut r = Reader::new(data);
        let h = Header {
            spi_i: r.u64("header")?,
            spi_r: r.u64("header")?,
            next_payload: r.u8("header")?,
            version: r.u8("header")?,
            exchange: r.u8("header")?,
            flags: r.u8("header")?,
            msg_id: r.u32("header")?,
            length: r.u32("header")?,
        };
        if h.version >> 4 != 2 {
            return Err(ParseError::BadVersion(h.version));
        }
        if h.length as usize != data.len() {
            return Err(ParseError::BadLength("IKE header (message length)"));
        }
        Ok(h)
    }

    pub fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }

    /// True when the sender is the original initiator of the IKE SA.
    pub fn from_initiator(&self) -> bool {
        self.flags & FLAG_INITIATOR != 0
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        let mut w = Writer::with_capacity(HEADER_LEN);
        self.write_to(&mut w);
        out.extend_from_slice(w.as_slice());
    }

    pub fn write_to(&self, w: &mut Writer) {
        w.u64(self.spi_i);
        w.u64(self.spi_r);
        w.u8(self.next_payload);
        w.u8(self.version);
        w.u8(self.exchange);
        w.u8(self.flags);
        w.u32(self.msg_id);
        w.u32(self.length);
    }
}

/// One transform of a proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transform {
    pub ttype: u8,
    pub id: u16,
    /// The Key Length attribute (TV, type 14), if present.
    pub key_len: Option<u16>,
}

/// One proposal of an SA payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub num: u8,
    pub protocol: u8,
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

/// A traffic selector as carried in TSi/TSr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireTs {
    pub ip_proto: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub start: IpAddr,
    pub end: IpAddr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify {
    pub protocol: u8,
    pub spi: Vec<u8>,
    pub ntype: u16,
    pub data: Vec<u8>,
}

/// A parsed payload. Payloads we do not interpret but understand (CERT, CERTREQ, CP, EAP) and
/// unknown non-critical ones end up in `Other`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    Sa(Vec<Proposal>),
    Ke {
        group: u16,
        data: Vec<u8>,
    },
    IdI {
        id_type: u8,
        data: Vec<u8>,
    },
    IdR {
        id_type: u8,
        data: Vec<u8>,
    },
    Auth {
        method: u8,
        data: Vec<u8>,
    },
    Nonce(Vec<u8>),
    Notify(Notify),
    Delete {
        protocol: u8,
        spi_size: u8,
        spis: Vec<Vec<u8>>,
    },
    Vendor(Vec<u8>),
    TsI(Vec<WireTs>),
    TsR(Vec<WireTs>),
    Other {
        ptype: u8,
        critical: bool,
        body: Vec<u8>,
    },
}

impl Payload {
    pub fn ptype(&self) -> u8 {
        match self {
            Payload::Sa(_) => PT_SA,
            Payload::Ke { .. } => PT_KE,
            Payload::IdI { .. } => PT_IDI,
            Payload::IdR { .. } => PT_IDR,
            Payload::Auth { .. } => PT_AUTH,
            Payload::Nonce(_) => PT_NONCE,
            Payload::Notify(_) => PT_NOTIFY,
            Payload::Delete { .. } => PT_DELETE,
            Payload::Vendor(_) => PT_VENDOR,
            Payload::TsI(_) => PT_TSI,
            Payload::TsR(_) => PT_TSR,
            Payload::Other { ptype, .. } => *ptype,
        }
    }

    /// Shorthand for a notify without SPI.
    pub fn notify(ntype: u16, data: Vec<u8>) -> Payload {
        Payload::Notify(Notify {
            protocol: 0,
            spi: Vec::new(),
            ntype,
            data,
        })
    }

    /// The body bytes (everything after the 4-byte generic payload header). Empty, and
    /// logged, for a payload that cannot be encoded: use [`Payload::try_body`] to see why.
    pub fn body(&self) -> Vec<u8> {
        self.try_body().unwrap_or_else(|e| {
            tracing::error!("IKE payload {} not encoded: {e}", self.ptype());
            Vec::new()
        })
    }

    /// The body bytes, or which count or length does not fit its field.
    pub fn try_body(&self) -> std::result::Result<Vec<u8>, EncodeError> {
        let mut w = Writer::new();
        self.write_body(&mut w)?;
        Ok(w.into_vec())
    }

    fn write_body(&self, w: &mut Writer) -> std::result::Result<(), EncodeError> {
        match self {
            Payload::Sa(props) => write_sa(props, w)?,
            Payload::Ke { group, data } => {
                w.u16(*group);
                w.u16(0);
                w.bytes(data);
            }
            Payload::IdI { id_type, data } | Payload::IdR { id_type, data } => {
                w.bytes(&[*id_type, 0, 0, 0]);
                w.bytes(data);
            }
            Payload::Auth { method, data } => {
                w.bytes(&[*method, 0, 0, 0]);
                w.bytes(data);
            }
            Payload::Nonce(n) | Payload::Vendor(n) => w.bytes(n),
            Payload::Notify(n) => {
                w.u8(n.protocol);
                w.len_u8("Notify SPI size", n.spi.len())?;
                w.u16(n.ntype);
                w.bytes(&n.spi);
                w.bytes(&n.data);
            }
            Payload::Delete {
                protocol,
                spi_size,
                spis,
            } => {
                w.u8(*protocol);
                w.u8(*spi_size);
                w.len_u16("Delete SPI count", spis.len())?;
                for s in spis {
                    w.bytes(s);
                }
            }
            Payload::TsI(ts) | Payload::TsR(ts) => write_ts(ts, w)?,
            Payload::Other { body, .. } => w.bytes(body),
        }
        Ok(())
    }

    fn critical(&self) -> bool {
        matches!(self, Payload::Other { critical: true, .. })
    }
}

fn write_sa(props: &[Proposal], w: &mut Writer) -> std::result::Result<(), EncodeError> {
    for (pi, p) in props.iter().enumerate() {
        let start = w.len();
        w.u8(if pi + 1 == props.len() { 0 } else { 2 });
        w.u8(0);
        let length = w.reserve_u16();
        w.u8(p.num);
        w.u8(p.protocol);
        w.len_u8("proposal SPI size", p.spi.len())?;
        w.len_u8("proposal transform count", p.transforms.len())?;
        w.bytes(&p.spi);
        for (ti, t) in p.transforms.iter().enumerate() {
            w.u8(if ti + 1 == p.transforms.len() { 0 } else { 3 });
            w.u8(0);
            w.u16(if t.key_len.is_some() { 12 } else { 8 });
            w.u8(t.ttype);
            w.u8(0);
            w.u16(t.id);
            if let Some(kl) = t.key_len {
                w.u16(0x8000 | ATTR_KEY_LENGTH);
                w.u16(kl);
            }
        }
        w.fill_u16(length, "proposal length", w.len() - start)?;
    }
    Ok(())
}

fn write_ts(ts: &[WireTs], w: &mut Writer) -> std::result::Result<(), EncodeError> {
    w.len_u8("TS payload selector count", ts.len())?;
    w.bytes(&[0, 0, 0]);
    for t in ts {
        let (ty, len) = if t.start.is_ipv4() {
            (TS_IPV4_ADDR_RANGE, 16)
        } else {
            (TS_IPV6_ADDR_RANGE, 40)
        };
        w.u8(ty);
        w.u8(t.ip_proto);
        w.u16(len);
        w.u16(t.start_port);
        w.u16(t.end_port);
        for a in [t.start, t.end] {
            match a {
                IpAddr::V4(v) => w.bytes(&v.octets()),
                IpAddr::V6(v) => w.bytes(&v.octets()),
            }
        }
    }
    Ok(())
}

fn parse_sa(body: &[u8]) -> Result<Vec<Proposal>> {
    let mut r = Reader::new(body);
    let mut props = Vec::new();
    loop {
        let last = r.u8("proposal")?;
        r.u8("proposal")?;
        let plen = r.u16("proposal")? as usize;
        if plen < 8 {
            return Err(ParseError::BadLength("proposal"));
        }
        let pbody = r.take(plen - 4, "proposal")?;
        let mut pr = Reader::new(pbody);
        let num = pr.u8("proposal")?;
        let protocol = pr.u8("proposal")?;
        let spi_size = pr.u8("proposal")? as usize;
        let ntrans = pr.u8("proposal")? as usize;
        let spi = pr.take(spi_size, "proposal SPI")?.to_vec();
        let mut transforms = Vec::with_capacity(ntrans);
        for i in 0..ntrans {
            let tlast = pr.u8("transform")?;
            pr.u8("transform")?;
            let tlen = pr.u16("transform")? as usize;
            if tlen < 8 {
                return Err(ParseError::BadLength("transform"));
            }
            let tbody = pr.take(tlen - 4, "transform")?;
            let mut tr = Reader::new(tbody);
            let ttype = tr.u8("transform")?;
            tr.u8("transform")?;
            let id = tr.u16("transform")?;
            let mut key_len = None;
            while tr.remaining() > 0 {
                let at = tr.u16("transform attribute")?;
                if at & 0x8000 != 0 {
                    let v = tr.u16("transform attribute")?;
                    if at & 0x7fff == ATTR_KEY_LENGTH {
                        key_len = Some(v);
                    }
                } else {
                    let alen = tr.u16("transform attribute")? as usize;
                    tr.take(alen, "transform attribute")?;
                }
            }
            let expect_last = if i + 1 == ntrans { 0 } else { 3 };
            if tlast != expect_last {
                return Err(ParseError::Invalid("transform chain"));
            }
            transforms.push(Transform { ttype, id, key_len });
        }
        if pr.remaining() != 0 {
            return Err(ParseError::BadLength("proposal (trailing bytes)"));
        }
        props.push(Proposal {
            num,
            protocol,
            spi,
            transforms,
        });
        match last {
            0 => break,
            2 => {}
            _ => return Err(ParseError::Invalid("proposal chain")),
        }
    }
    if r.remaining() != 0 {
        return Err(ParseError::BadLength("SA payload (trailing bytes)"));
    }
    Ok(props)
}

fn parse_ts(body: &[u8]) -> Result<Vec<WireTs>> {
    let mut r = Reader::new(body);
    let n = r.u8("TS payload")? as usize;
    r.take(3, "TS payload")?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let ty = r.u8("traffic selector")?;
        let ip_proto = r.u8("traffic selector")?;
        let len = r.u16("traffic selector")? as usize;
        let alen = match (ty, len) {
            (TS_IPV4_ADDR_RANGE, 16) => 4,
            (TS_IPV6_ADDR_RANGE, 40) => 16,
            (TS_IPV4_ADDR_RANGE, _) | (TS_IPV6_ADDR_RANGE, _) => {
                return Err(ParseError::BadLength("traffic selector"))
            }
            _ => return Err(ParseError::Invalid("traffic selector type")),
        };
        let start_port = r.u16("traffic selector")?;
        let end_port = r.u16("traffic selector")?;
        let start = read_addr(r.take(alen, "traffic selector")?)?;
        let end = read_addr(r.take(alen, "traffic selector")?)?;
        out.push(WireTs {
            ip_proto,
            start_port,
            end_port,
            start,
            end,
        });
    }
    if r.remaining() != 0 {
        return Err(ParseError::BadLength("TS payload (trailing bytes)"));
    }
    Ok(out)
}

fn read_addr(b: &[u8]) -> Result<IpAddr> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        return Ok(IpAddr::from(a));
    }
    if let Ok(a) = <[u8; 16]>::try_from(b) {
        return Ok(IpAddr::from(a));
    }
    Err(ParseError::BadLength("address"))
}

fn parse_body(ptype: u8, critical: bool, body: &[u8]) -> Result<Payload> {
    let mut r = Reader::new(body);
    Ok(match ptype {
        PT_SA => Payload::Sa(parse_sa(body)?),
        PT_KE => {
            let group = r.u16("KE payload")?;
            r.take(2, "KE payload")?;
            Payload::Ke {
                group,
                data: r.rest().to_vec(),
            }
        }
        PT_IDI | PT_IDR => {
            let id_type = r.u8("ID payload")?;
            r.take(3, "ID payload")?;
            let data = r.rest().to_vec();
            if ptype == PT_IDI {
                Payload::IdI { id_type, data }
            } else {
                Payload::IdR { id_type, data }
            }
        }
        PT_AUTH => {
            let method = r.u8("AUTH payload")?;
            r.take(3, "AUTH payload")?;
            Payload::Auth {
                method,
                data: r.rest().to_vec(),
            }
        }
        PT_NONCE => {
            // RFC 7296 3.9: 16..=256 bytes.
            if body.len() < 16 || body.len() > 256 {
                return Err(ParseError::BadLength("Nonce payload"));
            }
            Payload::Nonce(body.to_vec())
        }
        PT_NOTIFY => {
            let protocol = r.u8("Notify payload")?;
            let spi_size = r.u8("Notify payload")? as usize;
            let ntype = r.u16("Notify payload")?;
            let spi = r.take(spi_size, "Notify SPI")?.to_vec();
            Payload::Notify(Notify {
                protocol,
                spi,
                ntype,
                data: r.rest().to_vec(),
            })
        }
        PT_DELETE => {
            let protocol = r.u8("Delete payload")?;
            let spi_size = r.u8("Delete payload")?;
            let n = r.u16("Delete payload")? as usize;
            let mut spis = Vec::new();
            // SPI size 0 (IKE SA): there are no SPIs, whatever the count says. Taking the count
            // at its word would build up to 65535 empty SPIs per 8-byte payload, an allocation
            // a single datagram could blow up to gigabytes.
            if spi_size != 0 {
                for _ in 0..n {
                    spis.push(r.take(spi_size as usize, "Delete SPI")?.to_vec());
                }
            }
            if r.remaining() != 0 {
                return Err(ParseError::BadLength("Delete payload (trailing bytes)"));
            }
            Payload::Delete {
                protocol,
                spi_size,
                spis,
            }
        }
        PT_VENDOR => Payload::Vendor(body.to_vec()),
        PT_TSI => Payload::TsI(parse_ts(body)?),
        PT_TSR => Payload::TsR(parse_ts(body)?),
        PT_CERT | PT_CERTREQ | PT_CP | PT_EAP => Payload::Other {
            ptype,
            critical,
            body: body.to_vec(),
        },
        _ if critical => return Err(ParseError::UnsupportedCritical(ptype)),
        _ => Payload::Other {
            ptype,
            critical,
            body: body.to_vec(),
        },
    })
}

/// Where the SK payload sits in a received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkLocation {
    /// Next Payload field of the SK payload: the type of the first encrypted payload.
    pub inner_next: u8,
    /// Offset of the SK generic payload header within the message.
    pub offset: usize,
}

/// A parsed message: header, the plaintext payloads, and the SK payload location if present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub payloads: Vec<Payload>,
    pub sk: Option<SkLocation>,
}

/// Parses a payload chain starting with type `first`. `base` is the offset of `data` within
/// the whole message (to locate the SK payload). An SK payload must be the last one.
pub fn parse_chain(
    first: u8,
    data: &[u8],
    base: usize,
    allow_sk: bool,
) -> Result<(Vec<Payload>, Option<SkLocation>)> {
    let mut r = Reader::new(data);
    let mut next = first;
    let mut payloads = Vec::new();
    while next != PT_NONE {
        let at = r.position();
        let this = next;
        next = r.u8("payload header")?;
        let flags = r.u8("payload header")?;
        let critical = flags & 0x80 != 0;
        let len = r.u16("payload header")? as usize;
        if len < 4 {
            return Err(ParseError::BadLength("payload header"));
        }
        let body = r.take(len - 4, "payload")?;
        if this == PT_SK {
            if !allow_sk {
                return Err(ParseError::Invalid("nested SK payload"));
            }
            if r.remaining() != 0 {
                return Err(ParseError::Invalid("SK payload is not the last payload"));
            }
            return Ok((
                payloads,
                Some(SkLocation {
                    inner_next: next,
                    offset: base + at,
                }),
            ));
        }
        payloads.push(parse_body(this, critical, body)?);
    }
    if r.remaining() != 0 {
        return Err(ParseError::BadLength("payload chain (trailing bytes)"));
    }
    Ok((payloads, None))
}

impl Message {
    pub fn parse(data: &[u8]) -> Result<Message> {
        let header = Header::parse(data)?;
        let rest = data
            .get(HEADER_LEN..)
            .ok_or(ParseError::Truncated("header"))?;
        let (payloads, sk) = parse_chain(header.next_payload, rest, HEADER_LEN, true)?;
        Ok(Message {
            header,
            payloads,
            sk,
        })
    }
}

/// Encodes a payload chain; returns the type of the first payload (0 for none) and the bytes.
/// A chain that cannot be encoded comes back empty, and is logged: use [`try_encode_chain`].
pub fn encode_chain(payloads: &[Payload]) -> (u8, Vec<u8>) {
    try_encode_chain(payloads).unwrap_or_else(|e| {
        tracing::error!("IKE message not encoded: {e}");
        (PT_NONE, Vec::new())
    })
}

/// Encodes a payload chain, or says which count or length does not fit its field.
pub fn try_encode_chain(payloads: &[Payload]) -> std::result::Result<(u8, Vec<u8>), EncodeError> {
    let mut w = Writer::new();
    write_chain(payloads, &mut w)?;
    Ok((
        payloads.first().map(|p| p.ptype()).unwrap_or(PT_NONE),
        w.into_vec(),
    ))
}

fn write_chain(payloads: &[Payload], w: &mut Writer) -> std::result::Result<(), EncodeError> {
    for (i, p) in payloads.iter().enumerate() {
        let start = w.len();
        w.u8(payloads.get(i + 1).map(|n| n.ptype()).unwrap_or(PT_NONE));
        w.u8(if p.critical() { 0x80 } else { 0 });
        let length = w.reserve_u16();
        p.write_body(w)?;
        w.fill_u16(length, "payload length", w.len() - start)?;
    }
    Ok(())
}

/// Encodes an unencrypted message (IKE_SA_INIT), filling next_payload and length.
/// A message that cannot be encoded comes back empty, and is logged: use [`try_encode_plain`].
pub fn encode_plain(header: Header, payloads: &[Payload]) -> Vec<u8> {
    try_encode_plain(header, payloads).unwrap_or_else(|e| {
        tracing::error!("IKE message not encoded: {e}");
        Vec::new()
    })
}

/// Encodes an unencrypted message, or says which count or length does not fit its field.
pub fn try_encode_plain(
    mut header: Header,
    payloads: &[Payload],
) -> std::result::Result<Vec<u8>, EncodeError> {
    let mut chain = Writer::new();
    write_chain(payloads, &mut chain)?;
    header.next_payload = payloads.first().map(|p| p.ptype()).unwrap_or(PT_NONE);
    let total = HEADER_LEN + chain.len();
    header.length = u32::try_from(total).map_err(|_| Overflow {
        what: "IKE message length",
        value: total,
        max: u32::MAX as usize,
    })?;
    let mut w = Writer::with_capacity(total);
    header.write_to(&mut w);
    w.bytes(chain.as_slice());
    Ok(w.into_vec())
}

/// Helpers to find payloads in a list.
pub fn find_notify(payloads: &[Payload], ntype: u16) -> Option<&Notify> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.ntype == ntype => Some(n),
        _ => None,
    })
}

/// The first error notify (type < 16384), if any.
pub fn first_error_notify(payloads: &[Payload]) -> Option<&Notify> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.ntype < notify::FIRST_STATUS => Some(n),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_payloads() -> Vec<Payload> {
        vec![
            Payload::notify(notify::COOKIE, vec![1, 2, 3, 4]),
            Payload::Sa(vec![
                Proposal {
                    num: 1,
                    protocol: PROTO_IKE,
                    spi: vec![],
                    transforms: vec![
                        Transform {
                            ttype: TT_ENCR,
                            id: 12,
                            key_len: Some(256),
                        },
                        Transform {
                            ttype: TT_ENCR,
                            id: 3,
                            key_len: None,
                        },
                        Transform {
                            ttype: TT_PRF,
                            id: 2,
                            key_len: None,
                        },
                        Transform {
                            ttype: TT_INTEG,
                            id: 2,
                            key_len: None,
                        },
                        Transform {
                            ttype: TT_DH,
                            id: 2,
                            key_len: None,
                        },
                    ],
                },
                Proposal {
                    num: 2,
                    protocol: PROTO_ESP,
                    spi: vec![0xc4, 0x86, 0x11, 0x13],
                    transforms: vec![
                        Transform {
                            ttype: TT_ENCR,
                            id: 12,
                            key_len: Some(128),
                        },
                        Transform {
                            ttype: TT_ESN,
                            id: 0,
                            key_len: None,
                        },
                    ],
                },
            ]),
            Payload::Ke {
                group: 2,
                data: vec![7; 128],
            },
            Payload::Nonce(vec![9; 32]),
            Payload::IdI {
                id_type: 1,
                data: vec![192, 0, 2, 1],
            },
            Payload::IdR {
                id_type: 2,
                data: b"vpn.example".to_vec(),
            },
            Payload::Auth {
                method: AUTH_PSK,
                data: vec![0xaa; 20],
            },
            Payload::Notify(Notify {
                protocol: PROTO_ESP,
                spi: vec![1, 2, 3, 4],
                ntype: notify::REKEY_SA,
                data: vec![],
            }),
            Payload::Delete {
                protocol: PROTO_ESP,
                spi_size: 4,
                spis: vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]],
            },
            Payload::Vendor(b"strongSwan".to_vec()),
            Payload::TsI(vec![WireTs {
                ip_proto: 0,
                start_port: 0,
                end_port: 65535,
                start: "0.0.0.0".parse().unwrap(),
                end: "255.255.255.255".parse().unwrap(),
            }]),
            Payload::TsR(vec![
                WireTs {
                    ip_proto: 6,
                    start_port: 179,
                    end_port: 179,
                    start: "10.0.0.0".parse().unwrap(),
                    end: "10.0.0.255".parse().unwrap(),
                },
                WireTs {
                    ip_proto: 0,
                    start_port: 0,
                    end_port: 65535,
                    start: "2001:db8::".parse().unwrap(),
                    end: "2001:db8::ffff".parse().unwrap(),
                },
            ]),
            Payload::Other {
                ptype: 200,
                critical: false,
                body: vec![1, 2, 3],
            },
        ]
    }

    fn sample_header() -> Header {
        Header {
            spi_i: 0x0102030405060708,
            spi_r: 0,
            next_payload: 0,
            version: IKE_VERSION,
            exchange: EXCH_IKE_SA_INIT,
            flags: FLAG_INITIATOR,
            msg_id: 0,
            length: 0,
        }
    }

    #[test]
    fn round_trip_all_payloads() {
        let payloads = sample_payloads();
        let bytes = encode_plain(sample_header(), &payloads);
        let msg = Message::parse(&bytes).unwrap();
        assert_eq!(msg.payloads, payloads);
        assert_eq!(msg.header.length as usize, bytes.len());
        assert_eq!(msg.header.next_payload, PT_NOTIFY);
        assert!(msg.sk.is_none());
        // Re-encoding gives the same bytes.
        assert_eq!(encode_plain(msg.header.clone(), &msg.payloads), bytes);
    }

    #[test]
    fn key_length_attribute_is_tv() {
        let sa = Payload::Sa(vec![Proposal {
            num: 1,
            protocol: PROTO_IKE,
            spi: vec![],
            transforms: vec![Transform {
                ttype: TT_ENCR,
                id: 12,
                key_len: Some(256),
            }],
        }]);
        let body = sa.body();
        // proposal header (8) + transform header (8) + TV attribute 0x800e 0x0100
        assert_eq!(body.len(), 20);
        assert_eq!(&body[16..20], &[0x80, 0x0e, 0x01, 0x00]);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = encode_plain(sample_header(), &sample_payloads());
        for n in 0..bytes.len() {
            assert!(Message::parse(&bytes[..n]).is_err(), "prefix {n} parsed");
        }
    }

    #[test]
    fn lying_lengths_are_errors() {
        let bytes = encode_plain(sample_header(), &sample_payloads());
        // Message length field larger than the datagram.
        let mut b = bytes.clone();
        b[27] = b[27].wrapping_add(1);
        assert!(Message::parse(&b).is_err());
        // First payload length too large/small.
        let mut b = bytes.clone();
        b[HEADER_LEN + 2] = 0xff;
        assert!(Message::parse(&b).is_err());
        let mut b = bytes.clone();
        b[HEADER_LEN + 2] = 0;
        b[HEADER_LEN + 3] = 3;
        assert!(Message::parse(&b).is_err());
    }

    #[test]
    fn unknown_critical_payload_is_reported() {
        let p = vec![Payload::Other {
            ptype: 201,
            critical: true,
            body: vec![],
        }];
        let bytes = encode_plain(sample_header(), &p);
        assert_eq!(
            Message::parse(&bytes),
            Err(ParseError::UnsupportedCritical(201))
        );
        // Non-critical unknown payloads are kept aside and skipped.
        let p = vec![
            Payload::Other {
                ptype: 201,
                critical: false,
                body: vec![5],
            },
            Payload::Nonce(vec![1; 16]),
        ];
        let msg = Message::parse(&encode_plain(sample_header(), &p)).unwrap();
        assert_eq!(msg.payloads.len(), 2);
    }

    #[test]
    fn delete_count_without_spi_size_allocates_nothing() {
        let d = Payload::Delete {
            protocol: PROTO_IKE,
            spi_size: 0,
            spis: vec![],
        };
        let mut bytes = encode_plain(sample_header(), &[d.clone(), d]);
        // Both payloads claim 65535 SPIs of size 0.
        for at in [HEADER_LEN + 6, HEADER_LEN + 8 + 6] {
            bytes[at..at + 2].copy_from_slice(&[0xff, 0xff]);
        }
        let msg = Message::parse(&bytes).unwrap();
        assert_eq!(msg.payloads.len(), 2);
        for p in &msg.payloads {
            assert!(
                matches!(p, Payload::Delete { protocol: PROTO_IKE, spi_size: 0, spis } if spis.is_empty()),
                "{p:?}"
            );
        }
    }

    #[test]
    fn bad_version_rejected() {
        let mut bytes = encode_plain(sample_header(), &[Payload::Nonce(vec![1; 16])]);
        bytes[17] = 0x10;
        assert_eq!(Message::parse(&bytes), Err(ParseError::BadVersion(0x10)));
    }

    #[test]
    fn sk_location_found() {
        let mut h = sample_header();
        h.exchange = EXCH_IKE_AUTH;
        let (_, chain) = encode_chain(&[Payload::Nonce(vec![1; 16])]);
        // Handcraft: header + SK payload with 20 bytes of body.
        let mut out = Vec::new();
        h.next_payload = PT_SK;
        h.length = (HEADER_LEN + 4 + 20) as u32;
        h.write(&mut out);
        out.extend_from_slice(&[PT_IDI, 0, 0, 24]);
        out.extend_from_slice(&[0u8; 20]);
        let msg = Message::parse(&out).unwrap();
        assert_eq!(
            msg.sk,
            Some(SkLocation {
                inner_next: PT_IDI,
                offset: HEADER_LEN
            })
        );
        assert!(!chain.is_empty());
    }

    fn ts(n: usize) -> Vec<WireTs> {
        (0..n)
            .map(|i| WireTs {
                ip_proto: 0,
                start_port: 0,
                end_port: 65535,
                start: IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]),
                end: IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]),
            })
            .collect()
    }

    #[test]
    fn counts_that_do_not_fit_their_field_are_errors_not_wrong_counts() {
        // 255 selectors is the most a TS payload can say; they round-trip.
        let full = vec![Payload::TsI(ts(255))];
        let bytes = try_encode_plain(sample_header(), &full).unwrap();
        assert_eq!(Message::parse(&bytes).unwrap().payloads, full);
        // 256 (or the 510 of a wide narrowing) cannot be said: an error naming the field,
        // where `as u8` used to send a count of 0 (or 254) followed by every selector.
        let too_many = Payload::TsR(ts(256));
        let e = too_many.try_body().unwrap_err();
        assert_eq!(
            (e.what, e.value, e.max),
            ("TS payload selector count", 256, 255)
        );
        assert!(try_encode_chain(std::slice::from_ref(&too_many)).is_err());
        assert!(try_encode_plain(sample_header(), std::slice::from_ref(&too_many)).is_err());
        // The infallible wrappers send nothing rather than a lie.
        assert!(too_many.body().is_empty());
        assert_eq!(
            encode_chain(std::slice::from_ref(&too_many)),
            (PT_NONE, vec![])
        );
        assert!(encode_plain(sample_header(), &[too_many]).is_empty());

        let spi_too_long = Payload::Notify(Notify {
            protocol: PROTO_ESP,
            spi: vec![0; 256],
            ntype: notify::REKEY_SA,
            data: vec![],
        });
        assert_eq!(spi_too_long.try_body().unwrap_err().what, "Notify SPI size");
        let deletes = Payload::Delete {
            protocol: PROTO_ESP,
            spi_size: 4,
            spis: vec![vec![0; 4]; 65536],
        };
        assert_eq!(deletes.try_body().unwrap_err().what, "Delete SPI count");
        // A payload body over 65531 bytes does not fit the generic header's length.
        let huge = Payload::Vendor(vec![0; 65532]);
        assert_eq!(
            try_encode_chain(&[huge]).unwrap_err().what,
            "payload length"
        );
        assert!(try_encode_chain(&[Payload::Vendor(vec![0; 65531])]).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = Message::parse(&data);
        }

        #[test]
        fn mutated_messages_never_panic(pos in 0usize..2000, val in proptest::prelude::any::<u8>(), cut in 0usize..2000) {
            let mut bytes = encode_plain(sample_header(), &sample_payloads());
            let n = bytes.len();
            bytes[pos % n] = val;
            let _ = Message::parse(&bytes);
            bytes.truncate(cut % (n + 1));
            let _ = Message::parse(&bytes);
        }
    }
}
