//! Loader for the XDP classifier (`bpf/camp_classifier.bpf.c`): port set,
//! XSKMAP registration, attachment in native or generic mode, and the
//! per-CPU telemetry counters.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags};

use crate::skel::{CampClassifierSkel, CampClassifierSkelBuilder};

/// How to attach the classifier to an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachMode {
    /// Native (driver) XDP, falling back to generic when the driver has no
    /// XDP support.
    #[default]
    Auto,
    /// Native (driver) XDP only.
    Native,
    /// Generic (skb) XDP.
    Generic,
}

/// The mode an attachment ended up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachedMode {
    /// Driver XDP.
    Native,
    /// Generic XDP.
    Generic,
}

impl std::fmt::Display for AttachedMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Native => "native",
            Self::Generic => "generic",
        })
    }
}

/// Errors from loading or driving the classifier.
#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    /// The BPF object could not be opened or loaded.
    #[error("loading the XDP classifier failed{hint}: {source}")]
    Load {
        /// A hint for common causes (permissions).
        hint: &'static str,
        /// libbpf error.
        #[source]
        source: libbpf_rs::Error,
    },
    /// Attaching to an interface failed.
    #[error(
        "attaching the XDP classifier to ifindex {ifindex} in {mode} mode failed{hint}: {source}"
    )]
    Attach {
        /// Interface index.
        ifindex: u32,
        /// Mode tried.
        mode: AttachedMode,
        /// A hint for common causes.
        hint: &'static str,
        /// OS error.
        #[source]
        source: io::Error,
    },
    /// A map operation failed.
    #[error("XDP classifier map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// libbpf error.
        #[source]
        source: libbpf_rs::Error,
    },
}

fn load_hint(e: &libbpf_rs::Error) -> &'static str {
    match e.kind() {
        libbpf_rs::ErrorKind::PermissionDenied => {
            " (permission denied: needs root or CAP_BPF + CAP_NET_ADMIN)"
        }
        _ => "",
    }
}

/// Global counters, indices of `global_stats` in the BPF program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum GlobalCounter {
    /// Not CAMP traffic: passed.
    PassOther = 0,
    /// CAMP traffic redirected to a socket.
    Redirected = 1,
    /// CAMP traffic passed because no socket is registered on the queue.
    PassNoSocket = 2,
    /// `bpf_redirect_map` refused.
    RedirectFailed = 3,
    /// Malformed frames (passed).
    ParseFailed = 4,
}

/// Packets and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counter {
    /// Packets.
    pub packets: u64,
    /// Bytes (whole frames).
    pub bytes: u64,
}

/// Summed per-CPU global counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GlobalCounters {
    /// Not CAMP traffic: passed.
    pub pass_other: Counter,
    /// CAMP traffic redirected to a socket.
    pub redirected: Counter,
    /// CAMP traffic passed because no socket is registered on the queue.
    pub pass_no_socket: Counter,
    /// `bpf_redirect_map` refused.
    pub redirect_failed: Counter,
    /// Malformed frames.
    pub parse_failed: Counter,
}

/// Per-endpoint telemetry (local address/port or remote endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EndpointStats {
    /// CAMP-port frames seen.
    pub packets: u64,
    /// Bytes of those frames.
    pub bytes: u64,
    /// Redirected to AF_XDP.
    pub redirected: u64,
    /// Passed to the kernel (no socket on the queue).
    pub passed: u64,
    /// Redirect refused.
    pub redirect_failed: u64,
    /// Malformed (bad UDP length).
    pub parse_failed: u64,
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i * 8..i * 8 + 8]);
    u64::from_ne_bytes(a)
}

fn endpoint_key(ep: SocketAddr) -> [u8; 20] {
    let mut k = [0u8; 20];
    let v6 = match ep.ip() {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    };
    k[..16].copy_from_slice(&v6.octets());
    k[16..18].copy_from_slice(&ep.port().to_ne_bytes());
    k
}

fn endpoint_from_key(k: &[u8]) -> SocketAddr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&k[..16]);
    let v6 = Ipv6Addr::from(a);
    let port = u16::from_ne_bytes([k[16], k[17]]);
    let ip = match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    };
    SocketAddr::new(ip, port)
}

/// A loaded instance of the classifier (one per NIC: the XSKMAP is indexed
/// by that NIC's queue numbers).
pub struct Classifier {
    skel: CampClassifierSkel<'static>,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("prog_fd", &self.prog_fd().as_raw_fd())
            .finish()
    }
}

impl Classifier {
    /// Opens and loads the embedded BPF object.
    pub fn load() -> Result<Self, ClassifierError> {
        // libbpf-rs skeletons borrow their `OpenObject` slot for their whole
        // life; the slot is a single pointer, leaked once per load so the
        // classifier can be an owned value (the object itself is closed on
        // drop).
        let slot: &'static mut MaybeUninit<libbpf_rs::OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let open = CampClassifierSkelBuilder::default()
            .open(slot)
            .map_err(|source| ClassifierError::Load {
                hint: load_hint(&source),
                source,
            })?;
        let skel = open.load().map_err(|source| ClassifierError::Load {
            hint: load_hint(&source),
            source,
        })?;
        Ok(Self { skel })
    }

