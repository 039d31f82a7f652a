//! Payload chains and whole messages: parse, and encode with the header filled in.

use crate::wire::{Overflow, Reader, Writer};

use super::payload::parse_body;
use super::*;

/// Where the SK (or SKF) payload sits in a received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkLocation {
    /// Next Payload field of the SK payload: the type of the first encrypted payload (0 in
    /// every fragment but the first).
    pub inner_next: u8,
    /// Offset of the SK generic payload header within the message.
    pub offset: usize,
    /// Set for an Encrypted Fragment payload (SKF, RFC 7383 2.5).
    pub fragment: Option<Fragment>,
}

/// Fragment Number and Total Fragments of an SKF payload (1 <= number <= total).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    pub number: u16,
    pub total: u16,
}

/// Bytes between an SKF payload's generic header and its IV.
pub const SKF_NUMBERS_LEN: usize = 4;

impl SkLocation {
    /// Where the IV starts: after the generic header, and for SKF after the two numbers.
    /// Everything before it is the associated data the ICV covers (RFC 7383 2.5).
    pub fn body_at(&self) -> usize {
        self.offset
            + 4
            + if self.fragment.is_some() {
                SKF_NUMBERS_LEN
            } else {
                0
            }
    }
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
        if this == PT_SK || this == PT_SKF {
            if !allow_sk {
                return Err(ParseError::Invalid("nested SK payload"));
            }
            if r.remaining() != 0 {
                return Err(ParseError::Invalid("SK payload is not the last payload"));
            }
            let fragment = if this == PT_SKF {
                Some(fragment_numbers(body)?)
            } else {
                None
            };
            return Ok((
                payloads,
                Some(SkLocation {
                    inner_next: next,
                    offset: base + at,
                    fragment,
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

/// The numbers at the start of an SKF body; 0, or a number above the total, is invalid.
fn fragment_numbers(body: &[u8]) -> Result<Fragment> {
    let mut r = Reader::new(body);
    let number = r.u16("Encrypted Fragment payload")?;
    let total = r.u16("Encrypted Fragment payload")?;
    if number == 0 || number > total {
        return Err(ParseError::Invalid("Encrypted Fragment payload numbers"));
    }
    Ok(Fragment { number, total })
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
