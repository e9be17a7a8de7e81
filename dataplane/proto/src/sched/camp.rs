//! The consistency-aware scheduler (draft-song-tsvwg-camp-00 §4.3).
//!
//! For every unit and every eligible path it predicts the arrival time (backlog drained at
//! the path's rate, plus the one-way delay, plus a variance margin). Units of one sync index
//! `k` are aimed at the group's predicted arrival `T_k`, so that the group lands together
//! (small Delta_k) without slowing the group down:
//!
//! * the first unit of a group takes the path with the earliest pessimistic arrival and
//!   sets `T_k` to it;
//! * a later unit of the group takes the path whose arrival lies closest to `T_k`, where
//!   arriving after `T_k` costs `late_weight` per µs (it delays the whole group and raises
//!   latency) and arriving before costs `early_weight` per µs (it only widens the skew);
//!   `T_k` then becomes the latest arrival of the group;
//! * a path whose predicted arrival misses the unit's deadline is used only when no path
//!   can meet it; a droppable unit no path can deliver in time is dropped;
//! * when the best path has no window room but would still deliver sooner than any path
//!   that has room, the unit is held for it (ECF/BLEST-style waiting) instead of spilling
//!   onto a slow path;
//! * **reliable units keep their deadline**: a droppable unit (video) may build a queue on a
//!   path only while a reliable unit (speech, text) sent after it on that path would still
//!   arrive within the tightest reliable deadline seen (deadline − media time). The bound
//!   follows the units' own deadlines and the path's measured rate and delay; the fixed
//!   `max_droppable_queue_us` stays as an outer bound. (A variant that let video fill a
//!   path whenever another path could carry speech in time lost speech when that other path
//!   failed: docs/schedulers.md);
//! * **pacing to the media timeline**: a unit handed over ahead of its media timestamp `g`
//!   (LLM text, TTS bursts) is held until it can be sent on its path to arrive at
//!   `g + aim_offset - early_guard`, instead of arriving hundreds of milliseconds before the
//!   rest of its group. Arriving before `g` never makes a unit late, so this removes
//!   inter-modal arrival skew without adding lateness;
//! * **but never so late that a failover cannot save it**: a reliable unit with a deadline
//!   leaves no later than its media time (or its deadline, if sooner) minus the time the
//!   session needs to declare its path failed (`PathView::failover_us`) minus the transit on
//!   the best other path, so that a path going dark right after the send still gets the
//!   unit reinjected before it is due. Pacing only ever trimmed arrival skew, which the
//!   receiver's alignment hides from the viewer; a speech frame lost with a path is a stall
//!   the viewer hears, and one rescued after its media time raises the playout delay for
//!   the rest of the turn.
//!
//! State is a fixed ring of recent groups: no allocation per decision.

use camp_wire::{Micros, Reliability, SyncIndex};

use super::{
    ClientFeedback, Decision, ParamError, PathSet, PathView, SchedParam, Scheduler, UnitInfo,
    eligible,
};

/// Tuning of [`ConsistencyAware`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConsistencyAwareConfig {
    /// Cost per µs of arriving after the group's predicted arrival.
    pub late_weight: f64,
    /// Cost per µs of arriving before the group's predicted arrival.
    pub early_weight: f64,
    /// Multiple of the path's variance margin added to predictions.
    pub margin_factor: f64,
    /// Inter-modal skew the scheduler considers good enough, µs: arrivals within this
    /// distance of the group target cost nothing.
    pub target_skew_us: u64,
    /// Hold units released ahead of their media time (see the module docs).
    pub pace_to_media_time: bool,
    /// Where an early unit is aimed relative to its media time, µs (0: just in time).
    pub aim_offset_us: u64,
    /// Safety margin before the aim point, µs, added to the path's variance margin.
    pub early_guard_us: u64,
    /// Droppable units are never placed on a path whose queueing delay would exceed this
    /// once they are sent, µs: an outer bound. Within it the scheduler's own rule applies
    /// (see the module docs: reliable units keep their deadline on the path).
    pub max_droppable_queue_us: u64,
    /// Reliable units up to this size (bytes on the wire) are sent on two paths.
    pub duplicate_reliable_below: u32,
    /// A unit is never sent longer than this before its media time, whatever the prediction
    /// says (a badly inflated prediction during a failover must not release a whole queue of
    /// future text seconds early).
    pub max_lead_us: u64,
}

