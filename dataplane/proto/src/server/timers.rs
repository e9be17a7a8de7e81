//! Timers: the earliest deadline the driver must wake for, and running what is due.

use std::time::Instant;

use camp_wire::{Frame, Micros, RttReport};
use quinn_proto::ConnectionHandle;

use crate::join::JoinRefusal;
use crate::sched::PathSet;

use super::Server;
use super::session::Role;

impl Server {
    /// Earliest time [`handle_timeout`](Self::handle_timeout) must be called.
    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        let min_suspect = self.config.camp.min_suspect_after.as_micros() as u64;
        let report = self.config.camp.rtt_report_interval.as_micros() as u64;
        let join_timeout = self.config.camp.join_timeout.as_micros() as u64;
        let safety = self.config.camp.reliable_safety_timeout.as_micros() as u64;
        for c in self.conns.iter_mut().flatten() {
            consider(c.path.conn.poll_timeout());
            consider(c.path.next_stream_deadline().map(|d| self.clock.instant(d)));
            consider(
                c.path
                    .suspect_deadline(min_suspect)
                    .map(|d| self.clock.instant(d)),
            );
            if c.role == Role::Pending {
                let start = c.path.established_us.unwrap_or(c.path.created_us);
                consider(Some(self.clock.instant(start + join_timeout + 1)));
            }
        }
        for s in self.sessions.ids().filter_map(|id| self.sessions.get(id)) {
            consider(s.hold_until.map(|t| self.clock.instant(t)));
            consider(
                s.store
                    .next_reinjection_timer()
                    .map(|t| self.clock.instant(t)),
            );
            consider(
                s.store
                    .next_safety_timeout(safety)
                    .map(|t| self.clock.instant(t)),
            );
            for p in s.paths.iter().flatten() {
                consider(Some(self.clock.instant(p.last_rtt_report_us + report)));
            }
        }
        next
    }

    /// Runs every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now_us = self.clock.micros(now);
        let min_suspect = self.config.camp.min_suspect_after.as_micros() as u64;
        let join_timeout = self.config.camp.join_timeout.as_micros() as u64;
        for i in 0..self.conns.len() {
            let h = ConnectionHandle(i);
            let Some(c) = self.conns[i].as_mut() else {
                continue;
            };
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
                }
            }
            if role == Role::Pending {
                let start = c.path.established_us.unwrap_or(c.path.created_us);
                if now_us > start + join_timeout {
                    self.refuse(now, h, JoinRefusal::Late);
                }
            }
            self.process_conn(now, h);
        }
        self.send_rtt_reports(now_us);
        let safety = self.config.camp.reliable_safety_timeout.as_micros() as u64;
        for (_, s) in self.sessions.iter_mut() {
            s.store.fire_reinjection_timers(now_us);
            s.store.fire_safety_timeouts(now_us, safety);
        }
        for i in 0..self.sessions.capacity() {
            if let Some(sid) = self.sessions.id_at(i) {
                self.schedule(now, sid);
            }
        }
    }

    pub(super) fn send_rtt_reports(&mut self, now_us: Micros) {
        let interval = self.config.camp.rtt_report_interval.as_micros() as u64;
        for (_, s) in self.sessions.iter_mut() {
            for p in s.paths.iter_mut().flatten() {
                if now_us < p.last_rtt_report_us + interval {
                    continue;
                }
                p.last_rtt_report_us = now_us;
                let Some(c) = self.conns.get_mut(p.conn.0).and_then(Option::as_mut) else {
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
            }
        }
    }
}
