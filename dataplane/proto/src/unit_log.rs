//! The server's CAMP-level event log: what happened to each unit (sent on which path, as a
//! reinjection or not; acknowledged; dropped, and why) and to each path, for a reader who
//! wants to follow one session unit by unit next to quinn's per-path qlog (issue 12).
//!
//! Off by default ([`CampConfig::unit_log`](crate::config::CampConfig::unit_log) is 0). When
//! on, events go into a ring of that many entries allocated once; the application drains it
//! with [`Server::poll_unit_event`](crate::server::Server::poll_unit_event) and writes it
//! where it likes (campd: one JSON-SEQ file per session next to the qlog of its paths).
//! A full ring drops its oldest event and counts it, so the log never allocates or blocks
//! the data path. The core stays free of I/O and clocks: times are the session clock's µs.

use std::collections::VecDeque;

use camp_wire::{Micros, Modality, PathId, Seq};

use crate::server::SessionId;

/// One entry of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnitEvent {
    /// Session the event belongs to.
    pub session: SessionId,
    /// Session-clock time, µs.
    pub time_us: Micros,
    /// What happened.
    pub kind: UnitEventKind,
}

/// Why a droppable unit was dropped at the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The scheduler found no path that would deliver it by its deadline.
    NoPathInTime,
    /// Its deadline passed while it waited at the sender.
    ExpiredAtSender,
}

impl DropReason {
    /// Name used in logs.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::NoPathInTime => "no_path_in_time",
            DropReason::ExpiredAtSender => "expired_at_sender",
        }
    }
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitEventKind {
    /// The scheduler placed a copy of the unit on a path and quinn took it.
    Sent {
        /// Stream of the unit.
        modality: Modality,
        /// Its sequence number.
        seq: Seq,
        /// Path that took the copy.
        path: PathId,
        /// Whether the copy is a reinjection (the unit was sent before).
        reinjection: bool,
        /// Whether it went as a QUIC DATAGRAM (otherwise on its own stream).
        datagram: bool,
        /// Bytes of the encoded unit.
        bytes: u32,
    },
    /// The client acknowledged the unit (first acknowledgement only).
    Acked {
        /// Stream of the unit.
        modality: Modality,
        /// Its sequence number.
        seq: Seq,
        /// From the unit's media time to the arrival of the ACK, µs.
        lateness_us: Micros,
        /// From the unit's first send to the arrival of the ACK, µs.
        delivery_us: Micros,
    },
    /// A droppable unit was dropped at the sender.
    Dropped {
        /// Stream of the unit.
        modality: Modality,
        /// Its sequence number.
        seq: Seq,
        /// Why.
        reason: DropReason,
    },
    /// A path joined the session.
    PathJoined {
        /// The path.
        path: PathId,
    },
    /// A path left the session (failed, abandoned or closed); what only it carried is
    /// reinjected on the others.
    PathClosed {
        /// The path.
        path: PathId,
    },
}

impl UnitEventKind {
    /// Event name used in logs (qlog style `camp:<name>`).
    pub fn name(&self) -> &'static str {
        match self {
            UnitEventKind::Sent { .. } => "unit_sent",
            UnitEventKind::Acked { .. } => "unit_acked",
            UnitEventKind::Dropped { .. } => "unit_dropped",
            UnitEventKind::PathJoined { .. } => "path_joined",
            UnitEventKind::PathClosed { .. } => "path_closed",
        }
    }
}

/// Bounded ring of events (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct UnitLog {
    events: VecDeque<UnitEvent>,
    capacity: usize,
    /// Events dropped because the ring was full.
    pub(crate) overflowed: u64,
}

impl UnitLog {
    /// A log of `capacity` events (0: off, records nothing and allocates nothing).
    pub(crate) fn new(capacity: usize) -> Self {
        UnitLog {
            events: VecDeque::with_capacity(capacity),
            capacity,
            overflowed: 0,
        }
    }

    /// Whether events are recorded at all.
    pub(crate) fn is_on(&self) -> bool {
        self.capacity > 0
    }

    /// Records `kind`; a full ring drops its oldest event.
    pub(crate) fn push(&mut self, session: SessionId, time_us: Micros, kind: UnitEventKind) {
        if self.capacity == 0 {
            return;
        }
        if self.events.len() == self.capacity {
            self.events.pop_front();
            self.overflowed += 1;
        }
        self.events.push_back(UnitEvent {
            session,
            time_us,
            kind,
        });
    }

    /// The oldest event not yet taken.
    pub(crate) fn pop(&mut self) -> Option<UnitEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dropped(seq: Seq) -> UnitEventKind {
        UnitEventKind::Dropped {
            modality: Modality::Video,
            seq,
            reason: DropReason::NoPathInTime,
        }
    }

    #[test]
    fn an_off_log_records_nothing() {
        let mut l = UnitLog::new(0);
        l.push(SessionId::new(0, 0), 1, dropped(0));
        assert!(!l.is_on());
        assert_eq!((l.pop(), l.overflowed), (None, 0));
    }

    #[test]
    fn a_full_log_drops_its_oldest_event_and_counts_it_without_growing() {
        let mut l = UnitLog::new(3);
        let cap = l.events.capacity();
        for seq in 0..5 {
            l.push(SessionId::new(0, 0), seq, dropped(seq));
        }
        assert_eq!(l.overflowed, 2);
        assert_eq!(l.events.capacity(), cap, "the ring never reallocates");
        let seqs: Vec<Micros> = std::iter::from_fn(|| l.pop()).map(|e| e.time_us).collect();
        assert_eq!(seqs, [2, 3, 4]);
    }
}
