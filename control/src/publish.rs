//! Lock-free single-writer, multi-reader publication of [`EngineSnapshot`]s.
//!
//! The engine owns a [`Publisher`]; control threads hold [`Subscriber`]s. Snapshots travel as
//! `Arc<EngineSnapshot>` through a one-slot `crossbeam::queue::ArrayQueue` (the mailbox):
//! publishing pops a snapshot the readers never collected (reusing it), fills a buffer and
//! pushes it. A buffer comes back for reuse through a second queue once a subscriber
//! replaces it; the writer refills it only when `Arc::get_mut` proves no reader still holds
//! it, so a reader can never see a snapshot change under it and no `unsafe` is needed.
//!
//! The writer never blocks (only `ArrayQueue` push/pop, which are lock-free) and, once a few
//! buffers circulate, never allocates beyond what its fill closure does: vectors are cleared,
//! not dropped, so their capacity is reused. Readers serialise among themselves on a mutex
//! the writer never touches.

use std::sync::{Arc, Mutex, PoisonError};

use crossbeam::queue::ArrayQueue;

use crate::snapshot::EngineSnapshot;

/// Buffers returned by subscribers and not yet refilled.
const RECYCLE_SLOTS: usize = 4;
/// Buffers the writer keeps aside because a reader still held them when they came back.
const PENDING_SLOTS: usize = 4;

#[derive(Debug)]
struct Shared {
    /// The freshest snapshot no subscriber has collected yet (capacity 1).
    mailbox: ArrayQueue<Arc<EngineSnapshot>>,
    /// Replaced snapshots on their way back to the writer.
    recycle: ArrayQueue<Arc<EngineSnapshot>>,
    /// The newest snapshot any subscriber collected (reader side only).
    latest: Mutex<Option<Arc<EngineSnapshot>>>,
}

/// Creates a connected publisher and subscriber.
pub fn channel() -> (Publisher, Subscriber) {
    let shared = Arc::new(Shared {
        mailbox: ArrayQueue::new(1),
        recycle: ArrayQueue::new(RECYCLE_SLOTS),
        latest: Mutex::new(None),
    });
    (
        Publisher {
            shared: Arc::clone(&shared),
            seq: 0,
            pending: Vec::with_capacity(PENDING_SLOTS),
        },
        Subscriber { shared },
    )
}

/// The engine's end: publishes snapshots without blocking.
#[derive(Debug)]
pub struct Publisher {
    shared: Arc<Shared>,
    seq: u64,
    pending: Vec<Arc<EngineSnapshot>>,
}

impl Publisher {
    /// Fills a buffer with `fill` and publishes it; returns its sequence number.
    ///
    /// The buffer holds an older snapshot (or the default one): `fill` must overwrite every
    /// field it uses (`clear()` vectors, then push, to keep their capacity). `seq` is set
    /// after `fill` and is strictly increasing.
    pub fn publish(&mut self, fill: impl FnOnce(&mut EngineSnapshot)) -> u64 {
        let mut buf = self.take_buffer();
        self.seq += 1;
        // get_mut cannot fail: take_buffer only returns buffers it proved unshared, and
        // nothing else has seen `buf` since.
        let snap = Arc::get_mut(&mut buf).expect("publisher buffer is unshared");
        fill(snap);
        snap.seq = self.seq;
        if let Some(displaced) = self.shared.mailbox.force_push(buf) {
            // Only this writer pushes, and take_buffer emptied the slot, so nothing is
            // displaced; keep the buffer anyway should that ever change.
            self.keep(displaced);
        }
        self.seq
    }

    /// Sequence number of the last publication (0 before the first).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    fn take_buffer(&mut self) -> Arc<EngineSnapshot> {
        // A snapshot nobody collected is superseded by the one we are about to publish.
        if let Some(stale) = self.shared.mailbox.pop() {
            if Arc::strong_count(&stale) == 1 {
                return stale;
            }
            self.keep(stale);
        }
        if let Some(i) = self.pending.iter().position(|b| Arc::strong_count(b) == 1) {
            return self.pending.swap_remove(i);
        }
        while let Some(b) = self.shared.recycle.pop() {
            if Arc::strong_count(&b) == 1 {
                return b;
            }
            self.keep(b);
        }
        Arc::new(EngineSnapshot::default())
    }

    /// Keeps a buffer a reader still holds, to retry it later; dropping it here only
    /// decrements its count (the reader frees it) unless the reader let go in between.
    fn keep(&mut self, b: Arc<EngineSnapshot>) {
        if self.pending.len() < PENDING_SLOTS {
            self.pending.push(b);
        }
    }
}

