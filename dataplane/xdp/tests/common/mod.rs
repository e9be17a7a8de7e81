//! Root-only test harness: network namespaces joined by veth pairs,
//! removed on drop (also on panic). Addresses come from 198.18.0.0/15 only.

#![allow(dead_code, reason = "shared by several test binaries")]

#[allow(unused_imports, reason = "each test binary uses a different subset")]
pub use camp_testkit::netns::{Netns, root_or_skip, run, veth, veth_queues};

/// Runs a command inside a namespace.
pub fn run_in(ns: &Netns, args: &[&str]) -> String {
    ns.run(args)
}

/// Whether any XDP program is attached to `ifname` in `ns`.
pub fn xdp_attached(ns: &Netns, ifname: &str) -> bool {
    let out = run_in(ns, &["ip", "-d", "link", "show", "dev", ifname]);
    out.contains("prog/xdp") || out.contains(" xdp") || out.contains("xdpgeneric")
}
