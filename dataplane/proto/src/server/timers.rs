//! Timers: the earliest deadline the driver must wake for, and running what is due.
//!
//! Every connection and every session has one deadline, the earliest of its own timers
//! (a connection: quinn's timer, its first unit-stream deadline, stall detection, the JOIN
//! timeout while pending; a session: scheduler hold, proactive reinjection, the reliable
//! safety net, each path's next RTT report). The deadlines sit in a min-heap with lazy
//! invalidation: an entry is live only while it equals the deadline its owner holds now,
//! so a changed deadline is one push and the old entry is dropped when it surfaces.
//!
//! The current deadlines are kept here, in two dense arrays indexed by connection handle
//! and session slot, not in the connections and sessions: telling a live entry from a
//! stale one then reads 16–24 bytes of an array instead of a connection's or a session's
//! state (kilobytes apart, cold in cache once there are many sessions), and an entry is 16
//! bytes (a deadline and a packed owner) instead of 32.
//!
//! A deadline is recomputed only for owners *touched* since the last recomputation
//! ([`Server::touch_conn`], [`Server::touch_session`]): every call that can change one
//! (a datagram for the connection, a transmit from it, a write to it, a timer that fired,
//! a unit submitted to the session) touches what it changed. [`Server::poll_timeout`] and
//! [`Server::handle_timeout`] therefore cost O(touched + due · log n), and an idle
//! session costs nothing per call. The same touches feed the ready list that
//! [`Server::poll_transmit`] walks instead of every connection.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use camp_wire::{Frame, Micros, RttReport};
use quinn_proto::ConnectionHandle;

use crate::join::JoinRefusal;
use crate::sched::PathSet;

use super::session::Role;
use super::{Server, SessionId};

/// Whose deadline a heap entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerOwner {
    /// A path connection (its quinn handle).
    Conn(usize),
    /// A session.
    Session(SessionId),
}

/// A heap entry's owner in 32 bits: a connection handle, or a session slot index with
/// [`SESSION_KEY`] set. Orders as [`TimerOwner`] does (connections first, each kind by
/// index), so equal deadlines fire in the order they always did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct OwnerKey(u32);

const SESSION_KEY: u32 = 1 << 31;

impl OwnerKey {
    fn conn(i: usize) -> Self {
        debug_assert!(i < SESSION_KEY as usize);
        Self(i as u32 & !SESSION_KEY)
    }
    fn session(id: SessionId) -> Self {
        Self(id.index() | SESSION_KEY)
    }
}

/// Deadlines of every connection and session, and the owners whose deadline may have
/// changed since it was last computed.
#[derive(Debug, Default)]
pub(super) struct TimerQueue {
    heap: BinaryHeap<Reverse<(Instant, OwnerKey)>>,
    /// The deadline each connection has in the heap, by handle index.
    conn_at: Vec<Option<Instant>>,
    /// The deadline each session slot has in the heap, with the slot's generation.
    session_at: Vec<Option<(Instant, u32)>>,
    pub(super) dirty_sessions: Vec<SessionId>,
    /// Owners found due by the last `handle_timeout` (kept to reuse its allocation).
    due: Vec<TimerOwner>,
}

impl TimerQueue {
    fn conn_deadline(&self, i: usize) -> Option<Instant> {
        self.conn_at.get(i).copied().flatten()
    }

    fn session_deadline(&self, id: SessionId) -> Option<Instant> {
        match self.session_at.get(id.index() as usize) {
            Some(&Some((t, generation))) if generation == id.generation() => Some(t),
            _ => None,
        }
    }

    /// Sets connection `i`'s deadline; a new one goes on the heap.
    fn set_conn(&mut self, i: usize, at: Option<Instant>) {
        if self.conn_at.len() <= i {
            self.conn_at.resize(i + 1, None);
        }
        if self.conn_at[i] != at {
            self.conn_at[i] = at;
            if let Some(t) = at {
                self.heap.push(Reverse((t, OwnerKey::conn(i))));
            }
        }
    }

