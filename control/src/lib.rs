//! Telemetry and control for the CAMP engine (campd).
//!
//! The engine's loop owns the writer ends ([`Engine`]): a [`publish::Publisher`] of
//! [`snapshot::EngineSnapshot`]s, a [`histo::HistoRecorder`] of per-modality latency and skew,
//! and a [`knobs::KnobReceiver`] it drains every iteration. None of them blocks or takes a
//! lock. The [`ControlThread`] holds the other ends ([`ControlEnds`]) and serves Prometheus
//! text over HTTP and JSON lines over a Unix socket (what `campctl` speaks).
#![forbid(unsafe_code)]

pub mod access;
pub mod convert;
pub mod fanin;
pub mod histo;
pub mod http;
pub mod knobs;
pub mod prometheus;
pub mod publish;
pub mod snapshot;
pub mod socket;
#[cfg(test)]
mod testing;

pub use camp_control_types::{modality, scheduler, summary};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{RecvTimeoutError, Sender};

use crate::socket::StatsReply;

pub use camp_control_types::{DEFAULT_HTTP, DEFAULT_SOCKET};

/// The engine's ends of the control channels; every method on them is lock-free.
#[derive(Debug)]
pub struct Engine {
    /// Publishes snapshots.
    pub snapshots: publish::Publisher,
    /// Receives knobs; drain once per loop iteration.
    pub knobs: knobs::KnobReceiver,
    /// Records latency and skew; call `poll_swap` once per loop iteration.
    pub histos: histo::HistoRecorder,
}

/// The control thread's ends, over one engine or several ([`fanin`]).
#[derive(Debug)]
pub struct ControlEnds {
    /// Reads (and merges) snapshots.
    pub snapshots: fanin::Snapshots,
    /// Sends knobs.
    pub knobs: fanin::Knobs,
    /// Collects (and sums) histogram intervals.
    pub histos: fanin::Histos,
}

/// Creates every channel between one engine and the control thread.
pub fn channels() -> (Engine, ControlEnds) {
    let (mut engines, ends) = channels_for(1);
    // channels_for(1) makes exactly one.
    (engines.remove(0), ends)
}

/// Creates the channels of `n` engines (at least one) and the control thread's ends over
/// all of them; engine i is the i-th.
pub fn channels_for(n: usize) -> (Vec<Engine>, ControlEnds) {
    let mut engines = Vec::new();
    let (mut subs, mut senders, mut collectors) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n.max(1) {
        let (p, s) = publish::channel();
        let (kt, kr) = knobs::channel();
        let (hr, hc) = histo::channel();
        engines.push(Engine {
            snapshots: p,
            knobs: kr,
            histos: hr,
        });
        subs.push(s);
        senders.push(kt);
        collectors.push(hc);
    }
    (
        engines,
        ControlEnds {
            snapshots: fanin::Snapshots::new(subs),
            knobs: fanin::Knobs::new(senders),
            histos: fanin::Histos::new(collectors),
        },
    )
}

/// What the socket and HTTP servers answer from.
#[derive(Debug)]
pub struct ControlState {
    snapshots: fanin::Snapshots,
    knobs: fanin::Knobs,
    interval: Duration,
    stats: Mutex<Option<StatsReply>>,
}

impl ControlState {
    /// State answering from `snapshots` and queueing knobs on `knobs`; `interval` is what
    /// `stats` replies report as the interval length. [`ControlThread::spawn`] builds its
    /// own; this is for embedding the request handler elsewhere (and for fuzzing it).
    pub fn new(
        snapshots: impl Into<fanin::Snapshots>,
        knobs: impl Into<fanin::Knobs>,
        interval: Duration,
    ) -> Self {
        ControlState {
            snapshots: snapshots.into(),
            knobs: knobs.into(),
            interval,
            stats: Mutex::new(None),
        }
    }

    /// Quantiles of the last finished interval.
    pub fn stats(&self) -> Option<StatsReply> {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn finish_interval(&self, summary: histo::IntervalSummary) {
        let mut s = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        let interval = s.map_or(1, |s| s.interval + 1);
        *s = Some(StatsReply {
            interval,
            interval_ms: u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX),
            summary,
        });
    }
}

#[cfg(test)]
pub(crate) fn test_state(interval: Duration) -> (Arc<ControlState>, Engine) {
    let (engine, ends) = channels();
    (
        Arc::new(ControlState::new(ends.snapshots, ends.knobs, interval)),
        engine,
    )
}

/// Where and how often the control thread serves.
#[derive(Clone, Debug)]
pub struct ControlConfig {
    /// Unix control socket (None: no socket).
    pub socket_path: Option<PathBuf>,
    /// Metrics address (None: no HTTP).
    pub http_addr: Option<SocketAddr>,
    /// Histogram interval.
    pub interval: Duration,
    /// Group of the control socket (None: campd's own); the mode is always 0660.
    pub socket_group: Option<u32>,
    /// Requests one control connection may make per second (burst: twice that); 0: no limit.
    pub requests_per_second: u32,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket_path: Some(PathBuf::from(DEFAULT_SOCKET)),
            // A constant, valid address.
            http_addr: Some(DEFAULT_HTTP.parse().expect("valid default address")),
            interval: Duration::from_secs(1),
            socket_group: None,
            requests_per_second: DEFAULT_REQUESTS_PER_SECOND,
        }
    }
}

