//! The path endpoint both roles are built on. [`Server`](crate::server::Server) and
//! [`Client`](crate::client::Client) are roles over one [`PathEndpoint`]: quinn's endpoint,
//! a slab of path connections indexed by quinn's handle, datagram dispatch, stateless
//! responses, the ready list that transmit walks, the list of connections whose deadline
//! may have moved, and the loop that turns a control stream into control frames.
//!
//! What a role adds is what a path *means* to it (`R`: the server's admission state, the
//! client's slot and session state) and how it reacts to events and frames.
//!
//! Touching: every call that may change a connection's quinn state (a datagram for it, a
//! write to it, a timer, a close) must [`touch`](PathEndpoint::touch) it. A touched
//! connection is on the ready list until a transmit finds it has nothing to send, and on
//! the dirty list until its role recomputes its deadline. Transmit therefore costs nothing
//! for idle connections.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use quinn_proto::{ConnectionHandle, DatagramEvent, EcnCodepoint, Event};

use crate::Transmit;
use crate::conn::{PathConn, RxBuffer};
use crate::control::ControlFrame;

/// One path connection and what its role keeps about it.
pub(crate) struct PathEntry<R> {
    /// The connection and CAMP's per-path plumbing.
    pub path: PathConn,
    /// The role's state of this path.
    pub role: R,
    /// On the dirty list: its deadline may have changed.
    timer_dirty: bool,
    /// On the ready list: may have something to send.
    ready: bool,
    /// The control stream failed while frames read before the failure were still queued
    /// (reported by [`PathEndpoint::next_control`] once they are consumed).
    control_failed: bool,
}

/// What a received datagram turned out to be. Moved out at once, never stored: boxing the
/// large variant would allocate per new connection for nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Dispatch {
    /// It belongs to this connection, which has taken it (process its events now).
    Conn(ConnectionHandle),
    /// The first datagram of a connection the role may accept or refuse.
    New(quinn_proto::Incoming),
    /// quinn answered it statelessly (version negotiation, stateless reset): the answer,
    /// for the role to queue with [`PathEndpoint::queue_response`] or drop.
    Response(quinn_proto::Transmit, Vec<u8>),
    /// quinn dropped it.
    Unhandled,
}

/// One step of reading a control stream. Moved out at once, never stored: boxing would
/// allocate per frame.
#[allow(clippy::large_enum_variant)]
pub(crate) enum ControlItem {
    /// A well-formed control frame.
    Frame(ControlFrame),
    /// A frame that does not decode, DATA on the control stream, a frame header the reader
    /// refused, or the stream ended or was reset: a protocol violation.
    Malformed,
}

/// quinn's endpoint plus the path connections of one role.
pub(crate) struct PathEndpoint<R> {
    quinn: quinn_proto::Endpoint,
    conns: Vec<Option<PathEntry<R>>>,
    ready: VecDeque<ConnectionHandle>,
    dirty: Vec<ConnectionHandle>,
    responses: VecDeque<(Transmit, Vec<u8>)>,
    rx: RxBuffer,
    /// Connections a transmit asked for a datagram (work counter).
    transmit_visits: u64,
}

impl<R> PathEndpoint<R> {
    pub fn new(quinn: quinn_proto::Endpoint) -> Self {
        Self {
            quinn,
            conns: Vec::new(),
            ready: VecDeque::new(),
            dirty: Vec::new(),
            responses: VecDeque::new(),
            rx: RxBuffer::default(),
            transmit_visits: 0,
        }
    }

    /// quinn's endpoint (to accept, refuse or connect).
    pub fn quinn(&mut self) -> &mut quinn_proto::Endpoint {
        &mut self.quinn
    }

    pub fn get(&self, h: ConnectionHandle) -> Option<&PathEntry<R>> {
        self.conns.get(h.0)?.as_ref()
    }

    pub fn get_mut(&mut self, h: ConnectionHandle) -> Option<&mut PathEntry<R>> {
        self.conns.get_mut(h.0)?.as_mut()
    }

