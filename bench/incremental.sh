#!/usr/bin/env bash
# Benchmark of the incremental phase (binlog changes applied to the destination):
# tidemark against MariaDB's own replication, serial and parallel, all replaying the same
# sysbench oltp_write_only binlog from the same start position into identical copies of
# the data, each verified with CHECKSUM TABLE against the source.
#
#   bash bench/incremental.sh [--tables N] [--rows N] [--events N] [--threads N] [options]
#
# Options (defaults in brackets):
#   --tables N        sysbench tables [4]
#   --rows N          rows per table [100000]
#   --events N        oltp_write_only transactions run on the source while nothing
#                     replicates; each changes 4 rows (2 updates, 1 delete, 1 insert) [50000]
#   --sb-threads N    sysbench client threads generating those transactions [4]
#   --threads N       tidemark [incremental] threads, and slave_parallel_threads of
#                     mariadb-replica-parallel [4]
#   --batch-rows N    tidemark [incremental] batch_rows [not set: tidemark's default]
#   --tools LIST      comma list of tidemark,mariadb-replica,mariadb-replica-parallel [all]
#   --repeat N        rounds; each round runs every tool once, in the order above, from
#                     the same start position; the table shows each tool's median-time
#                     round (all times listed) [1]
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
# Everything the script starts (three mariadbd, in a temporary directory, on free ports)
# is stopped and removed on exit. Missing tools are installed with apt-get.
set -euo pipefail

TABLES=4
ROWS=100000
EVENTS=50000
SB_THREADS=4
THREADS=4
BATCH_ROWS=""
TOOLS="tidemark,mariadb-replica,mariadb-replica-parallel"
RSS_LIMIT_MB=256
OUT=""
LOGS=""
REPEAT=1

die() { echo "bench: error: $*" >&2; exit 1; }
log() { echo "bench [${SECONDS}s]: $*" >&2; }
usage() { sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --tables) TABLES="${2:?}"; shift 2 ;;
        --rows) ROWS="${2:?}"; shift 2 ;;
        --events) EVENTS="${2:?}"; shift 2 ;;
        --sb-threads) SB_THREADS="${2:?}"; shift 2 ;;
        --threads) THREADS="${2:?}"; shift 2 ;;
        --batch-rows) BATCH_ROWS="${2:?}"; shift 2 ;;
        --tools) TOOLS="${2:?}"; shift 2 ;;
        --rss-limit-mb) RSS_LIMIT_MB="${2:?}"; shift 2 ;;
        --out) OUT="${2:?}"; shift 2 ;;
        --logs) LOGS="${2:?}"; shift 2 ;;
        --repeat) REPEAT="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
for v in TABLES ROWS EVENTS SB_THREADS THREADS RSS_LIMIT_MB REPEAT; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "--$(echo "$v" | tr 'A-Z_' 'a-z-') must be a whole number (got ${!v})"
done
[ -z "$BATCH_ROWS" ] || [[ "$BATCH_ROWS" =~ ^[0-9]+$ ]] || die "--batch-rows must be a whole number (got $BATCH_ROWS)"
[ "$TABLES" -ge 1 ] && [ "$ROWS" -ge 1 ] && [ "$EVENTS" -ge 1 ] && [ "$SB_THREADS" -ge 1 ] \
    && [ "$THREADS" -ge 1 ] && [ "$REPEAT" -ge 1 ] \
    || die "--tables, --rows, --events, --sb-threads, --threads and --repeat must be at least 1"
want() { [[ ",$TOOLS," == *",$1,"* ]]; }
for t in ${TOOLS//,/ }; do
    case "$t" in tidemark|mariadb-replica|mariadb-replica-parallel) ;; *) die "--tools: unknown tool '$t'" ;; esac
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
find_tool mariadb-binlog mysqlbinlog >/dev/null || missing+=(mariadb-server)
find_tool mariadb >/dev/null && find_tool mariadb-dump >/dev/null || missing+=(mariadb-client)
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
MARIADB_BINLOG="$(find_tool mariadb-binlog mysqlbinlog)" || die "mariadb-binlog not found"
SYSBENCH="$(find_tool sysbench)" || die "sysbench not found"
TIME=/usr/bin/time

