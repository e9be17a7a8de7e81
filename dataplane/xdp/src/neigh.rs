//! Next-hop link addresses: learned from received frames, configured
//! statically, or resolved from the kernel's route and neighbour tables.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::frame::Mac;

/// Per-NIC cache of remote IP -> next-hop MAC.
#[derive(Debug, Clone)]
pub struct NeighCache {
    ifindex: u32,
    entries: HashMap<IpAddr, Mac>,
}

impl NeighCache {
    /// An empty cache for interface `ifindex`.
    pub fn new(ifindex: u32) -> Self {
        Self {
            ifindex,
            entries: HashMap::with_capacity(64),
        }
    }

    /// Interface this cache resolves for.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Records that `ip` was last seen behind `mac` (from a received frame:
    /// for an off-link peer that is the router, i.e. the right next hop).
    /// Allocates only for a new peer.
    pub fn learn(&mut self, ip: IpAddr, mac: Mac) {
        match self.entries.get_mut(&ip) {
            Some(m) => *m = mac,
            None => {
                self.entries.insert(ip, mac);
            }
        }
    }

    /// Adds or replaces an entry.
    pub fn insert(&mut self, ip: IpAddr, mac: Mac) {
        self.entries.insert(ip, mac);
    }

    /// Forgets an entry (after a neighbour change).
    pub fn remove(&mut self, ip: &IpAddr) {
        self.entries.remove(ip);
    }

    /// The cached next hop for `ip`.
    pub fn lookup(&mut self, ip: IpAddr) -> Option<Mac> {
        self.entries.get(&ip).copied()
    }
}
