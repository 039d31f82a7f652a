//! The payloads: their in-memory form, body encoding and body parsing.

use crate::wire::{Reader, Writer};

use super::sa::{parse_sa, write_sa};
use super::ts::{parse_ts, write_ts};
use super::*;

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

    pub(super) fn write_body(&self, w: &mut Writer) -> std::result::Result<(), EncodeError> {
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

    pub(super) fn critical(&self) -> bool {
        matches!(self, Payload::Other { critical: true, .. })
    }
}

pub(super) fn parse_body(ptype: u8, critical: bool, body: &[u8]) -> Result<Payload> {
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
