//! Several engines behind one control thread (`campd --engines K`).
//!
//! Each engine keeps its own lock-free ends ([`crate::Engine`]); the control thread holds one
//! [`Snapshots`], [`Knobs`] and [`Histos`] over all of them. Snapshots are merged on read
//! (counters summed, sessions and paths concatenated), knobs go to every engine except a
//! path's status, which goes only to the engine holding the session, and histogram intervals
//! are summed. With one engine every read and send passes straight through.
//!
//! Session ids stay unique across engines by carrying the engine in bits 24..32 of the
//! control plane's `u64` ([`global_session`]): generation in the high 32 bits as before,
//! engine in the top octet of the low 32, the session's slot index below it. Engine 0's ids
//! are therefore the server's own `SessionId::to_bits` (a slot index reaches 2^24 only with
//! more than 16 million sessions open at once in one engine, far past its memory).

use std::sync::{Arc, Mutex, PoisonError};

use crate::histo::{HistoCollector, IntervalHistograms};
use crate::knobs::{Knob, KnobError, KnobSender};
use crate::publish::Subscriber;
use crate::snapshot::{EdgeTotals, EngineSnapshot, ServerTotals};

/// First bit of the engine number in a control-plane session id.
pub const ENGINE_SHIFT: u32 = 24;
/// Bits of the slot index kept below the engine number.
const INDEX_MASK: u64 = (1 << ENGINE_SHIFT) - 1;
/// The engine octet's bits.
const ENGINE_MASK: u64 = 0xff << ENGINE_SHIFT;

/// The control plane's id of engine `engine`'s session `local` (`SessionId::to_bits`).
pub const fn global_session(engine: u8, local: u64) -> u64 {
    (local & !ENGINE_MASK) | ((engine as u64) << ENGINE_SHIFT)
}

/// The engine a control-plane session id names.
pub const fn session_engine(global: u64) -> u8 {
    ((global & ENGINE_MASK) >> ENGINE_SHIFT) as u8
}

/// The engine's own id (`SessionId::to_bits`) of a control-plane session id.
pub const fn local_session(global: u64) -> u64 {
    global & !ENGINE_MASK
}

/// Whether `local` maps to a control-plane id and back without loss (slot index < 2^24).
pub const fn maps_losslessly(local: u64) -> bool {
    local as u32 as u64 & !INDEX_MASK == 0
}

/// The newest snapshot of every engine, merged.
#[derive(Debug)]
pub struct Snapshots {
    parts: Vec<Subscriber>,
    /// The last merge and the sequence numbers it was made from.
    merged: Mutex<Option<(Vec<u64>, Arc<EngineSnapshot>)>>,
}

impl Snapshots {
    /// Reads `parts` (engine i = `parts[i]`).
    pub fn new(parts: Vec<Subscriber>) -> Self {
        Snapshots {
            parts,
            merged: Mutex::new(None),
        }
    }

    /// Engines behind this view.
    pub fn engines(&self) -> usize {
        self.parts.len()
    }

    /// The merged newest snapshots, or `None` before any engine published. With one engine,
    /// that engine's snapshot itself. Never goes back in sequence number (the merge's `seq`
    /// is the sum of the engines' own).
    pub fn latest(&self) -> Option<Arc<EngineSnapshot>> {
        if let [one] = self.parts.as_slice() {
            return one.latest();
        }
        let parts: Vec<Arc<EngineSnapshot>> =
            self.parts.iter().filter_map(Subscriber::latest).collect();
        if parts.is_empty() {
            return None;
        }
        let seqs: Vec<u64> = parts.iter().map(|p| p.seq).collect();
        let mut cache = self.merged.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((s, m)) = cache.as_ref()
            && *s == seqs
        {
            return Some(Arc::clone(m));
        }
        let m = Arc::new(merge(&parts));
        *cache = Some((seqs, Arc::clone(&m)));
        Some(m)
    }
}

impl From<Subscriber> for Snapshots {
    fn from(one: Subscriber) -> Self {
        Snapshots::new(vec![one])
    }
}

