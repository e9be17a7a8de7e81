//! The CAMP data-plane engine: one thread that drives a sans-IO CAMP endpoint
//! ([`Server`](camp_proto::server::Server) or [`Client`](camp_proto::client::Client)) over a [`PacketIo`] (kernel UDP or AF_XDP).
//!
//! The engine owns the loop and nothing else: datagrams in
//! ([`PacketIo::recv_batch`] → `handle_datagram`), timers
//! (`poll_timeout` → `handle_timeout`), datagrams out (`poll_transmit` →
//! [`PacketIo::send`], then [`PacketIo::flush`]), and the idle policy (spin or
//! block in [`PacketIo::wait`]). Application work (submitting units, draining
//! playout, reading events) runs in the `on_tick` callback of
//! [`Engine::run_until`], on the same thread, so the endpoint needs no lock.
//!
//! The steady state allocates nothing in this crate: one transmit buffer and
//! one parking buffer are allocated up front and reused. See `docs/engine.md`.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use camp_xdp::{Ecn, IoError, PacketIo, TxDatagram};

/// Most datagrams the engine asks the endpoint for per transmit (the kernel's
/// GSO limit is 64 segments).
pub const MAX_BATCH: usize = 64;
/// Bytes reserved per datagram of a batch: quinn-proto reserves
/// `max_datagrams * segment_size` up front, and a segment is at most one
/// Ethernet MTU here.
const TX_BYTES_PER_DATAGRAM: usize = 1500;
/// Smallest transmit buffer (a single datagram may be up to 64 KiB).
const TX_BUF_MIN: usize = 64 * 1024;

/// A sans-IO CAMP endpoint the engine can drive: a CAMP server or client (the
/// simulator drives the same trait, so both run the endpoint through the same calls).
pub use camp_proto::Driven;

/// Engine settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Never block: poll the I/O in a tight loop (lowest latency, one core at
    /// 100 %). Otherwise the loop blocks in [`PacketIo::wait`] until a
    /// datagram arrives, the endpoint's next timer, or `max_idle`.
    pub busy_poll: bool,
    /// Longest blocking wait, which bounds how late `on_tick` (application
    /// work such as releasing units) runs when nothing else happens.
    pub max_idle: Duration,
    /// Pin the thread running [`Engine::run_until`] to this CPU.
    pub core: Option<usize>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            busy_poll: false,
            max_idle: Duration::from_millis(5),
            core: None,
        }
    }
}

/// Errors of the engine loop.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Receiving, flushing or waiting failed: the I/O layer is unusable.
    #[error("packet I/O: {0}")]
    Io(#[source] IoError),
    /// The thread could not be pinned to the configured core.
    #[error("pinning the engine thread to CPU {core}: {reason}")]
    Affinity {
        /// The CPU asked for.
        core: usize,
        /// Why it failed.
        reason: &'static str,
    },
}

/// What the application callback of [`Engine::run_until`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Keep running.
    Continue,
    /// Keep running, and wake up by this time even if nothing arrives (for
    /// example when the next unit is to be released).
    WakeAt(Instant),
    /// Return from [`Engine::run_until`] now.
    Stop,
}

/// Why [`Engine::run_until`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// The deadline passed.
    Deadline,
    /// The callback returned [`Tick::Stop`].
    Stopped,
}

/// Engine counters (monotonic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineCounters {
    /// Loop iterations ([`Engine::step`] calls).
    pub steps: u64,
    /// Datagrams handed to the endpoint.
    pub rx_datagrams: u64,
    /// Transmits (single datagrams or GSO batches) accepted by the I/O layer.
    pub tx_transmits: u64,
    /// Datagrams in those transmits (segments of the batches).
    pub tx_datagrams: u64,
    /// Sends refused with [`IoError::WouldBlock`] (each retry counts).
    pub tx_would_block: u64,
    /// Transmits parked for the next iteration after a flush and a retry
    /// were refused too.
    pub tx_parked: u64,
    /// Transmits the I/O layer rejected for good (no route, no next hop,
    /// too large, OS error): dropped like a lost packet, which the endpoint
    /// recovers from as it would from a loss.
    pub tx_dropped: u64,
    /// Times the endpoint's timer fired.
    pub timeouts: u64,
    /// Blocking waits.
    pub waits: u64,
}

/// A transmit refused twice, waiting in [`Engine`]'s parking buffer.
#[derive(Debug, Clone, Copy)]
struct Parked {
    source: SocketAddr,
    destination: SocketAddr,
    ecn: Ecn,
    /// Bytes of the batch already accepted (a partial GSO send): only
    /// `offset..size` is offered again.
    offset: usize,
    size: usize,
    segment_size: Option<usize>,
}