/// Default of [`ControlConfig::requests_per_second`]: far above what `campctl stats --watch`
/// needs, low enough that one client cannot keep the control thread busy.
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 50;

/// Why the control thread could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The control socket failed.
    #[error(transparent)]
    Socket(#[from] socket::SocketError),
    /// The metrics server failed.
    #[error(transparent)]
    Http(#[from] http::HttpError),
    /// A thread could not be spawned.
    #[error("cannot spawn the control thread: {0}")]
    Spawn(std::io::Error),
    /// The interval is zero.
    #[error("the histogram interval must be positive")]
    ZeroInterval,
}

/// The control plane: histogram interval ticker, control socket and metrics server.
#[derive(Debug)]
pub struct ControlThread {
    state: Arc<ControlState>,
    socket: Option<socket::SocketServer>,
    http: Option<http::HttpServer>,
    ticker: Option<(Sender<()>, JoinHandle<()>)>,
}

impl ControlThread {
    /// Starts serving.
    pub fn spawn(config: ControlConfig, ends: ControlEnds) -> Result<Self, ControlError> {
        if config.interval.is_zero() {
            return Err(ControlError::ZeroInterval);
        }
        let state = Arc::new(ControlState::new(
            ends.snapshots,
            ends.knobs,
            config.interval,
        ));
        let (stop_tx, stop_rx) = crossbeam::channel::bounded::<()>(1);
        let mut collector = ends.histos;
        let st = Arc::clone(&state);
        let interval = config.interval;
        let ticker = std::thread::Builder::new()
            .name("camp-ctl-tick".into())
            .spawn(move || {
                collector.request_swap();
                loop {
                    match stop_rx.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    // If the engine has not swapped yet (it is stalled or not running), the
                    // request stays outstanding and this interval is folded into the next.
                    if let Some(h) = collector.collect() {
                        st.finish_interval(h.summary());
                        collector.recycle(h);
                    }
                    collector.request_swap();
                }
            })
            .map_err(ControlError::Spawn)?;
        let mut this = ControlThread {
            state: Arc::clone(&state),
            socket: None,
            http: None,
            ticker: Some((stop_tx, ticker)),
        };
        if let Some(path) = &config.socket_path {
            this.socket = Some(socket::SocketServer::spawn(
                path,
                Arc::clone(&state),
                socket::SocketAccess {
                    group: config.socket_group,
                    requests_per_second: config.requests_per_second,
                },
            )?);
        }
        if let Some(addr) = config.http_addr {
            this.http = Some(http::HttpServer::spawn(addr, state)?);
        }
        Ok(this)
    }

    /// Address the metrics server is bound to.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(http::HttpServer::addr)
    }

    /// Quantiles of the last finished interval.
    pub fn stats(&self) -> Option<StatsReply> {
        self.state.stats()
    }

    /// Stops every thread and removes the socket file.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(mut s) = self.socket.take() {
            s.stop();
        }
        if let Some(mut h) = self.http.take() {
            h.stop();
        }
        if let Some((tx, t)) = self.ticker.take() {
            let _ = tx.send(());
            let _ = t.join();
        }
    }
}

impl Drop for ControlThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use camp_proto::Modality;

    #[test]
    fn control_thread_turns_engine_samples_into_interval_stats() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("c.sock");
        let (mut engine, ends) = channels();
        let cfg = ControlConfig {
            socket_path: Some(sock.clone()),
            http_addr: Some("127.0.0.1:0".parse().unwrap()),
            interval: Duration::from_millis(20),
            ..ControlConfig::default()
        };
        let ctl = ControlThread::spawn(cfg, ends).unwrap();
        assert!(sock.exists());
        assert!(ctl.http_addr().is_some_and(|a| a.port() != 0));
        // A fake engine loop: record, poll for swaps, until an interval with samples shows.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let stats = loop {
            assert!(std::time::Instant::now() < deadline, "no interval finished");
            engine.histos.record_latency(Modality::Text, 5_000);
            engine.histos.record_skew(700);
            engine.histos.poll_swap();
            if let Some(s) = ctl.stats().filter(|s| s.summary.skew.count > 0) {
                break s;
            }
            std::thread::yield_now();
        };
        assert_eq!(stats.interval_ms, 20);
        assert!((4_990..=5_010).contains(&stats.summary.latency[0].p50_us));
        assert_eq!(stats.summary.latency[1].count, 0);
        ctl.stop();
        assert!(!sock.exists());
    }

    #[test]
    fn zero_interval_is_refused() {
        let (_e, ends) = channels();
        let cfg = ControlConfig {
            socket_path: None,
            http_addr: None,
            interval: Duration::ZERO,
            ..ControlConfig::default()
        };
        assert!(matches!(
            ControlThread::spawn(cfg, ends),
            Err(ControlError::ZeroInterval)
        ));
    }
}
