//! What the receiver knows about the session's paths: each path's smoothed RTT and, per
//! stream, when a copy of one of the stream's units last arrived on it.
//!
//! The gap wait of a droppable stream (MP-DCCP's `path_delta / 2`, draft-ietf-tsvwg-
//! multipath-dccp-11 §4.2.7) is only meaningful over the paths that stream actually travels
//! on: a missing unit can only be late by the RTT difference of paths it could have been sent
//! on. Counting every known path made a session with an idle slow second path (a `single`
//! scheduler, or CAMP keeping video off a bad path) hold each video gap until the missing
//! frame's deadline, deliver the frames behind it that late, and raise the playout delay `D`
//! to cover that for the rest of the turn (docs/benchmarks.md, "Multipath never hurts").
//! So [`PathTable::stream_delta_us`] counts a path for a stream only while a copy of one of
//! the stream's units arrived on it within [`crate::ReceiverConfig::path_memory_us`].
//!
//! MP-DCCP's rule assumes a path never reorders; here a missing unit on the stream's own
//! path is usually being repaired by QUIC, which takes about one RTT of that path (a later
//! packet's ACK reveals the loss, the resent data follows). So the wait is at least the
//! smallest smoothed RTT among the stream's paths ([`PathTable::stream_min_rtt_us`]).

use camp_wire::Modality;

use crate::{Micros, PathId};

/// One known path.
#[derive(Clone, Copy, Debug)]
struct PathEntry {
    id: PathId,
    /// Smoothed RTT, µs.
    rtt_us: u32,
    /// Last arrival of a copy of a unit of each stream on this path.
    last_arrival: [Option<Micros>; Modality::COUNT],
}

/// The receiver's per-path state; a handful of entries, searched linearly.
#[derive(Debug)]
pub(crate) struct PathTable {
    entries: Vec<PathEntry>,
}

impl PathTable {
    /// An empty table with room for `cap` paths (more grow it, off the per-unit path).
    pub(crate) fn with_capacity(cap: usize) -> Self {
        PathTable {
            entries: Vec::with_capacity(cap),
        }
    }

    /// Records a path's smoothed RTT, adding the path if it is new.
    pub(crate) fn set_rtt(&mut self, path: PathId, rtt_us: u32) {
        match self.entries.iter_mut().find(|p| p.id == path) {
            Some(p) => p.rtt_us = rtt_us,
            None => self.entries.push(PathEntry {
                id: path,
                rtt_us,
                last_arrival: [None; Modality::COUNT],
            }),
        }
    }

    /// Forgets a path.
    pub(crate) fn remove(&mut self, path: PathId) {
        self.entries.retain(|p| p.id != path);
    }

    /// Notes that a copy of a unit of `m` arrived on `path` at `now`. A path without an RTT
    /// yet is not tracked (it counts in no `path_delta` either), so this never allocates.
    pub(crate) fn on_arrival(&mut self, path: PathId, m: Modality, now: Micros) {
        if let Some(p) = self.entries.iter_mut().find(|p| p.id == path) {
            let slot = &mut p.last_arrival[m.index()];
            *slot = Some(slot.map_or(now, |t| t.max(now)));
        }
    }

    /// Max − min smoothed RTT over every known path (0 with fewer than two).
    pub(crate) fn delta_us(&self) -> u32 {
        spread(self.entries.iter().map(|p| p.rtt_us))
    }

    /// Max − min smoothed RTT over the paths that carried a unit of `m` within `memory_us`
    /// before `at` (0 with fewer than two such paths).
    pub(crate) fn stream_delta_us(&self, m: Modality, at: Micros, memory_us: Micros) -> u32 {
        let since = at.saturating_sub(memory_us);
        spread(
            self.entries
                .iter()
                .filter(|p| p.last_arrival[m.index()].is_some_and(|t| t >= since))
                .map(|p| p.rtt_us),
        )
    }
}

impl PathTable {
    /// Latest arrival of a copy of a unit of any stream in `streams` on a path other than
    /// `except`.
    pub(crate) fn last_arrival_except(
        &self,
        except: Option<PathId>,
        streams: impl Fn(Modality) -> bool,
    ) -> Option<Micros> {
        self.entries
            .iter()
            .filter(|p| Some(p.id) != except)
            .flat_map(|p| {
                Modality::ALL
                    .into_iter()
                    .filter(|m| streams(*m))
                    .filter_map(|m| p.last_arrival[m.index()])
            })
            .max()
    }

