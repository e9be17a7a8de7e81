//! One path = one quinn-proto connection, plus the CAMP plumbing both roles share: the
//! control stream (outgoing frame buffer, incoming [`FrameReader`]), unit transmission on
//! per-unit streams or DATAGRAM frames, and the read-only [`PathView`] for the scheduler.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use camp_wire::{Frame, FrameReader, Micros, PathId, PathStatus};
use quinn_proto::{Connection, Dir, StreamId, VarInt};

use crate::cc::{GaugeSnapshot, PathGauges};
use crate::sched::PathView;

/// Largest control frame accepted on a control stream.
pub(crate) const MAX_CONTROL_FRAME: usize = camp_wire::MAX_CONTROL_FRAME;
/// Largest unit frame accepted on a unit stream.
pub(crate) const MAX_UNIT_FRAME: usize = camp_wire::FRAME_HEADER_LEN + camp_wire::MAX_BODY_LEN;

/// QUIC application error codes used by CAMP.
pub mod codes {
    /// Orderly close of a path or session.
    pub const NO_ERROR: u32 = 0;
    /// A path is abandoned (ABANDON frame or local decision).
    pub const ABANDONED: u32 = 0x1;
    /// The peer violated the CAMP protocol (malformed control frame, wrong frame order).
    pub const PROTOCOL_VIOLATION: u32 = 0x2;
    /// A unit stream was reset because the unit's deadline passed.
    pub const DEADLINE_EXPIRED: u32 = 0x3;
    /// A unit stream was refused by the receiver (malformed or oversized unit).
    pub const UNIT_REFUSED: u32 = 0x4;
}

/// The receive buffer datagrams are copied into before quinn takes them as `BytesMut`.
///
/// One allocation is reused: `split` hands quinn a view of the front, and `reserve` reclaims
/// the space once quinn has dropped every view of it, so steady state allocates nothing.
#[derive(Debug)]
pub(crate) struct RxBuffer(bytes::BytesMut);

impl Default for RxBuffer {
    fn default() -> Self {
        RxBuffer(bytes::BytesMut::with_capacity(64 * 1024))
    }
}

impl RxBuffer {
    /// Copies one datagram in and returns it as quinn wants it.
    pub fn packet(&mut self, data: &[u8]) -> bytes::BytesMut {
        self.0.reserve(data.len().max(2048));
        self.0.extend_from_slice(data);
        self.0.split()
    }
}

/// How a unit was handed to quinn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnitCarrier {
    /// On its own unidirectional stream.
    Stream(StreamId),
    /// In one DATAGRAM frame.
    Datagram,
}

/// Why a unit could not be handed to a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnitWriteError {
    /// No stream credit or the connection cannot take data now.
    NoRoom,
    /// The connection is closed.
    Closed,
}

/// A path connection.
pub(crate) struct PathConn {
    pub conn: Connection,
    pub gauges: Arc<PathGauges>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub control: Option<StreamId>,
    ctrl_out: Vec<u8>,
    pub reader: FrameReader,
    pub created_us: Micros,
    pub established_us: Option<Micros>,
    /// Start of the current period with data in flight (for stall detection).
    pub busy_since_us: Micros,
    pub suspect: bool,
    /// The floor of the stall limit, as last given to `update_suspect`, µs.
    min_suspect_us: u64,
    pub lost: bool,
    pub drained: bool,
    /// Droppable units on streams, with their absolute deadlines, oldest first.
    pub deadline_streams: VecDeque<(StreamId, Micros)>,
}

impl std::fmt::Debug for PathConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PathConn")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("established_us", &self.established_us)
            .field("suspect", &self.suspect)
            .field("lost", &self.lost)
            .finish_non_exhaustive()
    }
}

impl PathConn {
    pub fn new(
        conn: Connection,
        gauges: Arc<PathGauges>,
        local: SocketAddr,
        remote: SocketAddr,
        now_us: Micros,
    ) -> Self {
        Self {
            conn,
            gauges,
            local,
            remote,
            control: None,
            ctrl_out: Vec::with_capacity(1024),
            reader: FrameReader::new(MAX_CONTROL_FRAME),
            created_us: now_us,
            established_us: None,
            busy_since_us: 0,
            suspect: false,
            min_suspect_us: 150_000,
            lost: false,
            drained: false,
            deadline_streams: VecDeque::with_capacity(64),
        }
    }

