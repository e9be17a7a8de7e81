//! The single error type of the CAMP wire codec.
//!
//! Every way a byte string can fail to be a CAMP frame, and every way an encoder can refuse
//! to produce one, is a [`WireError`] variant. Receivers treat each as a counted drop (or, on
//! the control stream, as a protocol violation that closes the connection); none is a panic.

/// Why a frame could not be parsed or emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The input holds only part of a frame. `needed` is the total length of the frame when
    /// its header could be read, otherwise the header length; a stream reader waits until
    /// `needed` bytes are buffered.
    #[error("truncated frame: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes required to make progress (whole frame if the header is known).
        needed: usize,
        /// Bytes that were available.
        available: usize,
    },
    /// The output buffer cannot hold the encoded frame.
    #[error("output buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes the encoding needs.
        needed: usize,
        /// Bytes the caller provided.
        available: usize,
    },
    /// The frame header carries a version this implementation does not speak.
    #[error("unknown wire version {0}")]
    UnknownVersion(u8),
    /// The frame header carries an unassigned frame type.
    #[error("unknown frame type {0:#04x}")]
    UnknownFrameType(u8),
    /// A frame (or, in [`crate::FrameReader`], a whole frame including its header) is longer
    /// than the permitted maximum.
    #[error("frame too large: {len} bytes, maximum {max}")]
    Oversized {
        /// Announced (or requested) length.
        len: u64,
        /// The limit that was exceeded.
        max: u64,
    },
    /// A DATA or ACK frame names a modality code this version does not define.
    #[error("unknown modality code {0}")]
    UnknownModality(u8),
    /// A DATA frame carries a reliability code other than 0 or 1.
    #[error("bad reliability code {0}")]
    BadReliability(u8),
    /// A PATH_STATUS frame carries an undefined status code.
    #[error("bad path status code {0}")]
    BadPathStatus(u8),
    /// A reserved field or undefined flag bit is non-zero.
    #[error("reserved bits set")]
    ReservedBits,
    /// A length field disagrees with the frame type or with another length field.
    #[error("length mismatch: expected {expected}, got {got}")]
    LengthMismatch {
        /// The length the format requires here.
        expected: usize,
        /// The length actually found (or supplied).
        got: usize,
    },
    /// An ACK carries (or an encoder was given) more than [`crate::MAX_ACK_RANGES`] ranges.
    #[error("too many ACK ranges: {0}")]
    TooManyRanges(usize),
    /// ACK ranges are empty, overlapping, adjacent, out of order, or not above the
    /// cumulative point.
    #[error("invalid ACK ranges")]
    InvalidAckRanges,
    /// A HELLO announces a reorder window outside [`crate::MIN_UNITS_AHEAD`]..=
    /// [`crate::MAX_UNITS_AHEAD`].
    #[error("reorder window of {0} units is out of range")]
    InvalidWindow(u32),
    /// An ADD_ADDRESS carries a family octet other than 4 (IPv4) or 6 (IPv6).
    #[error("bad address family {0}")]
    BadAddressFamily(u8),
}
