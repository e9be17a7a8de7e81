//! Measurement: the draft's latency and cross-modal skew metrics (draft-song-tsvwg-camp-00
//! §3.1.4), presentation-side A/V offset against the perception thresholds, counters, the
//! optional per-unit arrival log, and the periodic alignment feedback report.
//!
//! Everything here is allocated at construction (histograms with fixed bounds, a fixed ring of
//! sync groups) so recording a unit never allocates; only the optional arrival log grows.

use camp_wire::{Modality, PathId, Seq, SyncIndex};
use hdrhistogram::Histogram;

use crate::Micros;

/// Largest value the histograms track (60 s); larger values are clamped.
const HIST_MAX_US: u64 = 60_000_000;
/// Number of sync indices whose groups are tracked at once.
pub const SYNC_GROUP_WINDOW: usize = 4096;

/// A histogram of µs values with fixed bounds.
fn histogram() -> Histogram<u64> {
    // The bounds are constants that satisfy hdrhistogram's preconditions (low >= 1,
    // high >= 2·low, sigfig <= 5), so construction cannot fail.
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("constant histogram bounds are valid")
}

/// Whether an A/V presentation offset (video − audio, positive = audio early) lies inside the
/// ITU-R BT.1359 detectability window, −125 ms ≤ offset ≤ +45 ms.
pub const fn inside_bt1359(offset_us: i64) -> bool {
    -125_000 <= offset_us && offset_us <= 45_000
}

/// Whether an A/V presentation offset (video − audio, positive = audio early) lies inside the
/// ATSC IS-191 window, −45 ms ≤ offset ≤ +15 ms.
pub const fn inside_is191(offset_us: i64) -> bool {
    -45_000 <= offset_us && offset_us <= 15_000
}

/// Event counters of the receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvCounters {
    /// Units accepted for the first time (stored or late-after-skip).
    pub units_received: u64,
    /// Copies of units already received (e.g. reinjected on a second path); never delivered.
    pub duplicates: u64,
    /// Reliable units refused because they were too far ahead of the in-order point.
    pub refused_too_far: u64,
    /// Droppable units refused because their seq jumped more than `max_droppable_jump`.
    pub refused_seq_jump: u64,
    /// Units refused because the buffers were full.
    pub refused_buffer_full: u64,
    /// Units refused because the payload was too large.
    pub refused_too_large: u64,
    /// Units refused after `finish`.
    pub refused_finished: u64,
    /// Units presented after their scheduled time.
    pub late: u64,
    /// Late audio units (each one a playback stall).
    pub stalls: u64,
    /// Total stall time, µs.
    pub stall_time_us: u64,
    /// Droppable-stream seqs declared lost (gap timer, deadline, window push or finish).
    pub video_lost_inferred: u64,
    /// Of those, seqs passed over because a unit arrived beyond the window.
    pub window_pushed: u64,
    /// Late video units skipped instead of shown.
    pub video_skipped: u64,
    /// Droppable units that arrived after their seq had been declared lost.
    pub late_after_skip: u64,
    /// Gaps of droppable streams declared lost by the gap timer (its wait or the missing
    /// units' deadline).
    pub gaps_skipped: u64,
    /// Total time the units above those gaps waited for them, µs (divided by
    /// `gaps_skipped`: the mean gap wait, which `path_delta / 2` over the stream's paths
    /// bounds).
    pub gap_wait_us: u64,
    /// Reliable units still held behind a gap at `finish` (never delivered).
    pub unreleased_at_finish: u64,
    /// ACKs handed to the session.
    pub acks_sent: u64,
    /// Feedback reports handed to the session.
    pub feedback_sent: u64,
}

/// One unit in the optional arrival log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArrivalRecord {
    /// Stream of the unit.
    pub modality: Modality,
    /// Sequence number.
    pub seq: Seq,
    /// Sync index.
    pub sync_index: SyncIndex,
    /// Path the unit arrived on.
    pub path: PathId,
    /// Generation time on the sender clock.
    pub gen_us: Micros,
    /// Local arrival time.
    pub arrival_us: Micros,
    /// Local presentation time; `None` until presented, and for skipped or undelivered units.
    pub present_us: Option<Micros>,
}

