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

/// One owner's place in the heap: its current deadline, and the earliest entry it has in
/// the heap (never later than the deadline while there is one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot<D> {
    at: Option<D>,
    queued: Option<Instant>,
}

impl<D> Default for Slot<D> {
    fn default() -> Self {
        Self {
            at: None,
            queued: None,
        }
    }
}

/// Deadlines of every connection and session, and the owners whose deadline may have
/// changed since it was last computed.
///
/// A deadline that moves later is not pushed again: the owner's earlier entry stays, and
/// when it surfaces it is moved to the owner's deadline of that moment (one push however
/// often the deadline moved in between; quinn's loss-detection and idle timers move later
/// with nearly every packet). A deadline that moves earlier is pushed, and the later entry
/// goes when it surfaces. An entry is *live* only when it is its owner's deadline, so live
/// entries come out in the order of (deadline, owner) exactly as if every change had been
/// pushed.
#[derive(Debug, Default)]
pub(super) struct TimerQueue {
    heap: BinaryHeap<Reverse<(Instant, OwnerKey)>>,
    /// By connection handle index.
    conns: Vec<Slot<Instant>>,
    /// By session slot index; the deadline carries the slot's generation.
    sessions: Vec<Slot<(Instant, u32)>>,
    pub(super) dirty_sessions: Vec<SessionId>,
    /// Owners found due by the last `handle_timeout` (kept to reuse its allocation).
    due: Vec<TimerOwner>,
}

/// Pushes `at` for `key` unless the owner already has an entry at or before it.
fn place<D>(
    heap: &mut BinaryHeap<Reverse<(Instant, OwnerKey)>>,
    slot: &mut Slot<D>,
    key: OwnerKey,
    at: Option<D>,
    time: impl Fn(&D) -> Instant,
) {
    if let Some(t) = at.as_ref().map(&time) {
        if slot.queued.is_none_or(|q| t < q) {
            heap.push(Reverse((t, key)));
            slot.queued = Some(t);
        }
    }
    slot.at = at;
}

impl TimerQueue {
    #[cfg(test)]
    fn conn_deadline(&self, i: usize) -> Option<Instant> {
        self.conns.get(i).and_then(|s| s.at)
    }

    fn session_deadline(&self, id: SessionId) -> Option<Instant> {
        match self.sessions.get(id.index() as usize).and_then(|s| s.at) {
            Some((t, generation)) if generation == id.generation() => Some(t),
            _ => None,
        }
    }

    /// Sets connection `i`'s deadline.
    fn set_conn(&mut self, i: usize, at: Option<Instant>) {
        if self.conns.len() <= i {
            self.conns.resize(i + 1, Slot::default());
        }
        place(
            &mut self.heap,
            &mut self.conns[i],
            OwnerKey::conn(i),
            at,
            |t| *t,
        );
    }

    /// Sets session `id`'s deadline.
    fn set_session(&mut self, id: SessionId, at: Option<Instant>) {
        let i = id.index() as usize;
        if self.sessions.len() <= i {
            self.sessions.resize(i + 1, Slot::default());
        }
        let at = at.map(|t| (t, id.generation()));
        place(
            &mut self.heap,
            &mut self.sessions[i],
            OwnerKey::session(id),
            at,
            |d| d.0,
        );
    }

    /// Connection `i` is gone: it has no deadline from now on.
    pub(super) fn forget_conn(&mut self, i: usize) {
        if let Some(s) = self.conns.get_mut(i) {
            s.at = None;
        }
    }

    /// Session `id` is gone: it has no deadline from now on.
    pub(super) fn forget_session(&mut self, id: SessionId) {
        if self.session_deadline(id).is_some() {
            self.sessions[id.index() as usize].at = None;
        }
    }

    /// For an entry: whether it is its owner's earliest entry, and the owner's deadline.
    fn look(&self, key: OwnerKey) -> (Option<Instant>, Option<(Instant, TimerOwner)>) {
        if key.0 & SESSION_KEY == 0 {
            let i = key.0 as usize;
            let s = self.conns.get(i).copied().unwrap_or_default();
            (s.queued, s.at.map(|t| (t, TimerOwner::Conn(i))))
        } else {
            let i = key.0 & !SESSION_KEY;
            let s = self.sessions.get(i as usize).copied().unwrap_or_default();
            let owner = |(t, generation)| (t, TimerOwner::Session(SessionId::new(i, generation)));
            (s.queued, s.at.map(owner))
        }
    }

    fn set_queued(&mut self, key: OwnerKey, queued: Option<Instant>) {
        let slot = if key.0 & SESSION_KEY == 0 {
            self.conns.get_mut(key.0 as usize).map(|s| &mut s.queued)
        } else {
            let i = (key.0 & !SESSION_KEY) as usize;
            self.sessions.get_mut(i).map(|s| &mut s.queued)
        };
        if let Some(q) = slot {
            *q = queued;
        }
    }

