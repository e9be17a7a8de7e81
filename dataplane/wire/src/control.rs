//! Fixed-size control frame bodies: session setup (HELLO, SESSION, JOIN, JOIN_OK), path
//! management (PATH_STATUS, ABANDON, RTT) and client alignment feedback (FEEDBACK).
//!
//! Each body has a fixed length (`BODY_LEN`) that the frame header is checked against before
//! the body is decoded, so the decoders here only validate field values. ACK, the one
//! variable-length control frame, lives in [`crate::ack`].

use crate::cursor::{Reader, Writer};
use crate::{Micros, PathId, PathStatus, WireError};

/// `0x10 HELLO`: first frame of a connection that starts a new session (client → server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Capability flags; no flag is defined in version 1, so this must be 0.
    pub flags: u32,
    /// The client's reorder window per stream, in units: it refuses a reliable unit this
    /// far or further beyond its first missing one, so the server keeps reliable units
    /// within it. [`MIN_UNITS_AHEAD`]..=[`MAX_UNITS_AHEAD`].
    pub units_ahead: u32,
}

/// Smallest reorder window a HELLO may announce.
pub const MIN_UNITS_AHEAD: u32 = 2;
/// Largest reorder window a HELLO may announce.
pub const MAX_UNITS_AHEAD: u32 = 65_536;

impl Hello {
    /// Body length in bytes.
    pub const BODY_LEN: usize = 8;

    fn check(&self) -> Result<(), WireError> {
        if self.flags != 0 {
            return Err(WireError::ReservedBits);
        }
        if !(MIN_UNITS_AHEAD..=MAX_UNITS_AHEAD).contains(&self.units_ahead) {
            return Err(WireError::InvalidWindow(self.units_ahead));
        }
        Ok(())
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let h = Hello {
            flags: r.u32()?,
            units_ahead: r.u32()?,
        };
        h.check()?;
        Ok(h)
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), WireError> {
        self.check()?;
        w.u32(self.flags)?;
        w.u32(self.units_ahead)
    }
}

/// `0x11 SESSION`: the server's answer to HELLO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// Session token the client presents in JOIN on further connections.
    pub token: [u8; 16],
    /// Path id the server assigned to this connection.
    pub path_id: PathId,
    /// Server session clock at the time of sending, in µs (clock offset estimation).
    pub server_time_us: Micros,
}

impl SessionInfo {
    /// Body length in bytes.
    pub const BODY_LEN: usize = 28;

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(SessionInfo {
            token: r.array()?,
            path_id: PathId(r.u32()?),
            server_time_us: r.u64()?,
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.bytes(&self.token)?;
        w.u32(self.path_id.0)?;
        w.u64(self.server_time_us)
    }
}

/// `0x12 JOIN`: first frame of a connection that joins an existing session as a new path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Join {
    /// Session token from SESSION.
    pub token: [u8; 16],
    /// Fresh client nonce, so a captured JOIN cannot be replayed.
    pub nonce: [u8; 16],
    /// HMAC-SHA256 over token and nonce, keyed by the session secret.
    pub mac: [u8; 32],
}

impl Join {
    /// Body length in bytes.
    pub const BODY_LEN: usize = 64;

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Join {
            token: r.array()?,
            nonce: r.array()?,
            mac: r.array()?,
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.bytes(&self.token)?;
        w.bytes(&self.nonce)?;
        w.bytes(&self.mac)
    }
}

/// `0x13 JOIN_OK`: the server accepted a JOIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinOk {
    /// Path id the server assigned to the joining connection.
    pub path_id: PathId,
    /// Server session clock at the time of sending, in µs.
    pub server_time_us: Micros,
}

impl JoinOk {
    /// Body length in bytes.
    pub const BODY_LEN: usize = 12;

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(JoinOk {
            path_id: PathId(r.u32()?),
            server_time_us: r.u64()?,
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.u32(self.path_id.0)?;
        w.u64(self.server_time_us)
    }
}

/// `0x21 PATH_STATUS`: administrative status and precedence of a path (MP-DCCP MP_PRIO,
/// quicmp-pathmodel MULTIPATH_STATUS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathStatusFrame {
    /// The path this status applies to.
    pub path_id: PathId,
    /// Monotonic per path; receivers ignore a frame older than the newest they applied.
    pub status_seq: u32,
    /// Standby / available / drain.
    pub status: PathStatus,
    /// Higher is preferred; 0 is standby-like.
    pub precedence: u8,
}

