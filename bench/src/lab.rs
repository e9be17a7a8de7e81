//! What the root-only benchmarks (`io`, `goodput`) share: network namespaces
//! deleted on drop, running commands in them, and per-thread CPU time.

use std::fs::File;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Runs a command to completion; its stdout, or its stderr as the error.
pub fn sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if !out.status.success() {
        return Err(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

static NS_SEQ: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted with its interfaces on drop (also when the
/// caller returns early with an error or panics).
#[derive(Debug)]
pub struct Netns {
    /// `campbench-<tag>-<pid>-<n>`.
    pub name: String,
}

impl Netns {
    /// Creates a namespace with its loopback up.
    pub fn new(tag: &str) -> Result<Self, String> {
        let name = format!(
            "campbench-{tag}-{}-{}",
            std::process::id(),
            NS_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        sh(&["ip", "netns", "add", &name])?;
        let ns = Self { name };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Result<String, String> {
        let mut full = vec!["ip", "netns", "exec", self.name.as_str()];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// Moves the calling thread into the namespace (sockets and XDP
    /// attachments it makes afterwards belong to it).
    pub fn enter(&self) -> Result<(), String> {
        let path = format!("/var/run/netns/{}", self.name);
        let f = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("setns {path}: {e}"))
    }

    /// Ethernet address of `ifname` in this namespace.
    pub fn mac(&self, ifname: &str) -> Result<[u8; 6], String> {
        let s = self.exec(&["cat", &format!("/sys/class/net/{ifname}/address")])?;
        parse_mac(s.trim())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let v: Vec<u8> = s
        .split(':')
        .map(|h| u8::from_str_radix(h, 16))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("mac {s}: {e}"))?;
    v.try_into().map_err(|_| format!("mac {s}: not 6 bytes"))
}

/// Thread CPU time: (total, user).
pub type Cpu = (Duration, Duration);

/// CPU time of the calling thread: (total, user). The total comes from
/// `CLOCK_THREAD_CPUTIME_ID` (precise); the user part from `getrusage`
/// (tick-based, used only for the user/system split).
pub fn thread_cpu() -> Cpu {
    let total = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(Duration::ZERO, |t| {
            Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
        });
    let user = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD).map_or(
        Duration::ZERO,
        |u| {
            let t = u.user_time();
            Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000)
        },
    );
    (total, user)
}

/// CPU time of the calling thread since `start` (a [`thread_cpu`] reading).
pub fn cpu_since(start: Cpu) -> Cpu {
    let now = thread_cpu();
    (now.0.saturating_sub(start.0), now.1.saturating_sub(start.1))
}

/// Share of `cpu` spent in user space (the rest is the kernel).
pub fn user_share((total, user): Cpu) -> f64 {
    if total.is_zero() {
        0.0
    } else {
        (user.as_secs_f64() / total.as_secs_f64()).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse() {
        assert_eq!(parse_mac("02:00:00:00:00:0a").unwrap(), [2, 0, 0, 0, 0, 10]);
        assert!(parse_mac("02:00").is_err());
    }

    #[test]
    fn user_share_is_bounded() {
        let s = Duration::from_secs;
        assert_eq!(user_share((s(0), s(0))), 0.0);
        assert_eq!(user_share((s(4), s(1))), 0.25);
        // getrusage ticks can run ahead of the precise clock.
        assert_eq!(user_share((s(1), s(2))), 1.0);
    }
}
