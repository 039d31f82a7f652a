//! Traffic selector payloads TSi/TSr (RFC 7296 3.13).

use std::net::IpAddr;

use crate::wire::{Reader, Writer};

use super::*;

/// A traffic selector as carried in TSi/TSr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireTs {
    pub ip_proto: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub start: IpAddr,
    pub end: IpAddr,
}

pub(super) fn write_ts(ts: &[WireTs], w: &mut Writer) -> std::result::Result<(), EncodeError> {
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

pub(super) fn parse_ts(body: &[u8]) -> Result<Vec<WireTs>> {
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
