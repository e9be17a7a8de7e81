//! The server's own links. When the link that carries one of the server's addresses goes
//! down (a NIC fails, a cable is pulled), every path using that address is abandoned at
//! once: ABANDON goes to the client on the session's other paths, the path's reliable
//! units are reinjected there, and the address is withdrawn (REMOVE_ADDRESS) so that no
//! client opens a path to it. When the link returns the address is advertised again
//! (ADD_ADDRESS with a higher seq), and the clients connect to it again. Whoever watches
//! the kernel's link state (campd uses `camp_xdp::links` over rtnetlink) calls these; the
//! core reads no interface itself.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::Server;

impl Server {
    /// The link of local address `ip` went down. Returns how many paths were abandoned;
    /// 0 also when `ip` was already down. A session whose only paths used `ip` is closed
    /// (it has no other path to move to).
    pub fn local_link_down(&mut self, now: Instant, ip: IpAddr) -> usize {
        if self.links_down.contains(&ip) {
            return 0;
        }
        self.links_down.push(ip);
        self.counters.link_downs += 1;
        let lost = self.abandon_paths_on(now, ip);
        self.counters.paths_lost_to_links += lost as u64;
        self.advertise();
        lost
    }

    /// Abandons every session path whose server address is `ip`; how many.
    fn abandon_paths_on(&mut self, now: Instant, ip: IpAddr) -> usize {
        let mut lost = Vec::new();
        for (sid, s) in self.sessions.iter_mut() {
            for p in s.paths.iter().flatten() {
                if self
                    .paths
                    .get(p.conn)
                    .is_some_and(|c| c.path.local.ip() == ip)
                {
                    lost.push((sid, p.id));
                }
            }
        }
        for &(sid, id) in &lost {
            self.abandon_path(now, sid, id);
        }
        lost.len()
    }

    /// The addresses served, by address id (an unspecified entry is a free id).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.config.local_addrs
    }

    /// Serves one more address (a NIC added at run time): it takes the first free address
    /// id, or a new one, and is advertised to every session. Returns its address id, or
    /// `None` when it was served already or no id is left.
    pub fn add_local_addr(&mut self, addr: SocketAddr) -> Option<usize> {
        let addrs = &mut self.config.local_addrs;
        if addrs.contains(&addr) {
            return None;
        }
        let free = addrs
            .iter()
            .position(|a| a.ip().is_unspecified() && a.port() == 0);
        let id = match free {
            Some(free) => free,
            None if addrs.len() < super::adverts::MAX_ADVERTISED => {
                addrs.push(addr);
                addrs.len() - 1
            }
            None => return None,
        };
        addrs[id] = addr;
        self.advertise();
        Some(id)
    }

    /// Stops serving `addr` (a NIC removed at run time): its paths are abandoned (ABANDON,
    /// reinjection on the others), it is withdrawn (REMOVE_ADDRESS) and its address id is
    /// free. Returns how many paths were abandoned, or `None` if it was not served.
    pub fn remove_local_addr(&mut self, now: Instant, addr: SocketAddr) -> Option<usize> {
        let id = self.config.local_addrs.iter().position(|a| *a == addr)?;
        let lost = self.abandon_paths_on(now, addr.ip());
        self.config.local_addrs[id] = SocketAddr::from(([0, 0, 0, 0], 0));
        self.advertise();
        Some(lost)
    }

    /// The link of local address `ip` is up again: it is advertised again. False if it
    /// was not down.
    pub fn local_link_up(&mut self, _now: Instant, ip: IpAddr) -> bool {
        let Some(i) = self.links_down.iter().position(|d| *d == ip) else {
            return false;
        };
        self.links_down.swap_remove(i);
        self.counters.link_ups += 1;
        self.advertise();
        true
    }

    /// Whether the link of local address `ip` was reported down and not up since.
    pub fn is_local_link_down(&self, ip: IpAddr) -> bool {
        self.links_down.contains(&ip)
    }
}
