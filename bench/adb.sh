#!/usr/bin/env bash
# Benchmark of the AnalyticDB for MySQL destination (`type = "adb-mysql"`) into the ADB
# **stand-in** (tidemark-sandbox's standin::adb, a MySQL-protocol server that checks ADB's
# DDL and keeps its rows in a MariaDB it starts; not the engine: the figures say what
# Tidemark, myloader and the stand-in do on this machine, not what ADB would do):
#
#   full      schema (ADB CREATE TABLE) + full copy of sysbench tables: rows/s
#   myloader  the same rows dumped from the source by `mydumper --no-schemas` and loaded
#             by `myloader` (2 and 4 threads) into tables pre-created on the stand-in
#             with the DDL tidemark created there (SHOW CREATE TABLE): rows/s, and
#             tidemark's rate over myloader's
#   catchup   sysbench oltp_write_only runs on the source while tidemark is stopped, then
#             `tidemark run --stop-when-caught-up` applies the backlog: row changes/s
#   verify    `tidemark verify` (rows read back and hashed): rows/s, and equal
#
#   bash bench/adb.sh [--tables N] [--rows N] [--events N] [--threads N] [options]
#
# Options (defaults in brackets):
#   --tables N        sysbench tables [4]
#   --rows N          rows per table [100000]
#   --events N        oltp_write_only transactions for the catch-up; each changes 4 rows
#                     (2 updates, 1 delete, 1 insert) [25000]
#   --sb-threads N    sysbench client threads [4]
#   --threads N       tidemark [full] threads and [incremental] threads [4]
#   --loader-threads LIST
#                     comma-separated myloader --threads values, one load each [2,4]
#   --out FILE        also write the results (markdown) to FILE
#   --logs DIR        keep the tools' logs, /usr/bin/time reports and task files in DIR
#
# Environment:
#   BENCH_TARGET_DIR  cargo target directory for the release builds
#                     [$CARGO_TARGET_DIR, else <repo>/target]
#   TIDEMARK_BIN      use this tidemark binary instead of building one
#   STANDIN_BIN       use this adb_standin example binary instead of building one
#   BENCH_TMPDIR      where the source's data and the dump go [$TMPDIR or /tmp]
#
# MariaDB replication into the stand-in cannot be compared: it is not a MariaDB server
# (no replica threads). Everything the script starts (the source mariadbd, the stand-in
# and its storage mariadbd) is stopped and removed on exit. Missing tools are installed
# with apt-get.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BENCH_NAME=adb
USAGE_LAST_LINE=35
CMDLINE="bash bench/adb.sh $*"

TABLES=4
ROWS=100000
EVENTS=25000
SB_THREADS=4
THREADS=4
LOADER_THREADS=2,4
OUT=""
LOGS=""

while [ $# -gt 0 ]; do
    case "$1" in
        --tables) TABLES="${2:?}"; shift 2 ;;
        --rows) ROWS="${2:?}"; shift 2 ;;
        --events) EVENTS="${2:?}"; shift 2 ;;
        --sb-threads) SB_THREADS="${2:?}"; shift 2 ;;
        --threads) THREADS="${2:?}"; shift 2 ;;
        --loader-threads) LOADER_THREADS="${2:?}"; shift 2 ;;
        --out) OUT="${2:?}"; shift 2 ;;
        --logs) LOGS="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
whole_numbers TABLES ROWS EVENTS SB_THREADS THREADS
[ "$TABLES" -ge 1 ] && [ "$ROWS" -ge 1 ] && [ "$EVENTS" -ge 1 ] && [ "$SB_THREADS" -ge 1 ] \
    && [ "$THREADS" -ge 1 ] || die "--tables, --rows, --events, --sb-threads and --threads must be at least 1"
