//! The one interface every driver of a CAMP endpoint uses: the engine over real packet I/O
//! and the simulator over emulated links both run a [`Server`] or a [`Client`] through
//! [`Driven`], so a behaviour seen in the simulator is the behaviour of the same calls on
//! the wire.

use std::net::SocketAddr;
use std::time::Instant;

use quinn_proto::EcnCodepoint;

use crate::Transmit;
use crate::client::Client;
use crate::server::Server;

/// A sans-IO endpoint: datagrams in, datagrams out, timers. No system calls, no clock
/// reads: the driver says what time it is.
///
/// The driver's loop is: feed every received datagram, run [`handle_timeout`] when
/// [`poll_timeout`] is due, and drain [`poll_transmit`] until it returns `None`.
///
/// [`handle_timeout`]: Driven::handle_timeout
/// [`poll_timeout`]: Driven::poll_timeout
/// [`poll_transmit`]: Driven::poll_transmit
pub trait Driven {
    /// Feeds one received UDP datagram (`local`: the address it arrived at).
    fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        ecn: Option<EcnCodepoint>,
        data: &[u8],
    );
    /// Writes the next datagrams to send into `buf`: up to `max_datagrams` segments of
    /// one path, all but the last of [`Transmit::segment_size`] bytes (a GSO batch), or
    /// one datagram when `max_datagrams` is 1 or the path has no more.
    fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit>;
    /// When [`handle_timeout`](Driven::handle_timeout) must run next.
    fn poll_timeout(&mut self) -> Option<Instant>;
    /// Runs the timers due at `now`.
    fn handle_timeout(&mut self, now: Instant);
}

macro_rules! driven {
    ($t:ty) => {
        impl Driven for $t {
            fn handle_datagram(
                &mut self,
                now: Instant,
                local: SocketAddr,
                remote: SocketAddr,
                ecn: Option<EcnCodepoint>,
                data: &[u8],
            ) {
                <$t>::handle_datagram(self, now, local, remote, ecn, data);
            }
            fn poll_transmit(
                &mut self,
                now: Instant,
                max_datagrams: usize,
                buf: &mut Vec<u8>,
            ) -> Option<Transmit> {
                <$t>::poll_transmit(self, now, max_datagrams, buf)
            }
            fn poll_timeout(&mut self) -> Option<Instant> {
                <$t>::poll_timeout(self)
            }
            fn handle_timeout(&mut self, now: Instant) {
                <$t>::handle_timeout(self, now);
            }
        }
    };
}

driven!(Server);
driven!(Client);

/// An endpoint the caller keeps a handle on while a driver runs it (the simulator's
/// extra nodes, a benchmark that reads the server between steps): every call is
/// forwarded to the shared endpoint.
impl<T: Driven> Driven for std::rc::Rc<std::cell::RefCell<T>> {
    fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        ecn: Option<EcnCodepoint>,
        data: &[u8],
    ) {
        self.borrow_mut()
            .handle_datagram(now, local, remote, ecn, data);
    }
    fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        self.borrow_mut().poll_transmit(now, max_datagrams, buf)
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        self.borrow_mut().poll_timeout()
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.borrow_mut().handle_timeout(now);
    }
}
