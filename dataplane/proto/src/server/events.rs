//! Connection events and control frames: what quinn reports for a path connection and
//! what the client says on its control stream.

use std::time::Instant;

use camp_wire::PathStatus;
use quinn_proto::{ConnectionHandle, Dir, Event, StreamEvent, VarInt};

use crate::conn::codes;
use crate::control::ControlFrame;
use crate::endpoint::ControlItem;
use crate::join::JoinRefusal;
use crate::sched::ClientFeedback;
use crate::store::AckedUnit;
use crate::unit_log::UnitEventKind;

use super::session::Role;
use super::{LATENCY_SAMPLES, LatencySample, Server};

impl Server {
    /// Drains a connection's endpoint events and application events.
    pub(super) fn process_conn(&mut self, now: Instant, h: ConnectionHandle) {
        let now_us = self.clock.micros(now);
        self.touch_conn(h);
        loop {
            let Some(ev) = self.paths.next_event(h) else {
                break;
            };
            let Some(c) = self.paths.get_mut(h) else {
                return;
            };
            match ev {
                Event::Connected => {
                    c.path.established_us = Some(now_us);
                }
                Event::ConnectionLost { .. } => {
                    c.path.lost = true;
                    match c.role {
                        Role::Member { session, slot } => self.path_failed(now, session, slot),
                        Role::Pending => self.edge.on_pending_lost(c.path.established_us.is_some()),
                        Role::Closing => {}
                    }
                }
                Event::Stream(StreamEvent::Opened { dir: Dir::Bi }) => {
                    if let Some(id) = c.path.conn.streams().accept(Dir::Bi) {
                        if c.path.control.is_none() {
                            c.path.control = Some(id);
                            self.read_control(now, h);
                        } else {
                            // One control stream per connection.
                            let _ = c
                                .path
                                .conn
                                .recv_stream(id)
                                .stop(VarInt::from_u32(codes::PROTOCOL_VIOLATION));
                        }
                    }
                }
                Event::Stream(StreamEvent::Opened { dir: Dir::Uni }) => {
                    // Clients send no units; refuse the stream.
                    while let Some(id) = c.path.conn.streams().accept(Dir::Uni) {
                        let _ = c
                            .path
                            .conn
                            .recv_stream(id)
                            .stop(VarInt::from_u32(codes::UNIT_REFUSED));
                    }
                }
                Event::Stream(StreamEvent::Readable { id }) if Some(id) == c.path.control => {
                    self.read_control(now, h);
                }
                Event::Stream(StreamEvent::Writable { id }) if Some(id) == c.path.control => {
                    c.path.flush_control();
                }
                Event::Stream(_)
                | Event::HandshakeDataReady
                | Event::DatagramReceived
                | Event::DatagramsUnblocked => {}
            }
        }
        let Some(c) = self.paths.get_mut(h) else {
            return;
        };
        if c.path.conn.is_drained() {
            c.path.drained = true;
            if let Role::Member { session, slot } = c.role {
                // Never expected (a member is lost or closed before it drains), but a
                // member must leave its session before the connection goes.
                self.path_failed(now, session, slot);
            }
            self.timers.forget_conn(h.0);
            if let Some(c) = self.paths.remove(h) {
                self.coupling.detach(&c.path.gauges);
            }
            return;
        }
        if c.path.suspect {
            // Suspicion ends as soon as ACKs resume (this is where they arrive); it only
            // starts at the connection's stall deadline, in `conn_timeout`.
            let min_suspect = self.config.camp.min_suspect_after.as_micros() as u64;
            c.path.update_suspect(now_us, min_suspect);
        }
        if let Role::Member { session, .. } = c.role {
            self.schedule(now, session);
        }
    }

    pub(super) fn read_control(&mut self, now: Instant, h: ConnectionHandle) {
        self.paths.read_control(h);
        while let Some(item) = self.paths.next_control(h) {
            let Some(role) = self.paths.get(h).map(|c| c.role) else {
                return;
            };
            match item {
                ControlItem::Frame(frame) => {
                    if !self.on_control(now, h, role, frame) {
                        return;
                    }
                }
                ControlItem::Malformed => {
                    // A frame that does not decode or that the reader refused, or the
                    // control stream ended or was reset.
                    self.counters.malformed_control += 1;
                    self.close_conn(now, h, codes::PROTOCOL_VIOLATION);
                    return;
                }
            }
        }
    }

