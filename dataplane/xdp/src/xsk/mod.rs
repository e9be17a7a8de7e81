//! AF_XDP sockets: UMEM, the four rings, binding, wakeups and statistics.
//!
//! This module (and its `ring` child) is the only place in the crate with
//! `unsafe` code; every block carries a `SAFETY:` comment.

pub mod ring;

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use ring::{Consumer, Producer, RingPtrs, XdpDesc};

/// How the socket ended up bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// Driver-level zero-copy: the NIC DMAs straight into the UMEM.
    ZeroCopy,
    /// The kernel copies frames between its buffers and the UMEM.
    Copy,
}

impl std::fmt::Display for BindMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ZeroCopy => "zero-copy",
            Self::Copy => "copy",
        })
    }
}

/// Which bind modes to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindPreference {
    /// Zero-copy when the driver offers it, else copy.
    #[default]
    Auto,
    /// Zero-copy or fail.
    ZeroCopy,
    /// Copy mode only.
    Copy,
}

/// Sizes of one socket's UMEM and rings. All counts are powers of two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XskConfig {
    /// Number of UMEM frames; half feed RX (fill ring), half TX.
    pub frame_count: u32,
    /// Bytes per frame (2048 or 4096).
    pub frame_size: u32,
    /// RX and TX ring sizes.
    pub ring_size: u32,
    /// Bind mode preference.
    pub bind: BindPreference,
    /// How long to keep retrying a bind that fails with EBUSY (a queue that
    /// was just released).
    pub busy_retry: Duration,
    /// Ask for UDP checksum offload through AF_XDP TX metadata
    /// (`XDP_TXMD_FLAGS_CHECKSUM`, kernel >= 6.8) where it is known to run;
    /// [`XskSocket::tx_checksum_offload`] says whether it does.
    pub tx_checksum_offload: bool,
}

impl Default for XskConfig {
    fn default() -> Self {
        Self {
            frame_count: 4096,
            frame_size: 4096,
            ring_size: 2048,
            bind: BindPreference::Auto,
            busy_retry: Duration::from_secs(2),
            tx_checksum_offload: true,
        }
    }
}

/// Errors from creating an AF_XDP socket.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// Ring / frame counts must be powers of two.
    #[error("invalid AF_XDP configuration: {0}")]
    Config(&'static str),
    /// A system call failed.
    #[error("{op} failed: {source}")]
    Sys {
        /// The operation.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Zero-copy was required and the driver does not support it.
    #[error("zero-copy AF_XDP is not supported on ifindex {ifindex} queue {queue}: {source}")]
    NoZeroCopy {
        /// Interface index.
        ifindex: u32,
        /// Queue.
        queue: u32,
        /// The bind error.
        #[source]
        source: io::Error,
    },
}

impl XskError {
    /// The underlying OS error, if any.
    pub fn os_error(&self) -> Option<&io::Error> {
        match self {
            Self::Sys { source, .. } | Self::NoZeroCopy { source, .. } => Some(source),
            Self::Config(_) => None,
        }
    }
}

fn sys(op: &'static str) -> impl FnOnce(io::Error) -> XskError {
    move |source| XskError::Sys { op, source }
}

/// AF_XDP kernel statistics (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Frames dropped for reasons other than a full RX ring.
    pub rx_dropped: u64,
    /// Invalid descriptors on the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors on the TX ring.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame arrived.
    pub rx_fill_ring_empty: u64,
    /// Times the TX ring was empty on a wakeup.
    pub tx_ring_empty: u64,
}

/// Bytes in front of every TX frame for `struct xsk_tx_metadata` (flags,
/// then the checksum request / completion union) when TX metadata is on: a
/// multiple of 8, as the kernel requires.
pub const TX_METADATA_LEN: u32 = 24;
/// `XDP_UMEM_TX_METADATA_LEN` in the UMEM registration flags: use `tx_metadata_len`.
const XDP_UMEM_TX_METADATA_LEN: u32 = 1 << 2;
/// `XDP_TX_METADATA` in a TX descriptor's options: metadata precedes the frame.
const XDP_TX_METADATA: u32 = 1 << 1;
/// `XDP_TXMD_FLAGS_CHECKSUM`: the metadata carries a checksum request.
const XDP_TXMD_FLAGS_CHECKSUM: u64 = 1 << 1;
/// Descriptors the kernel sends per `sendto` kick in copy mode
/// (`TX_BATCH_SIZE` in net/xdp/xsk.c).
pub const COPY_TX_PER_KICK: u32 = 32;

