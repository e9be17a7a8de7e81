//! The DATA frame's unit header: the per-unit metadata of draft-song-tsvwg-camp-00 §3.1.1
//! (modality, reliability `r_m`, sync index `k`, generation time `g_m,k`, deadline
//! `delta_m`) plus the per-modality sequence number and RFC 8849 capture id (§4.2).
//!
//! The header is fixed-size (36 bytes) so that a sender can write frame header and unit
//! header into a buffer and copy the payload straight after them ([`UnitHeader::emit_prefix`]).

use crate::cursor::{Reader, Writer};
use crate::frame::{FRAME_HEADER_LEN, FrameHeader, FrameType};
use crate::{CaptureId, Micros, Modality, Reliability, Seq, SyncIndex, UnitFlags, WireError};

/// Length of the unit header at the start of a DATA body.
pub const UNIT_HEADER_LEN: usize = 36;
/// Frame header plus unit header: where a DATA frame's payload starts.
pub const DATA_PREFIX_LEN: usize = FRAME_HEADER_LEN + UNIT_HEADER_LEN;

/// Metadata of one media unit `s_m,k` (draft §3.1.1), carried in front of its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnitHeader {
    /// Which of T / A / V the unit belongs to.
    pub modality: Modality,
    /// Reliability indicator `r_m`.
    pub reliability: Reliability,
    /// Keyframe / end-of-utterance / end-of-turn markers.
    pub flags: UnitFlags,
    /// Semantic synchronisation index `k`, shared by correlated units of all modalities.
    pub sync_index: SyncIndex,
    /// Per-modality, connection-level sequence number (MP-DCCP MP_SEQ lineage).
    pub seq: Seq,
    /// Generation time `g_m,k` in µs on the sender's session clock.
    pub gen_time_us: Micros,
    /// Deadline `delta_m` in µs relative to `gen_time_us`; 0 means none.
    pub deadline_us: u32,
    /// RFC 8849 capture id; [`CaptureId::COMPOSED`] for "-".
    pub capture_id: CaptureId,
    /// Payload bytes that follow the header.
    pub payload_len: u32,
}

impl UnitHeader {
    /// Writes the frame header and unit header ([`DATA_PREFIX_LEN`] bytes) at the front of
    /// `buf`, so the caller can copy `payload_len` payload bytes right after them without
    /// an intermediate buffer. Returns [`DATA_PREFIX_LEN`].
    ///
    /// Errors: [`WireError::Oversized`] if the payload would make the body exceed
    /// [`crate::MAX_BODY_LEN`], [`WireError::BufferTooSmall`] if `buf` is shorter than the
    /// prefix (the payload space is the caller's business).
    pub fn emit_prefix(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let body_len = UNIT_HEADER_LEN + self.payload_len as usize;
        let header = FrameHeader::for_body(FrameType::Data, body_len)?;
        if buf.len() < DATA_PREFIX_LEN {
            return Err(WireError::BufferTooSmall {
                needed: DATA_PREFIX_LEN,
                available: buf.len(),
            });
        }
        let mut w = Writer::new(buf);
        header.encode(&mut w)?;
        self.encode(&mut w)?;
        Ok(w.written())
    }

    /// Decodes the unit header from a DATA body of `body_len` bytes, leaving `r` at the
    /// payload.
    pub(crate) fn decode(r: &mut Reader<'_>, body_len: usize) -> Result<Self, WireError> {
        let code = r.u8()?;
        let modality = Modality::from_code(code).ok_or(WireError::UnknownModality(code))?;
        let code = r.u8()?;
        let reliability = Reliability::from_code(code).ok_or(WireError::BadReliability(code))?;
        let flags = UnitFlags::from_bits(r.u8()?).ok_or(WireError::ReservedBits)?;
        if r.u8()? != 0 {
            return Err(WireError::ReservedBits);
        }
        let sync_index = r.u32()?;
        let seq = r.u64()?;
        let gen_time_us = r.u64()?;
        let deadline_us = r.u32()?;
        let capture_id = CaptureId(r.u16()?);
        if r.u16()? != 0 {
            return Err(WireError::ReservedBits);
        }
        let payload_len = r.u32()?;
        let expected = body_len.saturating_sub(UNIT_HEADER_LEN);
        if payload_len as usize != expected {
            return Err(WireError::LengthMismatch {
                expected,
                got: payload_len as usize,
            });
        }
        Ok(UnitHeader {
            modality,
            reliability,
            flags,
            sync_index,
            seq,
            gen_time_us,
            deadline_us,
            capture_id,
            payload_len,
        })
    }

    /// Writes the 36-byte unit header.
    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.u8(self.modality as u8)?;
        w.u8(self.reliability as u8)?;
        w.u8(self.flags.bits())?;
        w.u8(0)?;
        w.u32(self.sync_index)?;
        w.u64(self.seq)?;
        w.u64(self.gen_time_us)?;
        w.u32(self.deadline_us)?;
        w.u16(self.capture_id.0)?;
        w.u16(0)?;
        w.u32(self.payload_len)
    }
}
