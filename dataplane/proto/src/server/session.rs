//! Sessions and their path slots: the per-session state, path departure and failure,
//! and the scheduling loop that places a session's queued units on its paths.

use std::time::Instant;

use camp_wire::{Micros, Modality, PathId, PathStatus, Reliability};
use quinn_proto::{ConnectionHandle, VarInt};

use crate::conn::{UnitCarrier, UnitWriteError};
use crate::join::{JoinKey, NonceCache};
use crate::sched::{ClientFeedback, Decision, MAX_PATHS, PathSet, PathView, Scheduler, UnitInfo};
use crate::store::UnitStore;
use crate::unit_log::{DropReason, UnitEventKind};

use super::{Server, ServerEvent, SessionId};

/// Per-path state inside a session.
#[derive(Debug, Clone, Copy)]
pub(super) struct PathSlot {
    pub(super) id: PathId,
    pub(super) conn: ConnectionHandle,
    pub(super) status: PathStatus,
    pub(super) precedence: u8,
    pub(super) status_seq: u32,
    pub(super) last_rtt_report_us: Micros,
    pub(super) units_sent: u64,
    pub(super) bytes_sent: u64,
}

pub(super) struct ServerSession {
    pub(super) token: [u8; 16],
    pub(super) join_key: JoinKey,
    pub(super) nonces: NonceCache,
    pub(super) paths: [Option<PathSlot>; MAX_PATHS],
    pub(super) next_path_id: u32,
    pub(super) store: UnitStore,
    pub(super) scheduler: Box<dyn Scheduler>,
    pub(super) feedback: ClientFeedback,
    pub(super) hold_until: Option<Micros>,
    /// Touched since its deadline was last computed (it is on the dirty list).
    pub(super) timer_dirty: bool,
}

/// The server's sessions: a slab of slots, each with a generation, and a free list.
///
/// A closed session's slot is emptied at once (its store, scheduler and nonce cache are
/// dropped) and goes on the free list with its generation raised, so the memory a server
/// holds follows the sessions open now, not every session it ever had. A slot whose
/// generation would wrap is retired instead of reused, so no two sessions ever share an id.
pub(super) struct SessionTable<S = ServerSession> {
    slots: Vec<SessionSlot<S>>,
    /// Empty slots, the most recently freed last (reused first: its memory is warm).
    free: Vec<u32>,
    live: usize,
}

struct SessionSlot<S> {
    generation: u32,
    session: Option<S>,
}

impl<S> Default for SessionTable<S> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }
}

impl<S> SessionTable<S> {
    pub(super) fn get(&self, id: SessionId) -> Option<&S> {
        let slot = self.slots.get(id.index() as usize)?;
        if slot.generation != id.generation() {
            return None;
        }
        slot.session.as_ref()
    }

    pub(super) fn get_mut(&mut self, id: SessionId) -> Option<&mut S> {
        let slot = self.slots.get_mut(id.index() as usize)?;
        if slot.generation != id.generation() {
            return None;
        }
        slot.session.as_mut()
    }

    /// The id the next [`insert`](Self::insert) will use.
    pub(super) fn vacant_id(&self) -> SessionId {
        match self.free.last() {
            Some(&i) => SessionId::new(i, self.slots[i as usize].generation),
            None => SessionId::new(self.slots.len() as u32, 0),
        }
    }

    /// Stores `session` under [`vacant_id`](Self::vacant_id), which it returns.
    pub(super) fn insert(&mut self, session: S) -> SessionId {
        let id = self.vacant_id();
        if self.free.pop().is_none() {
            self.slots.push(SessionSlot {
                generation: 0,
                session: None,
            });
        }
        self.slots[id.index() as usize].session = Some(session);
        self.live += 1;
        id
    }

    /// Empties the slot of `id` (if `id` is current) and returns what it held.
    pub(super) fn remove(&mut self, id: SessionId) -> Option<S> {
        let slot = self.slots.get_mut(id.index() as usize)?;
        if slot.generation != id.generation() {
            return None;
        }
        let session = slot.session.take()?;
        self.live -= 1;
        if let Some(next) = slot.generation.checked_add(1) {
            slot.generation = next;
            self.free.push(id.index());
        }
        Some(session)
    }

