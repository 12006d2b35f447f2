#!/usr/bin/env bash
# Benchmark of the incremental phase (binlog changes applied to the destination), in three
# sections (--sections, default all):
#
#   catchup  tidemark against MariaDB's own replication, serial and parallel, all replaying
#            the same sysbench oltp_write_only binlog from the same start position into
#            identical copies of the data, each verified with CHECKSUM TABLE.
#   decode   decoding only: `tidemark binlog inspect` (--json and text) over the binlog
#            file holding that workload, against `mariadb-binlog --verbose` on the same file.
#   latency  steady state: the appliers run continuously while sysbench writes to the source
#            at a fixed rate (--rate, --latency-seconds); a heartbeat row written on the
#            source every 0.2 s and read on the applying server gives the end-to-end lag.
#
#   bash bench/incremental.sh [--tables N] [--rows N] [--events N] [--threads N] [options]
#
# Options (defaults in brackets):
#   --sections LIST   comma list of catchup,decode,latency [all]
#   --tables N        sysbench tables [4]
#   --rows N          rows per table [100000]
#   --events N        catchup/decode: oltp_write_only transactions run on the source while
#                     nothing replicates; each changes 4 rows (2 updates, 1 delete, 1 insert) [50000]
#   --tx-scale K      every transaction runs K times oltp_write_only's statements: K index
#                     updates, K other updates, K deletes and K inserts, 4K row changes (both
#                     sections; a higher rate of row changes for the same commit rate) [1]
#   --sb-threads N    sysbench client threads generating transactions [4]
#   --threads N       tidemark [incremental] threads, and slave_parallel_threads of
#                     mariadb-replica-parallel [tidemark: not set, its default; replica: 4]
#   --replica-threads N  slave_parallel_threads of mariadb-replica-parallel alone [4]
#   --batch-rows N    tidemark [incremental] batch_rows [not set: tidemark's default]
#   --tools LIST      catchup: comma list of tidemark,mariadb-replica,mariadb-replica-parallel [all]
#   --repeat N        catchup rounds; each round runs every tool once, in the order above, from
#                     the same start position; the table shows each tool's median-time
#                     round (all times listed) [1]
#   --decode-repeat N decode: timed runs of each decoder; the table shows the median [3]
#   --rate N          latency: sysbench --rate, transactions/s [200]
#   --latency-seconds N  latency: sysbench --time of each measurement [30]
#   --latency-tools LIST latency: comma list of tidemark,mariadb-replica,mariadb-replica-parallel
#                     [tidemark,mariadb-replica]
#   --rss-limit-mb N  fail (exit 3, after the results) if a `tidemark run`'s peak RSS is
#                     N MiB or more; 0 = no limit [256]
#   --out FILE        also write the results (markdown) to FILE
#   --logs DIR        keep the tools' logs, /usr/bin/time reports, samples and task files in DIR
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
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TABLES=4
ROWS=100000
EVENTS=50000
SB_THREADS=4
TX_SCALE=1
# tidemark's [incremental] threads (empty: not set, tidemark's default) and the parallel
# replica's slave_parallel_threads.
THREADS=""
REPLICA_THREADS=4
BATCH_ROWS=""
TOOLS="tidemark,mariadb-replica,mariadb-replica-parallel"
RSS_LIMIT_MB=256
OUT=""
LOGS=""
REPEAT=1
SECTIONS="catchup,decode,latency"
DECODE_REPEAT=3
RATE=200
LAT_SECONDS=30
LAT_TOOLS="tidemark,mariadb-replica"
HB_INTERVAL=0.2      # latency: heartbeat written on the source every HB_INTERVAL s
POLL_INTERVAL=0.02   # latency: heartbeat read on the applying server every POLL_INTERVAL s
STATUS_INTERVAL=0.5  # latency: positions (tidemark status / SHOW SLAVE STATUS) every STATUS_INTERVAL s

while [ $# -gt 0 ]; do
    case "$1" in
        --tables) TABLES="${2:?}"; shift 2 ;;
        --rows) ROWS="${2:?}"; shift 2 ;;
        --events) EVENTS="${2:?}"; shift 2 ;;
        --sb-threads) SB_THREADS="${2:?}"; shift 2 ;;
        --threads) THREADS="${2:?}"; REPLICA_THREADS="$2"; shift 2 ;;
        --replica-threads) REPLICA_THREADS="${2:?}"; shift 2 ;;
        --batch-rows) BATCH_ROWS="${2:?}"; shift 2 ;;
        --tools) TOOLS="${2:?}"; shift 2 ;;
        --rss-limit-mb) RSS_LIMIT_MB="${2:?}"; shift 2 ;;
        --out) OUT="${2:?}"; shift 2 ;;
        --logs) LOGS="${2:?}"; shift 2 ;;
        --repeat) REPEAT="${2:?}"; shift 2 ;;
        --sections) SECTIONS="${2:?}"; shift 2 ;;
        --decode-repeat) DECODE_REPEAT="${2:?}"; shift 2 ;;
        --rate) RATE="${2:?}"; shift 2 ;;
        --tx-scale) TX_SCALE="${2:?}"; shift 2 ;;
        --latency-seconds) LAT_SECONDS="${2:?}"; shift 2 ;;
        --latency-tools) LAT_TOOLS="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
whole_numbers TABLES ROWS EVENTS TX_SCALE:--tx-scale SB_THREADS REPLICA_THREADS RSS_LIMIT_MB REPEAT DECODE_REPEAT RATE LAT_SECONDS:--latency-seconds
whole_numbers_or_empty BATCH_ROWS
[ "$TABLES" -ge 1 ] && [ "$ROWS" -ge 1 ] && [ "$EVENTS" -ge 1 ] && [ "$SB_THREADS" -ge 1 ] \
    && [ "$REPLICA_THREADS" -ge 1 ] && { [ -z "$THREADS" ] || [ "$THREADS" -ge 1 ]; } && [ "$REPEAT" -ge 1 ] && [ "$DECODE_REPEAT" -ge 1 ] && [ "$RATE" -ge 1 ] \
    && [ "$LAT_SECONDS" -ge 1 ] && [ "$TX_SCALE" -ge 1 ] \
    || die "--tables, --rows, --events, --sb-threads, --threads, --repeat, --decode-repeat, --rate, --latency-seconds and --tx-scale must be at least 1"