/// A control thread's end: reads the newest snapshot. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Subscriber {
    shared: Arc<Shared>,
}

impl Subscriber {
    /// The newest published snapshot, or `None` before the first publication.
    ///
    /// Successive calls (from any clone) never go back in sequence number.
    pub fn latest(&self) -> Option<Arc<EngineSnapshot>> {
        let mut latest = self
            .shared
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(fresh) = self.shared.mailbox.pop() {
            if let Some(old) = latest.replace(fresh) {
                // A full recycle queue just means the writer has enough buffers.
                let _ = self.shared.recycle.push(old);
            }
        }
        latest.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::SessionSnapshot;
    use std::time::{Duration, Instant};

    /// A snapshot whose every field is derived from `n`, so a mix of two is detectable.
    fn fill(s: &mut EngineSnapshot, n: u64) {
        s.unix_time_us = n;
        s.server.sessions_opened = n;
        s.sessions.clear();
        for i in 0..(n % 5 + 1) {
            s.sessions.push(SessionSnapshot {
                session: i,
                safety_reinjections: n,
                ..Default::default()
            });
        }
    }

    fn check(s: &EngineSnapshot) {
        let n = s.unix_time_us;
        assert_eq!(s.seq, n, "seq and content disagree");
        assert_eq!(s.server.sessions_opened, n);
        assert_eq!(s.sessions.len() as u64, n % 5 + 1);
        assert!(
            s.sessions.iter().all(|x| x.safety_reinjections == n),
            "torn snapshot {n}"
        );
    }

    #[test]
    fn empty_until_first_publish_then_latest_wins() {
        let (mut p, s) = channel();
        assert!(s.latest().is_none());
        p.publish(|x| fill(x, 1));
        p.publish(|x| fill(x, 2));
        let a = s.latest().unwrap();
        check(&a);
        assert_eq!(a.seq, 2);
        // No new publication: the same snapshot again.
        assert_eq!(s.latest().unwrap().seq, 2);
    }

    #[test]
    fn buffers_are_reused_once_warm() {
        let (mut p, s) = channel();
        let mut addrs = std::collections::HashSet::new();
        for n in 1..=1_000 {
            p.publish(|x| fill(x, n));
            let snap = s.latest().unwrap();
            check(&snap);
            addrs.insert(Arc::as_ptr(&snap) as usize);
        }
        assert!(
            addrs.len() <= 3,
            "{} distinct buffers for 1000 publications",
            addrs.len()
        );
    }

    #[test]
    fn held_snapshot_is_never_overwritten() {
        let (mut p, s) = channel();
        p.publish(|x| fill(x, 1));
        let held = s.latest().unwrap();
        for n in 2..=50 {
            p.publish(|x| fill(x, n));
            let _ = s.latest();
        }
        check(&held);
        assert_eq!(held.seq, 1);
    }

    #[test]
    fn stress_readers_never_see_torn_or_backward_snapshots() {
        const PUBLISHES: u64 = 100_000;
        let (mut p, s) = channel();
        let deadline = Instant::now() + Duration::from_secs(5);
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let mut last = 0;
                    let mut seen = 0u64;
                    while last < PUBLISHES {
                        assert!(Instant::now() < deadline, "reader stuck at {last}");
                        if let Some(snap) = s.latest() {
                            check(&snap);
                            assert!(snap.seq >= last, "went back from {last} to {}", snap.seq);
                            if snap.seq > last {
                                seen += 1;
                            }
                            last = snap.seq;
                        }
                    }
                    seen
                })
            })
            .collect();
        for n in 1..=PUBLISHES {
            assert_eq!(p.publish(|x| fill(x, n)), n);
        }
        for r in readers {
            assert!(r.join().unwrap() >= 1);
        }
    }
}
