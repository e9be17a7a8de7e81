//! Whether each of a set of local addresses can carry a path right now, followed over
//! rtnetlink: the address must be configured on an interface, and that interface must be up
//! with its carrier (`IFF_UP` and `IFF_RUNNING`).
//!
//! [`LinkTable`] is the bookkeeping, fed parsed rtnetlink messages (so it is tested without
//! a kernel); [`LinkWatch`] owns the non-blocking socket subscribed to link and address
//! notifications, learns the starting state from a dump, and hands the table what arrives.
//! A client asks [`LinkWatch::poll`] every loop iteration; it reads nothing when nothing
//! changed (one `recv` that returns `EAGAIN`).

use std::io;
use std::net::IpAddr;

use netlink_packet_core::{NLM_F_DUMP, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::neigh::Netlink;

const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;

/// A local address whose usability changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkChange {
    /// Index into the addresses the table was made for.
    pub local: usize,
    /// Whether the address can carry a path now.
    pub usable: bool,
}

#[derive(Clone, Copy, Debug)]
struct Local {
    addr: IpAddr,
    /// Interface the address is configured on; `None` while it is not configured anywhere.
    ifindex: Option<u32>,
    /// That interface is up with carrier.
    link_up: bool,
}

impl Local {
    fn usable(&self) -> bool {
        self.ifindex.is_some() && self.link_up
    }
}

/// Usability of a list of local addresses, from rtnetlink link and address messages. The
/// list grows with [`LinkTable::watch`]; addresses configured on the host that are not in it
/// are reported as new once [`LinkTable::report_new`] is on (a new interface, a new address).
#[derive(Debug)]
pub struct LinkTable {
    locals: Vec<Local>,
    /// Link state by interface index, for links seen before an address moved onto them.
    links: Vec<(u32, bool)>,
    /// Whether addresses not followed are collected into `appeared`.
    report_new: bool,
    /// Addresses that appeared (with their interface) and are not followed yet.
    appeared: Vec<(IpAddr, u32)>,
}

fn link_up(flags: LinkFlags) -> bool {
    flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::Running)
}

fn addresses(m: &AddressMessage) -> impl Iterator<Item = IpAddr> + '_ {
    m.attributes.iter().filter_map(|a| match a {
        AddressAttribute::Address(ip) | AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    })
}

impl LinkTable {
    /// A table for `addrs`, every one unusable until a message says otherwise. An
    /// unspecified address (0.0.0.0, ::) is not followed: it is always usable.
    pub fn new(addrs: &[IpAddr]) -> Self {
        LinkTable {
            locals: addrs
                .iter()
                .map(|&addr| Local {
                    addr,
                    ifindex: addr.is_unspecified().then_some(0),
                    link_up: addr.is_unspecified(),
                })
                .collect(),
            links: Vec::new(),
            report_new: false,
            appeared: Vec::new(),
        }
    }

    /// Whether local address `i` can carry a path.
    pub fn usable(&self, i: usize) -> bool {
        self.locals.get(i).is_some_and(Local::usable)
    }

    /// From now on, collect addresses that appear and are not followed (see
    /// [`take_new_addresses`](Self::take_new_addresses)). Off while the starting state is
    /// learnt, so that what is already configured is not reported as new.
    pub fn report_new(&mut self, on: bool) {
        self.report_new = on;
    }

    /// Moves the addresses that appeared since the last call, with their interface index,
    /// into `out` (oldest first; an address that went away again before the call is not
    /// there).
    pub fn take_new_addresses(&mut self, out: &mut Vec<(IpAddr, u32)>) {
        out.append(&mut self.appeared);
    }

    /// Follows `addr` from now on (configured on interface `ifindex`, as
    /// [`take_new_addresses`](Self::take_new_addresses) reported it) and returns its index for
    /// [`LinkChange::local`].
    pub fn watch(&mut self, addr: IpAddr, ifindex: u32) -> usize {
        self.appeared.retain(|&(a, _)| a != addr);
        self.locals.push(Local {
            addr,
            ifindex: Some(ifindex),
            link_up: self.link_state(ifindex).unwrap_or(true),
        });
        self.locals.len() - 1
    }

