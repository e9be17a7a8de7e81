//! Root-only test harness: network namespaces joined by veth pairs,
//! removed on drop (also on panic). Addresses come from 198.18.0.0/15 only.

#![allow(dead_code, reason = "shared by several test binaries")]

use std::fs::File;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Whether root-only tests can run. Without root they are skipped with a
/// message, unless `CI` is set, in which case they fail.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: needs root, and CI is set: refusing to skip"
    );
    eprintln!("SKIPPED {test}: needs root (run as root; CI=true makes this a failure)");
    false
}

/// Runs a command, panicking with its output on failure.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command inside a namespace.
pub fn run_in(ns: &Netns, args: &[&str]) -> String {
    let mut full = vec!["ip", "netns", "exec", ns.name.as_str()];
    full.extend_from_slice(args);
    run(&full)
}

/// A network namespace, deleted (with its interfaces) on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Netns {
    pub fn new(tag: &str) -> Self {
        let name = format!(
            "camp-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        run(&["ip", "netns", "add", &name]);
        let ns = Self { name };
        run_in(&ns, &["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs `f` on a thread that entered this namespace; sockets and BPF
    /// attachments made there stay in the namespace.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Like `enter`, but returns a handle so both sides can run at once.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Creates a veth pair `a_if` (in `a`, address `a_addr/24`) <-> `b_if`
/// (in `b`, `b_addr/24`). TX checksum offload is turned off on both ends
/// so the kernel sender emits complete checksums.
pub fn veth(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    veth_queues(a, a_if, a_addr, b, b_if, b_addr, 1);
}

/// Like [`veth`], with `queues` RX and TX queues on both ends.
pub fn veth_queues(
    a: &Netns,
    a_if: &str,
    a_addr: &str,
    b: &Netns,
    b_if: &str,
    b_addr: &str,
    queues: u32,
) {
    let q = queues.to_string();
    for addr in [a_addr, b_addr] {
        assert!(
            addr.starts_with("198.18.") || addr.starts_with("198.19."),
            "test addresses must be in 198.18.0.0/15"
        );
    }
    let (aq, bq) = (
        ["numtxqueues", &q, "numrxqueues", &q],
        ["numtxqueues", &q, "numrxqueues", &q],
    );
    let mut cmd = vec!["ip", "link", "add", a_if];
    cmd.extend_from_slice(&aq);
    cmd.extend_from_slice(&["netns", &a.name, "type", "veth", "peer", "name", b_if]);
    cmd.extend_from_slice(&bq);
    cmd.extend_from_slice(&["netns", &b.name]);
    run(&cmd);
    for (ns, ifname, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
        run_in(
            ns,
            &["ip", "addr", "add", &format!("{addr}/24"), "dev", ifname],
        );
        run_in(ns, &["ethtool", "-K", ifname, "tx", "off"]);
        run_in(ns, &["ip", "link", "set", ifname, "up"]);
    }
}

/// Whether any XDP program is attached to `ifname` in `ns`.
pub fn xdp_attached(ns: &Netns, ifname: &str) -> bool {
    let out = run_in(ns, &["ip", "-d", "link", "show", "dev", ifname]);
    out.contains("prog/xdp") || out.contains(" xdp") || out.contains("xdpgeneric")
}
