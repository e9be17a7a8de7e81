#!/usr/bin/env bash
# Runs every cargo-fuzz target of the repository for a bounded time and says which crashed.
#
#   tools/fuzz.sh [-j JOBS] [--keep] [SECONDS] [TARGET...]
#
# SECONDS per target (default 40); TARGET names restrict the run (default: every target of
# every fuzz crate, as `cargo fuzz list` reports them, so a new target is picked up by itself).
# `-j 2` runs two targets at a time; `--keep` keeps each target's scratch corpus (for
# `cargo fuzz cmin` after a campaign) and prints where it is.
#
# Installs cargo-fuzz (0.13, from crates.io) when it is missing. The targets need nightly
# compiler flags (-Zsanitizer=address); RUSTC_BOOTSTRAP=1 lets the stable toolchain accept
# them, for these builds only. All fuzz crates build into one target directory
# ($FUZZ_TARGET_DIR, default target/fuzz), so the dependencies they share build once.
#
# libFuzzer writes every new interesting input into the corpus directory it is given, so each
# target runs on a scratch copy of its committed corpus (fuzz/corpus/<target>), made under the
# target directory: a run never modifies the tracked files. A crash leaves its input in the
# scratch directory's artifacts/ and the script exits non-zero.
#
# $FUZZ_ARGS adds libFuzzer flags to every run (a campaign: FUZZ_ARGS=-runs=10000000 stops each
# target after ten million executions, SECONDS then being the cap).
#
# Output: one line per target with executions, rate, coverage (cov/ft as libFuzzer counts
# them), corpus size before and after, and ok or CRASH.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=1
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
        -j) jobs="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) break ;;
    esac
done
secs=40
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then
    secs="$1"
    shift
fi
only=("$@")

fuzz_dirs=(dataplane/wire/fuzz dataplane/xdp/fuzz dataplane/daemon/fuzz dataplane/present/fuzz dataplane/proto/fuzz control/fuzz)
target_dir="${FUZZ_TARGET_DIR:-$PWD/target/fuzz}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked --version '^0.13'
fi

# Which targets, from which crate.
declare -a names dirs
for dir in "${fuzz_dirs[@]}"; do
    for t in $(cargo fuzz list --fuzz-dir "$dir"); do
        if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " =~ " $t " ]]; then
            continue
        fi
        names+=("$t")
        dirs+=("$dir")
    done
done
if [ ${#names[@]} -eq 0 ]; then
    echo "fuzz.sh: no fuzz target matches ${only[*]}" >&2
    exit 2
fi

echo "== building fuzz targets (${names[*]})"
start=$SECONDS
for dir in $(printf '%s\n' "${dirs[@]}" | uniq); do
    cargo fuzz build --fuzz-dir "$dir" --target-dir "$target_dir"
done
echo "   built in $((SECONDS - start)) s"

scratch_root="$target_dir/scratch"
mkdir -p "$scratch_root"

# Extra libFuzzer flags per target.
extra_args() {
    case "$1" in
        # Room for a whole MAX_CONTROL_FRAME (4096 bytes) frame and one more, plus the two
        # selector bytes, so the control-stream limit is reachable.
        frame_reader) echo "-max_len=8200" ;;
        # Runs two QUIC handshakes per input (about 50 exec/s under ASan); libFuzzer's leak
        # check on every new input cost a tenth of that.
        control_after_join) echo "-detect_leaks=0" ;;
    esac
}

# Runs target $1 of crate $2; leaves its summary in $3/summary.
run_one() {
    local name="$1" dir="$2" scratch="$3"
    local bin="$target_dir/$triple/release/$name"
    mkdir -p "$scratch/corpus" "$scratch/artifacts"
    if [ -d "$dir/corpus/$name" ]; then
        cp -R "$dir/corpus/$name/." "$scratch/corpus/"
    fi
    local seeds args status=0
    seeds=$(find "$scratch/corpus" -type f | wc -l)
    args=(-max_total_time="$secs" -timeout=10 -print_final_stats=1
        -artifact_prefix="$scratch/artifacts/")
    if [ -f "$dir/dict/$name.dict" ]; then
        args+=(-dict="$dir/dict/$name.dict")
    fi
    # shellcheck disable=SC2207,SC2086
    args+=($(extra_args "$name") ${FUZZ_ARGS:-})
    "$bin" "${args[@]}" "$scratch/corpus" >"$scratch/log" 2>&1 || status=$?
    local execs rate cov ft after crashes verdict
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$scratch/log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$scratch/log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$scratch/log" | tail -1 | cut -d' ' -f2)
    after=$(find "$scratch/corpus" -type f | wc -l)
    crashes=$(find "$scratch/artifacts" -type f | wc -l)
    if [ "$status" -eq 0 ] && [ "$crashes" -eq 0 ]; then
        verdict=ok
    else
        verdict="CRASH (exit $status): $(find "$scratch/artifacts" -type f | head -1), log $scratch/log"
    fi
    printf '%-16s execs %10s  %7s/s  cov %5s  ft %6s  corpus %4s -> %5s  %s\n' \
        "$name" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$seeds" "$after" \
        "$verdict" >"$scratch/summary"
    [ "$verdict" = ok ]
}

echo "== fuzzing ${#names[@]} targets, ${secs} s each, $jobs at a time"
declare -a scratches
failed=0
running=0
for i in "${!names[@]}"; do
    scratches[i]=$(mktemp -d "$scratch_root/${names[i]}.XXXXXX")
    run_one "${names[i]}" "${dirs[i]}" "${scratches[i]}" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || failed=1
        running=$((running - 1))
    fi
done
while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
done

for i in "${!names[@]}"; do
    s="${scratches[i]}"
    cat "$s/summary" 2>/dev/null || echo "${names[i]}: no summary (see $s/log)"
    if ! grep -q ' ok$' "$s/summary" 2>/dev/null; then
        tail -n 30 "$s/log" | sed 's/^/    /'
    elif [ "$keep" -eq 1 ]; then
        echo "    corpus kept in $s/corpus"
    else
        rm -rf "$s"
    fi
done
exit "$failed"
