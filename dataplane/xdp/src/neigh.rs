//! Next-hop link addresses: learned from received frames, configured
//! statically, or resolved from the kernel's route and neighbour tables
//! over rtnetlink, and kept fresh by listening to neighbour and route
//! change notifications.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::frame::Mac;

const RTMGRP_NEIGH: u32 = 0x4;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;
/// Do not ask the kernel about the same unresolved address more often.
const NEGATIVE_TTL: Duration = Duration::from_millis(200);

fn family(ip: &IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn neigh_ip(a: &NeighbourAddress) -> Option<IpAddr> {
    match a {
        NeighbourAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        NeighbourAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// A neighbour entry the kernel could use to send.
fn usable(m: &NeighbourMessage) -> Option<(IpAddr, Mac)> {
    if matches!(
        m.header.state,
        NeighbourState::Incomplete | NeighbourState::Failed | NeighbourState::None
    ) {
        return None;
    }
    let ip = m.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(d) => neigh_ip(d),
        _ => None,
    })?;
    let mac = m.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(l) => <[u8; 6]>::try_from(l.as_slice()).ok(),
        _ => None,
    })?;
    Some((ip, mac))
}

/// A request/response rtnetlink socket.
#[derive(Debug)]
pub struct Netlink {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn new() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Self {
            sock,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    pub(crate) fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST | flags;
        hdr.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(hdr, NetlinkPayload::from(msg));
        req.finalize();
        let mut out = vec![0; req.buffer_len()];
        req.serialize(&mut out);
        self.sock.send(&out, 0)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        loop {
            let n = self.sock.recv(&mut &mut self.buf[..], 0)?;
            let mut off = 0;
            while off < n {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..n])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = msg.header.length as usize;
                if msg.header.sequence_number == self.seq {
                    match msg.payload {
                        NetlinkPayload::Done(_) => return Ok(replies),
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                                None => Ok(replies), // ACK
                            };
                        }
                        NetlinkPayload::InnerMessage(m) => {
                            replies.push(m);
                            if !dump && flags & NLM_F_ACK == 0 {
                                return Ok(replies);
                            }
                        }
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                off += len;
            }
        }
    }

    /// The kernel's route to `dst`: (gateway if any, output interface).
    pub fn route(&mut self, dst: IpAddr) -> io::Result<(Option<IpAddr>, Option<u32>)> {
        let mut m = RouteMessage::default();
        m.header.address_family = family(&dst);
        m.header.destination_prefix_length = if dst.is_ipv4() { 32 } else { 128 };
        m.attributes.push(RouteAttribute::Destination(dst.into()));
        let replies = self.request(RouteNetlinkMessage::GetRoute(m), 0)?;
        for r in replies {
            if let RouteNetlinkMessage::NewRoute(r) = r {
                let gw = r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Gateway(g) => route_ip(g),
                    _ => None,
                });
                let oif = r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Oif(i) => Some(*i),
                    _ => None,
                });
                return Ok((gw, oif));
            }
        }
        Ok((None, None))
    }

    /// The kernel's neighbour entry for `ip` on `ifindex`, if usable.
    pub fn neighbour(&mut self, ifindex: u32, ip: IpAddr) -> io::Result<Option<Mac>> {
        let mut m = NeighbourMessage::default();
        m.header.family = family(&ip);
        let replies = self.request(RouteNetlinkMessage::GetNeighbour(m), NLM_F_DUMP)?;
        Ok(replies.into_iter().find_map(|r| match r {
            RouteNetlinkMessage::NewNeighbour(n) if n.header.ifindex == ifindex => {
                usable(&n).filter(|(i, _)| *i == ip).map(|(_, mac)| mac)
            }
            _ => None,
        }))
    }

    /// Asks the kernel to resolve `ip` on `ifindex` (`NTF_USE`: as if it
    /// had traffic for it), without sending anything ourselves.
    pub fn trigger(&mut self, ifindex: u32, ip: IpAddr) -> io::Result<()> {
        let mut m = NeighbourMessage::default();
        m.header.family = family(&ip);
        m.header.ifindex = ifindex;
        m.header.state = NeighbourState::None;
        m.header.flags = NeighbourFlags::Use;
        m.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
        }));
        self.request(
            RouteNetlinkMessage::NewNeighbour(m),
            NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK,
        )
        .map(|_| ())
    }
}