/// Alignment feedback for the sender (draft §4.4, "continuous feedback").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedbackReport {
    /// Length of the interval the report covers, µs.
    pub interval_us: u32,
    /// Playout delay the policy applies now (CAMP `D`), µs.
    pub playout_delay_us: u32,
    /// Media time queued ahead of presentation: latest scheduled presentation − now, µs.
    pub buffer_occupancy_us: u32,
    /// Mean `Delta_k` of the groups completed in the interval, µs.
    pub skew_mean_us: u32,
    /// p95 `Delta_k` of the groups completed in the interval, µs.
    pub skew_p95_us: u32,
    /// Units delivered late or skipped in the interval.
    pub late_units: u32,
    /// Droppable units declared lost in the interval.
    pub lost_units: u32,
}

/// Percentile summary of one latency distribution.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Median, µs.
    pub p50_us: u64,
    /// 95th percentile, µs.
    pub p95_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Maximum, µs.
    pub max_us: u64,
}

impl LatencySummary {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p95_us: h.value_at_quantile(0.95),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        }
    }
}

/// Per-modality figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModalitySummary {
    /// The modality.
    pub modality: Modality,
    /// Per-unit latency `a - g` (draft §3.1.4 `L`).
    pub latency: LatencySummary,
    /// Units delivered in order to the alignment buffer.
    pub delivered: u64,
    /// Units presented (not skipped).
    pub presented: u64,
    /// Units whose `a - g` exceeded their deadline.
    pub deadline_misses: u64,
}

/// All figures of a run as plain values, for tables and JSON.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecvSummary {
    /// Policy name.
    pub policy: &'static str,
    /// Latency over all modalities (draft §3.1.4 `L`).
    pub latency: LatencySummary,
    /// Per modality, in [`Modality::ALL`] order.
    pub per_modality: [ModalitySummary; Modality::COUNT],
    /// Sync groups with at least two modalities (the ones `C` averages over).
    pub skew_groups: u64,
    /// `C = mean Delta_k`, µs (draft §3.1.4); 0 without groups.
    pub skew_c_us: f64,
    /// p95 of `Delta_k`, µs.
    pub skew_p95_us: u64,
    /// p99 of `Delta_k`, µs.
    pub skew_p99_us: u64,
    /// Largest `Delta_k`, µs.
    pub skew_max_us: u64,
    /// Sync indices with both an audio and a video unit presented.
    pub av_indices: u64,
    /// Mean A/V presentation offset (video − audio, positive = audio early), µs.
    pub av_offset_mean_us: f64,
    /// p95 of the absolute A/V offset, µs.
    pub av_offset_abs_p95_us: u64,
    /// Largest absolute A/V offset, µs.
    pub av_offset_abs_max_us: u64,
    /// Share of indices outside ITU-R BT.1359 detectability (−125..=+45 ms).
    pub outside_bt1359: f64,
    /// Share of indices outside ATSC IS-191 (−45..=+15 ms).
    pub outside_is191: f64,
    /// Playout delay added by alignment (presentation − arrival).
    pub added_delay: LatencySummary,
    /// Counters at the time of the summary.
    pub counters: RecvCounters,
    /// Final playout delay (CAMP `D`, fixed delay, lip-sync audio buffering), µs.
    pub playout_delay_us: u64,
}

/// Arrival and presentation state of one sync index.
#[derive(Clone, Copy, Debug, Default)]
struct Group {
    index: SyncIndex,
    used: bool,
    arrival_done: bool,
    /// `a_m,k`: last arrival of modality m with this index.
    last_arrival: [Option<Micros>; Modality::COUNT],
    /// Largest delivery latency (in-order delivery − generation) among the group's units:
    /// the smallest playout delay that would have presented the whole group on time.
    completion_latency: Micros,
    audio_present: Option<Micros>,
    video_present: Option<Micros>,
}

/// A finalised group's figures, handed back to the receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GroupDone {
    /// `Delta_k`, when at least two modalities were present.
    pub(crate) delta: Option<Micros>,
    /// Largest delivery latency among the group's units.
    pub(crate) completion_latency: Micros,
}

/// Ring of sync groups, indexed by `k % SYNC_GROUP_WINDOW`.
#[derive(Debug)]
pub(crate) struct SyncGroups {
    ring: Vec<Group>,
    /// Groups below this index are finalised.
    finalised_below: u64,
}

impl SyncGroups {
    pub(crate) fn new() -> Self {
        SyncGroups {
            ring: vec![Group::default(); SYNC_GROUP_WINDOW],
            finalised_below: 0,
        }
    }