    /// The program's descriptor.
    pub fn prog_fd(&self) -> BorrowedFd<'_> {
        self.skel.progs.camp_classify.as_fd()
    }

    /// Adds a UDP destination port to the CAMP set.
    pub fn add_port(&self, port: u16) -> Result<(), ClassifierError> {
        self.skel
            .maps
            .camp_ports
            .update(&port.to_ne_bytes(), &[1], MapFlags::ANY)
            .map_err(|source| ClassifierError::Map {
                map: "camp_ports",
                source,
            })
    }

    /// Removes a port from the CAMP set.
    pub fn remove_port(&self, port: u16) -> Result<(), ClassifierError> {
        self.skel
            .maps
            .camp_ports
            .delete(&port.to_ne_bytes())
            .map_err(|source| ClassifierError::Map {
                map: "camp_ports",
                source,
            })
    }

    /// Registers an AF_XDP socket for `queue`.
    pub fn register_socket(&self, queue: u32, fd: BorrowedFd<'_>) -> Result<(), ClassifierError> {
        let v = fd.as_raw_fd() as u32;
        self.skel
            .maps
            .xsks
            .update(&queue.to_ne_bytes(), &v.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| ClassifierError::Map {
                map: "xsks",
                source,
            })
    }

    /// Removes the socket registered for `queue`.
    pub fn unregister_socket(&self, queue: u32) -> Result<(), ClassifierError> {
        self.skel
            .maps
            .xsks
            .delete(&queue.to_ne_bytes())
            .map_err(|source| ClassifierError::Map {
                map: "xsks",
                source,
            })
    }

    /// Attaches the classifier to `ifindex` through a BPF link: it stays
    /// attached while the returned [`Attachment`] lives (and no longer than
    /// the process).
    pub fn attach(&self, ifindex: u32, mode: AttachMode) -> Result<Attachment, ClassifierError> {
        const DRV: u32 = libbpf_rs::libbpf_sys::XDP_FLAGS_DRV_MODE;
        const SKB: u32 = libbpf_rs::libbpf_sys::XDP_FLAGS_SKB_MODE;
        let try_mode = |m: AttachedMode| {
            let flags = match m {
                AttachedMode::Native => DRV,
                AttachedMode::Generic => SKB,
            };
            crate::xsk::xdp_link_create(self.prog_fd(), ifindex, flags).map_err(|source| {
                let hint = match source.raw_os_error() {
                    Some(libc::EPERM | libc::EACCES) => " (permission denied: needs CAP_NET_ADMIN)",
                    Some(libc::ENODEV) => " (no such interface)",
                    Some(libc::EOPNOTSUPP) => " (driver has no native XDP support)",
                    Some(libc::EBUSY | libc::EEXIST) => " (another XDP program is attached)",
                    _ => "",
                };
                ClassifierError::Attach {
                    ifindex,
                    mode: m,
                    hint,
                    source,
                }
            })
        };
        let (link, mode) = match mode {
            AttachMode::Native => (try_mode(AttachedMode::Native)?, AttachedMode::Native),
            AttachMode::Generic => (try_mode(AttachedMode::Generic)?, AttachedMode::Generic),
            AttachMode::Auto => match try_mode(AttachedMode::Native) {
                Ok(l) => (l, AttachedMode::Native),
                Err(ClassifierError::Attach { source, .. })
                    if source.raw_os_error() == Some(libc::EOPNOTSUPP)
                        || source.raw_os_error() == Some(libc::EINVAL) =>
                {
                    tracing::info!(ifindex, %source, "native XDP unavailable, attaching in generic mode");
                    (try_mode(AttachedMode::Generic)?, AttachedMode::Generic)
                }
                Err(e) => return Err(e),
            },
        };
        Ok(Attachment {
            link,
            ifindex,
            mode,
        })
    }

    /// Runs the program once on `frame` with `BPF_PROG_TEST_RUN` and returns
    /// its XDP action (`XDP_PASS` = 2, `XDP_REDIRECT` = 4, ...).
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, ClassifierError> {
        let input = libbpf_rs::ProgramInput {
            data_in: Some(frame),
            ..Default::default()
        };
        self.skel
            .progs
            .camp_classify
            .test_run(input)
            .map(|o| o.return_value)
            .map_err(|source| ClassifierError::Map {
                map: "test_run",
                source,
            })
    }

    /// Sums the per-CPU global counters.
    pub fn global_counters(&self) -> Result<GlobalCounters, ClassifierError> {
        read_global(&self.skel.maps.global_stats)
    }

    /// Handles on the counter maps that outlive borrowing the classifier and may move to
    /// another thread (they hold duplicated map descriptors). Reading them is a system call
    /// per map entry: do it off the packet path, every second or so.
    pub fn stats_handle(&self) -> Result<ClassifierStats, ClassifierError> {
        let dup = |m: &libbpf_rs::Map<'_>, map: &'static str| {
            libbpf_rs::MapHandle::try_from(m).map_err(|source| ClassifierError::Map { map, source })
        };
        Ok(ClassifierStats {
            global: dup(&self.skel.maps.global_stats, "global_stats")?,
            remote: dup(&self.skel.maps.remote_stats, "remote_stats")?,
        })
    }

    fn endpoint_stats(
        map: &impl MapCore,
        name: &'static str,
    ) -> Result<Vec<(SocketAddr, EndpointStats)>, ClassifierError> {
        let mut out = Vec::new();
        for key in map.keys() {
            let Some(per_cpu) = map
                .lookup_percpu(&key, MapFlags::ANY)
                .map_err(|source| ClassifierError::Map { map: name, source })?
            else {
                continue; // evicted between keys() and lookup
            };
            let mut s = EndpointStats::default();
            for v in &per_cpu {
                s.packets += u64_at(v, 0);
                s.bytes += u64_at(v, 1);
                s.redirected += u64_at(v, 2);
                s.passed += u64_at(v, 3);
                s.redirect_failed += u64_at(v, 4);
                s.parse_failed += u64_at(v, 5);
            }
            out.push((endpoint_from_key(&key), s));
        }
        out.sort_by_key(|(ep, _)| *ep);
        Ok(out)
    }

    /// Per local address/port telemetry (CAMP-port traffic only).
    pub fn local_stats(&self) -> Result<Vec<(SocketAddr, EndpointStats)>, ClassifierError> {
        Self::endpoint_stats(&self.skel.maps.local_stats, "local_stats")
    }

    /// Per remote endpoint telemetry (bounded LRU; CAMP-port traffic only).
    pub fn remote_stats(&self) -> Result<Vec<(SocketAddr, EndpointStats)>, ClassifierError> {
        Self::endpoint_stats(&self.skel.maps.remote_stats, "remote_stats")
    }

    /// Telemetry for one remote endpoint.
    pub fn remote_endpoint(
        &self,
        ep: SocketAddr,
    ) -> Result<Option<EndpointStats>, ClassifierError> {
        let key = endpoint_key(ep);
        Ok(
            Self::endpoint_stats(&self.skel.maps.remote_stats, "remote_stats")?
                .into_iter()
                .find(|(k, _)| endpoint_key(*k) == key)
                .map(|(_, s)| s),
        )
    }
}

