//! CAMP wire format (draft-song-tsvwg-camp-00 §4.2, three-stream separation).
//!
//! Owns the byte layout of data units and control frames and nothing else: no I/O, no
//! clocks. Every decoder is strict: malformed, truncated, oversized or unknown-version input
//! is a [`WireError`], never a panic. Parsing and emitting never allocate; the byte layout
//! is specified in `docs/wire-format.md`.
//!
//! - [`Frame::parse`] / [`Frame::emit`] / [`Frame::buffer_len`] handle one whole frame.
//! - [`UnitHeader::emit_prefix`] writes a DATA frame's headers so the payload can be copied
//!   straight after them.
//! - [`emit_ack`] encodes an ACK from a slice of ranges.
//! - [`FrameReader`] reassembles frames from a QUIC stream.
#![forbid(unsafe_code)]

mod ack;
mod address;
mod control;
mod cursor;
mod error;
mod frame;
mod reader;
mod types;
mod unit;

pub use ack::{Ack, AckRangeIter, AckRanges, MAX_ACK_RANGES, ack_len, emit_ack};
pub use address::{AddAddress, FAMILY_IPV4, FAMILY_IPV6, RemoveAddress};
pub use control::{
    Abandon, Feedback, Hello, Join, JoinOk, MAX_UNITS_AHEAD, MIN_UNITS_AHEAD, PathStatusFrame,
    RttReport, SessionInfo,
};
pub use error::WireError;
pub use frame::{
    FRAME_HEADER_LEN, Frame, FrameHeader, FrameType, MAX_BODY_LEN, MAX_CONTROL_FRAME, WIRE_VERSION,
};
pub use reader::FrameReader;
pub use types::*;
pub use unit::{DATA_PREFIX_LEN, UNIT_HEADER_LEN, UnitHeader};
