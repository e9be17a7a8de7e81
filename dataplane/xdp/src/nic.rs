//! Interface facts: index, MAC, addresses, queue count, GRO/LRO state.
//! All queries are made in the calling thread's network namespace.

use std::io;
use std::net::IpAddr;

use crate::frame::Mac;
use crate::xsk::ethtool;

const ETHTOOL_GFLAGS: u32 = 0x25;
const ETHTOOL_GGRO: u32 = 0x2b;
const ETHTOOL_GCHANNELS: u32 = 0x3c;
const ETH_FLAG_LRO: u32 = 1 << 15;

/// Errors looking up an interface.
#[derive(Debug, thiserror::Error)]
pub enum NicError {
    /// No interface of that name in this network namespace.
    #[error("no such interface: {0}")]
    NoSuchInterface(String),
    /// The interface has no Ethernet address (not an Ethernet device).
    #[error("interface {0} has no Ethernet address")]
    NoMac(String),
    /// Listing interfaces failed.
    #[error("listing interfaces: {0}")]
    Os(#[from] io::Error),
}

/// What the I/O layer needs to know about one NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicInfo {
    /// Interface name.
    pub name: String,
    /// Interface index.
    pub ifindex: u32,
    /// Ethernet address.
    pub mac: Mac,
    /// Configured IP addresses.
    pub addrs: Vec<IpAddr>,
    /// Number of RX queues (combined or RX channels; 1 when unknown).
    pub queues: u32,
}

impl NicInfo {
    /// Looks `name` up.
    pub fn lookup(name: &str) -> Result<Self, NicError> {
        let ifindex = nix::net::if_::if_nametoindex(name)
            .map_err(|_| NicError::NoSuchInterface(name.to_owned()))?;
        let mut mac = None;
        let mut addrs = Vec::new();
        let ifaddrs =
            nix::ifaddrs::getifaddrs().map_err(|e| io::Error::from_raw_os_error(e as i32))?;
        for ifa in ifaddrs.filter(|i| i.interface_name == name) {
            let Some(a) = ifa.address else { continue };
            if let Some(l) = a.as_link_addr() {
                mac = l.addr().or(mac);
            } else if let Some(v4) = a.as_sockaddr_in() {
                addrs.push(IpAddr::V4(v4.ip()));
            } else if let Some(v6) = a.as_sockaddr_in6() {
                addrs.push(IpAddr::V6(v6.ip()));
            }
        }
        let mac = mac.ok_or_else(|| NicError::NoMac(name.to_owned()))?;
        Ok(Self {
            name: name.to_owned(),
            ifindex,
            mac,
            addrs,
            queues: queue_count(name),
        })
    }
}

/// Number of RX queues from `ETHTOOL_GCHANNELS` (at least 1).
pub fn queue_count(name: &str) -> u32 {
    // struct ethtool_channels: cmd, max_rx, max_tx, max_other,
    // max_combined, rx_count, tx_count, other_count, combined_count
    let mut ch = [0u32; 9];
    ch[0] = ETHTOOL_GCHANNELS;
    match ethtool(name, &mut ch) {
        Ok(()) => ch[5].max(ch[8]).max(1),
        Err(_) => 1,
    }
}

/// Receive offload state relevant to XDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offloads {
    /// Generic receive offload.
    pub gro: bool,
    /// Large receive offload.
    pub lro: bool,
}

/// Reads GRO / LRO state (unknown counts as off).
pub fn offloads(name: &str) -> Offloads {
    let mut gro = [ETHTOOL_GGRO, 0];
    let mut flags = [ETHTOOL_GFLAGS, 0];
    Offloads {
        gro: ethtool(name, &mut gro).is_ok() && gro[1] != 0,
        lro: ethtool(name, &mut flags).is_ok() && flags[1] & ETH_FLAG_LRO != 0,
    }
}

/// Checks that no receive offload merges frames in front of the XDP
/// program: LRO always does; GRO does in generic mode (generic XDP runs
/// after GRO, so merged super-frames would reach AF_XDP). Returns a
/// message that says how to fix it.
pub fn check_offloads(name: &str, generic: bool) -> Result<(), String> {
    let o = offloads(name);
    if o.lro {
        return Err(format!(
            "LRO is enabled on {name}; it merges frames and corrupts AF_XDP traffic \
             (disable with `ethtool -K {name} lro off`)"
        ));
    }
    if generic && o.gro {
        return Err(format!(
            "GRO is enabled on {name} and generic XDP runs after GRO, so merged frames would \
             reach AF_XDP (disable with `ethtool -K {name} gro off`, or use native XDP)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_interface_is_a_typed_error() {
        match NicInfo::lookup("camp-nonexist0") {
            Err(NicError::NoSuchInterface(n)) => assert_eq!(n, "camp-nonexist0"),
            other => panic!("expected NoSuchInterface, got {other:?}"),
        }
    }

    #[test]
    fn loopback_lookup_reports_index_addresses_and_queues() {
        let info = NicInfo::lookup("lo").expect("lo exists in every namespace");
        assert_eq!(info.ifindex, 1);
        assert_eq!(info.mac, [0; 6], "loopback has an all-zero link address");
        assert!(
            info.addrs.contains(&IpAddr::from([127, 0, 0, 1])),
            "{:?}",
            info.addrs
        );
        assert!(info.queues >= 1);
        assert_eq!(offloads("camp-nonexist0"), Offloads::default());
        assert!(check_offloads("camp-nonexist0", true).is_ok());
    }
}
