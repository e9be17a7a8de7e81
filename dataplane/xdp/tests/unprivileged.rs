//! Without capabilities, setup fails with clear "permission denied"
//! errors, not panics. The test re-runs itself under `setpriv` with an
//! empty capability bounding set.

mod common;

use std::process::Command;

use camp_xdp::xsk::{XskConfig, XskSocket};
use camp_xdp::{Classifier, XdpConfig, XdpIo};
use common::root_or_skip;

const CHILD: &str = "CAMP_XDP_UNPRIVILEGED_CHILD";

fn child() {
    let e = Classifier::load().expect_err("loading XDP must fail without CAP_BPF");
    let msg = e.to_string();
    assert!(msg.contains("permission denied"), "unclear error: {msg}");
    let e = XskSocket::open(1, 0, &XskConfig::default())
        .expect_err("AF_XDP must fail without CAP_NET_RAW");
    let os = e.os_error().and_then(std::io::Error::raw_os_error);
    // EPERM or EACCES
    assert!(matches!(os, Some(1 | 13)), "{e}");
    let cfg = XdpConfig {
        interfaces: vec!["lo".into()],
        ports: vec![4433],
        ..XdpConfig::default()
    };
    // `lo` has no usable MAC or the load fails: either way an error, no panic.
    assert!(XdpIo::open(&cfg).is_err());
    println!("UNPRIVILEGED-CHILD-OK");
}

#[test]
fn permission_denied_is_a_clear_error() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    if !root_or_skip("permission_denied_is_a_clear_error") {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .args(["--bounding-set=-all", "--inh-caps=-all", "--"])
        .arg(exe)
        .args([
            "permission_denied_is_a_clear_error",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .expect("run setpriv (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("UNPRIVILEGED-CHILD-OK"),
        "child failed:\n{stdout}\n{stderr}"
    );
}
