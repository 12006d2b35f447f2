#!/usr/bin/env bash
# Benchmark of the Lindorm destination into the Lindorm **stand-in** (tidemark-sandbox's
# standin::lindorm, a MySQL-protocol server that keeps its rows in a MariaDB it starts;
# not the engine: the figures say what Tidemark and the stand-in do on this machine, not
# what LindormTable would do):
#
#   full     schema (create_tables) + full copy of sysbench tables: rows/s
#   catchup  sysbench oltp_write_only runs on the source while tidemark is stopped, then
#            `tidemark run --stop-when-caught-up` applies the backlog: row changes/s
#   verify   `tidemark verify` (rows read back and hashed): rows/s, and equal
#
#   bash bench/lindorm.sh [--tables N] [--rows N] [--events N] [--threads N] [options]
#
# Options (defaults in brackets):
#   --tables N        sysbench tables [4]
#   --rows N          rows per table [100000]
#   --events N        oltp_write_only transactions for the catch-up; each changes 4 rows
#                     (2 updates, 1 delete, 1 insert) [25000]
#   --sb-threads N    sysbench client threads [4]
#   --threads N       tidemark [full] threads and [incremental] threads [4]
#   --out FILE        also write the results (markdown) to FILE
#   --logs DIR        keep the tools' logs, /usr/bin/time reports and task files in DIR
#
# Environment:
#   BENCH_TARGET_DIR  cargo target directory for the release builds
#                     [$CARGO_TARGET_DIR, else <repo>/target]
#   TIDEMARK_BIN      use this tidemark binary instead of building one
#   STANDIN_BIN       use this lindorm_standin example binary instead of building one
#   BENCH_TMPDIR      where the source's data goes [$TMPDIR or /tmp]
#
# Everything the script starts (the source mariadbd, the stand-in and its storage
# mariadbd) is stopped and removed on exit. Missing tools are installed with apt-get.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BENCH_NAME=lindorm
USAGE_LAST_LINE=32
CMDLINE="bash bench/lindorm.sh $*"

TABLES=4
ROWS=100000
EVENTS=25000
SB_THREADS=4
THREADS=4
OUT=""
LOGS=""

while [ $# -gt 0 ]; do
    case "$1" in
        --tables) TABLES="${2:?}"; shift 2 ;;
        --rows) ROWS="${2:?}"; shift 2 ;;
        --events) EVENTS="${2:?}"; shift 2 ;;
        --sb-threads) SB_THREADS="${2:?}"; shift 2 ;;
        --threads) THREADS="${2:?}"; shift 2 ;;
        --out) OUT="${2:?}"; shift 2 ;;
        --logs) LOGS="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
whole_numbers TABLES ROWS EVENTS SB_THREADS THREADS
[ "$TABLES" -ge 1 ] && [ "$ROWS" -ge 1 ] && [ "$EVENTS" -ge 1 ] && [ "$SB_THREADS" -ge 1 ] \
    && [ "$THREADS" -ge 1 ] || die "--tables, --rows, --events, --sb-threads and --threads must be at least 1"

LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- tools -----------
need mariadb-server mariadbd mysqld
need mariadb-server mariadb-install-db mysql_install_db
need mariadb-server mariadb-binlog mysqlbinlog
need mariadb-client mariadb
need sysbench sysbench
[ -x /usr/bin/time ] || missing+=(time)
install_missing
find_mariadb
MARIADB_BINLOG="$(find_tool mariadb-binlog mysqlbinlog)" || die "mariadb-binlog not found"
SYSBENCH="$(find_tool sysbench)" || die "sysbench not found"

# ---------------------------------------------------------------- build -----------
build_tidemark
built_from
build_standin lindorm_standin

# ---------------------------------------------------------------- servers ---------
KEEP_NAMES=('*.log' '*.time' '*.toml')
cleanup_first() { stop_standin; }
make_work lindorm
take_port SRC_PORT
log "starting the source (127.0.0.1:$SRC_PORT, binlog ROW/FULL) in $WORK"
start_source
wait_ready source "$SRC_PORT" "$SRC_PID"
start_standin
LINDORM_URL=$STANDIN_URL
LINDORM_PORT=$STANDIN_PORT
log "Lindorm stand-in at $LINDORM_URL"
lin_sql() { sql_at "$LINDORM_PORT" "$1"; }

