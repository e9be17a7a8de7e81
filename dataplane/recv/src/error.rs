//! The receiver's error type: why [`crate::Receiver::on_unit`] refused a unit.
//!
//! Every refusal is also counted in [`crate::RecvCounters`]; none of them is fatal to the
//! session. A refused unit is not acknowledged, so the sender of a reliable unit resends it.

use camp_wire::{Modality, Seq};
use thiserror::Error;

/// Why the receiver refused a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum RecvError {
    /// The unit's sequence number lies `max_units_ahead` or more above the in-order point of a
    /// reliable stream; storing it would make the reorder memory unbounded. It is not acked,
    /// so the sender resends it once the window has moved.
    #[error(
        "{modality} unit {seq} is too far ahead of the in-order point {in_order} (window {window})"
    )]
    TooFarAhead {
        /// Stream of the unit.
        modality: Modality,
        /// Sequence number of the refused unit.
        seq: Seq,
        /// Next sequence number the stream waits for.
        in_order: Seq,
        /// Configured `max_units_ahead`.
        window: u64,
    },
    /// A droppable unit's seq lies more than `max_droppable_jump` above its stream's in-order
    /// point. Accepting it would declare every seq in between lost; no sender drops that
    /// many units in a row, so the unit is refused (droppable units are never resent).
    #[error(
        "{modality} unit {seq} jumps more than {limit} seqs past the in-order point {in_order}"
    )]
    SeqJump {
        /// Stream of the unit.
        modality: Modality,
        /// Sequence number of the refused unit.
        seq: Seq,
        /// Next sequence number the stream waits for.
        in_order: Seq,
        /// Configured `max_droppable_jump`.
        limit: u64,
    },
    /// The payload buffers already hold `max_buffered_units` units or `max_buffered_bytes`
    /// bytes; the unit is not stored and not acked.
    #[error("receive buffer full: {modality} unit {seq} refused")]
    BufferFull {
        /// Stream of the unit.
        modality: Modality,
        /// Sequence number of the refused unit.
        seq: Seq,
    },
    /// The payload is longer than `max_payload_len`.
    #[error("payload of {len} bytes exceeds the limit of {max} bytes")]
    PayloadTooLarge {
        /// Length of the refused payload.
        len: usize,
        /// Configured `max_payload_len`.
        max: usize,
    },
    /// [`crate::Receiver::finish`] was called; the turn is over and no unit is accepted.
    #[error("the receiver has finished; unit refused")]
    Finished,
}