    /// Handles one control frame; false if the connection was closed.
    pub(super) fn on_control(
        &mut self,
        now: Instant,
        h: ConnectionHandle,
        role: Role,
        f: ControlFrame,
    ) -> bool {
        let now_us = self.clock.micros(now);
        match (role, f) {
            (Role::Pending, ControlFrame::Hello(hello)) => {
                if hello.flags != 0 {
                    self.refuse(now, h, JoinRefusal::Protocol);
                    return false;
                }
                self.open_session(now, h, hello.units_ahead);
                true
            }
            (Role::Pending, ControlFrame::Join(join)) => match self.admit(now, h, &join) {
                Ok(()) => true,
                Err(reason) => {
                    self.refuse(now, h, reason);
                    false
                }
            },
            (Role::Pending, _) => {
                self.refuse(now, h, JoinRefusal::Protocol);
                false
            }
            (Role::Member { session, .. }, ControlFrame::Ack(ack)) => {
                // Half the ACK path's minimum RTT: the ACK's own trip back.
                let back_us = self
                    .paths
                    .get(h)
                    .map_or(0, |c| c.path.gauges.snapshot().min_rtt_us / 2);
                let arrival_us = now_us.saturating_sub(back_us);
                let latency = &mut self.latency;
                let dropped = &mut self.counters.latency_samples_dropped;
                let log = &mut self.unit_log;
                if let Some(s) = self.sessions.get_mut(session) {
                    s.store.on_ack_observed(
                        ack.modality,
                        ack.cumulative,
                        ack.ranges(),
                        |u: AckedUnit| {
                            if latency.len() == LATENCY_SAMPLES {
                                latency.pop_front();
                                *dropped += 1;
                            }
                            let sample = LatencySample {
                                session,
                                modality: u.modality,
                                lateness_us: arrival_us.saturating_sub(u.gen_time_us),
                                delivery_us: arrival_us.saturating_sub(u.first_sent_us),
                            };
                            latency.push_back(sample);
                            log.push(
                                session,
                                arrival_us,
                                UnitEventKind::Acked {
                                    modality: u.modality,
                                    seq: u.seq,
                                    lateness_us: sample.lateness_us,
                                    delivery_us: sample.delivery_us,
                                },
                            );
                        },
                    );
                }
                self.schedule(now, session);
                true
            }
            (Role::Member { session, .. }, ControlFrame::Feedback(fb)) => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.feedback = ClientFeedback {
                        playout_delay_us: fb.playout_delay_us,
                        buffer_occupancy_us: fb.buffer_occupancy_us,
                        skew_mean_us: fb.skew_mean_us,
                        skew_p95_us: fb.skew_p95_us,
                        late_units: fb.late_units,
                    };
                    s.scheduler.on_feedback(&s.feedback);
                }
                true
            }
            (Role::Member { session, .. }, ControlFrame::PathStatus(ps)) => {
                if let Some(s) = self.sessions.get_mut(session) {
                    if let Some(p) = s.paths.iter_mut().flatten().find(|p| p.id == ps.path_id) {
                        if ps.status_seq > p.status_seq {
                            p.status_seq = ps.status_seq;
                            p.status = ps.status;
                            p.precedence = ps.precedence;
                            if let Some(c) = self.paths.get(p.conn) {
                                self.coupling
                                    .set_active(&c.path.gauges, p.status == PathStatus::Available);
                            }
                        }
                    }
                }
                self.schedule(now, session);
                true
            }
            (Role::Member { session, .. }, ControlFrame::Abandon(a)) => {
                let slot = self.sessions.get(session).and_then(|s| {
                    s.paths
                        .iter()
                        .position(|p| p.is_some_and(|p| p.id == a.path_id))
                });
                if let Some(slot) = slot {
                    self.close_path(now, session, slot, codes::ABANDONED);
                }
                self.paths.get(h).is_some()
            }
            (Role::Member { .. }, ControlFrame::Rtt(_)) => true,
            (Role::Member { .. } | Role::Closing, _) => {
                let _ = now_us;
                self.counters.malformed_control += 1;
                self.close_conn(now, h, codes::PROTOCOL_VIOLATION);
                false
            }
        }
    }
}
