//! Frame header and the [`Frame`] enum: the outer layer of every CAMP message.
//!
//! A frame is a 6-byte header (version, type, body length) followed by a type-specific body
//! (`docs/wire-format.md`). Frames are concatenated on QUIC streams and sent one per QUIC
//! DATAGRAM. This module validates the header, dispatches on the type and owns the
//! whole-frame `parse` / `emit` / `buffer_len` entry points; bodies live in [`crate::unit`]
//! and [`crate::control`].

use crate::address::{AddAddress, RemoveAddress};
use crate::control::{Abandon, Feedback, Hello, JoinOk, PathStatusFrame, RttReport, SessionInfo};
use crate::cursor::{Reader, Writer};
use crate::{Ack, Join, UnitHeader, WireError, ack};

/// The only wire version this implementation speaks.
pub const WIRE_VERSION: u8 = 1;
/// Length of the frame header that prefixes every frame.
pub const FRAME_HEADER_LEN: usize = 6;
/// Largest body a frame may announce (1 MiB). Bounds what a receiver must buffer for one
/// frame; media units larger than this are split by the application.
pub const MAX_BODY_LEN: usize = 1 << 20;
/// Largest control frame (header included) a receiver accepts on a control stream. Every
/// control frame is far smaller (an ACK with 64 ranges is 1042 bytes), so the control
/// stream's reassembly buffer stays at 4 KiB instead of the 1 MiB a unit stream may need.
pub const MAX_CONTROL_FRAME: usize = 4096;

/// Frame type codes (byte 1 of the frame header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// One media unit: unit header plus payload (draft-song-tsvwg-camp-00 §4.2).
    Data = 0x01,
    /// Client asks for a new session.
    Hello = 0x10,
    /// Server answers HELLO with the session token and the first path id.
    Session = 0x11,
    /// Client adds a connection (path) to an existing session.
    Join = 0x12,
    /// Server accepts a JOIN.
    JoinOk = 0x13,
    /// Per-modality cumulative + selective acknowledgement.
    Ack = 0x20,
    /// Administrative path status and precedence (MP-DCCP MP_PRIO).
    PathStatus = 0x21,
    /// A path is being abandoned.
    Abandon = 0x22,
    /// Path RTT report (MP-DCCP MP_RTT).
    Rtt = 0x23,
    /// Client alignment-buffer feedback (draft §4.4).
    Feedback = 0x24,
    /// The sender is reachable at one more address (MP-DCCP MP_ADDADDR).
    AddAddress = 0x25,
    /// An advertised address is withdrawn (MP-DCCP MP_REMOVEADDR).
    RemoveAddress = 0x26,
}

impl FrameType {
    /// Every frame type, in code order.
    pub const ALL: [FrameType; 12] = [
        FrameType::Data,
        FrameType::Hello,
        FrameType::Session,
        FrameType::Join,
        FrameType::JoinOk,
        FrameType::Ack,
        FrameType::PathStatus,
        FrameType::Abandon,
        FrameType::Rtt,
        FrameType::Feedback,
        FrameType::AddAddress,
        FrameType::RemoveAddress,
    ];

    /// Decodes a type code; `None` for unassigned codes.
    pub const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0x01 => FrameType::Data,
            0x10 => FrameType::Hello,
            0x11 => FrameType::Session,
            0x12 => FrameType::Join,
            0x13 => FrameType::JoinOk,
            0x20 => FrameType::Ack,
            0x21 => FrameType::PathStatus,
            0x22 => FrameType::Abandon,
            0x23 => FrameType::Rtt,
            0x24 => FrameType::Feedback,
            0x25 => FrameType::AddAddress,
            0x26 => FrameType::RemoveAddress,
            _ => return None,
        })
    }

    /// The wire code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// Body length of a fixed-size frame type; `None` for DATA, ACK and ADD_ADDRESS, whose
    /// length varies.
    pub const fn fixed_body_len(self) -> Option<usize> {
        match self {
            FrameType::Data | FrameType::Ack | FrameType::AddAddress => None,
            FrameType::Hello => Some(Hello::BODY_LEN),
            FrameType::Session => Some(SessionInfo::BODY_LEN),
            FrameType::Join => Some(Join::BODY_LEN),
            FrameType::JoinOk => Some(JoinOk::BODY_LEN),
            FrameType::PathStatus => Some(PathStatusFrame::BODY_LEN),
            FrameType::Abandon => Some(Abandon::BODY_LEN),
            FrameType::Rtt => Some(RttReport::BODY_LEN),
            FrameType::Feedback => Some(Feedback::BODY_LEN),
            FrameType::RemoveAddress => Some(RemoveAddress::BODY_LEN),
        }
    }

    /// Checks that `body_len` is a possible body length for this type, so that a stream
    /// reader can reject a malformed header before waiting for its body.
    fn check_body_len(self, body_len: usize) -> Result<(), WireError> {
        match self {
            FrameType::Data if body_len < crate::UNIT_HEADER_LEN => {
                Err(WireError::LengthMismatch {
                    expected: crate::UNIT_HEADER_LEN,
                    got: body_len,
                })
            }
            FrameType::Data => Ok(()),
            FrameType::Ack => ack::check_body_len(body_len),
            FrameType::AddAddress => AddAddress::check_body_len(body_len),
            _ => match self.fixed_body_len() {
                Some(expected) if expected != body_len => Err(WireError::LengthMismatch {
                    expected,
                    got: body_len,
                }),
                _ => Ok(()),
            },
        }
    }
}

