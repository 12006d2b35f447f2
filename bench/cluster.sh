#!/usr/bin/env bash
# Benchmark into a 3-node MariaDB Galera cluster (the cluster destination, issue 11), in two
# sections (--sections, default both):
#
#   full     schema + full copy of sysbench-shaped tables into node 1: tidemark against
#            mydumper+myloader, each into a cluster emptied first.
#   catchup  a sysbench oltp_write_only binlog written on the source while nothing
#            replicates, then applied into the cluster (node 1) from the same start
#            position over identical copies of the data: tidemark against MariaDB's own
#            replication with node 1 as the source's replica (serial SQL thread; with
#            --tools ...,mariadb-replica-parallel also slave_parallel_threads = --threads in
#            conservative mode; on MariaDB 10.11 / Galera 4.23 it hung in both optimistic
#            and conservative mode, workers "Waiting for certification" / "for prior
#            transaction to commit", see docs/benchmarks.md).
#
# Every run is verified with CHECKSUM TABLE read on every node (wsrep_sync_wait = 1).
#
#   bash bench/cluster.sh [--tables N] [--rows N] [--events N] [options]
#
# Options (defaults in brackets):
#   --sections LIST   comma list of full,catchup [full,catchup]
#   --tables N        sysbench tables [4]
#   --rows N          rows per table [100000]
#   --events N        catchup: oltp_write_only transactions run on the source [20000]
#   --threads N       tidemark [full] and [incremental] threads, slave_parallel_threads [4]
#   --dump-threads N  mydumper/myloader --threads [2]
#   --sb-threads N    sysbench client threads generating the catch-up workload [4]
#   --tools LIST      comma list of tidemark,mydumper,mariadb-replica,mariadb-replica-parallel
#                     [tidemark,mydumper,mariadb-replica]
#   --out FILE        also write the results (markdown) to FILE
#   --logs DIR        keep the tools' logs, /usr/bin/time reports and task files in DIR
#
# Environment: BENCH_TARGET_DIR, TIDEMARK_BIN, BENCH_TMPDIR as for bench/full.sh.
#
# Everything the script starts (a source mariadbd and three Galera nodes, in a temporary
# directory, on free ports) is stopped and removed on exit. Missing tools (galera-4, rsync,
# mydumper, sysbench, ...) are installed with apt-get.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BENCH_NAME=cluster
USAGE_LAST_LINE=0

TABLES=4
ROWS=100000
EVENTS=20000
THREADS=4
DUMP_THREADS=2
SB_THREADS=4
TOOLS="tidemark,mydumper,mariadb-replica"
SECTIONS="full,catchup"
OUT=""
LOGS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --sections) SECTIONS="${2:?}"; shift 2 ;;
        --tables) TABLES="${2:?}"; shift 2 ;;
        --rows) ROWS="${2:?}"; shift 2 ;;
        --events) EVENTS="${2:?}"; shift 2 ;;
        --threads) THREADS="${2:?}"; shift 2 ;;
        --dump-threads) DUMP_THREADS="${2:?}"; shift 2 ;;
        --sb-threads) SB_THREADS="${2:?}"; shift 2 ;;
        --tools) TOOLS="${2:?}"; shift 2 ;;
        --out) OUT="${2:?}"; shift 2 ;;
        --logs) LOGS="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
whole_numbers TABLES ROWS EVENTS THREADS DUMP_THREADS SB_THREADS
[ "$TABLES" -ge 1 ] && [ "$ROWS" -ge 1 ] && [ "$EVENTS" -ge 1 ] && [ "$THREADS" -ge 1 ] \
    || die "--tables, --rows, --events and --threads must be at least 1"
for s in ${SECTIONS//,/ }; do
    case "$s" in full|catchup) ;; *) die "--sections: unknown section '$s'" ;; esac
done
for t in ${TOOLS//,/ }; do
    case "$t" in tidemark|mydumper|mariadb-replica|mariadb-replica-parallel) ;; *) die "--tools: unknown tool '$t'" ;; esac
