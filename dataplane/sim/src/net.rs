//! The emulated network and the event loop: nodes exchange datagrams over per-path links
//! under a virtual clock. Everything is deterministic for a given seed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use camp_proto::{Driven, EcnCodepoint, Transmit};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::link::{Link, LinkConfig, LinkStats};

/// The client plus the application that consumes its playout: whenever the client wakes
/// up, every unit the alignment buffer releases is "presented" (its sequence number is
/// recorded per modality).
#[derive(Debug)]
pub struct ClientNode {
    /// The CAMP client.
    pub client: camp_proto::client::Client,
    /// Sequence numbers presented per modality, in presentation order (video frames skipped
    /// as too late are not counted).
    pub presented: [Vec<camp_wire::Seq>; camp_wire::Modality::COUNT],
}

impl ClientNode {
    /// Wraps a client.
    pub fn new(client: camp_proto::client::Client) -> Self {
        Self {
            client,
            presented: Default::default(),
        }
    }

    /// Presents every unit due at `now`.
    pub fn drain_playout(&mut self, now: Instant) {
        while let Some(p) = self.client.poll_playout(now) {
            if !p.skipped {
                self.presented[p.meta.modality.index()].push(p.meta.seq);
            }
        }
    }
}

impl Driven for ClientNode {
    fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        ecn: Option<EcnCodepoint>,
        data: &[u8],
    ) {
        self.client.handle_datagram(now, local, remote, ecn, data);
        self.drain_playout(now);
    }
    fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        self.client.poll_transmit(now, max_datagrams, buf)
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        self.client.poll_timeout()
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.client.handle_timeout(now);
        self.drain_playout(now);
    }
}

/// One emulated path between a client address and a server address.
#[derive(Clone, Debug, PartialEq)]
pub struct PathConfig {
    /// Client → server direction.
    pub up: LinkConfig,
    /// Server → client direction.
    pub down: LinkConfig,
}

impl PathConfig {
    /// The same link settings in both directions.
    pub fn symmetric(link: LinkConfig) -> Self {
        Self {
            up: link.clone(),
            down: link,
        }
    }
}

struct InFlight {
    from: SocketAddr,
    to: SocketAddr,
    ecn: Option<EcnCodepoint>,
    data: Vec<u8>,
}

/// Which node owns an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeId {
    /// The server.
    Server,
    /// The client.
    Client,
    /// An extra node (index into [`Sim::extra`]).
    Extra(usize),
}

/// Network statistics of one path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathStats {
    /// Client → server.
    pub up: LinkStats,
    /// Server → client.
    pub down: LinkStats,
}

/// The simulator: a server, a client, optional extra nodes, and the links between them.
pub struct Sim<S: Driven, C: Driven> {
    /// The server node.
    pub server: S,
    /// The client node.
    pub client: C,
    /// Extra nodes (attackers, competing traffic, further clients).
    pub extra: Vec<Box<dyn Driven>>,
    /// Deadlines and transmits of the extra nodes: polled only when touched.
    extras: ExtraTimers,
    epoch: Instant,
    now: Instant,
    rng: StdRng,
    owners: HashMap<IpAddr, NodeId>,
    links: HashMap<(IpAddr, IpAddr), Link>,
    heap: BinaryHeap<Reverse<(u64, u64, usize)>>,
    packets: Vec<Option<InFlight>>,
    free: Vec<usize>,
    pool: Vec<Vec<u8>>,
    seq: u64,
    buf: Vec<u8>,
    unroutable: u64,
    /// Packet capture, when on ([`Sim::start_capture`]).
    capture: Option<crate::pcap::Capture>,
}

impl<S: Driven, C: Driven> std::fmt::Debug for Sim<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("now_us", &self.now_us())
            .finish_non_exhaustive()
    }
}

/// Address of the server on path `i` (198.18.0.0/15, the benchmarking range).
pub fn server_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([198, 18, i as u8, 1], 4433))
}

/// Address of the client on path `i`.
pub fn client_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([198, 18, i as u8, 2], 50_000 + i as u16))
}