# ---------------------------------------------------------------- data ------------
generate_sbtest oltp_write_only

cat >"$WORK/task.toml" <<EOF
name = "bench-lindorm"
[source]
url = "mysql://root@127.0.0.1:$SRC_PORT"
tls = "disabled"
[destination]
type = "lindorm"
url = "$LINDORM_URL"
create_tables = true
[migration]
types = ["schema", "full", "incremental"]
[full]
threads = $THREADS
[incremental]
threads = $THREADS
[state]
dir = "$WORK/state"
[[objects]]
database = "sbtest"
EOF

# ---------------------------------------------------------------- full ------------
stand_in_rows() { # total rows of the sbtest tables on the stand-in
    local t n total=0
    for t in "${TABLE_NAMES[@]}"; do
        n=$(lin_sql "SELECT COUNT(*) FROM sbtest.\`$t\`")
        total=$(( total + n ))
    done
    echo "$total"
}
log "full: schema + full copy of $TOTAL_ROWS rows into the stand-in"
t0=$(now)
/usr/bin/time -v -o "$WORK/full.time" "$TIDEMARK" run --no-progress --stop-when-caught-up "$WORK/task.toml" \
    >"$WORK/full.log" 2>&1 || { tail -n 40 "$WORK/full.log" >&2; die "tidemark run (full) failed"; }
FULL_WALL=$(sub "$(now)" "$t0")
# The copy alone, as tidemark reports it: "full: N rows, X MB in S s (R rows/s)".
read -r FULL_ROWS FULL_MB FULL_S < <(plain_log "$WORK/full.log" \
    | sed -n 's/.*INFO full: \([0-9]*\) rows, \([0-9.]*\) MB in \([0-9.]*\) s .*/\1 \2 \3/p' | tail -n1)
[ -n "${FULL_S:-}" ] || die "no 'full: N rows … in S s' line in the log"
FULL_RPS=$(awk -v n="$FULL_ROWS" -v s="$FULL_S" 'BEGIN { printf "%.0f", n / s }')
FULL_RSS=$(rss_mib "$WORK/full.time")
FULL_CPU=$(cpu_of "$WORK/full.time")
FULL_ON_STANDIN=$(stand_in_rows)
log "  $FULL_ROWS rows in $FULL_S s ($FULL_RPS rows/s); whole run $FULL_WALL s; $FULL_ON_STANDIN rows on the stand-in"

# ---------------------------------------------------------------- catch-up --------
read -r START_FILE START_POS < <(src_sql 'SHOW MASTER STATUS' | awk '{ print $1, $2 }')
log "catchup: $EVENTS oltp_write_only transactions on the source while tidemark is stopped"
"$SYSBENCH" oltp_write_only --db-driver=mysql --tables="$TABLES" --table-size="$ROWS" \
    --mysql-host=127.0.0.1 --mysql-port="$SRC_PORT" --mysql-user=root --mysql-db=sbtest \
    --threads="$SB_THREADS" --events="$EVENTS" --time=0 run >"$WORK/sysbench-run.log" 2>&1 \
    || { cat "$WORK/sysbench-run.log" >&2; die "sysbench run failed"; }
read -r END_FILE END_POS < <(src_sql 'SHOW MASTER STATUS' | awk '{ print $1, $2 }')
count_binlog_range
log "  $ROW_CHANGES row changes ($INSERTS inserts, $UPDATES updates, $DELETES deletes) in $TRANSACTIONS transactions"
t0=$(now)
/usr/bin/time -v -o "$WORK/catchup.time" "$TIDEMARK" run --no-progress --stop-when-caught-up "$WORK/task.toml" \
    >"$WORK/catchup.log" 2>&1 || { tail -n 40 "$WORK/catchup.log" >&2; die "tidemark run (catch-up) failed"; }