/// One snapshot of several engines': counters summed, sessions and paths of all (sorted by
/// id), the settings and NIC counters of the first (knobs reach every engine; XDP runs with
/// one engine only), the newest time.
pub fn merge(parts: &[Arc<EngineSnapshot>]) -> EngineSnapshot {
    let mut out = EngineSnapshot::default();
    for (i, p) in parts.iter().enumerate() {
        out.seq += p.seq;
        out.unix_time_us = out.unix_time_us.max(p.unix_time_us);
        add_server(&mut out.server, &p.server);
        out.sessions.extend(p.sessions.iter().cloned());
        out.paths.extend(p.paths.iter().cloned());
        if i == 0 {
            out.settings.clone_from(&p.settings);
            out.nics.clone_from(&p.nics);
        }
    }
    out.sessions.sort_by_key(|s| s.session);
    out.paths.sort_by_key(|p| (p.session, p.path));
    out
}

/// Adds `b` into `a`, field by field (destructured, so a new counter must be added here).
fn add_server(a: &mut ServerTotals, b: &ServerTotals) {
    let ServerTotals {
        sessions_opened,
        join_refused,
        malformed_control,
        deadline_resets,
        suspected,
        edge,
    } = b;
    a.sessions_opened += sessions_opened;
    a.join_refused += join_refused;
    a.malformed_control += malformed_control;
    a.deadline_resets += deadline_resets;
    a.suspected += suspected;
    let EdgeTotals {
        handshakes_started,
        handshakes_failed,
        hello_timeouts,
        refused_handshake_rate,
        refused_source_table_full,
        refused_sessions_per_source,
        refused_join_attempts,
        retries_sent,
        ingest_rate_limited,
        datagrams_dropped,
        datagrams_answered,
    } = edge;
    let e = &mut a.edge;
    e.handshakes_started += handshakes_started;
    e.handshakes_failed += handshakes_failed;
    e.hello_timeouts += hello_timeouts;
    e.refused_handshake_rate += refused_handshake_rate;
    e.refused_source_table_full += refused_source_table_full;
    e.refused_sessions_per_source += refused_sessions_per_source;
    e.refused_join_attempts += refused_join_attempts;
    e.retries_sent += retries_sent;
    e.ingest_rate_limited += ingest_rate_limited;
    for (x, y) in e.datagrams_dropped.iter_mut().zip(datagrams_dropped) {
        *x += y;
    }
    e.datagrams_answered += datagrams_answered;
}

/// Sends knobs to the engines: a path's status to the engine of its session, every other
/// knob to all of them.
#[derive(Clone, Debug)]
pub struct Knobs {
    parts: Vec<KnobSender>,
}

impl Knobs {
    /// Sends to `parts` (engine i = `parts[i]`).
    pub fn new(parts: Vec<KnobSender>) -> Self {
        Knobs { parts }
    }

    /// Queues `knob` where it applies; never blocks. A broadcast is refused whole when
    /// any engine's queue is full (checked first; a race with another sender can still
    /// leave it queued on some engines only, and is reported as full).
    pub fn send(&self, knob: Knob) -> Result<(), KnobError> {
        if let Knob::SetPathStatus { session, path, .. } = knob {
            let Some(to) = self.parts.get(usize::from(session_engine(session))) else {
                return Err(KnobError::UnknownPath { session, path });
            };
            return to.send(knob);
        }
        if self.parts.iter().any(KnobSender::is_full) {
            return Err(KnobError::QueueFull);
        }
        let mut out = Ok(());
        for p in &self.parts {
            if let Err(e) = p.send(knob) {
                out = Err(e);
            }
        }
        out
    }
}

impl From<KnobSender> for Knobs {
    fn from(one: KnobSender) -> Self {
        Knobs::new(vec![one])
    }
}

/// Collects every engine's histogram interval and sums them.
#[derive(Debug)]
pub struct Histos {
    parts: Vec<HistoCollector>,
    /// The sum handed out by the last [`Histos::collect`], once recycled.
    spare: Option<Box<IntervalHistograms>>,
}