section() { [[ ",$SECTIONS," == *",$1,"* ]]; }
for t in ${SECTIONS//,/ }; do
    case "$t" in catchup|decode|latency) ;; *) die "--sections: unknown section '$t'" ;; esac
done
[ -n "${SECTIONS//,/}" ] || die "--sections: give at least one of catchup,decode,latency"
# want: a catch-up tool that runs; lat_want: a latency tool that runs.
want() { section catchup && [[ ",$TOOLS," == *",$1,"* ]]; }
lat_want() { section latency && [[ ",$LAT_TOOLS," == *",$1,"* ]]; }
for t in ${TOOLS//,/ } ${LAT_TOOLS//,/ }; do
    case "$t" in tidemark|mariadb-replica|mariadb-replica-parallel) ;; *) die "--tools/--latency-tools: unknown tool '$t'" ;; esac
done
# The decode section and the catch-up section need the workload's binlog; the latency
# section makes its own writes.
NEED_WORKLOAD=0
if section catchup || section decode; then NEED_WORKLOAD=1; fi
NEED_TIDEMARK=0
if want tidemark || section decode || lat_want tidemark; then NEED_TIDEMARK=1; fi

LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- tools -----------
need mariadb-server mariadbd mysqld
need mariadb-server mariadb-install-db mysql_install_db
need mariadb-server mariadb-binlog mysqlbinlog
need mariadb-client mariadb
need mariadb-client mariadb-dump
need sysbench sysbench
need jq jq
[ -x /usr/bin/time ] || missing+=(time)
install_missing
find_mariadb
MARIADB_DUMP="$(find_tool mariadb-dump)" || die "mariadb-dump not found"
MARIADB_BINLOG="$(find_tool mariadb-binlog mysqlbinlog)" || die "mariadb-binlog not found"
SYSBENCH="$(find_tool sysbench)" || die "sysbench not found"
JQ="$(find_tool jq)" || die "jq not found"

# ---------------------------------------------------------------- build -----------
if [ "$NEED_TIDEMARK" = 1 ]; then
    build_tidemark
    built_from
else
    BUILT_FROM="tidemark not run"
fi

# ---------------------------------------------------------------- servers ---------
KEEP_NAMES=('*.log' '*.time' 'time.txt' '*.toml' '*.checksums' '*.tsv' '*.txt')
BG_PIDS=()   # the latency section's background loops (they end when $WORK/stop-all exists)
TM_PID=""    # a `tidemark run` in the background (latency section)
cleanup_first() { # before the servers stop: the latency section's processes
    local pid i
    touch "$WORK/stop-all" 2>/dev/null || true
    if [ -n "$TM_PID" ] && kill -0 "$TM_PID" 2>/dev/null; then
        kill -TERM "$TM_PID" 2>/dev/null || true
        for i in $(seq 1 100); do kill -0 "$TM_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$TM_PID" 2>/dev/null || true
    fi
    for pid in "${BG_PIDS[@]}"; do
        for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill "$pid" 2>/dev/null || true
    done
}
make_work bench

take_port SRC_PORT
take_port DST_PORT
take_port REP_PORT
log "starting source (127.0.0.1:$SRC_PORT, binlog ROW/FULL), destination (127.0.0.1:$DST_PORT)" \
    "and replica (127.0.0.1:$REP_PORT) in $WORK"
start_source
start_destination
start_replica
wait_ready source "$SRC_PORT" "$SRC_PID"
wait_ready destination "$DST_PORT" "$DST_PID"
wait_ready replica "$REP_PORT" "$REP_PID"

