//! One benchmark run (scenario × scheduler × alignment policy × seed) and the figures the
//! comparison reports for it.

use std::collections::BTreeMap;

use camp_proto::config::{CampConfig, SchedulerKind};
use camp_recv::{PlayoutPolicy, ReceiverConfig};
use camp_wire::Modality;
use serde::Serialize;

use crate::Setup;
use crate::profile::Scenario;
use crate::run::{NetEvent, RunError, TurnCapture, TurnReport, run_turn, run_turn_captured};
use crate::workload::TurnConfig;

/// What to run.
#[derive(Clone, Debug)]
pub struct Experiment {
    /// Paths and network events.
    pub scenario: Scenario,
    /// Sender scheduler.
    pub scheduler: SchedulerKind,
    /// Client alignment policy.
    pub policy: PlayoutPolicy,
    /// Seed of network, endpoints and workload.
    pub seed: u64,
    /// Workload.
    pub turn: TurnConfig,
}

/// Figures of one run (times in ms, shares and rates as fractions).
#[derive(Clone, Debug, Serialize)]
pub struct RunMetrics {
    /// Scheduler name.
    pub scheduler: String,
    /// Alignment policy name.
    pub policy: String,
    /// Profile name.
    pub profile: String,
    /// Profile variant (sweeps).
    pub variant: String,
    /// Seed.
    pub seed: u64,
    /// Speech length of the turn, ms.
    pub turn_ms: u64,
    /// Mean per-unit lateness `max(a − g, 0)` over all units (draft L).
    pub l_ms: f64,
    /// Median lateness.
    pub l_p50_ms: f64,
    /// 95th percentile lateness.
    pub l_p95_ms: f64,
    /// 99th percentile lateness.
    pub l_p99_ms: f64,
    /// Mean lateness per modality (text, audio, video).
    pub l_by_modality_ms: [f64; 3],
    /// 99th percentile lateness per modality.
    pub l_p99_by_modality_ms: [f64; 3],
    /// C = mean Delta_k (draft §3.1.4).
    pub c_ms: f64,
    /// 95th percentile of Delta_k.
    pub skew_p95_ms: f64,
    /// 99th percentile of Delta_k.
    pub skew_p99_ms: f64,
    /// Share of sync indices whose A/V presentation offset is outside ITU-R BT.1359.
    pub outside_bt1359: f64,
    /// Share outside ATSC IS-191.
    pub outside_is191: f64,
    /// Mean playout delay added by the alignment buffer (presentation − arrival).
    pub added_delay_ms: f64,
    /// Final playout delay of the alignment buffer.
    pub playout_delay_ms: f64,
    /// Audio stalls (late audio units).
    pub stalls: u64,
    /// Deadline-miss rate per modality (text, audio, video).
    pub deadline_miss: [f64; 3],
    /// Audio deadline-miss rate (duplicate of `deadline_miss[1]` for the JSON consumers).
    pub audio_deadline_miss: f64,
    /// Reliable units never presented (must be 0).
    pub reliable_lost: u64,
    /// Share of planned video frames shown (not dropped, lost or skipped as late).
    pub video_shown: f64,
    /// Total delay felt by the viewer: presentation time − media time over every unit
    /// presented, mean (both release modes; early arrival does not make it smaller, since a
    /// unit is never presented before its media time plus the playout delay).
    pub total_delay_ms: f64,
    /// 95th percentile of the total delay.
    pub total_delay_p95_ms: f64,
    /// Why the planned video frames that were not shown were not shown (shares of planned).
    pub video_not_shown: VideoNotShown,
    /// Bytes sent beyond one copy of each unit, % of unique bytes.
    pub redundant_bytes_pct: f64,
    /// Share of unit bytes per path.
    pub path_share: Vec<f64>,
    /// Outage recovery, mean over the outages of the turn that settled: from the end of each
    /// outage until both Delta_k and audio lateness are back in their pre-outage range
    /// ([`recovery_ms`]). `None` without outages or when none settled.
    pub recovery_ms: Option<f64>,
    /// The longest recovery among the outages that settled.
    pub recovery_max_ms: Option<f64>,
    /// Outages after which Delta_k or audio lateness never settled before the turn ended.
    pub recovery_unsettled: u32,
    /// Delta_k of every complete group, ms (for CDFs; not serialised).
    #[serde(skip)]
    pub deltas_ms: Vec<f64>,
    /// Simulated seconds per wall-clock second.
    pub speedup: f64,
}

