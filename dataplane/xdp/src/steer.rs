//! Engine steering on the kernel-UDP fallback: one UDP socket per engine in an
//! SO_REUSEPORT group, and the `sk_reuseport` program of `bpf/camp_reuseport.bpf.c`
//! choosing each datagram's socket by the engine octet of its QUIC destination connection
//! id (the QUIC-LB layout of `camp_proto::cid`, engine = last octet of the server id).
//! Datagrams without a server-chosen CID (a client's first Initial) are left to the
//! kernel's 4-tuple hash. Every path of a session therefore reaches the engine that holds
//! the session, with no state shared between engines (docs/scale-out.md).

use std::mem::MaybeUninit;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrStorage, sockopt};

use crate::steer_skel::{CampReuseportSkel, CampReuseportSkelBuilder};

/// Most engines one group steers to (`MAX_ENGINES` of the program).
pub const MAX_ENGINES: usize = 64;

/// Errors of [`ReuseportSteering`].
#[derive(Debug, thiserror::Error)]
pub enum SteerError {
    /// The sockets or the layout are out of range.
    #[error("engine steering: {0}")]
    Config(String),
    /// The BPF object could not be opened or loaded (needs root or CAP_BPF).
    #[error("loading the reuseport steering program: {0}")]
    Load(#[source] libbpf_rs::Error),
    /// A map operation failed.
    #[error("reuseport steering map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// libbpf error.
        #[source]
        source: libbpf_rs::Error,
    },
    /// SO_ATTACH_REUSEPORT_EBPF failed.
    #[error("SO_ATTACH_REUSEPORT_EBPF: {0}")]
    Attach(#[source] std::io::Error),
}

/// Where the engine sits in the site's connection ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SteerLayout {
    /// Length of every server-chosen CID (1..=20).
    pub cid_len: u8,
    /// Config rotation bits of the live configuration (0..=6).
    pub config_id: u8,
    /// Octet of the CID holding the engine number (QUIC-LB: the server id's last octet,
    /// i.e. `server_id_len`).
    pub engine_offset: u8,
}

/// Datagrams the program saw, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SteerCounts {
    /// Sent to the socket of the engine their CID names.
    pub by_cid: u64,
    /// Left to the kernel's hash (no server-chosen CID, or an engine without a socket).
    pub by_hash: u64,
    /// The engine's socket refused the selection (closed); the hash chose.
    pub refused: u64,
}

/// `n` UDP sockets bound to `addr` in one SO_REUSEPORT group (engine k = socket k).
pub fn reuseport_group(addr: SocketAddr, n: usize) -> std::io::Result<Vec<UdpSocket>> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    (0..n)
        .map(|_| {
            let fd = socket::socket(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
            socket::setsockopt(&fd, sockopt::ReusePort, &true)?;
            socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
            Ok(UdpSocket::from(fd))
        })
        .collect()
}

/// The loaded steering program, attached to one group.
pub struct ReuseportSteering {
    skel: CampReuseportSkel<'static>,
}

impl std::fmt::Debug for ReuseportSteering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReuseportSteering").finish_non_exhaustive()
    }
}

impl ReuseportSteering {
    /// Loads the program, registers `sockets` as engines 0.. and attaches it to their
    /// group. The sockets must be bound, in one SO_REUSEPORT group (see
    /// [`reuseport_group`]). The group keeps the program while any socket lives.
    pub fn attach(sockets: &[UdpSocket], layout: SteerLayout) -> Result<Self, SteerError> {
        let too_many = sockets.len() > MAX_ENGINES || sockets.is_empty();
        let bad_layout = layout.cid_len == 0
            || layout.cid_len > 20
            || layout.config_id > 6
            || layout.engine_offset >= layout.cid_len;
        if too_many || bad_layout {
            return Err(SteerError::Config(format!(
                "steering {} sockets with {layout:?} (1..={MAX_ENGINES} sockets, a CID of \
                 1..=20 octets, rotation 0..=6, engine octet inside the CID)",
                sockets.len()
            )));
        }
        // See `Classifier::load` for why the open-object slot is leaked.
        let slot: &'static mut MaybeUninit<libbpf_rs::OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let load = SteerError::Load;
        let skel = CampReuseportSkelBuilder::default()
            .open(slot)
            .map_err(load)?
            .load()
            .map_err(load)?;
        let map = |map: &'static str| move |source| SteerError::Map { map, source };
        let mut config = [0u8; 16];
        for (i, v) in [
            u32::from(layout.cid_len),
            u32::from(layout.config_id),
            u32::from(layout.engine_offset),
            sockets.len() as u32,
        ]
        .into_iter()
        .enumerate()
        {
            config[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        skel.maps
            .steer_config
            .update(&0u32.to_ne_bytes(), &config, MapFlags::ANY)
            .map_err(map("steer_config"))?;
        for (k, s) in sockets.iter().enumerate() {
            let fd = s.as_raw_fd() as u64;
            skel.maps
                .engine_socks
                .update(&(k as u32).to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
                .map_err(map("engine_socks"))?;
        }
        crate::xsk::attach_reuseport_ebpf(sockets[0].as_fd(), skel.progs.camp_steer.as_fd())
            .map_err(SteerError::Attach)?;
        Ok(Self { skel })
    }

    /// What the program did so far.
    pub fn counts(&self) -> Result<SteerCounts, SteerError> {
        let read = |i: u32| -> Result<u64, SteerError> {
            let per_cpu = self
                .skel
                .maps
                .steer_stats
                .lookup_percpu(&i.to_ne_bytes(), MapFlags::ANY)
                .map_err(|source| SteerError::Map {
                    map: "steer_stats",
                    source,
                })?
                .unwrap_or_default();
            Ok(per_cpu
                .iter()
                .map(|v| {
                    v.get(..8)
                        .and_then(|b| b.try_into().ok())
                        .map_or(0, u64::from_ne_bytes)
                })
                .sum())
        };
        Ok(SteerCounts {
            by_cid: read(0)?,
            by_hash: read(1)?,
            refused: read(2)?,
        })
    }
}
