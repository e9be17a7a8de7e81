//! `auto | xdp | udp` mode selection and [`AnyIo`], the statically
//! dispatched union of both implementations.

use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::str::FromStr;

use crate::io::{IoCounters, IoError, IoKind, PacketIo, RxDatagram, TxDatagram};
use crate::nic::NicInfo;
use crate::udp_io::{UdpError, UdpIo};
use crate::xdp_io::{XdpConfig, XdpError, XdpIo};

/// Which I/O implementation to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoMode {
    /// AF_XDP when it can be set up, else kernel UDP (one log line says why).
    #[default]
    Auto,
    /// AF_XDP or fail.
    Xdp,
    /// Kernel UDP sockets only.
    Udp,
}

impl FromStr for IoMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "xdp" => Ok(Self::Xdp),
            "udp" => Ok(Self::Udp),
            other => Err(format!(
                "unknown I/O mode {other:?} (expected auto, xdp or udp)"
            )),
        }
    }
}

impl std::fmt::Display for IoMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Xdp => "xdp",
            Self::Udp => "udp",
        })
    }
}

/// Errors of [`open_io`].
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// `xdp` mode failed.
    #[error("AF_XDP I/O: {0}")]
    Xdp(#[from] XdpError),
    /// `udp` mode failed.
    #[error("kernel UDP I/O: {0}")]
    Udp(#[from] UdpError),
    /// `auto` mode: both failed.
    #[error("AF_XDP I/O: {xdp}; kernel UDP fallback: {udp}")]
    Both {
        /// Why AF_XDP failed.
        xdp: XdpError,
        /// Why the fallback failed.
        udp: UdpError,
    },
    /// An interface could not be resolved for the UDP sockets.
    #[error("resolving addresses for kernel UDP: {0}")]
    Nic(#[from] crate::nic::NicError),
}

/// AF_XDP or kernel UDP.
#[derive(Debug)]
pub enum AnyIo {
    /// AF_XDP.
    Xdp(XdpIo),
    /// Kernel UDP.
    Udp(UdpIo),
}

/// The kernel UDP addresses equivalent to an XDP configuration: every
/// non-link-local address of every interface, on every CAMP port.
pub fn udp_addrs_for(cfg: &XdpConfig) -> Result<Vec<SocketAddr>, crate::nic::NicError> {
    let mut out = Vec::new();
    for name in &cfg.interfaces {
        let info = NicInfo::lookup(name)?;
        for ip in &info.addrs {
            if matches!(ip, std::net::IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80) {
                continue;
            }
            out.extend(cfg.ports.iter().map(|p| SocketAddr::new(*ip, *p)));
        }
    }
    Ok(out)
}

/// Opens packet I/O in `mode` for the interfaces and ports of `cfg`.
pub fn open_io(mode: IoMode, cfg: &XdpConfig) -> Result<AnyIo, OpenError> {
    match mode {
        IoMode::Xdp => Ok(AnyIo::Xdp(XdpIo::open(cfg)?)),
        IoMode::Udp => Ok(AnyIo::Udp(UdpIo::open(&udp_addrs_for(cfg)?)?)),
        IoMode::Auto => match XdpIo::open(cfg) {
            Ok(io) => Ok(AnyIo::Xdp(io)),
            Err(xdp) => {
                let udp = udp_addrs_for(cfg)
                    .map_err(UdpError::from)
                    .and_then(|addrs| open_udp_after_release(&addrs));
                match udp {
                    Ok(io) => {
                        tracing::warn!("AF_XDP unavailable, using kernel UDP sockets: {xdp}");
                        Ok(AnyIo::Udp(io))
                    }
                    Err(udp) => Err(OpenError::Both { xdp, udp }),
                }
            }
        },
    }
}

/// Opens kernel sockets on ports the failed XDP attempt held a moment ago.
/// A child process forked concurrently (before its exec closes inherited
/// descriptors) can keep those sockets alive briefly, so `EADDRINUSE` is
/// retried for a short while.
fn open_udp_after_release(addrs: &[SocketAddr]) -> Result<UdpIo, UdpError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        match UdpIo::open(addrs) {
            Err(UdpError::Bind { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $io:ident => $e:expr) => {
        match $self {
            AnyIo::Xdp($io) => $e,
            AnyIo::Udp($io) => $e,
        }
    };
}

impl PacketIo for AnyIo {
    fn recv_batch(&mut self, f: &mut dyn FnMut(RxDatagram<'_>)) -> Result<usize, IoError> {
        dispatch!(self, io => io.recv_batch(f))
    }

    fn send(&mut self, tx: &TxDatagram<'_>) -> Result<(), IoError> {
        dispatch!(self, io => io.send(tx))
    }

    fn flush(&mut self) -> Result<(), IoError> {
        dispatch!(self, io => io.flush())
    }

    fn max_segments(&self) -> usize {
        dispatch!(self, io => io.max_segments())
    }

    fn tx_backlog(&self) -> usize {
        dispatch!(self, io => io.tx_backlog())
    }

    fn readiness_fd(&self) -> BorrowedFd<'_> {
        dispatch!(self, io => io.readiness_fd())
    }

    fn wait(&mut self, timeout: std::time::Duration) -> Result<bool, IoError> {
        dispatch!(self, io => io.wait(timeout))
    }

    fn counters(&self) -> IoCounters {
        dispatch!(self, io => io.counters())
    }

    fn kind(&self) -> IoKind {
        dispatch!(self, io => io.kind())
    }

    fn local_addrs(&self) -> Vec<SocketAddr> {
        dispatch!(self, io => io.local_addrs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for m in [IoMode::Auto, IoMode::Xdp, IoMode::Udp] {
            assert_eq!(m.to_string().parse::<IoMode>().unwrap(), m);
        }
        assert!(
            "dpdk"
                .parse::<IoMode>()
                .unwrap_err()
                .contains("auto, xdp or udp")
        );
    }

    #[test]
    fn auto_on_a_missing_interface_reports_both_failures() {
        let cfg = XdpConfig {
            interfaces: vec!["camp-nope1".into()],
            ports: vec![4433],
            ..XdpConfig::default()
        };
        let e = open_io(IoMode::Auto, &cfg).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("camp-nope1") && msg.contains("fallback"),
            "{msg}"
        );
    }
}