impl<S: Driven, C: Driven> Sim<S, C> {
    /// A simulator whose clock starts at `epoch`, with one link pair per path between
    /// [`client_addr`]`(i)` and [`server_addr`]`(i)`.
    pub fn new(server: S, client: C, paths: &[PathConfig], epoch: Instant, seed: u64) -> Self {
        let mut sim = Self {
            server,
            client,
            extra: Vec::new(),
            extras: ExtraTimers::default(),
            epoch,
            now: epoch,
            rng: StdRng::seed_from_u64(seed),
            owners: HashMap::new(),
            links: HashMap::new(),
            heap: BinaryHeap::new(),
            packets: Vec::new(),
            free: Vec::new(),
            pool: Vec::new(),
            seq: 0,
            buf: Vec::with_capacity(65_536),
            unroutable: 0,
            capture: None,
        };
        for (i, p) in paths.iter().enumerate() {
            let (c, s) = (client_addr(i).ip(), server_addr(i).ip());
            sim.owners.insert(c, NodeId::Client);
            sim.owners.insert(s, NodeId::Server);
            sim.links.insert((c, s), Link::new(p.up.clone()));
            sim.links.insert((s, c), Link::new(p.down.clone()));
        }
        sim
    }

    /// Adds an extra node reachable at `addr`, linked to the server address `server_ip`
    /// by `path`. Returns its index in [`Sim::extra`].
    pub fn add_node(
        &mut self,
        node: Box<dyn Driven>,
        addr: IpAddr,
        server_ip: IpAddr,
        path: PathConfig,
    ) -> usize {
        self.add_node_paths(node, &[(addr, server_ip, path)])
    }

    /// Adds an extra node that owns several addresses, each linked to a server address by
    /// its own path: `(node address, server address, path)`. Returns its index in
    /// [`Sim::extra`]. Extra nodes cost nothing while idle: the simulator polls a node's
    /// transmits and deadline only after it was called, and keeps the deadlines in a heap.
    pub fn add_node_paths(
        &mut self,
        node: Box<dyn Driven>,
        paths: &[(IpAddr, IpAddr, PathConfig)],
    ) -> usize {
        let idx = self.extra.len();
        self.extra.push(node);
        for (addr, server_ip, path) in paths {
            self.owners.insert(*addr, NodeId::Extra(idx));
            self.links
                .insert((*addr, *server_ip), Link::new(path.up.clone()));
            self.links
                .insert((*server_ip, *addr), Link::new(path.down.clone()));
        }
        self.extras.deadline.push(None);
        self.extras.dirty_flag.push(false);
        self.extras.touch(idx);
        idx
    }

    /// Adds an extra node that answers at `addrs` (taking them over from whichever node
    /// owned them), with no links of its own: for a node that replaces the server at its
    /// addresses, reached over the links other nodes were added with. Returns its index in
    /// [`Sim::extra`].
    pub fn add_node_at(&mut self, node: Box<dyn Driven>, addrs: &[IpAddr]) -> usize {
        let idx = self.extra.len();
        self.extra.push(node);
        for a in addrs {
            self.owners.insert(*a, NodeId::Extra(idx));
        }
        self.extras.deadline.push(None);
        self.extras.dirty_flag.push(false);
        self.extras.touch(idx);
        idx
    }

    /// Links a client address to a server address that are not a configured path's pair
    /// (a cross route: client interface `i` reaching the server's address `j`, or a server
    /// address added mid-run), in both directions.
    pub fn add_route(&mut self, client_ip: IpAddr, server_ip: IpAddr, path: PathConfig) {
        self.owners.insert(client_ip, NodeId::Client);
        self.owners.insert(server_ip, NodeId::Server);
        self.links
            .insert((client_ip, server_ip), Link::new(path.up));
        self.links
            .insert((server_ip, client_ip), Link::new(path.down));
    }

    /// Link statistics between a client address and a server address, any route.
    pub fn route_stats(&self, client_ip: IpAddr, server_ip: IpAddr) -> PathStats {
        let get = |k| {
            self.links
                .get(&k)
                .map(|l: &Link| *l.stats())
                .unwrap_or_default()
        };
        PathStats {
            up: get((client_ip, server_ip)),
            down: get((server_ip, client_ip)),
        }
    }

    /// Captures every datagram handed to a link from now on (see [`crate::pcap`]).
    pub fn start_capture(&mut self) {
        self.capture.get_or_insert_with(Default::default);
    }

    /// What was captured, if capturing.
    pub fn capture(&self) -> Option<&crate::pcap::Capture> {
        self.capture.as_ref()
    }