done
section() { [[ ",$SECTIONS," == *",$1,"* ]]; }
want() { [[ ",$TOOLS," == *",$1,"* ]]; }

# ---------------------------------------------------------------- tools -----------
PROVIDER=/usr/lib/galera/libgalera_smm.so
need mariadb-server mariadbd mysqld
need mariadb-server mariadb-install-db mysql_install_db
need mariadb-client mariadb
need mariadb-client mariadb-dump
need mariadb-client mariadb-binlog mysqlbinlog
need rsync rsync
need sysbench sysbench
if section full && want mydumper; then need mydumper mydumper; need mydumper myloader; fi
[ -e "$PROVIDER" ] || missing+=(galera-4)
[ -x /usr/bin/time ] || missing+=(time)
install_missing
find_mariadb
MARIADB_DUMP="$(find_tool mariadb-dump)" || die "mariadb-dump not found"
MARIADB_BINLOG="$(find_tool mariadb-binlog mysqlbinlog)" || die "mariadb-binlog not found"
SYSBENCH="$(find_tool sysbench)" || die "sysbench not found"

build_tidemark
built_from

# ---------------------------------------------------------------- servers ---------
KEEP_NAMES=('*.log' '*.err' '*.time' 'time.txt' '*.toml' '*.checksums' '*.tsv')
make_work cluster
# The Galera nodes run as `mysql` when the script runs as root (rsync SST writes the
# joiner's files as that user), so they must reach their directories.
chmod 755 "$WORK"
take_port SRC_PORT
log "starting the source (127.0.0.1:$SRC_PORT, binlog ROW/FULL) in $WORK"
start_source
wait_ready source "$SRC_PORT" "$SRC_PID"

# Galera nodes: smaller buffer pools than the source's (four servers share the machine).
NODE_OPTS=(--innodb-buffer-pool-size=512M --innodb-log-file-size=256M --innodb-flush-log-at-trx-commit=2)
NODES=3
NODE_PORT=(); NODE_PID=(); GCOMM=()
for i in $(seq 1 $NODES); do
    take_port PORT_C; NODE_PORT[$i]=$PORT_C
    take_port PORT_G; GC_PORT[$i]=$PORT_G
    take_port PORT_I; IST_PORT[$i]=$PORT_I
    take_port PORT_S; SST_PORT[$i]=$PORT_S
    GCOMM+=("127.0.0.1:${GC_PORT[$i]}")
done
CLUSTER_ADDRESS="gcomm://$(IFS=,; echo "${GCOMM[*]}")"
node_state() { # i -> "size state" of node i, or nothing
    sql_at "${NODE_PORT[$1]}" "SELECT MAX(IF(VARIABLE_NAME = 'WSREP_CLUSTER_SIZE', VARIABLE_VALUE, NULL)),
        MAX(IF(VARIABLE_NAME = 'WSREP_LOCAL_STATE_COMMENT', VARIABLE_VALUE, NULL))
        FROM information_schema.GLOBAL_STATUS" 2>/dev/null || true
}
start_node() { # i
    local i=$1 dir="$WORK/node$1" user=root extra=()
    mkdir -p "$dir/tmp"
    if [ "$(id -u)" = 0 ]; then user=mysql; chown -R mysql:mysql "$dir"; fi
    "$INSTALL_DB" --no-defaults --datadir="$dir/data" --user="$user" \
        --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 \
        || { cat "$dir/install.log" >&2; die "mariadb-install-db failed for node $i"; }
    [ "$i" -ne 1 ] || extra=(--wsrep-new-cluster)
    touch "$WORK/node$i.err"; [ "$user" = root ] || chown mysql:mysql "$WORK/node$i.err"
    "$MARIADBD" --no-defaults --datadir="$dir/data" --user="$user" --port="${NODE_PORT[$i]}" \
        --bind-address=127.0.0.1 --socket="$dir/sock" --pid-file="$dir/pid" --tmpdir="$dir/tmp" \
        --log-error="$WORK/node$i.err" --server-id=$(( 10 + i )) "${NODE_OPTS[@]}" \
        --max-connections=500 --binlog-format=ROW --innodb-autoinc-lock-mode=2 \
        --wsrep-on=ON --wsrep-provider="$PROVIDER" --wsrep-cluster-name=tidemark-bench \
        --wsrep-cluster-address="$CLUSTER_ADDRESS" --wsrep-node-name="node$i" \
        --wsrep-node-address="127.0.0.1:${GC_PORT[$i]}" --wsrep-node-incoming-address="127.0.0.1:${NODE_PORT[$i]}" \
        --wsrep-provider-options="base_port=${GC_PORT[$i]};gmcast.listen_addr=tcp://127.0.0.1:${GC_PORT[$i]};ist.recv_addr=127.0.0.1:${IST_PORT[$i]};gcache.size=512M" \
        --wsrep-sst-method=rsync --wsrep-sst-receive-address="127.0.0.1:${SST_PORT[$i]}" \
        "${extra[@]}" >/dev/null 2>&1 &
    NODE_PID[$i]=$!
    SERVER_PIDS+=($!)
    local k
    for k in $(seq 1 1800); do
        [ "$(node_state "$i")" = "$i"$'\t'"Synced" ] && return 0
        kill -0 "${NODE_PID[$i]}" 2>/dev/null || { tail -n 40 "$WORK/node$i.err" >&2; die "node $i exited"; }
        sleep 0.1
    done
    tail -n 40 "$WORK/node$i.err" >&2
    die "node $i did not join the cluster as Synced within 180 s"
}
for i in $(seq 1 $NODES); do
    log "starting Galera node $i (127.0.0.1:${NODE_PORT[$i]})"
    start_node "$i"