    /// The earliest live entry, settling the entries above it: stale ones are dropped and
    /// an owner's early entry is moved to its deadline. Counts the entries popped.
    fn next_live(&mut self, pops: &mut u64) -> Option<(Instant, TimerOwner)> {
        while let Some(&Reverse((t, key))) = self.heap.peek() {
            let (queued, at) = self.look(key);
            if queued == Some(t) {
                match at {
                    Some((d, owner)) if d == t => return Some((t, owner)),
                    Some((d, _)) => {
                        // Moved later since it was queued (never earlier: that pushed).
                        self.heap.pop();
                        self.heap.push(Reverse((d, key)));
                        self.set_queued(key, Some(d));
                        *pops += 1;
                        continue;
                    }
                    None => self.set_queued(key, None),
                }
            }
            self.heap.pop();
            *pops += 1;
        }
        None
    }

    /// Takes the live entry [`next_live`](Self::next_live) returned off the heap: its owner
    /// has no deadline until it is recomputed.
    fn fire(&mut self, owner: TimerOwner) {
        self.heap.pop();
        let key = match owner {
            TimerOwner::Conn(i) => {
                self.conns[i] = Slot::default();
                return;
            }
            TimerOwner::Session(id) => OwnerKey::session(id),
        };
        self.sessions[(key.0 & !SESSION_KEY) as usize] = Slot::default();
    }

    /// Drops every entry that is not its owner's earliest (when they outnumber the owners
    /// by far).
    fn prune(&mut self, owners: usize) {
        if self.heap.len() > 2 * owners + 64 {
            let mut heap = std::mem::take(&mut self.heap);
            heap.retain(|&Reverse((t, key))| self.look(key).0 == Some(t));
            self.heap = heap;
        }
    }

    /// Entries in the heap, live or not.
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
        self.timers.next_live(&mut self.work.timer_pops)
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
            self.timers.fire(owner);
            self.work.timer_pops += 1;
            // Fired: the owner's deadline is recomputed after it has run.
            match owner {
                TimerOwner::Conn(i) => self.touch_conn(ConnectionHandle(i)),
                TimerOwner::Session(id) => self.touch_session(id),
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

    /// Fires everything due at `now`, in order.
    fn due(q: &mut TimerQueue, now: Instant) -> Vec<(Instant, TimerOwner)> {
        let mut pops = 0;
        let mut v = Vec::new();
        while let Some((t, owner)) = q.next_live(&mut pops) {
            if t > now {
                break;
            }
            q.fire(owner);
            v.push((t, owner));
        }
        v
    }

    #[test]
    fn only_the_current_deadline_of_a_current_owner_fires() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut q = TimerQueue::default();
        let (s, s_next) = (SessionId::new(3, 0), SessionId::new(3, 1));
        q.set_conn(5, Some(at(10)));
        q.set_conn(5, Some(at(20)));
        q.set_session(s, Some(at(15)));
        q.set_session(s, Some(at(15)));
        assert_eq!(
            q.entries(),
            2,
            "a deadline moved later or unchanged is not pushed"
        );
        let mut pops = 0;
        assert_eq!(
            q.next_live(&mut pops),
            Some((at(15), TimerOwner::Session(s)))
        );
        assert_eq!(pops, 1, "the connection's early entry moved to 20 ms");
        assert_eq!(
            due(&mut q, at(20)),
            vec![
                (at(15), TimerOwner::Session(s)),
                (at(20), TimerOwner::Conn(5)),
            ]
        );
        assert_eq!(q.entries(), 0);
        // A closed session's deadline goes; the slot's next session does not see it, and
        // an old id does not read the new one's.
        q.set_session(s, Some(at(25)));
        q.forget_session(s);
        q.set_session(s_next, Some(at(30)));
        assert_eq!(q.session_deadline(s), None);
        assert_eq!(q.session_deadline(s_next), Some(at(30)));
        q.set_conn(5, Some(at(26)));
        q.forget_conn(5);
        assert_eq!(q.conn_deadline(5), None);
        assert_eq!(
            due(&mut q, at(40)),
            vec![(at(30), TimerOwner::Session(s_next))]
        );
        assert_eq!(q.entries(), 0);
    }

    #[test]
    fn moved_deadlines_fire_in_deadline_order_as_if_each_move_was_pushed() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut q = TimerQueue::default();
        // Connection 1 was queued at 1 ms, then moved to 5 ms; connection 2 is due at 3 ms;
        // connection 0 moved earlier, from 9 to 4 ms; session 0 shares 5 ms with conn 1.
        q.set_conn(1, Some(at(1)));
        q.set_conn(1, Some(at(5)));
        q.set_conn(2, Some(at(3)));
        q.set_conn(0, Some(at(9)));
        q.set_conn(0, Some(at(4)));
        q.set_session(SessionId::new(0, 2), Some(at(5)));
        let order: Vec<_> = due(&mut q, at(6)).into_iter().map(|d| d.1).collect();
        assert_eq!(
            order,
            vec![
                TimerOwner::Conn(2),
                TimerOwner::Conn(0),
                TimerOwner::Conn(1),
                TimerOwner::Session(SessionId::new(0, 2)),
            ]
        );
        // The entry connection 0 left at 9 ms is stale: nothing is left to fire.
        assert!(due(&mut q, at(100)).is_empty());
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
        for k in (0..1_000u64).rev() {
            q.set_conn(0, Some(t0 + Duration::from_micros(k)));
        }
        assert_eq!(q.entries(), 1_000, "every move earlier is pushed");
        q.prune(1);
        assert_eq!(q.entries(), 1, "only the owner's earliest entry is left");
        assert_eq!(due(&mut q, t0).len(), 1);
    }
}