impl Histos {
    /// Collects from `parts`.
    pub fn new(parts: Vec<HistoCollector>) -> Self {
        Histos { parts, spare: None }
    }

    /// Asks every engine without an outstanding request to start a new interval; false
    /// when none could be asked.
    pub fn request_swap(&mut self) -> bool {
        let mut any = false;
        for p in &mut self.parts {
            any |= p.request_swap();
        }
        any
    }

    /// The sum of the intervals the engines finished since the last call, once at least one
    /// did. An engine that had not swapped yet has its interval folded into the next.
    pub fn collect(&mut self) -> Option<Box<IntervalHistograms>> {
        if let [one] = self.parts.as_mut_slice() {
            return one.collect();
        }
        let mut sum: Option<Box<IntervalHistograms>> = None;
        for p in &mut self.parts {
            let Some(h) = p.collect() else { continue };
            let s = sum.get_or_insert_with(|| {
                let mut b = self
                    .spare
                    .take()
                    .unwrap_or_else(|| Box::new(IntervalHistograms::new()));
                b.reset();
                b
            });
            s.add(&h);
            p.recycle(h);
        }
        sum
    }

    /// Returns a collected buffer for reuse.
    pub fn recycle(&mut self, b: Box<IntervalHistograms>) {
        if let [one] = self.parts.as_mut_slice() {
            one.recycle(b);
        } else {
            self.spare = Some(b);
        }
    }

    /// True while any engine has a request outstanding.
    pub fn pending(&self) -> bool {
        self.parts.iter().any(HistoCollector::pending)
    }
}