# ---------------------------------------------------------------- data ------------
SERVER_VERSION=$(src_sql 'SELECT VERSION()')
log "MariaDB $SERVER_VERSION; generating $TABLES sysbench table(s) x $ROWS rows on the source"
src_sql 'CREATE DATABASE sbtest'
# oltp_write_only's statements per transaction (--tx-scale).
TX_MIX=(--index_updates="$TX_SCALE" --non_index_updates="$TX_SCALE" --delete_inserts="$TX_SCALE")
sb() { # sysbench oltp_write_only against the source: [options...] command
    "$SYSBENCH" oltp_write_only --db-driver=mysql --tables="$TABLES" --table-size="$ROWS" "${TX_MIX[@]}" \
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
# A new binlog file, so that the workload's file holds the workload alone (the decode
# section decodes whole files). Nothing writes: the dump is at the new file's start.
t0=$(now)
flush_binlogs
log "  binlog rotated (its checkpoint event written after $(sub "$(now)" "$t0") s)"
read -r START_FILE START_POS _ < <(src_sql 'SHOW MASTER STATUS')
[ -n "${START_POS:-}" ] || die "SHOW MASTER STATUS on the source returned nothing (is log_bin on?)"
log "  initial dump $(du -m "$WORK/initial.sql" | cut -f1) MB; start position $START_FILE:$START_POS"

SRC_STATE=initial   # the source's data: the initial dump's (initial), or after the workload (end)
if [ "$NEED_WORKLOAD" = 1 ]; then
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
    count_binlog_range
    SOURCE_TPS=$(awk -v n="$TRANSACTIONS" -v s="$WORKLOAD_S" 'BEGIN { printf "%.0f", n / s }')
    log "  $WORKLOAD_S s on the source ($SOURCE_TPS transactions/s); end position $END_FILE:$END_POS"
    log "  binlog: $TRANSACTIONS transactions, $ROW_CHANGES row changes ($UPDATES updates, $DELETES deletes, $INSERTS inserts), $BINLOG_MB MB"
    settle "$SRC_PORT"
    SRC_STATE=end
fi

# ---------------------------------------------------------------- helpers ---------
reset_copy() { # port label [dump checksums]: the initial data (or that dump) on that server, nothing else in sbtest
    local dump=${3:-$WORK/initial.sql} sums=${4:-$WORK/initial.checksums}
    sql_at "$1" 'DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest'
    "$MARIADB" --no-defaults -h127.0.0.1 -P"$1" -uroot sbtest <"$dump" \
        || die "$2: loading the dump failed"
    sql_at "$1" "CHECKSUM TABLE $QUALIFIED" | sort >"$RUN_DIR/$2.initial.checksums"
    cmp -s "$sums" "$RUN_DIR/$2.initial.checksums" \
        || die "$2: the loaded copy differs from the source's data"
    # Both applying servers, not only this one: the other one's dirty pages from its own
    # run would otherwise be flushed while this one applies.
    settle "$DST_PORT"; settle "$REP_PORT"
}

verify() { # port label
    sql_at "$1" "CHECKSUM TABLE $QUALIFIED" | sort >"$RUN_DIR/$2.checksums"
    if ! diff -u "$WORK/source.checksums" "$RUN_DIR/$2.checksums" >&2; then
        die "$2: CHECKSUM TABLE differs from the source's (diff above: - source, + $2)"
    fi
    log "  $2: CHECKSUM TABLE equal to the source's on all ${#TABLE_NAMES[@]} table(s)"
}

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
    local settings=""
    [ -z "$THREADS" ] || settings+=$'\n'"threads = $THREADS"
    [ -z "$BATCH_ROWS" ] || settings+=$'\n'"batch_rows = $BATCH_ROWS"
    mkdir -p "$dir"
    { mysql_task_header bench-incremental; cat <<EOF
[migration]
types = ["incremental"]
start_position = "$START_FILE:$START_POS"
[incremental]$settings
[state]
dir = "$dir/state"
[[objects]]
database = "sbtest"
EOF
    } >"$dir/task.toml"
    reset_copy "$DST_PORT" "$label"
    log "$label: tidemark run --stop-when-caught-up (incremental threads = ${THREADS:-default}${BATCH_ROWS:+, batch_rows = $BATCH_ROWS})"
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
    startup=$(log_stamp "$dir/tidemark.log" 'incremental: reading the binlog from' "$t0")
    applied=$(log_stamp "$dir/tidemark.log" 'incremental: caught up at' "$t0")
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
    local s0 r0 m0 t0 t1
    s0=$(cpu_s "$SRC_PID"); r0=$(cpu_s "$REP_PID"); m0=$(machine_cpu); t0=$(now)
    rep_sql 'START SLAVE'
    wait_replica "$label" "$END_FILE" "$END_POS"
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

DST_STATE=""   # what the destination / the replica hold: "" (unknown), initial or end
REP_STATE=""
for ROUND in $(seq 1 "$REPEAT"); do
    section catchup || break
    RUN_DIR="$WORK/round$ROUND"
    mkdir -p "$RUN_DIR"
    [ "$REPEAT" -eq 1 ] || log "round $ROUND of $REPEAT"
    if want tidemark; then run_tidemark; fi
    if want mariadb-replica; then run_replica mariadb-replica 0; fi
    if want mariadb-replica-parallel; then run_replica mariadb-replica-parallel "$REPLICA_THREADS"; fi
    if want tidemark; then DST_STATE=end; fi
    if want mariadb-replica || want mariadb-replica-parallel; then REP_STATE=end; fi
done

# ---------------------------------------------------------------- decode ----------
# Percentiles of numbers, one a line on stdin -> "p50 p95 p99 max count" (nearest rank),
# or "- - - - 0" when there are none.
pctl() {
    sort -g | awk '{ v[NR] = $1 }
        function at(p,    r) { r = p * NR; r = (r > int(r)) ? int(r) + 1 : int(r); return v[r < 1 ? 1 : r] }
        END { if (NR == 0) { print "- - - - 0"; exit } printf "%.0f %.0f %.0f %.0f %d\n", at(0.50), at(0.95), at(0.99), v[NR], NR }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

# Results: one line per timed run in $DECODE_RESULTS, tab-separated:
# decoder run wall_s cpu_s rss_mib other_cpu_s
DECODE_RESULTS="$WORK/decode/results.tsv"
run_decode() {
    local dir="$WORK/decode" cur p f
    mkdir -p "$dir"
    : >"$DECODE_RESULTS"
    # Close the workload's file so that every decoder reads the same, complete file(s).
    cur=$(src_sql 'SHOW MASTER STATUS' | cut -f1)
    if [[ ! "$cur" > "$END_FILE" ]]; then flush_binlogs; fi
    DECODE_FILES=("${BINLOGS[@]}")
    DECODE_PATHS=()
    DECODE_BYTES=0
    for f in "${DECODE_FILES[@]}"; do
        p="$WORK/source/data/$f"
        DECODE_PATHS+=("$p")
        DECODE_BYTES=$(( DECODE_BYTES + $(stat -c %s "$p") ))
    done
    log "decode: ${DECODE_FILES[*]} ($(awk -v b="$DECODE_BYTES" 'BEGIN { printf "%.1f", b / 1e6 }') MB)"
    # An untimed pass first (the file is then in the page cache for every timed run):
    # the events (lines of --json), and how many of them are rows events.
    read -r DECODE_EVENTS DECODE_ROWS_EVENTS < <(
        for p in "${DECODE_PATHS[@]}"; do
            "$TIDEMARK" binlog inspect --json "$p" || echo "INSPECT FAILED"
        done | awk '/^INSPECT FAILED$/ { bad = 1 } { n++ } /"event":"rows"/ { r++ } END { print (bad ? -1 : n), r + 0 }')
    [ "$DECODE_EVENTS" -gt 0 ] || die "decode: tidemark binlog inspect --json failed on ${DECODE_FILES[*]}"
    log "  $DECODE_EVENTS events ($DECODE_ROWS_EVENTS rows events) in tidemark's --json output"
    local run name m0 t0 t1 wall
    for run in $(seq 1 "$DECODE_REPEAT"); do
        for name in tidemark-json tidemark-text mariadb-binlog-verbose mariadb-binlog-decode-rows; do
            local cmd=()
            case "$name" in
                tidemark-json) cmd=(bash -c 'for f in "${@:2}"; do "$1" binlog inspect --json "$f" || exit; done' _ "$TIDEMARK" "${DECODE_PATHS[@]}") ;;
                tidemark-text) cmd=(bash -c 'for f in "${@:2}"; do "$1" binlog inspect "$f" || exit; done' _ "$TIDEMARK" "${DECODE_PATHS[@]}") ;;
                mariadb-binlog-verbose) cmd=("$MARIADB_BINLOG" --no-defaults --verbose "${DECODE_PATHS[@]}") ;;
                mariadb-binlog-decode-rows) cmd=("$MARIADB_BINLOG" --no-defaults --base64-output=decode-rows --verbose "${DECODE_PATHS[@]}") ;;
            esac
            m0=$(machine_cpu); t0=$(now)
            "$TIME" -v -o "$dir/$name.$run.time" "${cmd[@]}" >/dev/null 2>"$dir/$name.$run.log" \
                || { cat "$dir/$name.$run.log" >&2; die "decode: $name failed"; }
            t1=$(now)
            wall=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')
            local cpu; cpu=$(cpu_of "$dir/$name.$run.time")
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$run" "$wall" "$cpu" "$(rss_mib "$dir/$name.$run.time")" \
                "$(awk -v m="$(sub "$(machine_cpu)" "$m0")" -v c="$cpu" 'BEGIN { o = m - c; printf "%.2f", (o < 0 ? 0 : o) }')" >>"$DECODE_RESULTS"
            log "  run $run: $name $wall s"
        done
    done
}
if section decode; then run_decode; fi

