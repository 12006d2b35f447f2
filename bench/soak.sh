#!/usr/bin/env bash
# Soak test of incremental migration's crash safety (not run in CI): a schema + full +
# incremental task is killed with SIGKILL over and over at random moments while the
# source is written to without pause; in the end the writes stop, the task catches up
# (`tidemark run --stop-when-caught-up`) and every table's CHECKSUM TABLE must be the
# same on the source and the destination. Exits non-zero on any difference, or when
# tidemark fails by itself.
#
#   bash bench/soak.sh [--kills N] [options]
#
# Options (defaults in brackets):
#   --kills N         SIGKILL cycles: start `tidemark run`, sleep, `kill -9` [50]
#   --min-sleep S     shortest time a run lives before its SIGKILL, seconds [1]
#   --max-sleep S     longest time a run lives before its SIGKILL, seconds [10]
#   --tables N        sysbench tables (oltp_write_only while the task runs) [2]
#   --rows N          rows per sysbench table, and rows of the `soak` tables [20000]
#   --rate N          sysbench transactions per second; 0 = unlimited [100]
#   --sb-threads N    sysbench client threads [2]
#   --big-every N     the SQL writer commits a 20 000-row transaction every N of its
#                     small ones; 0 = never [300]
#   --batch-rows N    tidemark [incremental] batch_rows [not set: tidemark's default]
#   --threads N       tidemark [incremental] threads [not set: tidemark's default]
#   --seed N          seed of the kill timings and the SQL writer's statements (the
#                     interleaving with the task still varies) [not set: random]
#   --catch-up-timeout S  how long the final --stop-when-caught-up run may take [900]
#   --logs DIR        keep the task file, tidemark's logs and the checksums in DIR
#
# Without sysbench (it is used when installed) the SQL writer alone writes.
#
# Environment:
#   BENCH_TARGET_DIR  cargo target directory for the release build
#                     [$CARGO_TARGET_DIR, else <repo>/target]
#   TIDEMARK_BIN      use this tidemark binary instead of building one
#   BENCH_TMPDIR      where the servers' data goes [$TMPDIR or /tmp]
#
# What runs: two mariadbd (source with a ROW/FULL binlog, destination), in a temporary
# directory on free ports; sysbench oltp_write_only on `sbtest`; a SQL writer (one
# `mariadb` client fed by a shell loop) on the `soak` database: inserts, updates,
# primary-key changes, deletes, multi-statement transactions, zero dates, JSON, BLOBs,
# and now and then one 20 000-row transaction. Everything is stopped and removed on
# exit. Missing MariaDB tools are installed with apt-get.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BENCH_NAME=soak

KILLS=50
MIN_SLEEP=1
MAX_SLEEP=10
TABLES=2
ROWS=20000
RATE=100
SB_THREADS=2
BIG_EVERY=300
BATCH_ROWS=""
THREADS=""
SEED=""
CATCH_UP_TIMEOUT=900
LOGS=""

while [ $# -gt 0 ]; do
    case "$1" in
        --kills) KILLS="${2:?}"; shift 2 ;;
        --min-sleep) MIN_SLEEP="${2:?}"; shift 2 ;;
        --max-sleep) MAX_SLEEP="${2:?}"; shift 2 ;;
        --tables) TABLES="${2:?}"; shift 2 ;;
        --rows) ROWS="${2:?}"; shift 2 ;;
        --rate) RATE="${2:?}"; shift 2 ;;
        --sb-threads) SB_THREADS="${2:?}"; shift 2 ;;
        --big-every) BIG_EVERY="${2:?}"; shift 2 ;;
        --batch-rows) BATCH_ROWS="${2:?}"; shift 2 ;;
        --threads) THREADS="${2:?}"; shift 2 ;;
        --seed) SEED="${2:?}"; shift 2 ;;
        --catch-up-timeout) CATCH_UP_TIMEOUT="${2:?}"; shift 2 ;;
        --logs) LOGS="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
whole_numbers KILLS MIN_SLEEP MAX_SLEEP TABLES ROWS RATE SB_THREADS BIG_EVERY CATCH_UP_TIMEOUT
whole_numbers_or_empty BATCH_ROWS THREADS SEED
[ "$MAX_SLEEP" -ge "$MIN_SLEEP" ] || die "--max-sleep must be at least --min-sleep"
[ "$TABLES" -ge 1 ] && [ "$ROWS" -ge 100 ] && [ "$SB_THREADS" -ge 1 ] \
    || die "--tables and --sb-threads must be at least 1, --rows at least 100"
[ -z "$SEED" ] || RANDOM=$SEED