    /// Smallest smoothed RTT among the paths that carried a unit of `m` within `memory_us`
    /// before `at` (0 when none did).
    pub(crate) fn stream_min_rtt_us(&self, m: Modality, at: Micros, memory_us: Micros) -> u32 {
        let since = at.saturating_sub(memory_us);
        self.entries
            .iter()
            .filter(|p| p.last_arrival[m.index()].is_some_and(|t| t >= since))
            .map(|p| p.rtt_us)
            .min()
            .unwrap_or(0)
    }
}

fn spread(rtts: impl Iterator<Item = u32> + Clone) -> u32 {
    let max = rtts.clone().max().unwrap_or(0);
    let min = rtts.min().unwrap_or(0);
    max - min
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Micros = 1_000;

    #[test]
    fn the_last_arrival_on_other_paths_counts_the_chosen_streams_only() {
        let mut t = PathTable::with_capacity(2);
        let reliable = |m: Modality| m != Modality::Video;
        assert_eq!(t.last_arrival_except(None, reliable), None);
        t.set_rtt(PathId(0), 10_000);
        t.set_rtt(PathId(1), 20_000);
        t.on_arrival(PathId(0), Modality::Audio, 5 * MS);
        t.on_arrival(PathId(1), Modality::Text, 7 * MS);
        t.on_arrival(PathId(1), Modality::Video, 9 * MS);
        assert_eq!(t.last_arrival_except(None, reliable), Some(7 * MS));
        assert_eq!(
            t.last_arrival_except(Some(PathId(1)), reliable),
            Some(5 * MS)
        );
        assert_eq!(
            t.last_arrival_except(Some(PathId(0)), reliable),
            Some(7 * MS)
        );
        assert_eq!(
            t.last_arrival_except(Some(PathId(0)), |_| true),
            Some(9 * MS)
        );
    }

    #[test]
    fn only_paths_that_recently_carried_the_stream_count() {
        let mut t = PathTable::with_capacity(2);
        t.set_rtt(PathId(0), 40_000);
        t.set_rtt(PathId(1), 640_000);
        assert_eq!(t.delta_us(), 600_000, "every known path");
        t.on_arrival(PathId(0), Modality::Video, 100 * MS);
        assert_eq!(
            t.stream_delta_us(Modality::Video, 100 * MS, 2_000 * MS),
            0,
            "video has only used path 0"
        );
        // Audio on the slow path does not make video gaps wait.
        t.on_arrival(PathId(1), Modality::Audio, 150 * MS);
        assert_eq!(t.stream_delta_us(Modality::Video, 200 * MS, 2_000 * MS), 0);
        t.on_arrival(PathId(1), Modality::Video, 900 * MS);
        assert_eq!(
            t.stream_delta_us(Modality::Video, 1_000 * MS, 2_000 * MS),
            600_000
        );
        // An older arrival does not move the last one back.
        t.on_arrival(PathId(1), Modality::Video, 500 * MS);
        // Path 0 keeps carrying video; path 1 falls out of the memory 2 s after 900 ms.
        t.on_arrival(PathId(0), Modality::Video, 2_800 * MS);
        assert_eq!(
            t.stream_delta_us(Modality::Video, 2_900 * MS, 2_000 * MS),
            600_000
        );
        assert_eq!(
            t.stream_delta_us(Modality::Video, 2_901 * MS, 2_000 * MS),
            0
        );
    }

    #[test]
    fn min_rtt_is_over_the_paths_that_carried_the_stream() {
        let mut t = PathTable::with_capacity(2);
        t.set_rtt(PathId(0), 40_000);
        t.set_rtt(PathId(1), 15_000);
        assert_eq!(
            t.stream_min_rtt_us(Modality::Video, 0, MS),
            0,
            "nothing arrived"
        );
        t.on_arrival(PathId(0), Modality::Video, 0);
        t.on_arrival(PathId(1), Modality::Audio, 0);
        assert_eq!(t.stream_min_rtt_us(Modality::Video, 0, MS), 40_000);
        t.on_arrival(PathId(1), Modality::Video, 0);
        assert_eq!(t.stream_min_rtt_us(Modality::Video, 0, MS), 15_000);
    }

    #[test]
    fn unknown_paths_are_ignored_and_removal_forgets() {
        let mut t = PathTable::with_capacity(1);
        t.on_arrival(PathId(7), Modality::Video, 0);
        assert_eq!(t.stream_delta_us(Modality::Video, 0, MS), 0);
        t.set_rtt(PathId(0), 10_000);
        t.set_rtt(PathId(1), 90_000);
        t.on_arrival(PathId(0), Modality::Video, 0);
        t.on_arrival(PathId(1), Modality::Video, 0);
        assert_eq!(t.stream_delta_us(Modality::Video, 0, MS), 80_000);
        t.remove(PathId(1));
        assert_eq!(t.stream_delta_us(Modality::Video, 0, MS), 0);
        assert_eq!(t.delta_us(), 0);
    }
}