# ---------------------------------------------------------------- latency ---------
LAT_DIR="$WORK/latency"
LAT_QUALIFIED="$QUALIFIED,sbtest.bench_heartbeat"
# Results: one line per tool in $LAT_RESULTS, tab-separated (see lat_record).
LAT_RESULTS="$LAT_DIR/results.tsv"

running() { [ ! -e "$1" ] && [ ! -e "$WORK/stop-all" ]; } # stop-file: whether a loop goes on
com_commit() { # port: the server's COMMIT statements so far
    sql_at "$1" "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'COM_COMMIT'"
}

# The heartbeat: one row on the source, set to NOW(6) every HB_INTERVAL s over one
# connection; each write's value is read back and logged (UNIX_TIMESTAMP, a line each).
hb_writer() { # stop-file out-file
    while running "$1"; do
        echo "INSERT INTO bench_heartbeat (id, ts) VALUES (1, NOW(6)) ON DUPLICATE KEY UPDATE ts = VALUES(ts);"
        echo "SELECT UNIX_TIMESTAMP(ts) FROM bench_heartbeat WHERE id = 1;"
        sleep "$HB_INTERVAL"
    done | "$MARIADB" --no-defaults -h127.0.0.1 -P"$SRC_PORT" -uroot -N -B --unbuffered sbtest >"$2"
}
# The applying server's view of it every POLL_INTERVAL s, over one connection: its clock
# and the heartbeat it has (both UNIX_TIMESTAMP; all servers run on this machine's clock).
hb_reader() { # port stop-file out-file
    while running "$2"; do
        echo "SELECT UNIX_TIMESTAMP(NOW(6)), UNIX_TIMESTAMP(ts) FROM bench_heartbeat WHERE id = 1;"
        sleep "$POLL_INTERVAL"
    done | "$MARIADB" --no-defaults -h127.0.0.1 -P"$1" -uroot -N -B --unbuffered sbtest >"$3"
}
# Positions every STATUS_INTERVAL s, a line each: time, the applier's file, offset and own
# lag figure (tidemark: incremental.latency_seconds; replica: Seconds_Behind_Master), then
# the source's SHOW MASTER STATUS file and position. The source is read first: what it
# had logged then and the applier had not applied when read just after is certainly lag
# (reading `tidemark status` takes longer than SHOW SLAVE STATUS; this order does not
# count that time against it).
status_poller() { # kind(tidemark|replica) stop-file out-file [task.toml]
    local t f o l mf mp st
    while running "$2"; do
        t=$(now)
        f=""; o=""; l=""; mf=""; mp=""
        read -r mf mp _ < <(src_sql 'SHOW MASTER STATUS' 2>>"$3.err") || true
        if [ "$1" = tidemark ]; then
            if st=$("$TIDEMARK" status --json "$4" 2>>"$3.err"); then
                IFS=$'\t' read -r f o l < <("$JQ" -r '[.incremental.position.file // "", .incremental.position.offset // "", .incremental.latency_seconds // ""] | @tsv' <<<"$st" 2>>"$3.err") || true
            fi
        else
            IFS=$'\t' read -r f o l < <("$MARIADB" --no-defaults -h127.0.0.1 -P"$REP_PORT" -uroot -E -e 'SHOW SLAVE STATUS' 2>>"$3.err" \
                | awk '{ sub(/^[ \t]+/, "") } /^Relay_Master_Log_File: / { f = $2 } /^Exec_Master_Log_Pos: / { p = $2 } /^Seconds_Behind_Master: / { b = $2 }
                       END { print f "\t" p "\t" b }') || true
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$f" "$o" "$l" "$mf" "$mp" >>"$3"
        sleep "$STATUS_INTERVAL"
    done
}

lat_setup() {
    mkdir -p "$LAT_DIR"
    RUN_DIR="$LAT_DIR"
    : >"$LAT_RESULTS"
    local replicas=0
    if lat_want mariadb-replica || lat_want mariadb-replica-parallel; then replicas=1; fi
    [ "$replicas" = 0 ] || rep_sql 'STOP SLAVE; RESET SLAVE ALL' >/dev/null 2>&1 || true
    # Every applying server starts with the source's data: the copies the catch-up
    # section left (verified), or a dump loaded now.
    local dump="$WORK/initial.sql" sums="$WORK/initial.checksums"
    if [ "$SRC_STATE" = end ]; then dump="$WORK/current.sql"; sums="$WORK/source.checksums"; fi
    ensure() { # port label state
        [ "$3" != "$SRC_STATE" ] || return 0
        if [ "$SRC_STATE" = end ] && [ ! -f "$dump" ]; then
            "$MARIADB_DUMP" --no-defaults -h127.0.0.1 -P"$SRC_PORT" -uroot --single-transaction sbtest \
                >"$dump" 2>"$WORK/dump-current.log" || { cat "$WORK/dump-current.log" >&2; die "mariadb-dump failed"; }
        fi
        log "latency: loading the source's data into the $2"
        reset_copy "$1" "$2" "$dump" "$sums"
    }
    if lat_want tidemark; then ensure "$DST_PORT" destination "$DST_STATE"; DST_STATE=$SRC_STATE; fi
    if [ "$replicas" = 1 ]; then ensure "$REP_PORT" replica "$REP_STATE"; REP_STATE=$SRC_STATE; fi
    # The heartbeat table, the same on every server before anything replicates.
    local hb="DROP TABLE IF EXISTS sbtest.bench_heartbeat;
        CREATE TABLE sbtest.bench_heartbeat (id INT PRIMARY KEY, ts TIMESTAMP(6) NOT NULL) ENGINE = InnoDB;
        INSERT INTO sbtest.bench_heartbeat VALUES (1, '2000-01-01 00:00:00')"
    src_sql "$hb"
    if lat_want tidemark; then dst_sql "$hb"; fi
    if [ "$replicas" = 1 ]; then rep_sql "$hb"; fi
    read -r LAT_FILE LAT_POS _ < <(src_sql 'SHOW MASTER STATUS')
    src_sql "CHECKSUM TABLE $LAT_QUALIFIED" | sort >"$LAT_DIR/start.checksums"
    if lat_want tidemark; then
        dst_sql "CHECKSUM TABLE $LAT_QUALIFIED" | sort | cmp -s - "$LAT_DIR/start.checksums" \
            || die "latency: the destination differs from the source before the start"
    fi
    if [ "$replicas" = 1 ]; then
        rep_sql "CHECKSUM TABLE $LAT_QUALIFIED" | sort | cmp -s - "$LAT_DIR/start.checksums" \
            || die "latency: the replica differs from the source before the start"
        rep_sql "SET GLOBAL gtid_slave_pos = '';
            CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = $SRC_PORT, MASTER_USER = 'root',
                MASTER_PASSWORD = '', MASTER_LOG_FILE = '$LAT_FILE', MASTER_LOG_POS = $LAT_POS,
                MASTER_USE_GTID = no"
    fi
    log "latency: every applier starts at $LAT_FILE:$LAT_POS; sysbench --rate=$RATE --time=$LAT_SECONDS (--threads=$SB_THREADS) for each"
}

verify_lat() { # port label: CHECKSUM TABLE (the sysbench tables and the heartbeat) equal to the source's now
    src_sql "CHECKSUM TABLE $LAT_QUALIFIED" | sort >"$LAT_DIR/$2.source.checksums"
    sql_at "$1" "CHECKSUM TABLE $LAT_QUALIFIED" | sort >"$LAT_DIR/$2.checksums"
    if ! diff -u "$LAT_DIR/$2.source.checksums" "$LAT_DIR/$2.checksums" >&2; then
        die "latency: $2: CHECKSUM TABLE differs from the source's (diff above: - source, + $2)"
    fi
    log "  $2: CHECKSUM TABLE equal to the source's on all $(( ${#TABLE_NAMES[@]} + 1 )) table(s)"
}

# One measurement, the applier already running: heartbeat and pollers start, sysbench
# writes at the fixed rate for LAT_SECONDS, the heartbeat stops, and the pollers go on
# until the applying server has the last heartbeat. Sets LAT_T0/LAT_T1 (sysbench's run)
# and the CPU used in between: LAT_TOOL_CPU, LAT_APPLY_CPU, LAT_SRC_CPU, LAT_MACHINE_CPU.
measure_latency() { # label dir kind(tidemark|replica) apply-port apply-server-pid [tool-pid task.toml]
    local label=$1 dir=$2 kind=$3 port=$4 apid=$5 tpid=${6:-} task=${7:-}
    local pids=() p i
    rm -f "$dir/hb.stop" "$dir/poll.stop"
    hb_reader "$port" "$dir/poll.stop" "$dir/heartbeat-seen.tsv" & pids+=($!)
    status_poller "$kind" "$dir/poll.stop" "$dir/positions.tsv" "$task" & pids+=($!)
    hb_writer "$dir/hb.stop" "$dir/heartbeat-written.txt" & local hbw=$!
    BG_PIDS+=("${pids[@]}" "$hbw")
    sleep 1
    local s0 a0 m0 c0=0 sc0 ac0
    sc0=$(com_commit "$SRC_PORT"); ac0=$(com_commit "$port")
    s0=$(cpu_s "$SRC_PID"); a0=$(cpu_s "$apid"); m0=$(machine_cpu)
    [ -z "$tpid" ] || c0=$(cpu_s "$tpid")
    LAT_T0=$(now)
    "$TIME" -v -o "$dir/sysbench.time" "$SYSBENCH" oltp_write_only --db-driver=mysql --tables="$TABLES" --table-size="$ROWS" "${TX_MIX[@]}" \
        --mysql-host=127.0.0.1 --mysql-port="$SRC_PORT" --mysql-user=root --mysql-db=sbtest \
        --threads="$SB_THREADS" --rate="$RATE" --time="$LAT_SECONDS" --events=0 --percentile=95 run \
        >"$dir/sysbench.log" 2>&1 || { cat "$dir/sysbench.log" >&2; die "latency: $label: sysbench run failed"; }
    LAT_T1=$(now)
    LAT_SRC_CPU=$(sub "$(cpu_s "$SRC_PID")" "$s0"); LAT_APPLY_CPU=$(sub "$(cpu_s "$apid")" "$a0")
    LAT_MACHINE_CPU=$(sub "$(machine_cpu)" "$m0")
    LAT_SRC_COMMITS=$(( $(com_commit "$SRC_PORT") - sc0 )); LAT_APPLY_COMMITS=$(( $(com_commit "$port") - ac0 ))
    LAT_TOOL_CPU="-"
    [ -z "$tpid" ] || LAT_TOOL_CPU=$(sub "$(cpu_s "$tpid")" "$c0")
    touch "$dir/hb.stop"
    wait "$hbw" || true
    # Drain: until the applying server shows the last heartbeat written.
    local last; last=$(tail -n 1 "$dir/heartbeat-written.txt")
    for i in $(seq 1 600); do
        awk -v w="$last" '{ s = $2 } END { exit !(s != "" && s + 0 >= w - 1e-7) }' "$dir/heartbeat-seen.tsv" && break
        [ "$i" -lt 600 ] || die "latency: $label: the last heartbeat ($last) did not arrive within 60 s"
        [ -z "$tpid" ] || kill -0 "$tpid" 2>/dev/null || { tail -n 30 "$dir/tidemark.log" >&2; die "latency: $label: tidemark exited"; }
        sleep 0.1
    done
    touch "$dir/poll.stop"
    for p in "${pids[@]}"; do wait "$p" || true; done
}

# Lag figures from the samples of one measurement -> one line in $LAT_RESULTS.
lat_record() { # label dir note
    local label=$1 dir=$2 note=$3
    # Visibility delay of each heartbeat written during sysbench's run: the first read on
    # the applying server that has it (or a later one), minus its source time.
    local d a st
    read -r d < <(awk -v t0="$LAT_T0" -v t1="$LAT_T1" -v miss="$dir/missing.txt" '
        FNR == NR { if ($1 >= t0 && $1 <= t1) w[++n] = $1; next }
        { while (i < n && w[i + 1] <= $2 + 1e-7) { i++; printf "%.3f\n", ($1 - w[i]) * 1000 } }
        END { print n - i > miss }' "$dir/heartbeat-written.txt" "$dir/heartbeat-seen.tsv" | tee "$dir/delays-ms.txt" | pctl)
    # Heartbeat age at each read during the run: read time minus the heartbeat's source time.
    read -r a < <(awk -v t0="$LAT_T0" -v t1="$LAT_T1" '$1 >= t0 && $1 <= t1 && $2 > 1000000000 { printf "%.3f\n", ($1 - $2) * 1000 }' \
        "$dir/heartbeat-seen.tsv" | tee "$dir/ages-ms.txt" | pctl)
    # Positions: samples, unreadable ones, samples behind the source, bytes behind (same
    # file), and the applier's own figure in ms.
    local counts bytes own
    counts=$(awk -F'\t' -v t0="$LAT_T0" -v t1="$LAT_T1" -v bf="$dir/bytes-behind.txt" -v lf="$dir/own-lag-ms.txt" '
        $1 < t0 || $1 > t1 { next }
        { n++ }
        $2 == "" || $3 == "" || $5 == "" { bad++; next }
        { behind = ($5 > $2 || ($5 == $2 && $6 + 0 > $3 + 0)); b += behind
          if ($5 == $2) print ($6 - $3 > 0 ? $6 - $3 : 0) > bf
          if ($4 != "" && $4 != "NULL") printf "%.0f\n", $4 * 1000 > lf }
        END { printf "%d %d %d\n", n, bad, b }' "$dir/positions.tsv")
    touch "$dir/bytes-behind.txt" "$dir/own-lag-ms.txt"
    bytes=$(pctl <"$dir/bytes-behind.txt"); own=$(pctl <"$dir/own-lag-ms.txt")
    local tps p95 sbcpu other
    tps=$(sed -n 's/^ *transactions: *[0-9]* *(\([0-9.]*\) per sec.*/\1/p' "$dir/sysbench.log" | head -1)
    p95=$(sed -n 's/^ *95th percentile: *\([0-9.]*\).*/\1/p' "$dir/sysbench.log" | head -1)
    sbcpu=$(cpu_of "$dir/sysbench.time")
    other=$(awk -v m="$LAT_MACHINE_CPU" -v a="${LAT_TOOL_CPU/-/0}" -v b="$LAT_APPLY_CPU" -v c="$LAT_SRC_CPU" -v d="$sbcpu" \
        'BEGIN { o = m - a - b - c - d; printf "%.2f", (o < 0 ? 0 : o) }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$d" "$(cat "$dir/missing.txt")" "$a" \
        "$counts" "$bytes" "$own" "${tps:-?}" "${p95:-?}" "$LAT_TOOL_CPU" "$LAT_APPLY_CPU" "$LAT_SRC_CPU" "$sbcpu" "$other" \
        "${LAT_RSS:--}" "$note" >>"$LAT_RESULTS"
    log "  $label: heartbeat visibility delay p50/p95/p99/max/n = $d ms; age $a ms; positions n/unreadable/behind = $counts"
}

run_latency_tidemark() {
    local label=tidemark dir="$LAT_DIR/tidemark"
    local settings=""
    [ -z "$THREADS" ] || settings+=$'\n'"threads = $THREADS"
    [ -z "$BATCH_ROWS" ] || settings+=$'\n'"batch_rows = $BATCH_ROWS"
    mkdir -p "$dir"
    { mysql_task_header bench-latency; cat <<EOT
[migration]
types = ["incremental"]
start_position = "$LAT_FILE:$LAT_POS"
[incremental]$settings
[state]
dir = "$dir/state"
[[objects]]
database = "sbtest"
EOT
    } >"$dir/task.toml"
    log "latency: $label: tidemark run --no-progress in the background (incremental threads = ${THREADS:-default}${BATCH_ROWS:+, batch_rows = $BATCH_ROWS})"
    "$TIDEMARK" run --no-progress "$dir/task.toml" >"$dir/tidemark.log" 2>&1 &
    TM_PID=$!
    local i
    for i in $(seq 1 600); do
        grep -q 'incremental: reading the binlog from' "$dir/tidemark.log" && break
        kill -0 "$TM_PID" 2>/dev/null || { cat "$dir/tidemark.log" >&2; die "latency: tidemark run exited at startup"; }
        [ "$i" -lt 600 ] || die "latency: tidemark did not start reading the binlog within 60 s"
        sleep 0.1
    done
    measure_latency "$label" "$dir" tidemark "$DST_PORT" "$DST_PID" "$TM_PID" "$dir/task.toml"
    # Everything applied (the last heartbeat is the source's last write): tidemark's
    # recorded position should be the source's.
    local mf mp tf to
    read -r mf mp _ < <(src_sql 'SHOW MASTER STATUS')
    for i in $(seq 1 100); do
        IFS=$'\t' read -r tf to < <("$TIDEMARK" status --json "$dir/task.toml" 2>/dev/null \
            | "$JQ" -r '[.incremental.position.file // "", .incremental.position.offset // ""] | @tsv') || true
        [ "$tf:$to" = "$mf:$mp" ] && break
        sleep 0.1
    done
    local pos_note="status position $tf:$to = source $mf:$mp"
    [ "$tf:$to" = "$mf:$mp" ] || pos_note="status position $tf:$to, source at $mf:$mp 10 s after the last heartbeat arrived"
    LAT_RSS=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$TM_PID/status")
    local t0 rc=0 stop_s noticed
    t0=$(now)
    kill -TERM "$TM_PID"
    for i in $(seq 1 300); do kill -0 "$TM_PID" 2>/dev/null || break; sleep 0.05; done
    kill -0 "$TM_PID" 2>/dev/null && { kill -9 "$TM_PID"; die "latency: tidemark did not exit within 15 s of SIGTERM"; }
    wait "$TM_PID" || rc=$?
    TM_PID=""
    stop_s=$(sub "$(now)" "$t0")
    [ "$rc" = 0 ] || { tail -n 30 "$dir/tidemark.log" >&2; die "latency: tidemark exited with status $rc after SIGTERM"; }
    local l; l=$(sed 's/\x1b\[[0-9;]*m//g' "$dir/tidemark.log" | grep -m1 'incremental: stopped at' || true)
    [ -n "$l" ] || die "latency: no \"stopped at\" line in tidemark's log after SIGTERM"
    noticed=$(awk -v e="$(date -d "$(awk '{ print $1 }' <<<"$l")" +%s.%N)" -v t="$t0" 'BEGIN { printf "%.2f", e - t }')
    log "  $label: logged \"stopped at\" $noticed s and exited (status 0) $stop_s s after SIGTERM; $pos_note"
    local errs=""
    [ ! -s "$dir/positions.tsv.err" ] || errs="; tidemark status failed $(grep -c . "$dir/positions.tsv.err") time(s): $(head -c 200 "$dir/positions.tsv.err" | tr '\n\t' '  ')"
    local commits
    commits=$(awk -v a="$LAT_APPLY_COMMITS" -v s="$LAT_SRC_COMMITS" 'BEGIN { printf "%d COMMIT statements on the destination for %d on the source (%.2f each)", a, s, (s ? a / s : 0) }')
    lat_record "$label" "$dir" "SIGTERM: \"stopped at\" logged after $noticed s, exit status 0 after ${stop_s} s; $pos_note; during the run $commits$errs"
    LAT_RSS=""
    verify_lat "$DST_PORT" "$label"
}

run_latency_replica() { # label parallel-threads (0 = serial)
    local label=$1 par=$2 dir="$LAT_DIR/$1"
    mkdir -p "$dir"
    rep_sql 'STOP SLAVE' >/dev/null 2>&1 || true
    rep_sql "SET GLOBAL slave_parallel_threads = $par; SET GLOBAL slave_parallel_mode = 'optimistic'"
    local how="serial SQL thread"
    [ "$par" -eq 0 ] || how="slave_parallel_threads = $par, slave_parallel_mode = optimistic"
    rep_sql 'START SLAVE'
    # It first catches up with what the source logged since it last ran.
    local mf mp
    read -r mf mp _ < <(src_sql 'SHOW MASTER STATUS')
    log "latency: $label: START SLAVE ($how), catching up to $mf:$mp"
    wait_replica "$label" "$mf" "$mp"
    measure_latency "$label" "$dir" replica "$REP_PORT" "$REP_PID"
    read -r mf mp _ < <(src_sql 'SHOW MASTER STATUS')
    wait_replica "$label" "$mf" "$mp"
    lat_record "$label" "$dir" "$how"
    verify_lat "$REP_PORT" "$label"
    rep_sql 'STOP SLAVE'
}

if section latency; then
    lat_setup
    if lat_want tidemark; then run_latency_tidemark; fi
    if lat_want mariadb-replica; then run_latency_replica mariadb-replica 0; fi
    if lat_want mariadb-replica-parallel; then run_latency_replica mariadb-replica-parallel "$REPLICA_THREADS"; fi
fi

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
report_catchup() {
    echo "## Catch-up: $TABLES table(s) x $ROWS rows, $EVENTS oltp_write_only transactions ($(( 4 * TX_SCALE )) row changes each)"
    echo
    echo "tidemark [incremental] threads = ${THREADS:-default}${BATCH_ROWS:+, batch_rows = $BATCH_ROWS}; parallel replica slave_parallel_threads = $REPLICA_THREADS; $REPEAT round(s)."
    echo "Binlog $START_FILE:$START_POS → $END_FILE:$END_POS ($BINLOG_MB MB): $TRANSACTIONS transactions, $ROW_CHANGES row changes"
    echo "($UPDATES updates, $DELETES deletes, $INSERTS inserts), written by sysbench --threads=$SB_THREADS on the source in $WORKLOAD_S s ($SOURCE_TPS transactions/s)."
    echo
    echo "| tool | applied s | row changes/s | transactions/s | speed vs mariadb-replica | speed vs mariadb-replica-parallel | process wall s | peak RSS MiB | client CPU s | source server CPU s | applying server CPU s | other CPU s | all rounds (applied), s | note |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    awk -v rows="$ROW_CHANGES" -v txns="$TRANSACTIONS" -v repeat="$REPEAT" "$TABLE_AWK" "$RESULTS"
}

report_decode() {
    echo "## Decode only: ${DECODE_FILES[*]}"
    echo
    echo "$(awk -v b="$DECODE_BYTES" 'BEGIN { printf "%.1f", b / 1e6 }') MB of binlog (the workload above: $TRANSACTIONS transactions, $ROW_CHANGES row changes),"
    echo "$DECODE_EVENTS events by tidemark's --json output ($DECODE_ROWS_EVENTS rows events; mariadb-binlog shows $RANGE_EVENTS between the start and end positions)."
    echo "Output to /dev/null; the file in the page cache (one untimed pass first); median of $DECODE_REPEAT run(s) per decoder, the decoders taking turns."
    echo
    echo "| decoder | command | wall s | events/s | MB/s | speed vs mariadb-binlog --verbose | CPU s | peak RSS MiB | other CPU s | all runs, s |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    local name cmd ref
    ref=$(awk -F'\t' '$1 == "mariadb-binlog-verbose" { print $3 }' "$DECODE_RESULTS" | median)
    for name in tidemark-json tidemark-text mariadb-binlog-verbose mariadb-binlog-decode-rows; do
        case "$name" in
            tidemark-json) cmd='`tidemark binlog inspect --json FILE`' ;;
            tidemark-text) cmd='`tidemark binlog inspect FILE`' ;;
            mariadb-binlog-verbose) cmd='`mariadb-binlog --verbose FILE`' ;;
            mariadb-binlog-decode-rows) cmd='`mariadb-binlog --base64-output=decode-rows --verbose FILE`' ;;
        esac
        awk -F'\t' -v n="$name" -v cmd="$cmd" -v ev="$DECODE_EVENTS" -v bytes="$DECODE_BYTES" -v ref="$ref" '
            $1 == n { k++; w[k] = $3; c[k] = $4; r[k] = $5; o[k] = $6; all = all (all == "" ? "" : ", ") sprintf("%.2f", $3) }
            END {
                if (!k) exit
                for (i = 1; i <= k; i++) idx[i] = i
                for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (w[idx[j]] + 0 < w[idx[i]] + 0) { t = idx[i]; idx[i] = idx[j]; idx[j] = t }
                m = idx[int((k + 1) / 2)]
                printf "| %s | %s | %.2f | %.0f | %.1f | %s | %.2f | %.1f | %.2f | %s |\n", n, cmd, w[m], ev / w[m], bytes / 1e6 / w[m],
                    (ref != "" ? sprintf("%.2f", ref / w[m]) : "-"), c[m], r[m], o[m], all
            }' "$DECODE_RESULTS"
    done
}

