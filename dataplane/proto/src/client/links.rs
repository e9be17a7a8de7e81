//! The client's own interfaces. A path whose local address lost its link (carrier gone,
//! interface down or address removed) is abandoned at once, so the server moves its units
//! to the other paths without waiting for loss detection or an idle timeout; when the link
//! returns, the path is connected and JOINed again. Whoever watches the kernel's link state
//! (camp-client uses `camp_xdp::links` over rtnetlink) calls these; the core reads no
//! interface itself.

use std::net::SocketAddr;
use std::time::Instant;

use super::{Client, MAX_PATHS, PathSpec};
use crate::conn::codes;

/// Why [`Client::add_local_path`] opened no path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddPathError {
    /// The session is not up yet (no path is a member): there is nothing to JOIN.
    #[error("the session is not up yet")]
    NoSession,
    /// A path that is not closed already uses this local IP.
    #[error("a path already uses {0}")]
    AlreadyUsed(std::net::IpAddr),
    /// No configured path goes to a server address of this address family.
    #[error("no server address of the family of {0}")]
    NoServerAddress(std::net::IpAddr),
    /// The session has [`MAX_PATHS`] paths.
    #[error("the session has {MAX_PATHS} paths")]
    OverBudget,
    /// quinn refused to start the connection.
    #[error("connect refused")]
    Connect,
}

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

    /// The application gained a local address (an interface came up with a new address, a
    /// second SIM was attached): open a path from `local` to a server address of the same
    /// family (one no live path uses, configured or advertised, else the first configured
    /// one), on a new slot, and JOIN it once it is connected. Returns the slot. From then on the slot is followed like a configured one
    /// (`local_link_down` / `local_link_up`, reconnects).
    pub fn add_local_path(
        &mut self,
        now: Instant,
        local: SocketAddr,
    ) -> Result<usize, AddPathError> {
        if self.token.is_none() || !self.has_member() {
            return Err(AddPathError::NoSession);
        }
        if (0..self.config.paths.len())
            .any(|s| self.config.paths[s].local.ip() == local.ip() && self.slot_live(s))
        {
            return Err(AddPathError::AlreadyUsed(local.ip()));
        }
        // A server address of the family that no live path uses yet (configured or
        // advertised), else the first configured one: a new interface is most useful on
        // its own route to the server.
        let family = |r: &SocketAddr| r.is_ipv4() == local.is_ipv4();
        let mut candidates: Vec<SocketAddr> = self
            .config
            .paths
            .iter()
            .map(|p| p.remote)
            .filter(family)
            .collect();
        candidates.extend(
            self.addr_book
                .addresses()
                .into_iter()
                .map(|(_, a)| a)
                .filter(family),
        );
        let used = |c: &Self, r: SocketAddr| {
            (0..c.config.paths.len()).any(|s| c.config.paths[s].remote == r && c.slot_live(s))
        };
        let Some(remote) = candidates
            .iter()
            .copied()
            .find(|&r| !used(self, r))
            .or(candidates.first().copied())
        else {
            return Err(AddPathError::NoServerAddress(local.ip()));
        };
        if self.config.paths.len() >= MAX_PATHS {
            return Err(AddPathError::OverBudget);
        }
        self.config.paths.push(PathSpec { local, remote });
        let slot = self.config.paths.len() - 1;
        match self.connect(now, slot) {
            Ok(_) => {
                self.counters.local_paths_added += 1;
                Ok(slot)
            }
            Err(_) => {
                self.config.paths.pop();
                Err(AddPathError::Connect)
            }
        }
    }

    /// Whether path `slot`'s local link was reported down and not up since.
    pub fn is_local_link_down(&self, slot: usize) -> bool {
        self.link_down.get(slot).copied().unwrap_or(false)
    }
}
