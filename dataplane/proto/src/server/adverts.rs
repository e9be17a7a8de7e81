//! The server's own addresses as advertised to clients (ADD_ADDRESS / REMOVE_ADDRESS, after
//! MP-DCCP MP_ADDADDR / MP_REMOVEADDR).
//!
//! Address id = index in [`super::ServerConfig::local_addrs`]. Each id has one sequence
//! number, shared by every session (the addresses belong to the server, not to a session),
//! that grows with every change, so a client that heard an update keeps the newest.

use std::net::SocketAddr;

use camp_wire::{AddAddress, Frame, RemoveAddress};

use super::Server;

/// Largest number of addresses that can be advertised (the address id is a u8).
pub const MAX_ADVERTISED: usize = 256;

/// An address a client can use: not the unspecified address, nor port 0.
fn advertisable(a: &SocketAddr) -> bool {
    !a.ip().is_unspecified() && a.port() != 0
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Advert {
    addr: Option<SocketAddr>,
    /// Seq of the newest ADD/REMOVE of this id; 0 before the first.
    seq: u32,
}

/// Per address id: the advertised address (if any) and its newest seq.
#[derive(Clone, Debug, Default)]
pub(super) struct Adverts {
    ids: Vec<Advert>,
}

fn id_of(index: usize) -> u8 {
    // Callers stay below MAX_ADVERTISED.
    u8::try_from(index).unwrap_or(u8::MAX)
}

impl Adverts {
    /// Every advertisable entry of `addrs` (up to [`MAX_ADVERTISED`]) at seq 1.
    pub(super) fn new(addrs: &[SocketAddr]) -> Self {
        let mut a = Adverts::default();
        let _ = a.update(addrs);
        a
    }

    /// ADD_ADDRESS for every advertised address (sent to a session that just opened).
    pub(super) fn current(&self) -> Vec<Frame<'static>> {
        self.ids
            .iter()
            .enumerate()
            .filter_map(|(i, a)| {
                a.addr.map(|addr| {
                    Frame::AddAddress(AddAddress {
                        address_id: id_of(i),
                        seq: a.seq,
                        addr,
                    })
                })
            })
            .collect()
    }

    /// Moves to the address list `addrs`; returns the frames that tell a client: ADD for a
    /// new or changed entry, REMOVE for one that went away (or became unadvertisable).
    pub(super) fn update(&mut self, addrs: &[SocketAddr]) -> Vec<Frame<'static>> {
        let n = addrs.len().max(self.ids.len()).min(MAX_ADVERTISED);
        self.ids.resize(n, Advert::default());
        let mut frames = Vec::new();
        for (i, a) in self.ids.iter_mut().enumerate() {
            let new = addrs.get(i).copied().filter(advertisable);
            if a.addr == new {
                continue;
            }
            // 2^32 changes of one id would be needed to stall it; then it stays put.
            a.seq = a.seq.saturating_add(1);
            a.addr = new;
            let address_id = id_of(i);
            frames.push(match new {
                Some(addr) => Frame::AddAddress(AddAddress {
                    address_id,
                    seq: a.seq,
                    addr,
                }),
                None => Frame::RemoveAddress(RemoveAddress {
                    address_id,
                    seq: a.seq,
                }),
            });
        }
        frames
    }
}

impl Server {
    /// Replaces the server's address list ([`super::ServerConfig::local_addrs`], also used to
    /// pick source addresses) and tells every open session: ADD_ADDRESS for each new or
    /// changed entry (address id = index, seq one above the id's last), REMOVE_ADDRESS for
    /// each entry that is gone. Each session hears it on the control stream of one of its
    /// paths (the lowest slot). An address whose link is down
    /// ([`Server::local_link_down`]) stays withdrawn until it is up. Returns how many
    /// sessions were told something.
    pub fn set_local_addrs(&mut self, addrs: Vec<SocketAddr>) -> usize {
        self.config.local_addrs = addrs;
        self.advertise()
    }

    /// Brings the advertisements in line with the address list less the addresses whose
    /// link is down, telling every open session what changed; returns how many were told.
    pub(super) fn advertise(&mut self) -> usize {
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        let list: Vec<SocketAddr> = self
            .config
            .local_addrs
            .iter()
            .map(|a| {
                if self.links_down.contains(&a.ip()) {
                    unspecified
                } else {
                    *a
                }
            })
            .collect();
        let frames = self.adverts.update(&list);
        if frames.is_empty() {
            return 0;
        }
        let conns: Vec<_> = self
            .sessions
            .iter_mut()
            .filter_map(|(_, s)| s.paths.iter().flatten().next().map(|p| p.conn))
            .collect();
        for &h in &conns {
            if let Some(c) = self.paths.get_mut(h) {
                for f in &frames {
                    c.path.send_control(f);
                }
            }
            self.touch_conn(h);
        }
        conns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([198, 18, 0, last], port))
    }

    #[test]
    fn a_new_list_is_advertised_at_seq_1_without_unspecified_entries() {
        let a = Adverts::new(&[
            v4(1, 4433),
            SocketAddr::from(([0, 0, 0, 0], 4433)),
            v4(3, 0),
            v4(4, 9),
        ]);
        assert_eq!(
            a.current(),
            vec![
                Frame::AddAddress(AddAddress {
                    address_id: 0,
                    seq: 1,
                    addr: v4(1, 4433)
                }),
                Frame::AddAddress(AddAddress {
                    address_id: 3,
                    seq: 1,
                    addr: v4(4, 9)
                }),
            ]
        );
    }

    #[test]
    fn updates_send_only_the_differences_with_growing_seqs() {
        let mut a = Adverts::new(&[v4(1, 1), v4(2, 2)]);
        assert_eq!(a.update(&[v4(1, 1), v4(2, 2)]), vec![]);
        // Id 1 changes, id 2 is new.
        assert_eq!(
            a.update(&[v4(1, 1), v4(20, 2), v4(3, 3)]),
            vec![
                Frame::AddAddress(AddAddress {
                    address_id: 1,
                    seq: 2,
                    addr: v4(20, 2)
                }),
                Frame::AddAddress(AddAddress {
                    address_id: 2,
                    seq: 1,
                    addr: v4(3, 3)
                }),
            ]
        );
        // Ids 1 and 2 go away.
        assert_eq!(
            a.update(&[v4(1, 1)]),
            vec![
                Frame::RemoveAddress(RemoveAddress {
                    address_id: 1,
                    seq: 3
                }),
                Frame::RemoveAddress(RemoveAddress {
                    address_id: 2,
                    seq: 2
                }),
            ]
        );
        // Id 2 comes back above its removal.
        assert_eq!(
            a.update(&[v4(1, 1), v4(2, 2), v4(3, 3)]),
            vec![
                Frame::AddAddress(AddAddress {
                    address_id: 1,
                    seq: 4,
                    addr: v4(2, 2)
                }),
                Frame::AddAddress(AddAddress {
                    address_id: 2,
                    seq: 3,
                    addr: v4(3, 3)
                }),
            ]
        );
        assert_eq!(a.current().len(), 3);
    }

    #[test]
    fn at_most_256_ids_are_advertised() {
        let many: Vec<SocketAddr> = (0..300u32)
            .map(|i| SocketAddr::from(([198, 18, (i >> 8) as u8, i as u8], 1)))
            .collect();
        let a = Adverts::new(&many);
        let current = a.current();
        assert_eq!(current.len(), MAX_ADVERTISED);
        assert!(matches!(
            current.last(),
            Some(Frame::AddAddress(AddAddress {
                address_id: 255,
                ..
            }))
        ));
    }
}