    /// Exchanges endpoint events between the connection and its endpoint until quiet, then
    /// returns the connection's next application event, if any.
    pub fn next_event(
        &mut self,
        endpoint: &mut quinn_proto::Endpoint,
        h: quinn_proto::ConnectionHandle,
    ) -> Option<quinn_proto::Event> {
        loop {
            let mut progressed = false;
            while let Some(ev) = self.conn.poll_endpoint_events() {
                progressed = true;
                if let Some(cev) = endpoint.handle_event(h, ev) {
                    self.conn.handle_event(cev);
                }
            }
            if let Some(ev) = self.conn.poll() {
                return Some(ev);
            }
            if !progressed {
                return None;
            }
        }
    }

    /// Opens the control stream (client side).
    pub fn open_control(&mut self) -> bool {
        if self.control.is_none() {
            self.control = self.conn.streams().open(Dir::Bi);
        }
        self.control.is_some()
    }

    /// Encodes `frame` onto the control stream (buffered until quinn takes it), straight
    /// into the outgoing buffer: a scratch array of [`MAX_CONTROL_FRAME`] in every path
    /// cost 4 KiB a connection.
    pub fn send_control(&mut self, frame: &Frame<'_>) {
        let at = self.ctrl_out.len();
        // The peer's reader refuses larger control frames.
        self.ctrl_out
            .resize(at + frame.buffer_len().min(MAX_CONTROL_FRAME), 0);
        match frame.emit(&mut self.ctrl_out[at..]) {
            Ok(n) => self.ctrl_out.truncate(at + n),
            Err(e) => {
                self.ctrl_out.truncate(at);
                debug_assert!(false, "control frame does not encode: {e}");
            }
        }
        self.flush_control();
    }

    /// Queues already-encoded control bytes.
    pub fn send_control_bytes(&mut self, bytes: &[u8]) {
        self.ctrl_out.extend_from_slice(bytes);
        self.flush_control();
    }

    /// Hands buffered control bytes to quinn.
    pub fn flush_control(&mut self) {
        let Some(id) = self.control else { return };
        if self.ctrl_out.is_empty() {
            return;
        }
        match self.conn.send_stream(id).write(&self.ctrl_out) {
            Ok(n) => {
                self.ctrl_out.drain(..n);
            }
            Err(quinn_proto::WriteError::Blocked) => {}
            Err(_) => self.ctrl_out.clear(),
        }
    }

    /// Reads whatever arrived on the control stream into the frame reader. Returns false if
    /// the peer finished or reset the stream or sent more than a frame's worth of garbage.
    pub fn read_control(&mut self) -> bool {
        let Some(id) = self.control else { return true };
        let mut ok = true;
        let mut stream = self.conn.recv_stream(id);
        let Ok(mut chunks) = stream.read(true) else {
            return false;
        };
        loop {
            match chunks.next(MAX_CONTROL_FRAME) {
                Ok(Some(chunk)) => {
                    if self.reader.push(&chunk.bytes).is_err() {
                        ok = false;
                        break;
                    }
                }
                Ok(None) => {
                    ok = false;
                    break;
                }
                Err(quinn_proto::ReadError::Blocked) => break,
                Err(quinn_proto::ReadError::Reset(_)) => {
                    ok = false;
                    break;
                }
            }
        }
        let _ = chunks.finalize();
        ok
    }

    /// Whether quinn can take more unit data now (window room by our own accounting).
    pub fn has_room(&self, g: &GaugeSnapshot) -> bool {
        !self.lost && g.in_flight.saturating_add(g.unsent) < g.cwnd.max(1)
    }

