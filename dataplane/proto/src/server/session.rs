//! Sessions and their path slots: the per-session state, path departure and failure,
//! and the scheduling loop that places a session's queued units on its paths.

use std::time::Instant;

use camp_wire::{Micros, Modality, PathId, PathStatus, Reliability};
use quinn_proto::{ConnectionHandle, VarInt};

use crate::conn::{PathConn, UnitCarrier, UnitWriteError};
use crate::join::{JoinKey, NonceCache};
use crate::sched::{ClientFeedback, Decision, MAX_PATHS, PathSet, PathView, Scheduler, UnitInfo};
use crate::store::UnitStore;

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
    pub(super) closed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Waiting for HELLO or JOIN.
    Pending,
    /// Carries path `slot` of `session`.
    Member { session: u32, slot: usize },
    /// Refused or abandoned; closing.
    Closing,
}

pub(super) struct ServerConn {
    pub(super) path: PathConn,
    pub(super) role: Role,
}

impl Server {
    pub(super) fn close_conn(&mut self, now: Instant, h: ConnectionHandle, code: u32) {
        let Some(c) = self.conns.get_mut(h.0).and_then(Option::as_mut) else {
            return;
        };
        let role = c.role;
        c.role = Role::Closing;
        c.path
            .conn
            .close(now, VarInt::from_u32(code), bytes::Bytes::new());
        if let Role::Member { session, slot } = role {
            self.path_failed(now, session, slot);
        }
    }

    pub(super) fn close_path(&mut self, now: Instant, session: u32, slot: usize, code: u32) {
        let Some(s) = self.sessions.get(session as usize).and_then(Option::as_ref) else {
            return;
        };
        let Some(p) = s.paths[slot] else { return };
        self.close_conn(now, p.conn, code);
    }

    /// A path is gone: free its slot, reinject what only it carried, close the session
    /// when it was the last.
    pub(super) fn path_failed(&mut self, now: Instant, session: u32, slot: usize) {
        let Some(s) = self
            .sessions
            .get_mut(session as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        let Some(p) = s.paths[slot].take() else {
            return;
        };
        s.store.reinject_from(PathSet::single(slot));
        self.events
            .push_back(ServerEvent::PathClosed(SessionId(session), p.id));
        if let Some(c) = self.conns.get_mut(p.conn.0).and_then(Option::as_mut) {
            c.role = Role::Closing;
            self.coupling.detach(&c.path.gauges);
        }
        if s.paths.iter().all(Option::is_none) {
            s.closed = true;
            self.tokens.remove(&s.token);
            self.events
                .push_back(ServerEvent::SessionClosed(SessionId(session)));
        } else {
            self.schedule(now, session);
        }
    }

    /// Places queued units on paths until no path has room or no unit is left.
    pub(super) fn schedule(&mut self, now: Instant, session: u32) {
        let now_us = self.clock.micros(now);
        let Some(s) = self
            .sessions
            .get_mut(session as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        if s.closed {
            return;
        }
        s.store.expire(now_us);
        s.hold_until = None;
        let mut skip = [false; Modality::COUNT];
        let mut views: [PathView; MAX_PATHS] = [PathView::placeholder(); MAX_PATHS];
        loop {
            // Fresh views each round: a write changes the chosen path's backlog and room.
            let mut n = 0;
            for (slot, p) in s.paths.iter().enumerate() {
                let Some(p) = p else { continue };
                let Some(c) = self.conns.get(p.conn.0).and_then(Option::as_ref) else {
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
            let avoid = if reinjection {
                u.sent_on
            } else {
                PathSet::EMPTY
            };
            let info = UnitInfo {
                modality: m,
                reliability: u.header.reliability,
                size: u.frame.len() as u32,
                sync_index: u.header.sync_index,
                gen_time_us: u.header.gen_time_us,
                deadline_us: u.deadline_us(),
                now_us,
                reinjection,
                avoid,
            };
            // A reinjected unit whose every other path is gone may go back where it was.
            let mut decision = s.scheduler.pick(&info, views);
            if reinjection && decision == (Decision::Hold { retry_at_us: None }) {
                let again = UnitInfo {
                    avoid: PathSet::EMPTY,
                    ..info
                };
                if !crate::sched::eligible(&again, views).is_empty()
                    && crate::sched::eligible(&info, views).is_empty()
                {
                    decision = s.scheduler.pick(&again, views);
                }
            }
            match decision {
                Decision::Drop if info.reliability == Reliability::Droppable => {
                    s.store.drop_unit(m, seq);
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
                        let Some(c) = self.conns.get_mut(p.conn.0).and_then(Option::as_mut) else {
                            continue;
                        };
                        let frame = &s.store.get(m, seq).map(|u| &u.frame[..]).unwrap_or(&[]);
                        if frame.is_empty() {
                            continue;
                        }
                        match c.path.write_unit(frame, droppable, priority, now_us) {
                            Ok(carrier) => {
                                if let (UnitCarrier::Stream(id), true, Some(d)) =
                                    (carrier, droppable, deadline)
                                {
                                    c.path.deadline_streams.push_back((id, d));
                                }
                                p.units_sent += 1;
                                p.bytes_sent += frame.len() as u64;
                                sent = sent.with(slot);
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
    }
}
