//! Bounds-checked big-endian readers and writers over byte slices.
//!
//! Every codec in this crate goes through these two types so that no decoder or encoder ever
//! indexes a slice directly: a short slice becomes a [`WireError`], never a panic.

use crate::WireError;

/// Reads fixed-width big-endian fields from the front of a slice.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    total: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader {
            rest: buf,
            total: buf.len(),
        }
    }

    fn short(&self, want: usize) -> WireError {
        WireError::Truncated {
            needed: self.total - self.rest.len() + want,
            available: self.total,
        }
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or_else(|| self.short(N))?;
        self.rest = rest;
        Ok(*head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        self.array::<1>().map(|[b]| b)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        self.array().map(u64::from_be_bytes)
    }

    /// Whatever has not been read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

/// Writes fixed-width big-endian fields to the front of a mutable slice.
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    pub(crate) fn bytes(&mut self, src: &[u8]) -> Result<(), WireError> {
        let available = self.buf.len();
        let end = self
            .pos
            .checked_add(src.len())
            .ok_or(WireError::BufferTooSmall {
                needed: usize::MAX,
                available,
            })?;
        let dst = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(WireError::BufferTooSmall {
                needed: end,
                available,
            })?;
        dst.copy_from_slice(src);
        self.pos = end;
        Ok(())
    }

    pub(crate) fn u8(&mut self, v: u8) -> Result<(), WireError> {
        self.bytes(&[v])
    }

    pub(crate) fn u16(&mut self, v: u16) -> Result<(), WireError> {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn u32(&mut self, v: u32) -> Result<(), WireError> {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn u64(&mut self, v: u64) -> Result<(), WireError> {
        self.bytes(&v.to_be_bytes())
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> usize {
        self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_short_input_instead_of_panicking() {
        let mut r = Reader::new(&[0x01, 0x02, 0x03]);
        assert_eq!(r.u16(), Ok(0x0102));
        assert_eq!(
            r.u32(),
            Err(WireError::Truncated {
                needed: 6,
                available: 3
            })
        );
        assert_eq!(r.u8(), Ok(0x03));
        assert_eq!(r.rest(), &[] as &[u8]);
    }

    #[test]
    fn writer_reports_short_output_instead_of_panicking() {
        let mut buf = [0u8; 5];
        let mut w = Writer::new(&mut buf);
        assert_eq!(w.u32(0xA1B2_C3D4), Ok(()));
        assert_eq!(
            w.u16(7),
            Err(WireError::BufferTooSmall {
                needed: 6,
                available: 5
            })
        );
        assert_eq!(w.written(), 4);
        assert_eq!(buf, [0xA1, 0xB2, 0xC3, 0xD4, 0x00]);
    }
}