CATCHUP_WALL=$(sub "$(now)" "$t0")
CATCHUP_RPS=$(awk -v n="$ROW_CHANGES" -v s="$CATCHUP_WALL" 'BEGIN { printf "%.0f", n / s }')
CATCHUP_TPS=$(awk -v n="$TRANSACTIONS" -v s="$CATCHUP_WALL" 'BEGIN { printf "%.0f", n / s }')
CATCHUP_RSS=$(rss_mib "$WORK/catchup.time")
CATCHUP_CPU=$(cpu_of "$WORK/catchup.time")
log "  caught up in $CATCHUP_WALL s ($CATCHUP_RPS row changes/s)"

# ---------------------------------------------------------------- verify ----------
SOURCE_ROWS=$(src_sql "SELECT SUM(n) FROM ($(printf 'SELECT COUNT(*) n FROM sbtest.`%s` UNION ALL ' "${TABLE_NAMES[@]}" | sed 's/ UNION ALL $//')) x")
log "verify: comparing $SOURCE_ROWS rows"
t0=$(now)
VERIFY_EXIT=0
/usr/bin/time -v -o "$WORK/verify.time" "$TIDEMARK" verify --no-progress "$WORK/task.toml" \
    >"$WORK/verify.log" 2>&1 || VERIFY_EXIT=$?
VERIFY_WALL=$(sub "$(now)" "$t0")
VERIFY_RPS=$(awk -v n="$SOURCE_ROWS" -v s="$VERIFY_WALL" 'BEGIN { printf "%.0f", n / s }')
VERIFY_RSS=$(rss_mib "$WORK/verify.time")
VERIFY_VERDICT=$([ "$VERIFY_EXIT" = 0 ] && echo equal || echo "DIFFERENT (exit $VERIFY_EXIT)")
log "  $VERIFY_VERDICT in $VERIFY_WALL s ($VERIFY_RPS rows/s)"

# ---------------------------------------------------------------- report ----------
report() {
    echo "# Lindorm destination into the Lindorm stand-in (bench/lindorm.sh)"
    echo
    echo "**Stand-in figures**: the destination is tidemark-sandbox's Lindorm stand-in (its"
    echo "rows in a MariaDB it starts, SQL parsed and checked by the stand-in), not LindormTable."
    echo
    echo "Command: \`$CMDLINE\`"
    echo
    echo "MariaDB $SERVER_VERSION, $(nproc) CPU(s), $(machine_ram) RAM, shared with other agents building code"
    echo "(figures vary with their load); $BUILT_FROM. Load average when the script started: $LOAD_AT_START."
    echo "Data: $TABLES sysbench table(s) x $ROWS rows ($RAW_MB MB of row values); $THREADS tidemark threads."
    echo
    echo "| phase | work | wall s | rate | tidemark peak RSS MiB | tidemark CPU s | result |"
    echo "|---|---|---|---|---|---|---|"
    echo "| full copy | $FULL_ROWS rows, $FULL_MB MB | $FULL_S (whole run with schema: $FULL_WALL) | **$FULL_RPS rows/s** | $FULL_RSS | $FULL_CPU | $FULL_ON_STANDIN rows on the stand-in |"
    echo "| catch-up | $ROW_CHANGES row changes in $TRANSACTIONS transactions (oltp_write_only) | $CATCHUP_WALL | **$CATCHUP_RPS row changes/s** ($CATCHUP_TPS transactions/s) | $CATCHUP_RSS | $CATCHUP_CPU | caught up |"
    echo "| verify | $SOURCE_ROWS rows read back and hashed | $VERIFY_WALL | $VERIFY_RPS rows/s | $VERIFY_RSS | $(cpu_of "$WORK/verify.time") | $VERIFY_VERDICT |"
    echo
    echo "Catch-up wall time is the whole \`tidemark run --stop-when-caught-up\`, start-up included."
}
emit_report
status=0
[ "$FULL_ON_STANDIN" -eq "$TOTAL_ROWS" ] || { log "FAIL: $FULL_ON_STANDIN rows on the stand-in after the copy, $TOTAL_ROWS on the source"; status=4; }
[ "$VERIFY_EXIT" = 0 ] || { log "FAIL: verify found differences after the catch-up (see $WORK/verify.log, kept with --logs)"; status=4; }
exit "$status"
