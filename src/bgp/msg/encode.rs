//! Encoding: whole messages with their header.

use std::net::IpAddr;

use super::attrs::encode_path_attrs;
use super::*;
use crate::prefix::IpPrefix;

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

pub(super) fn write_prefix(out: &mut Vec<u8>, p: &IpPrefix) {
    out.push(p.len());
    let n = p.len().div_ceil(8) as usize;
    match p.addr() {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()[..n.min(4)]),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()[..n.min(16)]),
    }
}

fn encode_update(u: &Update, four_octet: bool) -> Vec<u8> {
    let mut withdrawn = Vec::new();
    for p in &u.withdrawn {
        write_prefix(&mut withdrawn, p);
    }
    let attrs = encode_path_attrs(&u.attrs, four_octet);
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
