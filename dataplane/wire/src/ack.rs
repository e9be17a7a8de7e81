//! The `0x20 ACK` frame: per-modality cumulative acknowledgement plus up to
//! [`MAX_ACK_RANGES`] selective ranges above it.
//!
//! Reliable units (`r_m = 1`, draft-song-tsvwg-camp-00 §3.1.5) are kept by the sender until
//! an ACK covers them, independently of which path carried them, so ACKs number units by the
//! connection-level per-modality sequence number rather than by path. Decoded ranges are a
//! zero-copy view ([`AckRanges`]) over the validated bytes; encoding takes a plain slice of
//! ranges ([`emit_ack`]).

use core::fmt;
use core::ops::Range;

use crate::cursor::{Reader, Writer};
use crate::frame::{FRAME_HEADER_LEN, FrameHeader, FrameType};
use crate::{Modality, Seq, WireError};

/// Most selective ranges one ACK may carry. Bounds the ACK body (1036 bytes) and the work a
/// receiver does per ACK; a receiver with more gaps reports the lowest 64, which are the
/// ones closest to being retransmitted.
pub const MAX_ACK_RANGES: usize = 64;

/// ACK body bytes before the ranges: modality, reserved, range count, cumulative.
const ACK_FIXED_LEN: usize = 12;
/// Bytes per encoded range: start and end, both u64.
const RANGE_LEN: usize = 16;

/// Body length of an ACK with `range_count` ranges.
pub(crate) const fn body_len(range_count: usize) -> usize {
    ACK_FIXED_LEN + RANGE_LEN * range_count
}

/// Full frame length (header included) of an ACK with `range_count` ranges.
pub const fn ack_len(range_count: usize) -> usize {
    FRAME_HEADER_LEN + body_len(range_count)
}

/// Rejects ACK body lengths that cannot be `12 + 16·n` with `n ≤ MAX_ACK_RANGES`, so a
/// stream reader can refuse the header without waiting for the body.
pub(crate) fn check_body_len(len: usize) -> Result<(), WireError> {
    let Some(range_bytes) = len.checked_sub(ACK_FIXED_LEN) else {
        return Err(WireError::LengthMismatch {
            expected: ACK_FIXED_LEN,
            got: len,
        });
    };
    let count = range_bytes / RANGE_LEN;
    if range_bytes % RANGE_LEN != 0 {
        return Err(WireError::LengthMismatch {
            expected: body_len(count),
            got: len,
        });
    }
    if count > MAX_ACK_RANGES {
        return Err(WireError::TooManyRanges(count));
    }
    Ok(())
}

/// Checks the ordering rules: every range non-empty, the first starting strictly above
/// `cumulative` (a range starting at `cumulative` would have been folded into it), each
/// next range starting strictly after the previous end (no overlap, no adjacency).
fn check_ranges(
    cumulative: Seq,
    ranges: impl Iterator<Item = Range<u64>>,
) -> Result<(), WireError> {
    let mut floor = cumulative;
    for range in ranges {
        if range.start <= floor || range.end <= range.start {
            return Err(WireError::InvalidAckRanges);
        }
        floor = range.end;
    }
    Ok(())
}

/// Zero-copy view of validated ACK ranges: half-open `[start, end)` sequence ranges, strictly
/// ascending, non-adjacent, all above the ACK's cumulative point.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AckRanges<'a> {
    /// `16·n` bytes of (start u64, end u64) pairs, already validated.
    raw: &'a [u8],
}

impl<'a> AckRanges<'a> {
    /// No ranges.
    pub const fn empty() -> Self {
        AckRanges { raw: &[] }
    }

    /// Validates `raw` (the encoded ranges of an ACK, 16 bytes each) against `cumulative`.
    ///
    /// Errors: [`WireError::LengthMismatch`] if `raw` is not a whole number of ranges,
    /// [`WireError::TooManyRanges`], [`WireError::InvalidAckRanges`].
    pub fn new(raw: &'a [u8], cumulative: Seq) -> Result<Self, WireError> {
        let count = raw.len() / RANGE_LEN;
        if raw.len() % RANGE_LEN != 0 {
            return Err(WireError::LengthMismatch {
                expected: count * RANGE_LEN,
                got: raw.len(),
            });
        }
        if count > MAX_ACK_RANGES {
            return Err(WireError::TooManyRanges(count));
        }
        let ranges = AckRanges { raw };
        check_ranges(cumulative, ranges.iter())?;
        Ok(ranges)
    }

    /// Iterates the ranges in ascending order.
    pub fn iter(&self) -> AckRangeIter<'a> {
        AckRangeIter { rest: self.raw }
    }

    /// Number of ranges.
    pub fn len(&self) -> usize {
        self.raw.len() / RANGE_LEN
    }

    /// Whether there are no ranges.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The encoded ranges, as they appear on the wire.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }
}

impl Default for AckRanges<'_> {
    fn default() -> Self {
        AckRanges::empty()
    }
}

impl fmt::Debug for AckRanges<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for AckRanges<'a> {
    type Item = Range<u64>;
    type IntoIter = AckRangeIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over [`AckRanges`].
#[derive(Clone, Debug)]
pub struct AckRangeIter<'a> {
    rest: &'a [u8],
}