/// The 6-byte header that prefixes every frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the body contains.
    pub frame_type: FrameType,
    /// Body length in bytes (header excluded).
    pub body_len: u32,
}

impl FrameHeader {
    /// Reads and validates the header at the front of `buf` without needing the body.
    ///
    /// Returns `Ok(None)` if fewer than [`FRAME_HEADER_LEN`] bytes are available. Errors for
    /// an unknown version or type, a body longer than [`MAX_BODY_LEN`], and a body length
    /// that is impossible for the type (a fixed-size frame of the wrong size, a DATA body
    /// shorter than the unit header, an ACK body that is not 12 + 16·n with n ≤ 64), so a
    /// stream reader never waits for the body of a frame it will reject.
    pub fn peek(buf: &[u8]) -> Result<Option<FrameHeader>, WireError> {
        let Some(head) = buf.first_chunk::<FRAME_HEADER_LEN>() else {
            return Ok(None);
        };
        let mut r = Reader::new(head);
        let version = r.u8()?;
        if version != WIRE_VERSION {
            return Err(WireError::UnknownVersion(version));
        }
        let code = r.u8()?;
        let frame_type = FrameType::from_code(code).ok_or(WireError::UnknownFrameType(code))?;
        let body_len = r.u32()?;
        if body_len as usize > MAX_BODY_LEN {
            return Err(WireError::Oversized {
                len: body_len.into(),
                max: MAX_BODY_LEN as u64,
            });
        }
        frame_type.check_body_len(body_len as usize)?;
        Ok(Some(FrameHeader {
            frame_type,
            body_len,
        }))
    }

    /// Total frame length: header plus body.
    pub fn frame_len(&self) -> usize {
        FRAME_HEADER_LEN + self.body_len as usize
    }

    /// Writes the header; the caller guarantees `body_len` is within [`MAX_BODY_LEN`].
    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.u8(WIRE_VERSION)?;
        w.u8(self.frame_type.code())?;
        w.u32(self.body_len)
    }

    /// Builds a header for a body of `body_len` bytes, refusing oversized bodies.
    pub(crate) fn for_body(frame_type: FrameType, body_len: usize) -> Result<Self, WireError> {
        if body_len > MAX_BODY_LEN {
            return Err(WireError::Oversized {
                len: body_len as u64,
                max: MAX_BODY_LEN as u64,
            });
        }
        // Cannot truncate: MAX_BODY_LEN fits in u32.
        Ok(FrameHeader {
            frame_type,
            body_len: body_len as u32,
        })
    }
}

/// One decoded CAMP frame; variable-length parts borrow from the input buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A media unit (`0x01`).
    Data {
        /// Unit metadata.
        header: UnitHeader,
        /// Unit payload; its length equals `header.payload_len`.
        payload: &'a [u8],
    },
    /// `0x10`.
    Hello(Hello),
    /// `0x11`.
    Session(SessionInfo),
    /// `0x12`.
    Join(Join),
    /// `0x13`.
    JoinOk(JoinOk),
    /// `0x20`.
    Ack(Ack<'a>),
    /// `0x21`.
    PathStatus(PathStatusFrame),
    /// `0x22`.
    Abandon(Abandon),
    /// `0x23`.
    Rtt(RttReport),
    /// `0x24`.
    Feedback(Feedback),
    /// `0x25`.
    AddAddress(AddAddress),
    /// `0x26`.
    RemoveAddress(RemoveAddress),
}

