//! The packet I/O interface the engine drives.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::time::Duration;

use crate::frame::{Ecn, FrameError};

/// One received datagram, borrowed from the receive buffer for the duration
/// of the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxDatagram<'a> {
    /// Our address and port the datagram was sent to.
    pub local: SocketAddr,
    /// The sender.
    pub remote: SocketAddr,
    /// ECN codepoint of the IP header.
    pub ecn: Ecn,
    /// UDP payload.
    pub payload: &'a [u8],
}

/// One datagram (or a GSO-style batch of equal-size segments) to send;
/// mirrors quinn-proto's `Transmit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxDatagram<'a> {
    /// Source address and port (selects the NIC).
    pub local: SocketAddr,
    /// Destination.
    pub remote: SocketAddr,
    /// ECN codepoint to set.
    pub ecn: Ecn,
    /// Payload; with `segment_size`, the concatenation of the segments.
    pub payload: &'a [u8],
    /// When set, `payload` is split into datagrams of this size (the last
    /// may be shorter).
    pub segment_size: Option<usize>,
}

impl<'a> TxDatagram<'a> {
    /// A single datagram.
    pub fn new(local: SocketAddr, remote: SocketAddr, ecn: Ecn, payload: &'a [u8]) -> Self {
        Self {
            local,
            remote,
            ecn,
            payload,
            segment_size: None,
        }
    }

    /// Iterates over the datagrams this transmit stands for.
    pub fn segments(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let seg = self
            .segment_size
            .filter(|s| *s > 0)
            .unwrap_or(self.payload.len().max(1));
        let payload = self.payload;
        let empty = payload.is_empty();
        payload.chunks(seg).chain(empty.then_some(&payload[..0]))
    }
}

/// Which implementation is behind a [`PacketIo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoKind {
    /// AF_XDP with the XDP classifier.
    Xdp,
    /// Kernel UDP sockets (quinn-udp).
    Udp,
}

impl std::fmt::Display for IoKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Xdp => "xdp",
            Self::Udp => "udp",
        })
    }
}

/// Counters kept by an I/O implementation (monotonic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IoCounters {
    /// Datagrams handed to the caller.
    pub rx_packets: u64,
    /// Payload bytes handed to the caller.
    pub rx_bytes: u64,
    /// Frames dropped because they did not parse or verify.
    pub rx_malformed: u64,
    /// Datagrams accepted for sending.
    pub tx_packets: u64,
    /// Payload bytes accepted for sending.
    pub tx_bytes: u64,
    /// Datagrams refused because no frame / ring slot / socket buffer was
    /// free ([`IoError::WouldBlock`]).
    pub tx_full: u64,
    /// Datagrams dropped for lack of a route or next-hop address.
    pub tx_no_route: u64,
    /// Datagrams whose UDP checksum the NIC / kernel computes (AF_XDP TX
    /// metadata, `XDP_TXMD_FLAGS_CHECKSUM`).
    pub tx_csum_offload: u64,
    /// Datagrams whose UDP checksum we computed in software (AF_XDP without
    /// TX checksum offload; kernel UDP counts neither: the kernel does it).
    pub tx_csum_software: u64,
    /// TX wakeup system calls (`sendto` kicks on AF_XDP, `sendmsg` calls on
    /// kernel UDP).
    pub tx_syscalls: u64,
}

/// Errors of the I/O layer.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// No buffer space: retry after `flush` / the next `recv_batch`.
    #[error("transmit queue full")]
    WouldBlock,
    /// No buffer space after the first `sent` payload bytes of a batch (a
    /// whole number of segments) were accepted: retry the rest only.
    #[error("transmit queue full after {sent} bytes of the batch")]
    Partial {
        /// Payload bytes accepted (a multiple of the segment size).
        sent: usize,
    },
    /// No NIC owns the source address.
    #[error("no interface owns source address {0}")]
    NoSourceInterface(std::net::IpAddr),
    /// The next hop's link address is unknown.
    #[error("no next hop for {0}")]
    NoNextHop(std::net::IpAddr),
    /// The datagram could not be framed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The payload exceeds what one frame can carry.
    #[error("datagram of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// Maximum payload.
        max: usize,
    },
    /// An OS error.
    #[error(transparent)]
    Os(#[from] io::Error),
}

