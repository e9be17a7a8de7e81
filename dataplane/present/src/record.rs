//! The presentation record, version 1: one presented unit as bytes, and the strict
//! incremental decoder of a record stream (docs/wire-format.md §9).
//!
//! A stream is an 8-byte preamble (`"CPRS"`, version, three zero bytes) followed by records,
//! each a big-endian u32 length and that many bytes: a 48-byte header and the payload.

use camp_wire::{CaptureId, Modality, PathId, UnitFlags};

/// Magic at the start of every record stream.
pub const MAGIC: [u8; 4] = *b"CPRS";
/// Version of the record format this crate writes and reads.
pub const VERSION: u8 = 1;
/// Length of the stream preamble.
pub const PREAMBLE_LEN: usize = 8;
/// Length of a record's fixed header (after its 4-byte length field).
pub const HEADER_LEN: usize = 48;
/// Largest payload a record may carry: the CAMP wire format's body cap (1 MiB) bounds every
/// unit's payload, so nothing larger can have been presented.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// Presentation flags: the unit's wire flags in the low three bits, the receiver's verdict
/// above them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PresentFlags(u8);

impl PresentFlags {
    /// Wire KEYFRAME.
    pub const KEYFRAME: PresentFlags = PresentFlags(0x01);
    /// Wire END_OF_UTTERANCE.
    pub const END_OF_UTTERANCE: PresentFlags = PresentFlags(0x02);
    /// Wire END_OF_TURN.
    pub const END_OF_TURN: PresentFlags = PresentFlags(0x04);
    /// A late video unit the renderer should decode (it may be a reference) but not show.
    pub const SKIPPED: PresentFlags = PresentFlags(0x08);
    /// Delivered after its scheduled presentation time (presented at delivery instead).
    pub const LATE: PresentFlags = PresentFlags(0x10);
    /// Every bit version 1 defines.
    pub const DEFINED: u8 = 0x1F;

    /// No flag set.
    pub const fn empty() -> Self {
        PresentFlags(0)
    }
    /// Flags from raw bits, `None` if an undefined bit is set.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        if bits & !Self::DEFINED != 0 {
            None
        } else {
            Some(PresentFlags(bits))
        }
    }
    /// Raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: PresentFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Union of two flag sets.
    #[must_use]
    pub const fn with(self, other: PresentFlags) -> Self {
        PresentFlags(self.0 | other.0)
    }
    /// The wire flags of the unit (keyframe, end of utterance, end of turn).
    pub fn unit_flags(self) -> UnitFlags {
        // Masked to the wire's defined bits, so from_bits cannot fail.
        UnitFlags::from_bits(self.0 & UnitFlags::DEFINED).unwrap_or_default()
    }
}

/// One presented unit: what the renderer gets, borrowed from the receiver or a decode buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PresentRecord<'a> {
    /// Stream.
    pub modality: Modality,
    /// Wire flags plus the receiver's verdict.
    pub flags: PresentFlags,
    /// Capture the unit carries (RFC 8849 semantics, `0xFFFF` composed).
    pub capture_id: CaptureId,
    /// Sync index `k` (draft-song-tsvwg-camp-00 §3.1.1).
    pub sync_index: u32,
    /// Per-stream sequence number.
    pub seq: u64,
    /// Generation time `g_m,k`, µs on the sender's session clock. campd sets it to the turn's
    /// base plus the ingested `media_ms`, so differences of `gen_us` within a turn are media
    /// time differences.
    pub gen_us: u64,
    /// Presentation time, µs on the receiver's clock.
    pub present_us: u64,
    /// Arrival time of the unit's first copy, µs on the receiver's clock.
    pub arrival_us: u64,
    /// Path the first copy arrived on.
    pub path: PathId,
    /// The media bytes as the sender submitted them.
    pub payload: &'a [u8],
}