    /// Current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Microseconds since the epoch.
    pub fn now_us(&self) -> u64 {
        self.now.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// Datagrams that had no link (misrouted).
    pub fn unroutable(&self) -> u64 {
        self.unroutable
    }

    /// Link statistics of path `i`.
    pub fn path_stats(&self, i: usize) -> PathStats {
        let (c, s) = (client_addr(i).ip(), server_addr(i).ip());
        PathStats {
            up: self
                .links
                .get(&(c, s))
                .map(|l| *l.stats())
                .unwrap_or_default(),
            down: self
                .links
                .get(&(s, c))
                .map(|l| *l.stats())
                .unwrap_or_default(),
        }
    }

    /// Current configuration of path `i`.
    pub fn path_config(&self, i: usize) -> PathConfig {
        let (c, s) = (client_addr(i).ip(), server_addr(i).ip());
        let get = |k| self.links.get(&k).map(|l: &Link| l.config().clone());
        PathConfig {
            up: get((c, s)).unwrap_or_else(|| LinkConfig::new(1.0, 1)),
            down: get((s, c)).unwrap_or_else(|| LinkConfig::new(1.0, 1)),
        }
    }

    /// Blacks out path `i` in both directions during `[from_us, until_us)` (µs since the
    /// epoch), keeping the links' queues.
    pub fn add_outage(&mut self, i: usize, from_us: u64, until_us: u64) {
        let (c, s) = (client_addr(i).ip(), server_addr(i).ip());
        // `u64::MAX` is "for good": the same `Duration::MAX` a cut uses, which is what
        // `retain_outages` callers match to lift a from-the-start outage. (Converted, it was
        // a different Duration, and a path dark from the start never came back.)
        let micros = |us: u64| match us {
            u64::MAX => Duration::MAX,
            us => Duration::from_micros(us),
        };
        let (from, until) = (micros(from_us), micros(until_us));
        for key in [(c, s), (s, c)] {
            if let Some(l) = self.links.get_mut(&key) {
                l.add_outage(from, until);
            }
        }
    }

    /// Removes path `i`'s blackout windows (both directions) that `keep` returns false for.
    pub fn retain_outages(&mut self, i: usize, keep: impl Fn(Duration, Duration) -> bool) {
        let (c, s) = (client_addr(i).ip(), server_addr(i).ip());
        for key in [(c, s), (s, c)] {
            if let Some(l) = self.links.get_mut(&key) {
                l.retain_outages(&keep);
            }
        }
    }

    /// Adds a delay/rate step to path `i` in both directions (`step.at` since the epoch),
    /// keeping the links' queues.
    pub fn add_step(&mut self, i: usize, step: crate::link::LinkStep) {
        let (c, s) = (client_addr(i).ip(), server_addr(i).ip());
        for key in [(c, s), (s, c)] {
            if let Some(l) = self.links.get_mut(&key) {
                l.add_step(step);
            }
        }
    }

    /// Replaces a link's configuration mid-run (e.g. to cut a path): `up` selects the
    /// client → server direction.
    pub fn set_link(&mut self, i: usize, up: bool, config: LinkConfig) {
        let (c, s) = (client_addr(i).ip(), server_addr(i).ip());
        let key = if up { (c, s) } else { (s, c) };
        self.links.insert(key, Link::new(config));
    }

    fn node(&mut self, id: NodeId) -> &mut dyn Driven {
        match id {
            NodeId::Server => &mut self.server,
            NodeId::Client => &mut self.client,
            NodeId::Extra(i) => self.extra[i].as_mut(),
        }
    }

    fn flush_transmits(&mut self) {
        let mut dirty = std::mem::take(&mut self.extras.dirty);
        self.flush_node(NodeId::Server);
        self.flush_node(NodeId::Client);
        for &i in &dirty {
            self.flush_node(NodeId::Extra(i));
        }
        // The touched extras' deadlines, now that they have sent what they had.
        for i in dirty.drain(..) {
            self.extras.dirty_flag[i] = false;
            let t = self.extra[i].poll_timeout().map(|t| self.micros_up(t));
            if t != self.extras.deadline[i] {
                self.extras.deadline[i] = t;
                if let Some(t) = t {
                    self.extras.heap.push(Reverse((t, i)));
                }
            }
        }
        self.extras.dirty = dirty;
    }

    /// µs since the epoch, rounded up: waking before a sub-microsecond deadline would fire
    /// nothing.
    fn micros_up(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch)
            .as_nanos()
            .div_ceil(1000) as u64
    }