    fn link_state(&self, ifindex: u32) -> Option<bool> {
        self.links
            .iter()
            .find(|(i, _)| *i == ifindex)
            .map(|&(_, up)| up)
    }

    fn set_link(&mut self, ifindex: u32, up: Option<bool>) {
        self.links.retain(|(i, _)| *i != ifindex);
        if let Some(up) = up {
            self.links.push((ifindex, up));
        }
        for l in &mut self.locals {
            if l.ifindex == Some(ifindex) && !l.addr.is_unspecified() {
                l.link_up = up.unwrap_or(false);
            }
        }
    }

    /// Applies one message; pushes onto `changes` every address whose usability it changed.
    pub fn apply(&mut self, msg: &RouteNetlinkMessage, changes: &mut Vec<LinkChange>) {
        let before: Vec<bool> = self.locals.iter().map(Local::usable).collect();
        match msg {
            RouteNetlinkMessage::NewLink(LinkMessage { header, .. }) => {
                self.set_link(header.index, Some(link_up(header.flags)));
            }
            RouteNetlinkMessage::DelLink(LinkMessage { header, .. }) => {
                self.set_link(header.index, None);
            }
            RouteNetlinkMessage::NewAddress(m) => {
                let up = self.link_state(m.header.index);
                for ip in addresses(m) {
                    let mut followed = false;
                    for l in self.locals.iter_mut().filter(|l| l.addr == ip) {
                        followed = true;
                        l.ifindex = Some(m.header.index);
                        // A link not heard of yet is taken as up: the kernel just gave it
                        // an address, and its first link message corrects this.
                        l.link_up = up.unwrap_or(true);
                    }
                    if !followed && self.report_new && !self.appeared.iter().any(|a| a.0 == ip) {
                        self.appeared.push((ip, m.header.index));
                    }
                }
            }
            RouteNetlinkMessage::DelAddress(m) => {
                for ip in addresses(m) {
                    self.appeared.retain(|&(a, _)| a != ip);
                    for l in self.locals.iter_mut().filter(|l| l.addr == ip) {
                        if l.ifindex == Some(m.header.index) {
                            l.ifindex = None;
                        }
                    }
                }
            }
            _ => {}
        }
        for (local, (l, was)) in self.locals.iter().zip(before).enumerate() {
            if l.usable() != was {
                changes.push(LinkChange {
                    local,
                    usable: l.usable(),
                });
            }
        }
    }
}

/// The kernel's index of interface `ifname`.
///
/// # Errors
/// There is no such interface.
pub fn interface_index(ifname: &str) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(ifname)
        .map_err(|e| io::Error::new(io::ErrorKind::NotFound, format!("{ifname}: {e}")))
}

/// The addresses interface `ifname` holds now (both families, in the kernel's order), from
/// an rtnetlink dump; an error if there is no such interface.
pub fn interface_addrs(ifname: &str) -> io::Result<Vec<IpAddr>> {
    let index = interface_index(ifname)?;
    let mut out = Vec::new();
    dump_addresses(&mut Netlink::new()?, |m| {
        if let RouteNetlinkMessage::NewAddress(a) = m
            && a.header.index == index
        {
            for ip in addresses(a) {
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
        }
    })?;
    Ok(out)
}

/// Every address of every interface (IPv4, then IPv6), as rtnetlink dumps them.
fn dump_addresses(nl: &mut Netlink, mut f: impl FnMut(&RouteNetlinkMessage)) -> io::Result<()> {
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut req = AddressMessage::default();
        req.header.family = family;
        for m in nl.request(RouteNetlinkMessage::GetAddress(req), NLM_F_DUMP)? {
            f(&m);
        }
    }
    Ok(())
}

/// A [`LinkTable`] kept current by the kernel's notifications (in the calling thread's
/// network namespace).
#[derive(Debug)]
pub struct LinkWatch {
    monitor: Socket,
    table: LinkTable,
    buf: Vec<u8>,
    /// Notifications read, for the client's counters.
    pub notifications: u64,
    /// When [`LinkWatch::poll_due`] reads the socket next.
    next_poll: Option<std::time::Instant>,
}