impl Default for ConsistencyAwareConfig {
    fn default() -> Self {
        Self {
            late_weight: 1.0,
            early_weight: 0.5,
            margin_factor: 1.0,
            target_skew_us: 2_000,
            pace_to_media_time: true,
            aim_offset_us: 0,
            early_guard_us: 10_000,
            max_lead_us: 1_000_000,
            max_droppable_queue_us: 150_000,
            duplicate_reliable_below: 300,
        }
    }
}

const GROUP_RING: usize = 256;

#[derive(Clone, Copy, Debug, Default)]
struct Group {
    valid: bool,
    sync_index: SyncIndex,
    target_us: Micros,
}

/// The CAMP consistency-aware scheduler.
#[derive(Debug, Clone)]
pub struct ConsistencyAware {
    config: ConsistencyAwareConfig,
    groups: [Group; GROUP_RING],
    feedback: ClientFeedback,
    /// Tightest relative deadline (deadline − media time) of the reliable units seen, µs.
    reliable_budget_us: Option<u64>,
}

impl Default for ConsistencyAware {
    fn default() -> Self {
        Self::new(ConsistencyAwareConfig::default())
    }
}

impl ConsistencyAware {
    /// A scheduler with the given tuning.
    pub fn new(config: ConsistencyAwareConfig) -> Self {
        Self {
            config,
            groups: [Group::default(); GROUP_RING],
            feedback: ClientFeedback::default(),
            reliable_budget_us: None,
        }
    }

    /// Current tuning.
    pub fn config(&self) -> &ConsistencyAwareConfig {
        &self.config
    }

    /// Replaces the tuning (takes effect on the next decision).
    pub fn set_config(&mut self, config: ConsistencyAwareConfig) {
        self.config = config;
    }

    /// The predicted arrival the group `k` is aimed at, if the scheduler placed a unit of it.
    pub fn group_target(&self, k: SyncIndex) -> Option<Micros> {
        let g = &self.groups[k as usize % GROUP_RING];
        (g.valid && g.sync_index == k).then_some(g.target_us)
    }

    fn pessimistic_arrival(&self, p: &PathView, unit: &UnitInfo) -> Micros {
        let margin = (p.margin_us() as f64 * self.config.margin_factor) as u64;
        p.predicted_arrival_us(unit.now_us, u64::from(unit.size))
            .saturating_add(margin)
    }

    /// Queueing delay on `p` once the unit is sent: everything ahead of it (in flight, held
    /// by quinn, the unit itself) drained at the path's rate, minus the part that is simply
    /// in transit (one minimum RTT's worth).
    fn queue_after_us(&self, p: &PathView, unit: &UnitInfo) -> u64 {
        let bytes = p
            .in_flight
            .saturating_add(p.unsent)
            .saturating_add(u64::from(unit.size));
        let drain = bytes.saturating_mul(1_000_000) / p.send_rate();
        drain.saturating_sub(p.min_rtt_us)
    }

    /// Whether a reliable unit sent on `p` after `bytes` more would arrive within `budget`
    /// of its media time, taking its media time as now (speech is released at the latest in
    /// real time).
    fn reliable_fits_after(&self, p: &PathView, now_us: Micros, bytes: u64, budget: u64) -> bool {
        let backlog = p.in_flight.saturating_add(p.unsent).saturating_add(bytes);
        let queue =
            (backlog.saturating_mul(1_000_000) / p.send_rate()).saturating_sub(p.min_rtt_us);
        let margin = (p.margin_us() as f64 * self.config.margin_factor) as u64;
        let arrival = now_us
            .saturating_add(queue)
            .saturating_add(p.one_way_delay_us())
            .saturating_add(margin);
        arrival <= now_us.saturating_add(budget)
    }