impl Iterator for AckRangeIter<'_> {
    type Item = Range<u64>;

    fn next(&mut self) -> Option<Range<u64>> {
        let (start, rest) = self.rest.split_first_chunk::<8>()?;
        let (end, rest) = rest.split_first_chunk::<8>()?;
        self.rest = rest;
        Some(u64::from_be_bytes(*start)..u64::from_be_bytes(*end))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.rest.len() / RANGE_LEN;
        (n, Some(n))
    }
}

impl ExactSizeIterator for AckRangeIter<'_> {}

/// `0x20 ACK`: every unit of `modality` with a sequence number below `cumulative` has been
/// received, and so has every sequence number inside `ranges`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack<'a> {
    /// The modality whose sequence space is acknowledged.
    pub modality: Modality,
    /// Every seq `< cumulative` has been received.
    pub cumulative: Seq,
    /// Received seqs above the cumulative point.
    pub ranges: AckRanges<'a>,
}

impl<'a> Ack<'a> {
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, WireError> {
        let code = r.u8()?;
        let modality = Modality::from_code(code).ok_or(WireError::UnknownModality(code))?;
        if r.u8()? != 0 {
            return Err(WireError::ReservedBits);
        }
        let count = usize::from(r.u16()?);
        if count > MAX_ACK_RANGES {
            return Err(WireError::TooManyRanges(count));
        }
        let cumulative = r.u64()?;
        let raw = r.rest();
        if raw.len() != count * RANGE_LEN {
            return Err(WireError::LengthMismatch {
                expected: body_len(count),
                got: ACK_FIXED_LEN + raw.len(),
            });
        }
        Ok(Ack {
            modality,
            cumulative,
            ranges: AckRanges::new(raw, cumulative)?,
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), WireError> {
        // Re-checked because `ranges` may have been validated against another cumulative.
        check_ranges(self.cumulative, self.ranges.iter())?;
        encode_fields(self.modality, self.cumulative, self.ranges.len(), w)?;
        w.bytes(self.ranges.as_bytes())
    }
}

fn encode_fields(
    modality: Modality,
    cumulative: Seq,
    count: usize,
    w: &mut Writer<'_>,
) -> Result<(), WireError> {
    let count16 = u16::try_from(count).map_err(|_| WireError::TooManyRanges(count))?;
    w.u8(modality as u8)?;
    w.u8(0)?;
    w.u16(count16)?;
    w.u64(cumulative)
}

/// Encodes a complete ACK frame (header included) at the front of `buf` and returns the
/// bytes written ([`ack_len`]`(ranges.len())`).
///
/// `ranges` must obey the decoder's rules (see [`AckRanges`]): otherwise
/// [`WireError::TooManyRanges`] or [`WireError::InvalidAckRanges`];
/// [`WireError::BufferTooSmall`] if `buf` is too short.
pub fn emit_ack(
    modality: Modality,
    cumulative: Seq,
    ranges: &[Range<u64>],
    buf: &mut [u8],
) -> Result<usize, WireError> {
    if ranges.len() > MAX_ACK_RANGES {
        return Err(WireError::TooManyRanges(ranges.len()));
    }
    check_ranges(cumulative, ranges.iter().cloned())?;
    let needed = ack_len(ranges.len());
    if buf.len() < needed {
        return Err(WireError::BufferTooSmall {
            needed,
            available: buf.len(),
        });
    }
    let mut w = Writer::new(buf);
    FrameHeader::for_body(FrameType::Ack, body_len(ranges.len()))?.encode(&mut w)?;
    encode_fields(modality, cumulative, ranges.len(), &mut w)?;
    for range in ranges {
        w.u64(range.start)?;
        w.u64(range.end)?;
    }
    Ok(w.written())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [12, 15) and [20, 21) as they appear on the wire.
    const RAW: [u8; 32] = [
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0F, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x15, //
    ];

    #[test]
    fn ranges_are_validated_against_the_cumulative_point() {
        let ranges = AckRanges::new(&RAW, 11).unwrap();
        assert_eq!(ranges.iter().len(), 2);
        assert_eq!(ranges.into_iter().collect::<Vec<_>>(), vec![12..15, 20..21]);
        assert_eq!(ranges.as_bytes(), &RAW);
        assert_eq!(AckRanges::new(&RAW, 12), Err(WireError::InvalidAckRanges));
        assert_eq!(
            AckRanges::new(&RAW, u64::MAX),
            Err(WireError::InvalidAckRanges)
        );
    }

    #[test]
    fn partial_ranges_are_a_length_mismatch() {
        assert_eq!(
            AckRanges::new(&RAW[..20], 0),
            Err(WireError::LengthMismatch {
                expected: 16,
                got: 20
            })
        );
    }

    #[test]
    fn empty_ranges_are_valid_for_any_cumulative() {
        assert_eq!(AckRanges::new(&[], u64::MAX), Ok(AckRanges::empty()));
        assert!(AckRanges::default().is_empty());
        assert_eq!(AckRanges::empty().len(), 0);
        assert_eq!(ack_len(0), 18);
        assert_eq!(ack_len(MAX_ACK_RANGES), 1042);
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // a one-range ACK, not a collected range
    fn the_top_of_the_sequence_space_is_ackable() {
        let top = [u64::MAX - 2..u64::MAX];
        let mut buf = [0u8; 34];
        assert_eq!(
            emit_ack(Modality::Text, u64::MAX - 3, &top, &mut buf),
            Ok(34)
        );
        let raw = buf.get(18..).unwrap();
        let ranges = AckRanges::new(raw, u64::MAX - 3).unwrap();
        assert_eq!(ranges.iter().collect::<Vec<_>>(), top);
    }
}