    /// Sessions open now.
    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// Slots ever used (open sessions plus free slots).
    pub(super) fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn ids(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.session
                .as_ref()
                .map(|_| SessionId::new(i as u32, s.generation))
        })
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (SessionId, &mut S)> {
        self.slots.iter_mut().enumerate().filter_map(|(i, s)| {
            let id = SessionId::new(i as u32, s.generation);
            s.session.as_mut().map(|sess| (id, sess))
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Waiting for HELLO or JOIN.
    Pending,
    /// Carries path `slot` of `session`.
    Member { session: SessionId, slot: usize },
    /// Refused or abandoned; closing.
    Closing,
}

impl Server {
    pub(super) fn close_conn(&mut self, now: Instant, h: ConnectionHandle, code: u32) {
        let Some(c) = self.paths.get_mut(h) else {
            return;
        };
        let role = c.role;
        c.role = Role::Closing;
        c.path.conn.close(
            now,
            VarInt::from_u32(code),
            bytes::Bytes::from_static(crate::edge::close_reason(code)),
        );
        self.touch_conn(h);
        if let Role::Member { session, slot } = role {
            self.path_failed(now, session, slot);
        }
    }

    pub(super) fn close_path(&mut self, now: Instant, session: SessionId, slot: usize, code: u32) {
        let Some(s) = self.sessions.get(session) else {
            return;
        };
        let Some(p) = s.paths[slot] else { return };
        self.close_conn(now, p.conn, code);
    }

    /// A path is gone: free its slot, reinject what only it carried, close the session
    /// when it was the last.
    pub(super) fn path_failed(&mut self, now: Instant, session: SessionId, slot: usize) {
        let Some(s) = self.sessions.get_mut(session) else {
            return;
        };
        let Some(p) = s.paths[slot].take() else {
            return;
        };
        s.store.reinject_from(PathSet::single(slot));
        self.events
            .push_back(ServerEvent::PathClosed(session, p.id));
        self.unit_log.push(
            session,
            self.clock.micros(now),
            UnitEventKind::PathClosed { path: p.id },
        );
        if let Some(c) = self.paths.get_mut(p.conn) {
            c.role = Role::Closing;
            self.coupling.detach(&c.path.gauges);
        }
        if s.paths.iter().all(Option::is_none) {
            self.tokens.remove(&s.token);
            self.sessions.remove(session);
            self.timers.forget_session(session);
            self.edge.on_session_closed(session.index());
            // Every path detached on its way out; clearing the group again guarantees the
            // session that takes this slot next starts from an empty group.
            self.coupling.clear_group(session.index() as usize);
            self.events.push_back(ServerEvent::SessionClosed(session));
        } else {
            self.schedule(now, session);
        }
    }

    /// Places queued units on paths until no path has room or no unit is left.
    pub(super) fn schedule(&mut self, now: Instant, session: SessionId) {
        let now_us = self.clock.micros(now);
        let Some(s) = self.sessions.get_mut(session) else {
            return;
        };
        let log = &mut self.unit_log;
        if log.is_on() {
            s.store.expire_observed(now_us, |modality, seq| {
                log.push(
                    session,
                    now_us,
                    UnitEventKind::Dropped {
                        modality,
                        seq,
                        reason: DropReason::ExpiredAtSender,
                    },
                );
            });
        } else {
            s.store.expire(now_us);
        }
        // Runs at least every RTT report interval, so an idle session trims in time.
        s.store.trim_if_idle(now_us);
        s.hold_until = None;
        // Everything below may change the session's timers and its paths' quinn state.
        if !s.timer_dirty {
            s.timer_dirty = true;
            self.timers.dirty_sessions.push(session);
        }
        let mut written = PathSet::EMPTY;
        let mut skip = [false; Modality::COUNT];
        let mut views: [PathView; MAX_PATHS] = [PathView::placeholder(); MAX_PATHS];
        loop {
            // Fresh views each round: a write changes the chosen path's backlog and room.
            let mut n = 0;
            for (slot, p) in s.paths.iter().enumerate() {
                let Some(p) = p else { continue };
                let Some(c) = self.paths.get(p.conn) else {
                    continue;
                };
                views[n] = c.path.view(slot as u8, p.id, p.status, p.precedence);
                n += 1;
            }
            let views = &views[..n];
            if views.iter().all(|v| !v.usable) {
                break;
            }
            let Some((m, seq, reinjection)) = s.store.next_candidate(skip) else {
                break;
            };
            let Some(u) = s.store.get(m, seq) else { break };
            let info = UnitInfo {
                modality: m,
                reliability: u.header.reliability,
                size: u.frame.len() as u32,
                sync_index: u.header.sync_index,
                gen_time_us: u.header.gen_time_us,
                deadline_us: u.deadline_us(),
                now_us,
                reinjection,
                avoid: PathSet::EMPTY,
            };
            // A reinjection avoids the paths it was sent on unless only suspect (or no) other
            // paths are left while one of its own still delivers.
            let info = if reinjection {
                UnitInfo {
                    avoid: crate::sched::reinjection_avoid(u.sent_on, &info, views),
                    ..info
                }
            } else {
                info
            };
            let decision = s.scheduler.pick(&info, views);
            match decision {
                Decision::Drop if info.reliability == Reliability::Droppable => {
                    s.store.drop_unit(m, seq);
                    self.unit_log.push(
                        session,
                        now_us,
                        UnitEventKind::Dropped {
                            modality: m,
                            seq,
                            reason: DropReason::NoPathInTime,
                        },
                    );
                }
                Decision::Drop | Decision::Hold { .. } => {
                    if let Decision::Hold {
                        retry_at_us: Some(t),
                    } = decision
                    {
                        s.hold_until = Some(s.hold_until.map_or(t, |h| h.min(t)));
                    }
                    skip[m.index()] = true;
                    if skip.iter().all(|&x| x) {
                        break;
                    }
                }
                Decision::Send(set) => {
                    let mut sent = PathSet::EMPTY;
                    let priority = match m {
                        Modality::Audio | Modality::Text => 2,
                        Modality::Video => 0,
                    } + i32::from(reinjection);
                    let droppable = info.reliability == Reliability::Droppable;
                    let deadline = info.deadline_us;
                    for slot in set.iter() {
                        let Some(p) = s.paths[slot].as_mut() else {
                            continue;
                        };
                        let Some(c) = self.paths.get_mut(p.conn) else {
                            continue;
                        };
                        let frame = &s.store.get(m, seq).map(|u| &u.frame[..]).unwrap_or(&[]);
                        if frame.is_empty() {
                            continue;
                        }
                        match c.path.write_unit(frame, droppable, priority, now_us) {
                            Ok(carrier) => {
                                written = written.with(slot);
                                if let (UnitCarrier::Stream(id), true, Some(d)) =
                                    (carrier, droppable, deadline)
                                {
                                    c.path.deadline_streams.push_back((id, d));
                                }
                                p.units_sent += 1;
                                p.bytes_sent += frame.len() as u64;
                                sent = sent.with(slot);
                                self.unit_log.push(
                                    session,
                                    now_us,
                                    UnitEventKind::Sent {
                                        modality: m,
                                        seq,
                                        path: p.id,
                                        reinjection,
                                        datagram: carrier == UnitCarrier::Datagram,
                                        bytes: frame.len() as u32,
                                    },
                                );
                            }
                            Err(UnitWriteError::NoRoom | UnitWriteError::Closed) => {}
                        }
                    }
                    if sent.is_empty() {
                        skip[m.index()] = true;
                        if skip.iter().all(|&x| x) {
                            break;
                        }
                        continue;
                    }
                    for slot in sent.iter() {
                        s.store.mark_sent(m, seq, slot, now_us);
                    }
                    if !droppable && !reinjection && sent.len() == 1 {
                        let slot = sent.iter().next().unwrap_or(0);
                        if let Some(view) = views.iter().find(|v| v.slot as usize == slot) {
                            if let Some(after) = s.scheduler.reinject_after_us(&info, view, views) {
                                s.store.arm_reinjection(m, seq, now_us + after);
                            }
                        }
                    }
                }
            }
        }
        let mut conns = [None; MAX_PATHS];
        for slot in written.iter() {
            conns[slot] = s.paths[slot].map(|p| p.conn);
        }
        for h in conns.into_iter().flatten() {
            self.touch_conn(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_slot_is_reused_under_a_new_generation_and_the_old_id_is_dead() {
        let mut t: SessionTable<&str> = SessionTable::default();
        let a = t.insert("a");
        let b = t.insert("b");
        assert_eq!((a, b), (SessionId::new(0, 0), SessionId::new(1, 0)));
        assert_eq!(t.remove(a), Some("a"));
        assert_eq!(t.remove(a), None, "removed twice");
        let c = t.insert("c");
        assert_eq!(c, SessionId::new(0, 1), "slot 0 reused, next generation");
        assert_eq!(t.get(a), None, "stale id reaches nothing");
        assert_eq!(t.get_mut(a), None);
        assert_eq!(t.remove(a), None, "a stale id cannot free the new session");
        assert_eq!(t.get(c), Some(&"c"));
        assert_eq!((t.len(), t.capacity()), (2, 2));
        assert_eq!(t.ids().collect::<Vec<_>>(), [c, b]);
        assert_eq!(SessionId::from_bits(c.to_bits()), c);
        assert_eq!(c.to_bits(), 1 << 32);
    }

    #[test]
    fn many_sequential_sessions_use_one_slot() {
        let mut t: SessionTable<u32> = SessionTable::default();
        let mut last = None;
        for i in 0..10_000 {
            let id = t.insert(i);
            assert_eq!(id.index(), 0);
            if let Some(prev) = last {
                assert_ne!(prev, id);
                assert_eq!(t.get(prev), None);
            }
            assert_eq!(t.remove(id), Some(i));
            last = Some(id);
        }
        assert_eq!((t.len(), t.capacity()), (0, 1));
        assert_eq!(last.map(SessionId::generation), Some(9_999));
    }

    #[test]
    fn a_slot_whose_generation_would_wrap_is_retired() {
        let mut t: SessionTable<u8> = SessionTable::default();
        let id = t.insert(1);
        t.slots[0].generation = u32::MAX;
        let old = SessionId::new(0, u32::MAX);
        assert_eq!(t.get(id), None);
        assert_eq!(t.remove(old), Some(1));
        let next = t.insert(2);
        assert_eq!(next, SessionId::new(1, 0), "slot 0 is not reused");
        assert_eq!(t.get(old), None);
    }
}
