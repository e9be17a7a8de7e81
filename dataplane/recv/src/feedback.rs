//! The receiver's periodic alignment feedback (draft-song-tsvwg-camp-00 §3.2 (3), §4.4
//! "continuous feedback"): what the client tells the sender about its playout every
//! `feedback_interval_us`, from the session's first unit until the turn ends.
//!
//! [`FeedbackClock`] owns the reporting schedule and the per-interval counters; the
//! [`crate::Receiver`] fills in the values only it knows (playout delay, occupancy, skew).

use crate::{FeedbackReport, Micros};

/// Schedule and per-interval counters of the FEEDBACK reports.
#[derive(Debug, Default)]
pub(crate) struct FeedbackClock {
    /// When the next report is due; `None` until the first unit arrived (or when disabled).
    next: Option<Micros>,
    /// When the previous report was taken (or the schedule started).
    last: Micros,
    /// Units delivered late or skipped since the previous report.
    late: u64,
    /// Droppable units declared lost since the previous report.
    lost: u64,
}

/// The parts of a report that come from the playout buffer, at the time it is taken.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PlayoutState {
    pub(crate) playout_delay_us: Micros,
    pub(crate) buffer_occupancy_us: Micros,
    pub(crate) skew_mean_us: Micros,
    pub(crate) skew_p95_us: Micros,
}

impl FeedbackClock {
    /// Starts the schedule at the first unit, `now`, unless it runs already or `period_us`
    /// is 0 (feedback off).
    pub(crate) fn start(&mut self, now: Micros, period_us: u32) {
        if self.next.is_none() && period_us > 0 {
            self.next = Some(now.saturating_add(Micros::from(period_us)));
            self.last = now;
        }
    }

    /// When the next report is due.
    pub(crate) fn next_due(&self) -> Option<Micros> {
        self.next
    }

    /// A unit was delivered late or skipped.
    pub(crate) fn note_late(&mut self) {
        self.late += 1;
    }

    /// `n` droppable units were declared lost.
    pub(crate) fn note_lost(&mut self, n: u64) {
        // Saturating: `n` follows the peer's seqs (see `Receiver::count_lost`).
        self.lost = self.lost.saturating_add(n);
    }

    /// Whether a report is due at `now`.
    pub(crate) fn is_due(&self, now: Micros) -> bool {
        self.next.is_some_and(|next| now >= next)
    }

    /// Takes the report due at `now` (call only when [`FeedbackClock::is_due`]), resets the
    /// interval counters and schedules the next one a period after the one just taken, or a
    /// period after `now` when the caller fell a whole period behind (no burst of catch-up
    /// reports). Values saturate at `u32::MAX`.
    pub(crate) fn take(
        &mut self,
        now: Micros,
        period_us: u32,
        state: PlayoutState,
    ) -> FeedbackReport {
        let period = Micros::from(period_us);
        let next = self.next.unwrap_or(now);
        self.next = Some(if now.saturating_sub(next) >= period {
            now.saturating_add(period)
        } else {
            next.saturating_add(period)
        });
        let sat = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let report = FeedbackReport {
            interval_us: sat(now.saturating_sub(self.last)),
            playout_delay_us: sat(state.playout_delay_us),
            buffer_occupancy_us: sat(state.buffer_occupancy_us),
            skew_mean_us: sat(state.skew_mean_us),
            skew_p95_us: sat(state.skew_p95_us),
            late_units: sat(self.late),
            lost_units: sat(self.lost),
        };
        self.last = now;
        self.late = 0;
        self.lost = 0;
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(d: Micros) -> PlayoutState {
        PlayoutState {
            playout_delay_us: d,
            buffer_occupancy_us: 5,
            skew_mean_us: 6,
            skew_p95_us: u64::MAX,
        }
    }

    #[test]
    fn reports_every_period_with_interval_counters_and_no_catch_up_burst() {
        let mut f = FeedbackClock::default();
        assert!(!f.is_due(u64::MAX), "nothing before the first unit");
        f.start(1_000, 100);
        f.start(1_050, 100); // already running: no restart
        assert_eq!(f.next_due(), Some(1_100));
        assert!(!f.is_due(1_099));
        f.note_late();
        f.note_lost(3);
        let r = f.take(1_120, 100, state(7));
        assert_eq!(
            (
                r.interval_us,
                r.late_units,
                r.lost_units,
                r.playout_delay_us
            ),
            (120, 1, 3, 7)
        );
        assert_eq!(r.skew_p95_us, u32::MAX, "saturates");
        // Next on the original grid, since the caller was less than a period late.
        assert_eq!(f.next_due(), Some(1_200));
        // A caller a whole period behind gets one report and a fresh grid.
        let r = f.take(1_450, 100, state(7));
        assert_eq!((r.interval_us, r.late_units, r.lost_units), (330, 0, 0));
        assert_eq!(f.next_due(), Some(1_550));
    }

    #[test]
    fn zero_period_means_off() {
        let mut f = FeedbackClock::default();
        f.start(0, 0);
        assert_eq!(f.next_due(), None);
        assert!(!f.is_due(u64::MAX));
    }
}