    /// Sets session `id`'s deadline; a new one goes on the heap.
    fn set_session(&mut self, id: SessionId, at: Option<Instant>) {
        let i = id.index() as usize;
        if self.session_at.len() <= i {
            self.session_at.resize(i + 1, None);
        }
        let entry = at.map(|t| (t, id.generation()));
        if self.session_at[i] != entry {
            self.session_at[i] = entry;
            if let Some(t) = at {
                self.heap.push(Reverse((t, OwnerKey::session(id))));
            }
        }
    }

    /// Connection `i` is gone: its entries are stale from now on.
    pub(super) fn forget_conn(&mut self, i: usize) {
        if let Some(e) = self.conn_at.get_mut(i) {
            *e = None;
        }
    }

    /// Session `id` is gone: its entries are stale from now on.
    pub(super) fn forget_session(&mut self, id: SessionId) {
        if self.session_deadline(id).is_some() {
            self.session_at[id.index() as usize] = None;
        }
    }

    /// The owner of a live entry.
    fn owner(&self, t: Instant, key: OwnerKey) -> Option<TimerOwner> {
        if key.0 & SESSION_KEY == 0 {
            let i = key.0 as usize;
            (self.conn_deadline(i) == Some(t)).then_some(TimerOwner::Conn(i))
        } else {
            let i = (key.0 & !SESSION_KEY) as usize;
            match self.session_at.get(i) {
                Some(&Some((at, generation))) if at == t => {
                    Some(TimerOwner::Session(SessionId::new(i as u32, generation)))
                }
                _ => None,
            }
        }
    }

    /// Drops every stale entry (when they outnumber the owners by far).
    fn prune(&mut self, owners: usize) {
        if self.heap.len() > 2 * owners + 64 {
            let mut heap = std::mem::take(&mut self.heap);
            heap.retain(|&Reverse((t, key))| self.owner(t, key).is_some());
            self.heap = heap;
        }
    }

    /// Entries in the heap, live or stale.
    #[cfg(test)]
    pub(super) fn entries(&self) -> usize {
        self.heap.len()
    }
}

/// How much work the server's loop-facing calls did, for tests that show it does not grow
/// with idle sessions. Plain counters, never reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopWork {
    /// Connections whose deadline was recomputed.
    pub conn_deadlines: u64,
    /// Sessions whose deadline was recomputed.
    pub session_deadlines: u64,
    /// Heap entries popped (due or stale).
    pub timer_pops: u64,
    /// Connections `poll_transmit` asked for a datagram.
    pub transmit_visits: u64,
}

impl LoopWork {
    /// Everything counted, summed.
    pub fn total(&self) -> u64 {
        self.conn_deadlines + self.session_deadlines + self.timer_pops + self.transmit_visits
    }
}

impl Server {
    /// Marks a connection's deadline for recomputation and puts it on the ready list.
    pub(super) fn touch_conn(&mut self, h: ConnectionHandle) {
        self.paths.touch(h);
    }

    /// Marks a session's deadline for recomputation.
    pub(super) fn touch_session(&mut self, id: SessionId) {
        let Some(s) = self.sessions.get_mut(id) else {
            return;
        };
        if !s.timer_dirty {
            s.timer_dirty = true;
            self.timers.dirty_sessions.push(id);
        }
    }

    /// Work counters of the loop-facing calls (see [`LoopWork`]).
    pub fn loop_work(&self) -> LoopWork {
        LoopWork {
            transmit_visits: self.paths.transmit_visits(),
            ..self.work
        }
    }

