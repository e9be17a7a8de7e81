//! Runs the Python SDK's tests (sdk/python/tests) against the campd and camp-client that
//! cargo built for this test: ingest helpers and back-pressure, the --present record reader,
//! a paced turn through campd → camp-client over 127.0.0.1, and real encoded AAC and H.264
//! through the same path when ffmpeg is installed.
//!
//! Uses pytest when it is installed, the standard library's unittest otherwise (the tests
//! are unittest cases, so both run the same checks). Without python3 the test skips with a
//! message, unless `CI` is set: then it fails.

use std::path::Path;
use std::process::Command;

fn has_python_module(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn python_sdk_tests_pass_against_real_campd() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sdk = root.join("sdk/python");
    if Command::new("python3").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 is required in CI for the SDK tests"
        );
        eprintln!("SKIPPED: python3 not found");
        return;
    }
    let mut cmd = Command::new("python3");
    if has_python_module("pytest") {
        cmd.args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]);
    } else {
        cmd.args(["-m", "unittest", "discover", "-v", "-s", "tests"]);
    }
    let out = cmd
        .current_dir(&sdk)
        .env("CAMPD_BIN", env!("CARGO_BIN_EXE_campd"))
        .env("CAMP_CLIENT_BIN", env!("CARGO_BIN_EXE_camp-client"))
        .env("PYTHONPATH", &sdk)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}\n{stderr}");
    assert!(out.status.success(), "SDK tests failed");
}