impl<'a> PresentRecord<'a> {
    /// The record of a unit the receiver just played out.
    pub fn from_played(p: &camp_recv::playout::PlayedUnit<'a>) -> Self {
        let mut flags = PresentFlags(p.meta.flags.bits());
        if p.skipped {
            flags = flags.with(PresentFlags::SKIPPED);
        }
        if p.late {
            flags = flags.with(PresentFlags::LATE);
        }
        PresentRecord {
            modality: p.meta.modality,
            flags,
            capture_id: p.meta.capture_id,
            sync_index: p.meta.sync_index,
            seq: p.meta.seq,
            gen_us: p.meta.gen_time_us,
            present_us: p.present_us,
            arrival_us: p.arrival_us,
            path: p.path,
            payload: p.payload,
        }
    }

    /// Bytes [`PresentRecord::emit`] writes: length field, header, payload.
    pub fn encoded_len(&self) -> usize {
        4 + HEADER_LEN + self.payload.len()
    }

    /// Appends the record (length field included) to `out`.
    ///
    /// # Errors
    /// [`DecodeError::PayloadTooLong`] if the payload exceeds [`MAX_PAYLOAD`]; nothing is
    /// written then.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        if self.payload.len() > MAX_PAYLOAD {
            return Err(DecodeError::PayloadTooLong(self.payload.len() as u64));
        }
        // Both fit in u32: the payload is at most MAX_PAYLOAD.
        let body = (HEADER_LEN + self.payload.len()) as u32;
        out.reserve(self.encoded_len());
        out.extend_from_slice(&body.to_be_bytes());
        out.push(self.modality as u8);
        out.push(self.flags.bits());
        out.extend_from_slice(&self.capture_id.0.to_be_bytes());
        out.extend_from_slice(&self.sync_index.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.gen_us.to_be_bytes());
        out.extend_from_slice(&self.present_us.to_be_bytes());
        out.extend_from_slice(&self.arrival_us.to_be_bytes());
        out.extend_from_slice(&self.path.0.to_be_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(self.payload);
        Ok(())
    }

    /// Parses one record body (the bytes after the length field).
    ///
    /// # Errors
    /// A [`DecodeError`] for a short body, an unknown modality or flag, or a payload length
    /// that disagrees with the body length.
    pub fn parse_body(body: &'a [u8]) -> Result<Self, DecodeError> {
        if body.len() < HEADER_LEN {
            return Err(DecodeError::ShortRecord(body.len() as u32));
        }
        let u16_at = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
        let u32_at =
            |o: usize| u32::from_be_bytes([body[o], body[o + 1], body[o + 2], body[o + 3]]);
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[o..o + 8]);
            u64::from_be_bytes(b)
        };
        let modality = Modality::from_code(body[0]).ok_or(DecodeError::UnknownModality(body[0]))?;
        let flags = PresentFlags::from_bits(body[1]).ok_or(DecodeError::ReservedBits(body[1]))?;
        let payload_len = u32_at(44);
        if u64::from(payload_len) != (body.len() - HEADER_LEN) as u64 {
            return Err(DecodeError::LengthMismatch {
                record: body.len() as u32,
                payload: payload_len,
            });
        }
        Ok(PresentRecord {
            modality,
            flags,
            capture_id: CaptureId(u16_at(2)),
            sync_index: u32_at(4),
            seq: u64_at(8),
            gen_us: u64_at(16),
            present_us: u64_at(24),
            arrival_us: u64_at(32),
            path: PathId(u32_at(40)),
            payload: &body[HEADER_LEN..],
        })
    }

    /// An owned copy.
    pub fn to_owned_record(&self) -> OwnedRecord {
        OwnedRecord {
            modality: self.modality,
            flags: self.flags,
            capture_id: self.capture_id,
            sync_index: self.sync_index,
            seq: self.seq,
            gen_us: self.gen_us,
            present_us: self.present_us,
            arrival_us: self.arrival_us,
            path: self.path,
            payload: self.payload.to_vec(),
        }
    }
}