    /// Recomputes the deadlines of every touched connection and session.
    fn refresh_deadlines(&mut self) {
        let min_suspect = self.config.camp.min_suspect_after.as_micros() as u64;
        let report = self.config.camp.rtt_report_interval.as_micros() as u64;
        let join_timeout = self.config.camp.join_timeout.as_micros() as u64;
        let safety = self.config.camp.reliable_safety_timeout.as_micros() as u64;
        let clock = self.clock;
        let earliest = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        while let Some((h, c)) = self.paths.pop_dirty() {
            self.work.conn_deadlines += 1;
            let mut next = c.path.conn.poll_timeout();
            next = earliest(
                next,
                c.path.next_stream_deadline().map(|d| clock.instant(d)),
            );
            next = earliest(
                next,
                c.path
                    .suspect_deadline(min_suspect)
                    .map(|d| clock.instant(d)),
            );
            if c.role == Role::Pending {
                let start = c.path.established_us.unwrap_or(c.path.created_us);
                next = earliest(next, Some(clock.instant(start + join_timeout + 1)));
            }
            self.timers.set_conn(h.0, next);
        }
        while let Some(id) = self.timers.dirty_sessions.pop() {
            let Some(s) = self.sessions.get_mut(id) else {
                continue;
            };
            if !s.timer_dirty {
                continue;
            }
            s.timer_dirty = false;
            self.work.session_deadlines += 1;
            let mut next = s.hold_until.map(|t| clock.instant(t));
            next = earliest(
                next,
                s.store.next_reinjection_timer().map(|t| clock.instant(t)),
            );
            next = earliest(
                next,
                s.store
                    .next_safety_timeout(safety)
                    .map(|t| clock.instant(t)),
            );
            for p in s.paths.iter().flatten() {
                next = earliest(next, Some(clock.instant(p.last_rtt_report_us + report)));
            }
            self.timers.set_session(id, next);
        }
        // Stale entries surface and go at their time; a burst of deadline changes far in
        // the future could still pile them up, so rebuild when they outnumber live ones.
        self.timers
            .prune(self.paths.slots() + self.sessions.capacity());
    }

    /// Pops stale entries; the earliest live entry, if any.
    fn next_live(&mut self) -> Option<(Instant, TimerOwner)> {
        while let Some(&Reverse((t, key))) = self.timers.heap.peek() {
            if let Some(owner) = self.timers.owner(t, key) {
                return Some((t, owner));
            }
            self.timers.heap.pop();
            self.work.timer_pops += 1;
        }
        None
    }