impl<'a> Frame<'a> {
    /// Parses one complete frame from the front of `buf`; returns it and the bytes consumed.
    ///
    /// If `buf` holds only part of a frame the error is [`WireError::Truncated`] with
    /// `needed` = the whole frame length once the header is readable (so a stream reader
    /// knows how much to wait for), or [`FRAME_HEADER_LEN`] before that. Bytes after the
    /// frame are left alone. Never panics and never allocates.
    pub fn parse(buf: &'a [u8]) -> Result<(Frame<'a>, usize), WireError> {
        let header = FrameHeader::peek(buf)?.ok_or(WireError::Truncated {
            needed: FRAME_HEADER_LEN,
            available: buf.len(),
        })?;
        let frame_len = header.frame_len();
        let body = buf
            .get(FRAME_HEADER_LEN..frame_len)
            .ok_or(WireError::Truncated {
                needed: frame_len,
                available: buf.len(),
            })?;
        let mut r = Reader::new(body);
        let frame = match header.frame_type {
            FrameType::Data => {
                let unit = UnitHeader::decode(&mut r, body.len())?;
                Frame::Data {
                    header: unit,
                    payload: r.rest(),
                }
            }
            FrameType::Hello => Frame::Hello(Hello::decode(&mut r)?),
            FrameType::Session => Frame::Session(SessionInfo::decode(&mut r)?),
            FrameType::Join => Frame::Join(Join::decode(&mut r)?),
            FrameType::JoinOk => Frame::JoinOk(JoinOk::decode(&mut r)?),
            FrameType::Ack => Frame::Ack(Ack::decode(&mut r)?),
            FrameType::PathStatus => Frame::PathStatus(PathStatusFrame::decode(&mut r)?),
            FrameType::Abandon => Frame::Abandon(Abandon::decode(&mut r)?),
            FrameType::Rtt => Frame::Rtt(RttReport::decode(&mut r)?),
            FrameType::Feedback => Frame::Feedback(Feedback::decode(&mut r)?),
            FrameType::AddAddress => Frame::AddAddress(AddAddress::decode(&mut r, body.len())?),
            FrameType::RemoveAddress => Frame::RemoveAddress(RemoveAddress::decode(&mut r)?),
        };
        Ok((frame, frame_len))
    }

