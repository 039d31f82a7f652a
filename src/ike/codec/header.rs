//! The fixed IKE header.

use crate::wire::{Reader, Writer};

use super::*;

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