    /// Earliest time [`handle_timeout`](Self::handle_timeout) must be called.
    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.refresh_deadlines();
        self.next_live().map(|(t, _)| t)
    }

    /// Runs every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.refresh_deadlines();
        let mut due = std::mem::take(&mut self.timers.due);
        due.clear();
        while let Some((t, owner)) = self.next_live() {
            if t > now {
                break;
            }
            self.timers.heap.pop();
            self.work.timer_pops += 1;
            // Fired: the owner's deadline is recomputed after it has run.
            match owner {
                TimerOwner::Conn(i) => {
                    self.timers.set_conn(i, None);
                    self.touch_conn(ConnectionHandle(i));
                }
                TimerOwner::Session(id) => {
                    self.timers.set_session(id, None);
                    self.touch_session(id);
                }
            }
            due.push(owner);
        }
        // Connections first, then sessions, as before the timers had a heap: a path found
        // stalled reinjects before its session schedules.
        for &owner in &due {
            if let TimerOwner::Conn(i) = owner {
                self.conn_timeout(now, ConnectionHandle(i));
            }
        }
        for &owner in &due {
            if let TimerOwner::Session(id) = owner {
                self.session_timeout(now, id);
            }
        }
        self.timers.due = due;
    }

    /// A connection's deadline passed: quinn's timer, unit-stream deadlines, stall
    /// detection, the JOIN timeout.
    fn conn_timeout(&mut self, now: Instant, h: ConnectionHandle) {
        let now_us = self.clock.micros(now);
        let min_suspect = self.config.camp.min_suspect_after.as_micros() as u64;
        let join_timeout = self.config.camp.join_timeout.as_micros() as u64;
        let Some(c) = self.paths.get_mut(h) else {
            return;
        };
        let start = c.path.established_us.unwrap_or(c.path.created_us);
        if c.path.conn.poll_timeout().is_some_and(|t| t <= now) {
            c.path.conn.handle_timeout(now);
        }
        self.counters.deadline_resets += c.path.expire_streams(now_us) as u64;
        let was = c.path.suspect;
        let is = c.path.update_suspect(now_us, min_suspect);
        let role = c.role;
        if is && !was {
            self.counters.suspected += 1;
            if let Role::Member { session, slot } = role {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.store.reinject_from(PathSet::single(slot));
                }
                self.touch_session(session);
            }
        }
        if role == Role::Pending && now_us > start + join_timeout {
            self.edge.on_hello_timeout();
            self.refuse(now, h, JoinRefusal::Late);
        }
        self.process_conn(now, h);
    }

    /// A session's deadline passed: RTT reports, reinjection and safety timers, a hold.
    fn session_timeout(&mut self, now: Instant, id: SessionId) {
        let now_us = self.clock.micros(now);
        self.send_rtt_reports(id, now_us);
        let safety = self.config.camp.reliable_safety_timeout.as_micros() as u64;
        if let Some(s) = self.sessions.get_mut(id) {
            s.store.fire_reinjection_timers(now_us);
            s.store.fire_safety_timeouts(now_us, safety);
        }
        self.schedule(now, id);
    }

    fn send_rtt_reports(&mut self, id: SessionId, now_us: Micros) {
        let interval = self.config.camp.rtt_report_interval.as_micros() as u64;
        let Some(s) = self.sessions.get_mut(id) else {
            return;
        };
        let mut touched = [None; crate::sched::MAX_PATHS];
        for (slot, p) in s.paths.iter_mut().enumerate() {
            let Some(p) = p else { continue };
            if now_us < p.last_rtt_report_us + interval {
                continue;
            }
            p.last_rtt_report_us = now_us;
            let Some(c) = self.paths.get_mut(p.conn) else {
                continue;
            };
            let g = c.path.gauges.snapshot();
            let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
            let frame = Frame::Rtt(RttReport {
                path_id: p.id,
                raw_us: clamp(g.latest_rtt_us),
                min_us: clamp(c.path.conn.min_rtt().as_micros() as u64),
                max_us: clamp(g.max_rtt_us),
                smoothed_us: clamp(c.path.conn.rtt().as_micros() as u64),
                age_us: clamp(now_us.saturating_sub(g.last_sample_us)),
            });
            c.path.send_control(&frame);
            touched[slot] = Some(p.conn);
        }
        for h in touched.into_iter().flatten() {
            self.touch_conn(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_the_current_deadline_of_a_current_owner_is_live() {
        let t0 = Instant::now();
        let at = |ms| Some(t0 + Duration::from_millis(ms));
        let mut q = TimerQueue::default();
        let (s, s_next) = (SessionId::new(3, 0), SessionId::new(3, 1));
        q.set_conn(5, at(10));
        q.set_conn(5, at(20));
        q.set_session(s, at(15));
        q.set_session(s, at(15));
        assert_eq!(q.entries(), 3, "an unchanged deadline is not pushed again");
        let live = |q: &TimerQueue| {
            let mut v: Vec<_> = q
                .heap
                .iter()
                .filter_map(|&Reverse((t, k))| q.owner(t, k).map(|o| (t, o)))
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            live(&q),
            vec![
                (at(15).unwrap(), TimerOwner::Session(s)),
                (at(20).unwrap(), TimerOwner::Conn(5)),
            ]
        );
        // A closed session's deadline goes; the slot's next session does not see it, and
        // an old id does not read the new one's.
        q.forget_session(s);
        q.set_session(s_next, at(30));
        assert_eq!(q.session_deadline(s), None);
        assert_eq!(q.session_deadline(s_next), at(30));
        q.forget_conn(5);
        assert_eq!(
            live(&q),
            vec![(at(30).unwrap(), TimerOwner::Session(s_next))]
        );
        // Equal deadlines keep their order: connections first, then by index.
        let keys = [
            OwnerKey::conn(7),
            OwnerKey::session(SessionId::new(0, 9)),
            OwnerKey::conn(2),
        ];
        let mut sorted = keys;
        sorted.sort();
        assert_eq!(sorted, [keys[2], keys[0], keys[1]]);
    }

    #[test]
    fn stale_entries_are_pruned_once_they_outnumber_the_owners() {
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        for k in 0..1_000u64 {
            q.set_conn(0, Some(t0 + Duration::from_micros(k)));
        }
        assert_eq!(q.entries(), 1_000);
        q.prune(1);
        assert_eq!(q.entries(), 1, "only the live entry is left");
        assert_eq!(q.conn_deadline(0), Some(t0 + Duration::from_micros(999)));
    }
}