    /// The frame type of this frame.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Data { .. } => FrameType::Data,
            Frame::Hello(_) => FrameType::Hello,
            Frame::Session(_) => FrameType::Session,
            Frame::Join(_) => FrameType::Join,
            Frame::JoinOk(_) => FrameType::JoinOk,
            Frame::Ack(_) => FrameType::Ack,
            Frame::PathStatus(_) => FrameType::PathStatus,
            Frame::Abandon(_) => FrameType::Abandon,
            Frame::Rtt(_) => FrameType::Rtt,
            Frame::Feedback(_) => FrameType::Feedback,
            Frame::AddAddress(_) => FrameType::AddAddress,
            Frame::RemoveAddress(_) => FrameType::RemoveAddress,
        }
    }

    fn body_len(&self) -> usize {
        match self {
            Frame::Data { payload, .. } => crate::UNIT_HEADER_LEN + payload.len(),
            Frame::Ack(ack) => ack::body_len(ack.ranges.len()),
            Frame::AddAddress(a) => a.body_len(),
            other => other.frame_type().fixed_body_len().unwrap_or(0),
        }
    }

    /// Exact encoded length (header + body).
    pub fn buffer_len(&self) -> usize {
        FRAME_HEADER_LEN + self.body_len()
    }

    /// Encodes the frame at the front of `buf` and returns the bytes written.
    ///
    /// Refuses to produce anything the decoder would reject: a DATA payload whose length
    /// differs from `header.payload_len` ([`WireError::LengthMismatch`]) or exceeds the body
    /// cap ([`WireError::Oversized`]), a HELLO with flags set ([`WireError::ReservedBits`]),
    /// ACK ranges not above `cumulative` ([`WireError::InvalidAckRanges`]). If the frame
    /// does not fit, returns [`WireError::BufferTooSmall`] and the content of `buf` is
    /// unspecified.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        if let Frame::Data { header, payload } = self {
            if header.payload_len as usize != payload.len() {
                return Err(WireError::LengthMismatch {
                    expected: header.payload_len as usize,
                    got: payload.len(),
                });
            }
        }
        let header = FrameHeader::for_body(self.frame_type(), self.body_len())?;
        let needed = header.frame_len();
        if buf.len() < needed {
            return Err(WireError::BufferTooSmall {
                needed,
                available: buf.len(),
            });
        }
        let mut w = Writer::new(buf);
        header.encode(&mut w)?;
        match self {
            Frame::Data { header, payload } => {
                header.encode(&mut w)?;
                w.bytes(payload)?;
            }
            Frame::Hello(f) => f.encode(&mut w)?,
            Frame::Session(f) => f.encode(&mut w)?,
            Frame::Join(f) => f.encode(&mut w)?,
            Frame::JoinOk(f) => f.encode(&mut w)?,
            Frame::Ack(f) => f.encode(&mut w)?,
            Frame::PathStatus(f) => f.encode(&mut w)?,
            Frame::Abandon(f) => f.encode(&mut w)?,
            Frame::Rtt(f) => f.encode(&mut w)?,
            Frame::Feedback(f) => f.encode(&mut w)?,
            Frame::AddAddress(f) => f.encode(&mut w)?,
            Frame::RemoveAddress(f) => f.encode(&mut w)?,
        }
        Ok(w.written())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        AckRanges, CaptureId, DATA_PREFIX_LEN, Modality, PathId, PathStatus, Reliability,
        UnitFlags, emit_ack,
    };

    const DATA: [u8; 45] = [
        0x01, 0x01, 0x00, 0x00, 0x00, 0x27, // v1, DATA, body 39
        0x01, 0x01, 0x05, 0x00, // audio, reliable, KEYFRAME|END_OF_TURN, reserved
        0x00, 0x00, 0x01, 0x02, // k = 258
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0A, 0x0B, // seq = 0x0A0B
        0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, // gen time
        0x00, 0x02, 0x49, 0xF0, // deadline 150 ms
        0x00, 0x07, 0x00, 0x00, // capture 7, reserved
        0x00, 0x00, 0x00, 0x03, // payload length
        0xDE, 0xAD, 0xBE, // payload
    ];
    const PAYLOAD: [u8; 3] = [0xDE, 0xAD, 0xBE];
    const UNIT: UnitHeader = UnitHeader {
        modality: Modality::Audio,
        reliability: Reliability::Reliable,
        flags: UnitFlags::KEYFRAME.with(UnitFlags::END_OF_TURN),
        sync_index: 258,
        seq: 0x0A0B,
        gen_time_us: 0x0001_0203_0405,
        deadline_us: 150_000,
        capture_id: CaptureId(7),
        payload_len: 3,
    };

    const HELLO: [u8; 14] = [
        0x01, 0x10, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
    ];

    const SESSION: [u8; 34] = [
        0x01, 0x11, 0x00, 0x00, 0x00, 0x1C, // v1, SESSION, body 28
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, // token
        0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, //
        0x00, 0x00, 0x00, 0x01, // path 1
        0x00, 0x00, 0x00, 0x00, 0x3B, 0x9A, 0xCA, 0x00, // 1 s
    ];
    const TOKEN: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

    const JOIN: [u8; 70] = [
        0x01, 0x12, 0x00, 0x00, 0x00, 0x40, // v1, JOIN, body 64
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, // token
        0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, //
        0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, // nonce
        0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, //
        0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, // mac
        0xA8, 0xA9, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF, //
        0xB0, 0xB1, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, //
        0xB8, 0xB9, 0xBA, 0xBB, 0xBC, 0xBD, 0xBE, 0xBF, //
    ];
    fn mac() -> [u8; 32] {
        core::array::from_fn(|i| 0xA0 + i as u8)
    }

    const JOIN_OK: [u8; 18] = [
        0x01, 0x13, 0x00, 0x00, 0x00, 0x0C, // v1, JOIN_OK, body 12
        0x00, 0x00, 0x00, 0x02, // path 2
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, // server time 5 µs
    ];

    const ACK: [u8; 50] = [
        0x01, 0x20, 0x00, 0x00, 0x00, 0x2C, // v1, ACK, body 44
        0x02, 0x00, 0x00, 0x02, // video, reserved, 2 ranges
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0A, // cumulative 10
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, // [12,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0F, //  15)
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, // [20,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x15, //  21)
    ];

    const PATH_STATUS: [u8; 16] = [
        0x01, 0x21, 0x00, 0x00, 0x00, 0x0A, // v1, PATH_STATUS, body 10
        0x00, 0x00, 0x00, 0x03, // path 3
        0x00, 0x00, 0x00, 0x09, // status seq 9
        0x02, 0xC8, // drain, precedence 200
    ];

    const ABANDON: [u8; 14] = [
        0x01, 0x22, 0x00, 0x00, 0x00, 0x08, // v1, ABANDON, body 8
        0x00, 0x00, 0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF, // path 4, code
    ];

    const RTT: [u8; 30] = [
        0x01, 0x23, 0x00, 0x00, 0x00, 0x18, // v1, RTT, body 24
        0x00, 0x00, 0x00, 0x01, // path 1
        0x00, 0x00, 0x4E, 0x20, // raw 20 ms
        0x00, 0x00, 0x3A, 0x98, // min 15 ms
        0x00, 0x00, 0x9C, 0x40, // max 40 ms
        0x00, 0x00, 0x52, 0x08, // smoothed 21 ms
        0x00, 0x00, 0x01, 0xF4, // age 500 µs
    ];

    const FEEDBACK: [u8; 34] = [
        0x01, 0x24, 0x00, 0x00, 0x00, 0x1C, // v1, FEEDBACK, body 28
        0x00, 0x01, 0x86, 0xA0, // interval 100 ms
        0x00, 0x00, 0xEA, 0x60, // playout delay 60 ms
        0x00, 0x00, 0xAF, 0xC8, // occupancy 45 ms
        0x00, 0x00, 0x0B, 0xB8, // skew mean 3 ms
        0x00, 0x00, 0x23, 0x28, // skew p95 9 ms
        0x00, 0x00, 0x00, 0x02, // late
        0x00, 0x00, 0x00, 0x01, // lost
    ];

    const ADD_ADDRESS: [u8; 18] = [
        0x01, 0x25, 0x00, 0x00, 0x00, 0x0C, // v1, ADD_ADDRESS, body 12
        0x01, // address id 1
        0x00, 0x00, 0x00, 0x02, // seq 2
        0x04, 0xC6, 0x12, 0x01, 0x01, // IPv4 198.18.1.1
        0x12, 0x34, // port 0x1234
    ];

    const REMOVE_ADDRESS: [u8; 11] = [
        0x01, 0x26, 0x00, 0x00, 0x00, 0x05, // v1, REMOVE_ADDRESS, body 5
        0x01, // address id 1
        0x00, 0x00, 0x00, 0x03, // seq 3
    ];

    /// Every frame type once, with its exact encoding.
    fn vectors() -> Vec<(Frame<'static>, &'static [u8])> {
        let ack_ranges = AckRanges::new(ACK.get(18..).unwrap(), 10).unwrap();
        vec![
            (
                Frame::Data {
                    header: UNIT,
                    payload: &PAYLOAD,
                },
                &DATA,
            ),
            (
                Frame::Hello(Hello {
                    flags: 0,
                    units_ahead: 1024,
                }),
                &HELLO,
            ),
            (
                Frame::Session(SessionInfo {
                    token: TOKEN,
                    path_id: PathId(1),
                    server_time_us: 1_000_000_000,
                }),
                &SESSION,
            ),
            (
                Frame::Join(Join {
                    token: TOKEN,
                    nonce: [0x55; 16],
                    mac: mac(),
                }),
                &JOIN,
            ),
            (
                Frame::JoinOk(JoinOk {
                    path_id: PathId(2),
                    server_time_us: 5,
                }),
                &JOIN_OK,
            ),
            (
                Frame::Ack(Ack {
                    modality: Modality::Video,
                    cumulative: 10,
                    ranges: ack_ranges,
                }),
                &ACK,
            ),
            (
                Frame::PathStatus(PathStatusFrame {
                    path_id: PathId(3),
                    status_seq: 9,
                    status: PathStatus::Drain,
                    precedence: 200,
                }),
                &PATH_STATUS,
            ),
            (
                Frame::Abandon(Abandon {
                    path_id: PathId(4),
                    error_code: 0xDEAD_BEEF,
                }),
                &ABANDON,
            ),
            (
                Frame::Rtt(RttReport {
                    path_id: PathId(1),
                    raw_us: 20_000,
                    min_us: 15_000,
                    max_us: 40_000,
                    smoothed_us: 21_000,
                    age_us: 500,
                }),
                &RTT,
            ),
            (
                Frame::Feedback(Feedback {
                    interval_us: 100_000,
                    playout_delay_us: 60_000,
                    buffer_occupancy_us: 45_000,
                    skew_mean_us: 3_000,
                    skew_p95_us: 9_000,
                    late_units: 2,
                    lost_units: 1,
                }),
                &FEEDBACK,
            ),
            (
                Frame::AddAddress(AddAddress {
                    address_id: 1,
                    seq: 2,
                    addr: std::net::SocketAddr::from(([198, 18, 1, 1], 0x1234)),
                }),
                &ADD_ADDRESS,
            ),
            (
                Frame::RemoveAddress(RemoveAddress {
                    address_id: 1,
                    seq: 3,
                }),
                &REMOVE_ADDRESS,
            ),
        ]
    }

    #[test]
    fn vectors_cover_every_frame_type() {
        let types: Vec<FrameType> = vectors().iter().map(|(f, _)| f.frame_type()).collect();
        assert_eq!(types, FrameType::ALL);
    }

    #[test]
    fn every_frame_type_encodes_to_its_exact_bytes() {
        for (frame, bytes) in vectors() {
            assert_eq!(frame.buffer_len(), bytes.len(), "{frame:?}");
            let mut buf = [0xEEu8; 128];
            let n = frame.emit(&mut buf).unwrap();
            assert_eq!(buf.get(..n), Some(bytes), "{frame:?}");
        }
    }

    #[test]
    fn every_frame_type_decodes_from_its_exact_bytes() {
        for (frame, bytes) in vectors() {
            assert_eq!(Frame::parse(bytes), Ok((frame, bytes.len())));
        }
    }

    #[test]
    fn parse_leaves_trailing_bytes_alone() {
        let mut two = HELLO.to_vec();
        two.extend_from_slice(&JOIN_OK);
        let (first, n) = Frame::parse(&two).unwrap();
        assert_eq!(
            first,
            Frame::Hello(Hello {
                flags: 0,
                units_ahead: 1024
            })
        );
        assert_eq!(n, HELLO.len());
        let (second, m) = Frame::parse(two.get(n..).unwrap()).unwrap();
        assert_eq!(second.frame_type(), FrameType::JoinOk);
        assert_eq!(m, JOIN_OK.len());
    }

    #[test]
    fn ack_ranges_view_iterates_decoded_ranges() {
        let (Frame::Ack(ack), _) = Frame::parse(&ACK).unwrap() else {
            panic!("not an ACK")
        };
        assert_eq!(ack.ranges.len(), 2);
        assert!(!ack.ranges.is_empty());
        assert_eq!(ack.ranges.iter().collect::<Vec<_>>(), vec![12..15, 20..21]);
        assert_eq!(format!("{:?}", ack.ranges), "[12..15, 20..21]");
    }

    #[test]
    fn emit_ack_matches_the_literal_encoding() {
        let mut buf = [0u8; 64];
        let n = emit_ack(Modality::Video, 10, &[12..15, 20..21], &mut buf).unwrap();
        assert_eq!(n, crate::ack_len(2));
        assert_eq!(buf.get(..n), Some(&ACK[..]));
    }

    #[test]
    fn emit_prefix_writes_the_data_headers() {
        let mut buf = [0u8; DATA_PREFIX_LEN + 8];
        assert_eq!(UNIT.emit_prefix(&mut buf), Ok(DATA_PREFIX_LEN));
        assert_eq!(buf.get(..42), DATA.get(..42));
    }

    #[test]
    fn every_proper_prefix_of_a_frame_is_truncated() {
        for (_, bytes) in vectors() {
            for cut in 0..bytes.len() {
                let needed = if cut < FRAME_HEADER_LEN {
                    FRAME_HEADER_LEN
                } else {
                    bytes.len()
                };
                assert_eq!(
                    Frame::parse(bytes.get(..cut).unwrap()),
                    Err(WireError::Truncated {
                        needed,
                        available: cut
                    }),
                    "{bytes:02x?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn peek_needs_only_the_header() {
        assert_eq!(FrameHeader::peek(&DATA[..5]), Ok(None));
        let header = FrameHeader::peek(&DATA[..6]).unwrap().unwrap();
        assert_eq!(
            header,
            FrameHeader {
                frame_type: FrameType::Data,
                body_len: 39
            }
        );
        assert_eq!(header.frame_len(), DATA.len());
    }

    #[test]
    fn unknown_version_is_rejected() {
        let mut bytes = HELLO;
        bytes[0] = 2;
        assert_eq!(Frame::parse(&bytes), Err(WireError::UnknownVersion(2)));
        bytes[0] = 0;
        assert_eq!(FrameHeader::peek(&bytes), Err(WireError::UnknownVersion(0)));
    }

    #[test]
    fn unknown_frame_type_is_rejected() {
        for code in [0x00, 0x02, 0x14, 0x27, 0xFF] {
            let mut bytes = HELLO;
            bytes[1] = code;
            assert_eq!(Frame::parse(&bytes), Err(WireError::UnknownFrameType(code)));
        }
    }

    #[test]
    fn oversized_body_is_rejected_from_the_header_alone() {
        // DATA announcing 1 MiB + 1 body bytes; only the header is present.
        let bytes = [0x01, 0x01, 0x00, 0x10, 0x00, 0x01];
        assert_eq!(
            Frame::parse(&bytes),
            Err(WireError::Oversized {
                len: (1 << 20) + 1,
                max: 1 << 20
            })
        );
        let max = [0x01, 0x01, 0x00, 0x10, 0x00, 0x00];
        assert_eq!(
            Frame::parse(&max),
            Err(WireError::Truncated {
                needed: 6 + (1 << 20),
                available: 6
            })
        );
        let huge = [0x01, 0x20, 0xFF, 0xFF, 0xFF, 0xFF];
        assert_eq!(
            FrameHeader::peek(&huge),
            Err(WireError::Oversized {
                len: 0xFFFF_FFFF,
                max: 1 << 20
            })
        );
    }

    #[test]
    fn emit_refuses_oversized_data() {
        let payload = vec![0u8; MAX_BODY_LEN - crate::UNIT_HEADER_LEN + 1];
        let header = UnitHeader {
            payload_len: payload.len() as u32,
            ..UNIT
        };
        let frame = Frame::Data {
            header,
            payload: &payload,
        };
        let mut buf = vec![0u8; frame.buffer_len()];
        assert_eq!(
            frame.emit(&mut buf),
            Err(WireError::Oversized {
                len: (MAX_BODY_LEN + 1) as u64,
                max: MAX_BODY_LEN as u64
            })
        );
        assert_eq!(
            header.emit_prefix(&mut buf),
            Err(WireError::Oversized {
                len: (MAX_BODY_LEN + 1) as u64,
                max: MAX_BODY_LEN as u64
            })
        );
    }

    #[test]
    fn unknown_modality_is_rejected_in_data_and_ack() {
        let mut data = DATA;
        data[6] = 3;
        assert_eq!(Frame::parse(&data), Err(WireError::UnknownModality(3)));
        let mut ack = ACK;
        ack[6] = 0xFF;
        assert_eq!(Frame::parse(&ack), Err(WireError::UnknownModality(0xFF)));
    }

    #[test]
    fn bad_reliability_is_rejected() {
        let mut data = DATA;
        data[7] = 2;
        assert_eq!(Frame::parse(&data), Err(WireError::BadReliability(2)));
    }

    #[test]
    fn bad_path_status_is_rejected() {
        let mut bytes = PATH_STATUS;
        bytes[14] = 3;
        assert_eq!(Frame::parse(&bytes), Err(WireError::BadPathStatus(3)));
    }

    #[test]
    fn reserved_bits_are_rejected() {
        // (offset, value): undefined flag bit, reserved byte, reserved u16 (both bytes).
        for (offset, value) in [(8, 0x08), (8, 0x80), (9, 0x01), (36, 0x01), (37, 0x80)] {
            let mut data = DATA;
            data[offset] = value;
            assert_eq!(
                Frame::parse(&data),
                Err(WireError::ReservedBits),
                "offset {offset}"
            );
        }
        let mut ack = ACK;
        ack[7] = 0x01;
        assert_eq!(Frame::parse(&ack), Err(WireError::ReservedBits));
        let mut hello = HELLO;
        hello[9] = 0x01;
        assert_eq!(Frame::parse(&hello), Err(WireError::ReservedBits));
        // The announced reorder window must be in range, both ways.
        for (window, bytes) in [
            (0u32, [0, 0, 0, 0]),
            (1, [0, 0, 0, 1]),
            (65_537, [0, 1, 0, 1]),
        ] {
            let mut hello = HELLO;
            hello[10..14].copy_from_slice(&bytes);
            assert_eq!(Frame::parse(&hello), Err(WireError::InvalidWindow(window)));
            let mut buf = [0u8; 16];
            assert_eq!(
                Frame::Hello(Hello {
                    flags: 0,
                    units_ahead: window
                })
                .emit(&mut buf),
                Err(WireError::InvalidWindow(window))
            );
        }
        let mut buf = [0u8; 16];
        assert_eq!(
            Frame::Hello(Hello {
                flags: 1,
                units_ahead: 1024
            })
            .emit(&mut buf),
            Err(WireError::ReservedBits)
        );
    }

    #[test]
    fn fixed_size_bodies_of_the_wrong_size_are_rejected() {
        for (frame, bytes) in vectors() {
            let Some(expected) = frame.frame_type().fixed_body_len() else {
                continue;
            };
            for got in [0, expected - 1, expected + 1, 1000] {
                let mut long = bytes.to_vec();
                long.resize(FRAME_HEADER_LEN + got, 0);
                long[2..6].copy_from_slice(&(got as u32).to_be_bytes());
                assert_eq!(
                    Frame::parse(&long),
                    Err(WireError::LengthMismatch { expected, got }),
                    "{frame:?}"
                );
            }
        }
    }

    #[test]
    fn data_payload_length_must_match_the_body() {
        let mut data = DATA;
        data[41] = 4; // payload_len 4, body says 3
        assert_eq!(
            Frame::parse(&data),
            Err(WireError::LengthMismatch {
                expected: 3,
                got: 4
            })
        );
        // A DATA body shorter than the unit header is rejected from the header alone.
        let short = [0x01, 0x01, 0x00, 0x00, 0x00, 0x23];
        assert_eq!(
            Frame::parse(&short),
            Err(WireError::LengthMismatch {
                expected: 36,
                got: 35
            })
        );
        // Emitting a payload that disagrees with payload_len is refused.
        let frame = Frame::Data {
            header: UNIT,
            payload: &PAYLOAD[..2],
        };
        let mut buf = [0u8; 64];
        assert_eq!(
            frame.emit(&mut buf),
            Err(WireError::LengthMismatch {
                expected: 3,
                got: 2
            })
        );
    }

    #[test]
    fn ack_length_must_match_its_range_count() {
        let mut ack = ACK;
        ack[9] = 1; // one range announced, two present
        assert_eq!(
            Frame::parse(&ack),
            Err(WireError::LengthMismatch {
                expected: 28,
                got: 44
            })
        );
        // Body not of the form 12 + 16n, detected from the header alone.
        let odd = [0x01, 0x20, 0x00, 0x00, 0x00, 0x1D];
        assert_eq!(
            Frame::parse(&odd),
            Err(WireError::LengthMismatch {
                expected: 28,
                got: 29
            })
        );
        let tiny = [0x01, 0x20, 0x00, 0x00, 0x00, 0x0B];
        assert_eq!(
            Frame::parse(&tiny),
            Err(WireError::LengthMismatch {
                expected: 12,
                got: 11
            })
        );
    }

    #[test]
    fn too_many_ack_ranges_are_rejected() {
        // range_count field of 65.
        let mut ack = ACK;
        ack[9] = 65;
        assert_eq!(Frame::parse(&ack), Err(WireError::TooManyRanges(65)));
        // A body long enough for 65 ranges, rejected from the header alone.
        let len = (12 + 16 * 65u32).to_be_bytes();
        let header = [0x01, 0x20, len[0], len[1], len[2], len[3]];
        assert_eq!(Frame::parse(&header), Err(WireError::TooManyRanges(65)));
        let ranges: Vec<_> = (0..65u64).map(|i| 2 * i + 1..2 * i + 2).collect();
        let mut buf = [0u8; 2048];
        assert_eq!(
            emit_ack(Modality::Text, 0, &ranges, &mut buf),
            Err(WireError::TooManyRanges(65))
        );
        assert_eq!(
            emit_ack(Modality::Text, 0, &ranges[..64], &mut buf),
            Ok(crate::ack_len(64))
        );
    }

    #[test]
    // One-range slices and reversed ranges are exactly the inputs under test here.
    #[allow(clippy::single_range_in_vec_init, clippy::reversed_empty_ranges)]
    fn invalid_ack_ranges_are_rejected() {
        let cases: [(u64, &[core::ops::Range<u64>]); 6] = [
            (10, &[10..12]),         // starts at the cumulative point
            (10, &[5..8]),           // below the cumulative point
            (10, &[12..12]),         // empty
            (10, &[13..12]),         // reversed
            (10, &[12..15, 15..16]), // adjacent
            (10, &[20..25, 12..15]), // descending
        ];
        for (cumulative, ranges) in cases {
            let mut buf = [0u8; 128];
            assert_eq!(
                emit_ack(Modality::Audio, cumulative, ranges, &mut buf),
                Err(WireError::InvalidAckRanges),
                "{ranges:?}"
            );
            // Same ranges, hand-encoded, must fail to decode.
            let mut bytes = ACK.to_vec();
            bytes.truncate(18);
            bytes[5] = (12 + 16 * ranges.len()) as u8;
            bytes[9] = ranges.len() as u8;
            bytes[10..18].copy_from_slice(&cumulative.to_be_bytes());
            for r in ranges {
                bytes.extend_from_slice(&r.start.to_be_bytes());
                bytes.extend_from_slice(&r.end.to_be_bytes());
            }
            assert_eq!(
                Frame::parse(&bytes),
                Err(WireError::InvalidAckRanges),
                "{ranges:?}"
            );
        }
    }

    #[test]
    fn re_emitting_ack_ranges_against_another_cumulative_is_refused() {
        let (Frame::Ack(ack), _) = Frame::parse(&ACK).unwrap() else {
            panic!("not an ACK")
        };
        let moved = Frame::Ack(Ack {
            cumulative: 12,
            ..ack
        });
        let mut buf = [0u8; 64];
        assert_eq!(moved.emit(&mut buf), Err(WireError::InvalidAckRanges));
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // a one-range ACK, not a collected range
    fn emit_into_a_short_buffer_is_refused() {
        for (frame, bytes) in vectors() {
            let mut buf = vec![0u8; bytes.len() - 1];
            assert_eq!(
                frame.emit(&mut buf),
                Err(WireError::BufferTooSmall {
                    needed: bytes.len(),
                    available: bytes.len() - 1
                })
            );
        }
        let mut buf = [0u8; 41];
        assert_eq!(
            UNIT.emit_prefix(&mut buf),
            Err(WireError::BufferTooSmall {
                needed: 42,
                available: 41
            })
        );
        assert_eq!(
            emit_ack(Modality::Video, 10, &[12..15], &mut buf[..33]),
            Err(WireError::BufferTooSmall {
                needed: 34,
                available: 33
            })
        );
    }
}
