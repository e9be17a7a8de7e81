//! The client's own interfaces. A path whose local address lost its link (carrier gone,
//! interface down or address removed) is abandoned at once, so the server moves its units
//! to the other paths without waiting for loss detection or an idle timeout; when the link
//! returns, the path is connected and JOINed again. Whoever watches the kernel's link state
//! (camp-client uses `camp_xdp::links` over rtnetlink) calls these; the core reads no
//! interface itself.

use std::time::Instant;

use super::{Client, MAX_PATHS};
use crate::conn::codes;

impl Client {
    /// The local address of path `slot` can no longer send. A member path is abandoned
    /// (ABANDON on the other paths); a path still connecting is closed. No reconnect is
    /// tried until [`local_link_up`](Self::local_link_up). False if the slot does not
    /// exist or was already down.
    pub fn local_link_down(&mut self, now: Instant, slot: usize) -> bool {
        if slot >= self.config.paths.len().min(MAX_PATHS) || self.link_down[slot] {
            return false;
        }
        self.link_down[slot] = true;
        self.reconnect_at[slot] = None;
        if let Some(c) = self.slots[slot].and_then(|h| self.paths.get(h)) {
            self.last_rtt[slot] = Some(c.path.conn.rtt());
        }
        self.counters.link_downs += 1;
        if !self.abandon_path(now, slot)
            && let Some(h) = self.slots[slot]
        {
            self.close_conn(now, h, codes::ABANDONED);
            self.paths.touch_all();
        }
        true
    }

    /// The local address of path `slot` can send again: the path is connected and joined
    /// at once if the session is alive on another path. False if the slot does not exist
    /// or was not down.
    pub fn local_link_up(&mut self, now: Instant, slot: usize) -> bool {
        if slot >= self.config.paths.len().min(MAX_PATHS) || !self.link_down[slot] {
            return false;
        }
        self.link_down[slot] = false;
        self.counters.link_ups += 1;
        self.reconnect_attempts[slot] = 0;
        self.reconnect(now, slot);
        true
    }

    /// Whether path `slot`'s local link was reported down and not up since.
    pub fn is_local_link_down(&self, slot: usize) -> bool {
        self.link_down.get(slot).copied().unwrap_or(false)
    }
}
