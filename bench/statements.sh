#!/usr/bin/env bash
# The longest single statements of a full copy and of the incremental apply, with
# tidemark's default settings: what `[advanced] network_timeout_seconds` must stay above.
#
#   bash bench/statements.sh [--rows N] [--changes N] [options]
#
# One sysbench-shaped table (--rows rows) is copied with the defaults (4 threads, chunks of
# 50 000 rows, INSERTs of 1 000 rows / 4 MiB at most); then --changes row changes (updates,
# deletes and inserts of 1 000 rows per source transaction) are applied by an
# incremental-only task (batches of 2 000 row changes over 4 connections). Both servers
# log every statement meanwhile (slow query log, long_query_time = 0); the script prints,
# per server and statement kind, how many ran and the longest server time.
#
# Options (defaults in brackets):
#   --rows N      rows of the table [1000000]
#   --changes N   row changes applied incrementally [300000]
#   --out FILE    also write the results (markdown) to FILE
#   --logs DIR    keep the slow query logs and tidemark's logs in DIR
#
# Environment: BENCH_TARGET_DIR, TIDEMARK_BIN, BENCH_TMPDIR as for bench/full.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BENCH_NAME=statements

ROWS=1000000
CHANGES=300000
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --rows) ROWS="${2:?}"; shift 2 ;;
        --changes) CHANGES="${2:?}"; shift 2 ;;
        --out) OUT="${2:?}"; shift 2 ;;
        --logs) LOGS="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
whole_numbers ROWS CHANGES
[ "$ROWS" -ge 1000 ] && [ "$CHANGES" -ge 1000 ] || die "--rows and --changes must be at least 1000"

need mariadb-server mariadbd mysqld
need mariadb-server mariadb-install-db mysql_install_db
need mariadb-client mariadb
install_missing
find_mariadb
build_tidemark
built_from
make_work statements

start_source_and_destination \
    --slow-query-log-file="$WORK/source/slow.log" -- --slow-query-log-file="$WORK/destination/slow.log"
SERVER_VERSION=$(src_sql 'SELECT VERSION()')
log "MariaDB $SERVER_VERSION; generating 1 table x $ROWS rows"
src_sql "CREATE DATABASE sbtest; CREATE TABLE sbtest.sbtest1 (id INT PRIMARY KEY, k INT NOT NULL, \
    c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL, KEY k_1 (k)); \
    INSERT INTO sbtest.sbtest1 SELECT seq, FLOOR(RAND(1) * $ROWS), \
    SUBSTRING(REPEAT(MD5(seq), 4), 1, 119), SUBSTRING(REPEAT(SHA1(seq), 2), 1, 59) FROM sbtest.seq_1_to_$ROWS"
for p in "$SRC_PORT" "$DST_PORT"; do
    sql_at "$p" 'SET GLOBAL long_query_time = 0; SET GLOBAL slow_query_log = ON'
done

log "full copy (schema + full, default settings)"
mysql_task_header copy >"$WORK/copy.toml"
cat >>"$WORK/copy.toml" <<EOF
[migration]
types = ["schema", "full"]
[[objects]]
database = "sbtest"
EOF
"$TIDEMARK" run --no-progress "$WORK/copy.toml" >"$WORK/copy.log" 2>&1 || { cat "$WORK/copy.log" >&2; die "the copy failed"; }

read -r FILE POS < <(src_sql 'SHOW MASTER STATUS' | awk '{ print $1, $2 }')
TXNS=$(( CHANGES / 1000 ))
log "$CHANGES row changes on the source ($TXNS transactions of 1 000 rows)"
{
    for i in $(seq 0 $(( TXNS - 1 ))); do
        lo=$(( (i * 1000) % (ROWS - 1000) + 1 ))
        case $(( i % 3 )) in
            0) echo "UPDATE sbtest.sbtest1 SET k = k + 1, c = REVERSE(c) WHERE id BETWEEN $lo AND $(( lo + 999 ));" ;;
            1) echo "DELETE FROM sbtest.sbtest1 WHERE id BETWEEN $lo AND $(( lo + 999 ));" ;;
            2) echo "INSERT INTO sbtest.sbtest1 SELECT seq, seq % 1000, REPEAT('c', 119), REPEAT('p', 59) FROM sbtest.seq_$(( ROWS + i * 1000 + 1 ))_to_$(( ROWS + i * 1000 + 1000 ));" ;;
        esac
    done
} >"$WORK/changes.sql"
"$MARIADB" --no-defaults -h127.0.0.1 -P"$SRC_PORT" -uroot <"$WORK/changes.sql"

log "incremental apply from $FILE:$POS until caught up"
mysql_task_header apply >"$WORK/apply.toml"
cat >>"$WORK/apply.toml" <<EOF
[migration]
types = ["incremental"]
start_position = "$FILE:$POS"
[[objects]]
database = "sbtest"
EOF
"$TIDEMARK" run --no-progress --stop-when-caught-up "$WORK/apply.toml" >"$WORK/apply.log" 2>&1 \
    || { cat "$WORK/apply.log" >&2; die "the incremental apply failed"; }
[ "$(src_sql 'CHECKSUM TABLE sbtest.sbtest1' | cut -f2)" = "$(dst_sql 'CHECKSUM TABLE sbtest.sbtest1' | cut -f2)" ] \
    || die "the destination differs from the source"

# Per statement kind (first word; SELECTs of the copy and verification are on the
# source): count and longest Query_time.
longest() { # slow log -> "KIND COUNT MAX" lines
    awk '/^# Query_time:/ { t = $3; next }
         /^#/ || /^SET timestamp=/ || /^use / || t == "" { next }
         { kind = toupper($1); sub(/;$/, "", kind); n[kind]++; if (t + 0 > max[kind] + 0) max[kind] = t; t = "" }
         END { for (k in n) printf "%s %d %.3f\n", k, n[k], max[k] }' "$1" | sort -k3 -n -r
}
report() {
    echo "tidemark ($BUILT_FROM), MariaDB $SERVER_VERSION, $(nproc) cores, $(machine_ram);"
    echo "1 table x $ROWS rows, then $CHANGES row changes."
    echo
    echo "| server | statement | count | longest, s |"
    echo "|---|---|---|---|"
    for side in source destination; do
        longest "$WORK/$side/slow.log" | head -8 | while read -r kind n max; do
            echo "| $side | $kind | $n | $max |"
        done
    done
}
emit_report