# ---------------------------------------------------------------- tools -----------
need mariadb-server mariadbd mysqld
need mariadb-server mariadb-install-db mysql_install_db
need mariadb-client mariadb
install_missing
find_mariadb
SYSBENCH="$(find_tool sysbench || true)"
[ -n "$SYSBENCH" ] || log "sysbench not found: the SQL writer alone writes"

# ---------------------------------------------------------------- build -----------
build_tidemark

# ---------------------------------------------------------------- servers ---------
KEEP_NAMES=('*.log' '*.toml' '*.checksums')
TM_PID=""
SQL_WRITER_PID=""
SYSBENCH_PID=""
cleanup_first() { # before the servers stop: the task and the writers
    local pid
    touch "$WORK/stop-writers" 2>/dev/null || true
    # Only the processes still running (their ids are cleared once waited for).
    for pid in "$TM_PID" "$SYSBENCH_PID"; do
        [ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true
    done
    for pid in "$TM_PID" "$SYSBENCH_PID" "$SQL_WRITER_PID"; do
        [ -z "$pid" ] || wait "$pid" 2>/dev/null || true
    done
}
make_work soak

SERVER_OPTS=(--innodb-buffer-pool-size=512M --innodb-log-file-size=256M --innodb-flush-log-at-trx-commit=2
    --max-connections=500 --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci)
CLIENT_OPTS=(--default-character-set=utf8mb4)   # of src_sql and dst_sql
start_source_and_destination --default-time-zone=+05:30 -- --default-time-zone=-08:00

rand_between() { # lo hi (inclusive), uniform enough for ranges below 2^30
    echo $(( $1 + ( (RANDOM << 15 | RANDOM) % ($2 - $1 + 1) ) ))
}

# ---------------------------------------------------------------- data ------------
log "MariaDB $(src_sql 'SELECT VERSION()'); loading data"
# (MariaDB's seq_1_to_N tables need a selected database.)
src_sql "CREATE DATABASE soak; USE soak;
    CREATE TABLE soak.mixed (id INT PRIMARY KEY, v INT, d DECIMAL(20,6), s VARCHAR(100) CHARACTER SET utf8mb4,
      b BLOB, j JSON, t DATETIME(6), ts TIMESTAMP(3) NULL, dt DATE, e ENUM('', 'a', 'b', 'c'), bits BIT(13),
      f DOUBLE, KEY (v));
    CREATE TABLE soak.big (id BIGINT PRIMARY KEY, a INT, b VARCHAR(100), KEY (a));
    CREATE TABLE soak.order_lines (order_id INT, line INT, qty INT, PRIMARY KEY (order_id, line));
    INSERT INTO soak.mixed SELECT seq, seq % 100, seq / 7, CONCAT('row ', seq, ' é😀'), UNHEX(SHA2(seq, 256)),
      JSON_OBJECT('n', seq), '2020-01-01' + INTERVAL seq SECOND, FROM_UNIXTIME(1000000000 + seq),
      '2000-01-01' + INTERVAL seq DAY, ELT(1 + seq % 4, '', 'a', 'b', 'c'), seq % 8192, seq / 3
      FROM seq_1_to_$ROWS;
    INSERT INTO soak.big SELECT seq, seq % 1000, CONCAT('initial ', seq) FROM seq_1_to_$ROWS;
    INSERT INTO soak.order_lines SELECT seq, 1 + seq % 3, seq % 7 FROM seq_1_to_$ROWS;"
if [ -n "$SYSBENCH" ]; then
    src_sql 'CREATE DATABASE sbtest'
    SB_ARGS=(--db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$SRC_PORT" --mysql-user=root
        --mysql-db=sbtest --tables="$TABLES" --table-size="$ROWS")
    "$SYSBENCH" oltp_write_only "${SB_ARGS[@]}" --threads="$TABLES" prepare >"$WORK/sysbench-prepare.log" 2>&1 \
        || { cat "$WORK/sysbench-prepare.log" >&2; die "sysbench prepare failed"; }
fi
DATABASES=(soak)
[ -z "$SYSBENCH" ] || DATABASES+=(sbtest)

# ---------------------------------------------------------------- writers ---------
# One mariadb client fed by a shell loop: each line is one transaction. --force keeps
# it going after an error (a duplicate key from a primary-key change, a deadlock).
sql_writer() {
    local n=0 id other big_id=$(( 10 * ROWS + 1000000 )) v
    while [ ! -e "$WORK/stop-writers" ]; do
        n=$(( n + 1 ))
        id=$(( 1 + RANDOM % (ROWS + ROWS / 10) ))
        v=$(( RANDOM % 2000 - 1000 ))
        case $(( RANDOM % 12 )) in
            0|1) echo "INSERT INTO mixed VALUES ($id, $v, $v.125, 'w$n', UNHEX(REPEAT(SHA2($n, 256), 1 + $n % 40)), JSON_ARRAY($n, 'x', JSON_OBJECT('k', $v)), NOW(6), NOW(3), '0000-00-00', 'b', ($v + 1000) % 8192, $v / 7e30) ON DUPLICATE KEY UPDATE v = v + 1, s = CONCAT(LEFT(s, 80), '+'), dt = '0000-00-00';" ;;
            2|3) echo "START TRANSACTION; UPDATE mixed SET v = v * 2 % 100000, j = JSON_SET(COALESCE(j, '{}'), '\$.w', $n) WHERE id = $id; UPDATE big SET a = a + 1 WHERE id = $id; INSERT INTO order_lines VALUES ($id, 9, 1) ON DUPLICATE KEY UPDATE qty = qty + 1; COMMIT;" ;;
            4) echo "UPDATE IGNORE mixed SET id = id + $(( 2 * ROWS )) WHERE id = $id;" ;;
            5) other=$(( 1 + RANDOM % ROWS ))
               echo "START TRANSACTION; UPDATE IGNORE mixed SET id = -$id WHERE id = $id; UPDATE IGNORE mixed SET id = $id WHERE id = $other; UPDATE IGNORE mixed SET id = $other WHERE id = -$id; COMMIT;" ;;
            6) echo "DELETE FROM mixed WHERE id BETWEEN $id AND $id + 2;" ;;
            7) echo "START TRANSACTION; DELETE FROM big WHERE id = $id; DELETE FROM order_lines WHERE order_id = $id; COMMIT;" ;;
            8) echo "UPDATE mixed SET b = NULL, j = NULL, ts = NULL, t = '0000-00-00 00:00:00', e = '', f = -0e0 WHERE id = $id;" ;;
            9) echo "UPDATE big SET b = CONCAT('u$n ', REPEAT('y', $n % 60)) WHERE id BETWEEN $id AND $id + 20;" ;;
            10) echo "UPDATE IGNORE order_lines SET order_id = order_id + $(( 3 * ROWS )) WHERE order_id = $id;" ;;
            *) echo "REPLACE INTO big VALUES ($id, $v, 'r$n');" ;;
        esac
        if [ "$BIG_EVERY" -gt 0 ] && [ $(( n % BIG_EVERY )) -eq 0 ]; then
            echo "START TRANSACTION; INSERT INTO big SELECT $big_id + seq, seq % 1000, CONCAT('bulk ', seq) FROM seq_1_to_20000; UPDATE big SET a = -a WHERE id BETWEEN $big_id AND $big_id + 500; DELETE FROM big WHERE id BETWEEN $big_id + 1000 AND $big_id + 1100; COMMIT;"
            big_id=$(( big_id + 100000 ))
        fi
        sleep 0.01
    done | "$MARIADB" --no-defaults --default-character-set=utf8mb4 -h127.0.0.1 -P"$SRC_PORT" -uroot --force \
        --init-command="SET sql_mode = 'ALLOW_INVALID_DATES', time_zone = '+00:00'" soak \
        >>"$WORK/sql-writer.log" 2>&1
}

