//! Connection events and control frames: what quinn reports for a path connection, what
//! the server says on its control stream, and a path leaving.

use super::*;

impl Client {
    pub(super) fn close_conn(&mut self, now: Instant, h: ConnectionHandle, code: u32) {
        let Some(c) = self.paths.get_mut(h) else {
            return;
        };
        if c.role.state == PathState::Closed {
            return;
        }
        c.path
            .conn
            .close(now, VarInt::from_u32(code), bytes::Bytes::new());
        self.paths.touch(h);
        self.path_gone(h);
    }

    pub(super) fn path_gone(&mut self, h: ConnectionHandle) {
        let Some(c) = self.paths.get_mut(h) else {
            return;
        };
        if c.role.state == PathState::Closed {
            return;
        }
        if let PathState::Member(id) = c.role.state {
            self.receiver.remove_path(id);
        }
        self.coupling.detach(&c.path.gauges);
        let was_hello = c.role.state == PathState::Hello;
        c.role.state = PathState::Closed;
        let slot = c.role.slot;
        // Half-received units of this path are forgotten, their buffers emptied: a stale
        // prefix in a reused buffer would turn the next unit into a malformed frame and lose
        // it (issue 14: a reliable audio unit lost this way was recovered only by the safety
        // timeout, if at all). `UnitStreams` empties every buffer it takes back.
        c.role.units.clear();
        self.events.push_back(ClientEvent::PathClosed { slot });
        self.apply_path_usage();
        let all_closed = self
            .paths
            .entries()
            .all(|c| c.role.state == PathState::Closed);
        if all_closed {
            if self.start_deadline.take().is_some() {
                self.events
                    .push_back(ClientEvent::SessionFailed(StartError::AllPathsClosed));
            }
            self.events.push_back(ClientEvent::SessionClosed);
        } else if was_hello && self.token.is_none() {
            // The HELLO path died before SESSION: the next ready path starts the session.
            if let Some(next) = self.waiting_conns().first().copied() {
                self.send_hello(next);
            }
        }
    }

    pub(super) fn process_conn(&mut self, now: Instant, h: ConnectionHandle) {
        let now_us = self.clock.micros(now);
        self.paths.touch(h);
        loop {
            let Some(ev) = self.paths.next_event(h) else {
                break;
            };
            let Some(c) = self.paths.get_mut(h) else {
                return;
            };
            match ev {
                Event::Connected => {
                    // Streams can only be opened once the server's transport parameters are
                    // known, so HELLO or JOIN goes out from here.
                    c.path.established_us = Some(now_us);
                    self.handshake_done(h);
                }
                Event::ConnectionLost { reason } => {
                    c.path.lost = true;
                    let slot = c.role.slot;
                    let srtt = c.path.conn.rtt();
                    self.path_gone(h);
                    // Lost to the network (not closed by either end on purpose): try again
                    // while another path keeps the session.
                    let by_network = matches!(
                        reason,
                        quinn_proto::ConnectionError::TimedOut
                            | quinn_proto::ConnectionError::Reset
                    );
                    if by_network && self.slots[slot] == Some(h) {
                        self.schedule_reconnect(now, slot, srtt);
                    }
                }
                Event::Stream(StreamEvent::Opened { dir: Dir::Uni }) => {
                    while let Some(c) = self.paths.get_mut(h) {
                        let Some(id) = c.path.conn.streams().accept(Dir::Uni) else {
                            break;
                        };
                        c.role.units.open(id);
                        self.read_unit_stream(now, h, id);
                    }
                }
                Event::Stream(StreamEvent::Opened { dir: Dir::Bi }) => {
                    while let Some(id) = c.path.conn.streams().accept(Dir::Bi) {
                        let _ = c
                            .path
                            .conn
                            .recv_stream(id)
                            .stop(VarInt::from_u32(codes::PROTOCOL_VIOLATION));
                    }
                }
                Event::Stream(StreamEvent::Readable { id }) => {
                    if Some(id) == c.path.control {
                        self.read_control(now, h);
                    } else {
                        self.read_unit_stream(now, h, id);
                    }
                }
                Event::Stream(StreamEvent::Writable { id }) if Some(id) == c.path.control => {
                    c.path.flush_control();
                }
                Event::DatagramReceived => self.read_datagrams(now, h),
                Event::Stream(_) | Event::HandshakeDataReady | Event::DatagramsUnblocked => {}
            }
        }
        if let Some(c) = self.paths.get_mut(h) {
            if c.path.conn.is_drained() {
                c.path.drained = true;
            }
        }
    }

    pub(super) fn read_control(&mut self, now: Instant, h: ConnectionHandle) {
        self.paths.read_control(h);
        while let Some(item) = self.paths.next_control(h) {
            match item {
                ControlItem::Frame(frame) => {
                    self.on_control(now, h, frame);
                    // A frame that closed the path ends the reading of its stream.
                    if self
                        .paths
                        .get(h)
                        .is_none_or(|c| c.role.state == PathState::Closed)
                    {
                        return;
                    }
                }
                ControlItem::Malformed => {
                    // A frame that does not decode or that the reader refused (a bad header,
                    // or one announcing more than a control frame may be), or the control
                    // stream ended or was reset: counted like the server counts it, so a
                    // peer's framing errors show in the counters.
                    self.counters.malformed_control += 1;
                    self.close_conn(now, h, codes::PROTOCOL_VIOLATION);
                    return;
                }
            }
        }
    }

