//! SA payload: proposals and their transforms (RFC 7296 3.3).

use crate::wire::{Reader, Writer};

use super::*;

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

pub(super) fn write_sa(props: &[Proposal], w: &mut Writer) -> std::result::Result<(), EncodeError> {
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

pub(super) fn parse_sa(body: &[u8]) -> Result<Vec<Proposal>> {
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