start_writers() {
    sql_writer &
    SQL_WRITER_PID=$!
    if [ -n "$SYSBENCH" ]; then
        # --time=0: until killed. Deadlocks and lock wait timeouts are ignored (retried).
        "$SYSBENCH" oltp_write_only "${SB_ARGS[@]}" --threads="$SB_THREADS" --rate="$RATE" --time=0 \
            --report-interval=0 --mysql-ignore-errors=1213,1205,1020 run >"$WORK/sysbench-run.log" 2>&1 &
        SYSBENCH_PID=$!
    fi
}

stop_writers() {
    touch "$WORK/stop-writers"
    if [ -n "$SYSBENCH_PID" ]; then
        kill "$SYSBENCH_PID" 2>/dev/null || true
        wait "$SYSBENCH_PID" 2>/dev/null || true
        SYSBENCH_PID=""
    fi
    # The writer's loop ends at the stop file; its client then ends at end of input.
    wait "$SQL_WRITER_PID" 2>/dev/null || true
    SQL_WRITER_PID=""
}

# ---------------------------------------------------------------- the task --------
TASK="$WORK/soak.toml"
{
    echo "name = \"soak\""
    echo "[source]"
    echo "url = \"mysql://root@127.0.0.1:$SRC_PORT\""
    echo "tls = \"disabled\""
    echo "[destination]"
    echo "url = \"mysql://root@127.0.0.1:$DST_PORT\""
    echo "tls = \"disabled\""
    echo "[migration]"
    echo "types = [\"schema\", \"full\", \"incremental\"]"
    echo "[full]"
    echo "chunk_rows = 5000"
    if [ -n "$BATCH_ROWS$THREADS" ]; then
        echo "[incremental]"
        [ -z "$BATCH_ROWS" ] || echo "batch_rows = $BATCH_ROWS"
        [ -z "$THREADS" ] || echo "threads = $THREADS"
    fi
    echo "[state]"
    echo "dir = \"$WORK/state\""
    for db in "${DATABASES[@]}"; do
        echo "[[objects]]"
        echo "database = \"$db\""
    done
} >"$TASK"

