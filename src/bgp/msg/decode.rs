//! Decoding: the message header, OPEN, NOTIFICATION, ROUTE-REFRESH and the UPDATE frame
//! (withdrawn routes, path attributes, NLRI). Path attributes themselves are in `attrs`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::attrs::{decode_path_attrs, DecodedAttrs};
use super::*;
use crate::prefix::IpPrefix;
use crate::wire::Reader;

/// The fixed header of one message, validated (RFC 4271 6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub length: usize,
    pub msg_type: u8,
}

/// Validates the 19-byte header at the start of `buf` (which must hold at least 19 bytes).
pub fn parse_header(buf: &[u8]) -> Result<Header, Notification> {
    let mut r = Reader::new(buf);
    let (Ok(marker), Ok(length_field), Ok(msg_type)) = (
        r.take(MARKER.len(), "marker"),
        r.array::<2>("message length"),
        r.u8("message type"),
    ) else {
        return Err(Notification::new(
            err::HEADER,
            err::HEADER_BAD_LENGTH,
            vec![],
        ));
    };
    if marker != MARKER {
        return Err(Notification::new(err::HEADER, err::HEADER_NOT_SYNC, vec![]));
    }
    let length = usize::from(u16::from_be_bytes(length_field));
    let bad_len = || Notification::new(err::HEADER, err::HEADER_BAD_LENGTH, length_field.to_vec());
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
    let malformed = |_| Notification::new(err::OPEN, 0, vec![]);
    let mut r = Reader::new(body);
    let version = r.u8("OPEN version").map_err(malformed)?;
    if version != BGP_VERSION {
        // Data: the largest version we support (RFC 4271 6.2).
        return Err(Notification::new(
            err::OPEN,
            err::OPEN_BAD_VERSION,
            vec![0, BGP_VERSION],
        ));
    }
    let my_as = r.u16("OPEN my AS").map_err(malformed)?;
    let hold_time = r.u16("OPEN hold time").map_err(malformed)?;
    let bgp_id = Ipv4Addr::from(r.u32("OPEN BGP identifier").map_err(malformed)?);
    let mut opt_len = usize::from(r.u8("OPEN parameters length").map_err(malformed)?);
    // RFC 9072 extended optional parameters: length 255 followed by type 255.
    let extended = opt_len == 255 && r.peek().first() == Some(&255);
    if extended {
        r.skip(1, "OPEN extended parameters type")
            .map_err(malformed)?;
        opt_len = usize::from(
            r.u16("OPEN extended parameters length")
                .map_err(malformed)?,
        );
    }
    let params = r.take(opt_len, "OPEN parameters").map_err(malformed)?;
    if !r.is_empty() {
        return Err(Notification::new(err::OPEN, 0, vec![]));
    }
    let mut capabilities = Vec::new();
    let mut p = Reader::new(params);
    while !p.is_empty() {
        let ptype = p.u8("parameter type").map_err(malformed)?;
        let plen = if extended {
            p.u16("parameter length")
        } else {
            p.u8("parameter length").map(u16::from)
        }
        .map_err(malformed)?;
        let pval = p.take(usize::from(plen), "parameter").map_err(malformed)?;
        if ptype != 2 {
            return Err(Notification::new(
                err::OPEN,
                err::OPEN_UNSUPPORTED_PARAM,
                vec![],
            ));
        }
        let mut c = Reader::new(pval);
        while !c.is_empty() {
            let code = c.u8("capability code").map_err(malformed)?;
            let clen = c.u8("capability length").map_err(malformed)?;
            let value = c.take(usize::from(clen), "capability").map_err(malformed)?;
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
            let len = u16::try_from(body.len() + HEADER_LEN)
                .unwrap_or(u16::MAX)
                .to_be_bytes();
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
pub(super) fn read_prefixes(buf: &[u8], v6: bool) -> Option<Vec<IpPrefix>> {
    let width: u8 = if v6 { 128 } else { 32 };
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = r.u8("prefix length").ok()?;
        if len > width {
            return None;
        }
        let bytes = r.take(usize::from(len.div_ceil(8)), "prefix").ok()?;
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

fn invalid_network() -> Notification {
    Notification::new(err::UPDATE, err::UPDATE_INVALID_NETWORK, vec![])
}

pub(super) fn malformed_attr_list() -> Notification {
    Notification::new(err::UPDATE, err::UPDATE_MALFORMED_ATTR_LIST, vec![])
}

/// Decodes an UPDATE body (RFC 4271 4.3) with RFC 7606 error handling:
/// - `Err(notification)`: the session must be reset (unlocatable NLRI, NLRI parse errors,
///   malformed MP_REACH/MP_UNREACH, unrecognized well-known attribute);
/// - `Ok` with `treat_as_withdraw` set: malformed attribute, the NLRI are to be withdrawn;
/// - `Ok` with `discarded`: attributes dropped, route otherwise fine.
pub fn decode_update(body: &[u8], four_octet_as: bool) -> Result<DecodedUpdate, Notification> {
    let malformed = |_| malformed_attr_list();
    let mut r = Reader::new(body);
    let wlen = r.u16("withdrawn routes length").map_err(malformed)?;
    let wbuf = r
        .take(usize::from(wlen), "withdrawn routes")
        .map_err(malformed)?;
    let alen = r.u16("path attributes length").map_err(malformed)?;
    let abuf = r
        .take(usize::from(alen), "path attributes")
        .map_err(malformed)?;
    let nbuf = r.rest();
    let withdrawn = read_prefixes(wbuf, false).ok_or_else(invalid_network)?;
    let nlri = read_prefixes(nbuf, false).ok_or_else(invalid_network)?;

    let DecodedAttrs {
        attrs,
        mut treat_as_withdraw,
        discarded,
    } = decode_path_attrs(abuf, four_octet_as)?;
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