done
N1=${NODE_PORT[1]}
GALERA_VERSION=$(sql_at "$N1" "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_PROVIDER_VERSION'")
log "  cluster of $NODES synced (Galera $GALERA_VERSION)"

# ---------------------------------------------------------------- data ------------
generate_sbtest oltp_write_only
sb() { # sysbench oltp_write_only against the source: [options...] command
    "$SYSBENCH" oltp_write_only --db-driver=mysql --tables="$TABLES" --table-size="$ROWS" \
        --mysql-host=127.0.0.1 --mysql-port="$SRC_PORT" --mysql-user=root --mysql-db=sbtest "$@"
}

# ---------------------------------------------------------------- helpers ---------
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
nodes_cpu() { local i t=0; for i in $(seq 1 $NODES); do t=$(awk -v a="$t" -v b="$(cpu_s "${NODE_PID[$i]}")" 'BEGIN { printf "%.2f", a + b }'); done; echo "$t"; }
record() { # section label wall client_cpu rss src_cpu nodes_cpu machine_cpu note
    local other
    other=$(awk -v m="$8" -v a="${4/-/0}" -v b="$6" -v c="$7" 'BEGIN { o = m - a - b - c; printf "%.2f", (o < 0 ? 0 : o) }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$other" "$9" >>"$RESULTS"
}
timed() { local tf=$1 lf=$2; shift 2; "$TIME" -v -o "$tf" "$@" >"$lf" 2>&1; }

empty_cluster() { # DROP DATABASE on node 1 (TOI: on every node), then flush every node
    sql_at "$N1" 'DROP DATABASE IF EXISTS sbtest'
    local i; for i in $(seq 1 $NODES); do settle "${NODE_PORT[$i]}"; done
}
verify_nodes() { # label sums: CHECKSUM TABLE on every node, each after it applied everything
    local i
    for i in $(seq 1 $NODES); do
        sql_at "${NODE_PORT[$i]}" "SET SESSION wsrep_sync_wait = 1; CHECKSUM TABLE $QUALIFIED" | sort >"$RUN_DIR/$1.node$i.checksums"
        diff -u "$2" "$RUN_DIR/$1.node$i.checksums" >&2 \
            || die "$1: node $i's CHECKSUM TABLE differs from the source's (diff above: - source, + node $i)"
    done
    log "  $1: CHECKSUM TABLE equal to the source's on every node (${#TABLE_NAMES[@]} table(s))"
}
task_header() { # name
    cat <<EOF
name = "$1"
[source]
url = "mysql://root@127.0.0.1:$SRC_PORT"
tls = "disabled"
[destination]
url = "mysql://root@127.0.0.1:$N1"
tls = "disabled"
EOF
}

# ---------------------------------------------------------------- full ------------
full_tidemark() {
    local dir="$RUN_DIR/tidemark"
    mkdir -p "$dir"
    { task_header bench-cluster-full; cat <<EOF
[migration]
types = ["schema", "full"]
[full]
threads = $THREADS
[state]
dir = "$dir/state"
[[objects]]
database = "sbtest"
EOF
    } >"$dir/task.toml"
    empty_cluster
    log "full: tidemark run (threads = $THREADS) into node 1"
    local s0 n0 m0 t0 t1
    s0=$(cpu_s "$SRC_PID"); n0=$(nodes_cpu); m0=$(machine_cpu); t0=$(now)
    timed "$dir/time.txt" "$dir/tidemark.log" "$TIDEMARK" run --no-progress "$dir/task.toml" \
        || { tail -n 40 "$dir/tidemark.log" >&2; die "full: tidemark run failed"; }
    t1=$(now)
    log "  tidemark: $(sub "$t1" "$t0") s"
    record full tidemark "$(sub "$t1" "$t0")" "$(cpu_of "$dir/time.txt")" "$(rss_mib "$dir/time.txt")" \
        "$(sub "$(cpu_s "$SRC_PID")" "$s0")" "$(sub "$(nodes_cpu)" "$n0")" "$(sub "$(machine_cpu)" "$m0")" "threads = $THREADS"
    verify_nodes full-tidemark "$WORK/source.checksums"
}
full_mydumper() {
    local dir="$RUN_DIR/mydumper" dump="$RUN_DIR/mydumper/dump"
    mkdir -p "$dir"
    local chunking=() note="--threads $DUMP_THREADS, no row chunking"
    if [ "$(mydumper --help 2>&1 | grep -c -- '--rows')" -gt 0 ]; then
        chunking=(--rows 50000); note="--threads $DUMP_THREADS, --rows 50000"
    fi
    empty_cluster
    log "full: mydumper + myloader ($note) into node 1"
    local s0 n0 m0 t0 t1 t2
    s0=$(cpu_s "$SRC_PID"); n0=$(nodes_cpu); m0=$(machine_cpu); t0=$(now)
    timed "$dir/mydumper.time" "$dir/mydumper.log" mydumper -h 127.0.0.1 -P "$SRC_PORT" -u root \
        -B sbtest -o "$dump" --threads "$DUMP_THREADS" "${chunking[@]}" \
        || { cat "$dir/mydumper.log" >&2; die "mydumper failed"; }
    t1=$(now)
    timed "$dir/myloader.time" "$dir/myloader.log" myloader -h 127.0.0.1 -P "$N1" -u root \
        -d "$dump" --threads "$DUMP_THREADS" \
        || { cat "$dir/myloader.log" >&2; die "myloader failed"; }
    t2=$(now)
    log "  mydumper $(sub "$t1" "$t0") s + myloader $(sub "$t2" "$t1") s"
    record full "mydumper+myloader" "$(sub "$t2" "$t0")" \
        "$(awk -v a="$(cpu_of "$dir/mydumper.time")" -v b="$(cpu_of "$dir/myloader.time")" 'BEGIN { printf "%.2f", a + b }')" \
        "$(awk -v a="$(rss_mib "$dir/mydumper.time")" -v b="$(rss_mib "$dir/myloader.time")" 'BEGIN { printf "%.1f", (a > b ? a : b) }')" \
        "$(sub "$(cpu_s "$SRC_PID")" "$s0")" "$(sub "$(nodes_cpu)" "$n0")" "$(sub "$(machine_cpu)" "$m0")" \
        "$note; mydumper $(sub "$t1" "$t0") s, myloader $(sub "$t2" "$t1") s"
    rm -rf "$dump"
    verify_nodes full-mydumper "$WORK/source.checksums"
}

RUN_DIR="$WORK/run"
mkdir -p "$RUN_DIR"
if section full; then
    if want tidemark; then full_tidemark; fi
    if want mydumper; then full_mydumper; fi
fi

# ---------------------------------------------------------------- catch-up --------
if section catchup; then
    "$MARIADB_DUMP" --no-defaults -h127.0.0.1 -P"$SRC_PORT" -uroot --single-transaction sbtest \
        >"$WORK/initial.sql" 2>"$WORK/dump.log" || { cat "$WORK/dump.log" >&2; die "mariadb-dump failed"; }
    src_sql "CHECKSUM TABLE $QUALIFIED" | sort >"$WORK/initial.checksums"
    flush_binlogs
    read -r START_FILE START_POS _ < <(src_sql 'SHOW MASTER STATUS')
    log "catchup: running $EVENTS oltp_write_only transaction(s) on the source (sysbench --threads=$SB_THREADS)"
    t0=$(now)
    sb --threads="$SB_THREADS" --events="$EVENTS" --time=0 run >"$WORK/sysbench-run.log" 2>&1 \
        || { cat "$WORK/sysbench-run.log" >&2; die "sysbench run failed"; }
    WORKLOAD_S=$(sub "$(now)" "$t0")
    read -r END_FILE END_POS _ < <(src_sql 'SHOW MASTER STATUS')
    src_sql "CHECKSUM TABLE $QUALIFIED" | sort >"$WORK/end.checksums"
    count_binlog_range
    log "  $WORKLOAD_S s; $TRANSACTIONS transactions, $ROW_CHANGES row changes, $START_FILE:$START_POS .. $END_FILE:$END_POS"
    settle "$SRC_PORT"
fi

load_initial() { # label: the initial data on the cluster (through node 1), nothing else in sbtest
    sql_at "$N1" 'DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest'
    "$MARIADB" --no-defaults -h127.0.0.1 -P"$N1" -uroot sbtest <"$WORK/initial.sql" || die "$1: loading the dump failed"
    verify_nodes "$1.initial" "$WORK/initial.checksums"
    local i; for i in $(seq 1 $NODES); do settle "${NODE_PORT[$i]}"; done
}
catchup_tidemark() {
    local dir="$RUN_DIR/catchup-tidemark"
    mkdir -p "$dir"
    { task_header bench-cluster-catchup; cat <<EOF
[migration]
types = ["incremental"]
start_position = "$START_FILE:$START_POS"
[incremental]
threads = $THREADS
[state]
dir = "$dir/state"
[[objects]]
database = "sbtest"
EOF
    } >"$dir/task.toml"
    load_initial catchup-tidemark
    log "catchup: tidemark run --stop-when-caught-up (incremental threads = $THREADS) into node 1"
    local s0 n0 m0 t0 t1
    s0=$(cpu_s "$SRC_PID"); n0=$(nodes_cpu); m0=$(machine_cpu); t0=$(now)
    timed "$dir/time.txt" "$dir/tidemark.log" "$TIDEMARK" run --no-progress --stop-when-caught-up "$dir/task.toml" \
        || { tail -n 40 "$dir/tidemark.log" >&2; die "catchup: tidemark run failed"; }
    t1=$(now)
    local applied
    applied=$(log_stamp "$dir/tidemark.log" 'incremental: caught up at' "$t0")
    [ -n "$applied" ] || die "catchup: no \"caught up\" line in tidemark's log"
    log "  tidemark: caught up after $applied s, exited after $(sub "$t1" "$t0") s"
    record catchup tidemark "$applied" "$(cpu_of "$dir/time.txt")" "$(rss_mib "$dir/time.txt")" \
        "$(sub "$(cpu_s "$SRC_PID")" "$s0")" "$(sub "$(nodes_cpu)" "$n0")" "$(sub "$(machine_cpu)" "$m0")" \
        "threads = $THREADS; until its \"caught up\" line"
    verify_nodes catchup-tidemark "$WORK/end.checksums"
}
catchup_replica() { # label parallel-threads (0 = serial)
    local label=$1 par=$2
    REP_PORT=$N1
    rep_sql 'STOP SLAVE; RESET SLAVE ALL' >/dev/null 2>&1 || true
    load_initial "catchup-$label"
    rep_sql "SET GLOBAL gtid_slave_pos = ''; SET GLOBAL slave_parallel_threads = $par;
        SET GLOBAL slave_parallel_mode = 'conservative';
        CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = $SRC_PORT, MASTER_USER = 'root',
            MASTER_PASSWORD = '', MASTER_LOG_FILE = '$START_FILE', MASTER_LOG_POS = $START_POS,
            MASTER_USE_GTID = no"
    local how="serial SQL thread"
    [ "$par" -eq 0 ] || how="slave_parallel_threads = $par, conservative"
    log "catchup: $label: node 1 replicates from $START_FILE:$START_POS ($how)"
    local s0 n0 m0 t0 t1
    s0=$(cpu_s "$SRC_PID"); n0=$(nodes_cpu); m0=$(machine_cpu); t0=$(now)
    rep_sql 'START SLAVE'
    wait_replica "$label" "$END_FILE" "$END_POS"
    t1=$(now)
    log "  $label: $(sub "$t1" "$t0") s"
    record catchup "$label" "$(sub "$t1" "$t0")" "-" "-" "$(sub "$(cpu_s "$SRC_PID")" "$s0")" \
        "$(sub "$(nodes_cpu)" "$n0")" "$(sub "$(machine_cpu)" "$m0")" "$how; until MASTER_POS_WAIT on node 1"
    verify_nodes "catchup-$label" "$WORK/end.checksums"
    rep_sql 'STOP SLAVE; RESET SLAVE ALL'
}
if section catchup; then
    if want tidemark; then catchup_tidemark; fi
    if want mariadb-replica; then catchup_replica mariadb-replica 0; fi
    if want mariadb-replica-parallel; then catchup_replica mariadb-replica-parallel "$THREADS"; fi
fi

# ---------------------------------------------------------------- report ----------
report() {
    echo "## Into a 3-node Galera cluster: $TABLES table(s) x $ROWS rows (sysbench shape)"
    echo
    echo "MariaDB $SERVER_VERSION, Galera $GALERA_VERSION, $(nproc) CPU(s), $(machine_ram) RAM; $BUILT_FROM."
    echo "Source: $TOTAL_ROWS rows, DATA_LENGTH $DATA_MB MB. Every tool writes into node 1; CHECKSUM TABLE equal on all three nodes after each run."
    if section catchup; then
        echo "Catch-up: $TRANSACTIONS transactions, $ROW_CHANGES row changes (sysbench oltp_write_only --threads=$SB_THREADS, $WORKLOAD_S s on the source)."
    fi
    echo
    echo "| section | tool | wall s | rows/s | client CPU s | peak RSS MiB | source CPU s | 3 nodes' CPU s | other CPU s | note |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    awk -F'\t' -v full="$TOTAL_ROWS" -v changes="${ROW_CHANGES:-0}" '{
        n = ($1 == "full" ? full : changes)
        printf "| %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, n / $3, $4, $5, $6, $7, $8, $9
        t[$1 SUBSEP $2] = $3
    } END {
        print ""
        if (("full" SUBSEP "tidemark") in t && ("full" SUBSEP "mydumper+myloader") in t)
            printf "- full: tidemark / mydumper+myloader time: %.2f\n", t["full", "tidemark"] / t["full", "mydumper+myloader"]
        if (("catchup" SUBSEP "tidemark") in t && ("catchup" SUBSEP "mariadb-replica") in t)
            printf "- catch-up: tidemark / mariadb-replica time: %.2f\n", t["catchup", "tidemark"] / t["catchup", "mariadb-replica"]
        if (("catchup" SUBSEP "tidemark") in t && ("catchup" SUBSEP "mariadb-replica-parallel") in t)
            printf "- catch-up: tidemark / mariadb-replica-parallel time: %.2f\n", t["catchup", "tidemark"] / t["catchup", "mariadb-replica-parallel"]
    }' "$RESULTS"
}
emit_report