/// Where the checksum of a TX frame goes, for the NIC / kernel to fill in
/// (the field holds the folded pseudo-header sum; offsets from the frame start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsumRequest {
    /// Where checksumming starts (the UDP header).
    pub start: u16,
    /// Where the result goes, from `start`.
    pub offset: u16,
}

/// `struct xsk_tx_metadata` with a checksum request.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct TxMetadata {
    flags: u64,
    csum_start: u16,
    csum_offset: u16,
    _pad: u32,
    launch_time: u64,
}

const _: () = assert!(size_of::<TxMetadata>() == TX_METADATA_LEN as usize);

/// An anonymous, page-aligned memory mapping, unmapped on drop.
#[derive(Debug)]
struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; access goes
// through the owning socket's `&mut self`.
unsafe impl Send for Mmap {}

impl Mmap {
    fn anonymous(len: usize) -> Result<Self, XskError> {
        // SAFETY: a fresh private anonymous mapping; no existing memory is
        // affected. The result is checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        Self::checked(ptr, len, "mmap(umem)")
    }

    fn ring(
        fd: BorrowedFd<'_>,
        len: usize,
        offset: u64,
        op: &'static str,
    ) -> Result<Self, XskError> {
        // SAFETY: maps the ring the kernel created for this socket at the
        // documented page offset; the result is checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        Self::checked(ptr, len, op)
    }

