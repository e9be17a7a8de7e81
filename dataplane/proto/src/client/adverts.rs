//! Following the server's address advertisements ([`CampConfig::advertised_paths`]): paths
//! opened to advertised addresses, and paths to a withdrawn address abandoned.

use crate::config::AdvertPolicy;

use super::*;

impl Client {
    /// Whether slot `slot` has a connection that is not closed.
    pub(super) fn slot_live(&self, slot: usize) -> bool {
        self.slots[slot]
            .and_then(|h| self.paths.get(h))
            .is_some_and(|c| c.role.state != PathState::Closed)
    }

    /// The server withdrew `addr`: abandon the paths to it while another path is a member.
    pub(super) fn address_withdrawn(&mut self, now: Instant, addr: SocketAddr) {
        if self.config.camp.advertised_paths == AdvertPolicy::None {
            return;
        }
        for slot in 0..self.config.paths.len() {
            if self.config.paths[slot].remote != addr || !self.slot_live(slot) {
                continue;
            }
            let others = (0..self.config.paths.len()).any(|o| {
                o != slot
                    && self.config.paths[o].remote != addr
                    && self.slots[o]
                        .and_then(|h| self.paths.get(h))
                        .is_some_and(|c| matches!(c.role.state, PathState::Member(_)))
            });
            if !others {
                // The last way to the session: keep it until the network says otherwise.
                continue;
            }
            // A configured path to a withdrawn address is not reconnected either.
            self.reconnect_at[slot] = None;
            if !self.abandon_path(now, slot) {
                // Not a member yet (still connecting or joining): just close it.
                if let Some(h) = self.slots[slot] {
                    self.close_conn(now, h, codes::ABANDONED);
                }
            }
            self.counters.advert_paths_abandoned += 1;
        }
    }

    /// The server advertised `addr` (again): a configured path to it that is not up gets a
    /// fresh try now, whatever the policy, if the server had abandoned it (its address went
    /// away with a NIC or a link and is back), if it waits for a reconnect, or if its
    /// handshake has not completed (its Initials went unanswered while the address was not
    /// served, and quinn's back-off would retry late). A path the application abandoned
    /// stays closed.
    pub(super) fn address_readvertised(&mut self, now: Instant, addr: SocketAddr) {
        // A handshake younger than about one PTO of the configured initial RTT is just slow
        // (at session start the other paths are still connecting when the first ADD_ADDRESS
        // comes): it is left alone.
        let now_us = self.clock.micros(now);
        let patience = 3 * self.config.camp.initial_rtt.as_micros() as u64;
        for slot in 0..self.config.paths.len() {
            if self.config.paths[slot].remote != addr || self.link_down[slot] {
                continue;
            }
            let conn = self.slots[slot].and_then(|h| self.paths.get(h).map(|c| (h, c)));
            let handshaking = conn.is_some_and(|(_, c)| {
                c.role.state == PathState::Connecting
                    && c.path.established_us.is_none()
                    && now_us.saturating_sub(c.path.created_us) > patience
            });
            let closed = !self.slot_live(slot);
            let wanted = self.server_abandoned[slot] || self.reconnect_at[slot].is_some();
            if handshaking {
                if let Some((h, _)) = conn {
                    self.close_conn(now, h, codes::ABANDONED);
                }
            } else if !(closed && wanted) {
                continue;
            }
            self.reconnect_at[slot] = None;
            self.reconnect_attempts[slot] = 0;
            self.reconnect(now, slot);
        }
    }

    /// Opens the paths the policy asks for, given the addresses advertised now.
    pub(super) fn follow_adverts(&mut self, now: Instant) {
        let policy = self.config.camp.advertised_paths;
        if policy == AdvertPolicy::None || self.token.is_none() || !self.has_member() {
            return;
        }
        let adverts: Vec<SocketAddr> = self
            .addr_book
            .addresses()
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        let mut locals: Vec<SocketAddr> = Vec::new();
        for p in &self.config.paths {
            if !locals.contains(&p.local) {
                locals.push(p.local);
            }
        }
        for local in locals {
            let live: Vec<SocketAddr> = (0..self.config.paths.len())
                .filter(|&s| self.config.paths[s].local == local && self.slot_live(s))
                .map(|s| self.config.paths[s].remote)
                .collect();
            let wanted: Vec<SocketAddr> = match policy {
                AdvertPolicy::None => Vec::new(),
                AdvertPolicy::All => adverts
                    .iter()
                    .copied()
                    .filter(|a| !live.contains(a) && a.is_ipv4() == local.is_ipv4())
                    .collect(),
                AdvertPolicy::OnePerLocalInterface if live.is_empty() => {
                    let used = |a: &SocketAddr| {
                        (0..self.config.paths.len())
                            .any(|s| self.config.paths[s].remote == *a && self.slot_live(s))
                    };
                    let family: Vec<SocketAddr> = adverts
                        .iter()
                        .copied()
                        .filter(|a| a.is_ipv4() == local.is_ipv4())
                        .collect();
                    family
                        .iter()
                        .find(|a| !used(a))
                        .or(family.first())
                        .copied()
                        .into_iter()
                        .collect()
                }
                AdvertPolicy::OnePerLocalInterface => Vec::new(),
            };
            for remote in wanted {
                self.open_advertised(now, PathSpec { local, remote });
            }
        }
    }

    /// Connects `spec` on its old slot if it had one (closed, no reconnect pending), else
    /// on a new slot within the budget; counted when it cannot.
    fn open_advertised(&mut self, now: Instant, spec: PathSpec) {
        let old = (0..self.config.paths.len()).find(|&s| {
            self.config.paths[s] == spec && !self.slot_live(s) && self.reconnect_at[s].is_none()
        });
        let slot = match old {
            Some(s) => s,
            None if self.config.paths.len() < MAX_PATHS => {
                self.config.paths.push(spec);
                self.config.paths.len() - 1
            }
            None => {
                self.counters.advert_paths_over_budget += 1;
                return;
            }
        };
        match self.connect(now, slot) {
            Ok(_) => self.counters.advert_paths_opened += 1,
            Err(_) => self.events.push_back(ClientEvent::PathClosed { slot }),
        }
    }
}
