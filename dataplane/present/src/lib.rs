//! camp-present: what a CAMP receiver hands its renderer.
//!
//! Every unit the alignment buffer plays out (`camp_recv::Receiver::poll_playout`) becomes a
//! [`PresentRecord`]: modality, sync index, sequence number, generation (media) time,
//! presentation time, capture id, keyframe / end-of-utterance / end-of-turn flags, the
//! receiver's late / skipped verdict, and the payload. [`record`] defines the versioned
//! binary record stream (docs/wire-format.md §9) and its strict incremental [`Decoder`];
//! [`sink`] writes records to stdout, a Unix socket or a directory of per-modality files
//! without making the receiver's loop wait on the renderer.
#![forbid(unsafe_code)]

pub mod record;
pub mod sink;

pub use record::{
    DecodeError, Decoder, OwnedRecord, PresentFlags, PresentRecord, decode_all, preamble,
};
pub use sink::{PresentSink, SinkError, SinkTarget};
