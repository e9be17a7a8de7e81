//! Timers: the earliest deadline the driver must wake for, and running what is due.
//!
//! Every connection and every session has one deadline, the earliest of its own timers
//! (a connection: quinn's timer, its first unit-stream deadline, stall detection, the JOIN
//! timeout while pending; a session: scheduler hold, proactive reinjection, the reliable
//! safety net, each path's next RTT report). The deadlines sit in a min-heap with lazy
//! invalidation: an entry is live only while it equals the deadline its owner holds now,
//! so a changed deadline is one push and the old entry is dropped when it surfaces.
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

use crate::endpoint::PathEndpoint;
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

/// Deadlines of every connection and session, and the owners whose deadline may have
/// changed since it was last computed.
#[derive(Debug, Default)]
pub(super) struct TimerQueue {
    pub(super) heap: BinaryHeap<Reverse<(Instant, TimerOwner)>>,
    pub(super) dirty_sessions: Vec<SessionId>,
    /// Owners found due by the last `handle_timeout` (kept to reuse its allocation).
    due: Vec<TimerOwner>,
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
            if next != c.timer {
                c.timer = next;
                if let Some(t) = next {
                    self.timers.heap.push(Reverse((t, TimerOwner::Conn(h.0))));
                }
            }
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
            if next != s.timer {
                s.timer = next;
                if let Some(t) = next {
                    self.timers.heap.push(Reverse((t, TimerOwner::Session(id))));
                }
            }
        }
        // Stale entries surface and go at their time; a burst of deadline changes far in
        // the future could still pile them up, so rebuild when they outnumber live ones.
        let live = self.paths.slots() + self.sessions.capacity();
        if self.timers.heap.len() > 2 * live + 64 {
            let (paths, sessions) = (&self.paths, &self.sessions);
            self.timers
                .heap
                .retain(|Reverse((t, owner))| is_live(paths, sessions, *t, *owner));
        }
    }

    /// Pops stale entries; the earliest live entry, if any.
    fn next_live(&mut self) -> Option<(Instant, TimerOwner)> {
        while let Some(&Reverse((t, owner))) = self.timers.heap.peek() {
            if is_live(&self.paths, &self.sessions, t, owner) {
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
                    if let Some(c) = self.paths.get_mut(ConnectionHandle(i)) {
                        c.timer = None;
                    }
                    self.touch_conn(ConnectionHandle(i));
                }
                TimerOwner::Session(id) => {
                    if let Some(s) = self.sessions.get_mut(id) {
                        s.timer = None;
                    }
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

/// Whether a heap entry is its owner's current deadline.
fn is_live(
    paths: &PathEndpoint<Role>,
    sessions: &super::session::SessionTable,
    t: Instant,
    owner: TimerOwner,
) -> bool {
    match owner {
        TimerOwner::Conn(i) => paths
            .get(ConnectionHandle(i))
            .is_some_and(|c| c.timer == Some(t)),
        TimerOwner::Session(id) => sessions.get(id).is_some_and(|s| s.timer == Some(t)),
    }
}