/// Packet I/O for the CAMP engine: batches of received datagrams in,
/// datagrams out, readiness descriptors for blocking when idle.
///
/// Implementations allocate nothing per packet on the hot path.
pub trait PacketIo {
    /// Delivers every datagram that is ready (up to an implementation batch
    /// size per queue) to `f`. Returns how many were delivered; never blocks.
    fn recv_batch(&mut self, f: &mut dyn FnMut(RxDatagram<'_>)) -> Result<usize, IoError>;

    /// Queues a datagram (or GSO-style batch of up to
    /// [`PacketIo::max_segments`] segments; larger ones are split). Nothing
    /// may leave before [`PacketIo::flush`]. [`IoError::WouldBlock`] means no
    /// buffer space and nothing of this batch was queued; [`IoError::Partial`]
    /// that only its first bytes were (a batch above the segment limit that
    /// the kernel took in part): flush and retry the rest later.
    fn send(&mut self, tx: &TxDatagram<'_>) -> Result<(), IoError>;

    /// Segments one [`PacketIo::send`] takes as one unit (kernel UDP: the GSO
    /// segment limit; AF_XDP: the descriptors queued per batch). The engine
    /// asks the endpoint for batches of this many datagrams.
    fn max_segments(&self) -> usize;

    /// Frames queued for the NIC that [`PacketIo::flush`] did not hand over
    /// yet (AF_XDP copy mode sends a bounded number per kick): while
    /// non-zero the engine does not block.
    fn tx_backlog(&self) -> usize {
        0
    }

    /// Pushes queued datagrams to the NIC / kernel.
    fn flush(&mut self) -> Result<(), IoError>;

    /// One descriptor (an epoll instance over every socket) that becomes
    /// readable when datagrams arrive, for the engine's own event loop.
    fn readiness_fd(&self) -> BorrowedFd<'_>;

    /// Counters.
    fn counters(&self) -> IoCounters;

    /// The implementation.
    fn kind(&self) -> IoKind;

    /// Local addresses datagrams are received on.
    fn local_addrs(&self) -> Vec<SocketAddr>;

    /// Blocks until a datagram may be ready or `timeout` passes (without
    /// allocating). Returns whether something became readable.
    fn wait(&mut self, timeout: Duration) -> Result<bool, IoError>;
}

/// An epoll instance over a set of sockets: the readiness descriptor of a
/// [`PacketIo`].
#[derive(Debug)]
pub struct Readiness {
    epoll: Epoll,
}

impl Readiness {
    /// An epoll instance watching `fds` for readability.
    pub fn new<'a>(fds: impl IntoIterator<Item = BorrowedFd<'a>>) -> io::Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(errno)?;
        for (i, fd) in fds.into_iter().enumerate() {
            epoll
                .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, i as u64))
                .map_err(errno)?;
        }
        Ok(Self { epoll })
    }

    /// Watches one more descriptor (the caller keeps it open until [`Readiness::remove`]).
    pub fn add(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.epoll
            .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, 0))
            .map_err(errno)
    }

    /// Stops watching `fd`.
    pub fn remove(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.epoll.delete(fd).map_err(errno)
    }

    /// The epoll descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.epoll.0.as_fd()
    }

    /// Waits up to `timeout` for readability, in whole milliseconds rounded up: rounded
    /// down, a wait shorter than 1 ms would return at once and the caller would spin on
    /// empty receives until its deadline (measured: most of an idle-ish engine's CPU).
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let mut events = [EpollEvent::empty(); 4];
        let ms = u16::try_from(timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(u16::MAX);
        match self.epoll.wait(&mut events, EpollTimeout::from(ms)) {
            Ok(n) => Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => Ok(false),
            Err(e) => Err(errno(e)),
        }
    }
}

fn errno(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(payload: &[u8], seg: Option<usize>) -> Vec<Vec<u8>> {
        let a: SocketAddr = "198.18.0.1:1".parse().unwrap();
        TxDatagram {
            local: a,
            remote: a,
            ecn: Ecn::NotEct,
            payload,
            segment_size: seg,
        }
        .segments()
        .map(<[u8]>::to_vec)
        .collect()
    }

    #[test]
    fn a_wait_shorter_than_a_millisecond_still_waits() {
        use std::os::fd::AsFd;
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let r = Readiness::new([sock.as_fd()]).unwrap();
        for us in [1, 300, 999, 1_500] {
            let t = std::time::Instant::now();
            assert!(
                !r.wait(Duration::from_micros(us)).unwrap(),
                "nothing to read"
            );
            assert!(
                t.elapsed() >= Duration::from_micros(us),
                "{us} µs wait returned after {:?}",
                t.elapsed()
            );
        }
        // Zero stays a poll.
        assert!(!r.wait(Duration::ZERO).unwrap());
    }

    #[test]
    fn segments_split_gso_batches() {
        assert_eq!(
            tx(b"abcdefg", Some(3)),
            vec![b"abc".to_vec(), b"def".to_vec(), b"g".to_vec()]
        );
        assert_eq!(
            tx(b"abcdef", Some(3)),
            vec![b"abc".to_vec(), b"def".to_vec()]
        );
        assert_eq!(tx(b"abc", None), vec![b"abc".to_vec()]);
        assert_eq!(tx(b"abc", Some(10)), vec![b"abc".to_vec()]);
        assert_eq!(tx(b"", None), vec![Vec::<u8>::new()]);
    }
}