/// Resolves the next-hop MAC for `dst` leaving through `ifindex`.
pub fn resolve(nl: &mut Netlink, ifindex: u32, dst: IpAddr) -> io::Result<Option<Mac>> {
    let (gw, oif) = nl.route(dst)?;
    if oif.is_some_and(|o| o != ifindex) {
        return Ok(None);
    }
    let hop = gw.unwrap_or(dst);
    match nl.neighbour(ifindex, hop)? {
        Some(mac) => Ok(Some(mac)),
        None => {
            nl.trigger(ifindex, hop)?;
            Ok(None)
        }
    }
}

/// Per-NIC cache of remote IP -> next-hop MAC.
#[derive(Debug)]
pub struct NeighCache {
    ifindex: u32,
    entries: HashMap<IpAddr, Mac>,
    negative: HashMap<IpAddr, Instant>,
    netlink: Option<Netlink>,
    monitor: Option<Socket>,
    /// The last (ip, mac) passed to `learn`, known to be in `entries`.
    last_learned: Option<(IpAddr, Mac)>,
}

impl NeighCache {
    /// An empty cache for interface `ifindex` that does not ask the kernel.
    pub fn new(ifindex: u32) -> Self {
        Self {
            ifindex,
            entries: HashMap::with_capacity(64),
            negative: HashMap::new(),
            netlink: None,
            monitor: None,
            last_learned: None,
        }
    }

    /// A cache that resolves misses through the kernel's tables and follows
    /// their changes (sockets opened in the calling thread's namespace).
    pub fn with_kernel(ifindex: u32) -> io::Result<Self> {
        let mut monitor = Socket::new(NETLINK_ROUTE)?;
        monitor.bind(&SocketAddr::new(
            0,
            RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE,
        ))?;
        monitor.set_non_blocking(true)?;
        Ok(Self {
            netlink: Some(Netlink::new()?),
            monitor: Some(monitor),
            ..Self::new(ifindex)
        })
    }

    /// Interface this cache resolves for.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Records that `ip` was last seen behind `mac` (from a received frame:
    /// for an off-link peer that is the router, i.e. the right next hop).
    /// Allocates only for a new peer.
    pub fn learn(&mut self, ip: IpAddr, mac: Mac) {
        // Fast path for a stream of frames from the same peer: no hashing.
        if self.last_learned == Some((ip, mac)) {
            return;
        }
        self.last_learned = Some((ip, mac));
        match self.entries.get_mut(&ip) {
            Some(m) => *m = mac,
            None => {
                self.entries.insert(ip, mac);
            }
        }
    }

    /// Adds or replaces an entry.
    pub fn insert(&mut self, ip: IpAddr, mac: Mac) {
        self.last_learned = None;
        self.entries.insert(ip, mac);
    }

    /// Forgets an entry.
    pub fn remove(&mut self, ip: &IpAddr) {
        self.last_learned = None;
        self.entries.remove(ip);
    }

