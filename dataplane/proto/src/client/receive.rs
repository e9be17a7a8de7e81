//! Units in and signals out: unit streams and datagrams into the receiver, and the ACKs
//! and FEEDBACK it asks for back to the server.

use super::*;

impl Client {
    pub(super) fn read_unit_stream(&mut self, now: Instant, h: ConnectionHandle, id: StreamId) {
        let Some(c) = self.paths.get_mut(h) else {
            return;
        };
        if !c.role.units.is_open(id) {
            return;
        }
        let mut finished = false;
        let mut reset = false;
        let mut refused = None;
        // A unit whose whole frame comes in the first chunk read (the common case: units
        // are small and quinn reads in order) is kept as quinn's own buffer and decoded
        // from it: the receiver's copy into its pool is then the only one. Any other unit
        // is gathered into a pooled buffer first.
        let mut held: Option<bytes::Bytes> = None;
        let fresh = c.role.units.received(id) == Some(0);
        let mut stream = c.path.conn.recv_stream(id);
        match stream.read(true) {
            Ok(mut chunks) => {
                loop {
                    match chunks.next(MAX_UNIT_FRAME) {
                        Ok(Some(chunk)) => {
                            if fresh && held.is_none() && chunk.offset == 0 {
                                held = Some(chunk.bytes);
                                continue;
                            }
                            let earlier = held.take();
                            let pushed = earlier
                                .map_or(Ok(()), |b| c.role.units.push(id, 0, &b))
                                .and_then(|()| c.role.units.push(id, chunk.offset, &chunk.bytes));
                            if let Err(e) = pushed {
                                refused = Some(e);
                                break;
                            }
                        }
                        Ok(None) => {
                            finished = true;
                            break;
                        }
                        Err(quinn_proto::ReadError::Blocked) => break,
                        Err(quinn_proto::ReadError::Reset(_)) => {
                            reset = true;
                            break;
                        }
                    }
                }
                let _ = chunks.finalize();
            }
            Err(_) => reset = true,
        }
        if refused.is_none() && !finished && !reset {
            // More of this unit is to come: keep what arrived.
            if let Some(b) = held.take() {
                if let Err(e) = c.role.units.push(id, 0, &b) {
                    refused = Some(e);
                }
            }
        }
        if let Some(e) = refused {
            // `push` dropped the stream already.
            let _ = c
                .path
                .conn
                .recv_stream(id)
                .stop(VarInt::from_u32(codes::UNIT_REFUSED));
            match e {
                ChunkError::Oversized { .. } => self.counters.oversized_units += 1,
                // quinn reads in order, so neither happens; counted rather than assumed.
                ChunkError::OutOfOrder { .. } | ChunkError::NotOpen => {
                    self.counters.malformed_units += 1;
                }
            }
            return;
        }
        if reset {
            c.role.units.drop_stream(id);
            self.counters.reset_units += 1;
            return;
        }
        if !finished {
            return;
        }
        let path = c.role.unit_path_id();
        if let Some(b) = held {
            c.role.units.drop_stream(id);
            self.counters.units_in_one_chunk += 1;
            self.deliver(now, path, &b);
        } else if let Some(buf) = c.role.units.finish(id) {
            self.deliver(now, path, &buf);
            if let Some(c) = self.paths.get_mut(h) {
                c.role.units.recycle(buf);
            }
        }
    }

    pub(super) fn read_datagrams(&mut self, now: Instant, h: ConnectionHandle) {
        loop {
            let Some(c) = self.paths.get_mut(h) else {
                return;
            };
            let path = c.role.unit_path_id();
            let Some(d) = c.path.conn.datagrams().recv() else {
                return;
            };
            self.deliver(now, path, &d);
        }
    }

    /// Decodes one unit frame and hands it to the receiver.
    pub(super) fn deliver(&mut self, now: Instant, path: PathId, bytes: &[u8]) {
        let now_us = self.clock.micros(now);
        match decode_unit(bytes) {
            Ok((meta, payload)) => {
                if self.receiver.on_unit(now_us, path, meta, payload).is_err() {
                    self.counters.refused_units += 1;
                }
            }
            Err(_) => self.counters.malformed_units += 1,
        }
    }

    /// Sends what the receiver wants sent: ACKs and FEEDBACK, on the member path with the
    /// lowest RTT that is not suspected failed.
    pub(super) fn after_input(&mut self, now: Instant) {
        let now_us = self.clock.micros(now);
        let min_suspect = self.config.camp.min_suspect_after.as_micros() as u64;
        let best = self
            .paths
            .iter_mut()
            .filter_map(|(h, c)| {
                if !matches!(c.role.state, PathState::Member(_)) || c.path.lost {
                    return None;
                }
                let suspect = c.path.update_suspect(now_us, min_suspect);
                Some((suspect, c.path.conn.rtt(), h.0))
            })
            .min()
            .map(|(_, _, i)| ConnectionHandle(i));
        let Some(best) = best else {
            // No path to carry them: a due ACK or FEEDBACK left pending would keep
            // `poll_timeout` in the past, and the caller would spin on it.
            while self.receiver.poll_ack(now_us).is_some() {
                self.counters.signals_dropped += 1;
            }
            if self.receiver.poll_feedback(now_us).is_some() {
                self.counters.signals_dropped += 1;
            }
            return;
        };
        while let Some(ack) = self.receiver.poll_ack(now_us) {
            let n = match camp_wire::emit_ack(
                ack.modality,
                ack.cumulative,
                ack.ranges,
                &mut self.ack_buf,
            ) {
                Ok(n) => n,
                Err(_) => break,
            };
            if let Some(c) = self.paths.get_mut(best) {
                c.path.send_control_bytes(&self.ack_buf[..n]);
                self.counters.acks_sent += 1;
            }
        }
        if let Some(fb) = self.receiver.poll_feedback(now_us) {
            let frame = Frame::Feedback(Feedback {
                interval_us: fb.interval_us,
                playout_delay_us: fb.playout_delay_us,
                buffer_occupancy_us: fb.buffer_occupancy_us,
                skew_mean_us: fb.skew_mean_us,
                skew_p95_us: fb.skew_p95_us,
                late_units: fb.late_units,
                lost_units: fb.lost_units,
            });
            if let Some(c) = self.paths.get_mut(best) {
                c.path.send_control(&frame);
                self.counters.feedback_sent += 1;
            }
        }
    }
}