    fn checked(ptr: *mut libc::c_void, len: usize, op: &'static str) -> Result<Self, XskError> {
        if ptr == libc::MAP_FAILED {
            return Err(XskError::Sys {
                op,
                source: io::Error::last_os_error(),
            });
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(XskError::Sys {
            op,
            source: io::Error::other("mmap returned NULL"),
        })?;
        Ok(Self { ptr, len })
    }

    /// # Safety
    /// `off + size_of::<T>()` must be within the mapping and `off` aligned for `T`.
    unsafe fn at<T>(&self, off: u64) -> NonNull<T> {
        debug_assert!(off as usize + size_of::<T>() <= self.len);
        // SAFETY: in bounds per the caller's contract.
        unsafe { self.ptr.add(off as usize).cast::<T>() }
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region mapped in `anonymous` / `ring`;
        // every ring pointer into it is owned by the same socket and dropped
        // with it.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// Attaches the `sk_reuseport` BPF program `prog` to the SO_REUSEPORT group of `sock`
/// (`SO_ATTACH_REUSEPORT_EBPF`; see `crate::steer`).
pub(crate) fn attach_reuseport_ebpf(sock: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let fd: libc::c_int = prog.as_raw_fd();
    // SAFETY: `fd` is a live, initialised c_int and we pass its exact size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_EBPF,
            (&fd as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn setsockopt<T>(
    fd: BorrowedFd<'_>,
    name: libc::c_int,
    val: &T,
    op: &'static str,
) -> Result<(), XskError> {
    // SAFETY: `val` is a live, initialised `T` and we pass its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            name,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(sys(op)(io::Error::last_os_error()));
    }
    Ok(())
}

fn getsockopt<T: Default>(
    fd: BorrowedFd<'_>,
    name: libc::c_int,
    op: &'static str,
) -> Result<(T, usize), XskError> {
    let mut val = T::default();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` is writable for `len` bytes and the kernel writes at most
    // `len` bytes, reporting how many in `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            name,
            (&mut val as *mut T).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(sys(op)(io::Error::last_os_error()));
    }
    Ok((val, len as usize))
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct RingOffset {
    producer: u64,
    consumer: u64,
    desc: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct MmapOffsets {
    rx: RingOffset,
    tx: RingOffset,
    fr: RingOffset,
    cr: RingOffset,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct UmemReg {
    addr: u64,
    len: u64,
    chunk_size: u32,
    headroom: u32,
    flags: u32,
    tx_metadata_len: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct Statistics {
    rx_dropped: u64,
    rx_invalid_descs: u64,
    tx_invalid_descs: u64,
    rx_ring_full: u64,
    rx_fill_ring_empty_descs: u64,
    tx_ring_empty_descs: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct SockaddrXdp {
    family: u16,
    flags: u16,
    ifindex: u32,
    queue_id: u32,
    shared_umem_fd: u32,
}

fn map_ring<T>(
    fd: BorrowedFd<'_>,
    off: &RingOffset,
    size: u32,
    pgoff: u64,
    op: &'static str,
) -> Result<(Mmap, RingPtrs<T>), XskError> {
    let len = off.desc as usize + size as usize * size_of::<T>();
    let map = Mmap::ring(fd, len, pgoff, op)?;
    // SAFETY: the kernel reported these offsets for a ring of `size`
    // entries of `T`; the mapping covers `desc + size * size_of::<T>()`
    // bytes and the index words are 4-byte aligned. The mapping is stored
    // next to the ring in the socket and outlives it.
    let ptrs = unsafe {
        RingPtrs::new(
            map.at::<AtomicU32>(off.producer),
            map.at::<AtomicU32>(off.consumer),
            map.at::<AtomicU32>(off.flags),
            map.at::<T>(off.desc),
            size,
        )
    };
    Ok((map, ptrs))
}

/// One AF_XDP socket bound to (interface, queue), with its own UMEM.
///
/// Frames `0..frame_count/2` circulate between the fill and RX rings;
/// frames `frame_count/2..` form the TX free list, refilled from the
/// completion ring. Nothing is allocated after construction.
#[derive(Debug)]
pub struct XskSocket {
    fill: Producer<u64>,
    comp: Consumer<u64>,
    rx: Consumer<XdpDesc>,
    tx: Producer<XdpDesc>,
    tx_free: Vec<u64>,
    /// Descriptors queued with `tx_push` but not yet submitted.
    tx_pending: u32,
    /// RX frames read but not yet returned to the fill ring.
    fill_pending: Vec<u64>,
    rx_invalid: u64,
    mode: BindMode,
    ifindex: u32,
    queue: u32,
    frame_size: u32,
    /// TX metadata registered with the UMEM: every TX frame starts
    /// [`TX_METADATA_LEN`] bytes into its chunk.
    tx_meta: bool,
    /// Checksum requests go in the metadata (see [`XskSocket::tx_checksum_offload`]).
    csum_offload: bool,
    /// `sendto` wakeups made.
    tx_kicks: u64,
    // Ring mappings; the rings above point into them.
    _maps: [Mmap; 4],
    fd: OwnedFd,
    umem: Mmap,
}

impl XskSocket {
    /// Creates a socket, registers its UMEM and rings and binds it to
    /// `ifindex` / `queue`, trying zero-copy first when allowed. A bind
    /// failing with EBUSY is retried for `cfg.busy_retry`.
    pub fn open(ifindex: u32, queue: u32, cfg: &XskConfig) -> Result<Self, XskError> {
        if !cfg.frame_count.is_power_of_two() || cfg.frame_count < 4 {
            return Err(XskError::Config("frame_count must be a power of two >= 4"));
        }
        if !(cfg.frame_size == 2048 || cfg.frame_size == 4096) {
            return Err(XskError::Config("frame_size must be 2048 or 4096"));
        }
        if !cfg.ring_size.is_power_of_two() {
            return Err(XskError::Config("ring_size must be a power of two"));
        }
        let attempts: &[BindMode] = match cfg.bind {
            BindPreference::Auto => &[BindMode::ZeroCopy, BindMode::Copy],
            BindPreference::ZeroCopy => &[BindMode::ZeroCopy],
            BindPreference::Copy => &[BindMode::Copy],
        };
        let deadline = std::time::Instant::now() + cfg.busy_retry;
        let mut i = 0;
        loop {
            let mode = attempts[i];
            match Self::open_once(ifindex, queue, cfg, mode) {
                Ok(s) => return Ok(s),
                Err(e) => {
                    let errno = e.os_error().and_then(io::Error::raw_os_error);
                    if errno == Some(libc::EBUSY) && std::time::Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    let bind_failed = matches!(&e, XskError::Sys { op: "bind", .. });
                    if mode == BindMode::ZeroCopy && bind_failed {
                        let source = match e {
                            XskError::Sys { source, .. } => source,
                            other => return Err(other),
                        };
                        if i + 1 < attempts.len() {
                            tracing::debug!(ifindex, queue, %source, "zero-copy bind refused, using copy mode");
                            i += 1;
                            continue;
                        }
                        return Err(XskError::NoZeroCopy {
                            ifindex,
                            queue,
                            source,
                        });
                    }
                    return Err(e);
                }
            }
        }
    }

    fn open_once(
        ifindex: u32,
        queue: u32,
        cfg: &XskConfig,
        mode: BindMode,
    ) -> Result<Self, XskError> {
        // SAFETY: plain socket(2); the returned descriptor is checked and
        // immediately owned.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(sys("socket(AF_XDP)")(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let umem_len = cfg.frame_count as usize * cfg.frame_size as usize;
        let umem = Mmap::anonymous(umem_len)?;
        let mut reg = UmemReg {
            addr: umem.ptr.as_ptr() as u64,
            len: umem_len as u64,
            chunk_size: cfg.frame_size,
            headroom: 0,
            // Since 6.10 the kernel honours `tx_metadata_len` only with this
            // flag; kernels without it refuse the flag (EINVAL), so 6.8 and
            // 6.9 fall back to software checksums too.
            flags: if cfg.tx_checksum_offload {
                XDP_UMEM_TX_METADATA_LEN
            } else {
                0
            },
            tx_metadata_len: if cfg.tx_checksum_offload {
                TX_METADATA_LEN
            } else {
                0
            },
        };
        let mut tx_meta = reg.tx_metadata_len > 0;
        match setsockopt(
            fd.as_fd(),
            libc::XDP_UMEM_REG,
            &reg,
            "setsockopt(XDP_UMEM_REG)",
        ) {
            Ok(()) => {}
            // Kernels before 6.8 refuse a TX metadata length: register without.
            Err(XskError::Sys { source, .. })
                if tx_meta && source.raw_os_error() == Some(libc::EINVAL) =>
            {
                tracing::debug!(
                    ifindex,
                    queue,
                    "AF_XDP TX metadata refused; software checksums"
                );
                reg.tx_metadata_len = 0;
                reg.flags = 0;
                tx_meta = false;
                setsockopt(
                    fd.as_fd(),
                    libc::XDP_UMEM_REG,
                    &reg,
                    "setsockopt(XDP_UMEM_REG)",
                )?;
            }
            Err(e) => return Err(e),
        }
        let fill_size = cfg.frame_count.next_power_of_two();
        let comp_size = cfg.frame_count.next_power_of_two();
        setsockopt(
            fd.as_fd(),
            libc::XDP_UMEM_FILL_RING,
            &(fill_size as i32),
            "setsockopt(XDP_UMEM_FILL_RING)",
        )?;
        setsockopt(
            fd.as_fd(),
            libc::XDP_UMEM_COMPLETION_RING,
            &(comp_size as i32),
            "setsockopt(XDP_UMEM_COMPLETION_RING)",
        )?;
        setsockopt(
            fd.as_fd(),
            libc::XDP_RX_RING,
            &(cfg.ring_size as i32),
            "setsockopt(XDP_RX_RING)",
        )?;
        setsockopt(
            fd.as_fd(),
            libc::XDP_TX_RING,
            &(cfg.ring_size as i32),
            "setsockopt(XDP_TX_RING)",
        )?;
        let (off, len) = getsockopt::<MmapOffsets>(
            fd.as_fd(),
            libc::XDP_MMAP_OFFSETS,
            "getsockopt(XDP_MMAP_OFFSETS)",
        )?;
        if len != size_of::<MmapOffsets>() {
            return Err(XskError::Config(
                "kernel too old: no ring flags in XDP_MMAP_OFFSETS",
            ));
        }
        let (rx_map, rx) = map_ring::<XdpDesc>(
            fd.as_fd(),
            &off.rx,
            cfg.ring_size,
            libc::XDP_PGOFF_RX_RING as u64,
            "mmap(rx ring)",
        )?;
        let (tx_map, tx) = map_ring::<XdpDesc>(
            fd.as_fd(),
            &off.tx,
            cfg.ring_size,
            libc::XDP_PGOFF_TX_RING as u64,
            "mmap(tx ring)",
        )?;
        let (fr_map, fr) = map_ring::<u64>(
            fd.as_fd(),
            &off.fr,
            fill_size,
            libc::XDP_UMEM_PGOFF_FILL_RING,
            "mmap(fill ring)",
        )?;
        let (cr_map, cr) = map_ring::<u64>(
            fd.as_fd(),
            &off.cr,
            comp_size,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
            "mmap(completion ring)",
        )?;

        let mut fill = Producer::new(fr);
        let half = cfg.frame_count / 2;
        // Give the RX half of the UMEM to the kernel before binding.
        let mut i = 0;
        while i < half {
            let n = fill.free(half - i).min(half - i);
            if n == 0 {
                break;
            }
            for k in 0..n {
                fill.write(k, u64::from(i + k) * u64::from(cfg.frame_size));
            }
            fill.submit(n);
            i += n;
        }
        let tx_free: Vec<u64> = (half..cfg.frame_count)
            .map(|f| u64::from(f) * u64::from(cfg.frame_size))
            .collect();

        let flags = libc::XDP_USE_NEED_WAKEUP
            | match mode {
                BindMode::ZeroCopy => libc::XDP_ZEROCOPY,
                BindMode::Copy => libc::XDP_COPY,
            };
        let addr = SockaddrXdp {
            family: libc::AF_XDP as u16,
            flags,
            ifindex,
            queue_id: queue,
            shared_umem_fd: 0,
        };
        // SAFETY: `addr` is a valid `sockaddr_xdp` and we pass its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const SockaddrXdp).cast(),
                size_of::<SockaddrXdp>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(sys("bind")(io::Error::last_os_error()));
        }
        // Report what the kernel actually did.
        let mode = match getsockopt::<u32>(fd.as_fd(), libc::XDP_OPTIONS, "getsockopt(XDP_OPTIONS)")
        {
            Ok((opts, _)) if opts & libc::XDP_OPTIONS_ZEROCOPY != 0 => BindMode::ZeroCopy,
            Ok(_) => BindMode::Copy,
            Err(_) => mode,
        };
        let batch = cfg.ring_size as usize;
        // Copy mode builds an skb from the metadata (CHECKSUM_PARTIAL), so
        // the device or the kernel's software fallback completes the checksum
        // on any driver. A zero-copy driver without TX metadata support would
        // silently ignore the request, and this crate cannot ask the driver
        // (netdev netlink `xsk-features`): software checksums there.
        let csum_offload = tx_meta && mode == BindMode::Copy;
        Ok(Self {
            tx_meta,
            csum_offload,
            tx_kicks: 0,
            fill,
            comp: Consumer::new(cr),
            rx: Consumer::new(rx),
            tx: Producer::new(tx),
            tx_pending: 0,
            fill_pending: Vec::with_capacity(batch.max(half as usize)),
            tx_free,
            rx_invalid: 0,
            mode,
            ifindex,
            queue,
            frame_size: cfg.frame_size,
            _maps: [rx_map, tx_map, fr_map, cr_map],
            fd,
            umem,
        })
    }

    /// Zero-copy or copy, as reported by the kernel.
    pub fn mode(&self) -> BindMode {
        self.mode
    }

    /// Interface index this socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Queue this socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Bytes per UMEM frame.
    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// Bytes a TX frame may hold (the UMEM frame less the TX metadata).
    pub fn tx_frame_len(&self) -> usize {
        self.frame_size as usize - self.tx_meta_len()
    }

    fn tx_meta_len(&self) -> usize {
        if self.tx_meta {
            TX_METADATA_LEN as usize
        } else {
            0
        }
    }

    /// Whether [`XskSocket::tx_push_offload`] hands the UDP checksum to the
    /// kernel / NIC (TX metadata registered and copy mode); otherwise the
    /// caller must checksum in software and use [`XskSocket::tx_push`].
    pub fn tx_checksum_offload(&self) -> bool {
        self.csum_offload
    }

    /// Descriptors worth queueing as one batch: what the kernel sends per
    /// kick in copy mode, bounded by the ring and the TX frames.
    pub fn tx_batch(&self) -> usize {
        let frames = self.tx_free.capacity() as u32;
        COPY_TX_PER_KICK.min(self.tx.size()).min(frames).max(1) as usize
    }

    /// `sendto` wakeups made so far.
    pub fn tx_kicks(&self) -> u64 {
        self.tx_kicks
    }

    /// TX descriptors queued or published that the kernel has not consumed.
    pub fn tx_backlog(&self) -> usize {
        (self.tx.outstanding() + self.tx_pending) as usize
    }

    /// The bytes of an RX descriptor, or `None` if the descriptor does not
    /// lie within one UMEM frame.
    fn rx_frame(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(addr).ok()?;
        // Checked: the address comes from the ring, and one near usize::MAX
        // must be refused rather than wrap to a small frame end.
        let frame_end =
            (start & !(self.frame_size as usize - 1)).checked_add(self.frame_size as usize)?;
        if start.checked_add(len)? > frame_end || frame_end > self.umem.len {
            return None;
        }
        // SAFETY: bounds checked above; the frame came off the RX ring, so it
        // belongs to us until it is returned to the fill ring, and the kernel
        // does not write it while we hold the borrow.
        Some(unsafe { std::slice::from_raw_parts(self.umem.ptr.as_ptr().add(start), len) })
    }

    fn frame_mut(&mut self, addr: u64, len: usize) -> &mut [u8] {
        let addr = addr as usize;
        assert!(addr + len <= self.umem.len, "frame outside the UMEM");
        // SAFETY: bounds checked above; TX frames on the free list are owned
        // by us until submitted, and `&mut self` prevents aliasing.
        unsafe { std::slice::from_raw_parts_mut(self.umem.ptr.as_ptr().add(addr), len) }
    }

    /// Receives up to `max` frames, calling `f` with each frame's bytes.
    /// The frames go back to the fill ring before returning. Returns the
    /// number of frames seen.
    pub fn recv_batch(&mut self, max: u32, mut f: impl FnMut(&[u8])) -> usize {
        let n = self.rx.available(max);
        for i in 0..n {
            let d = self.rx.read(i);
            match self.rx_frame(d.addr, d.len as usize) {
                Some(frame) => {
                    f(frame);
                    self.fill_pending
                        .push(d.addr & !u64::from(self.frame_size - 1));
                }
                // Never produced by a correct kernel; the frame is not
                // recycled (its address is unusable) and is counted.
                None => self.rx_invalid += 1,
            }
        }
        self.rx.release(n);
        self.refill();
        n as usize
    }

    /// RX descriptors that pointed outside the UMEM (dropped).
    pub fn rx_invalid(&self) -> u64 {
        self.rx_invalid
    }

    /// Returns pending RX frames to the fill ring, waking the kernel if it
    /// asked for it.
    fn refill(&mut self) {
        if self.fill_pending.is_empty() {
            return;
        }
        let n = self.fill.push_slice(&self.fill_pending);
        self.fill_pending.drain(..n);
    }

    /// Whether the kernel needs a wakeup to keep filling the RX ring.
    pub fn rx_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }

    /// Pokes the kernel to process the fill ring (needed in NEED_WAKEUP mode
    /// when `rx_needs_wakeup`).
    pub fn rx_wakeup(&self) -> io::Result<()> {
        // SAFETY: a zero-length non-blocking recvfrom on our own socket with
        // null buffers; the kernel only uses it as a wakeup.
        let rc = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if !matches!(
                e.raw_os_error(),
                Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS)
            ) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Moves completed TX frames back to the free list.
    pub fn reclaim(&mut self) -> usize {
        let n = self.comp.available(self.comp.size());
        for i in 0..n {
            let addr = self.comp.read(i) & !u64::from(self.frame_size - 1);
            // Only addresses we handed out come back; anything else would
            // be a kernel bug and is dropped rather than reused.
            if addr < self.umem.len as u64 && self.tx_free.len() < self.tx_free.capacity() {
                self.tx_free.push(addr);
            }
        }
        self.comp.release(n);
        n as usize
    }

    /// Number of TX frames available right now (after reclaiming).
    pub fn tx_free(&mut self) -> usize {
        if self.tx_free.is_empty() {
            self.reclaim();
        }
        self.tx_free.len()
    }

    /// How many more frames `tx_push` can queue right now (free UMEM frames
    /// and free TX ring slots, after reclaiming completions).
    pub fn tx_capacity(&mut self) -> usize {
        let frames = self.tx_free();
        let slots = self.tx.free(self.tx.size()).saturating_sub(self.tx_pending);
        frames.min(slots as usize)
    }

    /// Queues one frame for transmission: `fill` writes it into the given
    /// buffer (one UMEM frame) and returns its length. The descriptor is
    /// published on the next `tx_submit`. Returns `Ok(false)` when no frame
    /// or TX slot is free.
    pub fn tx_push<E>(
        &mut self,
        fill: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<bool, E> {
        self.tx_push_with(|buf| fill(buf).map(|len| (len, None)))
    }

    /// [`XskSocket::tx_push`] for a frame whose checksum the kernel / NIC
    /// completes: `fill` returns the length and where the checksum goes.
    /// Only when [`XskSocket::tx_checksum_offload`] is true; otherwise the
    /// request is ignored and the frame goes out as written.
    pub fn tx_push_offload<E>(
        &mut self,
        fill: impl FnOnce(&mut [u8]) -> Result<(usize, CsumRequest), E>,
    ) -> Result<bool, E> {
        self.tx_push_with(|buf| fill(buf).map(|(len, c)| (len, Some(c))))
    }

    fn tx_push_with<E>(
        &mut self,
        fill: impl FnOnce(&mut [u8]) -> Result<(usize, Option<CsumRequest>), E>,
    ) -> Result<bool, E> {
        if self.tx.free(self.tx_pending + 1) <= self.tx_pending {
            return Ok(false);
        }
        if self.tx_free.is_empty() && self.reclaim() == 0 {
            return Ok(false);
        }
        let Some(addr) = self.tx_free.pop() else {
            return Ok(false);
        };
        let meta = self.tx_meta_len();
        let size = self.frame_size as usize - meta;
        let data = addr + meta as u64;
        let (len, csum) = match fill(self.frame_mut(data, size)) {
            Ok(v) => v,
            Err(e) => {
                self.tx_free.push(addr);
                return Err(e);
            }
        };
        debug_assert!(len <= size);
        let mut options = 0;
        if meta > 0 {
            let request = csum.filter(|c| {
                self.csum_offload && usize::from(c.start) + usize::from(c.offset) + 2 <= len
            });
            let m = TxMetadata {
                flags: if request.is_some() {
                    XDP_TXMD_FLAGS_CHECKSUM
                } else {
                    0
                },
                csum_start: request.map_or(0, |c| c.start),
                csum_offset: request.map_or(0, |c| c.offset),
                _pad: 0,
                launch_time: 0,
            };
            let dst = self.frame_mut(addr, meta);
            // SAFETY: `dst` is `TX_METADATA_LEN` writable bytes of a frame we
            // own; an unaligned write of a plain-old-data struct.
            unsafe { std::ptr::write_unaligned(dst.as_mut_ptr().cast::<TxMetadata>(), m) };
            if request.is_some() {
                options = XDP_TX_METADATA;
            }
        }
        self.tx.write(
            self.tx_pending,
            XdpDesc {
                addr: data,
                len: len as u32,
                options,
            },
        );
        self.tx_pending += 1;
        Ok(true)
    }

    /// Publishes the queued TX descriptors and kicks the kernel only when
    /// the TX ring's `XDP_RING_NEED_WAKEUP` flag asks for it. Zero-copy: at
    /// most one kick (the driver drains the ring on its own). Copy mode (the
    /// kernel keeps the flag set and sends at most [`COPY_TX_PER_KICK`]
    /// frames per kick, in the kick): one kick per such batch of the
    /// backlog, stopping at the first kick that moved nothing (device queue
    /// busy); what is left stays queued ([`XskSocket::tx_backlog`]) for the
    /// next call. Never spins. Returns the kicks made.
    pub fn tx_submit(&mut self) -> io::Result<u32> {
        self.tx.submit(self.tx_pending);
        self.tx_pending = 0;
        let mut kicks = 0;
        let max_kicks = self.tx.outstanding().div_ceil(COPY_TX_PER_KICK);
        while kicks < max_kicks && self.tx.outstanding() > 0 && self.tx.needs_wakeup() {
            let before = self.tx.outstanding();
            self.tx_kick()?;
            kicks += 1;
            if self.mode == BindMode::ZeroCopy || self.tx.outstanding() >= before {
                break;
            }
        }
        self.tx_kicks += u64::from(kicks);
        self.reclaim();
        Ok(kicks)
    }

    fn tx_kick(&self) -> io::Result<()> {
        // SAFETY: a zero-length non-blocking sendto on our own socket with a
        // null buffer and address; the kernel treats it as a TX wakeup.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if !matches!(
                e.raw_os_error(),
                Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN)
            ) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Kernel statistics for this socket.
    pub fn stats(&self) -> io::Result<XskStats> {
        let (s, _) = getsockopt::<Statistics>(
            self.fd.as_fd(),
            libc::XDP_STATISTICS,
            "getsockopt(XDP_STATISTICS)",
        )
        .map_err(|e| match e {
            XskError::Sys { source, .. } => source,
            other => io::Error::other(other.to_string()),
        })?;
        Ok(XskStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty: s.rx_fill_ring_empty_descs,
            tx_ring_empty: s.tx_ring_empty_descs,
        })
    }
}

impl AsFd for XskSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for XskSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Attaches an XDP program with a BPF link in the requested mode. The
/// program stays attached while the returned descriptor is open.
pub(crate) fn xdp_link_create(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    flags: u32,
) -> io::Result<OwnedFd> {
    use libbpf_rs::libbpf_sys;
    // SAFETY: zero is a valid bit pattern for this plain C options struct.
    let mut opts: libbpf_sys::bpf_link_create_opts = unsafe { std::mem::zeroed() };
    opts.sz = size_of::<libbpf_sys::bpf_link_create_opts>() as _;
    opts.flags = flags;
    // SAFETY: `prog` is a valid program descriptor, `opts` is initialised
    // with its size; libbpf returns a new descriptor or a negative errno.
    let rc = unsafe {
        libbpf_sys::bpf_link_create(prog.as_raw_fd(), ifindex as i32, libbpf_sys::BPF_XDP, &opts)
    };
    if rc < 0 {
        return Err(io::Error::from_raw_os_error(-rc));
    }
    // SAFETY: `rc` is a fresh descriptor returned by the kernel that nothing
    // else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc) })
}

/// Runs an `SIOCETHTOOL` ioctl on `ifname` with `data` as the command
/// buffer (`data[0]` is the ethtool command, the kernel fills the rest).
pub(crate) fn ethtool(ifname: &str, data: &mut [u32]) -> io::Result<()> {
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        data: *mut u32,
        _pad: [u8; 16],
    }
    if ifname.len() >= libc::IFNAMSIZ || ifname.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: data.as_mut_ptr(),
        _pad: [0; 16],
    };
    req.name[..ifname.len()].copy_from_slice(ifname.as_bytes());
    // SAFETY: socket(2) for the ioctl; the descriptor is checked and owned.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: SIOCETHTOOL with a valid ifreq whose data points at `data`,
    // which the caller sized for the command (the kernel writes at most the
    // command's structure, and our callers pass buffers of exactly that
    // size).
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