# ---------------------------------------------------------------- build -----------
if want tidemark; then
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
else
    BUILT_FROM="tidemark not run"
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

start_server() { # name port server-id [extra mariadbd args]; sets no globals but SERVER_PIDS
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
REP_PORT=$(free_port)
while [ "$REP_PORT" = "$SRC_PORT" ] || [ "$REP_PORT" = "$DST_PORT" ]; do REP_PORT=$(free_port); done
log "starting source (127.0.0.1:$SRC_PORT, binlog ROW/FULL), destination (127.0.0.1:$DST_PORT)" \
    "and replica (127.0.0.1:$REP_PORT) in $WORK"
start_server source "$SRC_PORT" 1 --log-bin="$WORK/source/data/binlog" --binlog-format=ROW --binlog-row-image=FULL
SRC_PID=${SERVER_PIDS[-1]}
start_server destination "$DST_PORT" 2
DST_PID=${SERVER_PIDS[-1]}
start_server replica "$REP_PORT" 3 --skip-slave-start --relay-log="$WORK/replica/data/relay"
REP_PID=${SERVER_PIDS[-1]}
wait_ready source "$SRC_PORT" "$SRC_PID"
wait_ready destination "$DST_PORT" "$DST_PID"
wait_ready replica "$REP_PORT" "$REP_PID"

sql_at() { local port=$1; shift; "$MARIADB" --no-defaults -h127.0.0.1 -P"$port" -uroot -N -B -e "$@"; }
src_sql() { sql_at "$SRC_PORT" "$1"; }
dst_sql() { sql_at "$DST_PORT" "$1"; }
rep_sql() { sql_at "$REP_PORT" "$1"; }
CLK_TCK=$(getconf CLK_TCK)
cpu_s() { # CPU seconds (user+system) used so far by a pid
    awk -v hz="$CLK_TCK" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"
}
machine_cpu() { # CPU seconds the whole machine has been busy (all processes, all CPUs)
    awk -v hz="$CLK_TCK" '$1 == "cpu" { print ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat
}
now() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

dirty_pages() { sql_at "$1" \
    "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='INNODB_BUFFER_POOL_PAGES_DIRTY'"; }
settle() { # port: flush the server's dirty pages now, so that no run pays for an earlier one
    local i
    sql_at "$1" 'SET GLOBAL innodb_io_capacity_max = 100000;
        SET GLOBAL innodb_io_capacity = 50000; SET GLOBAL innodb_max_dirty_pages_pct = 0'
    for i in $(seq 1 1200); do
        [ "$(dirty_pages "$1")" -le 16 ] && break
        sleep 0.1
    done
    sql_at "$1" 'SET GLOBAL innodb_max_dirty_pages_pct = DEFAULT;
        SET GLOBAL innodb_io_capacity = DEFAULT; SET GLOBAL innodb_io_capacity_max = DEFAULT'
}

# ---------------------------------------------------------------- data ------------
SERVER_VERSION=$(src_sql 'SELECT VERSION()')
log "MariaDB $SERVER_VERSION; generating $TABLES sysbench table(s) x $ROWS rows on the source"
src_sql 'CREATE DATABASE sbtest'
sb() { # sysbench oltp_write_only against the source: [options...] command
    "$SYSBENCH" oltp_write_only --db-driver=mysql --tables="$TABLES" --table-size="$ROWS" \
        --mysql-host=127.0.0.1 --mysql-port="$SRC_PORT" --mysql-user=root --mysql-db=sbtest "$@"
}
t0=$(now)
sb --threads="$(( TABLES < $(nproc) ? TABLES : $(nproc) ))" prepare >"$WORK/sysbench-prepare.log" 2>&1 \
    || { cat "$WORK/sysbench-prepare.log" >&2; die "sysbench prepare failed"; }
log "  generated in $(sub "$(now)" "$t0") s"

mapfile -t TABLE_NAMES < <(src_sql "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA='sbtest' ORDER BY TABLE_NAME")
[ "${#TABLE_NAMES[@]}" -eq "$TABLES" ] || die "expected $TABLES tables on the source, found ${#TABLE_NAMES[@]}"
QUALIFIED=$(printf 'sbtest.%s,' "${TABLE_NAMES[@]}"); QUALIFIED=${QUALIFIED%,}

# The initial data every applier starts from: a dump of the source taken while nothing
# writes, and the binlog position it corresponds to.
"$MARIADB_DUMP" --no-defaults -h127.0.0.1 -P"$SRC_PORT" -uroot --single-transaction sbtest \
    >"$WORK/initial.sql" 2>"$WORK/dump.log" || { cat "$WORK/dump.log" >&2; die "mariadb-dump failed"; }
src_sql "CHECKSUM TABLE $QUALIFIED" | sort >"$WORK/initial.checksums"
read -r START_FILE START_POS _ < <(src_sql 'SHOW MASTER STATUS')
[ -n "${START_POS:-}" ] || die "SHOW MASTER STATUS on the source returned nothing (is log_bin on?)"
log "  initial dump $(du -m "$WORK/initial.sql" | cut -f1) MB; start position $START_FILE:$START_POS"

# The change workload, applied to the source alone.
log "running $EVENTS oltp_write_only transaction(s) on the source (sysbench --threads=$SB_THREADS)"
t0=$(now)
sb --threads="$SB_THREADS" --events="$EVENTS" --time=0 run >"$WORK/sysbench-run.log" 2>&1 \
    || { cat "$WORK/sysbench-run.log" >&2; die "sysbench run failed"; }
WORKLOAD_S=$(sub "$(now)" "$t0")
read -r END_FILE END_POS _ < <(src_sql 'SHOW MASTER STATUS')
src_sql "CHECKSUM TABLE $QUALIFIED" | sort >"$WORK/source.checksums"
! grep -q $'\tNULL$' "$WORK/source.checksums" || die "CHECKSUM TABLE on the source returned NULL"
! cmp -s "$WORK/initial.checksums" "$WORK/source.checksums" || die "the workload changed nothing on the source"

# Row changes and transactions between the two positions, counted in the binlog itself.
mapfile -t BINLOGS < <(src_sql 'SHOW BINARY LOGS' | awk -v a="$START_FILE" -v b="$END_FILE" '$1 >= a && $1 <= b { print $1 }')
(cd "$WORK/source/data" && "$MARIADB_BINLOG" --no-defaults --base64-output=decode-rows --verbose \
    --start-position="$START_POS" --stop-position="$END_POS" "${BINLOGS[@]}") >"$WORK/binlog.txt" \
    2>"$WORK/binlog.log" || { cat "$WORK/binlog.log" >&2; die "mariadb-binlog failed"; }
ROW_CHANGES=$(grep -cE '^### (INSERT INTO|UPDATE|DELETE FROM) ' "$WORK/binlog.txt" || true)
INSERTS=$(grep -cE '^### INSERT INTO ' "$WORK/binlog.txt" || true)
UPDATES=$(grep -cE '^### UPDATE ' "$WORK/binlog.txt" || true)
DELETES=$(grep -cE '^### DELETE FROM ' "$WORK/binlog.txt" || true)
TRANSACTIONS=$(grep -cE '\sXid = [0-9]+' "$WORK/binlog.txt" || true)
rm -f "$WORK/binlog.txt"
BINLOG_MB=$(awk -v s="$START_POS" -v e="$END_POS" -v n="${#BINLOGS[@]}" \
    'BEGIN { if (n == 1) printf "%.1f", (e - s) / 1e6; else printf "?" }')
[ "$ROW_CHANGES" -gt 0 ] || die "no row events found in the binlog between $START_FILE:$START_POS and $END_FILE:$END_POS"
SOURCE_TPS=$(awk -v n="$TRANSACTIONS" -v s="$WORKLOAD_S" 'BEGIN { printf "%.0f", n / s }')
log "  $WORKLOAD_S s on the source ($SOURCE_TPS transactions/s); end position $END_FILE:$END_POS"
log "  binlog: $TRANSACTIONS transactions, $ROW_CHANGES row changes ($UPDATES updates, $DELETES deletes, $INSERTS inserts), $BINLOG_MB MB"
settle "$SRC_PORT"

# ---------------------------------------------------------------- helpers ---------
reset_copy() { # port label: the initial data on that server, nothing else in sbtest
    sql_at "$1" 'DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest'
    "$MARIADB" --no-defaults -h127.0.0.1 -P"$1" -uroot sbtest <"$WORK/initial.sql" \
        || die "$2: loading the initial dump failed"
    sql_at "$1" "CHECKSUM TABLE $QUALIFIED" | sort >"$RUN_DIR/$2.initial.checksums"
    cmp -s "$WORK/initial.checksums" "$RUN_DIR/$2.initial.checksums" \
        || die "$2: the loaded copy differs from the source's initial data"
    settle "$1"
}

verify() { # port label
    sql_at "$1" "CHECKSUM TABLE $QUALIFIED" | sort >"$RUN_DIR/$2.checksums"
    if ! diff -u "$WORK/source.checksums" "$RUN_DIR/$2.checksums" >&2; then
        die "$2: CHECKSUM TABLE differs from the source's (diff above: - source, + $2)"
    fi
    log "  $2: CHECKSUM TABLE equal to the source's on all ${#TABLE_NAMES[@]} table(s)"
}

time_field() { # file 'field label' -> value after the colon
    sed -n "s/^[[:space:]]*$2: //p" "$1" | head -1
}
rss_mib() { awk -v k="$(time_field "$1" 'Maximum resident set size (kbytes)')" 'BEGIN { printf "%.1f", k / 1024 }'; }
cpu_of() { awk -v u="$(time_field "$1" 'User time (seconds)')" -v s="$(time_field "$1" 'System time (seconds)')" 'BEGIN { printf "%.2f", u + s }'; }

# Results: one line per run in $RESULTS, tab-separated:
# round label applied_s wall_s client_cpu_s rss_mib src_cpu_s apply_server_cpu_s other_cpu_s note
# applied_s: until every change was applied (what the rates use); wall_s: until the
# tool's process exited (tidemark only; the same as applied_s for the replicas).
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
record() { # label applied wall client_cpu rss src_cpu apply_cpu machine_cpu note
    local other
    other=$(awk -v m="$8" -v a="${4/-/0}" -v b="$6" -v c="$7" 'BEGIN { o = m - a - b - c; printf "%.2f", (o < 0 ? 0 : o) }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ROUND" "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$other" "$9" >>"$RESULTS"
}

# ---------------------------------------------------------------- tidemark --------
run_tidemark() {
    local label=tidemark dir="$RUN_DIR/tidemark"
    local batch=""
    [ -z "$BATCH_ROWS" ] || batch=$'\n'"batch_rows = $BATCH_ROWS"
    mkdir -p "$dir"
    cat >"$dir/task.toml" <<EOF
name = "bench-incremental"
[source]
url = "mysql://root@127.0.0.1:$SRC_PORT"
tls = "disabled"
[destination]
url = "mysql://root@127.0.0.1:$DST_PORT"
tls = "disabled"
[migration]
types = ["incremental"]
start_position = "$START_FILE:$START_POS"
[incremental]
threads = $THREADS$batch
[state]
dir = "$dir/state"
[[objects]]
database = "sbtest"
EOF
    reset_copy "$DST_PORT" "$label"
    log "$label: tidemark run --stop-when-caught-up (incremental threads = $THREADS${BATCH_ROWS:+, batch_rows = $BATCH_ROWS})"
    local s0 d0 m0 t0 t1
    s0=$(cpu_s "$SRC_PID"); d0=$(cpu_s "$DST_PID"); m0=$(machine_cpu); t0=$(now)
    if ! "$TIME" -v -o "$dir/time.txt" "$TIDEMARK" run --no-progress --stop-when-caught-up "$dir/task.toml" \
            >"$dir/tidemark.log" 2>&1; then
        tail -n 40 "$dir/tidemark.log" >&2
        dst_sql 'SHOW ENGINE INNODB STATUS' | sed 's/\\n/\n/g' >"$dir/innodb-status.log" 2>&1 || true
        die "$label: tidemark run failed (log above)"
    fi
    t1=$(now)
    local wall; wall=$(sub "$t1" "$t0")
    # From the log's time stamps: startup + precheck (until it starts reading the
    # binlog), and the moment it reported every change applied ("caught up"). The
    # process exits later: it waits for its binlog reader, which only notices the stop
    # when the next event or heartbeat arrives.
    local line startup="" applied="" note
    stamp() { # a log message -> seconds since t0 at its time stamp
        local l
        l=$(sed 's/\x1b\[[0-9;]*m//g' "$dir/tidemark.log" | grep -m1 -- "$1" || true)
        [ -z "$l" ] || awk -v e="$(date -d "$(awk '{ print $1 }' <<<"$l")" +%s.%N)" -v t="$t0" \
            'BEGIN { d = e - t; printf "%.2f", (d < 0 ? 0 : d) }'
    }
    startup=$(stamp 'incremental: reading the binlog from')
    applied=$(stamp 'incremental: caught up at')
    [ -n "$applied" ] || die "$label: no \"caught up\" line in tidemark's log"
    log "  $label: caught up after $applied s, exited after $wall s"
    note="startup+precheck ${startup:-?} s; exit $(sub "$wall" "$applied") s after catching up"
    # tidemark's own count of what it applied, from its state store (when sqlite3 is there).
    if command -v sqlite3 >/dev/null 2>&1 && [ -f "$dir/state/state.db" ]; then
        local counted
        counted=$(sqlite3 "$dir/state/state.db" "SELECT value FROM task WHERE key = 'incremental.applied'" 2>/dev/null || true)
        if [ -n "$counted" ]; then
            note="$note; tidemark counted $(sed -n 's/.*"transactions":\([0-9]*\).*/\1/p' <<<"$counted") transactions, $(sed -n 's/.*"rows_applied":\([0-9]*\).*/\1/p' <<<"$counted") row changes"
        fi
    fi
    record "$label" "$applied" "$wall" "$(cpu_of "$dir/time.txt")" "$(rss_mib "$dir/time.txt")" \
        "$(sub "$(cpu_s "$SRC_PID")" "$s0")" "$(sub "$(cpu_s "$DST_PID")" "$d0")" "$(sub "$(machine_cpu)" "$m0")" "$note"
    verify "$DST_PORT" "$label"
}

# ---------------------------------------------------------------- native replica --
slave_field() { # field name of SHOW SLAVE STATUS on the replica
    "$MARIADB" --no-defaults -h127.0.0.1 -P"$REP_PORT" -uroot -E -e 'SHOW SLAVE STATUS' \
        | sed -n "s/^ *$1: //p" | head -1
}

run_replica() { # label parallel-threads (0 = serial)
    local label=$1 par=$2 dir="$RUN_DIR/$1"
    mkdir -p "$dir"
    rep_sql 'STOP SLAVE; RESET SLAVE ALL' >/dev/null 2>&1 || true
    reset_copy "$REP_PORT" "$label"
    rep_sql "SET GLOBAL gtid_slave_pos = ''; SET GLOBAL slave_parallel_threads = $par;
        SET GLOBAL slave_parallel_mode = 'optimistic';
        CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = $SRC_PORT, MASTER_USER = 'root',
            MASTER_PASSWORD = '', MASTER_LOG_FILE = '$START_FILE', MASTER_LOG_POS = $START_POS,
            MASTER_USE_GTID = no"
    local how="serial SQL thread"
    [ "$par" -eq 0 ] || how="slave_parallel_threads = $par, slave_parallel_mode = optimistic"
    log "$label: START SLAVE from $START_FILE:$START_POS ($how)"
    local s0 r0 m0 t0 t1 got="" waited=0
    s0=$(cpu_s "$SRC_PID"); r0=$(cpu_s "$REP_PID"); m0=$(machine_cpu); t0=$(now)
    rep_sql 'START SLAVE'
    # MASTER_POS_WAIT returns as soon as the SQL thread has executed (committed) every
    # event up to the end position; -1 after its 1 s timeout, NULL when the SQL thread is
    # not running (yet, or after an error).
    while :; do
        got=$(rep_sql "SELECT MASTER_POS_WAIT('$END_FILE', $END_POS, 1)")
        if [[ "$got" =~ ^[0-9]+$ ]]; then break; fi
        local io_err sql_err
        io_err=$(slave_field Last_IO_Errno); sql_err=$(slave_field Last_SQL_Errno)
        if [ "${io_err:-0}" != 0 ] || [ "${sql_err:-0}" != 0 ]; then
            "$MARIADB" --no-defaults -h127.0.0.1 -P"$REP_PORT" -uroot -E -e 'SHOW SLAVE STATUS' >&2 || true
            die "$label: replication stopped with an error (SHOW SLAVE STATUS above)"
        fi
        [ "$got" = "-1" ] || sleep 0.1
        waited=$(( waited + 1 ))
        [ "$waited" -lt 3600 ] || die "$label: the replica did not reach $END_FILE:$END_POS within an hour"
    done
    t1=$(now)
    local r1 s1 m1; r1=$(cpu_s "$REP_PID"); s1=$(cpu_s "$SRC_PID"); m1=$(machine_cpu)
    "$MARIADB" --no-defaults -h127.0.0.1 -P"$REP_PORT" -uroot -E -e 'SHOW SLAVE STATUS' >"$dir/slave-status.log"
    local file pos; file=$(slave_field Relay_Master_Log_File); pos=$(slave_field Exec_Master_Log_Pos)
    [ "$file" = "$END_FILE" ] && [ "$pos" -ge "$END_POS" ] \
        || die "$label: MASTER_POS_WAIT returned but SHOW SLAVE STATUS is at $file:$pos, not $END_FILE:$END_POS"
    local wall; wall=$(sub "$t1" "$t0")
    log "  $label: $wall s (at $file:$pos)"
    record "$label" "$wall" "$wall" "-" "-" "$(sub "$s1" "$s0")" "$(sub "$r1" "$r0")" "$(sub "$m1" "$m0")" "$how"
    verify "$REP_PORT" "$label"
    rep_sql 'STOP SLAVE'
}

for ROUND in $(seq 1 "$REPEAT"); do
    RUN_DIR="$WORK/round$ROUND"
    mkdir -p "$RUN_DIR"
    [ "$REPEAT" -eq 1 ] || log "round $ROUND of $REPEAT"
    if want tidemark; then run_tidemark; fi
    if want mariadb-replica; then run_replica mariadb-replica 0; fi
    if want mariadb-replica-parallel; then run_replica mariadb-replica-parallel "$THREADS"; fi
done

# ---------------------------------------------------------------- report ----------
# The table: per tool, the round with the median applied time; peak RSS is the maximum
# over all rounds.
TABLE_AWK='
BEGIN { FS = "\t" }
{
    r = $1; l = $2
    if (!(l in seen)) { seen[l] = 1; order[++n] = l }
    k = r SUBSEP l
    applied[k] = $3; wall[k] = $4; cpu[k] = $5; scpu[k] = $7; acpu[k] = $8; ocpu[k] = $9; note[k] = $10
    if ($6 != "-" && $6 + 0 > maxrss[l] + 0) maxrss[l] = $6
    rounds[l] = rounds[l] " " r; all[l] = all[l] (all[l] == "" ? "" : ", ") $3
}
function median_round(l,    m, i, j, rr, t) {
    m = split(substr(rounds[l], 2), rr, " ")
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++)
        if (applied[rr[j] SUBSEP l] + 0 < applied[rr[i] SUBSEP l] + 0) { t = rr[i]; rr[i] = rr[j]; rr[j] = t }
    return rr[int((m + 1) / 2)]
}
function speed(base, l) { return (base in med) ? sprintf("%.2f", med[base] / med[l]) : "-" }
END {
    for (i = 1; i <= n; i++) { l = order[i]; med[l] = applied[median_round(l) SUBSEP l] }
    for (i = 1; i <= n; i++) {
        l = order[i]; k = median_round(l) SUBSEP l
        printf "| %s | %s | %.0f | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", l, applied[k], rows / applied[k], txns / applied[k], speed("mariadb-replica", l), speed("mariadb-replica-parallel", l), wall[k], (l in maxrss ? maxrss[l] : "-"), cpu[k], scpu[k], acpu[k], ocpu[k], (repeat > 1 ? all[l] : "-"), note[k]
    }
    print ""
    if ("tidemark" in med)
        for (b = 1; b <= 2; b++) {
            base = (b == 1 ? "mariadb-replica" : "mariadb-replica-parallel")
            if (base in med)
                printf "- tidemark / %s time: **%.2f** (tidemark applies %.2f× as many row changes per second)\n", base, med["tidemark"] / med[base], med[base] / med["tidemark"]
        }
}'
report() {
    echo "## Incremental apply: $TABLES table(s) x $ROWS rows, $EVENTS oltp_write_only transactions"
    echo
    echo "MariaDB $SERVER_VERSION, $(nproc) CPU(s), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM;"
    echo "$BUILT_FROM; tidemark [incremental] threads = $THREADS${BATCH_ROWS:+, batch_rows = $BATCH_ROWS}; $REPEAT round(s)."
    echo "Binlog $START_FILE:$START_POS → $END_FILE:$END_POS ($BINLOG_MB MB): $TRANSACTIONS transactions, $ROW_CHANGES row changes"
    echo "($UPDATES updates, $DELETES deletes, $INSERTS inserts), written by sysbench --threads=$SB_THREADS on the source in $WORKLOAD_S s ($SOURCE_TPS transactions/s)."
    echo
    echo "| tool | applied s | row changes/s | transactions/s | speed vs mariadb-replica | speed vs mariadb-replica-parallel | process wall s | peak RSS MiB | client CPU s | source server CPU s | applying server CPU s | other CPU s | all rounds (applied), s | note |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    awk -v rows="$ROW_CHANGES" -v txns="$TRANSACTIONS" -v repeat="$REPEAT" "$TABLE_AWK" "$RESULTS"
}
REPORT="$(report)"
echo "$REPORT"
[ -z "$OUT" ] || { mkdir -p "$(dirname "$OUT")"; echo "$REPORT" >"$OUT"; log "results written to $OUT"; }

if [ "$RSS_LIMIT_MB" -gt 0 ] && want tidemark; then
    over=$(awk -F'\t' -v lim="$RSS_LIMIT_MB" '$2 == "tidemark" && $6 + 0 >= lim + 0 { printf "round %s: %s MiB; ", $1, $6 }' "$RESULTS")
    if [ -n "$over" ]; then
        log "FAIL: tidemark peak RSS not below the limit of $RSS_LIMIT_MB MiB: $over"
        exit 3
    fi
    log "tidemark peak RSS below $RSS_LIMIT_MB MiB in every run"
fi