impl PathStatusFrame {
    /// Body length in bytes.
    pub const BODY_LEN: usize = 10;

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let path_id = PathId(r.u32()?);
        let status_seq = r.u32()?;
        let code = r.u8()?;
        let status = PathStatus::from_code(code).ok_or(WireError::BadPathStatus(code))?;
        let precedence = r.u8()?;
        Ok(PathStatusFrame {
            path_id,
            status_seq,
            status,
            precedence,
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.u32(self.path_id.0)?;
        w.u32(self.status_seq)?;
        w.u8(self.status as u8)?;
        w.u8(self.precedence)
    }
}

/// `0x22 ABANDON`: the sender stops using a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Abandon {
    /// The abandoned path.
    pub path_id: PathId,
    /// Application-defined reason.
    pub error_code: u32,
}

impl Abandon {
    /// Body length in bytes.
    pub const BODY_LEN: usize = 8;

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Abandon {
            path_id: PathId(r.u32()?),
            error_code: r.u32()?,
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.u32(self.path_id.0)?;
        w.u32(self.error_code)
    }
}

/// `0x23 RTT`: a path's RTT statistics as measured by the sender (MP-DCCP MP_RTT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttReport {
    /// The measured path.
    pub path_id: PathId,
    /// Latest raw sample, µs.
    pub raw_us: u32,
    /// Minimum over the measurement window, µs.
    pub min_us: u32,
    /// Maximum over the measurement window, µs.
    pub max_us: u32,
    /// Smoothed RTT, µs.
    pub smoothed_us: u32,
    /// Age of the newest sample when the report was sent, µs.
    pub age_us: u32,
}

impl RttReport {
    /// Body length in bytes.
    pub const BODY_LEN: usize = 24;

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(RttReport {
            path_id: PathId(r.u32()?),
            raw_us: r.u32()?,
            min_us: r.u32()?,
            max_us: r.u32()?,
            smoothed_us: r.u32()?,
            age_us: r.u32()?,
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.u32(self.path_id.0)?;
        w.u32(self.raw_us)?;
        w.u32(self.min_us)?;
        w.u32(self.max_us)?;
        w.u32(self.smoothed_us)?;
        w.u32(self.age_us)
    }
}

/// `0x24 FEEDBACK`: state of the client's alignment buffer (draft-song-tsvwg-camp-00 §4.4,
/// "continuous feedback from the transport layer").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Feedback {
    /// Length of the interval this report covers, µs.
    pub interval_us: u32,
    /// Current playout delay the client applies, µs.
    pub playout_delay_us: u32,
    /// Media currently buffered ahead of playout, µs.
    pub buffer_occupancy_us: u32,
    /// Mean inter-modal arrival skew `Delta_k` over the interval (draft §3.1.4), µs.
    pub skew_mean_us: u32,
    /// 95th percentile of `Delta_k` over the interval, µs.
    pub skew_p95_us: u32,
    /// Units that arrived after their playout time during the interval.
    pub late_units: u32,
    /// Units declared lost during the interval.
    pub lost_units: u32,
}

impl Feedback {
    /// Body length in bytes.
    pub const BODY_LEN: usize = 28;

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Feedback {
            interval_us: r.u32()?,
            playout_delay_us: r.u32()?,
            buffer_occupancy_us: r.u32()?,
            skew_mean_us: r.u32()?,
            skew_p95_us: r.u32()?,
            late_units: r.u32()?,
            lost_units: r.u32()?,
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.u32(self.interval_us)?;
        w.u32(self.playout_delay_us)?;
        w.u32(self.buffer_occupancy_us)?;
        w.u32(self.skew_mean_us)?;
        w.u32(self.skew_p95_us)?;
        w.u32(self.late_units)?;
        w.u32(self.lost_units)
    }
}