/// Why planned video frames were not shown, each a share of the planned frames. The five
/// add up to `1 - video_shown` (the last one takes what the others do not explain).
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct VideoNotShown {
    /// The scheduler found no path that could deliver the frame by its deadline.
    pub no_path_in_time: f64,
    /// The deadline passed while the frame waited at the sender (held for a path with room,
    /// paced, or behind the receiver's window).
    pub expired_at_sender: f64,
    /// Sent on a stream that was reset at the deadline before all of it arrived.
    pub reset_in_flight: f64,
    /// Arrived, but too late to be shown (skipped at presentation, or after its gap was
    /// already declared lost).
    pub arrived_too_late: f64,
    /// Sent and never arrived (network loss), or still on its way when the turn ended.
    pub lost_in_network: f64,
}

impl VideoNotShown {
    /// Splits the video frames not shown in `r` by reason.
    pub fn of(r: &TurnReport) -> Self {
        let v = Modality::Video.index();
        let c = &r.summary.counters;
        Self::split(
            r.planned[v],
            r.presented[v].len() as u64,
            [
                r.store.dropped_no_path[v],
                r.store.dropped_expired[v],
                c.video_skipped + c.late_after_skip,
                r.deadline_resets,
            ],
        )
    }

    /// Shares of `planned` for `planned - shown` frames not shown, given the counts of
    /// `[no path in time, expired at sender, arrived too late, reset in flight]`. Each reason
    /// is capped by what the reasons before it left unexplained, so the shares add up to
    /// exactly the share not shown; what none explains is counted lost in the network.
    pub fn split(planned: u64, shown: u64, counts: [u64; 4]) -> Self {
        if planned == 0 {
            return Self::default();
        }
        let mut left = planned.saturating_sub(shown);
        let mut take = |n: u64| {
            let t = n.min(left);
            left -= t;
            t as f64 / planned as f64
        };
        let [no_path, expired, late, reset] = counts;
        let no_path_in_time = take(no_path);
        let expired_at_sender = take(expired);
        let arrived_too_late = take(late);
        let reset_in_flight = take(reset);
        let lost_in_network = take(u64::MAX);
        VideoNotShown {
            no_path_in_time,
            expired_at_sender,
            reset_in_flight,
            arrived_too_late,
            lost_in_network,
        }
    }

    /// Sum of the shares.
    pub fn total(&self) -> f64 {
        self.no_path_in_time
            + self.expired_at_sender
            + self.reset_in_flight
            + self.arrived_too_late
            + self.lost_in_network
    }
}

/// Runs one experiment; a run whose session does not start is an error, not a panic.
pub fn run(e: &Experiment) -> Result<RunMetrics, RunError> {
    let (setup, turn, events) = prepare(e);
    let report = run_turn(&setup, &turn, &events)?;
    Ok(metrics(e, &report))
}

/// [`run`], with every datagram captured (pcaps and the TLS key log, see [`crate::pcap`]).
pub fn run_captured(e: &Experiment) -> Result<(RunMetrics, TurnCapture), RunError> {
    let (setup, turn, events) = prepare(e);
    let (report, capture) = run_turn_captured(&setup, &turn, &events)?;
    Ok((metrics(e, &report), capture))
}

fn prepare(e: &Experiment) -> (Setup, TurnConfig, Vec<NetEvent>) {
    let turn = TurnConfig {
        duration_ms: e.scenario.turn_ms.unwrap_or(e.turn.duration_ms),
        ..e.turn.clone()
    };
    let setup = Setup {
        paths: e.scenario.paths.clone(),
        scheduler: e.scheduler.factory(),
        receiver: ReceiverConfig {
            playout: e.policy,
            arrival_log: true,
            ..Default::default()
        },
        camp: CampConfig::default(),
        seed: e.seed,
    };
    let mut events: Vec<NetEvent> = e
        .scenario
        .outages
        .iter()
        .map(|&(path, from_ms, until_ms)| NetEvent::Outage {
            path,
            from_ms,
            until_ms,
        })
        .collect();
    events.extend(
        e.scenario
            .steps
            .iter()
            .map(|&(path, step)| NetEvent::Step { path, step }),
    );
    (setup, turn, events)
}

fn ms(us: f64) -> f64 {
    us / 1000.0
}