    fn flush_node(&mut self, id: NodeId) {
        let now = self.now;
        let now_us = self.now_us();
        {
            loop {
                let mut buf = std::mem::take(&mut self.buf);
                // One datagram per call: the links see every datagram at its own time anyway,
                // and the figures stay those of the per-datagram sender.
                let t = self.node(id).poll_transmit(now, 1, &mut buf);
                let Some(t) = t else {
                    self.buf = buf;
                    break;
                };
                let seg = t.segment_size.unwrap_or(t.size).max(1);
                for chunk in buf[..t.size].chunks(seg) {
                    let key = (t.source.ip(), t.destination.ip());
                    let Some(link) = self.links.get_mut(&key) else {
                        self.unroutable += 1;
                        continue;
                    };
                    if let Some(c) = self.capture.as_mut() {
                        c.record(now_us, t.source, t.destination, chunk);
                    }
                    let Some(arrival) = link.send(now_us, chunk.len(), &mut self.rng) else {
                        continue;
                    };
                    let mut data = self.pool.pop().unwrap_or_default();
                    data.clear();
                    data.extend_from_slice(chunk);
                    let p = InFlight {
                        from: t.source,
                        to: t.destination,
                        ecn: t.ecn,
                        data,
                    };
                    let idx = match self.free.pop() {
                        Some(i) => {
                            self.packets[i] = Some(p);
                            i
                        }
                        None => {
                            self.packets.push(Some(p));
                            self.packets.len() - 1
                        }
                    };
                    self.seq += 1;
                    self.heap.push(Reverse((arrival, self.seq, idx)));
                }
                self.buf = buf;
            }
        }
    }

    /// Runs the network until `until` (inclusive of events at that instant).
    pub fn advance(&mut self, until: Instant) {
        let until_us = until.saturating_duration_since(self.epoch).as_micros() as u64;
        let mut spins = 0u32;
        loop {
            self.flush_transmits();
            let mut next_us = self.heap.peek().map(|r| r.0.0);
            let mut consider = |t_us: u64| next_us = Some(next_us.map_or(t_us, |n| n.min(t_us)));
            for id in [NodeId::Server, NodeId::Client] {
                if let Some(t) = self.node(id).poll_timeout() {
                    consider(self.micros_up(t));
                }
            }
            if let Some(t_us) = self.extras.next_live() {
                consider(t_us);
            }
            let Some(next_us) = next_us.filter(|&t| t <= until_us) else {
                self.now = until.max(self.now);
                return;
            };
            let next_us = next_us.max(self.now_us());
            if next_us == self.now_us() {
                spins += 1;
                assert!(
                    spins < 100_000,
                    "simulation makes no progress at {next_us} µs"
                );
            } else {
                spins = 0;
            }
            self.now = self.epoch + Duration::from_micros(next_us);
            while self.heap.peek().is_some_and(|r| r.0.0 <= next_us) {
                let Reverse((_, _, idx)) = self.heap.pop().expect("peeked");
                let p = self.packets[idx].take().expect("scheduled packet exists");
                self.free.push(idx);
                match self.owners.get(&p.to.ip()).copied() {
                    Some(owner) => {
                        let now = self.now;
                        self.node(owner)
                            .handle_datagram(now, p.to, p.from, p.ecn, &p.data);
                        if let NodeId::Extra(i) = owner {
                            self.extras.touch(i);
                        }
                    }
                    None => self.unroutable += 1,
                }
                self.pool.push(p.data);
            }
            let now = self.now;
            for id in [NodeId::Server, NodeId::Client] {
                let node = self.node(id);
                if node.poll_timeout().is_some_and(|t| t <= now) {
                    node.handle_timeout(now);
                }
            }
            while let Some(t_us) = self.extras.next_live() {
                if t_us > next_us {
                    break;
                }
                let Some(Reverse((_, i))) = self.extras.heap.pop() else {
                    break;
                };
                self.extras.deadline[i] = None;
                // A node touched by a datagram at this instant may have moved its deadline.
                let due = !self.extras.dirty_flag[i]
                    || self.extra[i].poll_timeout().is_some_and(|t| t <= now);
                if due {
                    self.extra[i].handle_timeout(now);
                }
                self.extras.touch(i);
            }
        }
    }
}

/// Deadlines of the extra nodes in a min-heap with lazy invalidation (an entry is live
/// while it equals the node's current deadline), and the nodes touched since their
/// deadline was last asked for.
#[derive(Debug, Default)]
struct ExtraTimers {
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    deadline: Vec<Option<u64>>,
    dirty: Vec<usize>,
    dirty_flag: Vec<bool>,
}

impl ExtraTimers {
    fn touch(&mut self, i: usize) {
        if !self.dirty_flag[i] {
            self.dirty_flag[i] = true;
            self.dirty.push(i);
        }
    }