/// Result of offering one transmit to the I/O layer.
enum Offer {
    /// Accepted, or rejected for good (counted in `tx_dropped`).
    Done,
    /// Refused for lack of space, after a flush and a retry; the first
    /// `sent` bytes (whole segments) were accepted and must not be offered again.
    Full {
        /// Bytes accepted before the refusal.
        sent: usize,
    },
}

/// The single-threaded data-plane loop over endpoint `N` and packet I/O `I`.
#[derive(Debug)]
pub struct Engine<N: Driven, I: PacketIo> {
    node: N,
    io: I,
    config: EngineConfig,
    /// Where `poll_transmit` writes; reused for every transmit.
    buf: Vec<u8>,
    /// Holds the one transmit the I/O layer refused (swapped with `buf`, so
    /// parking copies nothing and allocates nothing).
    parked_buf: Vec<u8>,
    parked: Option<Parked>,
    /// Datagrams asked of the endpoint per transmit:
    /// [`PacketIo::max_segments`], at most [`MAX_BATCH`].
    batch: usize,
    pinned: bool,
    counters: EngineCounters,
}

impl<N: Driven, I: PacketIo> Engine<N, I> {
    /// An engine driving `node` over `io`.
    pub fn new(node: N, io: I, config: EngineConfig) -> Self {
        let batch = io.max_segments().clamp(1, MAX_BATCH);
        let capacity = (batch * TX_BYTES_PER_DATAGRAM).max(TX_BUF_MIN);
        Self {
            node,
            io,
            config,
            buf: Vec::with_capacity(capacity),
            parked_buf: Vec::with_capacity(capacity),
            parked: None,
            batch,
            pinned: false,
            counters: EngineCounters::default(),
        }
    }

    /// The endpoint.
    pub fn node(&self) -> &N {
        &self.node
    }

    /// The endpoint, mutably (submit units, read events between steps).
    pub fn node_mut(&mut self) -> &mut N {
        &mut self.node
    }

    /// The packet I/O.
    pub fn io(&self) -> &I {
        &self.io
    }

    /// The packet I/O, mutably.
    pub fn io_mut(&mut self) -> &mut I {
        &mut self.io
    }

    /// Counters.
    pub fn counters(&self) -> EngineCounters {
        self.counters
    }

    /// The settings.
    pub fn config(&self) -> EngineConfig {
        self.config
    }

    /// Whether a transmit is parked, waiting for buffer space.
    pub fn has_parked(&self) -> bool {
        self.parked.is_some()
    }

    /// Datagrams asked of the endpoint per `poll_transmit`.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Takes the engine apart.
    pub fn into_parts(self) -> (N, I) {
        (self.node, self.io)
    }

    /// One iteration without waiting: receive everything ready, run due
    /// timers, send everything the endpoint has (until the I/O layer is
    /// full), flush. Returns the endpoint's next timer.
    pub fn step(&mut self, now: Instant) -> Result<Option<Instant>, EngineError> {
        self.counters.steps += 1;
        let node = &mut self.node;
        let mut rx = 0u64;
        self.io
            .recv_batch(&mut |d| {
                rx += 1;
                node.handle_datagram(now, d.local, d.remote, d.ecn.to_quinn(), d.payload);
            })
            .map_err(EngineError::Io)?;
        self.counters.rx_datagrams += rx;

        if self.node.poll_timeout().is_some_and(|t| t <= now) {
            self.counters.timeouts += 1;
            self.node.handle_timeout(now);
        }

        self.transmit(now)?;
        self.io.flush().map_err(EngineError::Io)?;
        Ok(self.node.poll_timeout())
    }

    /// Sends the parked transmit, then everything the endpoint has, until
    /// the I/O layer stays full after a flush.
    fn transmit(&mut self, now: Instant) -> Result<(), EngineError> {
        if let Some(p) = &mut self.parked {
            let tx = TxDatagram {
                local: p.source,
                remote: p.destination,
                ecn: p.ecn,
                payload: &self.parked_buf[p.offset..p.size],
                segment_size: p.segment_size,
            };
            match offer(&mut self.io, &tx, &mut self.counters)? {
                Offer::Done => self.parked = None,
                // Still full: keep what is left, and take nothing more from
                // the endpoint (it keeps its packets until there is room).
                Offer::Full { sent } => {
                    p.offset += sent;
                    return Ok(());
                }
            }
        }
        while let Some(t) = self.node.poll_transmit(now, self.batch, &mut self.buf) {
            let ecn = Ecn::from_quinn(t.ecn);
            let tx = TxDatagram {
                local: t.source,
                remote: t.destination,
                ecn,
                payload: &self.buf[..t.size],
                segment_size: t.segment_size,
            };
            if let Offer::Full { sent } = offer(&mut self.io, &tx, &mut self.counters)? {
                std::mem::swap(&mut self.buf, &mut self.parked_buf);
                self.parked = Some(Parked {
                    source: t.source,
                    destination: t.destination,
                    ecn,
                    offset: sent,
                    size: t.size,
                    segment_size: t.segment_size,
                });
                self.counters.tx_parked += 1;
                break;
            }
        }
        Ok(())
    }