/// Delta_k per complete group from the arrival log: `(media time of k, Delta_k)` in µs,
/// ordered by k. a_m,k is the arrival of the last unit of modality m with index k; groups
/// with fewer than two modalities are left out (draft §3.1.4).
pub fn skew_series(arrivals: &[camp_recv::ArrivalRecord]) -> Vec<(u64, u64)> {
    let mut groups: BTreeMap<u32, ([Option<u64>; 3], u64)> = BTreeMap::new();
    for a in arrivals {
        let g = groups.entry(a.sync_index).or_insert(([None; 3], u64::MAX));
        let slot = &mut g.0[a.modality.index()];
        *slot = Some(slot.map_or(a.arrival_us, |t| t.max(a.arrival_us)));
        g.1 = g.1.min(a.gen_us);
    }
    groups
        .values()
        .filter_map(|(arr, gen_us)| {
            let present: Vec<u64> = arr.iter().flatten().copied().collect();
            (present.len() >= 2).then(|| {
                let max = present.iter().max().copied().unwrap_or(0);
                let min = present.iter().min().copied().unwrap_or(0);
                (*gen_us, max - min)
            })
        })
        .collect()
}

/// Audio lateness `max(a − g, 0)` of every audio unit that arrived, by media time, µs.
pub fn audio_lateness_series(arrivals: &[camp_recv::ArrivalRecord]) -> Vec<(u64, u64)> {
    let mut s: Vec<(u64, u64)> = arrivals
        .iter()
        .filter(|a| a.modality == Modality::Audio)
        .map(|a| (a.gen_us, a.arrival_us.saturating_sub(a.gen_us)))
        .collect();
    s.sort_unstable();
    s
}

/// Recovery from one outage `[from_us, until_us)`, judged on several series of
/// `(media time, value)` (Delta_k per group, audio lateness per frame): for each series the
/// first sample after `until_us` from which 1 s of consecutive samples all lie within the
/// series' own pre-outage range, `max(2 × p95, p95 + 10 ms)` over the 5 s before the outage
/// (samples at or after `not_before_us`, the end of a previous outage, only); the recovery is
/// the latest of those, from `until_us`, ms. A series with no samples before the outage is
/// not judged. `None` if some series never settles.
pub fn recovery_ms(
    series: &[&[(u64, u64)]],
    not_before_us: u64,
    from_us: u64,
    until_us: u64,
) -> Option<f64> {
    let mut worst = 0.0_f64;
    for s in series {
        if let Some(r) = settle_ms(s, not_before_us, from_us, until_us)? {
            worst = worst.max(r);
        }
    }
    Some(worst)
}

/// One series' settle time: `None` if it never settles, `Some(None)` if it cannot be judged
/// (no samples before the outage).
fn settle_ms(
    series: &[(u64, u64)],
    not_before_us: u64,
    from_us: u64,
    until_us: u64,
) -> Option<Option<f64>> {
    let mut before: Vec<u64> = series
        .iter()
        .filter(|(g, _)| *g + 5_000_000 >= from_us && *g < from_us && *g >= not_before_us)
        .map(|&(_, d)| d)
        .collect();
    if before.is_empty() {
        return Some(None);
    }
    before.sort_unstable();
    let p95 = before[(before.len() * 95).div_ceil(100).saturating_sub(1)];
    let limit = (2 * p95).max(p95 + 10_000);
    let after: Vec<(u64, u64)> = series
        .iter()
        .copied()
        .filter(|(g, _)| *g >= until_us)
        .collect();
    for (i, &(g, _)) in after.iter().enumerate() {
        let window: Vec<_> = after[i..]
            .iter()
            .take_while(|(t, _)| *t < g + 1_000_000)
            .collect();
        let spans_second = after[i..].iter().any(|(t, _)| *t >= g + 1_000_000);
        if spans_second && window.iter().all(|(_, d)| *d <= limit) {
            return Some(Some(ms(g.saturating_sub(until_us) as f64)));
        }
    }
    None
}

/// Mean and 95th percentile (nearest rank) of presentation − media time over the presented
/// units of an arrival log, ms; (0, 0) when nothing was presented.
pub fn total_delay(arrivals: &[camp_recv::ArrivalRecord]) -> (f64, f64) {
    let mut d: Vec<u64> = arrivals
        .iter()
        .filter_map(|a| a.present_us.map(|p| p.saturating_sub(a.gen_us)))
        .collect();
    if d.is_empty() {
        return (0.0, 0.0);
    }
    d.sort_unstable();
    let mean = d.iter().sum::<u64>() as f64 / d.len() as f64;
    let rank = (d.len() * 95).div_ceil(100).max(1) - 1;
    (ms(mean), ms(d[rank] as f64))
}

