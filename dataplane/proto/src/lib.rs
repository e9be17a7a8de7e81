//! CAMP protocol core, sans-IO (draft-song-tsvwg-camp-00 §4).
//!
//! One quinn-proto connection per network path; the paths of one client are joined into a
//! CAMP session (subflow model, like MPTCP and MP-DCCP). The [`server`] owns the units the
//! application submits, asks a [`sched::Scheduler`] where each goes, keeps reliable units
//! until a CAMP ACK covers them and reinjects them when a path fails. The [`client`]
//! reassembles and reorders across paths, aligns the modalities in a playout buffer
//! (`camp-recv`) and feeds acknowledgements and alignment feedback back.
//!
//! Nothing here performs I/O or reads a clock: time comes in as `now: Instant` arguments
//! and leaves as [`poll_timeout`](server::Server::poll_timeout) deadlines; datagrams come in
//! through `handle_datagram` and leave through `poll_transmit`. The simulator, the kernel-UDP
//! shell and the AF_XDP shell all drive this same code.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub mod addr_book;
pub mod cc;
pub mod cid;
pub mod client;
pub mod config;
mod conn;
pub mod control;
mod driven;
pub mod edge;
mod endpoint;
pub mod join;
pub mod lia;
pub mod limits;
pub mod sched;
pub mod server;
pub mod store;
pub mod tls;
pub mod unit_log;
pub mod unit_rx;

pub use camp_wire::{Micros, Modality, PathId, PathStatus, Reliability};
pub use conn::codes;
pub use driven::Driven;
pub use quinn_proto::EcnCodepoint;

/// Maps `Instant`s to the session clock: microseconds since an epoch chosen by the driver.
///
/// Generation timestamps on the wire are session-clock microseconds of the sender. A
/// simulator gives both ends the same epoch, so sender and receiver clocks agree exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionClock {
    epoch: Instant,
}

impl SessionClock {
    /// A clock whose zero is `epoch`.
    pub fn new(epoch: Instant) -> Self {
        Self { epoch }
    }
    /// The zero instant.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }
    /// Microseconds since the epoch (0 before it).
    pub fn micros(&self, t: Instant) -> Micros {
        u64::try_from(t.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }
    /// The instant `us` microseconds after the epoch.
    pub fn instant(&self, us: Micros) -> Instant {
        self.epoch + Duration::from_micros(us)
    }
}

/// A datagram to send, written into the caller's buffer by `poll_transmit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Local address to send from (selects the NIC / path).
    pub source: SocketAddr,
    /// Destination address.
    pub destination: SocketAddr,
    /// ECN codepoint to set.
    pub ecn: Option<EcnCodepoint>,
    /// Bytes written to the buffer.
    pub size: usize,
    /// Segment size when the buffer holds several datagrams (GSO); `None` for one.
    pub segment_size: Option<usize>,
}
