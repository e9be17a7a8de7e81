//! Root-only test harness: network namespaces joined by veth pairs, deleted on drop (also
//! on panic). Addresses must come from 198.18.0.0/15, the benchmarking range.

use std::fs::File;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Whether root-only tests can run. Without root they are skipped with a message, unless
/// `CI` is set, in which case they fail.
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

/// Runs a command, panicking with its output on failure; returns its stdout.
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

/// Panics unless `addr` (an IPv4 address, optionally with a prefix) is in 198.18.0.0/15.
pub fn assert_test_address(addr: &str) {
    assert!(
        addr.starts_with("198.18.") || addr.starts_with("198.19."),
        "test addresses must be in 198.18.0.0/15, not {addr}"
    );
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted (with its interfaces) on drop.
#[derive(Debug)]
pub struct Netns {
    /// Its name under `/var/run/netns`.
    pub name: String,
}

impl Netns {
    /// Creates `camp-<tag>-<pid>-<n>` with its loopback up. Keep `tag` short: interface
    /// and namespace names are limited in length.
    pub fn new(tag: &str) -> Self {
        let name = format!(
            "camp-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        run(&["ip", "netns", "add", &name]);
        let ns = Self { name };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace; returns its stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", self.name.as_str()];
        full.extend_from_slice(args);
        run(&full)
    }

    /// A command that will run `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `f` on a thread that entered this namespace; sockets and BPF attachments made
    /// there stay in the namespace.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = self.path();
        std::thread::scope(|s| {
            s.spawn(|| {
                enter_path(&path);
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Like [`enter`](Self::enter), but returns a handle so both sides can run at once.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = self.path();
        std::thread::spawn(move || {
            enter_path(&path);
            f()
        })
    }

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }
}

fn enter_path(path: &str) {
    let file = File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Waits, polling every 20 ms, until `ready()` holds; panics with `what` after `limit`.
/// Then waits 100 ms more (a daemon writes its certificate or binds its socket a moment
/// before it serves).
pub fn wait_ready(limit: std::time::Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !ready() {
        assert!(t0.elapsed() < limit, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
}

/// Creates a veth pair `a_if` (in `a`, address `a_addr/24`) <-> `b_if` (in `b`,
/// `b_addr/24`), both up. TX checksum offload is turned off on both ends so kernel senders
/// emit complete checksums (AF_XDP receivers check them).
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
    assert_test_address(a_addr);
    assert_test_address(b_addr);
    let qs = ["numtxqueues", &q, "numrxqueues", &q];
    let mut cmd = vec!["ip", "link", "add", a_if];
    cmd.extend_from_slice(&qs);
    cmd.extend_from_slice(&["netns", &a.name, "type", "veth", "peer", "name", b_if]);
    cmd.extend_from_slice(&qs);
    cmd.extend_from_slice(&["netns", &b.name]);
    run(&cmd);
    for (ns, ifname, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
        ns.run(&["ip", "addr", "add", &format!("{addr}/24"), "dev", ifname]);
        ns.run(&["ethtool", "-K", ifname, "tx", "off"]);
        ns.run(&["ip", "link", "set", ifname, "up"]);
    }
}

/// Two namespaces, `a` (server side) and `b` (client side), joined by one veth pair per
/// entry of `links`: `(a_if, a_addr, b_if, b_addr)`, each set up as by [`veth`].
#[derive(Debug)]
pub struct Lab {
    /// Server-side namespace.
    pub a: Netns,
    /// Client-side namespace.
    pub b: Netns,
}

impl Lab {
    /// Builds the namespaces `<tag>a` and `<tag>b` and the links between them.
    pub fn new(tag: &str, links: &[(&str, &str, &str, &str)]) -> Self {
        let lab = Lab {
            a: Netns::new(&format!("{tag}a")),
            b: Netns::new(&format!("{tag}b")),
        };
        for &(a_if, a_addr, b_if, b_addr) in links {
            veth(&lab.a, a_if, a_addr, &lab.b, b_if, b_addr);
        }
        lab
    }
}
