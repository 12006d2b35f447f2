#!/usr/bin/env bash
# Benchmark of the full data migration (schema + full copy) of sysbench-shaped tables:
# tidemark (plain and with defer_secondary_indexes), mydumper+myloader, and
# mariadb-dump | mariadb, each into a freshly emptied destination, each verified with
# CHECKSUM TABLE against the source.
#
#   bash bench/full.sh [--tables N] [--rows N] [--threads N] [options]
#
# Options (defaults in brackets):
#   --tables N        sysbench tables [8]
#   --rows N          rows per table [250000]
#   --threads N       tidemark [full] threads [4]
#   --dump-threads N  mydumper/myloader --threads [2]
#   --load-method M   tidemark [full] load_method: auto, insert or load-data
#                     [not set: tidemark's default]
#   --tools LIST      comma list of tidemark,tidemark-defer,mydumper,mariadb-dump [all]
#   --repeat N        rounds; each round runs every tool once, in the order above; the
#                     table shows each tool's median-time round (all times listed) [1]
#   --rss-limit-mb N  fail (exit 3, after the results) if a tidemark run's peak RSS is
#                     N MiB or more; 0 = no limit [256]
#   --out FILE        also write the results (markdown) to FILE
#   --logs DIR        keep the tools' logs, /usr/bin/time reports and task files in DIR
#
# Environment:
#   BENCH_TARGET_DIR  cargo target directory for the release build
#                     [$CARGO_TARGET_DIR, else <repo>/target]
#   TIDEMARK_BIN      use this tidemark binary instead of building one
#   BENCH_TMPDIR      where the servers' data and the dump go [$TMPDIR or /tmp]
#
# Everything the script starts (two mariadbd, in a temporary directory, on free ports)
# is stopped and removed on exit. Missing tools are installed with apt-get.
set -euo pipefail

TABLES=8
ROWS=250000
THREADS=4
DUMP_THREADS=2
TOOLS="tidemark,tidemark-defer,mydumper,mariadb-dump"
RSS_LIMIT_MB=256
OUT=""
LOGS=""
REPEAT=1
LOAD_METHOD=""

die() { echo "bench: error: $*" >&2; exit 1; }
log() { echo "bench [${SECONDS}s]: $*" >&2; }
usage() { sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --tables) TABLES="${2:?}"; shift 2 ;;
        --rows) ROWS="${2:?}"; shift 2 ;;
        --threads) THREADS="${2:?}"; shift 2 ;;
        --dump-threads) DUMP_THREADS="${2:?}"; shift 2 ;;
        --tools) TOOLS="${2:?}"; shift 2 ;;
        --rss-limit-mb) RSS_LIMIT_MB="${2:?}"; shift 2 ;;
        --out) OUT="${2:?}"; shift 2 ;;
        --logs) LOGS="${2:?}"; shift 2 ;;
        --repeat) REPEAT="${2:?}"; shift 2 ;;
        --load-method) LOAD_METHOD="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
for v in TABLES ROWS THREADS DUMP_THREADS RSS_LIMIT_MB REPEAT; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "--$(echo "$v" | tr 'A-Z_' 'a-z-') must be a whole number (got ${!v})"
done
[ "$TABLES" -ge 1 ] && [ "$ROWS" -ge 1 ] && [ "$THREADS" -ge 1 ] && [ "$REPEAT" -ge 1 ] \
    || die "--tables, --rows, --threads and --repeat must be at least 1"
want() { [[ ",$TOOLS," == *",$1,"* ]]; }
case "$LOAD_METHOD" in ""|auto|insert|load-data) ;; *) die "--load-method must be auto, insert or load-data" ;; esac
for t in ${TOOLS//,/ }; do
    case "$t" in tidemark|tidemark-defer|mydumper|mariadb-dump) ;; *) die "--tools: unknown tool '$t'" ;; esac
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

# ---------------------------------------------------------------- tools -----------
find_tool() { # first of the names found on PATH or in the sbin directories
    local n d
    for n in "$@"; do
        if command -v "$n" >/dev/null 2>&1; then command -v "$n"; return 0; fi
        for d in /usr/sbin /usr/local/sbin /usr/bin; do
            [ -x "$d/$n" ] && { echo "$d/$n"; return 0; }
        done
    done
    return 1
}