    /// Pins the calling thread to the configured core (once).
    fn pin(&mut self) -> Result<(), EngineError> {
        if let (Some(core), false) = (self.config.core, self.pinned) {
            pin_current_thread(core)?;
            self.pinned = true;
        }
        Ok(())
    }

    /// Runs the loop until `deadline` or until `on_tick` returns
    /// [`Tick::Stop`]. `on_tick` runs before every iteration with the
    /// endpoint and the iteration's `now`.
    pub fn run_until(
        &mut self,
        deadline: Instant,
        mut on_tick: impl FnMut(&mut N, Instant) -> Tick,
    ) -> Result<RunEnd, EngineError> {
        self.run_until_io(deadline, |node, _, now| on_tick(node, now))
    }

    /// [`Engine::run_until`] whose `on_tick` also gets the packet I/O, for an application
    /// that changes it while running (a socket bound for a NIC added at run time). It runs
    /// between iterations, never while a batch is in flight.
    pub fn run_until_io(
        &mut self,
        deadline: Instant,
        mut on_tick: impl FnMut(&mut N, &mut I, Instant) -> Tick,
    ) -> Result<RunEnd, EngineError> {
        self.pin()?;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(RunEnd::Deadline);
            }
            let app_wake = match on_tick(&mut self.node, &mut self.io, now) {
                Tick::Stop => return Ok(RunEnd::Stopped),
                Tick::WakeAt(t) => Some(t),
                Tick::Continue => None,
            };
            let next_timer = self.step(now)?;
            if self.config.busy_poll || self.parked.is_some() || self.io.tx_backlog() > 0 {
                // A parked transmit, or frames the I/O layer still holds, go
                // out on the next pass: PacketIo has no "writable" readiness
                // to block on.
                continue;
            }
            let wake = [next_timer, app_wake, Some(deadline)]
                .into_iter()
                .flatten()
                .fold(now + self.config.max_idle, Instant::min);
            let timeout = wake.saturating_duration_since(Instant::now());
            if !timeout.is_zero() {
                self.counters.waits += 1;
                self.io.wait(timeout).map_err(EngineError::Io)?;
            }
        }
    }

    /// [`Engine::run_until`] for `duration` from now.
    pub fn run_for(
        &mut self,
        duration: Duration,
        on_tick: impl FnMut(&mut N, Instant) -> Tick,
    ) -> Result<RunEnd, EngineError> {
        self.run_until(Instant::now() + duration, on_tick)
    }
}

/// Offers `tx` to `io`: on [`IoError::WouldBlock`] (or a batch taken in
/// part, [`IoError::Partial`]), flushes and retries what is left once.
fn offer<I: PacketIo>(
    io: &mut I,
    tx: &TxDatagram<'_>,
    counters: &mut EngineCounters,
) -> Result<Offer, EngineError> {
    let mut tx = *tx;
    let mut sent = 0;
    for attempt in 0..2 {
        match io.send(&tx) {
            Ok(()) => {
                counters.tx_transmits += 1;
                counters.tx_datagrams += segments(&tx) as u64;
                return Ok(Offer::Done);
            }
            Err(e @ (IoError::WouldBlock | IoError::Partial { .. })) => {
                counters.tx_would_block += 1;
                if let IoError::Partial { sent: s } = e {
                    // Never more than was offered, so the slice below holds.
                    let s = s.min(tx.payload.len());
                    counters.tx_datagrams += segments(&TxDatagram {
                        payload: &tx.payload[..s],
                        ..tx
                    }) as u64;
                    sent += s;
                    tx.payload = &tx.payload[s..];
                }
                if attempt == 0 {
                    io.flush().map_err(EngineError::Io)?;
                }
            }
            Err(e) => {
                counters.tx_dropped += 1;
                tracing::debug!("dropping a datagram {} -> {}: {e}", tx.local, tx.remote);
                return Ok(Offer::Done);
            }
        }
    }
    Ok(Offer::Full { sent })
}

/// Datagrams `tx` stands for (0 for an empty remainder).
fn segments(tx: &TxDatagram<'_>) -> usize {
    match tx.segment_size.filter(|s| *s > 0) {
        Some(seg) => tx.payload.len().div_ceil(seg),
        None => 1,
    }
}

/// Pins the calling thread to CPU `core` (core_affinity).
pub fn pin_current_thread(core: usize) -> Result<(), EngineError> {
    let id = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.id == core)
        .ok_or(EngineError::Affinity {
            core,
            reason: "not among the CPUs this process may run on",
        })?;
    if core_affinity::set_for_current(id) {
        Ok(())
    } else {
        Err(EngineError::Affinity {
            core,
            reason: "the kernel refused the affinity mask",
        })
    }
}

#[cfg(test)]
mod tests;