    fn slot(&mut self, k: SyncIndex) -> &mut Group {
        let i = k as usize % SYNC_GROUP_WINDOW;
        // `ring` has exactly SYNC_GROUP_WINDOW entries, so `i` is in bounds.
        &mut self.ring[i]
    }

    /// Records an arrival in group `k`; a group evicted from its slot by a newer index is
    /// finalised and returned.
    pub(crate) fn on_arrival(
        &mut self,
        k: SyncIndex,
        m: Modality,
        arrival: Micros,
    ) -> Option<GroupDone> {
        if u64::from(k) < self.finalised_below {
            return None;
        }
        let g = self.slot(k);
        let mut evicted = None;
        if g.used && g.index != k {
            if g.index > k {
                return None;
            }
            if !g.arrival_done {
                evicted = Some(finalise(g));
            }
            *g = Group::default();
        }
        if !g.used {
            *g = Group {
                index: k,
                used: true,
                ..Group::default()
            };
        }
        if g.arrival_done {
            return evicted;
        }
        if let Some(a) = g.last_arrival.get_mut(m.index()) {
            *a = Some(a.map_or(arrival, |x| x.max(arrival)));
        }
        evicted
    }

    /// Records that a unit of group `k` was delivered in order `latency` after its generation;
    /// the group's completion latency is the largest such value.
    pub(crate) fn on_delivered(&mut self, k: SyncIndex, latency: Micros) {
        let g = self.slot(k);
        if g.used && g.index == k && !g.arrival_done {
            g.completion_latency = g.completion_latency.max(latency);
        }
    }

    /// Finalises every open group with index below `frontier`, calling `done` for each.
    pub(crate) fn finalise_below(&mut self, frontier: u64, mut done: impl FnMut(GroupDone)) {
        if frontier <= self.finalised_below {
            return;
        }
        if frontier - self.finalised_below > SYNC_GROUP_WINDOW as u64 {
            for g in &mut self.ring {
                if g.used && !g.arrival_done && u64::from(g.index) < frontier {
                    done(finalise(g));
                }
            }
        } else {
            for k in self.finalised_below..frontier {
                let i = (k % SYNC_GROUP_WINDOW as u64) as usize;
                if let Some(g) = self.ring.get_mut(i) {
                    if g.used && !g.arrival_done && u64::from(g.index) == k {
                        done(finalise(g));
                    }
                }
            }
        }
        self.finalised_below = frontier;
    }

    /// Records a presentation; returns the A/V offset of index `k` once both its first audio
    /// unit and its video unit have been presented.
    pub(crate) fn on_present(&mut self, k: SyncIndex, m: Modality, present: Micros) -> Option<i64> {
        let g = self.slot(k);
        if !g.used || g.index != k {
            return None;
        }
        let had_both = g.audio_present.is_some() && g.video_present.is_some();
        match m {
            Modality::Audio if g.audio_present.is_none() => g.audio_present = Some(present),
            Modality::Video if g.video_present.is_none() => g.video_present = Some(present),
            _ => return None,
        }
        match (had_both, g.audio_present, g.video_present) {
            (false, Some(a), Some(v)) => Some(v as i64 - a as i64),
            _ => None,
        }
    }
}

/// `Delta_k = max_m a_m,k − min_m a_m,k` over the modalities present (draft §3.1.4).
fn finalise(g: &mut Group) -> GroupDone {
    g.arrival_done = true;
    let mut present = 0;
    let (mut lo, mut hi) = (Micros::MAX, 0);
    for a in g.last_arrival.iter().flatten() {
        present += 1;
        lo = lo.min(*a);
        hi = hi.max(*a);
    }
    GroupDone {
        delta: (present >= 2).then(|| hi - lo),
        completion_latency: g.completion_latency,
    }
}

/// Histograms and totals of a run (draft §3.1.4 plus presentation metrics).
#[derive(Debug)]
pub struct RecvMetrics {
    latency: [Histogram<u64>; Modality::COUNT],
    latency_all: Histogram<u64>,
    delivered: [u64; Modality::COUNT],
    presented: [u64; Modality::COUNT],
    deadline_misses: [u64; Modality::COUNT],
    delta: Histogram<u64>,
    delta_sum: u128,
    delta_groups: u64,
    interval_delta: Histogram<u64>,
    interval_delta_sum: u128,
    av_offset_abs: Histogram<u64>,
    av_offset_sum: i128,
    av_indices: u64,
    outside_bt1359: u64,
    outside_is191: u64,
    added_delay: Histogram<u64>,
    policy: &'static str,
    playout_delay_us: u64,
    pub(crate) counters: RecvCounters,
}