    /// Latest time a reliable unit may leave on path `slot` so that, if the path went dark
    /// at once, the session would still detect it (`failover_us`) and the copy it then sends
    /// on the best other path would arrive by the unit's media time (its deadline if that
    /// comes first). `Micros::MAX` when there
    /// is no deadline, no other path, or the unit is droppable (never resent).
    fn failover_send_by(
        &self,
        unit: &UnitInfo,
        paths: &[PathView],
        set: PathSet,
        slot: usize,
    ) -> Micros {
        let (Reliability::Reliable, Some(deadline)) = (unit.reliability, unit.deadline_us) else {
            return Micros::MAX;
        };
        // By the media time, not only the deadline: a rescue that lands between the two is
        // not a miss, but the receiver must raise its playout delay to cover it, and with no
        // silence to lower it in, every unit after it pays that lateness (lossyfirst2: the
        // paced speech rescued over the slow path raised `D` by 20-100 ms for the rest of
        // the turn). A unit released in real time is not held at all, so this only bounds
        // how long pacing may hold a unit released ahead.
        let deadline = deadline.min(unit.gen_time_us + self.config.aim_offset_us);
        let Some(chosen) = paths.iter().find(|p| p.slot as usize == slot) else {
            return Micros::MAX;
        };
        let rescue = paths
            .iter()
            .filter(|p| set.contains(p.slot as usize) && p.slot as usize != slot)
            .map(|p| {
                self.pessimistic_arrival(p, unit)
                    .saturating_sub(unit.now_us)
            })
            .min();
        match rescue {
            Some(transit) => deadline
                .saturating_sub(chosen.failover_us)
                .saturating_sub(transit),
            None => Micros::MAX,
        }
    }

    fn cost(&self, arrival: Micros, target: Option<Micros>) -> f64 {
        let Some(t) = target else {
            return arrival as f64;
        };
        let slack = self.config.target_skew_us;
        if arrival > t + slack {
            (arrival - t - slack) as f64 * self.config.late_weight
        } else if arrival + slack < t {
            (t - arrival - slack) as f64 * self.config.early_weight
        } else {
            0.0
        }
    }
}