/// Share of arrived units that missed their deadline. A miss is counted at a unit's first
/// arrival, so the share is over first arrivals (the latency samples), not over units
/// delivered in order: a video frame that arrives after its gap was declared lost misses
/// without being delivered, which put P4's single-path video share at 1.0133 (issue 14).
pub fn miss_share(misses: u64, arrivals: u64) -> f64 {
    if arrivals == 0 {
        0.0
    } else {
        misses.min(arrivals) as f64 / arrivals as f64
    }
}

fn metrics(e: &Experiment, r: &TurnReport) -> RunMetrics {
    let s = &r.summary;
    let per =
        |f: &dyn Fn(&camp_recv::ModalitySummary) -> f64| [0, 1, 2].map(|i| f(&s.per_modality[i]));
    let series = skew_series(&r.arrivals);
    let felt = total_delay(&r.arrivals);
    let audio = audio_lateness_series(&r.arrivals);
    let mut outages: Vec<(u64, u64)> = e
        .scenario
        .outages
        .iter()
        .map(|&(_, from, until)| {
            (
                r.turn_start_us + from * 1000,
                r.turn_start_us + until * 1000,
            )
        })
        .collect();
    outages.sort_unstable();
    let mut settled = Vec::new();
    let mut unsettled = 0u32;
    let mut previous_end = 0;
    for &(from, until) in &outages {
        match recovery_ms(&[&series, &audio], previous_end, from, until) {
            Some(ms) => settled.push(ms),
            None => unsettled += 1,
        }
        previous_end = previous_end.max(until);
    }
    let recovery =
        (!settled.is_empty()).then(|| settled.iter().sum::<f64>() / settled.len() as f64);
    let recovery_max = settled.iter().copied().reduce(f64::max);
    let sent: u64 = r.bytes_per_path.iter().sum();
    let total = sent.max(1) as f64;
    let deadline_miss = per(&|m| miss_share(m.deadline_misses, m.latency.count));
    RunMetrics {
        scheduler: format!("{:?}", e.scheduler).to_lowercase(),
        policy: e.policy.name().to_string(),
        profile: e.scenario.profile.clone(),
        variant: e.scenario.variant.clone(),
        seed: e.seed,
        turn_ms: e.scenario.turn_ms.unwrap_or(e.turn.duration_ms),
        l_ms: ms(s.latency.mean_us),
        l_p50_ms: ms(s.latency.p50_us as f64),
        l_p95_ms: ms(s.latency.p95_us as f64),
        l_p99_ms: ms(s.latency.p99_us as f64),
        l_by_modality_ms: per(&|m| ms(m.latency.mean_us)),
        l_p99_by_modality_ms: per(&|m| ms(m.latency.p99_us as f64)),
        c_ms: ms(s.skew_c_us),
        skew_p95_ms: ms(s.skew_p95_us as f64),
        skew_p99_ms: ms(s.skew_p99_us as f64),
        outside_bt1359: s.outside_bt1359,
        outside_is191: s.outside_is191,
        added_delay_ms: ms(s.added_delay.mean_us),
        playout_delay_ms: ms(s.playout_delay_us as f64),
        stalls: s.counters.stalls,
        deadline_miss,
        audio_deadline_miss: deadline_miss[Modality::Audio.index()],
        reliable_lost: r.reliable_lost(),
        video_shown: r.presented[Modality::Video.index()].len() as f64
            / r.planned[Modality::Video.index()].max(1) as f64,
        total_delay_ms: felt.0,
        total_delay_p95_ms: felt.1,
        video_not_shown: VideoNotShown::of(r),
        redundant_bytes_pct: (sent as f64 / r.unique_bytes.max(1) as f64 - 1.0).max(0.0) * 100.0,
        path_share: r.bytes_per_path.iter().map(|&b| b as f64 / total).collect(),
        recovery_ms: recovery,
        recovery_max_ms: recovery_max,
        recovery_unsettled: unsettled,
        deltas_ms: series.iter().map(|&(_, d)| ms(d as f64)).collect(),
        speedup: r.simulated.as_secs_f64() / r.wall.as_secs_f64().max(1e-9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_miss_share_is_over_arrivals_and_within_0_and_1() {
        assert_eq!(miss_share(0, 0), 0.0);
        assert_eq!(miss_share(3, 12), 0.25);
        assert_eq!(miss_share(7, 7), 1.0);
    }

    #[test]
    fn total_delay_is_presentation_minus_media_time_of_presented_units() {
        let mut log: Vec<camp_recv::ArrivalRecord> = (0..20)
            .map(|i| {
                let mut a = rec(Modality::Audio, i, u64::from(i) * 40_000, 0);
                a.present_us = Some(a.gen_us + 100_000 + u64::from(i) * 1_000);
                a
            })
            .collect();
        // Not presented: not counted. Arrived early (arrival before g) changes nothing.
        log.push(rec(Modality::Video, 3, 120_000, 50_000));
        let (mean, p95) = total_delay(&log);
        assert!((mean - 109.5).abs() < 1e-9, "{mean}");
        assert_eq!(p95, 118.0);
        assert_eq!(total_delay(&[]), (0.0, 0.0));
    }

    #[test]
    fn video_not_shown_is_split_by_reason_and_adds_up_to_what_was_not_shown() {
        // 100 planned, 80 shown: 5 no path, 4 expired, 3 too late, 2 reset, 6 unexplained.
        let v = VideoNotShown::split(100, 80, [5, 4, 3, 2]);
        assert_eq!(
            (
                v.no_path_in_time,
                v.expired_at_sender,
                v.arrived_too_late,
                v.reset_in_flight,
                v.lost_in_network
            ),
            (0.05, 0.04, 0.03, 0.02, 0.06)
        );
        assert!((v.total() - 0.20).abs() < 1e-12);
        // Counters that overlap (a reset frame also skipped late) never exceed the missing.
        let v = VideoNotShown::split(10, 8, [0, 0, 5, 5]);
        assert_eq!(
            (v.arrived_too_late, v.reset_in_flight, v.lost_in_network),
            (0.2, 0.0, 0.0)
        );
        // Everything shown, or nothing planned: no reason at all.
        assert_eq!(VideoNotShown::split(10, 10, [1, 1, 1, 1]).total(), 0.0);
        assert_eq!(
            VideoNotShown::split(0, 0, [1, 1, 1, 1]),
            VideoNotShown::default()
        );
    }

    fn rec(m: Modality, k: u32, g: u64, a: u64) -> camp_recv::ArrivalRecord {
        camp_recv::ArrivalRecord {
            modality: m,
            seq: 0,
            sync_index: k,
            path: camp_wire::PathId(0),
            gen_us: g,
            arrival_us: a,
            present_us: None,
        }
    }

    #[test]
    fn skew_series_takes_last_unit_per_modality_and_needs_two_modalities() {
        let a = [
            rec(Modality::Text, 1, 40, 100),
            rec(Modality::Audio, 1, 40, 110),
            rec(Modality::Audio, 1, 60, 130),
            rec(Modality::Video, 1, 40, 125),
            rec(Modality::Video, 2, 80, 200),
        ];
        assert_eq!(skew_series(&a), vec![(40, 30)]);
    }

    #[test]
    fn recovery_is_measured_from_the_end_of_the_outage() {
        // 40 ms groups: 5 ms skew before, 200 ms during and until 0.5 s after, then 5 ms.
        let mut s = Vec::new();
        for k in 0..500u64 {
            let g = k * 40_000;
            let d = if (10_000_000..12_500_000).contains(&g) {
                200_000
            } else {
                5_000
            };
            s.push((g, d));
        }
        let r = recovery_ms(&[&s], 0, 10_000_000, 12_000_000).unwrap();
        assert!((r - 520.0).abs() < 1.0, "{r}");
        // Never settles.
        let bad: Vec<_> = s
            .iter()
            .map(|&(g, d)| (g, if g >= 10_000_000 { 300_000 } else { d }))
            .collect();
        assert_eq!(recovery_ms(&[&bad], 0, 10_000_000, 12_000_000), None);
        // Judged on every series: audio that is late until 1.2 s after the outage makes
        // the recovery that long even when the skew settled sooner.
        let audio: Vec<(u64, u64)> = (0..1_000u64)
            .map(|k| {
                let g = k * 20_000;
                (
                    g,
                    if (10_000_000..13_200_000).contains(&g) {
                        400_000
                    } else {
                        1_000
                    },
                )
            })
            .collect();
        let r = recovery_ms(&[&s, &audio], 0, 10_000_000, 12_000_000).unwrap();
        assert!((r - 1_200.0).abs() < 1.0, "{r}");
        // A second outage is judged against the samples after the first one ended: a
        // turn whose skew stayed high after outage 1 still measures outage 2 against that.
        let r2 = recovery_ms(&[&bad], 12_000_000, 16_000_000, 17_000_000);
        assert_eq!(r2, Some(0.0));
    }
}
