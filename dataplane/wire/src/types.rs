//! Domain primitives shared by every CAMP layer: modalities, reliability classes,
//! sequence numbers, sync indices, capture ids and path identifiers.
//!
//! These are plain values with no I/O. Their wire encodings are defined in
//! `docs/wire-format.md` and implemented in the codec modules of this crate.

use core::fmt;

/// One of the media kinds an interactive LLM turn produces (draft-song-tsvwg-camp-00 §3.1.1,
/// `M = {T, A, V}`).
///
/// The wire code space is 0..=15 so that later revisions can add modalities (e.g. avatar
/// pose, subtitles) without a new version; codes 3..=15 are reserved today and decode to
/// [`crate::WireError::UnknownModality`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Modality {
    /// LLM text tokens / words. Reliable by default.
    Text = 0,
    /// Synthesised speech frames (e.g. 20 ms Opus). Reliable by default.
    Audio = 1,
    /// Facial-animation video frames. Droppable past their deadline by default.
    Video = 2,
}

impl Modality {
    /// Number of modalities this version knows; arrays indexed by modality have this length.
    pub const COUNT: usize = 3;
    /// All modalities in wire-code order.
    pub const ALL: [Modality; Self::COUNT] = [Modality::Text, Modality::Audio, Modality::Video];

    /// Dense index for per-modality arrays.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Decodes a wire code; `None` for reserved codes.
    #[inline]
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Modality::Text),
            1 => Some(Modality::Audio),
            2 => Some(Modality::Video),
            _ => None,
        }
    }

    /// The reliability class a modality gets unless the application says otherwise
    /// (draft §2.1: text and audio reliable, video loss-tolerant).
    #[inline]
    pub const fn default_reliability(self) -> Reliability {
        match self {
            Modality::Text | Modality::Audio => Reliability::Reliable,
            Modality::Video => Reliability::Droppable,
        }
    }

    /// Short stream letter used by the draft (§4.2: "T", "A", "V").
    pub const fn letter(self) -> char {
        match self {
            Modality::Text => 'T',
            Modality::Audio => 'A',
            Modality::Video => 'V',
        }
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Modality::Text => "text",
            Modality::Audio => "audio",
            Modality::Video => "video",
        })
    }
}

/// Reliability indicator `r_m` of draft §3.1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reliability {
    /// May be dropped once its deadline has passed; never retransmitted across paths.
    Droppable = 0,
    /// Must be delivered exactly once: kept by the sender until a CAMP ACK covers it and
    /// reinjected on surviving paths if the path carrying it fails.
    Reliable = 1,
}

impl Reliability {
    /// Decodes a wire code; `None` for anything but 0 and 1.
    #[inline]
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Reliability::Droppable),
            1 => Some(Reliability::Reliable),
            _ => None,
        }
    }
}

/// Per-unit flags (one byte on the wire; undefined bits must be zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct UnitFlags(u8);

impl UnitFlags {
    /// A video unit that can be decoded on its own (I-frame).
    pub const KEYFRAME: UnitFlags = UnitFlags(0x01);
    /// Last unit of a spoken utterance / sentence in this modality.
    pub const END_OF_UTTERANCE: UnitFlags = UnitFlags(0x02);
    /// Last unit of the LLM turn in this modality.
    pub const END_OF_TURN: UnitFlags = UnitFlags(0x04);
    /// Every bit this version defines.
    pub const DEFINED: u8 = 0x07;

    /// No flag set.
    pub const fn empty() -> Self {
        UnitFlags(0)
    }
    /// Builds flags from raw bits, `None` if an undefined bit is set.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        if bits & !Self::DEFINED != 0 {
            None
        } else {
            Some(UnitFlags(bits))
        }
    }
    /// Raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: UnitFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Union of two flag sets.
    #[must_use]
    pub const fn with(self, other: UnitFlags) -> Self {
        UnitFlags(self.0 | other.0)
    }
}

/// Source / capture identifier carried per unit, with RFC 8849 §3 switch semantics: the value
/// says which capture the unit currently carries, may change between units of one stream
/// (a switched stream), and [`CaptureId::COMPOSED`] plays the role of RFC 8849's "-"
/// (composed from several sources, no single capture).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CaptureId(pub u16);

impl CaptureId {
    /// "No single source": the unit is a composition (RFC 8849 "-").
    pub const COMPOSED: CaptureId = CaptureId(0xFFFF);
    /// Whether this is the composed marker.
    pub const fn is_composed(self) -> bool {
        self.0 == Self::COMPOSED.0
    }
}

/// Connection-level per-modality sequence number (like MP-DCCP MP_SEQ, but 64-bit so it never
/// wraps in practice). Independent of the path that carries the unit.
pub type Seq = u64;

/// Semantic synchronisation index `k` (draft §3.1.1): units of different modalities with the
/// same index belong together (word k, its speech, the face that says it).
pub type SyncIndex = u32;

/// Microseconds on the sender's session clock (generation timestamps `g_m,k`).
pub type Micros = u64;

/// Explicit path identifier (draft-gage-quicmp-pathmodel-00): assigned by the server,
/// monotonic within a session and never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathId(pub u32);

impl fmt::Display for PathId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// Administrative path status (MP-DCCP MP_PRIO, quicmp-pathmodel MULTIPATH_STATUS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PathStatus {
    /// Used only when no available path can carry the unit.
    Standby = 0,
    /// Eligible for scheduling, ranked by precedence then by the scheduler's rule.
    Available = 1,
    /// Takes no new units; what it carries completes (used before an operator removes a path).
    Drain = 2,
}

impl PathStatus {
    /// Decodes a wire code; `None` for unknown values.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(PathStatus::Standby),
            1 => Some(PathStatus::Available),
            2 => Some(PathStatus::Drain),
            _ => None,
        }
    }
}

impl fmt::Display for PathStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathStatus::Standby => "standby",
            PathStatus::Available => "available",
            PathStatus::Drain => "drain",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modality_codes_round_trip_and_reserved_codes_are_rejected() {
        for m in Modality::ALL {
            assert_eq!(Modality::from_code(m as u8), Some(m));
        }
        for code in 3..=255u8 {
            assert_eq!(Modality::from_code(code), None);
        }
    }

    #[test]
    fn undefined_flag_bits_are_rejected() {
        assert!(UnitFlags::from_bits(0x07).is_some());
        assert!(UnitFlags::from_bits(0x08).is_none());
        let f = UnitFlags::KEYFRAME.with(UnitFlags::END_OF_TURN);
        assert!(f.contains(UnitFlags::KEYFRAME));
        assert!(!f.contains(UnitFlags::END_OF_UTTERANCE));
    }
}