    /// The next hop for `ip`: cached, else resolved through the kernel
    /// (which is asked to resolve it if it does not know it yet).
    pub fn lookup(&mut self, ip: IpAddr) -> Option<Mac> {
        if let Some(m) = self.entries.get(&ip) {
            return Some(*m);
        }
        let nl = self.netlink.as_mut()?;
        if self
            .negative
            .get(&ip)
            .is_some_and(|t| t.elapsed() < NEGATIVE_TTL)
        {
            return None;
        }
        match resolve(nl, self.ifindex, ip) {
            Ok(Some(mac)) => {
                self.negative.remove(&ip);
                self.entries.insert(ip, mac);
                Some(mac)
            }
            Ok(None) => {
                self.negative.insert(ip, Instant::now());
                None
            }
            Err(e) => {
                tracing::debug!(%ip, error = %e, "next-hop resolution failed");
                self.negative.insert(ip, Instant::now());
                None
            }
        }
    }

    /// Applies pending kernel notifications: neighbour updates refresh or
    /// drop entries, route changes drop everything (re-resolved or
    /// re-learned on demand). Returns how many notifications were read.
    pub fn refresh(&mut self) -> usize {
        let Some(mon) = &self.monitor else { return 0 };
        let mut buf = [0u8; 8192];
        let mut seen = 0;
        while let Ok(n) = mon.recv(&mut &mut buf[..], 0) {
            self.last_learned = None;
            let mut off = 0;
            while off < n {
                let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[off..n])
                else {
                    break;
                };
                let len = msg.header.length as usize;
                seen += 1;
                match msg.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(m))
                        if m.header.ifindex == self.ifindex =>
                    {
                        match usable(&m) {
                            Some((ip, mac)) => {
                                if self.entries.contains_key(&ip) {
                                    self.entries.insert(ip, mac);
                                }
                                self.negative.remove(&ip);
                            }
                            None => {
                                if let Some(ip) = m.attributes.iter().find_map(|a| match a {
                                    NeighbourAttribute::Destination(d) => neigh_ip(d),
                                    _ => None,
                                }) {
                                    if m.header.state == NeighbourState::Failed {
                                        self.entries.remove(&ip);
                                    }
                                }
                            }
                        }
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelNeighbour(m))
                        if m.header.ifindex == self.ifindex =>
                    {
                        if let Some(ip) = m.attributes.iter().find_map(|a| match a {
                            NeighbourAttribute::Destination(d) => neigh_ip(d),
                            _ => None,
                        }) {
                            self.entries.remove(&ip);
                        }
                    }
                    NetlinkPayload::InnerMessage(
                        RouteNetlinkMessage::NewRoute(_) | RouteNetlinkMessage::DelRoute(_),
                    ) => {
                        self.entries.clear();
                        self.negative.clear();
                    }
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                off += len;
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learned_entries_are_returned_and_updated() {
        let mut c = NeighCache::new(7);
        let ip: IpAddr = "198.18.0.2".parse().unwrap();
        assert_eq!(c.lookup(ip), None);
        c.learn(ip, [2, 0, 0, 0, 0, 1]);
        assert_eq!(c.lookup(ip), Some([2, 0, 0, 0, 0, 1]));
        c.learn(ip, [2, 0, 0, 0, 0, 2]);
        assert_eq!(c.lookup(ip), Some([2, 0, 0, 0, 0, 2]));
        c.remove(&ip);
        assert_eq!(c.lookup(ip), None);
        // Learning the same pair again after a removal re-inserts it.
        c.learn(ip, [2, 0, 0, 0, 0, 2]);
        assert_eq!(c.lookup(ip), Some([2, 0, 0, 0, 0, 2]));
        assert_eq!(c.refresh(), 0);
    }

    #[test]
    fn usable_requires_address_and_valid_state() {
        let mut m = NeighbourMessage::default();
        m.header.state = NeighbourState::Reachable;
        m.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
                "198.18.0.2".parse().unwrap(),
            )));
        assert_eq!(usable(&m), None);
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(vec![2, 0, 0, 0, 0, 9]));
        assert_eq!(
            usable(&m),
            Some(("198.18.0.2".parse().unwrap(), [2, 0, 0, 0, 0, 9]))
        );
        m.header.state = NeighbourState::Incomplete;
        assert_eq!(usable(&m), None);
    }
}