impl From<HistoCollector> for Histos {
    fn from(one: HistoCollector) -> Self {
        Histos::new(vec![one])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{PathSnapshot, PathState, SessionSnapshot};
    use camp_proto::Modality;

    #[test]
    fn session_ids_carry_the_engine_and_round_trip() {
        for engine in [0u8, 1, 7, 63, 255] {
            for local in [
                0u64,
                1,
                5,
                (3 << 32) | 9,
                (u64::from(u32::MAX) << 32) | 0xff_ffff,
            ] {
                let g = global_session(engine, local);
                assert_eq!(session_engine(g), engine, "{engine} {local:#x}");
                assert_eq!(local_session(g), local, "{engine} {local:#x}");
                assert!(maps_losslessly(local));
            }
        }
        // Engine 0's ids are the server's own.
        assert_eq!(global_session(0, (4 << 32) | 17), (4 << 32) | 17);
        // Two engines' session 0 differ.
        assert_ne!(global_session(0, 0), global_session(1, 0));
        assert!(!maps_losslessly(1 << ENGINE_SHIFT));
    }

    fn session(id: u64, sent: u64) -> SessionSnapshot {
        let mut s = SessionSnapshot {
            session: id,
            engine: session_engine(id),
            paths: 2,
            ..Default::default()
        };
        s.modalities[0].sent = sent;
        s
    }

    fn path(session: u64, id: u32) -> PathSnapshot {
        crate::testing::path(session, id, 0)
    }

    #[test]
    fn snapshots_of_two_engines_merge_sorted_and_summed() {
        let (mut p0, s0) = crate::publish::channel();
        let (mut p1, s1) = crate::publish::channel();
        let view = Snapshots::new(vec![s0, s1]);
        assert!(view.latest().is_none());
        let e1 = |l| global_session(1, l);
        p1.publish(|s| {
            s.unix_time_us = 20;
            s.server.sessions_opened = 2;
            s.server.edge.datagrams_dropped[3] = 4;
            s.sessions = vec![session(e1(0), 5), session(e1(1), 6)];
            s.paths = vec![path(e1(0), 0), path(e1(0), 1), path(e1(1), 0)];
            s.settings.scheduler = "minrtt".into();
        });
        // Engine 0 has not published: engine 1 alone.
        let one = view.latest().unwrap();
        assert_eq!(one.sessions.len(), 2);
        p0.publish(|s| {
            s.unix_time_us = 10;
            s.server.sessions_opened = 1;
            s.server.edge.datagrams_dropped[3] = 1;
            s.server.join_refused = 3;
            s.sessions = vec![session(0, 7)];
            s.paths = vec![path(0, 1), path(0, 0)];
            s.settings.scheduler = "camp".into();
        });
        let m = view.latest().unwrap();
        assert_eq!(m.seq, 2);
        assert_eq!(m.unix_time_us, 20);
        assert_eq!(m.server.sessions_opened, 3);
        assert_eq!(m.server.join_refused, 3);
        assert_eq!(m.server.edge.datagrams_dropped[3], 5);
        let ids: Vec<(u64, u8)> = m.sessions.iter().map(|s| (s.session, s.engine)).collect();
        assert_eq!(ids, vec![(0, 0), (e1(0), 1), (e1(1), 1)]);
        let paths: Vec<(u64, u32)> = m.paths.iter().map(|p| (p.session, p.path)).collect();
        assert_eq!(
            paths,
            vec![(0, 0), (0, 1), (e1(0), 0), (e1(0), 1), (e1(1), 0)]
        );
        assert_eq!(m.settings.scheduler, "camp", "engine 0's settings");
        // Nothing new: the same merge.
        assert!(Arc::ptr_eq(&m, &view.latest().unwrap()));
        p0.publish(|s| s.unix_time_us = 30);
        assert_eq!(view.latest().unwrap().seq, 3);
    }

    #[test]
    fn path_knobs_reach_their_engine_and_others_reach_all() {
        let (t0, mut r0) = crate::knobs::channel();
        let (t1, mut r1) = crate::knobs::channel();
        let knobs = Knobs::new(vec![t0, t1]);
        let status = |session| Knob::SetPathStatus {
            session,
            path: 1,
            status: PathState::Standby,
            precedence: 0,
        };
        knobs.send(status(global_session(1, 3))).unwrap();
        knobs.send(Knob::SetCoupledCc { on: true }).unwrap();
        assert!(matches!(
            knobs.send(status(global_session(2, 0))),
            Err(KnobError::UnknownPath { .. })
        ));
        let mut got0 = Vec::new();
        let mut got1 = Vec::new();
        r0.drain(|k| got0.push(k));
        r1.drain(|k| got1.push(k));
        assert_eq!(got0, vec![Knob::SetCoupledCc { on: true }]);
        assert_eq!(
            got1,
            vec![
                status(global_session(1, 3)),
                Knob::SetCoupledCc { on: true }
            ]
        );
        // A full engine refuses the broadcast whole.
        for _ in 0..crate::knobs::KNOB_QUEUE_CAPACITY {
            knobs.send(status(global_session(1, 0))).unwrap();
        }
        assert_eq!(
            knobs.send(Knob::SetCoupledCc { on: false }),
            Err(KnobError::QueueFull)
        );
        assert_eq!(r0.drain(|_| {}), 0, "engine 0 got nothing of it");
    }

    #[test]
    fn histogram_intervals_of_two_engines_are_summed() {
        let (mut a, ca) = crate::histo::channel();
        let (mut b, cb) = crate::histo::channel();
        let mut h = Histos::new(vec![ca, cb]);
        assert!(h.request_swap());
        a.record_latency(Modality::Audio, 10_000);
        b.record_latency(Modality::Audio, 30_000);
        b.record_skew(500);
        a.poll_swap();
        // Only engine 0 swapped so far: its interval alone.
        let first = h.collect().unwrap().summary();
        assert_eq!(first.latency[Modality::Audio as usize].count, 1);
        b.poll_swap();
        let second = h.collect().unwrap();
        let s = second.summary();
        assert_eq!(s.latency[Modality::Audio as usize].count, 1);
        assert_eq!(s.skew.count, 1);
        h.recycle(second);
        assert!(h.request_swap());
        a.record_latency(Modality::Video, 1_000);
        b.record_latency(Modality::Video, 2_000);
        a.poll_swap();
        b.poll_swap();
        let third = h.collect().unwrap().summary();
        assert_eq!(third.latency[Modality::Video as usize].count, 2);
        assert_eq!(third.latency[Modality::Audio as usize].count, 0, "reset");
        assert!(h.collect().is_none());
    }
}