missing=()
find_tool mariadbd mysqld >/dev/null || missing+=(mariadb-server)
find_tool mariadb-install-db mysql_install_db >/dev/null || missing+=(mariadb-server)
find_tool mariadb >/dev/null && find_tool mariadb-dump >/dev/null || missing+=(mariadb-client)
if want mydumper; then
    find_tool mydumper >/dev/null && find_tool myloader >/dev/null || missing+=(mydumper)
fi
find_tool sysbench >/dev/null || missing+=(sysbench)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    log "installing ${missing[*]} with apt-get"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
MARIADBD="$(find_tool mariadbd mysqld)" || die "mariadbd not found"
INSTALL_DB="$(find_tool mariadb-install-db mysql_install_db)" || die "mariadb-install-db not found"
MARIADB="$(find_tool mariadb)" || die "mariadb (client) not found"
MARIADB_DUMP="$(find_tool mariadb-dump)" || die "mariadb-dump not found"
SYSBENCH="$(find_tool sysbench)" || die "sysbench not found"
TIME=/usr/bin/time

# ---------------------------------------------------------------- build -----------
if [ -n "${TIDEMARK_BIN:-}" ]; then
    TIDEMARK="$TIDEMARK_BIN"
    [ -x "$TIDEMARK" ] || die "TIDEMARK_BIN=$TIDEMARK is not an executable"
else
    TARGET_DIR="${BENCH_TARGET_DIR:-${CARGO_TARGET_DIR:-$REPO/target}}"
    command -v cargo >/dev/null || die "cargo not found (install Rust, or set TIDEMARK_BIN)"
    log "building tidemark (release) into $TARGET_DIR"
    CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -p tidemark >&2
    TIDEMARK="$TARGET_DIR/release/tidemark"
fi
BUILT_FROM="$("$TIDEMARK" --version 2>/dev/null || echo tidemark)"
if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1 && [ -z "${TIDEMARK_BIN:-}" ]; then
    BUILT_FROM="$BUILT_FROM, built from $(git -C "$REPO" describe --always --dirty 2>/dev/null)"
fi

