//! [`PacketIo`] over kernel UDP sockets with quinn-udp: GSO on send, GRO
//! and `recvmmsg` on receive, ECN and destination-address (packet info)
//! ancillary data.

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};

use crate::frame::Ecn;
use crate::io::{IoCounters, IoError, IoKind, PacketIo, Readiness, RxDatagram, TxDatagram};

/// Receive buffers per `recvmmsg` call.
pub const RX_BUFS: usize = 16;
/// Bytes per receive buffer (room for a full GRO super-datagram).
pub const RX_BUF_SIZE: usize = 64 * 1024;
/// `recvmmsg` calls per socket per `recv_batch`.
const RX_CALLS: usize = 4;
/// Most payload bytes of one GSO `sendmsg`: the segments share one IP
/// length field (65 535 less the IPv6 / UDP headers).
pub const MAX_GSO_BYTES: usize = 65_535 - 40 - 8;
/// Largest segment the engine's batches are sized for (one Ethernet MTU).
const BATCH_SEGMENT: usize = 1500;

/// Errors opening [`UdpIo`].
#[derive(Debug, thiserror::Error)]
pub enum UdpError {
    /// No addresses to bind.
    #[error("no UDP addresses to bind")]
    NoAddresses,
    /// The interfaces' addresses could not be listed.
    #[error(transparent)]
    Addresses(#[from] crate::nic::NicError),
    /// Binding or configuring a socket failed.
    #[error("UDP socket {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: io::Error,
    },
}

#[derive(Debug)]
struct Sock {
    sock: UdpSocket,
    state: UdpSocketState,
    local: SocketAddr,
}

impl Sock {
    fn new(sock: UdpSocket) -> Result<Self, UdpError> {
        let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
        let addr = sock.local_addr().unwrap_or(unknown);
        let err = |source| UdpError::Bind { addr, source };
        let state = UdpSocketState::new((&sock).into()).map_err(err)?;
        // Large buffers so bursts are not dropped; failures are not fatal
        // (the limit is net.core.rmem_max / wmem_max).
        let _ = state.set_recv_buffer_size((&sock).into(), 4 << 20);
        let _ = state.set_send_buffer_size((&sock).into(), 4 << 20);
        let local = sock.local_addr().map_err(err)?;
        Ok(Sock { sock, state, local })
    }
}

/// Kernel UDP packet I/O, one socket per local address.
#[derive(Debug)]
pub struct UdpIo {
    socks: Vec<Sock>,
    bufs: Box<[u8]>,
    metas: Box<[RecvMeta; RX_BUFS]>,
    counters: IoCounters,
    readiness: Readiness,
}