    /// Stores the connection quinn created under handle `h` (touched: it has a handshake to
    /// send). A previous entry under the same handle (quinn reuses the handles of drained
    /// connections) is replaced.
    pub fn insert(&mut self, h: ConnectionHandle, path: PathConn, role: R) {
        if self.conns.len() <= h.0 {
            self.conns.resize_with(h.0 + 1, || None);
        }
        self.conns[h.0] = Some(PathEntry {
            path,
            role,
            timer_dirty: false,
            ready: false,
            control_failed: false,
        });
        self.touch(h);
    }

    /// Takes a connection out (it drained). Stale ready and dirty entries are skipped later.
    pub fn remove(&mut self, h: ConnectionHandle) -> Option<PathEntry<R>> {
        self.conns.get_mut(h.0)?.take()
    }

    /// Handle slots allocated (the most connections held at once).
    pub fn slots(&self) -> usize {
        self.conns.len()
    }

    /// Every connection.
    pub fn entries(&self) -> impl Iterator<Item = &PathEntry<R>> {
        self.conns.iter().flatten()
    }

    /// Every connection, mutably.
    pub fn entries_mut(&mut self) -> impl Iterator<Item = &mut PathEntry<R>> {
        self.conns.iter_mut().flatten()
    }

    /// Every connection, with its handle.
    pub fn iter(&self) -> impl Iterator<Item = (ConnectionHandle, &PathEntry<R>)> {
        self.conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((ConnectionHandle(i), c.as_ref()?)))
    }

    /// Every connection, with its handle, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (ConnectionHandle, &mut PathEntry<R>)> {
        self.conns
            .iter_mut()
            .enumerate()
            .filter_map(|(i, c)| Some((ConnectionHandle(i), c.as_mut()?)))
    }

    /// The handles of every connection (a copy, for loops that call back into the role).
    pub fn handles(&self) -> impl Iterator<Item = ConnectionHandle> + use<R> {
        let n = self.conns.len();
        (0..n).map(ConnectionHandle)
    }

    /// Marks a connection's deadline for recomputation and puts it on the ready list.
    pub fn touch(&mut self, h: ConnectionHandle) {
        let Some(c) = self.conns.get_mut(h.0).and_then(Option::as_mut) else {
            return;
        };
        if !c.timer_dirty {
            c.timer_dirty = true;
            self.dirty.push(h);
        }
        if !c.ready {
            c.ready = true;
            self.ready.push_back(h);
        }
    }

    /// Touches every connection (a role with a handful of paths, after a call that may have
    /// changed any of them).
    pub fn touch_all(&mut self) {
        for h in self.handles() {
            self.touch(h);
        }
    }

    /// Next connection whose deadline may have changed since it was last taken here.
    pub fn pop_dirty(&mut self) -> Option<(ConnectionHandle, &mut PathEntry<R>)> {
        loop {
            let h = self.dirty.pop()?;
            let Some(c) = self.conns.get_mut(h.0).and_then(Option::as_mut) else {
                continue;
            };
            if !c.timer_dirty {
                continue;
            }
            c.timer_dirty = false;
            // Reborrow for the caller (the loop above only looks).
            return self.conns[h.0].as_mut().map(|c| (h, c));
        }
    }

    /// Connections a transmit has asked for a datagram so far.
    pub fn transmit_visits(&self) -> u64 {
        self.transmit_visits
    }

    /// Feeds one received datagram to quinn and says where it went.
    pub fn handle(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        ecn: Option<EcnCodepoint>,
        data: &[u8],
    ) -> Dispatch {
        let packet = self.rx.packet(data);
        let mut buf = Vec::new();
        match self
            .quinn
            .handle(now, remote, Some(local.ip()), ecn, packet, &mut buf)
        {
            Some(DatagramEvent::ConnectionEvent(h, ev)) => match self.get_mut(h) {
                Some(c) => {
                    c.path.conn.handle_event(ev);
                    self.touch(h);
                    Dispatch::Conn(h)
                }
                None => Dispatch::Unhandled,
            },
            Some(DatagramEvent::NewConnection(incoming)) => Dispatch::New(incoming),
            Some(DatagramEvent::Response(t)) => Dispatch::Response(t, buf),
            None => Dispatch::Unhandled,
        }
    }

    /// Queues a datagram quinn wrote outside any connection (a refusal, a retry).
    pub fn queue_response(
        &mut self,
        t: quinn_proto::Transmit,
        buf: Vec<u8>,
        source_for: impl FnOnce(Option<IpAddr>) -> SocketAddr,
    ) {
        self.responses.push_back((
            Transmit {
                source: source_for(t.src_ip),
                destination: t.destination,
                ecn: t.ecn,
                size: t.size,
                segment_size: t.segment_size,
            },
            buf,
        ));
    }

    /// Exchanges endpoint events between connection `h` and quinn's endpoint, then returns
    /// the connection's next application event.
    pub fn next_event(&mut self, h: ConnectionHandle) -> Option<Event> {
        let c = self.conns.get_mut(h.0)?.as_mut()?;
        c.path.next_event(&mut self.quinn, h)
    }

    /// Reads whatever arrived on `h`'s control stream into its frame reader; the frames
    /// then come out of [`next_control`](Self::next_control).
    pub fn read_control(&mut self, h: ConnectionHandle) {
        if let Some(c) = self.get_mut(h) {
            if !c.path.read_control() {
                c.control_failed = true;
            }
        }
    }

    /// Next control frame read on `h`, or [`ControlItem::Malformed`] (once the frames
    /// before a stream failure are consumed). `None` when nothing more is buffered.
    pub fn next_control(&mut self, h: ConnectionHandle) -> Option<ControlItem> {
        let c = self.get_mut(h)?;
        match c.path.reader.next_frame() {
            Some(Ok(f)) => Some(match ControlFrame::from_frame(&f) {
                Some(frame) => ControlItem::Frame(frame),
                None => ControlItem::Malformed,
            }),
            Some(Err(_)) => Some(ControlItem::Malformed),
            None if c.control_failed => {
                c.control_failed = false;
                Some(ControlItem::Malformed)
            }
            None => None,
        }
    }

    /// Next datagrams to send: a queued stateless response first, then the ready
    /// connections in the order they were touched, each until it has nothing more.
    /// Returns the connection the datagrams belong to (`None` for a response).
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<(Option<ConnectionHandle>, Transmit)> {
        if let Some((t, data)) = self.responses.pop_front() {
            buf.clear();
            buf.extend_from_slice(&data[..t.size]);
            return Some((None, t));
        }
        // Only connections touched since they last had nothing to send: quinn's state
        // changes only through calls that touch, so the others have none.
        while let Some(&h) = self.ready.front() {
            let Some(c) = self.conns[h.0].as_mut().filter(|c| c.ready) else {
                // Gone, or a duplicate entry left by a reused handle.
                self.ready.pop_front();
                continue;
            };
            self.transmit_visits += 1;
            buf.clear();
            // Whether quinn sends or arms a pacing timer instead, its timers moved.
            if !c.timer_dirty {
                c.timer_dirty = true;
                self.dirty.push(h);
            }
            if let Some(t) = c.path.conn.poll_transmit(now, max_datagrams.max(1), buf) {
                // Stays at the front until drained.
                let t = Transmit {
                    source: c.path.local,
                    destination: t.destination,
                    ecn: t.ecn,
                    size: t.size,
                    segment_size: t.segment_size,
                };
                return Some((Some(h), t));
            }
            // quinn had the chance to send and sent nothing while the window has room:
            // nothing of ours is waiting inside it.
            let g = c.path.gauges.snapshot();
            if g.unsent > 0 && g.in_flight + g.mtu.max(1200) <= g.cwnd {
                c.path.gauges.clear_unsent();
            }
            c.ready = false;
            self.ready.pop_front();
        }
        None
    }
}