    pub(super) fn on_control(&mut self, now: Instant, h: ConnectionHandle, frame: ControlFrame) {
        let now_us = self.clock.micros(now);
        let Some(c) = self.paths.get_mut(h) else {
            return;
        };
        // Address advertisements are accepted on any path in any state (they come from
        // the server over TLS); what they say is applied only if newer, never a violation.
        let (update, before) = match frame {
            ControlFrame::AddAddress(a) => {
                let before = self.addr_book.get(a.address_id);
                (Some(self.addr_book.add(&a)), before)
            }
            ControlFrame::RemoveAddress(r) => {
                let before = self.addr_book.get(r.address_id);
                (Some(self.addr_book.remove(&r)), before)
            }
            _ => (None, None),
        };
        if let Some(update) = update {
            match update {
                AddrUpdate::Added(id, addr) => {
                    self.events
                        .push_back(ClientEvent::AddressAdded { id, addr });
                    // The id moved to another address: the old one is withdrawn.
                    if let Some(old) = before.filter(|&old| old != addr) {
                        self.address_withdrawn(now, old);
                    }
                    self.address_readvertised(now, addr);
                    self.follow_adverts(now);
                }
                AddrUpdate::Removed(id) => {
                    self.events.push_back(ClientEvent::AddressRemoved { id });
                    if let Some(old) = before {
                        self.address_withdrawn(now, old);
                    }
                    self.follow_adverts(now);
                }
                AddrUpdate::Unchanged => {}
                AddrUpdate::Stale => self.counters.stale_address_updates += 1,
            }
            return;
        }
        match (c.role.state, frame) {
            (PathState::Hello, ControlFrame::Session(s)) => {
                // The join key comes from the connection that carried HELLO, whichever slot
                // it is: the server derives it from the same connection.
                let mut secret = [0u8; 32];
                if c.path
                    .conn
                    .crypto_session()
                    .export_keying_material(&mut secret, JOIN_KEY_LABEL, &s.token)
                    .is_err()
                {
                    self.close_conn(now, h, codes::PROTOCOL_VIOLATION);
                    return;
                }
                c.role.state = PathState::Member(s.path_id);
                let slot = c.role.slot;
                self.coupling.attach(&c.path.gauges, 0, slot);
                if !self.config.shared_clock {
                    // local = sender + offset; the SESSION frame took about half an RTT.
                    let owd = c.path.conn.rtt().as_micros() as i64 / 2;
                    let offset = now_us as i64 - (s.server_time_us as i64 + owd);
                    self.receiver.set_clock_offset(offset);
                }
                self.receiver
                    .set_path_rtt(s.path_id, c.path.conn.rtt().as_micros() as u32);
                self.token = Some(s.token);
                self.join_key = Some(JoinKey::from_exporter(&secret));
                self.start_deadline = None;
                self.events.push_back(ClientEvent::SessionEstablished);
                self.events.push_back(ClientEvent::PathJoined {
                    slot,
                    id: s.path_id,
                });
                self.apply_path_usage();
                // Paths whose handshake finished while HELLO was outstanding join now; the
                // others join when theirs completes.
                for w in self.waiting_conns() {
                    self.send_join(w);
                }
                if self.config.camp.routed_joins {
                    self.connect_joiners(now);
                }
            }
            (PathState::Joining, ControlFrame::JoinOk(ok)) => {
                c.role.state = PathState::Member(ok.path_id);
                let slot = c.role.slot;
                self.reconnect_attempts[slot] = 0;
                self.coupling.attach(&c.path.gauges, 0, slot);
                self.receiver
                    .set_path_rtt(ok.path_id, c.path.conn.rtt().as_micros() as u32);
                self.events.push_back(ClientEvent::PathJoined {
                    slot,
                    id: ok.path_id,
                });
                self.apply_path_usage();
            }
            (PathState::Member(_), ControlFrame::Rtt(r)) => {
                self.receiver.set_path_rtt(r.path_id, r.smoothed_us);
            }
            (PathState::Member(_), ControlFrame::PathStatus(ps)) => {
                for c in self.paths.entries_mut() {
                    if c.role.state == PathState::Member(ps.path_id)
                        && ps.status_seq > c.role.status_seq
                    {
                        c.role.status_seq = ps.status_seq;
                        c.role.status = ps.status;
                        c.role.precedence = ps.precedence;
                        self.coupling
                            .set_active(&c.path.gauges, ps.status == PathStatus::Available);
                    }
                }
            }
            (PathState::Member(_), ControlFrame::Abandon(a)) => {
                let target = self
                    .paths
                    .iter()
                    .find(|(_, c)| c.role.state == PathState::Member(a.path_id))
                    .map(|(h, _)| h);
                if let Some(t) = target {
                    if let Some(slot) = self.paths.get(t).map(|c| c.role.slot) {
                        self.server_abandoned[slot] = true;
                        self.reconnect_at[slot] = None;
                    }
                    self.close_conn(now, t, codes::ABANDONED);
                }
            }
            _ => {
                self.counters.malformed_control += 1;
                self.close_conn(now, h, codes::PROTOCOL_VIOLATION);
            }
        }
    }
}
