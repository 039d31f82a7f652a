//! Encoding: whole messages with their header. Every length and count is checked: a message
//! that would not fit its fields (or the 4096-byte limit) is an error, never a wrong length.

use std::net::IpAddr;

use super::attrs::encode_path_attrs;
use super::*;
use crate::prefix::IpPrefix;
use crate::wire::{Overflow, Writer};

/// Encodes one message with its header. `four_octet_as` selects the AS_PATH encoding.
pub fn encode(msg: &Message, four_octet_as: bool) -> Result<Vec<u8>, Overflow> {
    let mut w = Writer::with_capacity(HEADER_LEN + 64);
    w.bytes(&MARKER);
    let length = w.reserve_u16();
    match msg {
        Message::Open(o) => {
            w.u8(TYPE_OPEN);
            encode_open(o, &mut w)?;
        }
        Message::Update(u) => {
            w.u8(TYPE_UPDATE);
            encode_update(u, four_octet_as, &mut w)?;
        }
        Message::Notification(n) => {
            w.u8(TYPE_NOTIFICATION);
            w.u8(n.code);
            w.u8(n.subcode);
            w.bytes(&n.data);
        }
        Message::Keepalive => w.u8(TYPE_KEEPALIVE),
        Message::RouteRefresh(rr) => {
            w.u8(TYPE_ROUTE_REFRESH);
            w.u16(rr.afi);
            w.u8(rr.subtype);
            w.u8(rr.safi);
        }
    }
    // RFC 4271 4.1: the length field could say more, but no message may be longer.
    let total = Overflow::check("BGP message length", w.len(), MAX_MESSAGE_LEN)?;
    w.fill_u16(length, "BGP message length", total)?;
    Ok(w.into_vec())
}

fn encode_open(o: &Open, w: &mut Writer) -> Result<(), Overflow> {
    w.u8(o.version);
    w.u16(o.my_as);
    w.u16(o.hold_time);
    w.bytes(&o.bgp_id.octets());
    let mut caps = Writer::new();
    for c in &o.capabilities {
        match c {
            Capability::Multiprotocol { afi, safi } => {
                caps.u8(CAP_MULTIPROTOCOL);
                caps.u8(4);
                caps.u16(*afi);
                caps.u8(0);
                caps.u8(*safi);
            }
            Capability::RouteRefresh => {
                caps.u8(CAP_ROUTE_REFRESH);
                caps.u8(0);
            }
            Capability::FourOctetAs(asn) => {
                caps.u8(CAP_FOUR_OCTET_AS);
                caps.u8(4);
                caps.u32(*asn);
            }
            Capability::Other { code, value } => {
                caps.u8(*code);
                caps.len_u8("capability length", value.len())?;
                caps.bytes(value);
            }
        }
    }
    if caps.is_empty() {
        w.u8(0);
    } else {
        // One Capabilities parameter holds them all: ample for the handful this speaker sends.
        w.len_u8("OPEN optional parameters length", caps.len() + 2)?;
        w.u8(2);
        w.len_u8("capabilities parameter length", caps.len())?;
        w.bytes(caps.as_slice());
    }
    Ok(())
}

/// One NLRI entry: the length in bits, then only the bytes it covers.
pub(super) fn write_prefix(w: &mut Writer, p: &IpPrefix) {
    w.u8(p.len());
    let n = usize::from(p.len().div_ceil(8));
    match p.addr() {
        IpAddr::V4(a) => w.bytes(&a.octets()[..n.min(4)]),
        IpAddr::V6(a) => w.bytes(&a.octets()[..n.min(16)]),
    }
}

fn encode_update(u: &Update, four_octet: bool, w: &mut Writer) -> Result<(), Overflow> {
    let withdrawn = w.reserve_u16();
    for p in &u.withdrawn {
        write_prefix(w, p);
    }
    w.fill_u16(withdrawn, "withdrawn routes length", w.since(withdrawn))?;
    let attrs = w.reserve_u16();
    encode_path_attrs(&u.attrs, four_octet, w)?;
    w.fill_u16(attrs, "path attributes length", w.since(attrs))?;
    for p in &u.nlri {
        write_prefix(w, p);
    }
    Ok(())
}