impl Scheduler for ConsistencyAware {
    fn name(&self) -> &'static str {
        "camp"
    }

    fn set_param(&mut self, param: SchedParam, value: f64) -> Result<(), ParamError> {
        let invalid = ParamError::Invalid { param, value };
        if !value.is_finite() || value < 0.0 {
            return Err(invalid);
        }
        // Whole microseconds/bytes; at most ~1 hour of µs so sums cannot overflow.
        let whole = |max: f64| {
            if value.fract() == 0.0 && value <= max {
                Ok(value as u64)
            } else {
                Err(invalid)
            }
        };
        let c = &mut self.config;
        match param {
            SchedParam::TargetSkewUs => c.target_skew_us = whole(3.6e9)?,
            SchedParam::MarginFactor if value <= 100.0 => c.margin_factor = value,
            SchedParam::MarginFactor => return Err(invalid),
            SchedParam::EarlyGuardUs => c.early_guard_us = whole(3.6e9)?,
            SchedParam::MaxDroppableQueueUs => c.max_droppable_queue_us = whole(3.6e9)?,
            SchedParam::DuplicateReliableBelow => {
                c.duplicate_reliable_below = whole(f64::from(u32::MAX))? as u32
            }
            SchedParam::MaxLeadUs => c.max_lead_us = whole(3.6e9)?,
        }
        Ok(())
    }

    fn pick(&mut self, unit: &UnitInfo, paths: &[PathView]) -> Decision {
        let set = eligible(unit, paths);
        if set.is_empty() {
            return Decision::Hold { retry_at_us: None };
        }
        let target = self.group_target(unit.sync_index);
        let deadline = unit.deadline_us.unwrap_or(Micros::MAX);
        if unit.reliability == Reliability::Reliable
            && let Some(d) = unit.deadline_us
        {
            let budget = d.saturating_sub(unit.gen_time_us);
            self.reliable_budget_us =
                Some(self.reliable_budget_us.map_or(budget, |b| b.min(budget)));
        }
        // (cost, arrival, slot, has_room) of the best path meeting the deadline, and the
        // earliest-arriving path overall as the fallback when none meets it.
        let mut best: Option<(f64, Micros, usize, bool)> = None;
        let mut earliest: Option<(Micros, usize, bool)> = None;
        for p in paths.iter().filter(|p| set.contains(p.slot as usize)) {
            let arrival = self.pessimistic_arrival(p, unit);
            let slot = p.slot as usize;
            if earliest.is_none_or(|(a, s, _)| (arrival, slot) < (a, s)) {
                earliest = Some((arrival, slot, p.has_room));
            }
            if arrival > deadline {
                continue;
            }
            if unit.reliability == Reliability::Droppable {
                if self.queue_after_us(p, unit) > self.config.max_droppable_queue_us {
                    continue;
                }
                // Droppable media must not build a queue that reliable units (speech) would
                // then miss their deadline behind on this path.
                if let Some(budget) = self.reliable_budget_us
                    && !self.reliable_fits_after(p, unit.now_us, u64::from(unit.size), budget)
                {
                    continue;
                }
            }
            let cost = self.cost(arrival, target);
            let better = match best {
                None => true,
                Some((c, a, s, _)) => (cost, arrival, slot) < (c, a, s),
            };
            if better {
                best = Some((cost, arrival, slot, p.has_room));
            }
        }

        let (arrival, slot, has_room) = match (best, earliest) {
            (Some((_, a, s, r)), _) => (a, s, r),
            (None, Some((a, s, r))) => {
                if unit.reliability == Reliability::Droppable {
                    return Decision::Drop;
                }
                (a, s, r)
            }
            (None, None) => return Decision::Hold { retry_at_us: None },
        };
        if self.config.pace_to_media_time {
            let aim = unit.gen_time_us + self.config.aim_offset_us;
            let latest_arrival = aim.saturating_sub(self.config.early_guard_us);
            let not_before = aim.saturating_sub(self.config.max_lead_us);
            if arrival < latest_arrival || unit.now_us < not_before {
                // Sending now would land far ahead of the media time: wait, so that the unit
                // still arrives ahead of `aim` by the guard plus the path's margin.
                let paced = unit.now_us + latest_arrival.saturating_sub(arrival);
                let send_at = paced
                    .min(self.failover_send_by(unit, paths, set, slot))
                    .max(not_before)
                    .min(latest_arrival);
                if send_at > unit.now_us {
                    return Decision::Hold {
                        retry_at_us: Some(send_at),
                    };
                }
            }
        }
        if !has_room {
            // The chosen path is worth waiting for (its prediction already includes the
            // wait for window room); the session asks again when it gains room.
            return Decision::Hold { retry_at_us: None };
        }

        let g = &mut self.groups[unit.sync_index as usize % GROUP_RING];
        if g.valid && g.sync_index == unit.sync_index {
            g.target_us = g.target_us.max(arrival);
        } else {
            *g = Group {
                valid: true,
                sync_index: unit.sync_index,
                target_us: arrival,
            };
        }
        let mut send = PathSet::single(slot);
        if unit.reliability == Reliability::Reliable
            && unit.size <= self.config.duplicate_reliable_below
        {
            // Small reliable units (speech frames, text tokens) also go on the best other
            // path that can take them: about 1% more bytes, and a path that goes dark costs
            // no stall while it is being detected.
            let second = paths
                .iter()
                .filter(|p| set.contains(p.slot as usize) && p.slot as usize != slot && p.has_room)
                .map(|p| (self.pessimistic_arrival(p, unit), p.slot as usize))
                .filter(|&(a, _)| a <= deadline)
                .min();
            if let Some((_, s)) = second {
                send = send.with(s);
            }
        }
        Decision::Send(send)
    }

    fn on_feedback(&mut self, feedback: &ClientFeedback) {
        self.feedback = *feedback;
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{path, unit};
    use super::*;
    use camp_wire::Modality;

    #[test]
    fn set_param_changes_the_config_and_refuses_bad_values() {
        let mut s = ConsistencyAware::default();
        s.set_param(SchedParam::TargetSkewUs, 5_000.0).unwrap();
        s.set_param(SchedParam::MarginFactor, 2.5).unwrap();
        s.set_param(SchedParam::DuplicateReliableBelow, 0.0)
            .unwrap();
        s.set_param(SchedParam::MaxLeadUs, 250_000.0).unwrap();
        let c = *s.config();
        assert_eq!(c.target_skew_us, 5_000);
        assert_eq!(c.margin_factor, 2.5);
        assert_eq!(c.duplicate_reliable_below, 0);
        assert_eq!(c.max_lead_us, 250_000);
        for (p, v) in [
            (SchedParam::TargetSkewUs, -1.0),
            (SchedParam::TargetSkewUs, 1.5),
            (SchedParam::EarlyGuardUs, f64::NAN),
            (SchedParam::MaxLeadUs, f64::INFINITY),
            (SchedParam::MaxDroppableQueueUs, 1e12),
            (SchedParam::MarginFactor, 1e9),
            (SchedParam::DuplicateReliableBelow, 5e9),
        ] {
            assert!(
                matches!(s.set_param(p, v), Err(ParamError::Invalid { .. })),
                "{p:?} = {v}"
            );
        }
        assert_eq!(*s.config(), c, "refusals change nothing");
        // Baselines have no parameters.
        assert!(matches!(
            super::super::MinRtt.set_param(SchedParam::TargetSkewUs, 1.0),
            Err(ParamError::Unsupported {
                scheduler: "minrtt",
                ..
            })
        ));
    }

    #[test]
    fn a_larger_early_guard_releases_early_units_sooner() {
        // A unit whose media time is 2 s away is held until just before it; a larger guard
        // releases it correspondingly sooner.
        let paths = [path(0, 20, 50)];
        let mut u = unit(Modality::Text, 0, 100, 0);
        u.gen_time_us = 2_000_000;
        u.deadline_us = None;
        let mut s = ConsistencyAware::default();
        let Decision::Hold {
            retry_at_us: Some(a),
        } = s.pick(&u, &paths)
        else {
            panic!("held")
        };
        let mut s2 = ConsistencyAware::default();
        s2.set_param(SchedParam::EarlyGuardUs, 210_000.0).unwrap();
        let Decision::Hold {
            retry_at_us: Some(b),
        } = s2.pick(&u, &paths)
        else {
            panic!("held")
        };
        assert_eq!(a - b, 200_000, "released 200 ms sooner: {a} vs {b}");
    }

    /// CAMP without the duplication of small reliable units, to test placement alone.
    fn placement_only() -> ConsistencyAware {
        ConsistencyAware::new(ConsistencyAwareConfig {
            duplicate_reliable_below: 0,
            ..ConsistencyAwareConfig::default()
        })
    }

    #[test]
    fn first_unit_of_group_takes_earliest_arrival() {
        let mut s = placement_only();
        // Path 0: 40 ms RTT, fast; path 1: 10 ms RTT, slow. A big frame is faster on path 0.
        let p = [path(0, 40, 100), path(1, 10, 1)];
        let v = unit(Modality::Video, 7, 60_000, 0);
        assert_eq!(s.pick(&v, &p), Decision::Send(PathSet::single(0)));
        assert!(s.group_target(7).is_some());
    }

    #[test]
    fn later_units_of_group_are_aimed_at_the_group_target() {
        let mut s = placement_only();
        let mut p = [path(0, 40, 100), path(1, 10, 100)];
        // Video of group 3 forced onto path 0 (the only one with room).
        p[1].has_room = false;
        p[1].usable = false;
        let v = unit(Modality::Video, 3, 8_000, 0);
        assert_eq!(s.pick(&v, &p), Decision::Send(PathSet::single(0)));
        p[1].has_room = true;
        p[1].usable = true;
        // Audio of group 3: path 1 would land ~15 ms before the video; path 0 lands with it.
        let a = unit(Modality::Audio, 3, 120, 0);
        assert_eq!(s.pick(&a, &p), Decision::Send(PathSet::single(0)));
        // Audio of a new group goes to the fastest path.
        let a2 = unit(Modality::Audio, 4, 120, 0);
        assert_eq!(s.pick(&a2, &p), Decision::Send(PathSet::single(1)));
    }

    #[test]
    fn holds_for_a_full_fast_path_rather_than_spilling_to_a_much_slower_one() {
        let mut s = placement_only();
        let mut p = [path(0, 10, 50), path(1, 300, 50)];
        p[0].has_room = false;
        let a = unit(Modality::Audio, 1, 120, 0);
        assert_eq!(s.pick(&a, &p), Decision::Hold { retry_at_us: None });
    }

    #[test]
    fn a_unit_released_ahead_of_its_media_time_is_held_until_it_would_arrive_just_before_it() {
        let mut s = placement_only();
        let p = [path(0, 20, 50)];
        let mut a = unit(Modality::Audio, 9, 120, 0);
        a.gen_time_us = 300_000;
        a.deadline_us = Some(450_000);
        let arrival = s.pessimistic_arrival(&p[0], &a);
        let Decision::Hold {
            retry_at_us: Some(t),
        } = s.pick(&a, &p)
        else {
            panic!("early unit must be held")
        };
        assert_eq!(t, 300_000 - 10_000 - arrival);
        // At the retry time it goes out.
        a.now_us = t;
        assert_eq!(s.pick(&a, &p), Decision::Send(PathSet::single(0)));
        // Without pacing it would have gone at once.
        let mut s = ConsistencyAware::new(ConsistencyAwareConfig {
            pace_to_media_time: false,
            ..ConsistencyAwareConfig::default()
        });
        a.now_us = 0;
        assert_eq!(s.pick(&a, &p), Decision::Send(PathSet::single(0)));
    }

    #[test]
    fn speech_released_early_leaves_in_time_for_a_failover_rescue() {
        let mut s = placement_only();
        let p = [path(0, 10, 20), path(1, 60, 20)];
        let mut a = unit(Modality::Audio, 25, 120, 0);
        a.gen_time_us = 1_000_000;
        a.deadline_us = Some(1_150_000);
        // Were path 0 to go dark at the send, it would be declared failed after
        // `failover_us`, and the copy on path 1 would need its transit on top; the copy is
        // to land by the media time (before the deadline here), or the receiver would have
        // to raise its delay to cover it.
        let rescue = s.pessimistic_arrival(&p[1], &a);
        let send_by = 1_000_000 - p[0].failover_us - rescue;
        let Decision::Hold {
            retry_at_us: Some(t),
        } = s.pick(&a, &p)
        else {
            panic!("held")
        };
        assert_eq!(t, send_by);
        // Plain pacing alone would have held it until just before its media time.
        let paced = 1_000_000 - 10_000 - s.pessimistic_arrival(&p[0], &a);
        assert!(send_by < paced, "{send_by} vs {paced}");
        // With one path there is nothing to fail over to: pacing alone decides.
        let Decision::Hold {
            retry_at_us: Some(t),
        } = s.pick(&a, &p[..1])
        else {
            panic!("held")
        };
        assert_eq!(t, paced);
        // Droppable video is never resent, so it gets no failover lead.
        let mut v = unit(Modality::Video, 25, 8_000, 0);
        v.gen_time_us = 1_000_000;
        v.deadline_us = Some(1_200_000);
        let Decision::Hold {
            retry_at_us: Some(t),
        } = s.pick(&v, &p)
        else {
            panic!("held")
        };
        assert_eq!(t, 1_000_000 - 10_000 - s.pessimistic_arrival(&p[0], &v));
    }

    #[test]
    fn droppable_units_do_not_build_a_standing_queue_on_a_thin_path() {
        let mut s = placement_only();
        let mut p = [path(0, 10, 1)]; // 125 kB/s
        p[0].in_flight = 1_250; // the 10 ms minimum RTT's worth
        p[0].unsent = 16_000; // 128 ms of backlog already
        let v = unit(Modality::Video, 1, 8_000, 0); // +64 ms: over the 150 ms budget
        assert_eq!(s.pick(&v, &p), Decision::Drop);
        let a = unit(Modality::Audio, 1, 80, 0);
        assert_eq!(s.pick(&a, &p), Decision::Send(PathSet::single(0)));
        p[0].unsent = 0;
        assert_eq!(s.pick(&v, &p), Decision::Send(PathSet::single(0)));
    }

    #[test]
    fn video_stays_off_a_path_where_speech_behind_it_would_miss_its_deadline() {
        let mut s = placement_only();
        // 2 Mbit/s, 20 ms: a 40 kB keyframe drains in 160 ms and arrives in time (200 ms).
        let thin = [path(0, 20, 2)];
        let mut key = unit(Modality::Video, 1, 40_000, 0);
        key.deadline_us = Some(200_000);
        let mut small = unit(Modality::Video, 1, 20_000, 0);
        small.deadline_us = Some(200_000);
        // No reliable deadline seen yet: nothing to protect.
        assert_eq!(s.pick(&key, &thin), Decision::Send(PathSet::single(0)));
        // Speech with a 150 ms deadline: a frame sent after the keyframe would arrive
        // ~150 ms after its media time, too late; after the 20 kB frame ~70 ms, in time.
        let a = unit(Modality::Audio, 2, 120, 0);
        assert_eq!(s.pick(&a, &thin), Decision::Send(PathSet::single(0)));
        assert_eq!(s.pick(&key, &thin), Decision::Drop);
        assert_eq!(s.pick(&small, &thin), Decision::Send(PathSet::single(0)));
        // A path with room for both takes the keyframe.
        let two = [path(0, 20, 2), path(1, 30, 20)];
        assert_eq!(s.pick(&key, &two), Decision::Send(PathSet::single(1)));
    }

    #[test]
    fn small_reliable_units_go_on_two_paths_large_and_droppable_on_one() {
        let mut s = ConsistencyAware::default();
        let p = [path(0, 10, 20), path(1, 30, 20), path(2, 60, 20)];
        let a = unit(Modality::Audio, 1, 120, 0);
        assert_eq!(s.pick(&a, &p), Decision::Send(PathSet::single(0).with(1)));
        let v = unit(Modality::Video, 1, 120, 0);
        assert_eq!(s.pick(&v, &p), Decision::Send(PathSet::single(0)));
        let big = unit(Modality::Text, 2, 4_000, 0);
        assert_eq!(s.pick(&big, &p), Decision::Send(PathSet::single(0)));
        // The copy only goes where it can still meet the deadline.
        let q = [path(0, 10, 20), path(1, 400, 20)];
        assert_eq!(s.pick(&a, &q), Decision::Send(PathSet::single(0)));
    }

    #[test]
    fn droppable_unit_that_cannot_meet_deadline_is_dropped_reliable_is_sent() {
        let mut s = placement_only();
        let p = [path(0, 400, 50)];
        let v = unit(Modality::Video, 1, 8_000, 0);
        assert_eq!(s.pick(&v, &p), Decision::Drop);
        let t = unit(Modality::Text, 1, 40, 0);
        assert_eq!(s.pick(&t, &p), Decision::Send(PathSet::single(0)));
    }
}