fn read_global(map: &impl MapCore) -> Result<GlobalCounters, ClassifierError> {
    let read = |c: GlobalCounter| -> Result<Counter, ClassifierError> {
        let per_cpu = map
            .lookup_percpu(&(c as u32).to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| ClassifierError::Map {
                map: "global_stats",
                source,
            })?
            .unwrap_or_default();
        Ok(per_cpu.iter().fold(Counter::default(), |acc, v| Counter {
            packets: acc.packets + u64_at(v, 0),
            bytes: acc.bytes + u64_at(v, 1),
        }))
    };
    Ok(GlobalCounters {
        pass_other: read(GlobalCounter::PassOther)?,
        redirected: read(GlobalCounter::Redirected)?,
        pass_no_socket: read(GlobalCounter::PassNoSocket)?,
        redirect_failed: read(GlobalCounter::RedirectFailed)?,
        parse_failed: read(GlobalCounter::ParseFailed)?,
    })
}

/// Counter maps of one classifier, readable from any thread (see
/// [`Classifier::stats_handle`]).
#[derive(Debug)]
pub struct ClassifierStats {
    global: libbpf_rs::MapHandle,
    remote: libbpf_rs::MapHandle,
}

impl ClassifierStats {
    /// Sums the per-CPU global counters.
    pub fn global_counters(&self) -> Result<GlobalCounters, ClassifierError> {
        read_global(&self.global)
    }

    /// Per remote endpoint telemetry, ascending by endpoint.
    pub fn remote_stats(&self) -> Result<Vec<(SocketAddr, EndpointStats)>, ClassifierError> {
        Classifier::endpoint_stats(&self.remote, "remote_stats")
    }
}

/// The id of the XDP program attached to `ifindex` in any mode, or 0.
pub fn attached_prog_id(ifindex: u32, any_fd: BorrowedFd<'_>) -> Result<u32, ClassifierError> {
    libbpf_rs::Xdp::new(any_fd)
        .query_id(ifindex as i32, libbpf_rs::XdpFlags::NONE)
        .map_err(|source| ClassifierError::Map {
            map: "xdp query",
            source,
        })
}

/// A classifier attached to an interface; detached on drop.
#[derive(Debug)]
pub struct Attachment {
    link: OwnedFd,
    ifindex: u32,
    mode: AttachedMode,
}

impl Attachment {
    /// Native or generic.
    pub fn mode(&self) -> AttachedMode {
        self.mode
    }

    /// Interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Detaches now (same as dropping).
    pub fn detach(self) {
        drop(self.link);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keys_round_trip_v4_and_v6() {
        for ep in ["198.18.0.1:4433", "[2001:db8::1]:9"] {
            let ep: SocketAddr = ep.parse().unwrap();
            assert_eq!(endpoint_from_key(&endpoint_key(ep)), ep);
        }
    }
}
