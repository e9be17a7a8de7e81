//! Several engines in one campd: the threads, the ingest router, and the mapping between
//! each engine's session ids and the control plane's.

use super::*;

/// What every engine of one campd shares.
pub(super) struct Shared<'a> {
    pub(super) settings: &'a Settings,
    pub(super) crypto: Arc<QuicServerConfig>,
    pub(super) choice: SchedulerChoice,
}

/// Where an engine's units come from.
pub(super) enum Units<'a> {
    /// The synthetic workload.
    Synthetic,
    /// The ingest socket itself (one engine: it closes the socket when it drains).
    Ingest(&'a IngestServer),
    /// Units the router sent this engine (several engines).
    Routed(Receiver<IngestUnit>),
}

/// No session open (for [`Router`]'s view of an engine's lowest session).
pub(super) const NO_SESSION: u64 = u64::MAX;

/// Several engines, one thread each; this thread watches `should_stop`, hands each signal
/// to every engine, and routes ingested units. Returns the engines' reports summed.
pub(super) fn run_engines(
    shared: &Shared<'_>,
    ios: Vec<AnyIo>,
    ctls: Vec<camp_control::Engine>,
    ingest: Option<&IngestServer>,
    should_stop: &mut dyn FnMut() -> bool,
) -> Result<DaemonReport, DaemonError> {
    let k = ios.len();
    // Signals seen so far: each engine drains on the first and stops on the second.
    let signals = AtomicU32::new(0);
    let lowest: Vec<AtomicU64> = (0..k).map(|_| AtomicU64::new(NO_SESSION)).collect();
    let (routes, inboxes): (Vec<_>, Vec<_>) = (0..k)
        .map(|_| {
            let (tx, rx) = sync_channel::<IngestUnit>(crate::ingest::QUEUE);
            (tx, Some(rx))
        })
        .unzip();
    std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(k);
        let mut spawn_error = None;
        for (i, ((io, ctl), inbox)) in ios.into_iter().zip(ctls).zip(inboxes).enumerate() {
            let (signals, lowest) = (&signals, &lowest[i]);
            let inbox = inbox.filter(|_| ingest.is_some());
            let spawned = std::thread::Builder::new()
                .name(format!("campd-engine-{i}"))
                .spawn_scoped(scope, move || {
                    let mut seen = 0;
                    let mut stop = || {
                        let n = signals.load(Ordering::Acquire);
                        let new = n > seen;
                        seen = n;
                        new
                    };
                    let units = inbox.map_or(Units::Synthetic, Units::Routed);
                    run_engine(shared, i, io, ctl, units, &mut stop, Some(lowest))
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    spawn_error = Some(DaemonError::Spawn(e));
                    break;
                }
            }
        }
        if spawn_error.is_some() {
            // Stop the engines already running, without draining.
            signals.store(2, Ordering::Release);
        }
        let mut router = ingest.map(|i| Router {
            units: i.units(),
            to: routes,
            lowest: &lowest,
            held: None,
            unrouted: 0,
        });
        while !handles.iter().all(|h| h.is_finished()) {
            match &mut router {
                Some(r) if signals.load(Ordering::Relaxed) == 0 => r.route(STOP_CHECK_EVERY),
                _ => std::thread::sleep(STOP_CHECK_EVERY),
            }
            if should_stop() {
                if signals.fetch_add(1, Ordering::AcqRel) == 0
                    && let Some(i) = ingest
                {
                    i.close();
                }
            } else if signals.load(Ordering::Relaxed) == 0
                && handles.iter().any(|h| h.is_finished())
            {
                // An engine ended on its own (an error): the others stop too.
                tracing::warn!("campd: an engine stopped; stopping the others");
                signals.store(2, Ordering::Release);
            }
        }
        let mut total: Option<DaemonReport> = None;
        let mut first_error = spawn_error;
        for h in handles {
            match h.join() {
                Ok(Ok(r)) => match &mut total {
                    Some(t) => t.absorb(&r),
                    None => total = Some(r),
                },
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert(DaemonError::EnginePanicked);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let mut total = total.unwrap_or_default();
        total.engines = k as u64;
        if let Some(r) = router {
            total.ingest_unrouted += r.unrouted;
        }
        Ok(total)
    })
}

/// Routes ingested units to engines: a unit naming a session to the engine in the session's
/// id (`camp_control::fanin::session_engine`), a unit for "any session" to the engine holding
/// the lowest open session id (engine 0's, while it has one). While no engine has a session,
/// or the target's queue is full, the unit waits here and the ingest queue fills behind it
/// (its clients see `queue_full`).
pub(super) struct Router<'a> {
    pub(super) units: &'a Receiver<IngestUnit>,
    pub(super) to: Vec<SyncSender<IngestUnit>>,
    /// Each engine's lowest open session, control-plane id ([`NO_SESSION`]: none).
    pub(super) lowest: &'a [AtomicU64],
    pub(super) held: Option<IngestUnit>,
    /// Units naming an engine that does not exist, or an engine that has ended.
    pub(super) unrouted: u64,
}

impl Router<'_> {
    /// Routes what arrives within `wait`.
    pub(super) fn route(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let u = match self.held.take() {
                Some(u) => u,
                None => match self.units.recv_timeout(left) {
                    Ok(u) => u,
                    Err(_) => return,
                },
            };
            let target = match u.session {
                Some(g) => Some(usize::from(session_engine(g))),
                None => self
                    .lowest
                    .iter()
                    .map(|l| l.load(Ordering::Relaxed))
                    .enumerate()
                    .filter(|(_, l)| *l != NO_SESSION)
                    .min_by_key(|(_, l)| *l)
                    .map(|(e, _)| e),
            };
            let Some(target) = target else {
                // No session anywhere yet: wait for the first.
                self.held = Some(u);
                if left.is_zero() {
                    return;
                }
                std::thread::sleep(left.min(Duration::from_millis(1)));
                continue;
            };
            let Some(to) = self.to.get(target) else {
                self.unrouted += 1;
                continue;
            };
            match to.try_send(u) {
                Ok(()) => {}
                Err(TrySendError::Full(u)) => {
                    self.held = Some(u);
                    if left.is_zero() {
                        return;
                    }
                    std::thread::sleep(left.min(Duration::from_millis(1)));
                }
                Err(TrySendError::Disconnected(_)) => self.unrouted += 1,
            }
        }
    }
}

/// An engine's mapping between its server's session ids and the control plane's: with
/// several engines the engine rides in bits 24..32 (`camp_control::fanin`); with one, the
/// ids are the server's own.
#[derive(Clone, Copy, Debug)]
pub(super) struct EngineIds {
    pub(super) engine: u8,
    pub(super) several: bool,
}

impl EngineIds {
    /// The control plane's id of `s`.
    pub(super) fn global(self, s: SessionId) -> u64 {
        if self.several {
            global_session(self.engine, s.to_bits())
        } else {
            s.to_bits()
        }
    }

    /// The server's id of control-plane id `g` (which the router or the knob fan-out sent
    /// to this engine).
    pub(super) fn local(self, g: u64) -> SessionId {
        if self.several {
            SessionId::from_bits(local_session(g))
        } else {
            SessionId::from_bits(g)
        }
    }
}
