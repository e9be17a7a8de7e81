//! [`PacketIo`] over AF_XDP: per NIC, the classifier attached to the
//! interface and one AF_XDP socket per RX queue, plus kernel UDP sockets
//! that reserve the CAMP ports.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};

use crate::classifier::{
    AttachMode, AttachedMode, Attachment, Classifier, ClassifierError, ClassifierStats,
};
use crate::frame::{self, FrameHeader};
use crate::io::{IoCounters, IoError, IoKind, PacketIo, Readiness, RxDatagram, TxDatagram};
use crate::neigh::NeighCache;
use crate::nic::{NicError, NicInfo, check_offloads};
use crate::xsk::{BindMode, CsumRequest, XskConfig, XskError, XskSocket, XskStats};

/// Frames taken from one RX ring per `recv_batch` call.
pub const RX_BATCH: u32 = 64;

/// Configuration of [`XdpIo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpConfig {
    /// Interfaces to serve (one socket set each).
    pub interfaces: Vec<String>,
    /// UDP ports that carry CAMP (classifier port set).
    pub ports: Vec<u16>,
    /// Native / generic XDP.
    pub attach: AttachMode,
    /// UMEM and ring sizes, zero-copy preference.
    pub xsk: XskConfig,
    /// Refuse interfaces with LRO (or GRO in generic mode) enabled.
    pub check_offloads: bool,
    /// Bind a kernel UDP socket on every (address, port) served.
    pub reserve_ports: bool,
    /// IPv4 TTL / IPv6 hop limit of outgoing datagrams.
    pub ttl: u8,
}

impl Default for XdpConfig {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            ports: Vec::new(),
            attach: AttachMode::Auto,
            xsk: XskConfig::default(),
            check_offloads: true,
            reserve_ports: true,
            ttl: 64,
        }
    }
}

/// Errors setting up [`XdpIo`].
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// Bad configuration.
    #[error("invalid XDP configuration: {0}")]
    Config(&'static str),
    /// Interface lookup.
    #[error(transparent)]
    Nic(#[from] NicError),
    /// Loading / attaching the classifier.
    #[error(transparent)]
    Classifier(#[from] ClassifierError),
    /// Creating an AF_XDP socket.
    #[error("AF_XDP socket on {ifname} queue {queue}: {source}")]
    Socket {
        /// Interface.
        ifname: String,
        /// Queue.
        queue: u32,
        /// Cause.
        #[source]
        source: XskError,
    },
    /// Offload settings that break AF_XDP.
    #[error("{0}")]
    Offload(String),
    /// Reserving a port with a kernel socket failed.
    #[error("reserving UDP {addr} with a kernel socket failed: {source}")]
    Reserve {
        /// The address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: io::Error,
    },
}

impl XdpError {
    /// Whether the error means "this machine / interface cannot do XDP"
    /// (as opposed to a configuration mistake).
    pub fn is_unsupported(&self) -> bool {
        match self {
            Self::Classifier(ClassifierError::Attach { source, .. }) => {
                matches!(source.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL))
            }
            Self::Socket { source, .. } => source
                .os_error()
                .and_then(io::Error::raw_os_error)
                .is_some_and(|e| {
                    matches!(
                        e,
                        libc::EAFNOSUPPORT | libc::EOPNOTSUPP | libc::EPROTONOSUPPORT
                    )
                }),
            _ => false,
        }
    }
}

/// State for one NIC.
#[derive(Debug)]
struct Nic {
    info: NicInfo,
    sockets: Vec<XskSocket>,
    /// Reserved kernel sockets (kept open; they receive only what the
    /// classifier passes).
    reserved: Vec<UdpSocket>,
    neigh: NeighCache,
    tx_dirty: bool,
    // Detach before unloading: the attachment is dropped before the
    // classifier (field order).
    attachment: Attachment,
    classifier: Classifier,
}

/// How one NIC ended up configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicReport {
    /// Interface name.
    pub name: String,
    /// XDP attach mode.
    pub attach: AttachedMode,
    /// AF_XDP bind mode per queue.
    pub queues: Vec<BindMode>,
}