report_latency() {
    echo "## Steady state: sysbench oltp_write_only --rate=$RATE --time=$LAT_SECONDS (--threads=$SB_THREADS, $(( 4 * TX_SCALE )) row changes a transaction) on the source, appliers running"
    echo
    echo "Each applier in turn runs continuously from $LAT_FILE:$LAT_POS (tidemark: \`tidemark run --no-progress\`, no --stop-when-caught-up,"
    echo "stopped with SIGTERM after the run; replicas: START SLAVE). A heartbeat row (sbtest.bench_heartbeat) is set to NOW(6) on the source every"
    echo "${HB_INTERVAL} s and read on the applying server every ${POLL_INTERVAL} s; positions are read every ${STATUS_INTERVAL} s. Only samples taken during sysbench's run count."
    echo "*visibility delay*: for each heartbeat, the first read that shows it (or a later one) minus its source time (resolution ${POLL_INTERVAL} s)."
    echo "*heartbeat age*: read time minus the source time of the heartbeat the applying server has: includes the 0–${HB_INTERVAL} s the heartbeat is old on the source itself."
    echo
    echo "| tool | heartbeats | visibility delay p50 ms | p95 ms | p99 ms | max ms | not seen | heartbeat age p50 ms | p95 ms | p99 ms | max ms |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk -F'\t' '{ split($2, d, " "); split($4, a, " "); printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, d[5], d[1], d[2], d[3], d[4], $3, a[1], a[2], a[3], a[4] }' "$LAT_RESULTS"
    echo
    echo "Positions: the applier's applied position (tidemark: \`tidemark status --json\` incremental.position; replica: Relay_Master_Log_File:Exec_Master_Log_Pos),"
    echo "then the source's SHOW MASTER STATUS. *Own lag figure*: tidemark's incremental.latency_seconds, the replica's Seconds_Behind_Master, in ms."
    echo
    echo "| tool | position samples | unreadable | behind the source | bytes behind p50 | p95 | max | own lag figure p50 ms | p95 ms | max ms |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk -F'\t' '{ split($5, c, " "); split($6, b, " "); split($7, o, " ")
        printf "| %s | %s | %s | %s (%.0f%%) | %s | %s | %s | %s | %s | %s |\n", $1, c[1], c[2], c[3], (c[1] - c[2] > 0 ? 100 * c[3] / (c[1] - c[2]) : 0), b[1], b[2], b[4], o[1], o[2], o[4] }' "$LAT_RESULTS"
    echo
    echo "| tool | sysbench transactions/s | row changes/s | sysbench p95 latency ms | client CPU s | applying server CPU s | source server CPU s | sysbench CPU s | other CPU s | peak RSS MiB | note |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    awk -F'\t' -v per="$(( 4 * TX_SCALE ))" '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $8, ($8 == "?" ? "?" : sprintf("%.0f", $8 * per)), $9, $10, $11, $12, $13, $14, $15, $16 }' "$LAT_RESULTS"
}