impl UdpIo {
    /// Binds one socket per address (port 0 picks a free port).
    pub fn open(addrs: &[SocketAddr]) -> Result<Self, UdpError> {
        let socks = addrs
            .iter()
            .map(|addr| {
                UdpSocket::bind(addr).map_err(|source| UdpError::Bind {
                    addr: *addr,
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_sockets(socks)
    }

    /// Takes sockets bound elsewhere (an engine's share of an SO_REUSEPORT group, see
    /// [`crate::steer`]), one per local address.
    pub fn from_sockets(sockets: Vec<UdpSocket>) -> Result<Self, UdpError> {
        if sockets.is_empty() {
            return Err(UdpError::NoAddresses);
        }
        let mut socks = Vec::with_capacity(sockets.len());
        for sock in sockets {
            socks.push(Sock::new(sock)?);
        }
        let first = socks[0].local;
        let readiness = Readiness::new(socks.iter().map(|s| s.sock.as_fd())).map_err(|source| {
            UdpError::Bind {
                addr: first,
                source,
            }
        })?;
        Ok(Self {
            readiness,
            socks,
            bufs: vec![0u8; RX_BUFS * RX_BUF_SIZE].into_boxed_slice(),
            metas: Box::new([RecvMeta::default(); RX_BUFS]),
            counters: IoCounters::default(),
        })
    }

    /// Binds one more socket at run time (a NIC or address added while serving); returns
    /// its address. An address already served is not bound twice.
    pub fn add_address(&mut self, addr: SocketAddr) -> Result<SocketAddr, UdpError> {
        if let Some(s) = self.socks.iter().find(|s| s.local == addr) {
            return Ok(s.local);
        }
        let bind = |source| UdpError::Bind { addr, source };
        let sock = Sock::new(UdpSocket::bind(addr).map_err(bind)?)?;
        self.readiness.add(sock.sock.as_fd()).map_err(bind)?;
        let local = sock.local;
        self.socks.push(sock);
        Ok(local)
    }

    /// Closes the socket of `addr` at run time; false if none is bound there. The last
    /// socket stays (an I/O with no socket could not wait for anything).
    pub fn remove_address(&mut self, addr: SocketAddr) -> bool {
        if self.socks.len() < 2 {
            return false;
        }
        let Some(i) = self.socks.iter().position(|s| s.local == addr) else {
            return false;
        };
        let sock = self.socks.remove(i);
        let _ = self.readiness.remove(sock.sock.as_fd());
        true
    }

    /// GSO segments the kernel accepts per send (1 = no GSO).
    pub fn max_gso_segments(&self) -> usize {
        self.socks
            .iter()
            .map(|s| s.state.max_gso_segments())
            .min()
            .unwrap_or(1)
    }

    fn sock_for(&self, local: SocketAddr) -> Option<usize> {
        self.socks
            .iter()
            .position(|s| s.local == local)
            .or_else(|| {
                self.socks.iter().position(|s| {
                    s.local.ip().is_unspecified()
                        && s.local.port() == local.port()
                        && s.local.is_ipv4() == local.is_ipv4()
                })
            })
    }
}

impl PacketIo for UdpIo {
    fn recv_batch(&mut self, f: &mut dyn FnMut(RxDatagram<'_>)) -> Result<usize, IoError> {
        let mut total = 0;
        for s in &self.socks {
            for _ in 0..RX_CALLS {
                let mut chunks = self.bufs.chunks_exact_mut(RX_BUF_SIZE);
                let mut slices: [IoSliceMut<'_>; RX_BUFS] =
                    std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
                let n = match s
                    .state
                    .recv((&s.sock).into(), &mut slices, &mut self.metas[..])
                {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // ICMP errors (port unreachable) surface as recv errors on
                    // Linux; they are not fatal for a datagram socket.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                    Err(e) => return Err(e.into()),
                };
                for (meta, buf) in self.metas.iter().zip(slices.iter()).take(n) {
                    let local =
                        SocketAddr::new(meta.dst_ip.unwrap_or(s.local.ip()), s.local.port());
                    let ecn = Ecn::from_quinn_udp(meta.ecn);
                    let stride = meta.stride.max(1);
                    for dgram in buf[..meta.len].chunks(stride) {
                        self.counters.rx_packets += 1;
                        self.counters.rx_bytes += dgram.len() as u64;
                        total += 1;
                        f(RxDatagram {
                            local,
                            remote: meta.addr,
                            ecn,
                            payload: dgram,
                        });
                    }
                }
                if n < RX_BUFS {
                    break;
                }
            }
        }
        Ok(total)
    }

    fn send(&mut self, tx: &TxDatagram<'_>) -> Result<(), IoError> {
        let Some(i) = self.sock_for(tx.local) else {
            self.counters.tx_no_route += 1;
            return Err(IoError::NoSourceInterface(tx.local.ip()));
        };
        let s = &self.socks[i];
        let max_segments = s.state.max_gso_segments().max(1);
        let seg = tx
            .segment_size
            .filter(|seg| *seg > 0 && *seg < tx.payload.len());
        // Split batches larger than what GSO takes in one call (segments
        // and bytes).
        let chunk = seg.map_or(tx.payload.len().max(1), |seg| {
            seg * max_segments.min(MAX_GSO_BYTES / seg).max(1)
        });
        let src_ip = s.local.ip().is_unspecified().then_some(tx.local.ip());
        let mut parts = tx.payload.chunks(chunk);
        let empty: &[u8] = &[];
        let first = parts.next().unwrap_or(empty);
        let mut sent = 0;
        for contents in std::iter::once(first).chain(parts) {
            let t = Transmit {
                destination: tx.remote,
                ecn: tx.ecn.to_quinn_udp(),
                contents,
                segment_size: seg,
                src_ip,
            };
            self.counters.tx_syscalls += 1;
            match s.state.try_send((&s.sock).into(), &t) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.counters.tx_full += 1;
                    // Earlier GSO chunks are gone: the caller must not send
                    // them again.
                    return Err(if sent == 0 {
                        IoError::WouldBlock
                    } else {
                        IoError::Partial { sent }
                    });
                }
                Err(e) => return Err(e.into()),
            }
            sent += contents.len();
            let n = seg.map_or(1, |seg| contents.len().div_ceil(seg)) as u64;
            self.counters.tx_packets += n;
            self.counters.tx_bytes += contents.len() as u64;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IoError> {
        // Kernel sockets send on `send`.
        Ok(())
    }

    /// The GSO segment limit, bounded so that a batch of MTU-sized
    /// segments fits one `sendmsg` ([`MAX_GSO_BYTES`]).
    fn max_segments(&self) -> usize {
        self.max_gso_segments()
            .clamp(1, MAX_GSO_BYTES / BATCH_SEGMENT)
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
        IoKind::Udp
    }

    fn local_addrs(&self) -> Vec<SocketAddr> {
        self.socks.iter().map(|s| s.local).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn recv_all(io: &mut UdpIo, want: usize) -> Vec<(SocketAddr, SocketAddr, Ecn, Vec<u8>)> {
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(5);
        while got.len() < want && Instant::now() < end {
            io.wait(Duration::from_millis(50)).unwrap();
            io.recv_batch(&mut |d| got.push((d.local, d.remote, d.ecn, d.payload.to_vec())))
                .unwrap();
        }
        got
    }

    #[test]
    fn loopback_round_trip_with_ecn_and_gso_batches() {
        let mut a = UdpIo::open(&["127.0.0.1:0".parse().unwrap()]).unwrap();
        let mut b = UdpIo::open(&["127.0.0.1:0".parse().unwrap()]).unwrap();
        let (la, lb) = (a.local_addrs()[0], b.local_addrs()[0]);
        a.send(&TxDatagram::new(la, lb, Ecn::Ect0, b"one")).unwrap();
        // A GSO-style batch of three segments (last one short).
        let batch = TxDatagram {
            local: la,
            remote: lb,
            ecn: Ecn::Ect1,
            payload: b"aaaabbbbcc",
            segment_size: Some(4),
        };
        a.send(&batch).unwrap();
        a.flush().unwrap();
        let got = recv_all(&mut b, 4);
        let payloads: Vec<&[u8]> = got.iter().map(|g| g.3.as_slice()).collect();
        assert_eq!(payloads, vec![&b"one"[..], b"aaaa", b"bbbb", b"cc"]);
        assert!(got.iter().all(|g| g.0 == lb && g.1 == la));
        assert_eq!(got[0].2, Ecn::Ect0);
        // The ECN of GSO batches is not asserted: on loopback this kernel
        // delivers them as Not-ECT (see docs/io.md, known limits).
        assert_eq!(a.counters().tx_packets, 4);
        assert_eq!(b.counters().rx_packets, 4);
    }

    /// A socket bound at run time receives and sends; once removed it is gone from the
    /// I/O (its address is free again) and the remaining socket still works.
    #[test]
    fn an_address_added_at_run_time_serves_and_a_removed_one_is_released() {
        let mut a = UdpIo::open(&["127.0.0.1:0".parse().unwrap()]).unwrap();
        let mut b = UdpIo::open(&["127.0.0.1:0".parse().unwrap()]).unwrap();
        let lb = b.local_addrs()[0];
        let extra = a.add_address("127.0.0.2:0".parse().unwrap()).unwrap();
        assert_eq!(a.local_addrs().len(), 2);
        assert_eq!(a.add_address(extra).unwrap(), extra, "not bound twice");
        assert_eq!(a.local_addrs().len(), 2);
        // b -> the new socket, and the new socket -> b.
        b.send(&TxDatagram::new(lb, extra, Ecn::NotEct, b"to new"))
            .unwrap();
        b.flush().unwrap();
        let got = recv_all(&mut a, 1);
        assert_eq!((got[0].0, got[0].3.as_slice()), (extra, &b"to new"[..]));
        a.send(&TxDatagram::new(extra, lb, Ecn::NotEct, b"from new"))
            .unwrap();
        a.flush().unwrap();
        assert_eq!(recv_all(&mut b, 1)[0].1, extra);

        assert!(a.remove_address(extra));
        assert!(!a.remove_address(extra));
        assert_eq!(a.local_addrs().len(), 1);
        assert!(matches!(
            a.send(&TxDatagram::new(extra, lb, Ecn::NotEct, b"x")),
            Err(IoError::NoSourceInterface(_))
        ));
        // The address is free: another socket can take it.
        assert!(std::net::UdpSocket::bind(extra).is_ok());
        let only = a.local_addrs()[0];
        assert!(!a.remove_address(only), "the last socket stays");
    }

    #[test]
    fn a_batch_above_the_gso_byte_limit_is_split_and_arrives_whole() {
        let mut a = UdpIo::open(&["127.0.0.1:0".parse().unwrap()]).unwrap();
        let mut b = UdpIo::open(&["127.0.0.1:0".parse().unwrap()]).unwrap();
        let (la, lb) = (a.local_addrs()[0], b.local_addrs()[0]);
        assert!(a.max_segments() * 1500 <= MAX_GSO_BYTES);
        // 60 x 1400 B = 84 000 B: more than one sendmsg may carry.
        let payload: Vec<u8> = (0..60 * 1400).map(|i| (i / 1400) as u8).collect();
        a.send(&TxDatagram {
            segment_size: Some(1400),
            ..TxDatagram::new(la, lb, Ecn::NotEct, &payload)
        })
        .unwrap();
        let got = recv_all(&mut b, 60);
        assert_eq!(got.len(), 60);
        for (i, g) in got.iter().enumerate() {
            assert_eq!(g.3, vec![i as u8; 1400]);
        }
        let c = a.counters();
        assert_eq!(c.tx_packets, 60);
        let gso = a.max_gso_segments() > 1;
        assert_eq!(c.tx_syscalls, if gso { 2 } else { 60 });
    }

    #[test]
    fn ecn_codepoints_survive_single_datagrams() {
        let mut a = UdpIo::open(&["127.0.0.1:0".parse().unwrap()]).unwrap();
        let mut b = UdpIo::open(&["127.0.0.1:0".parse().unwrap()]).unwrap();
        let (la, lb) = (a.local_addrs()[0], b.local_addrs()[0]);
        for ecn in [Ecn::NotEct, Ecn::Ect0, Ecn::Ect1] {
            a.send(&TxDatagram::new(la, lb, ecn, b"e")).unwrap();
            let got = recv_all(&mut b, 1);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].2, ecn);
        }
    }

    #[test]
    fn unknown_source_is_an_error() {
        let mut a = UdpIo::open(&["127.0.0.1:0".parse().unwrap()]).unwrap();
        let r = a.send(&TxDatagram::new(
            "127.0.0.2:9".parse().unwrap(),
            "127.0.0.1:9".parse().unwrap(),
            Ecn::NotEct,
            b"x",
        ));
        assert!(matches!(r, Err(IoError::NoSourceInterface(_))));
        assert!(matches!(UdpIo::open(&[]), Err(UdpError::NoAddresses)));
    }
}
