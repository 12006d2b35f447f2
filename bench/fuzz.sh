#!/usr/bin/env bash
# Fuzzing benchmark of the binlog decoder: builds the libFuzzer target fuzz/fuzz_targets/
# decode.rs and runs it for a fixed time over the binlog fixtures. The target decodes each
# input as it is and again with every event's CRC32 recomputed, so libFuzzer's mutations
# of the fixtures reach the event parsers as "CRC-fixed mutations" (damage a checksum
# cannot catch). Prints executions, executions per second, and the crashes, out-of-memory
# inputs and timeouts found (each saved under the artifacts directory).
#
#   bash bench/fuzz.sh [--seconds N] [options]
#
# Options (defaults in brackets):
#   --seconds N     how long libFuzzer runs [600]
#   --jobs N        libFuzzer worker processes (-fork=N) [1]
#   --rss-mb N      an input using more memory than this is an out-of-memory finding [1024]
#   --timeout N     an input taking longer than N seconds is a hang finding [10]
#   --out FILE      also write the summary (markdown) to FILE
#
# Environment:
#   FUZZ_TARGET_DIR  cargo target directory of the instrumented build [fuzz/target]
#   FUZZ_WORK        corpus and artifacts directory [fuzz/]: corpus/decode grows
#                    between runs, artifacts/decode holds the findings
#
# Needs no nightly toolchain and no cargo-fuzz: the build passes the same coverage flags
# `cargo fuzz build -s none` passes (RUSTC_BOOTSTRAP=1 only lets the flags through on a
# stable compiler). Exit status: 0 when nothing was found, 4 when something was.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

seconds=600 jobs=1 rss_mb=1024 timeout=10 out=
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        --rss-mb) rss_mb=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "fuzz: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
for n in "$seconds" "$jobs" "$rss_mb" "$timeout"; do
    [[ "$n" =~ ^[0-9]+$ ]] || { echo "fuzz: '$n' is not a whole number" >&2; exit 2; }
done

target_dir=${FUZZ_TARGET_DIR:-$REPO/fuzz/target}
work=${FUZZ_WORK:-$REPO/fuzz}
triple=$(rustc -vV | sed -n 's/^host: //p')
echo "fuzz: building the instrumented target into $target_dir" >&2
RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks -Cforce-frame-pointers" \
    cargo build --release --manifest-path fuzz/Cargo.toml --target "$triple" \
    --target-dir "$target_dir" --bin decode
bin=$target_dir/$triple/release/decode

corpus=$work/corpus/decode
artifacts=$work/artifacts/decode
mkdir -p "$corpus" "$artifacts"
seeds=$REPO/crates/tidemark/tests/fixtures
before=$(find "$artifacts" -type f | wc -l)
log=$(mktemp "${TMPDIR:-/tmp}/tidemark-fuzz.XXXXXX.log")
echo "fuzz: running for ${seconds}s (log: $log)" >&2
# -fork: findings are saved and the run goes on until its time is up.
"$bin" -fork="$((jobs > 0 ? jobs : 1))" -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
    -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -malloc_limit_mb="$rss_mb" \
    -timeout="$timeout" -artifact_prefix="$artifacts/" \
    "$corpus" $(find "$seeds" -type d -name 'binlog-*') >"$log" 2>&1 || true

# The fork supervisor's last status line: "#N: cov: C ft: F corp: K exec/s: E oom/timeout/crash: a/b/c time: Ts"
last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1 || true)
[ -n "$last" ] || { echo "fuzz: libFuzzer printed no status line; see $log" >&2; tail -20 "$log" >&2; exit 3; }
execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
cov=$(sed -E 's/.* cov: ([0-9]+).*/\1/' <<<"$last")
rate=$(sed -E 's/.* exec\/s: ([0-9]+).*/\1/' <<<"$last")
read -r ooms hangs crashes < <(sed -E 's/.* oom\/timeout\/crash: ([0-9]+)\/([0-9]+)\/([0-9]+).*/\1 \2 \3/' <<<"$last")
elapsed=$(sed -E 's/.* time: ([0-9]+)s.*/\1/' <<<"$last")
new=$(( $(find "$artifacts" -type f | wc -l) - before ))
summary="| fuzz run | value |
|---|---|
| time | ${elapsed}s |
| executions | $execs |
| executions/s | $rate |
| coverage (edges) | $cov |
| corpus | $(find "$corpus" -type f | wc -l) inputs |
| crashes (panics, aborts) | $crashes |
| out of memory (> ${rss_mb} MB) | $ooms |
| timeouts (> ${timeout}s) | $hangs |
| new artifacts | $new (in $artifacts) |"
echo "$summary"
[ -z "$out" ] || echo "$summary" >"$out"
[ "$((crashes + ooms + hangs))" -eq 0 ] || exit 4
