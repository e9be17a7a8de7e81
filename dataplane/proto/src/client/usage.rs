//! Path usage (MP-DCCP §4.9): concurrent, or mobility with one active path and the others
//! on standby. In mobility mode the client keeps the member of the lowest slot `Available`
//! and every other member `Standby`, telling the server with PATH_STATUS (like MP_PRIO)
//! whenever membership changes: a path joining, leaving or returning.

use crate::config::PathUsage;

use super::*;

impl Client {
    /// Brings the members' status in line with [`CampConfig::path_usage`] (nothing to do for
    /// concurrent use: members join `Available` and stay as the application sets them).
    pub(super) fn apply_path_usage(&mut self) {
        if self.config.camp.path_usage != PathUsage::Mobility {
            return;
        }
        let status = |c: &Client, slot: usize| {
            c.slots[slot]
                .and_then(|h| c.paths.get(h))
                .filter(|p| matches!(p.role.state, PathState::Member(_)))
                .map(|p| (p.role.status, p.role.precedence))
        };
        let n = self.config.paths.len().min(MAX_PATHS);
        let Some(active) = (0..n).find(|&s| status(self, s).is_some()) else {
            return;
        };
        for slot in active..n {
            let Some((now, precedence)) = status(self, slot) else {
                continue;
            };
            let want = if slot == active {
                PathStatus::Available
            } else {
                PathStatus::Standby
            };
            if now != want {
                self.set_path_status(slot, want, precedence);
                self.counters.handovers += u64::from(want == PathStatus::Available);
            }
        }
    }
}