[[ "$LOADER_THREADS" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] \
    || die "--loader-threads must be a comma-separated list of whole numbers of at least 1 (got $LOADER_THREADS)"
IFS=, read -r -a LOADER_LIST <<<"$LOADER_THREADS"

LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- tools -----------
need mariadb-server mariadbd mysqld
need mariadb-server mariadb-install-db mysql_install_db
need mariadb-server mariadb-binlog mysqlbinlog
need mariadb-client mariadb
need sysbench sysbench
need mydumper mydumper
need mydumper myloader
[ -x /usr/bin/time ] || missing+=(time)
install_missing
find_mariadb
MARIADB_BINLOG="$(find_tool mariadb-binlog mysqlbinlog)" || die "mariadb-binlog not found"
SYSBENCH="$(find_tool sysbench)" || die "sysbench not found"
MYDUMPER="$(find_tool mydumper)" || die "mydumper not found"
MYLOADER="$(find_tool myloader)" || die "myloader not found"

# ---------------------------------------------------------------- build -----------
build_tidemark
built_from
build_standin adb_standin

# ---------------------------------------------------------------- servers ---------
KEEP_NAMES=('*.log' '*.time' '*.toml' '*.ddl')
KEEP_NOT_PATH='./dump/*'
cleanup_first() { stop_standin; }
make_work adb
take_port SRC_PORT
log "starting the source (127.0.0.1:$SRC_PORT, binlog ROW/FULL) in $WORK"
start_source
wait_ready source "$SRC_PORT" "$SRC_PID"
start_standin
ADB_URL=$STANDIN_URL
ADB_PORT=$STANDIN_PORT
log "ADB stand-in at $ADB_URL"
adb_sql() { sql_at "$ADB_PORT" "$1"; }

# ---------------------------------------------------------------- data ------------
generate_sbtest oltp_write_only

cat >"$WORK/task.toml" <<EOT
name = "bench-adb"
[source]
url = "mysql://root@127.0.0.1:$SRC_PORT"
tls = "disabled"
[destination]
type = "adb-mysql"
url = "$ADB_URL"
tls = "disabled"
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
EOT

# ---------------------------------------------------------------- full ------------
stand_in_rows() { # database: total rows of the sbtest tables in it on the stand-in
    local t n total=0
    for t in "${TABLE_NAMES[@]}"; do
        n=$(adb_sql "SELECT COUNT(*) FROM \`$1\`.\`$t\`")
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
FULL_ON_STANDIN=$(stand_in_rows sbtest)
log "  $FULL_ROWS rows in $FULL_S s ($FULL_RPS rows/s); whole run $FULL_WALL s; $FULL_ON_STANDIN rows on the stand-in"

# ---------------------------------------------------------------- myloader --------
# The stand-in takes only ADB's DDL, so the tables are created from what tidemark
# created (SHOW CREATE TABLE, ADB's form), in a database of their own; the dump has no
# schema files (--no-schemas) and myloader only loads rows. The dump is of the same
# rows: nothing has written to the source since the copy.
ML_DB=sbtest_myloader
for t in "${TABLE_NAMES[@]}"; do
    adb_sql "SHOW CREATE TABLE sbtest.\`$t\`" | cut -f2- | sed 's/\\n/\n/g' >"$WORK/$t.ddl"
    [ -s "$WORK/$t.ddl" ] || die "SHOW CREATE TABLE sbtest.$t on the stand-in answered nothing"
done
log "myloader: dumping sbtest with mydumper --no-schemas"
mkdir -p "$WORK/dump"
t0=$(now)
/usr/bin/time -v -o "$WORK/mydumper.time" "$MYDUMPER" -h 127.0.0.1 -P "$SRC_PORT" -u root -B sbtest \
    --no-schemas --threads "$THREADS" --rows 50000 -o "$WORK/dump" -v 3 >"$WORK/mydumper.log" 2>&1 \
    || { tail -n 40 "$WORK/mydumper.log" >&2; die "mydumper failed"; }
DUMP_WALL=$(sub "$(now)" "$t0")
log "  dumped in $DUMP_WALL s ($(ls "$WORK/dump" | wc -l) files)"
# What a data file starts with (its session statements), kept with --logs.
first_dump=$(find "$WORK/dump" -name 'sbtest.*.sql' | sort | head -n1)
[ -n "$first_dump" ] || die "mydumper wrote no data file for sbtest into $WORK/dump"
grep -v '^INSERT\|^(' "$first_dump" | head -n 20 >"$WORK/dump-head.log" || true
content_sum() { # database table: a query summing a hash of every row's values
    echo "SELECT COUNT(*), SUM(CRC32(CONCAT_WS('|', id, k, c, pad))) FROM \`$1\`.\`$2\`"
}
ML_WALL=(); ML_RPS=(); ML_ROWS=(); ML_RATIO=(); ML_RSS=(); ML_CPU=()
for n in "${LOADER_LIST[@]}"; do
    adb_sql "DROP DATABASE IF EXISTS \`$ML_DB\`"
    adb_sql "CREATE DATABASE \`$ML_DB\`"
    for t in "${TABLE_NAMES[@]}"; do
        sql_at "$ADB_PORT" "USE \`$ML_DB\`; $(cat "$WORK/$t.ddl")" \
            || die "the stand-in refused its own SHOW CREATE TABLE of $t (in $WORK/$t.ddl)"
    done
    log "myloader: loading $TOTAL_ROWS rows with --threads $n"
    t0=$(now)
    ML_EXIT=0
    /usr/bin/time -v -o "$WORK/myloader-$n.time" "$MYLOADER" -h 127.0.0.1 -P "$ADB_PORT" -u root \
        -d "$WORK/dump" -s sbtest -B "$ML_DB" --threads "$n" -v 3 >"$WORK/myloader-$n.log" 2>&1 || ML_EXIT=$?
    wall=$(sub "$(now)" "$t0")
    rows=$(stand_in_rows "$ML_DB")
    if [ "$ML_EXIT" != 0 ] || grep -qiE 'critical|error' "$WORK/myloader-$n.log"; then
        grep -iE 'critical|error' "$WORK/myloader-$n.log" | sort | uniq -c | sort -rn | head -n 20 >&2 || true
        die "myloader --threads $n failed (exit $ML_EXIT; errors above, $rows of $TOTAL_ROWS rows loaded)"
    fi
    [ "$rows" -eq "$TOTAL_ROWS" ] || die "myloader --threads $n loaded $rows rows, the source has $TOTAL_ROWS"
    for t in "${TABLE_NAMES[@]}"; do # the same values as tidemark's copy (nothing changed since)
        [ "$(adb_sql "$(content_sum "$ML_DB" "$t")")" = "$(adb_sql "$(content_sum sbtest "$t")")" ] \
            || die "myloader --threads $n loaded other values into $t than tidemark's copy holds"
    done
    ML_WALL+=("$wall"); ML_ROWS+=("$rows")
    ML_RPS+=("$(awk -v n="$rows" -v s="$wall" 'BEGIN { printf "%.0f", n / s }')")
    ML_RATIO+=("$(awk -v a="$FULL_RPS" -v b="${ML_RPS[-1]}" 'BEGIN { printf "%.2f", a / b }')")
    ML_RSS+=("$(rss_mib "$WORK/myloader-$n.time")"); ML_CPU+=("$(cpu_of "$WORK/myloader-$n.time")")
    log "  $rows rows in $wall s (${ML_RPS[-1]} rows/s); tidemark's copy is ${ML_RATIO[-1]}x that"
done
adb_sql "DROP DATABASE IF EXISTS \`$ML_DB\`"
rm -rf "$WORK/dump"

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
LOAD_AT_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report ----------
report() {
    local i
    echo "# ADB destination into the ADB stand-in (bench/adb.sh)"
    echo
    echo "**Stand-in figures**: the destination is tidemark-sandbox's AnalyticDB for MySQL stand-in"
    echo "(its rows in a MariaDB it starts, DDL parsed and checked by the stand-in), not ADB."
    echo
    echo "Command: \`$CMDLINE\`"
    echo
    echo "MariaDB $SERVER_VERSION, $(nproc) CPU(s), $(machine_ram) RAM, shared with other agents building code"
    echo "(figures vary with their load); $BUILT_FROM; $("$MYLOADER" --version 2>&1 | head -n1)."
    echo "Load average at the start: $LOAD_AT_START; at the end: $LOAD_AT_END."
    echo "Data: $TABLES sysbench table(s) x $ROWS rows ($RAW_MB MB of row values); $THREADS tidemark threads."
    echo
    echo "| phase | work | wall s | rate | peak RSS MiB | CPU s | result |"
    echo "|---|---|---|---|---|---|---|"
    echo "| tidemark full copy | $FULL_ROWS rows, $FULL_MB MB | $FULL_S (whole run with schema: $FULL_WALL) | **$FULL_RPS rows/s** | $FULL_RSS | $FULL_CPU | $FULL_ON_STANDIN rows on the stand-in |"
    for i in "${!LOADER_LIST[@]}"; do
        echo "| myloader --threads ${LOADER_LIST[$i]} | ${ML_ROWS[$i]} rows (dump by mydumper --no-schemas: $DUMP_WALL s, not counted) | ${ML_WALL[$i]} | **${ML_RPS[$i]} rows/s** (tidemark: ${ML_RATIO[$i]}x) | ${ML_RSS[$i]} | ${ML_CPU[$i]} | ${ML_ROWS[$i]} rows on the stand-in, values equal to tidemark's copy |"
    done
    echo "| tidemark catch-up | $ROW_CHANGES row changes in $TRANSACTIONS transactions (oltp_write_only) | $CATCHUP_WALL | **$CATCHUP_RPS row changes/s** ($CATCHUP_TPS transactions/s) | $CATCHUP_RSS | $CATCHUP_CPU | caught up |"
    echo "| tidemark verify | $SOURCE_ROWS rows read back and hashed | $VERIFY_WALL | $VERIFY_RPS rows/s | $VERIFY_RSS | $(cpu_of "$WORK/verify.time") | $VERIFY_VERDICT |"
    echo
    echo "Tidemark's copy rate is its own \"full: N rows … in S s\" figure (schema step excluded);"
    echo "myloader's is its whole load (its tables created beforehand, from the DDL tidemark created)."
    echo "Catch-up wall time is the whole \`tidemark run --stop-when-caught-up\`, start-up included."
    echo "MariaDB replication into the stand-in is not possible (it is not a MariaDB server)."
}
emit_report
status=0
[ "$FULL_ON_STANDIN" -eq "$TOTAL_ROWS" ] || { log "FAIL: $FULL_ON_STANDIN rows on the stand-in after the copy, $TOTAL_ROWS on the source"; status=4; }
[ "$VERIFY_EXIT" = 0 ] || { log "FAIL: verify found differences after the catch-up (see $WORK/verify.log, kept with --logs)"; status=4; }
exit "$status"