    /// Drops stale entries; the earliest live deadline.
    fn next_live(&mut self) -> Option<u64> {
        while let Some(&Reverse((t, i))) = self.heap.peek() {
            if self.deadline[i] == Some(t) {
                return Some(t);
            }
            self.heap.pop();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends a datagram to `to` every `every_ms` until it has sent `count`, and counts
    /// what comes back.
    struct Pinger {
        from: SocketAddr,
        to: SocketAddr,
        every: Duration,
        next: Instant,
        due: bool,
        left: u32,
        got: std::rc::Rc<std::cell::Cell<u32>>,
    }

    impl Driven for Pinger {
        fn handle_datagram(
            &mut self,
            _: Instant,
            _: SocketAddr,
            _: SocketAddr,
            _: Option<EcnCodepoint>,
            _: &[u8],
        ) {
            self.got.set(self.got.get() + 1);
        }
        fn poll_transmit(&mut self, _: Instant, _: usize, buf: &mut Vec<u8>) -> Option<Transmit> {
            if !self.due {
                return None;
            }
            self.due = false;
            buf.clear();
            buf.extend_from_slice(b"ping");
            Some(Transmit {
                source: self.from,
                destination: self.to,
                ecn: None,
                size: 4,
                segment_size: None,
            })
        }
        fn poll_timeout(&mut self) -> Option<Instant> {
            (self.left > 0).then_some(self.next)
        }
        fn handle_timeout(&mut self, now: Instant) {
            if self.left > 0 && now >= self.next {
                self.left -= 1;
                self.due = true;
                self.next = now + self.every;
            }
        }
    }

    /// Answers every datagram to its sender.
    #[derive(Default)]
    struct Echo {
        out: Vec<(SocketAddr, SocketAddr)>,
        seen: u32,
    }

    impl Driven for Echo {
        fn handle_datagram(
            &mut self,
            _: Instant,
            local: SocketAddr,
            remote: SocketAddr,
            _: Option<EcnCodepoint>,
            _: &[u8],
        ) {
            self.seen += 1;
            self.out.push((local, remote));
        }
        fn poll_transmit(&mut self, _: Instant, _: usize, buf: &mut Vec<u8>) -> Option<Transmit> {
            let (local, remote) = self.out.pop()?;
            buf.clear();
            buf.extend_from_slice(b"pong");
            Some(Transmit {
                source: local,
                destination: remote,
                ecn: None,
                size: 4,
                segment_size: None,
            })
        }
        fn poll_timeout(&mut self) -> Option<Instant> {
            None
        }
        fn handle_timeout(&mut self, _: Instant) {}
    }

    #[test]
    fn extra_nodes_run_on_their_own_deadlines_and_datagrams() {
        let epoch = Instant::now();
        let mut sim = Sim::new(Echo::default(), Echo::default(), &[], epoch, 1);
        let path = PathConfig::symmetric(LinkConfig::new(10.0, 5));
        let server = server_addr(0);
        let mut counts = Vec::new();
        for k in 0..50u8 {
            let got = std::rc::Rc::new(std::cell::Cell::new(0));
            let from = SocketAddr::from(([198, 19, 0, k + 1], 1000));
            sim.add_node_paths(
                Box::new(Pinger {
                    from,
                    to: server,
                    // Different periods: the heap orders many distinct deadlines.
                    every: Duration::from_millis(3 + u64::from(k % 7)),
                    next: epoch + Duration::from_millis(u64::from(k)),
                    due: false,
                    left: 10,
                    got: got.clone(),
                }),
                &[(from.ip(), server.ip(), path.clone())],
            );
            counts.push(got);
        }
        // A second echo takes over the server's address: the first one sees nothing.
        let echo = std::rc::Rc::new(std::cell::RefCell::new(Echo::default()));
        struct Shared(std::rc::Rc<std::cell::RefCell<Echo>>);
        impl Driven for Shared {
            fn handle_datagram(
                &mut self,
                now: Instant,
                l: SocketAddr,
                r: SocketAddr,
                e: Option<EcnCodepoint>,
                d: &[u8],
            ) {
                self.0.borrow_mut().handle_datagram(now, l, r, e, d);
            }
            fn poll_transmit(
                &mut self,
                now: Instant,
                m: usize,
                buf: &mut Vec<u8>,
            ) -> Option<Transmit> {
                self.0.borrow_mut().poll_transmit(now, m, buf)
            }
            fn poll_timeout(&mut self) -> Option<Instant> {
                None
            }
            fn handle_timeout(&mut self, _: Instant) {}
        }
        sim.add_node_at(Box::new(Shared(echo.clone())), &[server.ip()]);
        sim.advance(epoch + Duration::from_millis(400));
        assert_eq!(sim.server.seen, 0, "the address moved to the extra echo");
        assert_eq!(echo.borrow().seen, 500);
        for (k, c) in counts.iter().enumerate() {
            assert_eq!(c.get(), 10, "pinger {k} got every answer");
        }
        assert_eq!(sim.unroutable(), 0);
    }
}