start_writers
log "writers running; $KILLS SIGKILL cycles of $MIN_SLEEP-$MAX_SLEEP s (databases: ${DATABASES[*]})"
for i in $(seq 1 "$KILLS"); do
    RUN_LOG="$WORK/run-$i.log"
    "$TIDEMARK" run --no-progress "$TASK" >"$RUN_LOG" 2>&1 &
    TM_PID=$!
    ms=$(rand_between $(( MIN_SLEEP * 1000 )) $(( MAX_SLEEP * 1000 )))
    sleep "$(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 1000 }')"
    if ! kill -0 "$TM_PID" 2>/dev/null; then
        rc=0; wait "$TM_PID" || rc=$?
        TM_PID=""
        tail -n 30 "$RUN_LOG" >&2
        die "run $i: tidemark exited by itself (status $rc) before its SIGKILL; its log is above"
    fi
    kill -9 "$TM_PID"
    wait "$TM_PID" 2>/dev/null || true
    TM_PID=""
    state=$("$TIDEMARK" status --json "$TASK" 2>/dev/null | sed -n 's/^ *"status": "\([^"]*\)".*/\1/p' | head -n 1)
    applied=$("$TIDEMARK" status "$TASK" 2>/dev/null | sed -n 's/^binlog applied up to \([^ ]*\).*/\1/p')
    log "run $i/$KILLS: killed after $ms ms (state: ${state:-?}${applied:+, applied up to $applied})"
done

log "stopping the writers"
stop_writers
if grep -q '^ERROR 1064 ' "$WORK/sql-writer.log"; then
    grep -m 3 -B 3 '^ERROR 1064 ' "$WORK/sql-writer.log" >&2
    die "the SQL writer sent invalid SQL (a bug of this script)"
fi
errors=$({ grep -o '^ERROR [0-9]*' "$WORK/sql-writer.log" || true; } | sort | uniq -c \
    | awk '{ printf "%s%s x %s", sep, $3, $1; sep = ", " }')
log "SQL writer errors: ${errors:-none} (duplicate keys and deadlocks are expected: --force goes on)"
log "catching up: tidemark run --stop-when-caught-up"
if ! timeout "$CATCH_UP_TIMEOUT" "$TIDEMARK" run --no-progress --stop-when-caught-up "$TASK" >"$WORK/catch-up.log" 2>&1; then
    tail -n 30 "$WORK/catch-up.log" >&2
    die "the final --stop-when-caught-up run failed or took more than $CATCH_UP_TIMEOUT s"
fi
tail -n 2 "$WORK/catch-up.log" >&2

# ---------------------------------------------------------------- verify ----------
IN_LIST=$(printf "'%s'," "${DATABASES[@]}"); IN_LIST=${IN_LIST%,}
mapfile -t TABLE_NAMES < <(src_sql "SELECT CONCAT('\`', TABLE_SCHEMA, '\`.\`', TABLE_NAME, '\`') FROM information_schema.TABLES
    WHERE TABLE_SCHEMA IN ($IN_LIST) AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1")
[ "${#TABLE_NAMES[@]}" -gt 0 ] || die "no tables on the source"
QUALIFIED=$(IFS=,; echo "${TABLE_NAMES[*]}")
src_sql "CHECKSUM TABLE $QUALIFIED" | sort >"$WORK/source.checksums"
dst_sql "CHECKSUM TABLE $QUALIFIED" | sort >"$WORK/destination.checksums"
if ! diff -u "$WORK/source.checksums" "$WORK/destination.checksums" >&2; then
    die "CHECKSUM TABLE differs after $KILLS SIGKILLs (diff above: - source, + destination)"
fi
! grep -q $'\tNULL$' "$WORK/destination.checksums" || die "CHECKSUM TABLE returned NULL (a table is missing)"
src_rows=$(src_sql "SELECT SUM(TABLE_ROWS) FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ($IN_LIST)")
binlog=$(src_sql "SHOW MASTER STATUS" | cut -f1,2)
log "PASS: CHECKSUM TABLE equal on all ${#TABLE_NAMES[@]} table(s) after $KILLS SIGKILLs (~$src_rows rows; source binlog at $binlog)"
