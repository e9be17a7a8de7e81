//! Builds the XDP classifier in `../../bpf` with clang and generates its
//! libbpf-rs skeleton into `OUT_DIR`.

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const PROGRAMS: [(&str, &str); 3] = [
    ("../../bpf/camp_classifier.bpf.c", "camp_classifier.skel.rs"),
    ("../../bpf/camp_sink.bpf.c", "camp_sink.skel.rs"),
    ("../../bpf/camp_reuseport.bpf.c", "camp_reuseport.skel.rs"),
];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    // Debian keeps <asm/types.h> in the multiarch include directory, which
    // clang does not search for the bpf target.
    let multiarch = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        other => other,
    };
    for (src, skel) in PROGRAMS {
        let result = SkeletonBuilder::new()
            .source(src)
            .clang_args([
                format!("-I/usr/include/{multiarch}"),
                "-Wall".to_owned(),
                "-Werror".to_owned(),
            ])
            .build_and_generate(out.join(skel));
        if let Err(e) = result {
            panic!(
                "building {src} failed (needs clang, libelf-dev, zlib1g-dev, pkg-config; \
                 see docs/io.md): {e:#}"
            );
        }
        println!("cargo:rerun-if-changed={src}");
    }
}