report() {
    echo "# Incremental benchmarks (bench/incremental.sh --sections $SECTIONS)"
    echo
    echo "MariaDB $SERVER_VERSION, $(nproc) CPU(s), $(machine_ram) RAM;"
    echo "$BUILT_FROM. Load average when the script started: $LOAD_AT_START. *other CPU s*: CPU time of everything else on the machine during the run."
    if section catchup; then echo; report_catchup; fi
    if section decode; then echo; report_decode; fi
    if section latency; then echo; report_latency; fi
}
emit_report

if [ "$RSS_LIMIT_MB" -gt 0 ] && { want tidemark || lat_want tidemark; }; then
    over=""
    if want tidemark; then
        over=$(awk -F'\t' -v lim="$RSS_LIMIT_MB" '$2 == "tidemark" && $6 + 0 >= lim + 0 { printf "catch-up round %s: %s MiB; ", $1, $6 }' "$RESULTS")
    fi
    if lat_want tidemark; then
        over="$over$(awk -F'\t' -v lim="$RSS_LIMIT_MB" '$1 == "tidemark" && $15 + 0 >= lim + 0 { printf "latency: %s MiB; ", $15 }' "$LAT_RESULTS")"
    fi
    if [ -n "$over" ]; then
        log "FAIL: tidemark peak RSS not below the limit of $RSS_LIMIT_MB MiB: $over"
        exit 3
    fi
    log "tidemark peak RSS below $RSS_LIMIT_MB MiB in every run"
fi