/// A [`PresentRecord`] that owns its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedRecord {
    /// See [`PresentRecord::modality`].
    pub modality: Modality,
    /// See [`PresentRecord::flags`].
    pub flags: PresentFlags,
    /// See [`PresentRecord::capture_id`].
    pub capture_id: CaptureId,
    /// See [`PresentRecord::sync_index`].
    pub sync_index: u32,
    /// See [`PresentRecord::seq`].
    pub seq: u64,
    /// See [`PresentRecord::gen_us`].
    pub gen_us: u64,
    /// See [`PresentRecord::present_us`].
    pub present_us: u64,
    /// See [`PresentRecord::arrival_us`].
    pub arrival_us: u64,
    /// See [`PresentRecord::path`].
    pub path: PathId,
    /// See [`PresentRecord::payload`].
    pub payload: Vec<u8>,
}

impl OwnedRecord {
    /// The borrowed view.
    pub fn as_record(&self) -> PresentRecord<'_> {
        PresentRecord {
            modality: self.modality,
            flags: self.flags,
            capture_id: self.capture_id,
            sync_index: self.sync_index,
            seq: self.seq,
            gen_us: self.gen_us,
            present_us: self.present_us,
            arrival_us: self.arrival_us,
            path: self.path,
            payload: &self.payload,
        }
    }
}

/// The stream preamble of version [`VERSION`].
pub fn preamble() -> [u8; PREAMBLE_LEN] {
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION, 0, 0, 0]
}

/// Why a record stream was refused. After any error the stream has lost its framing; a
/// [`Decoder`] stays in the error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The stream does not start with `"CPRS"`.
    #[error("not a CAMP presentation stream (bad magic)")]
    BadMagic,
    /// The preamble names a version this decoder does not read.
    #[error("presentation stream version {0} (this decoder reads {VERSION})")]
    UnknownVersion(u8),
    /// The preamble's reserved bytes are not zero.
    #[error("reserved preamble bytes not zero")]
    ReservedPreamble,
    /// A record length below the fixed header.
    #[error("record of {0} bytes is shorter than its {HEADER_LEN}-byte header")]
    ShortRecord(u32),
    /// A record length above the header plus [`MAX_PAYLOAD`], or a payload too long to emit.
    #[error("payload of {0} bytes exceeds {MAX_PAYLOAD}")]
    PayloadTooLong(u64),
    /// A modality code that version 1 does not define.
    #[error("unknown modality code {0}")]
    UnknownModality(u8),
    /// An undefined flag bit is set.
    #[error("undefined flag bits in {0:#04x}")]
    ReservedBits(u8),
    /// The payload length field disagrees with the record length.
    #[error("record of {record} bytes says its payload is {payload} bytes")]
    LengthMismatch {
        /// Record body length.
        record: u32,
        /// Payload length field.
        payload: u32,
    },
    /// The stream ended inside the preamble or a record.
    #[error("stream ended inside a record ({0} bytes left over)")]
    Truncated(usize),
}

/// Incremental decoder of a record stream: push bytes as they arrive, pull records.
///
/// Memory is bounded by one record (header plus [`MAX_PAYLOAD`]) plus whatever the caller
/// pushes before pulling; a length is checked before its body is awaited.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed by returned records.
    start: usize,
    preamble_seen: bool,
    failed: Option<DecodeError>,
}

