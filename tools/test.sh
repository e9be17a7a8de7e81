#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine.
#
# As root it first installs the Debian packages the tests need and the machine lacks (the XDP
# classifier is compiled with clang and linked through libbpf-sys; the netns/veth tests drive
# iproute2, ethtool and ping), then runs `cargo test --workspace --all-features --locked`.
#
# Without root it cannot install anything: it names what is missing and how to install it,
# then runs what can run. With every package present that is the whole suite (the netns and
# AF_XDP tests then skip with a message, or fail under CI=true); without the build packages
# it leaves out the crates that link libbpf (camp-xdp, camp-engine, campd and camp-bench's
# `xdp` feature) and says so.
#
# `--install-only` installs (as root) or reports what is missing, and runs no test; `.ci/run`
# calls it first so that its fmt and clippy steps have the build packages. Other arguments go
# to cargo test (e.g. `tools/test.sh -p camp-wire`).
set -euo pipefail
cd "$(dirname "$0")/.."

install_only=0
if [ "${1:-}" = "--install-only" ]; then
    install_only=1
    shift
fi

# Build packages: clang + llvm compile bpf/*.bpf.c; libelf, zlib and pkg-config link libbpf.
build_packages=(clang llvm libelf-dev zlib1g-dev pkg-config)
# Run-time packages of the root-only tests (namespaces, veth, offloads, ping through XDP;
# camp-bench's cross-check counts against netsniff-ng's trafgen and xdp-tools' xdp-filter),
# and of campd's python_sdk test (python3 runs sdk/python/tests; ffmpeg encodes the AAC and
# H.264 clip of its real-codec test, which skips without it unless CI is set; tshark
# decrypts the simulator's captures in camp-sim's pcap test, likewise; espeak-ng speaks the
# words of campd's avsync test, tools/avsync.py).
run_packages=(iproute2 ethtool iputils-ping netsniff-ng xdp-tools python3 ffmpeg tshark espeak-ng)

missing_of() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

if ! command -v dpkg-query >/dev/null; then
    echo "test.sh: no dpkg here; assuming the packages ${build_packages[*]} ${run_packages[*]} (or their equivalents) are installed" >&2
    missing_build=()
    missing_run=()
else
    mapfile -t missing_build < <(missing_of "${build_packages[@]}")
    mapfile -t missing_run < <(missing_of "${run_packages[@]}")
fi

if ((${#missing_build[@]} + ${#missing_run[@]})) && [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing ${missing_build[*]} ${missing_run[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing_build[@]}" "${missing_run[@]}"
    missing_build=()
    missing_run=()
fi

# Python packages: aioquic is the independent QUIC stack of campd's stranger test
# (dataplane/daemon/tests/edge.rs), which skips without it unless CI is set.
if ! python3 -c 'import aioquic' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] || [ -n "${VIRTUAL_ENV:-}" ]; then
        echo "test.sh: installing the Python package aioquic"
        python3 -m pip --version >/dev/null 2>&1 ||
            { apt-get install -y -qq --no-install-recommends python3-pip >/dev/null; }
        python3 -m pip install --quiet aioquic ||
            python3 -m pip install --quiet --break-system-packages aioquic
    else
        echo "test.sh: missing the Python package aioquic: campd's stranger test skips" \
            "(python3 -m pip install aioquic)" >&2
    fi
fi

if ((${#missing_run[@]})); then
    echo "test.sh: missing ${missing_run[*]}: the root-only netns tests need them" \
        "(sudo apt-get install ${missing_run[*]})" >&2
fi

if ((install_only)); then
    ((${#missing_build[@]} + ${#missing_run[@]} == 0)) || exit 1
    exit 0
fi

if ((${#missing_build[@]})); then
    echo "test.sh: missing ${missing_build[*]}: cannot build the XDP classifier;" \
        "leaving out camp-xdp, camp-engine, campd and camp-bench's xdp feature" \
        "(sudo apt-get install ${missing_build[*]} to run everything)" >&2
    exec cargo test --workspace --locked \
        --exclude camp-xdp --exclude camp-engine --exclude campd "$@"
fi

if [ "$(id -u)" != 0 ]; then
    echo "test.sh: not root: the netns / AF_XDP tests skip with a message (CI=true makes them fail)" >&2
fi
exec cargo test --workspace --all-features --locked "$@"
