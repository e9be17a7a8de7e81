#!/usr/bin/env bash
# Two-namespace, two-path lab for campd and camp-client.
#
#   tools/lab.sh [up]   build it and print the commands to run in it
#   tools/lab.sh down   remove everything it created
#
# Namespace camp-a (server) and camp-b (client) are joined by two veth pairs:
#   path 0: campa0 198.18.10.1/24 <-> campb0 198.18.10.2/24   (unshaped)
#   path 1: campa1 198.18.11.1/24 <-> campb1 198.18.11.2/24   (netem delay 30ms rate 20mbit, both directions)
# Only addresses in 198.18.0.0/15 (RFC 2544 benchmarking) are used; nothing is routed
# outside the two namespaces. Needs root, iproute2 and ethtool.
set -euo pipefail

NS_A=camp-a
NS_B=camp-b
A_IFS=(campa0 campa1)
B_IFS=(campb0 campb1)
A_IPS=(198.18.10.1 198.18.11.1)
B_IPS=(198.18.10.2 198.18.11.2)
PORT=4433
RUN_DIR=/run/camp-lab

down() {
    ip netns del "$NS_A" 2>/dev/null || true
    ip netns del "$NS_B" 2>/dev/null || true
    rm -rf "$RUN_DIR"
}

# Shapes path 1 in both directions with the qdisc given; fails without side effects.
shape() {
    if tc -n "$NS_A" qdisc add dev "${A_IFS[1]}" root "$@" 2>/dev/null; then
        if tc -n "$NS_B" qdisc add dev "${B_IFS[1]}" root "$@" 2>/dev/null; then
            return 0
        fi
        tc -n "$NS_A" qdisc del dev "${A_IFS[1]}" root
    fi
    return 1
}

up() {
    if ip netns list | grep -qE "^($NS_A|$NS_B)( |$)"; then
        echo "lab.sh: the lab exists already; run 'tools/lab.sh down' first" >&2
        exit 1
    fi
    trap 'echo "lab.sh: failed, removing the partial lab" >&2; down' ERR
    ip netns add "$NS_A"
    ip netns add "$NS_B"
    ip -n "$NS_A" link set lo up
    ip -n "$NS_B" link set lo up
    for i in 0 1; do
        case "${A_IPS[$i]} ${B_IPS[$i]}" in
            198.1[89].*" "198.1[89].*) ;;
            *) echo "lab.sh: refusing address outside 198.18.0.0/15" >&2; exit 1 ;;
        esac
        ip link add "${A_IFS[$i]}" netns "$NS_A" type veth peer name "${B_IFS[$i]}" netns "$NS_B"
        ip -n "$NS_A" addr add "${A_IPS[$i]}/24" dev "${A_IFS[$i]}"
        ip -n "$NS_B" addr add "${B_IPS[$i]}/24" dev "${B_IFS[$i]}"
        # Complete UDP checksums from kernel senders: AF_XDP receivers verify them.
        ip netns exec "$NS_A" ethtool -K "${A_IFS[$i]}" tx off >/dev/null
        ip netns exec "$NS_B" ethtool -K "${B_IFS[$i]}" tx off >/dev/null
        ip -n "$NS_A" link set "${A_IFS[$i]}" up
        ip -n "$NS_B" link set "${B_IFS[$i]}" up
    done
    SHAPING="netem delay 30ms rate 20mbit"
    if ! shape netem delay 30ms rate 20mbit; then
        # No sch_netem in this kernel (try 'modprobe sch_netem'): keep the rate limit.
        echo "lab.sh: netem unavailable; path 1 gets only a 20mbit tbf (no added delay)" >&2
        SHAPING="tbf rate 20mbit (netem unavailable)"
        shape tbf rate 20mbit burst 32kbit latency 100ms
    fi
    mkdir -p "$RUN_DIR"
    trap - ERR

    local bin=target/release
    cat <<EOT
lab.sh: lab up: $NS_A (${A_IPS[*]}) <-> $NS_B (${B_IPS[*]}); path 1 shaped: $SHAPING

Build:
  cargo build --release -p campd -p campctl

Server (udp; use --io xdp for AF_XDP, add --ingest $RUN_DIR/ingest.sock to feed units yourself):
  ip netns exec $NS_A $bin/campd --io udp --port $PORT \\
      --address ${A_IPS[0]} --interface ${A_IFS[0]} --address ${A_IPS[1]} --interface ${A_IFS[1]} \\
      --self-signed --cert-out $RUN_DIR/cert.der --control-socket $RUN_DIR/campd.sock \\
      --prometheus off --turns 0
      (knobs at start: --scheduler NAME --coupled-cc on --log-level debug; see docs/tuning.md)

Client (prints per-modality L, C, skew, IS-191/BT.1359 shares, units per path):
  ip netns exec $NS_B $bin/camp-client --ca $RUN_DIR/cert.der --seconds 10 \\
      --local ${B_IPS[0]} --server ${A_IPS[0]}:$PORT --local ${B_IPS[1]} --server ${A_IPS[1]}:$PORT \\
      --arrivals $RUN_DIR/arrivals.csv

Control (the socket is a file: no namespace needed):
  $bin/campctl paths --socket $RUN_DIR/campd.sock
  $bin/campctl sessions --socket $RUN_DIR/campd.sock

Ingest (start campd with --ingest $RUN_DIR/ingest.sock instead of the synthetic turns;
        units sent before the client connects wait for the first session):
  python3 tools/ingest.py --socket $RUN_DIR/ingest.sock --seconds 2

Tear down:
  tools/lab.sh down
EOT
}

if [[ $EUID -ne 0 ]]; then
    echo "lab.sh: needs root (network namespaces)" >&2
    exit 1
fi
case "${1:-up}" in
    up) up ;;
    down) down; echo "lab.sh: lab removed" ;;
    *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac
