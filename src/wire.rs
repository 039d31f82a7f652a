//! Big-endian byte reading and writing shared by the IKE and BGP codecs.
//!
//! - [`Reader`]: every read says what it reads; reading past the end is a [`Truncated`] error
//!   naming it, never a panic and never a short slice.
//! - [`Writer`]: fixed-width fields are written from their own types, but length and count
//!   fields are written from `usize` and checked against the field's width: a value that does
//!   not fit is an [`Overflow`] error, never a silent `as u8` / `as u16` truncation that would
//!   put a wrong count on the wire.

use std::fmt;

/// A read ran past the end of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncated {
    /// What was being read ("TS payload", "withdrawn routes length", ...).
    pub what: &'static str,
}

impl fmt::Display for Truncated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "truncated {}", self.what)
    }
}

impl std::error::Error for Truncated {}

/// A length or count does not fit the field (or the limit) it is written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow {
    /// The field ("TS payload selector count", "BGP message length", ...).
    pub what: &'static str,
    pub value: usize,
    pub max: usize,
}

impl Overflow {
    /// `value` if it is at most `max`, else the error.
    pub fn check(what: &'static str, value: usize, max: usize) -> Result<usize, Overflow> {
        if value <= max {
            Ok(value)
        } else {
            Err(Overflow { what, value, max })
        }
    }
}

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {}, more than the {} it can be",
            self.what, self.value, self.max
        )
    }
}

impl std::error::Error for Overflow {}

/// A cursor over received bytes.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far (the offset of the next read within the input).
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread bytes, without consuming them.
    pub fn peek(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Truncated> {
        let end = self.pos.checked_add(n).ok_or(Truncated { what })?;
        let s = self.buf.get(self.pos..end).ok_or(Truncated { what })?;
        self.pos = end;
        Ok(s)
    }

    pub fn skip(&mut self, n: usize, what: &'static str) -> Result<(), Truncated> {
        self.take(n, what).map(|_| ())
    }

    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Truncated> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, Truncated> {
        self.array::<1>(what).map(|[b]| b)
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, Truncated> {
        self.array(what).map(u16::from_be_bytes)
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, Truncated> {
        self.array(what).map(u32::from_be_bytes)
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64, Truncated> {
        self.array(what).map(u64::from_be_bytes)
    }

    /// Everything not read yet; the reader is empty afterwards.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = self.peek();
        self.pos = self.buf.len();
        s
    }
}

/// A length field reserved by [`Writer::reserve_u16`], to be filled once its extent is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a reserved length field must be filled"]
pub struct LenSlot {
    at: usize,
}

impl LenSlot {
    /// Offset of the field in the output.
    pub fn offset(self) -> usize {
        self.at
    }
}

/// A growing output buffer.
#[derive(Clone, Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// A one-byte length or count field.
    pub fn len_u8(&mut self, what: &'static str, n: usize) -> Result<(), Overflow> {
        let v = u8::try_from(n).map_err(|_| Overflow {
            what,
            value: n,
            max: u8::MAX.into(),
        })?;
        self.u8(v);
        Ok(())
    }

    /// A two-byte length or count field.
    pub fn len_u16(&mut self, what: &'static str, n: usize) -> Result<(), Overflow> {
        let v = u16::try_from(n).map_err(|_| Overflow {
            what,
            value: n,
            max: u16::MAX.into(),
        })?;
        self.u16(v);
        Ok(())
    }

    /// A four-byte length field.
    pub fn len_u32(&mut self, what: &'static str, n: usize) -> Result<(), Overflow> {
        let v = u32::try_from(n).map_err(|_| Overflow {
            what,
            value: n,
            max: u32::MAX as usize,
        })?;
        self.u32(v);
        Ok(())
    }

    /// Writes a zero two-byte length field now, filled by [`Writer::fill_u16`] later.
    pub fn reserve_u16(&mut self) -> LenSlot {
        let at = self.buf.len();
        self.u16(0);
        LenSlot { at }
    }

    /// Fills a reserved field with `n`, checked like [`Writer::len_u16`].
    pub fn fill_u16(
        &mut self,
        slot: LenSlot,
        what: &'static str,
        n: usize,
    ) -> Result<(), Overflow> {
        let v = u16::try_from(n).map_err(|_| Overflow {
            what,
            value: n,
            max: u16::MAX.into(),
        })?;
        // A slot always comes from this writer's own reserve_u16, so the field is there.
        if let Some(field) = self.buf.get_mut(slot.at..slot.at + 2) {
            field.copy_from_slice(&v.to_be_bytes());
        }
        Ok(())
    }

    /// Bytes written after the reserved field (what most length fields count).
    pub fn since(&self, slot: LenSlot) -> usize {
        self.buf.len().saturating_sub(slot.at + 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded_and_name_what_was_short() {
        let mut r = Reader::new(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(r.u8("a"), Ok(1));
        assert_eq!(r.u16("b"), Ok(0x0203));
        assert_eq!(r.position(), 3);
        assert_eq!(r.peek(), &[4, 5, 6, 7]);
        assert_eq!(r.u64("c"), Err(Truncated { what: "c" }));
        // A failed read consumes nothing.
        assert_eq!(r.u32("d"), Ok(0x04050607));
        assert!(r.is_empty());
        assert_eq!(r.u8("e"), Err(Truncated { what: "e" }));
        assert_eq!(r.take(usize::MAX, "huge"), Err(Truncated { what: "huge" }));
        assert_eq!(
            Truncated { what: "TS payload" }.to_string(),
            "truncated TS payload"
        );
        let mut r = Reader::new(&[9, 8]);
        assert_eq!(r.rest(), &[9, 8]);
        assert_eq!(r.rest(), &[] as &[u8]);
    }

    #[test]
    fn counts_and_lengths_are_checked_not_truncated() {
        let mut w = Writer::new();
        assert!(w.len_u8("count", 255).is_ok());
        assert_eq!(
            w.len_u8("count", 256),
            Err(Overflow {
                what: "count",
                value: 256,
                max: 255
            })
        );
        assert!(w.len_u16("length", 65535).is_ok());
        assert!(w.len_u16("length", 65536).is_err());
        assert_eq!(
            w.as_slice(),
            &[255, 0xff, 0xff],
            "failed writes write nothing"
        );
        assert_eq!(
            Overflow::check("BGP message length", 4097, 4096)
                .unwrap_err()
                .to_string(),
            "BGP message length is 4097, more than the 4096 it can be"
        );
    }

    #[test]
    fn reserved_lengths_are_filled_and_checked() {
        let mut w = Writer::new();
        w.u8(7);
        let slot = w.reserve_u16();
        w.bytes(&[1, 2, 3]);
        assert_eq!(w.since(slot), 3);
        w.fill_u16(slot, "len", w.since(slot)).unwrap();
        assert_eq!(w.into_vec(), vec![7, 0, 3, 1, 2, 3]);

        let mut w = Writer::new();
        let slot = w.reserve_u16();
        w.bytes(&vec![0; 70_000]);
        assert!(w.fill_u16(slot, "len", w.since(slot)).is_err());
        assert_eq!(&w.as_slice()[..2], &[0, 0]);
    }
}