# ---------------------------------------------------------------- servers ---------
WORK="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/tidemark-bench.XXXXXX")"
SERVER_PIDS=()
cleanup() {
    local pid i
    for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${SERVER_PIDS[@]}"; do
        for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$LOGS" ]; then
        mkdir -p "$LOGS"
        (cd "$WORK" && find . -maxdepth 3 \( -name '*.log' -o -name '*.time' -o -name 'time.txt' \
            -o -name '*.toml' -o -name '*.checksums' -o -name '*.tsv' \) -print0 | xargs -0 -r cp --parents -t "$LOGS") || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

free_port() { # a port nothing listens on
    local p i
    for i in $(seq 1 200); do
        p=$(( 20000 + RANDOM % 40000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
    done
    die "no free port found"
}

SERVER_OPTS=(--innodb-buffer-pool-size=1G --innodb-log-file-size=512M --innodb-flush-log-at-trx-commit=2)

start_server() { # name port server-id [extra mariadbd args]; prints nothing, sets no globals but SERVER_PIDS
    local name=$1 port=$2 id=$3; shift 3
    local dir="$WORK/$name"
    mkdir -p "$dir/tmp"
    "$INSTALL_DB" --no-defaults --datadir="$dir/data" --user=root \
        --auth-root-authentication-method=normal --skip-test-db --tmpdir="$dir/tmp" >"$dir/install.log" 2>&1 \
        || { cat "$dir/install.log" >&2; die "mariadb-install-db failed for the $name server"; }
    "$MARIADBD" --no-defaults --datadir="$dir/data" --user=root --port="$port" \
        --bind-address=127.0.0.1 --socket="$dir/sock" --pid-file="$dir/pid" --tmpdir="$dir/tmp" \
        --log-error="$dir/error.log" --server-id="$id" "${SERVER_OPTS[@]}" "$@" \
        >/dev/null 2>&1 &
    SERVER_PIDS+=($!)
}

wait_ready() { # name port pid
    local i
    for i in $(seq 1 600); do
        if "$MARIADB" --no-defaults -h127.0.0.1 -P"$2" -uroot -e 'SELECT 1' >/dev/null 2>&1; then return 0; fi
        kill -0 "$3" 2>/dev/null || { cat "$WORK/$1/error.log" >&2; die "the $1 server exited"; }
        sleep 0.1
    done
    cat "$WORK/$1/error.log" >&2
    die "the $1 server did not become ready in 60 s"
}

SRC_PORT=$(free_port)
DST_PORT=$(free_port)
while [ "$DST_PORT" = "$SRC_PORT" ]; do DST_PORT=$(free_port); done
log "starting source (127.0.0.1:$SRC_PORT, binlog ROW/FULL) and destination (127.0.0.1:$DST_PORT) in $WORK"
start_server source "$SRC_PORT" 1 --log-bin="$WORK/source/data/binlog" --binlog-format=ROW --binlog-row-image=FULL
SRC_PID=${SERVER_PIDS[-1]}
start_server destination "$DST_PORT" 2
DST_PID=${SERVER_PIDS[-1]}
wait_ready source "$SRC_PORT" "$SRC_PID"
wait_ready destination "$DST_PORT" "$DST_PID"

src_sql() { "$MARIADB" --no-defaults -h127.0.0.1 -P"$SRC_PORT" -uroot -N -B -e "$1"; }
dst_sql() { "$MARIADB" --no-defaults -h127.0.0.1 -P"$DST_PORT" -uroot -N -B -e "$1"; }
CLK_TCK=$(getconf CLK_TCK)
cpu_s() { # CPU seconds (user+system) used so far by a pid
    awk -v hz="$CLK_TCK" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"
}
machine_cpu() { # CPU seconds the whole machine has been busy (all processes, all CPUs)
    awk -v hz="$CLK_TCK" '$1 == "cpu" { print ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat
}
now() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

dirty_pages() { "$MARIADB" --no-defaults -h127.0.0.1 -P"$1" -uroot -N -B -e \
    "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='INNODB_BUFFER_POOL_PAGES_DIRTY'"; }
settle() { # port: flush the server's dirty pages now, so that no run pays for an earlier one
    local i
    "$MARIADB" --no-defaults -h127.0.0.1 -P"$1" -uroot -e 'SET GLOBAL innodb_io_capacity_max = 100000;
        SET GLOBAL innodb_io_capacity = 50000; SET GLOBAL innodb_max_dirty_pages_pct = 0'
    for i in $(seq 1 1200); do
        [ "$(dirty_pages "$1")" -le 16 ] && break
        sleep 0.1
    done
    "$MARIADB" --no-defaults -h127.0.0.1 -P"$1" -uroot -e 'SET GLOBAL innodb_max_dirty_pages_pct = DEFAULT;
        SET GLOBAL innodb_io_capacity = DEFAULT; SET GLOBAL innodb_io_capacity_max = DEFAULT'
}

# ---------------------------------------------------------------- data ------------
SERVER_VERSION=$(src_sql 'SELECT VERSION()')
log "MariaDB $SERVER_VERSION; generating $TABLES sysbench table(s) x $ROWS rows on the source"
src_sql 'CREATE DATABASE sbtest'
SB_THREADS=$(( TABLES < $(nproc) ? TABLES : $(nproc) ))
t0=$(now)
"$SYSBENCH" oltp_read_only --db-driver=mysql --tables="$TABLES" --table-size="$ROWS" \
    --threads="$SB_THREADS" --mysql-host=127.0.0.1 --mysql-port="$SRC_PORT" --mysql-user=root \
    --mysql-db=sbtest prepare >"$WORK/sysbench.log" 2>&1 \
    || { cat "$WORK/sysbench.log" >&2; die "sysbench prepare failed"; }
log "  generated in $(sub "$(now)" "$t0") s"

mapfile -t TABLE_NAMES < <(src_sql "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA='sbtest' ORDER BY TABLE_NAME")
[ "${#TABLE_NAMES[@]}" -eq "$TABLES" ] || die "expected $TABLES tables on the source, found ${#TABLE_NAMES[@]}"
QUALIFIED=$(printf 'sbtest.%s,' "${TABLE_NAMES[@]}"); QUALIFIED=${QUALIFIED%,}
src_sql "ANALYZE TABLE $QUALIFIED" >/dev/null
TOTAL_ROWS=0
RAW_BYTES=0
for t in "${TABLE_NAMES[@]}"; do
    read -r n b < <(src_sql "SELECT COUNT(*), COALESCE(SUM(8 + LENGTH(c) + LENGTH(pad)), 0) FROM sbtest.\`$t\`")
    TOTAL_ROWS=$(( TOTAL_ROWS + n ))
    RAW_BYTES=$(( RAW_BYTES + b ))
done
read -r DATA_BYTES INDEX_BYTES < <(src_sql "SELECT SUM(DATA_LENGTH), SUM(INDEX_LENGTH) FROM information_schema.TABLES WHERE TABLE_SCHEMA='sbtest'")
DATA_MB=$(awk -v b="$DATA_BYTES" 'BEGIN { printf "%.1f", b / 1e6 }')
RAW_MB=$(awk -v b="$RAW_BYTES" 'BEGIN { printf "%.1f", b / 1e6 }')
INDEX_MB=$(awk -v b="$INDEX_BYTES" 'BEGIN { printf "%.1f", b / 1e6 }')
src_sql "CHECKSUM TABLE $QUALIFIED" | sort >"$WORK/source.checksums"
settle "$SRC_PORT"
log "  $TOTAL_ROWS rows; DATA_LENGTH $DATA_MB MB, INDEX_LENGTH $INDEX_MB MB, raw row bytes $RAW_MB MB"

# ---------------------------------------------------------------- helpers ---------
reset_destination() {
    dst_sql 'DROP DATABASE IF EXISTS sbtest'
    settle "$DST_PORT"
}

verify() { # label
    dst_sql "CHECKSUM TABLE $QUALIFIED" | sort >"$RUN_DIR/$1.checksums"
    if ! diff -u "$WORK/source.checksums" "$RUN_DIR/$1.checksums" >&2; then
        die "$1: the destination's CHECKSUM TABLE differs from the source's (diff above: - source, + destination)"
    fi
    ! grep -q $'\tNULL$' "$RUN_DIR/$1.checksums" || die "$1: CHECKSUM TABLE returned NULL"
    log "  $1: CHECKSUM TABLE equal on all ${#TABLE_NAMES[@]} table(s)"
}

time_field() { # file 'field label' -> value after the colon
    sed -n "s/^[[:space:]]*$2: //p" "$1" | head -1
}
rss_mib() { awk -v k="$(time_field "$1" 'Maximum resident set size (kbytes)')" 'BEGIN { printf "%.1f", k / 1024 }'; }
cpu_of() { awk -v u="$(time_field "$1" 'User time (seconds)')" -v s="$(time_field "$1" 'System time (seconds)')" 'BEGIN { printf "%.2f", u + s }'; }

# Results: one line per measured row in $RESULTS, tab-separated:
# round label wall_s client_cpu_s rss_mib src_cpu_s dst_cpu_s other_cpu_s note
# (a label starting with two spaces is a part of the row before it). other_cpu_s is the
# CPU the rest of the machine used meanwhile: > 0.5 s or so means the run was disturbed.
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
record() { # label wall client_cpu rss src_cpu dst_cpu machine_cpu note
    local other
    other=$(awk -v m="$7" -v a="$3" -v b="$5" -v c="$6" 'BEGIN { o = m - a - b - c; printf "%.2f", (o < 0 ? 0 : o) }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ROUND" "$1" "$2" "$3" "$4" "$5" "$6" "$other" "$8" >>"$RESULTS"
}

# Runs a command under /usr/bin/time -v; $1 = time file, $2 = stdout/stderr log.
timed() {
    local tf=$1 lf=$2; shift 2
    "$TIME" -v -o "$tf" "$@" >"$lf" 2>&1
}

# ---------------------------------------------------------------- tidemark --------
run_tidemark() { # label defer(true|false)
    local label=$1 defer=$2 dir="$RUN_DIR/$1"
    local method=""
    [ -z "$LOAD_METHOD" ] || method=$'\n'"load_method = \"$LOAD_METHOD\""
    mkdir -p "$dir"
    cat >"$dir/task.toml" <<EOF
name = "bench"
[source]
url = "mysql://root@127.0.0.1:$SRC_PORT"
tls = "disabled"
[destination]
url = "mysql://root@127.0.0.1:$DST_PORT"
tls = "disabled"
[migration]
types = ["schema", "full"]
[full]
threads = $THREADS
defer_secondary_indexes = $defer$method
[state]
dir = "$dir/state"
[[objects]]
database = "sbtest"
EOF
    reset_destination
    log "$label: tidemark run (threads = $THREADS, defer_secondary_indexes = $defer${LOAD_METHOD:+, load_method = $LOAD_METHOD})"
    local s0 d0 m0 t0 t1
    s0=$(cpu_s "$SRC_PID"); d0=$(cpu_s "$DST_PID"); m0=$(machine_cpu); t0=$(now)
    if ! timed "$dir/time.txt" "$dir/tidemark.log" "$TIDEMARK" run "$dir/task.toml" --no-progress; then
        tail -n 40 "$dir/tidemark.log" >&2
        dst_sql 'SHOW ENGINE INNODB STATUS' | sed 's/\\n/\n/g' >"$dir/innodb-status.log" 2>&1 || true
        sed -n '/LATEST DETECTED DEADLOCK/,/^TRANSACTIONS$/p' "$dir/innodb-status.log" >&2
        die "$label: tidemark run failed (log above; destination's SHOW ENGINE INNODB STATUS saved as innodb-status.log with --logs)"
    fi
    t1=$(now)
    local wall; wall=$(sub "$t1" "$t0")
    log "  $label: $wall s"
    # Phase split from the log: the copy's own line ("... in X s", stamped when the
    # copy ended) splits the run into precheck + schema, copy, and post-load (deferred
    # indexes, triggers).
    local line copy_s copy_end phases="phases: ?"
    line=$(sed 's/\x1b\[[0-9;]*m//g' "$dir/tidemark.log" | grep -E ' in [0-9.]+ s$' | tail -1 || true)
    if [ -n "$line" ]; then
        copy_s=$(sed -n 's/.* in \([0-9.]*\) s$/\1/p' <<<"$line")
        copy_end=$(date -d "$(awk '{ print $1 }' <<<"$line")" +%s.%N)
        phases="precheck+schema $(awk -v e="$copy_end" -v c="$copy_s" -v t="$t0" 'BEGIN { d = e - c - t; printf "%.1f", (d < 0 ? 0 : d) }') s, copy $copy_s s, post-load $(awk -v e="$copy_end" -v t="$t1" 'BEGIN { printf "%.1f", t - e }') s"
    fi
    record "$label" "$wall" "$(cpu_of "$dir/time.txt")" "$(rss_mib "$dir/time.txt")" \
        "$(sub "$(cpu_s "$SRC_PID")" "$s0")" "$(sub "$(cpu_s "$DST_PID")" "$d0")" "$(sub "$(machine_cpu)" "$m0")" "$phases"
    verify "$label"
}

# ---------------------------------------------------------------- mydumper --------
run_mydumper() {
    local dir="$RUN_DIR/mydumper" dump="$RUN_DIR/mydumper/dump"
    mkdir -p "$dir"
    local chunking=() note="no row chunking"
    if [ "$(mydumper --help 2>&1 | grep -c -- '--rows')" -gt 0 ]; then
        chunking=(--rows 50000); note="--rows 50000"
    fi
    reset_destination
    log "mydumper+myloader: --threads $DUMP_THREADS, $note ($(mydumper --version 2>&1 | head -1))"
    local s0 d0 m0 s1 d1 m1 t0 t1 t2
    s0=$(cpu_s "$SRC_PID"); d0=$(cpu_s "$DST_PID"); m0=$(machine_cpu); t0=$(now)
    timed "$dir/mydumper.time" "$dir/mydumper.log" mydumper -h 127.0.0.1 -P "$SRC_PORT" -u root \
        -B sbtest -o "$dump" --threads "$DUMP_THREADS" "${chunking[@]}" \
        || { cat "$dir/mydumper.log" >&2; die "mydumper failed"; }
    t1=$(now); s1=$(cpu_s "$SRC_PID"); d1=$(cpu_s "$DST_PID"); m1=$(machine_cpu)
    timed "$dir/myloader.time" "$dir/myloader.log" myloader -h 127.0.0.1 -P "$DST_PORT" -u root \
        -d "$dump" --threads "$DUMP_THREADS" \
        || { cat "$dir/myloader.log" >&2; die "myloader failed"; }
    t2=$(now)
    local s2 d2 m2; s2=$(cpu_s "$SRC_PID"); d2=$(cpu_s "$DST_PID"); m2=$(machine_cpu)
    local dump_mb; dump_mb=$(du -sm "$dump" | cut -f1)
    log "  mydumper $(sub "$t1" "$t0") s + myloader $(sub "$t2" "$t1") s = $(sub "$t2" "$t0") s (dump $dump_mb MB)"
    local rss_d rss_l
    rss_d=$(rss_mib "$dir/mydumper.time"); rss_l=$(rss_mib "$dir/myloader.time")
    record "mydumper+myloader" "$(sub "$t2" "$t0")" \
        "$(awk -v a="$(cpu_of "$dir/mydumper.time")" -v b="$(cpu_of "$dir/myloader.time")" 'BEGIN { printf "%.2f", a + b }')" \
        "$(awk -v a="$rss_d" -v b="$rss_l" 'BEGIN { printf "%.1f", (a > b ? a : b) }')" \
        "$(sub "$s2" "$s0")" "$(sub "$d2" "$d0")" "$(sub "$m2" "$m0")" "dump $dump_mb MB on disk"
    record "  mydumper" "$(sub "$t1" "$t0")" "$(cpu_of "$dir/mydumper.time")" "$rss_d" \
        "$(sub "$s1" "$s0")" "$(sub "$d1" "$d0")" "$(sub "$m1" "$m0")" "$note"
    record "  myloader" "$(sub "$t2" "$t1")" "$(cpu_of "$dir/myloader.time")" "$rss_l" \
        "$(sub "$s2" "$s1")" "$(sub "$d2" "$d1")" "$(sub "$m2" "$m1")" ""
    rm -rf "$dump"
    verify mydumper
}

# ---------------------------------------------------------------- mariadb-dump ----
run_mariadb_dump() {
    local dir="$RUN_DIR/mariadb-dump"
    mkdir -p "$dir"
    reset_destination
    dst_sql 'CREATE DATABASE sbtest'
    log "mariadb-dump --single-transaction sbtest | mariadb"
    local s0 d0 t0 t1
    s0=$(cpu_s "$SRC_PID"); d0=$(cpu_s "$DST_PID"); m0=$(machine_cpu); t0=$(now)
    if ! "$TIME" -v -o "$dir/dump.time" "$MARIADB_DUMP" --no-defaults -h127.0.0.1 -P"$SRC_PORT" -uroot \
            --single-transaction sbtest 2>"$dir/dump.log" \
        | "$TIME" -v -o "$dir/load.time" "$MARIADB" --no-defaults -h127.0.0.1 -P"$DST_PORT" -uroot sbtest \
            >"$dir/load.log" 2>&1; then
        cat "$dir/dump.log" "$dir/load.log" >&2
        die "mariadb-dump | mariadb failed"
    fi
    t1=$(now)
    log "  mariadb-dump | mariadb: $(sub "$t1" "$t0") s"
    local rss_d rss_l
    rss_d=$(rss_mib "$dir/dump.time"); rss_l=$(rss_mib "$dir/load.time")
    record "mariadb-dump | mariadb" "$(sub "$t1" "$t0")" \
        "$(awk -v a="$(cpu_of "$dir/dump.time")" -v b="$(cpu_of "$dir/load.time")" 'BEGIN { printf "%.2f", a + b }')" \
        "$(awk -v a="$rss_d" -v b="$rss_l" 'BEGIN { printf "%.1f", (a > b ? a : b) }')" \
        "$(sub "$(cpu_s "$SRC_PID")" "$s0")" "$(sub "$(cpu_s "$DST_PID")" "$d0")" "$(sub "$(machine_cpu)" "$m0")" \
        "RSS: dump $rss_d, client $rss_l MiB"
    verify mariadb-dump
}

for ROUND in $(seq 1 "$REPEAT"); do
    RUN_DIR="$WORK/round$ROUND"
    mkdir -p "$RUN_DIR"
    [ "$REPEAT" -eq 1 ] || log "round $ROUND of $REPEAT"
    if want tidemark; then run_tidemark tidemark false; fi
    if want tidemark-defer; then run_tidemark tidemark-defer true; fi
    if want mydumper; then run_mydumper; fi
    if want mariadb-dump; then run_mariadb_dump; fi
done

# ---------------------------------------------------------------- report ----------
# The table: per tool, the round with the median wall time (its parts from the same
# round); peak RSS is the maximum over all rounds.
TABLE_AWK='
BEGIN { FS = "\t" }
{
    r = $1; l = $2
    if (substr(l, 1, 2) != "  ") { parent = l; if (!(l in seen)) { seen[l] = 1; order[++n] = l } }
    else { key = parent SUBSEP l; if (!(key in subseen)) { subseen[key] = 1; subs[parent] = subs[parent] SUBSEP l } }
    k = r SUBSEP l
    wall[k] = $3; cpu[k] = $4; rss[k] = $5; scpu[k] = $6; dcpu[k] = $7; ocpu[k] = $8; note[k] = $9
    if ($5 + 0 > maxrss[l] + 0) maxrss[l] = $5
    if (substr(l, 1, 2) != "  ") { rounds[l] = rounds[l] " " r; all[l] = all[l] (all[l] == "" ? "" : ", ") $3 }
}
function median_round(l,    m, i, j, rr, t) {
    m = split(substr(rounds[l], 2), rr, " ")
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++)
        if (wall[rr[j] SUBSEP l] + 0 < wall[rr[i] SUBSEP l] + 0) { t = rr[i]; rr[i] = rr[j]; rr[j] = t }
    return rr[int((m + 1) / 2)]
}
function esc(s) { gsub(/\|/, "\\|", s); return s }
END {
    for (i = 1; i <= n; i++) {
        l = order[i]; r = median_round(l); k = r SUBSEP l
        printf "| %s | %s | %.0f | %.1f | %s | %s | %s | %s | %s | %s | %s |\n", esc(l), wall[k], rows / wall[k], bytes / 1e6 / wall[k], maxrss[l], cpu[k], scpu[k], dcpu[k], ocpu[k], (repeat > 1 ? all[l] : "-"), note[k]
        m = split(substr(subs[l], 2), ss, SUBSEP)
        for (j = 1; j <= m; j++) {
            sk = r SUBSEP ss[j]
            printf "| ↳ %s | %s | | | %s | %s | %s | %s | %s | | %s |\n", substr(ss[j], 3), wall[sk], maxrss[ss[j]], cpu[sk], scpu[sk], dcpu[sk], ocpu[sk], note[sk]
        }
        med[l] = wall[k]
    }
    print ""
    split("tidemark tidemark-defer", tm, " ")
    nb = split("mydumper+myloader|mariadb-dump | mariadb", base, "|")
    base[2] = base[2] "|" base[3]; nb = 2
    for (a = 1; a <= 2; a++) for (b = 1; b <= nb; b++)
        if ((tm[a] in med) && (base[b] in med))
            printf "- %s / %s time: %.2f\n", tm[a], base[b], med[tm[a]] / med[base[b]]
}'
report() {
    echo "## Full migration: $TABLES table(s) x $ROWS rows (sysbench shape)"
    echo
    echo "MariaDB $SERVER_VERSION, $(nproc) CPU(s), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM;"
    echo "$BUILT_FROM; tidemark threads = $THREADS${LOAD_METHOD:+, load_method = $LOAD_METHOD}; mydumper/myloader --threads $DUMP_THREADS; $REPEAT round(s)."
    echo "Source: $TOTAL_ROWS rows, DATA_LENGTH $DATA_MB MB (MB/s below uses this), INDEX_LENGTH $INDEX_MB MB, raw row bytes $RAW_MB MB."
    echo
    echo "| tool | wall s | rows/s | MB/s | peak RSS MiB | client CPU s | source server CPU s | destination server CPU s | other CPU s | all rounds, s | note |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    awk -v rows="$TOTAL_ROWS" -v bytes="$DATA_BYTES" -v repeat="$REPEAT" "$TABLE_AWK" "$RESULTS"
}
REPORT="$(report)"
echo "$REPORT"
[ -z "$OUT" ] || { mkdir -p "$(dirname "$OUT")"; echo "$REPORT" >"$OUT"; log "results written to $OUT"; }

if [ "$RSS_LIMIT_MB" -gt 0 ]; then
    over=$(awk -F'\t' -v lim="$RSS_LIMIT_MB" '$2 ~ /^tidemark/ && $5 + 0 >= lim + 0 { printf "%s (round %s): %s MiB; ", $2, $1, $5 }' "$RESULTS")
    if [ -n "$over" ]; then
        log "FAIL: tidemark peak RSS not below the limit of $RSS_LIMIT_MB MiB: $over"
        exit 3
    fi
    log "tidemark peak RSS below $RSS_LIMIT_MB MiB in every run"
fi
