//! Per-modality latency and per-sync-index skew histograms, recorded by the engine and
//! handed to the control thread once per interval without blocking the recorder.
//!
//! Double buffering over two one-slot lock-free queues: the control thread asks for the
//! current interval by leaving an empty [`IntervalHistograms`] in the `fresh` slot; on its
//! next loop iteration the engine ([`HistoRecorder::poll_swap`]) takes it, keeps recording
//! into it, and leaves the filled one in the `done` slot for [`HistoCollector::collect`].
//! Histograms have fixed bounds, so recording never allocates, and the engine never resets
//! one (the control thread does that before handing it back).

use std::sync::Arc;

use camp_proto::Modality;
use crossbeam::queue::ArrayQueue;
use hdrhistogram::Histogram;

pub use camp_control_types::summary::{IntervalSummary, Quantiles};

/// Largest recordable value, µs (one minute); larger values are clamped.
pub const MAX_RECORDABLE_US: u64 = 60_000_000;
/// Significant decimal digits kept by the histograms.
const SIGFIG: u8 = 3;

/// Histograms of one interval.
#[derive(Clone, Debug)]
pub struct IntervalHistograms {
    /// Unit latency `L` (delivery minus generation time) per modality, µs.
    pub latency: [Histogram<u64>; Modality::COUNT],
    /// Inter-modal skew `Delta_k` of completed sync indices, µs.
    pub skew: Histogram<u64>,
}

impl IntervalHistograms {
    /// Empty histograms covering 1 µs to [`MAX_RECORDABLE_US`].
    pub fn new() -> Self {
        let h = || {
            // Bounds are constants within hdrhistogram's limits.
            Histogram::new_with_bounds(1, MAX_RECORDABLE_US, SIGFIG).expect("valid bounds")
        };
        IntervalHistograms {
            latency: [h(), h(), h()],
            skew: h(),
        }
    }

    /// Empties every histogram (keeps their storage).
    pub fn reset(&mut self) {
        self.latency.iter_mut().for_each(Histogram::reset);
        self.skew.reset();
    }

    /// Adds every sample of `other` (another engine's interval) into these.
    pub fn add(&mut self, other: &IntervalHistograms) {
        // Same bounds on both sides, so adding cannot fail; a failure would only lose
        // `other`'s samples.
        for (a, b) in self.latency.iter_mut().zip(&other.latency) {
            let _ = a.add(b);
        }
        let _ = self.skew.add(&other.skew);
    }

    /// Quantile summary of the interval.
    pub fn summary(&self) -> IntervalSummary {
        IntervalSummary {
            latency: std::array::from_fn(|m| quantiles_of(&self.latency[m])),
            skew: quantiles_of(&self.skew),
        }
    }
}

impl Default for IntervalHistograms {
    fn default() -> Self {
        Self::new()
    }
}

/// Count and quantiles of a histogram (all zero when it is empty).
pub fn quantiles_of(h: &Histogram<u64>) -> Quantiles {
    if h.is_empty() {
        return Quantiles::default();
    }
    Quantiles {
        count: h.len(),
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
    }
}

#[derive(Debug)]
struct Slots {
    fresh: ArrayQueue<Box<IntervalHistograms>>,
    done: ArrayQueue<Box<IntervalHistograms>>,
}

/// Creates the engine's recorder and the control thread's collector.
pub fn channel() -> (HistoRecorder, HistoCollector) {
    let slots = Arc::new(Slots {
        fresh: ArrayQueue::new(1),
        done: ArrayQueue::new(1),
    });
    (
        HistoRecorder {
            current: Box::new(IntervalHistograms::new()),
            slots: Arc::clone(&slots),
        },
        HistoCollector {
            spare: Some(Box::new(IntervalHistograms::new())),
            slots,
        },
    )
}

/// The engine's end.
#[derive(Debug)]
pub struct HistoRecorder {
    current: Box<IntervalHistograms>,
    slots: Arc<Slots>,
}

impl HistoRecorder {
    /// Records one unit's latency (delivery minus generation time), µs.
    pub fn record_latency(&mut self, m: Modality, us: u64) {
        self.current.latency[m as usize].saturating_record(us.clamp(1, MAX_RECORDABLE_US));
    }

    /// Records the skew `Delta_k` of one completed sync index, µs.
    pub fn record_skew(&mut self, us: u64) {
        self.current
            .skew
            .saturating_record(us.clamp(1, MAX_RECORDABLE_US));
    }