impl RecvMetrics {
    pub(crate) fn new(policy: &'static str) -> Self {
        RecvMetrics {
            latency: core::array::from_fn(|_| histogram()),
            latency_all: histogram(),
            delivered: [0; Modality::COUNT],
            presented: [0; Modality::COUNT],
            deadline_misses: [0; Modality::COUNT],
            delta: histogram(),
            delta_sum: 0,
            delta_groups: 0,
            interval_delta: histogram(),
            interval_delta_sum: 0,
            av_offset_abs: histogram(),
            av_offset_sum: 0,
            av_indices: 0,
            outside_bt1359: 0,
            outside_is191: 0,
            added_delay: histogram(),
            policy,
            playout_delay_us: 0,
            counters: RecvCounters::default(),
        }
    }

    /// Records a first arrival: latency `a − g` and a deadline miss if `a − g > deadline`.
    pub(crate) fn on_arrival(&mut self, m: Modality, latency: Micros, deadline_us: u32) {
        let i = m.index();
        if let Some(h) = self.latency.get_mut(i) {
            h.saturating_record(latency);
        }
        self.latency_all.saturating_record(latency);
        if deadline_us != 0 && latency > Micros::from(deadline_us) {
            if let Some(d) = self.deadline_misses.get_mut(i) {
                *d += 1;
            }
        }
    }

    pub(crate) fn on_delivered(&mut self, m: Modality) {
        if let Some(d) = self.delivered.get_mut(m.index()) {
            *d += 1;
        }
    }

    pub(crate) fn on_group(&mut self, delta: Micros) {
        self.delta.saturating_record(delta);
        self.interval_delta.saturating_record(delta);
        self.delta_sum += u128::from(delta);
        self.interval_delta_sum += u128::from(delta);
        self.delta_groups += 1;
    }

    pub(crate) fn on_presented(&mut self, m: Modality, added_delay: Micros) {
        if let Some(p) = self.presented.get_mut(m.index()) {
            *p += 1;
        }
        self.added_delay.saturating_record(added_delay);
    }

    pub(crate) fn on_av_offset(&mut self, offset: i64) {
        self.av_indices += 1;
        self.av_offset_sum += i128::from(offset);
        self.av_offset_abs.saturating_record(offset.unsigned_abs());
        if !inside_bt1359(offset) {
            self.outside_bt1359 += 1;
        }
        if !inside_is191(offset) {
            self.outside_is191 += 1;
        }
    }

    pub(crate) fn set_playout_delay(&mut self, d: u64) {
        self.playout_delay_us = d;
    }

    /// Mean and p95 `Delta_k` of the groups finalised since the last call, then resets them.
    pub(crate) fn take_interval_skew(&mut self) -> (u64, u64) {
        let n = self.interval_delta.len();
        let r = if n == 0 {
            (0, 0)
        } else {
            let mean = self.interval_delta_sum / u128::from(n);
            (
                u64::try_from(mean).unwrap_or(u64::MAX),
                self.interval_delta.value_at_quantile(0.95),
            )
        };
        self.interval_delta.reset();
        self.interval_delta_sum = 0;
        r
    }

    /// `C = mean Delta_k` in µs over the groups with at least two modalities (draft §3.1.4);
    /// `None` before any such group.
    pub fn skew_c_us(&self) -> Option<f64> {
        (self.delta_groups > 0).then(|| self.delta_sum as f64 / self.delta_groups as f64)
    }

    /// Number of groups `C` averages over.
    pub fn skew_groups(&self) -> u64 {
        self.delta_groups
    }

    /// Histogram of `Delta_k`, µs.
    pub fn skew_histogram(&self) -> &Histogram<u64> {
        &self.delta
    }

    /// Histogram of per-unit latency `a − g` of one modality, µs.
    pub fn latency_histogram(&self, m: Modality) -> &Histogram<u64> {
        // `latency` has one entry per modality and `index()` is below `Modality::COUNT`.
        &self.latency[m.index()]
    }