    /// Hands one encoded unit frame to quinn: as a DATAGRAM if it is droppable and fits,
    /// otherwise on a new unidirectional stream that is finished right away.
    pub fn write_unit(
        &mut self,
        frame: &[u8],
        droppable: bool,
        priority: i32,
        now_us: Micros,
    ) -> Result<UnitCarrier, UnitWriteError> {
        if self.lost || self.conn.is_closed() {
            return Err(UnitWriteError::Closed);
        }
        let g = self.gauges.snapshot();
        if g.in_flight == 0 && g.unsent == 0 {
            self.busy_since_us = now_us;
        }
        if droppable
            && self
                .conn
                .datagrams()
                .max_size()
                .is_some_and(|max| frame.len() <= max)
            && self.conn.datagrams().send_buffer_space() >= frame.len()
        {
            // quinn takes datagrams as `Bytes`; the copy is quinn's API cost, not ours.
            if self
                .conn
                .datagrams()
                .send(Bytes::copy_from_slice(frame), false)
                .is_ok()
            {
                self.gauges.note_written(frame.len() as u64);
                return Ok(UnitCarrier::Datagram);
            }
        }
        let Some(id) = self.conn.streams().open(Dir::Uni) else {
            return Err(UnitWriteError::NoRoom);
        };
        let mut stream = self.conn.send_stream(id);
        let _ = stream.set_priority(priority);
        match stream.write(frame) {
            Ok(n) if n == frame.len() => {}
            _ => {
                // A partially written unit is worthless: abort it and let the caller retry
                // the whole unit (the send window is a safety net; this is rare).
                let _ = stream.reset(VarInt::from_u32(codes::UNIT_REFUSED));
                return Err(UnitWriteError::NoRoom);
            }
        }
        let _ = stream.finish();
        self.gauges.note_written(frame.len() as u64);
        Ok(UnitCarrier::Stream(id))
    }

    /// Resets unit streams whose deadline passed. Returns how many were reset.
    pub fn expire_streams(&mut self, now_us: Micros) -> usize {
        let mut n = 0;
        while let Some(&(id, deadline)) = self.deadline_streams.front() {
            if deadline > now_us {
                break;
            }
            self.deadline_streams.pop_front();
            // Err means the stream already completed (acknowledged): nothing to do.
            if self
                .conn
                .send_stream(id)
                .reset(VarInt::from_u32(codes::DEADLINE_EXPIRED))
                .is_ok()
            {
                n += 1;
            }
        }
        n
    }

    /// Earliest unit-stream deadline.
    pub fn next_stream_deadline(&self) -> Option<Micros> {
        self.deadline_streams.front().map(|&(_, d)| d)
    }

    /// Stall detection: data has been in flight with no acknowledgement for longer than a
    /// few PTOs. Updates and returns the suspect flag.
    pub fn update_suspect(&mut self, now_us: Micros, min_after_us: u64) -> bool {
        self.min_suspect_us = min_after_us;
        let g = self.gauges.snapshot();
        if g.in_flight == 0 && g.unsent == 0 {
            self.suspect = false;
            return false;
        }
        let limit = self.stall_limit_us(&g, min_after_us);
        let since = g.last_ack_us.max(self.busy_since_us);
        self.suspect = now_us.saturating_sub(since) > limit;
        self.suspect
    }

    /// Two PTOs (RFC 9002 §6.2.1 with a 25 ms max ack delay), at least `min_after_us`.
    fn stall_limit_us(&self, g: &GaugeSnapshot, min_after_us: u64) -> u64 {
        let srtt = self.conn.rtt().as_micros() as u64;
        let pto = srtt + 4 * g.rttvar_us.max(1_000) + 25_000;
        (2 * pto).max(min_after_us)
    }

    /// When [`update_suspect`](Self::update_suspect) would next change its answer.
    pub fn suspect_deadline(&self, min_after_us: u64) -> Option<Micros> {
        let g = self.gauges.snapshot();
        if self.suspect || (g.in_flight == 0 && g.unsent == 0) {
            return None;
        }
        let limit = self.stall_limit_us(&g, min_after_us);
        Some(g.last_ack_us.max(self.busy_since_us) + limit + 1)
    }

    /// The scheduler's view of this path.
    pub fn view(&self, slot: u8, id: PathId, status: PathStatus, precedence: u8) -> PathView {
        let g = self.gauges.snapshot();
        PathView {
            slot,
            id,
            status,
            precedence,
            usable: self.established_us.is_some() && !self.lost && !self.conn.is_closed(),
            suspect: self.suspect,
            has_room: self.has_room(&g),
            srtt_us: self.conn.rtt().as_micros() as u64,
            min_rtt_us: self.conn.min_rtt().as_micros() as u64,
            rttvar_us: g.rttvar_us,
            cwnd: g.cwnd,
            in_flight: g.in_flight,
            unsent: g.unsent,
            delivery_rate: g.delivery_rate,
            btl_bw: g.btl_bw,
            loss_ppm: g.loss_ppm,
            mtu: g.mtu,
            failover_us: self.stall_limit_us(&g, self.min_suspect_us),
        }
    }
}