    /// Hands the current interval over if the control thread asked for it; call once per
    /// loop iteration. Lock-free, no allocation. Returns true when a swap happened.
    pub fn poll_swap(&mut self) -> bool {
        let Some(fresh) = self.slots.fresh.pop() else {
            return false;
        };
        let full = std::mem::replace(&mut self.current, fresh);
        // `done` is empty: the collector only offers a fresh buffer after taking the last
        // full one, and only this recorder pushes to `done`.
        let _ = self.slots.done.force_push(full);
        true
    }
}

/// The control thread's end.
#[derive(Debug)]
pub struct HistoCollector {
    /// Buffer to offer next (None while one is offered and not yet swapped in).
    spare: Option<Box<IntervalHistograms>>,
    slots: Arc<Slots>,
}

impl HistoCollector {
    /// Asks the engine to start a new interval. Returns false if a request is already
    /// outstanding.
    pub fn request_swap(&mut self) -> bool {
        match self.spare.take() {
            Some(mut b) => {
                b.reset();
                // `fresh` is empty whenever we hold the spare.
                let _ = self.slots.fresh.force_push(b);
                true
            }
            None => false,
        }
    }

    /// The finished interval, once the engine has swapped. Call [`HistoCollector::recycle`]
    /// with it when done so the next request reuses its storage.
    pub fn collect(&mut self) -> Option<Box<IntervalHistograms>> {
        self.slots.done.pop()
    }

    /// Returns a collected buffer for reuse by the next [`HistoCollector::request_swap`].
    pub fn recycle(&mut self, b: Box<IntervalHistograms>) {
        if self.spare.is_none() {
            self.spare = Some(b);
        }
    }

    /// True when a request is outstanding (the engine has not swapped yet).
    pub fn pending(&self) -> bool {
        self.spare.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_happens_only_on_request_and_splits_intervals() {
        let (mut rec, mut col) = channel();
        rec.record_latency(Modality::Audio, 40_000);
        assert!(!rec.poll_swap(), "no request yet");
        assert!(col.collect().is_none());

        assert!(col.request_swap());
        assert!(!col.request_swap(), "one request at a time");
        assert!(col.pending());
        rec.record_latency(Modality::Audio, 60_000); // still the first interval
        assert!(rec.poll_swap());
        rec.record_latency(Modality::Video, 90_000); // second interval
        rec.record_skew(3_000);

        let first = col.collect().expect("engine swapped");
        let s = first.summary();
        assert_eq!(s.latency[Modality::Audio as usize].count, 2);
        assert_eq!(s.latency[Modality::Video as usize].count, 0);
        assert_eq!(s.skew.count, 0);
        assert!(
            s.latency[1].max_us >= 59_970 && s.latency[1].max_us <= 60_100,
            "{s:?}"
        );
        col.recycle(first);
        assert!(!col.pending());

        assert!(col.request_swap());
        assert!(rec.poll_swap());
        let second = col.collect().unwrap().summary();
        assert_eq!(
            second.latency[Modality::Audio as usize].count,
            0,
            "recycled buffer reset"
        );
        assert_eq!(second.latency[Modality::Video as usize].count, 1);
        assert_eq!(second.skew.count, 1);
    }

    #[test]
    fn quantiles_track_the_distribution_and_clamp() {
        let (mut rec, mut col) = channel();
        for v in 1..=1000u64 {
            rec.record_skew(v * 10);
        }
        rec.record_latency(Modality::Text, u64::MAX);
        rec.record_latency(Modality::Text, 0);
        col.request_swap();
        rec.poll_swap();
        let s = col.collect().unwrap().summary();
        assert_eq!(s.skew.count, 1000);
        assert!((4_990..=5_010).contains(&s.skew.p50_us), "{:?}", s.skew);
        assert!((9_890..=9_910).contains(&s.skew.p99_us), "{:?}", s.skew);
        assert_eq!(s.latency[0].count, 2);
        assert!(s.latency[0].max_us >= MAX_RECORDABLE_US);
    }

    #[test]
    fn recorder_thread_keeps_every_sample_across_swaps() {
        let (mut rec, mut col) = channel();
        const N: u64 = 200_000;
        let engine = std::thread::spawn(move || {
            for i in 0..N {
                rec.record_latency(Modality::Video, 1 + i % 1000);
                rec.poll_swap();
            }
            rec
        });
        let mut total = 0;
        while !engine.is_finished() {
            if let Some(h) = col.collect() {
                total += h.latency[2].len();
                col.recycle(h);
            }
            col.request_swap();
        }
        let mut rec = engine.join().unwrap();
        // Drain whatever is left: the outstanding request (if any) plus the live interval.
        if let Some(h) = col.collect() {
            total += h.latency[2].len();
            col.recycle(h);
        }
        col.request_swap();
        assert!(rec.poll_swap());
        total += col.collect().unwrap().latency[2].len();
        assert_eq!(total, N);
    }
}