    /// Units delivered in order for one modality.
    pub fn delivered(&self, m: Modality) -> u64 {
        self.delivered.get(m.index()).copied().unwrap_or(0)
    }

    /// The receiver's event counters.
    pub fn counters(&self) -> &RecvCounters {
        &self.counters
    }

    /// All figures as plain values, for tables and JSON.
    pub fn summary(&self) -> RecvSummary {
        let per_modality = Modality::ALL.map(|m| {
            let i = m.index();
            ModalitySummary {
                modality: m,
                latency: LatencySummary::of(&self.latency[i]),
                delivered: self.delivered[i],
                presented: self.presented[i],
                deadline_misses: self.deadline_misses[i],
            }
        });
        let share = |n: u64| {
            if self.av_indices == 0 {
                0.0
            } else {
                n as f64 / self.av_indices as f64
            }
        };
        let skew = LatencySummary::of(&self.delta);
        let av = LatencySummary::of(&self.av_offset_abs);
        RecvSummary {
            policy: self.policy,
            latency: LatencySummary::of(&self.latency_all),
            per_modality,
            skew_groups: self.delta_groups,
            skew_c_us: self.skew_c_us().unwrap_or(0.0),
            skew_p95_us: skew.p95_us,
            skew_p99_us: skew.p99_us,
            skew_max_us: skew.max_us,
            av_indices: self.av_indices,
            av_offset_mean_us: if self.av_indices == 0 {
                0.0
            } else {
                self.av_offset_sum as f64 / self.av_indices as f64
            },
            av_offset_abs_p95_us: av.p95_us,
            av_offset_abs_max_us: av.max_us,
            outside_bt1359: share(self.outside_bt1359),
            outside_is191: share(self.outside_is191),
            added_delay: LatencySummary::of(&self.added_delay),
            counters: self.counters,
            playout_delay_us: self.playout_delay_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perception_windows_include_their_boundaries() {
        assert!(inside_bt1359(-125_000) && inside_bt1359(45_000) && inside_bt1359(0));
        assert!(!inside_bt1359(-125_001) && !inside_bt1359(45_001));
        assert!(inside_is191(-45_000) && inside_is191(15_000));
        assert!(!inside_is191(-45_001) && !inside_is191(15_001));
    }

    #[test]
    fn delta_k_uses_the_last_arrival_per_modality() {
        // k = 1: text 100, audio 110 and 130 (two frames), video 125 → Delta = 130 − 100 = 30.
        let mut g = SyncGroups::new();
        g.on_arrival(1, Modality::Text, 100);
        g.on_arrival(1, Modality::Audio, 130);
        g.on_arrival(1, Modality::Audio, 110);
        g.on_arrival(1, Modality::Video, 125);
        g.on_delivered(1, 7);
        // k = 2 has a single modality and does not count.
        g.on_arrival(2, Modality::Audio, 200);
        let mut done = Vec::new();
        g.finalise_below(3, |d| done.push(d));
        assert_eq!(
            done,
            [
                GroupDone {
                    delta: Some(30),
                    completion_latency: 7
                },
                GroupDone {
                    delta: None,
                    completion_latency: 0
                }
            ]
        );
        assert_eq!(
            g.on_arrival(1, Modality::Text, 999),
            None,
            "finalised groups ignore arrivals"
        );
    }

    #[test]
    fn av_offset_uses_first_audio_presentation() {
        let mut g = SyncGroups::new();
        g.on_arrival(5, Modality::Audio, 0);
        assert_eq!(g.on_present(5, Modality::Audio, 1_000), None);
        assert_eq!(g.on_present(5, Modality::Audio, 21_000), None);
        assert_eq!(g.on_present(5, Modality::Video, 51_000), Some(50_000));
        assert_eq!(g.on_present(5, Modality::Video, 90_000), None);
    }

    #[test]
    fn eviction_finalises_the_older_group() {
        let mut g = SyncGroups::new();
        g.on_arrival(0, Modality::Text, 10);
        g.on_arrival(0, Modality::Video, 40);
        let k = SYNC_GROUP_WINDOW as SyncIndex;
        assert_eq!(
            g.on_arrival(k, Modality::Text, 50),
            Some(GroupDone {
                delta: Some(30),
                completion_latency: 0
            })
        );
        assert_eq!(
            g.on_arrival(0, Modality::Audio, 60),
            None,
            "older index than the slot holds"
        );
    }
}