/// AF_XDP packet I/O over one or more NICs.
#[derive(Debug)]
pub struct XdpIo {
    nics: Vec<Nic>,
    counters: IoCounters,
    ttl: u8,
    local_addrs: Vec<SocketAddr>,
    ticks: u32,
    readiness: Readiness,
    /// Segments per `send` batch: the smallest socket's [`XskSocket::tx_batch`].
    tx_batch: usize,
}

/// `recv_batch` calls between two automatic [`XdpIo::maintain`] runs.
pub const MAINTAIN_EVERY: u32 = 1024;

fn is_link_local_v6(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

impl XdpIo {
    /// Sets up every configured NIC: classifier loaded and attached, one
    /// AF_XDP socket per queue registered in its XSKMAP, ports reserved.
    /// Must run in the network namespace of the interfaces.
    pub fn open(cfg: &XdpConfig) -> Result<Self, XdpError> {
        if cfg.interfaces.is_empty() {
            return Err(XdpError::Config("no interfaces"));
        }
        if cfg.ports.is_empty() || cfg.ports.contains(&0) {
            return Err(XdpError::Config(
                "CAMP ports must be non-empty and non-zero",
            ));
        }
        let mut nics = Vec::with_capacity(cfg.interfaces.len());
        let mut local_addrs = Vec::new();
        for name in &cfg.interfaces {
            let info = NicInfo::lookup(name)?;
            let classifier = Classifier::load()?;
            for p in &cfg.ports {
                classifier.add_port(*p)?;
            }
            // Kernel sockets first, so a port taken by someone else fails
            // before anything is attached.
            let mut reserved = Vec::new();
            for ip in info.addrs.iter().filter(|ip| !is_link_local_v6(ip)) {
                for p in &cfg.ports {
                    let addr = SocketAddr::new(*ip, *p);
                    local_addrs.push(addr);
                    if cfg.reserve_ports {
                        let s = UdpSocket::bind(addr)
                            .map_err(|source| XdpError::Reserve { addr, source })?;
                        s.set_nonblocking(true)
                            .map_err(|source| XdpError::Reserve { addr, source })?;
                        reserved.push(s);
                    }
                }
            }
            let mut sockets = Vec::with_capacity(info.queues as usize);
            for q in 0..info.queues {
                let s = XskSocket::open(info.ifindex, q, &cfg.xsk).map_err(|source| {
                    XdpError::Socket {
                        ifname: name.clone(),
                        queue: q,
                        source,
                    }
                })?;
                classifier.register_socket(q, s.as_fd())?;
                sockets.push(s);
            }
            let attachment = classifier.attach(info.ifindex, cfg.attach)?;
            if cfg.check_offloads {
                check_offloads(name, attachment.mode() == AttachedMode::Generic)
                    .map_err(XdpError::Offload)?;
            }
            tracing::info!(
                nic = %name,
                attach = %attachment.mode(),
                bind = %sockets.first().map_or(BindMode::Copy, XskSocket::mode),
                queues = sockets.len(),
                "AF_XDP ready"
            );
            let neigh = NeighCache::with_kernel(info.ifindex).unwrap_or_else(|e| {
                tracing::warn!(nic = %name, error = %e, "rtnetlink unavailable: next hops only learned or configured");
                NeighCache::new(info.ifindex)
            });
            nics.push(Nic {
                neigh,
                info,
                sockets,
                reserved,
                tx_dirty: false,
                attachment,
                classifier,
            });
        }
        let readiness = Readiness::new(nics.iter().flat_map(|n| n.sockets.iter().map(AsFd::as_fd)))
            .map_err(|source| XdpError::Socket {
                ifname: "epoll".into(),
                queue: 0,
                source: XskError::Sys {
                    op: "epoll",
                    source,
                },
            })?;
        let tx_batch = nics
            .iter()
            .flat_map(|n| &n.sockets)
            .map(XskSocket::tx_batch)
            .min()
            .unwrap_or(1);
        Ok(Self {
            tx_batch,
            nics,
            counters: IoCounters::default(),
            ttl: cfg.ttl,
            local_addrs,
            ticks: 0,
            readiness,
        })
    }

    /// Applies kernel neighbour / route change notifications to the
    /// next-hop caches. Also done every [`MAINTAIN_EVERY`] `recv_batch`
    /// calls.
    pub fn maintain(&mut self) {
        for nic in &mut self.nics {
            nic.neigh.refresh();
        }
    }

    /// The next-hop MAC used for `remote` from the NIC owning `local`
    /// (resolving it if needed).
    pub fn next_hop(&mut self, local: IpAddr, remote: IpAddr) -> Option<frame::Mac> {
        let nic = self
            .nics
            .iter_mut()
            .find(|n| n.info.addrs.contains(&local))?;
        nic.neigh.lookup(remote)
    }

    /// Attach / bind modes per NIC.
    pub fn report(&self) -> Vec<NicReport> {
        self.nics
            .iter()
            .map(|n| NicReport {
                name: n.info.name.clone(),
                attach: n.attachment.mode(),
                queues: n.sockets.iter().map(XskSocket::mode).collect(),
            })
            .collect()
    }

    /// Counter handles of every NIC's classifier, with the NIC's name and attach mode,
    /// for a telemetry reader on another thread.
    pub fn stats_handles(
        &self,
    ) -> Result<Vec<(String, AttachedMode, ClassifierStats)>, ClassifierError> {
        self.nics
            .iter()
            .map(|n| {
                Ok((
                    n.info.name.clone(),
                    n.attachment.mode(),
                    n.classifier.stats_handle()?,
                ))
            })
            .collect()
    }

    /// The classifier of NIC `name`, for telemetry.
    pub fn classifier(&self, name: &str) -> Option<&Classifier> {
        self.nics
            .iter()
            .find(|n| n.info.name == name)
            .map(|n| &n.classifier)
    }

    /// Adds a static next-hop entry on the NIC that owns `local`.
    pub fn set_neighbour(
        &mut self,
        local: IpAddr,
        remote: IpAddr,
        mac: frame::Mac,
    ) -> Result<(), IoError> {
        let nic = self
            .nics
            .iter_mut()
            .find(|n| n.info.addrs.contains(&local))
            .ok_or(IoError::NoSourceInterface(local))?;
        nic.neigh.insert(remote, mac);
        Ok(())
    }

    /// Summed AF_XDP kernel statistics over all sockets.
    pub fn xsk_stats(&self) -> io::Result<XskStats> {
        let mut t = XskStats::default();
        for s in self.nics.iter().flat_map(|n| &n.sockets) {
            let x = s.stats()?;
            t.rx_dropped += x.rx_dropped;
            t.rx_invalid_descs += x.rx_invalid_descs;
            t.tx_invalid_descs += x.tx_invalid_descs;
            t.rx_ring_full += x.rx_ring_full;
            t.rx_fill_ring_empty += x.rx_fill_ring_empty;
            t.tx_ring_empty += x.tx_ring_empty;
        }
        Ok(t)
    }

    /// Drains the reserved kernel sockets and returns how many datagrams
    /// reached the kernel on CAMP ports. Non-zero means the classifier did
    /// not redirect them (queue without socket, or misconfiguration).
    pub fn drain_kernel_leaks(&mut self) -> usize {
        let mut buf = [0u8; 2048];
        let mut n = 0;
        for s in self.nics.iter().flat_map(|nic| &nic.reserved) {
            while s.recv(&mut buf).is_ok() {
                n += 1;
            }
        }
        if n > 0 {
            tracing::warn!(
                datagrams = n,
                "CAMP datagrams reached kernel sockets: classifier not redirecting"
            );
        }
        n
    }
}

impl PacketIo for XdpIo {
    fn recv_batch(&mut self, f: &mut dyn FnMut(RxDatagram<'_>)) -> Result<usize, IoError> {
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks % MAINTAIN_EVERY == 0 {
            self.maintain();
        }
        let counters = &mut self.counters;
        let mut total = 0;
        for nic in &mut self.nics {
            let Nic { sockets, neigh, .. } = nic;
            for s in sockets.iter_mut() {
                total += s.recv_batch(RX_BATCH, |bytes| match frame::parse_udp(bytes) {
                    Ok(v) => {
                        neigh.learn(v.src.ip(), v.eth.src);
                        counters.rx_packets += 1;
                        counters.rx_bytes += v.payload.len() as u64;
                        f(RxDatagram {
                            local: v.dst,
                            remote: v.src,
                            ecn: v.ecn,
                            payload: v.payload,
                        });
                    }
                    Err(e) => {
                        counters.rx_malformed += 1;
                        tracing::trace!(error = %e, "dropped malformed frame");
                    }
                });
                if s.rx_needs_wakeup() {
                    s.rx_wakeup()?;
                }
            }
        }
        Ok(total)
    }

    fn send(&mut self, tx: &TxDatagram<'_>) -> Result<(), IoError> {
        let local_ip = tx.local.ip();
        let Some(nic) = self
            .nics
            .iter_mut()
            .find(|n| n.info.addrs.contains(&local_ip))
        else {
            self.counters.tx_no_route += 1;
            return Err(IoError::NoSourceInterface(local_ip));
        };
        let Some(dst_mac) = nic.neigh.lookup(tx.remote.ip()) else {
            self.counters.tx_no_route += 1;
            return Err(IoError::NoNextHop(tx.remote.ip()));
        };
        let h = FrameHeader {
            src_mac: nic.info.mac,
            dst_mac,
            vlan: None,
            src: tx.local,
            dst: tx.remote,
            ecn: tx.ecn,
            ttl: self.ttl,
        };
        let n = nic.sockets.len();
        let sock = &mut nic.sockets[usize::from(tx.remote.port()) % n];
        let max = sock.tx_frame_len() - h.header_len();
        if let Some(seg) = tx.segment_size.filter(|s| *s > max) {
            return Err(IoError::TooLarge { len: seg, max });
        }
        if tx.segment_size.is_none() && tx.payload.len() > max {
            return Err(IoError::TooLarge {
                len: tx.payload.len(),
                max,
            });
        }
        // All segments or none: make room first.
        let needed = tx.segments().count();
        if sock.tx_capacity() < needed {
            self.counters.tx_syscalls += u64::from(sock.tx_submit()?);
            if sock.tx_capacity() < needed {
                self.counters.tx_full += 1;
                return Err(IoError::WouldBlock);
            }
        }
        let offload = sock.tx_checksum_offload();
        for seg in tx.segments() {
            let queued = if offload {
                sock.tx_push_offload(|buf| {
                    frame::write_udp_offload(buf, &h, seg).map(|(len, l4)| {
                        let c = CsumRequest {
                            start: l4 as u16,
                            offset: frame::UDP_CSUM_OFFSET as u16,
                        };
                        (len, c)
                    })
                })?
            } else {
                sock.tx_push(|buf| frame::write_udp(buf, &h, seg))?
            };
            if !queued {
                // Cannot happen after the capacity check; reported as full.
                self.counters.tx_full += 1;
                return Err(IoError::WouldBlock);
            }
            nic.tx_dirty = true;
            self.counters.tx_packets += 1;
            self.counters.tx_bytes += seg.len() as u64;
            if offload {
                self.counters.tx_csum_offload += 1;
            } else {
                self.counters.tx_csum_software += 1;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IoError> {
        for nic in self.nics.iter_mut().filter(|n| n.tx_dirty) {
            let mut left = 0;
            for s in &mut nic.sockets {
                self.counters.tx_syscalls += u64::from(s.tx_submit()?);
                left += s.tx_backlog();
            }
            // A backlog (copy mode sends a bounded batch per kick, or the
            // device queue was busy) keeps the NIC dirty for the next flush.
            nic.tx_dirty = left > 0;
        }
        Ok(())
    }

    fn max_segments(&self) -> usize {
        self.tx_batch
    }

    fn tx_backlog(&self) -> usize {
        self.nics
            .iter()
            .filter(|n| n.tx_dirty)
            .flat_map(|n| &n.sockets)
            .map(XskSocket::tx_backlog)
            .sum()
    }

    fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.readiness.fd()
    }

    fn wait(&mut self, timeout: std::time::Duration) -> Result<bool, IoError> {
        Ok(self.readiness.wait(timeout)?)
    }

    fn counters(&self) -> IoCounters {
        self.counters
    }

    fn kind(&self) -> IoKind {
        IoKind::Xdp
    }

    fn local_addrs(&self) -> Vec<SocketAddr> {
        self.local_addrs.clone()
    }
}