/// How often [`LinkWatch::poll_due`] reads the socket: a link change is seen at most this
/// late, and an engine loop that calls it every iteration makes one syscall per interval,
/// not one per iteration.
pub const POLL_EVERY: std::time::Duration = std::time::Duration::from_millis(5);

impl LinkWatch {
    /// Subscribes, then learns the current links and addresses from a dump (subscribing
    /// first, so that no change between the two is missed).
    pub fn open(addrs: &[IpAddr]) -> io::Result<Self> {
        let mut monitor = Socket::new(NETLINK_ROUTE)?;
        monitor.bind(&SocketAddr::new(
            0,
            RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR,
        ))?;
        monitor.set_non_blocking(true)?;
        let mut table = LinkTable::new(addrs);
        let mut nl = Netlink::new()?;
        let mut ignored = Vec::new();
        for m in nl.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )? {
            table.apply(&m, &mut ignored);
        }
        dump_addresses(&mut nl, |m| table.apply(m, &mut ignored))?;
        table.report_new(true);
        Ok(LinkWatch {
            monitor,
            table,
            buf: vec![0; 16 * 1024],
            notifications: 0,
            next_poll: None,
        })
    }

    /// [`LinkWatch::poll`] if [`POLL_EVERY`] has passed since the last read (or there was
    /// none); otherwise nothing.
    pub fn poll_due(
        &mut self,
        now: std::time::Instant,
        changes: &mut Vec<LinkChange>,
    ) -> io::Result<()> {
        if self.next_poll.is_some_and(|t| now < t) {
            return Ok(());
        }
        self.next_poll = Some(now + POLL_EVERY);
        self.poll(changes)
    }

    /// When [`LinkWatch::poll_due`] reads next (`None`: at its next call).
    pub fn next_poll(&self) -> Option<std::time::Instant> {
        self.next_poll
    }

    /// Whether local address `i` can carry a path.
    pub fn usable(&self, i: usize) -> bool {
        self.table.usable(i)
    }

    /// Addresses configured since the watch opened that it does not follow (see
    /// [`LinkTable::take_new_addresses`]).
    pub fn take_new_addresses(&mut self, out: &mut Vec<(IpAddr, u32)>) {
        self.table.take_new_addresses(out);
    }

    /// Follows one more address (see [`LinkTable::watch`]).
    pub fn watch(&mut self, addr: IpAddr, ifindex: u32) -> usize {
        self.table.watch(addr, ifindex)
    }

    /// Reads every pending notification; pushes onto `changes` the addresses whose
    /// usability changed. Returns an error only if the socket failed (not for "nothing to
    /// read"); a notification that does not parse is skipped.
    pub fn poll(&mut self, changes: &mut Vec<LinkChange>) -> io::Result<()> {
        loop {
            let n = match self.monitor.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut off = 0;
            while off < n {
                let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..n])
                else {
                    break;
                };
                let len = msg.header.length as usize;
                if let NetlinkPayload::InnerMessage(m) = msg.payload {
                    self.notifications += 1;
                    self.table.apply(&m, changes);
                }
                if len == 0 {
                    break;
                }
                off += len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, flags: LinkFlags) -> RouteNetlinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = flags;
        RouteNetlinkMessage::NewLink(m)
    }

    fn addr(new: bool, index: u32, ip: &str) -> RouteNetlinkMessage {
        let mut m = AddressMessage::default();
        m.header.index = index;
        m.attributes
            .push(AddressAttribute::Local(ip.parse().unwrap()));
        if new {
            RouteNetlinkMessage::NewAddress(m)
        } else {
            RouteNetlinkMessage::DelAddress(m)
        }
    }

    const UP: LinkFlags = LinkFlags::Up.union(LinkFlags::Running);

    fn table() -> LinkTable {
        let mut t = LinkTable::new(&["198.18.0.2".parse().unwrap(), "198.18.1.2".parse().unwrap()]);
        let mut c = Vec::new();
        t.apply(&link(4, UP), &mut c);
        t.apply(&link(5, UP), &mut c);
        t.apply(&addr(true, 4, "198.18.0.2"), &mut c);
        t.apply(&addr(true, 5, "198.18.1.2"), &mut c);
        assert_eq!(
            c,
            [
                LinkChange {
                    local: 0,
                    usable: true
                },
                LinkChange {
                    local: 1,
                    usable: true
                }
            ]
        );
        t
    }

    #[test]
    fn a_new_address_is_reported_once_watched_and_then_followed_like_the_others() {
        let mut t = table();
        let mut c = Vec::new();
        let mut new = Vec::new();
        // Before reporting is on (the starting dump), nothing is collected.
        t.apply(&addr(true, 9, "198.18.9.1"), &mut c);
        t.take_new_addresses(&mut new);
        assert!(new.is_empty());
        t.report_new(true);
        t.apply(&link(7, UP), &mut c);
        t.apply(&addr(true, 7, "198.18.7.2"), &mut c);
        t.apply(&addr(true, 7, "198.18.7.2"), &mut c);
        t.apply(&addr(true, 8, "198.18.8.2"), &mut c);
        t.apply(&addr(false, 8, "198.18.8.2"), &mut c);
        assert!(c.is_empty(), "no followed address changed");
        t.take_new_addresses(&mut new);
        let ip: IpAddr = "198.18.7.2".parse().unwrap();
        assert_eq!(new, [(ip, 7)], "once, and not the one that went away");
        let i = t.watch(ip, 7);
        assert_eq!(i, 2);
        assert!(t.usable(i));
        t.apply(&link(7, LinkFlags::Up), &mut c);
        assert_eq!(
            c,
            [LinkChange {
                local: 2,
                usable: false
            }]
        );
        new.clear();
        t.take_new_addresses(&mut new);
        assert!(new.is_empty(), "a followed address is not new");
    }

    #[test]
    fn carrier_loss_makes_the_address_unusable_and_carrier_return_usable_again() {
        let mut t = table();
        let mut c = Vec::new();
        // `ip link set dev X down` on the veth peer: up, but no carrier.
        t.apply(&link(5, LinkFlags::Up), &mut c);
        assert_eq!(
            c,
            [LinkChange {
                local: 1,
                usable: false
            }]
        );
        assert!(t.usable(0) && !t.usable(1));
        c.clear();
        t.apply(&link(5, LinkFlags::Up), &mut c);
        assert!(c.is_empty(), "a repeated state is not a change");
        t.apply(&link(5, UP), &mut c);
        assert_eq!(
            c,
            [LinkChange {
                local: 1,
                usable: true
            }]
        );
    }

    #[test]
    fn removing_the_address_or_the_link_makes_it_unusable() {
        let mut t = table();
        let mut c = Vec::new();
        t.apply(&addr(false, 4, "198.18.0.2"), &mut c);
        assert_eq!(
            c,
            [LinkChange {
                local: 0,
                usable: false
            }]
        );
        c.clear();
        // The address comes back on another interface.
        t.apply(&link(9, UP), &mut c);
        t.apply(&addr(true, 9, "198.18.0.2"), &mut c);
        assert_eq!(
            c,
            [LinkChange {
                local: 0,
                usable: true
            }]
        );
        c.clear();
        t.apply(
            &RouteNetlinkMessage::DelLink(match link(9, UP) {
                RouteNetlinkMessage::NewLink(m) => m,
                _ => unreachable!(),
            }),
            &mut c,
        );
        assert_eq!(
            c,
            [LinkChange {
                local: 0,
                usable: false
            }]
        );
    }

    #[test]
    fn messages_about_other_interfaces_and_addresses_change_nothing() {
        let mut t = table();
        let mut c = Vec::new();
        t.apply(&link(7, LinkFlags::empty()), &mut c);
        t.apply(&addr(false, 7, "198.18.0.2"), &mut c);
        t.apply(&addr(true, 4, "198.18.9.9"), &mut c);
        assert!(c.is_empty());
        assert!(t.usable(0) && t.usable(1));
    }

    #[test]
    fn an_unspecified_local_address_is_always_usable() {
        let mut t = LinkTable::new(&["0.0.0.0".parse().unwrap()]);
        let mut c = Vec::new();
        t.apply(&link(1, LinkFlags::empty()), &mut c);
        assert!(t.usable(0) && c.is_empty());
    }
}