impl Decoder {
    /// A decoder expecting the stream preamble first.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > (1 << 16) && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete record, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    /// The first framing or content error; every later call returns it again.
    pub fn next_record(&mut self) -> Result<Option<PresentRecord<'_>>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.frame() {
            Ok(Some((from, to))) => match PresentRecord::parse_body(&self.buf[from..to]) {
                Ok(_) => {
                    self.start = to;
                    // Parsed again on the borrowed slice: the first parse only validated,
                    // and returning its result would borrow `self` mutably and immutably.
                    Ok(PresentRecord::parse_body(&self.buf[from..to]).ok())
                }
                Err(e) => {
                    self.failed = Some(e.clone());
                    Err(e)
                }
            },
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Call at end of stream: an error if bytes of an unfinished preamble or record remain.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`], or the error the decoder already stopped at.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.buf.len() - self.start {
            0 if self.preamble_seen => Ok(()),
            0 => Err(DecodeError::Truncated(0)),
            n => Err(DecodeError::Truncated(n)),
        }
    }

    /// Locates the next record body in `buf`, checking the preamble first.
    fn frame(&mut self) -> Result<Option<(usize, usize)>, DecodeError> {
        let avail = &self.buf[self.start..];
        if !self.preamble_seen {
            // Check what is there already, so a wrong stream fails at its first bytes.
            let n = avail.len().min(4);
            if avail[..n] != MAGIC[..n] {
                return Err(DecodeError::BadMagic);
            }
            if avail.len() > 4 && avail[4] != VERSION {
                return Err(DecodeError::UnknownVersion(avail[4]));
            }
            if avail.len() < PREAMBLE_LEN {
                return Ok(None);
            }
            if avail[5..8] != [0, 0, 0] {
                return Err(DecodeError::ReservedPreamble);
            }
            self.preamble_seen = true;
            self.start += PREAMBLE_LEN;
            return self.frame();
        }
        if avail.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]);
        if (len as usize) < HEADER_LEN {
            return Err(DecodeError::ShortRecord(len));
        }
        if len as usize - HEADER_LEN > MAX_PAYLOAD {
            return Err(DecodeError::PayloadTooLong(
                u64::from(len) - HEADER_LEN as u64,
            ));
        }
        if avail.len() < 4 + len as usize {
            return Ok(None);
        }
        let from = self.start + 4;
        Ok(Some((from, from + len as usize)))
    }
}

/// Decodes a whole stream held in memory.
///
/// # Errors
/// The first [`DecodeError`], including [`DecodeError::Truncated`] at a cut end.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<OwnedRecord>, DecodeError> {
    let mut d = Decoder::new();
    d.push(bytes);
    let mut out = Vec::new();
    while let Some(r) = d.next_record()? {
        out.push(r.to_owned_record());
    }
    d.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> OwnedRecord {
        OwnedRecord {
            modality: Modality::Audio,
            flags: PresentFlags::KEYFRAME.with(PresentFlags::END_OF_TURN),
            capture_id: CaptureId(7),
            sync_index: 258,
            seq: 0x0A0B,
            gen_us: 0x0102_0304_0506,
            present_us: 0x0A0B_0C0D,
            arrival_us: 0x0A0B_0000,
            path: PathId(1),
            payload: vec![0xDE, 0xAD, 0xBE],
        }
    }

    /// The example of docs/wire-format.md §9, byte for byte.
    const SAMPLE: [u8; 4 + 48 + 3] = [
        0x00, 0x00, 0x00, 0x33, // length 51
        0x01, 0x05, 0x00, 0x07, // audio, KEYFRAME|END_OF_TURN, capture 7
        0x00, 0x00, 0x01, 0x02, // k = 258
        0, 0, 0, 0, 0, 0, 0x0A, 0x0B, // seq
        0, 0, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, // gen
        0, 0, 0, 0, 0x0A, 0x0B, 0x0C, 0x0D, // present
        0, 0, 0, 0, 0x0A, 0x0B, 0x00, 0x00, // arrival
        0, 0, 0, 1, // path 1
        0, 0, 0, 3, // payload length
        0xDE, 0xAD, 0xBE,
    ];

    #[test]
    fn record_bytes_match_the_documented_example() {
        let mut out = Vec::new();
        sample().as_record().emit(&mut out).unwrap();
        assert_eq!(out, SAMPLE);
        let mut stream = preamble().to_vec();
        assert_eq!(stream, *b"CPRS\x01\0\0\0");
        stream.extend_from_slice(&SAMPLE);
        assert_eq!(decode_all(&stream).unwrap(), vec![sample()]);
    }

    #[test]
    fn bad_streams_give_typed_errors() {
        assert_eq!(decode_all(b"RIFF"), Err(DecodeError::BadMagic));
        assert_eq!(
            decode_all(b"CPRS\x02\0\0\0"),
            Err(DecodeError::UnknownVersion(2))
        );
        assert_eq!(
            decode_all(b"CPRS\x01\0\x01\0"),
            Err(DecodeError::ReservedPreamble)
        );
        assert_eq!(decode_all(b"CPRS\x01\0"), Err(DecodeError::Truncated(6)));
        assert_eq!(decode_all(b""), Err(DecodeError::Truncated(0)));
        let mut s = preamble().to_vec();
        s.extend_from_slice(&SAMPLE[..20]);
        assert_eq!(decode_all(&s), Err(DecodeError::Truncated(20)));
        let mut bad = SAMPLE;
        bad[4] = 3;
        let mut s = preamble().to_vec();
        s.extend_from_slice(&bad);
        assert_eq!(decode_all(&s), Err(DecodeError::UnknownModality(3)));
        let mut bad = SAMPLE;
        bad[5] = 0x20;
        let mut s = preamble().to_vec();
        s.extend_from_slice(&bad);
        assert_eq!(decode_all(&s), Err(DecodeError::ReservedBits(0x20)));
        let mut bad = SAMPLE;
        bad[51] = 2;
        let mut s = preamble().to_vec();
        s.extend_from_slice(&bad);
        assert_eq!(
            decode_all(&s),
            Err(DecodeError::LengthMismatch {
                record: 51,
                payload: 2
            })
        );
        let mut s = preamble().to_vec();
        s.extend_from_slice(&[0, 0, 0, 47]);
        assert_eq!(decode_all(&s), Err(DecodeError::ShortRecord(47)));
        let mut s = preamble().to_vec();
        s.extend_from_slice(&(48 + MAX_PAYLOAD as u32 + 1).to_be_bytes());
        assert_eq!(
            decode_all(&s),
            Err(DecodeError::PayloadTooLong(MAX_PAYLOAD as u64 + 1))
        );
    }

    #[test]
    fn a_decoder_stays_failed() {
        let mut d = Decoder::new();
        d.push(b"XXXX");
        assert_eq!(d.next_record(), Err(DecodeError::BadMagic));
        d.push(&preamble());
        assert_eq!(d.next_record(), Err(DecodeError::BadMagic));
    }

    #[test]
    fn oversized_payload_is_not_emitted() {
        let big = vec![0u8; MAX_PAYLOAD + 1];
        let s = sample();
        let mut r = s.as_record();
        r.payload = &big;
        let mut out = Vec::new();
        assert!(r.emit(&mut out).is_err());
        assert!(out.is_empty());
    }

    fn arb_record() -> impl Strategy<Value = OwnedRecord> {
        (
            0u8..3,
            0u8..=PresentFlags::DEFINED,
            any::<u16>(),
            any::<u32>(),
            any::<u64>(),
            (any::<u64>(), any::<u64>(), any::<u64>()),
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(m, f, c, k, seq, (g, p, a), path, payload)| OwnedRecord {
                modality: Modality::from_code(m).unwrap(),
                flags: PresentFlags::from_bits(f).unwrap(),
                capture_id: CaptureId(c),
                sync_index: k,
                seq,
                gen_us: g,
                present_us: p,
                arrival_us: a,
                path: PathId(path),
                payload,
            })
    }

    proptest! {
        /// Records round-trip through a stream cut into arbitrary chunks.
        #[test]
        fn stream_round_trip(records in proptest::collection::vec(arb_record(), 0..12),
                             cuts in proptest::collection::vec(1usize..97, 1..20)) {
            let mut stream = preamble().to_vec();
            for r in &records {
                r.as_record().emit(&mut stream).unwrap();
            }
            let mut d = Decoder::new();
            let mut got = Vec::new();
            let mut at = 0;
            let mut i = 0;
            while at < stream.len() {
                let n = cuts[i % cuts.len()].min(stream.len() - at);
                d.push(&stream[at..at + n]);
                at += n;
                i += 1;
                while let Some(r) = d.next_record().unwrap() {
                    got.push(r.to_owned_record());
                }
            }
            d.finish().unwrap();
            prop_assert_eq!(got, records);
        }

        /// Whatever the bytes, the decoder returns records or an error, and anything it
        /// accepts re-encodes to the bytes it came from.
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut stream = preamble().to_vec();
            stream.extend_from_slice(&body);
            if let Ok(records) = decode_all(&stream) {
                let mut again = preamble().to_vec();
                for r in &records {
                    r.as_record().emit(&mut again).unwrap();
                }
                prop_assert_eq!(again, stream);
            }
        }
    }
}
