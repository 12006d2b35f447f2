#!/usr/bin/env bash
# Benchmark of the RocketMQ destination, in two sections (--sections, default both):
#
#   full         one sysbench-shaped table of --rows rows sent by `tidemark run` with
#                migration.types = ["full"] into a --queues queue topic; the topic is then
#                checked to hold every row (the sum of its queues' max offsets). Baseline:
#                a mydumper export of the same table to files (how fast the rows can be
#                read out of the source).
#   incremental  --changes row changes (sysbench oltp_write_only: 2 updates, 1 delete and
#                1 insert per transaction) written on the source while nothing reads the
#                binlog, then `tidemark run --stop-when-caught-up` with
#                migration.types = ["incremental"] from the position before them into a
#                second topic, checked to hold one message per row change. Baseline:
#                MariaDB's own replication (a serial replica) applying the same binlog
#                range, verified with CHECKSUM TABLE.
#
#   bash bench/rocketmq.sh [--rows N] [--changes N] [--format F] [options]
#
# Options (defaults in brackets):
#   --sections LIST   comma list of full,incremental [full,incremental]
#   --rows N          rows of the table (sbtest.sbtest1) [1000000]
#   --changes N       incremental: row changes to generate, rounded up to whole
#                     oltp_write_only transactions of 4 changes [200000]
#   --format F        destination format: canal-json, debezium-json or avro [canal-json]
#   --ordering O      destination ordering: primary-key, table or columns [primary-key]
#   --queues N        queues (read and write) of each topic [8]
#   --threads N       tidemark [full] threads and [incremental] threads [4]
#   --batch-rows N    tidemark [incremental] batch_rows [not set: tidemark's default]
#   --sb-threads N    sysbench client threads generating the changes [4]
#   --dump-threads N  mydumper --threads [2]
#   --rss-limit-mb N  fail (exit 3, after the results) if a `tidemark run`'s peak RSS is
#                     N MiB or more; 0 = no limit [256]
#   --out FILE        also write the results (markdown) to FILE
#   --logs DIR        keep the tools' logs, /usr/bin/time reports, status JSON and task files in DIR
#
# Environment:
#   BENCH_TARGET_DIR  cargo target directory for the release build
#                     [$CARGO_TARGET_DIR, else <repo>/target]
#   TIDEMARK_BIN      use this tidemark binary instead of building one
#   BENCH_TMPDIR      where the servers' data, the broker's store and the dump go [$TMPDIR or /tmp]
#   ROCKETMQ_BIN_DIR  where rocketmq-namesrv-rust and rocketmq-broker-rust are
#                     [found on PATH, else ~/.cargo/bin]; install them with
#                     `cargo install rocketmq-namesrv rocketmq-broker`
#
# Everything the script starts (a source and a replica mariadbd, a RocketMQ name server
# and broker, in a temporary directory, on free ports) is stopped and removed on exit.
# Topics are created, and the messages counted, by a small Python 3 client of RocketMQ's
# remoting protocol written into the temporary directory. Missing Debian tools
# (MariaDB, sysbench, mydumper, jq, time) are installed with apt-get.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CMDLINE="bash bench/rocketmq.sh$(printf ' %q' "$@")"
SECTIONS="full,incremental"
ROWS=1000000
CHANGES=200000
FORMAT="canal-json"
ORDERING="primary-key"
QUEUES=8
THREADS=4
BATCH_ROWS=""
SB_THREADS=4
DUMP_THREADS=2
RSS_LIMIT_MB=256
OUT=""
LOGS=""

while [ $# -gt 0 ]; do
    case "$1" in
        --sections) SECTIONS="${2:?}"; shift 2 ;;
        --rows) ROWS="${2:?}"; shift 2 ;;
        --changes) CHANGES="${2:?}"; shift 2 ;;
        --format) FORMAT="${2:?}"; shift 2 ;;
        --ordering) ORDERING="${2:?}"; shift 2 ;;
        --queues) QUEUES="${2:?}"; shift 2 ;;
        --threads) THREADS="${2:?}"; shift 2 ;;
        --batch-rows) BATCH_ROWS="${2:?}"; shift 2 ;;
        --sb-threads) SB_THREADS="${2:?}"; shift 2 ;;
        --dump-threads) DUMP_THREADS="${2:?}"; shift 2 ;;
        --rss-limit-mb) RSS_LIMIT_MB="${2:?}"; shift 2 ;;
        --out) OUT="${2:?}"; shift 2 ;;
        --logs) LOGS="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
whole_numbers ROWS CHANGES QUEUES THREADS SB_THREADS DUMP_THREADS RSS_LIMIT_MB
whole_numbers_or_empty BATCH_ROWS
[ "$ROWS" -ge 1 ] && [ "$CHANGES" -ge 1 ] && [ "$QUEUES" -ge 1 ] && [ "$THREADS" -ge 1 ] \
    && [ "$SB_THREADS" -ge 1 ] && [ "$DUMP_THREADS" -ge 1 ] \
    || die "--rows, --changes, --queues, --threads, --sb-threads and --dump-threads must be at least 1"
case "$FORMAT" in canal-json|debezium-json|avro) ;; *) die "--format must be canal-json, debezium-json or avro" ;; esac
case "$ORDERING" in primary-key|table|columns) ;; *) die "--ordering must be primary-key, table or columns" ;; esac
section() { [[ ",$SECTIONS," == *",$1,"* ]]; }
for t in ${SECTIONS//,/ }; do
    case "$t" in full|incremental) ;; *) die "--sections: unknown section '$t'" ;; esac
done
[ -n "${SECTIONS//,/}" ] || die "--sections: give at least one of full,incremental"
EVENTS=$(( (CHANGES + 3) / 4 ))

LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- tools -----------
need mariadb-server mariadbd mysqld
need mariadb-server mariadb-install-db mysql_install_db
need mariadb-server mariadb-binlog mysqlbinlog
need mariadb-client mariadb
need sysbench sysbench
if section full; then need mydumper mydumper; fi
need jq jq
need python3 python3
[ -x /usr/bin/time ] || missing+=(time)
install_missing
find_mariadb
MARIADB_BINLOG="$(find_tool mariadb-binlog mysqlbinlog)" || die "mariadb-binlog not found"
SYSBENCH="$(find_tool sysbench)" || die "sysbench not found"
JQ="$(find_tool jq)" || die "jq not found"
PYTHON="$(find_tool python3)" || die "python3 not found"
MYDUMPER=""
if section full; then MYDUMPER="$(find_tool mydumper)" || die "mydumper not found"; fi

mq_tool() { # a RocketMQ binary: ROCKETMQ_BIN_DIR, PATH, ~/.cargo/bin
    if [ -n "${ROCKETMQ_BIN_DIR:-}" ]; then
        [ -x "$ROCKETMQ_BIN_DIR/$1" ] && { echo "$ROCKETMQ_BIN_DIR/$1"; return 0; }
        return 1
    fi
    command -v "$1" 2>/dev/null && return 0
    [ -x "$HOME/.cargo/bin/$1" ] && { echo "$HOME/.cargo/bin/$1"; return 0; }
    return 1
}
NAMESRV_BIN="$(mq_tool rocketmq-namesrv-rust)" \
    || die "rocketmq-namesrv-rust not found (cargo install rocketmq-namesrv rocketmq-broker, or set ROCKETMQ_BIN_DIR)"
BROKER_BIN="$(mq_tool rocketmq-broker-rust)" \
    || die "rocketmq-broker-rust not found (cargo install rocketmq-namesrv rocketmq-broker, or set ROCKETMQ_BIN_DIR)"

# ---------------------------------------------------------------- build -----------
build_tidemark
built_from

# ---------------------------------------------------------------- cleanup ---------
KEEP_NAMES=('*.log' '*.time' 'time.txt' '*.toml' '*.checksums' '*.json' '*.properties' '*.txt')
KEEP_NOT_PATH='./rocketmq/store/*'
MQ_PIDS=()       # broker, then name server: stopped in this order (before the mariadbd)
stop_pid() { # pid: TERM, 10 s, KILL
    local i
    kill "$1" 2>/dev/null || return 0
    for i in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup_first() {
    local pid
    for pid in "${MQ_PIDS[@]}"; do stop_pid "$pid"; done
}
make_work bench

# ---------------------------------------------------------------- MariaDB ---------
take_port SRC_PORT
REP_PORT=""
log "starting the source (127.0.0.1:$SRC_PORT, binlog ROW/FULL) in $WORK"
start_source
if section incremental; then
    take_port REP_PORT
    log "starting the replica (127.0.0.1:$REP_PORT)"
    start_replica
fi

# ---------------------------------------------------------------- RocketMQ --------
MQ_DIR="$WORK/rocketmq"
mkdir -p "$MQ_DIR/ns" "$MQ_DIR/store"
take_port NS_PORT
take_port BROKER_PORT pair
take_port HA_PORT
NAME_SERVER="127.0.0.1:$NS_PORT"
BROKER="127.0.0.1:$BROKER_PORT"
log "starting the RocketMQ name server ($NAME_SERVER) and broker ($BROKER)"
ROCKETMQ_HOME="$MQ_DIR/ns" "$NAMESRV_BIN" --listenPort "$NS_PORT" --bindAddress 127.0.0.1 \
    --rocketmqHome "$MQ_DIR/ns" --kvConfigPath "$MQ_DIR/ns/kv.json" >"$MQ_DIR/namesrv.log" 2>&1 &
NS_PID=$!
MQ_PIDS=("$NS_PID")
cat >"$MQ_DIR/broker.properties" <<EOF
namesrvAddr=$NAME_SERVER
listenPort=$BROKER_PORT
haListenPort=$HA_PORT
brokerIP1=127.0.0.1
brokerName=bench-broker
brokerClusterName=bench
storePathRootDir=$MQ_DIR/store
autoCreateTopicEnable=false
mappedFileSizeCommitLog=1073741824
EOF

wait_listen() { # what port pid log
    local i
    for i in $(seq 1 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || { tail -n 30 "$4" >&2; die "the $1 exited"; }
        sleep 0.1
    done
    tail -n 30 "$4" >&2
    die "the $1 did not listen on 127.0.0.1:$2 within 60 s"
}
wait_listen "RocketMQ name server" "$NS_PORT" "$NS_PID" "$MQ_DIR/namesrv.log"
"$BROKER_BIN" -c "$MQ_DIR/broker.properties" >"$MQ_DIR/broker.log" 2>&1 &
BROKER_PID=$!
MQ_PIDS=("$BROKER_PID" "$NS_PID")

# The remoting client: create a topic, wait for its route, count its messages.
cat >"$WORK/mq.py" <<'EOF'
"""A minimal client of RocketMQ's remoting protocol (JSON headers), for the benchmark.

  mq.py create BROKER TOPIC QUEUES    UPDATE_AND_CREATE_TOPIC (17) on the broker
  mq.py route NAMESRV TOPIC [SECS]    GET_ROUTEINFO_BY_TOPIC (105) until it succeeds
  mq.py count NAMESRV TOPIC           GET_MAX_OFFSET (30) of every queue of the topic's
                                      route: prints "total q0 q1 ..."
"""
import json, re, socket, struct, sys, time

def call(addr, code, fields, timeout=30.0):
    host, port = addr.rsplit(":", 1)
    header = json.dumps({"code": code, "language": "RUST", "version": 453, "opaque": 1, "flag": 0,
                         "serializeTypeCurrentRPC": "JSON", "extFields": fields}).encode()
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(struct.pack(">II", 4 + len(header), len(header)) + header)
        def read(n):
            b = b""
            while len(b) < n:
                c = s.recv(n - len(b))
                if not c:
                    raise ConnectionError("%s closed the connection" % addr)
                b += c
            return b
        total, = struct.unpack(">I", read(4))
        frame = read(total)
    word, = struct.unpack(">I", frame[:4])
    kind, hlen = word >> 24, word & 0xFFFFFF
    if kind != 0:
        raise ValueError("%s answered with serialization %d, not JSON" % (addr, kind))
    return json.loads(frame[4:4 + hlen]), frame[4 + hlen:]

def relaxed(body):  # Java name servers may write integer map keys bare: {0:"a"}
    return json.loads(re.sub(rb'([{,])\s*(-?\d+)\s*:', rb'\1"\2":', body))

def route(ns, topic):
    h, body = call(ns, 105, {"topic": topic})
    if h.get("code") != 0:
        return None, h.get("remark")
    return relaxed(body), None

def main():
    cmd = sys.argv[1]
    if cmd == "create":
        broker, topic, queues = sys.argv[2], sys.argv[3], sys.argv[4]
        h, _ = call(broker, 17, {"topic": topic, "defaultTopic": "TBW102", "readQueueNums": queues,
                                 "writeQueueNums": queues, "perm": "6", "topicFilterType": "SINGLE_TAG",
                                 "topicSysFlag": "0", "order": "false"})
        if h.get("code") != 0:
            sys.exit("broker %s refused to create topic %s: code %s, %s" % (broker, topic, h.get("code"), h.get("remark")))
    elif cmd == "route":
        ns, topic = sys.argv[2], sys.argv[3]
        deadline = time.time() + float(sys.argv[4] if len(sys.argv) > 4 else 30)
        while True:
            r, why = route(ns, topic)
            if r is not None and r.get("queueDatas"):
                return
            if time.time() > deadline:
                sys.exit("topic %s has no route on name server %s: %s" % (topic, ns, why))
            time.sleep(0.2)
    elif cmd == "count":
        ns, topic = sys.argv[2], sys.argv[3]
        r, why = route(ns, topic)
        if r is None:
            sys.exit("topic %s has no route on name server %s: %s" % (topic, ns, why))
        addrs = {b["brokerName"]: b["brokerAddrs"].get("0") for b in r["brokerDatas"]}
        counts = []
        for q in sorted(r["queueDatas"], key=lambda q: q["brokerName"]):
            for i in range(q["readQueueNums"]):
                h, _ = call(addrs[q["brokerName"]], 30, {"topic": topic, "queueId": str(i)})
                if h.get("code") != 0:
                    sys.exit("GET_MAX_OFFSET %s/%d refused: code %s, %s" % (topic, i, h.get("code"), h.get("remark")))
                counts.append(int(h["extFields"]["offset"]))
        print(sum(counts), *counts)
    else:
        sys.exit("unknown command " + cmd)

main()
EOF
mq() { "$PYTHON" "$WORK/mq.py" "$@"; }

create_topic() { # topic
    local i
    for i in $(seq 1 300); do   # the broker listens a moment before it takes requests
        mq create "$BROKER" "$1" "$QUEUES" 2>"$MQ_DIR/create.err" && break
        kill -0 "$BROKER_PID" 2>/dev/null || { tail -n 30 "$MQ_DIR/broker.log" >&2; die "the RocketMQ broker exited"; }
        [ "$i" -lt 300 ] || { cat "$MQ_DIR/create.err" >&2; die "could not create topic $1 on $BROKER"; }
        sleep 0.2
    done
    mq route "$NAME_SERVER" "$1" 60 || die "topic $1 never appeared on the name server"
    log "  topic $1: $QUEUES queue(s), routed by the name server"
}

# The messages a topic holds, "total q0 q1 ...": polled until the total reaches the
# expected number or stays the same for 5 s (the broker builds its consume queues from
# the commit log a moment after it acknowledges).
count_topic() { # topic expected
    local c prev="" same=0 i
    for i in $(seq 1 600); do
        c=$(mq count "$NAME_SERVER" "$1") || die "counting the messages of topic $1 failed"
        [ "${c%% *}" -lt "$2" ] || break
        if [ "$c" = "$prev" ]; then same=$(( same + 1 )); [ "$same" -lt 25 ] || break; else same=0; fi
        prev=$c
        sleep 0.2
    done
    echo "$c"
}

wait_listen "RocketMQ broker" "$BROKER_PORT" "$BROKER_PID" "$MQ_DIR/broker.log"

wait_ready source "$SRC_PORT" "$SRC_PID"
[ -z "$REP_PORT" ] || wait_ready replica "$REP_PORT" "$REP_PID"

mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
per_s() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }
mb_per_s() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", (s > 0 ? b / 1e6 / s : 0) }'; }
other_cpu() { awk -v m="$1" -v a="$2" -v b="$3" -v c="$4" 'BEGIN { o = m - a - b - c; printf "%.2f", (o < 0 ? 0 : o) }'; }
# WARN/ERROR lines of a tidemark log -> "none", or the count and the first of them.
log_warnings() {
    local n first
    n=$(plain_log "$1" | grep -cE '^[^ ]+ +(WARN|ERROR) ' || true)
    [ "$n" -gt 0 ] || { echo "none"; return; }
    first=$(plain_log "$1" | grep -m1 -E '^[^ ]+ +(WARN|ERROR) ' | cut -c1-200 | tr '|' '/')
    echo "$n (first: $first)"
}
# `tidemark status --json` -> "messages bytes skipped_large"
status_counters() { # task.toml out.json
    "$TIDEMARK" status --json "$1" >"$2" || die "tidemark status --json $1 failed"
    "$JQ" -r '[.messages.messages // 0, .messages.bytes // 0, .messages.skipped_large // 0] | @tsv' "$2" | tr '\t' ' '
}

write_task() { # file name types topic extra-sections
    local batch=""
    [ -z "$BATCH_ROWS" ] || batch=$'\n'"batch_rows = $BATCH_ROWS"
    cat >"$1" <<EOF
name = "$2"
[source]
url = "mysql://root@127.0.0.1:$SRC_PORT"
tls = "disabled"
[destination]
type = "rocketmq"
name_servers = ["$NAME_SERVER"]
topic = "$4"
# The workload has no DDL: keep it in the data topic rather than create a DDL topic.
ddl_placement = "first-queue"
format = "$FORMAT"
ordering = "$ORDERING"
[migration]
types = [$3]
$5
[full]
threads = $THREADS
[incremental]
threads = $THREADS$batch
[state]
dir = "$(dirname "$1")/state"
[[objects]]
database = "sbtest"
EOF
}

# ---------------------------------------------------------------- data ------------
SERVER_VERSION=$(src_sql 'SELECT VERSION()')
BROKER_VERSION="rocketmq-broker-rust $(timeout 10 "$BROKER_BIN" --version 2>/dev/null | sed -n 's/^version=//p' | head -1 || true)"
sb() { # sysbench against the source, the one table: test [options...] command
    local test=$1; shift
    "$SYSBENCH" "$test" --db-driver=mysql --tables=1 --table-size="$ROWS" \
        --mysql-host=127.0.0.1 --mysql-port="$SRC_PORT" --mysql-user=root --mysql-db=sbtest "$@"
}
if section incremental; then
    # The replica follows the source from its first binlog while the data is loaded, so
    # that it holds the same data when the measured binlog range starts.
    FIRST_BINLOG=$(src_sql 'SHOW BINARY LOGS' | head -1 | cut -f1)
    rep_sql "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = $SRC_PORT, MASTER_USER = 'root',
            MASTER_PASSWORD = '', MASTER_LOG_FILE = '$FIRST_BINLOG', MASTER_LOG_POS = 4, MASTER_USE_GTID = no;
        START SLAVE"
fi
log "MariaDB $SERVER_VERSION; generating sbtest.sbtest1 ($ROWS rows, sysbench shape) on the source"
src_sql 'CREATE DATABASE sbtest'
t0=$(now)
sb oltp_read_write --threads=1 prepare >"$WORK/sysbench-prepare.log" 2>&1 \
    || { cat "$WORK/sysbench-prepare.log" >&2; die "sysbench prepare failed"; }
log "  generated in $(sub "$(now)" "$t0") s"
src_sql 'ANALYZE TABLE sbtest.sbtest1' >/dev/null
read -r TOTAL_ROWS RAW_BYTES < <(src_sql 'SELECT COUNT(*), COALESCE(SUM(8 + LENGTH(c) + LENGTH(pad)), 0) FROM sbtest.sbtest1')
read -r DATA_BYTES INDEX_BYTES < <(src_sql "SELECT DATA_LENGTH, INDEX_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA='sbtest' AND TABLE_NAME='sbtest1'")
[ "$TOTAL_ROWS" = "$ROWS" ] || die "expected $ROWS rows on the source, found $TOTAL_ROWS"
if section incremental; then
    read -r f p _ < <(src_sql 'SHOW MASTER STATUS')
    log "  waiting for the replica to load the same data (to $f:$p)"
    wait_replica replica "$f" "$p"
    rep_sql 'STOP SLAVE'
fi
settle "$SRC_PORT"
log "  $TOTAL_ROWS rows; DATA_LENGTH $(mb "$DATA_BYTES") MB, INDEX_LENGTH $(mb "$INDEX_BYTES") MB, raw row bytes $(mb "$RAW_BYTES") MB"

# ---------------------------------------------------------------- full ------------
# Results, one line per tool in $FULL_RESULTS, tab-separated:
# label wall_s messages out_bytes rss_mib client_cpu src_cpu broker_cpu other_cpu note
FULL_RESULTS="$WORK/full-results.tsv"
: >"$FULL_RESULTS"
run_full_tidemark() {
    local dir="$WORK/full/tidemark" topic="bench-full"
    mkdir -p "$dir"
    create_topic "$topic"
    write_task "$dir/task.toml" bench-rocketmq-full '"full"' "$topic" ""
    log "full: tidemark run (format $FORMAT, ordering $ORDERING, [full] threads = $THREADS) into $topic"
    local s0 b0 m0 t0 t1
    s0=$(cpu_s "$SRC_PID"); b0=$(cpu_s "$BROKER_PID"); m0=$(machine_cpu); t0=$(now)
    if ! "$TIME" -v -o "$dir/time.txt" "$TIDEMARK" run --no-progress "$dir/task.toml" >"$dir/tidemark.log" 2>&1; then
        tail -n 40 "$dir/tidemark.log" >&2
        tail -n 20 "$MQ_DIR/broker.log" >&2
        die "full: tidemark run failed (its log, then the broker's, above)"
    fi
    t1=$(now)
    local wall s1 b1 m1 cpu
    wall=$(sub "$t1" "$t0"); s1=$(sub "$(cpu_s "$SRC_PID")" "$s0"); b1=$(sub "$(cpu_s "$BROKER_PID")" "$b0")
    m1=$(sub "$(machine_cpu)" "$m0"); cpu=$(cpu_of "$dir/time.txt")
    local msgs bytes skipped counts
    counts=$(status_counters "$dir/task.toml" "$dir/status.json")
    read -r msgs bytes skipped <<<"$counts"
    counts=$(count_topic "$topic" "$TOTAL_ROWS")
    FULL_TOPIC_COUNT=${counts%% *}
    FULL_QUEUE_COUNTS=${counts#* }
    FULL_CHECK="topic $topic holds $FULL_TOPIC_COUNT message(s) (sum of the queues' max offsets; per queue: ${FULL_QUEUE_COUNTS// /, })"
    if [ "$FULL_TOPIC_COUNT" = "$TOTAL_ROWS" ]; then FULL_CHECK="$FULL_CHECK = the $TOTAL_ROWS rows: OK"
    elif [ "$FULL_TOPIC_COUNT" -gt "$TOTAL_ROWS" ]; then FULL_CHECK="$FULL_CHECK: $(( FULL_TOPIC_COUNT - TOTAL_ROWS )) MORE than the $TOTAL_ROWS rows (duplicates)"
    else FULL_CHECK="$FULL_CHECK: MISSING $(( TOTAL_ROWS - FULL_TOPIC_COUNT )) of the $TOTAL_ROWS rows"; fi
    [ "$msgs" = "$FULL_TOPIC_COUNT" ] || FULL_CHECK="$FULL_CHECK; tidemark status counted $msgs"
    # Phases from the log: until the copy started sending, and the copy's own line.
    local started
    started=$(log_stamp "$dir/tidemark.log" 'chunk(s) to send' "$t0")
    local note="format $FORMAT; precheck+setup ${started:-?} s; avg message $(awk -v b="$bytes" -v n="$msgs" 'BEGIN { printf "%.0f", (n ? b / n : 0) }') B; rows over 4 MiB skipped: $skipped; log WARN/ERROR: $(log_warnings "$dir/tidemark.log")"
    log "  tidemark: $wall s, $msgs messages ($(mb "$bytes") MB), peak RSS $(rss_mib "$dir/time.txt") MiB; $FULL_CHECK"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "tidemark → RocketMQ" "$wall" "$msgs" "$bytes" "$(rss_mib "$dir/time.txt")" \
        "$cpu" "$s1" "$b1" "$(other_cpu "$m1" "$cpu" "$s1" "$b1")" "$note" >>"$FULL_RESULTS"
    FULL_TM_WALL=$wall
}

run_full_mydumper() {
    local dir="$WORK/full/mydumper" dump="$WORK/full/mydumper/dump"
    mkdir -p "$dir"
    local chunking=() note="no row chunking"
    # (not `--help | grep -q`: grep exiting first makes mydumper die of SIGPIPE, and pipefail fail the test)
    if "$MYDUMPER" --help 2>&1 | grep -c -- '--rows' >/dev/null; then
        chunking=(--rows 50000); note="--rows 50000"
    fi
    log "full: mydumper --threads $DUMP_THREADS, $note ($("$MYDUMPER" --version 2>&1 | head -1))"
    local s0 b0 m0 t0 t1
    s0=$(cpu_s "$SRC_PID"); b0=$(cpu_s "$BROKER_PID"); m0=$(machine_cpu); t0=$(now)
    "$TIME" -v -o "$dir/mydumper.time" "$MYDUMPER" -h 127.0.0.1 -P "$SRC_PORT" -u root \
        -B sbtest -o "$dump" --threads "$DUMP_THREADS" "${chunking[@]}" >"$dir/mydumper.log" 2>&1 \
        || { cat "$dir/mydumper.log" >&2; die "mydumper failed"; }
    t1=$(now)
    local wall s1 b1 m1 cpu bytes
    wall=$(sub "$t1" "$t0"); s1=$(sub "$(cpu_s "$SRC_PID")" "$s0"); b1=$(sub "$(cpu_s "$BROKER_PID")" "$b0")
    m1=$(sub "$(machine_cpu)" "$m0"); cpu=$(cpu_of "$dir/mydumper.time")
    bytes=$(du -sb "$dump" | cut -f1)
    ls -l "$dump" >"$dir/dump-files.txt"
    [ "$bytes" -ge "$RAW_BYTES" ] || die "mydumper: the dump ($bytes bytes) is smaller than the table's raw row bytes ($RAW_BYTES): not every row was exported"
    log "  mydumper: $wall s, dump $(mb "$bytes") MB"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "mydumper (export to files)" "$wall" "-" "$bytes" "$(rss_mib "$dir/mydumper.time")" \
        "$cpu" "$s1" "$b1" "$(other_cpu "$m1" "$cpu" "$s1" "$b1")" "--threads $DUMP_THREADS, $note; output = dump files (SQL)" >>"$FULL_RESULTS"
    FULL_MD_WALL=$wall
    rm -rf "$dump"
}

FULL_TM_WALL=""; FULL_MD_WALL=""
if section full; then
    run_full_tidemark
    settle "$SRC_PORT"
    run_full_mydumper
fi

# ---------------------------------------------------------------- incremental -----
# Results, one line per tool in $INC_RESULTS, tab-separated:
# label applied_s wall_s messages out_bytes rss_mib client_cpu src_cpu apply_cpu other_cpu note
INC_RESULTS="$WORK/inc-results.tsv"
: >"$INC_RESULTS"

inc_workload() {
    src_sql 'CHECKSUM TABLE sbtest.sbtest1' >"$WORK/initial.checksums"
    rep_sql 'CHECKSUM TABLE sbtest.sbtest1' | cmp -s - "$WORK/initial.checksums" \
        || die "the replica's data differs from the source's before the workload"
    flush_binlogs
    read -r START_FILE START_POS _ < <(src_sql 'SHOW MASTER STATUS')
    [ -n "${START_POS:-}" ] || die "SHOW MASTER STATUS on the source returned nothing (is log_bin on?)"
    log "incremental: $EVENTS oltp_write_only transaction(s) on the source from $START_FILE:$START_POS (sysbench --threads=$SB_THREADS)"
    local t0; t0=$(now)
    sb oltp_write_only --threads="$SB_THREADS" --events="$EVENTS" --time=0 run >"$WORK/sysbench-run.log" 2>&1 \
        || { cat "$WORK/sysbench-run.log" >&2; die "sysbench run failed"; }
    WORKLOAD_S=$(sub "$(now)" "$t0")
    read -r END_FILE END_POS _ < <(src_sql 'SHOW MASTER STATUS')
    src_sql 'CHECKSUM TABLE sbtest.sbtest1' >"$WORK/source.checksums"
    ! cmp -s "$WORK/initial.checksums" "$WORK/source.checksums" || die "the workload changed nothing on the source"
    # Row changes and transactions between the two positions, counted in the binlog itself.
    count_binlog_range
    SOURCE_TPS=$(per_s "$TRANSACTIONS" "$WORKLOAD_S")
    log "  $WORKLOAD_S s ($SOURCE_TPS transactions/s); end position $END_FILE:$END_POS"
    log "  binlog: $TRANSACTIONS transactions, $ROW_CHANGES row changes ($UPDATES updates, $DELETES deletes, $INSERTS inserts), $BINLOG_MB MB"
    settle "$SRC_PORT"
}

run_inc_tidemark() {
    local dir="$WORK/incremental/tidemark" topic="bench-incremental"
    mkdir -p "$dir"
    create_topic "$topic"
    write_task "$dir/task.toml" bench-rocketmq-incremental '"incremental"' "$topic" \
        "start_position = \"$START_FILE:$START_POS\""
    log "incremental: tidemark run --stop-when-caught-up (format $FORMAT, ordering $ORDERING, [incremental] threads = $THREADS${BATCH_ROWS:+, batch_rows = $BATCH_ROWS}) into $topic"
    local s0 b0 m0 t0 t1
    s0=$(cpu_s "$SRC_PID"); b0=$(cpu_s "$BROKER_PID"); m0=$(machine_cpu); t0=$(now)
    if ! "$TIME" -v -o "$dir/time.txt" "$TIDEMARK" run --stop-when-caught-up --no-progress "$dir/task.toml" \
            >"$dir/tidemark.log" 2>&1; then
        tail -n 40 "$dir/tidemark.log" >&2
        tail -n 20 "$MQ_DIR/broker.log" >&2
        die "incremental: tidemark run failed (its log, then the broker's, above)"
    fi
    t1=$(now)
    local wall s1 b1 m1 cpu
    wall=$(sub "$t1" "$t0"); s1=$(sub "$(cpu_s "$SRC_PID")" "$s0"); b1=$(sub "$(cpu_s "$BROKER_PID")" "$b0")
    m1=$(sub "$(machine_cpu)" "$m0"); cpu=$(cpu_of "$dir/time.txt")
    # From the log's time stamps: startup + precheck (until it starts reading the binlog),
    # and the moment it reported every change acknowledged ("caught up").
    local startup applied
    startup=$(log_stamp "$dir/tidemark.log" 'incremental: reading the binlog from' "$t0")
    applied=$(log_stamp "$dir/tidemark.log" 'incremental: caught up at' "$t0")
    [ -n "$applied" ] || { tail -n 20 "$dir/tidemark.log" >&2; die "incremental: no \"caught up\" line in tidemark's log"; }
    local msgs bytes skipped counts st_txn st_rows st_pos
    counts=$(status_counters "$dir/task.toml" "$dir/status.json")
    read -r msgs bytes skipped <<<"$counts"
    read -r st_txn st_rows st_pos < <("$JQ" -r '[.incremental.transactions // "?", .incremental.rows_applied // "?", .incremental.position.file // "?"] | @tsv' "$dir/status.json" | tr '\t' ' ')
    counts=$(count_topic "$topic" "$ROW_CHANGES")
    INC_TOPIC_COUNT=${counts%% *}
    INC_QUEUE_COUNTS=${counts#* }
    INC_CHECK="topic $topic holds $INC_TOPIC_COUNT message(s) (per queue: ${INC_QUEUE_COUNTS// /, })"
    if [ "$INC_TOPIC_COUNT" = "$ROW_CHANGES" ]; then INC_CHECK="$INC_CHECK = the $ROW_CHANGES row changes: OK"
    elif [ "$INC_TOPIC_COUNT" -gt "$ROW_CHANGES" ]; then INC_CHECK="$INC_CHECK: $(( INC_TOPIC_COUNT - ROW_CHANGES )) MORE than the $ROW_CHANGES row changes"
    else INC_CHECK="$INC_CHECK: MISSING $(( ROW_CHANGES - INC_TOPIC_COUNT )) of the $ROW_CHANGES row changes"; fi
    [ "$msgs" = "$INC_TOPIC_COUNT" ] || INC_CHECK="$INC_CHECK; tidemark status counted $msgs"
    local note="format $FORMAT; startup+precheck ${startup:-?} s; exit $(sub "$wall" "$applied") s after catching up; tidemark counted $st_txn transactions, $st_rows row changes; avg message $(awk -v b="$bytes" -v n="$msgs" 'BEGIN { printf "%.0f", (n ? b / n : 0) }') B; log WARN/ERROR: $(log_warnings "$dir/tidemark.log")"
    log "  tidemark: caught up after $applied s, exited after $wall s; $msgs messages ($(mb "$bytes") MB), peak RSS $(rss_mib "$dir/time.txt") MiB; $INC_CHECK"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "tidemark → RocketMQ" "$applied" "$wall" "$msgs" "$bytes" "$(rss_mib "$dir/time.txt")" \
        "$cpu" "$s1" "$b1" "$(other_cpu "$m1" "$cpu" "$s1" "$b1")" "$note" >>"$INC_RESULTS"
    INC_TM_APPLIED=$applied
}

run_inc_replica() {
    local dir="$WORK/incremental/replica"
    mkdir -p "$dir"
    rep_sql "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL gtid_slave_pos = ''; SET GLOBAL slave_parallel_threads = 0;
        CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = $SRC_PORT, MASTER_USER = 'root',
            MASTER_PASSWORD = '', MASTER_LOG_FILE = '$START_FILE', MASTER_LOG_POS = $START_POS,
            MASTER_USE_GTID = no"
    settle "$REP_PORT"
    log "incremental: mariadb-replica: START SLAVE from $START_FILE:$START_POS (serial SQL thread)"
    local s0 r0 m0 t0 t1
    s0=$(cpu_s "$SRC_PID"); r0=$(cpu_s "$REP_PID"); m0=$(machine_cpu); t0=$(now)
    rep_sql 'START SLAVE'
    wait_replica mariadb-replica "$END_FILE" "$END_POS"
    t1=$(now)
    local wall s1 r1 m1
    wall=$(sub "$t1" "$t0"); s1=$(sub "$(cpu_s "$SRC_PID")" "$s0"); r1=$(sub "$(cpu_s "$REP_PID")" "$r0")
    m1=$(sub "$(machine_cpu)" "$m0")
    "$MARIADB" --no-defaults -h127.0.0.1 -P"$REP_PORT" -uroot -E -e 'SHOW SLAVE STATUS' >"$dir/slave-status.txt"
    rep_sql 'CHECKSUM TABLE sbtest.sbtest1' >"$dir/replica.checksums"
    diff -u "$WORK/source.checksums" "$dir/replica.checksums" >&2 \
        || die "mariadb-replica: CHECKSUM TABLE differs from the source's (diff above: - source, + replica)"
    rep_sql 'STOP SLAVE'
    log "  mariadb-replica: $wall s; CHECKSUM TABLE equal to the source's"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "mariadb-replica (serial)" "$wall" "$wall" "-" "-" "-" \
        "-" "$s1" "$r1" "$(other_cpu "$m1" 0 "$s1" "$r1")" "serial SQL thread into InnoDB; CHECKSUM TABLE equal to the source's" >>"$INC_RESULTS"
    INC_REP_APPLIED=$wall
}

INC_TM_APPLIED=""; INC_REP_APPLIED=""
if section incremental; then
    inc_workload
    run_inc_tidemark
    settle "$SRC_PORT"
    run_inc_replica
fi

# ---------------------------------------------------------------- report ----------
BROKER_LOG_ERRORS=$(plain_log "$MQ_DIR/broker.log" | grep -cE '^[^ ]+ +ERROR |panicked' || true)
report_full() {
    echo "## Full: sbtest.sbtest1, $TOTAL_ROWS rows → one $QUEUES-queue topic"
    echo
    echo "Source: DATA_LENGTH $(mb "$DATA_BYTES") MB, INDEX_LENGTH $(mb "$INDEX_BYTES") MB, raw row bytes $(mb "$RAW_BYTES") MB."
    echo "tidemark: migration.types = [\"full\"], [full] threads = $THREADS, format = $FORMAT, ordering = $ORDERING."
    echo "*output MB*: message bodies (tidemark status messages.bytes) for tidemark, the dump files for mydumper."
    echo
    echo "| tool | wall s | rows/s | messages | messages/s | output MB | MB/s | peak RSS MiB | client CPU s | source server CPU s | broker CPU s | other CPU s | note |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    awk -F'\t' -v rows="$TOTAL_ROWS" '{
        m = ($3 == "-") ? "-" : sprintf("%.0f", $3 / $2)
        printf "| %s | %s | %.0f | %s | %s | %.1f | %.1f | %s | %s | %s | %s | %s | %s |\n", $1, $2, rows / $2, $3, m, $4 / 1e6, $4 / 1e6 / $2, $5, $6, $7, $8, $9, $10 }' "$FULL_RESULTS"
    echo
    [ -z "$FULL_TM_WALL" ] || echo "- $FULL_CHECK"
    if [ -n "$FULL_TM_WALL" ] && [ -n "$FULL_MD_WALL" ]; then
        awk -v a="$FULL_TM_WALL" -v b="$FULL_MD_WALL" 'BEGIN { printf "- tidemark / mydumper time: **%.2f** (tidemark sends %.2f× the rows per second mydumper exports)\n", a / b, b / a }'
    fi
}
report_incremental() {
    echo "## Incremental catch-up: $ROW_CHANGES row changes in $TRANSACTIONS transactions → one $QUEUES-queue topic"
    echo
    echo "Binlog $START_FILE:$START_POS → $END_FILE:$END_POS ($BINLOG_MB MB): $UPDATES updates, $DELETES deletes, $INSERTS inserts,"
    echo "written by sysbench oltp_write_only --events=$EVENTS --threads=$SB_THREADS on the source in $WORKLOAD_S s ($SOURCE_TPS transactions/s) while nothing read the binlog."
    echo "tidemark: migration.types = [\"incremental\"], start_position = \"$START_FILE:$START_POS\", \`tidemark run --stop-when-caught-up --no-progress\`,"
    echo "[incremental] threads = $THREADS${BATCH_ROWS:+, batch_rows = $BATCH_ROWS}, format = $FORMAT, ordering = $ORDERING."
    echo "*applied s*: tidemark until its \"caught up\" log line (every message acknowledged); the replica until MASTER_POS_WAIT returned. *apply server CPU*: the broker for tidemark, the replica's mariadbd for MariaDB."
    echo
    echo "| tool | applied s | process wall s | row changes/s | messages | messages/s | output MB | MB/s | peak RSS MiB | client CPU s | source server CPU s | apply server CPU s | other CPU s | note |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    awk -F'\t' -v rows="$ROW_CHANGES" '{
        m = ($4 == "-") ? "-" : sprintf("%.0f", $4 / $2)
        o = ($5 == "-") ? "-" : sprintf("%.1f", $5 / 1e6)
        r = ($5 == "-") ? "-" : sprintf("%.1f", $5 / 1e6 / $2)
        printf "| %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, rows / $2, $4, m, o, r, $6, $7, $8, $9, $10, $11 }' "$INC_RESULTS"
    echo
    [ -z "$INC_TM_APPLIED" ] || echo "- $INC_CHECK"
    if [ -n "$INC_TM_APPLIED" ] && [ -n "$INC_REP_APPLIED" ]; then
        awk -v a="$INC_TM_APPLIED" -v b="$INC_REP_APPLIED" 'BEGIN { printf "- tidemark / mariadb-replica time: **%.2f** (tidemark applies %.2f× as many row changes per second)\n", a / b, b / a }'
    fi
}
report() {
    echo "# RocketMQ destination benchmarks (bench/rocketmq.sh --sections $SECTIONS)"
    echo
    echo "Command: \`$CMDLINE\`"
    echo
    echo "MariaDB $SERVER_VERSION, $BROKER_VERSION (one name server, one broker, on this machine), $(nproc) CPU(s), $(machine_ram) RAM;"
    echo "$BUILT_FROM. Load average when the script started: $LOAD_AT_START. *other CPU s*: CPU time of everything else on the machine during the run."
    echo "Broker log lines with ERROR or panicked: $BROKER_LOG_ERRORS."
    if section full; then echo; report_full; fi
    if section incremental; then echo; report_incremental; fi
}
emit_report

status=0
if [ -n "$FULL_TM_WALL" ] && [ "$FULL_TOPIC_COUNT" -lt "$TOTAL_ROWS" ]; then log "FAIL: full: messages missing from the topic"; status=4; fi
if [ -n "$INC_TM_APPLIED" ] && [ "$INC_TOPIC_COUNT" -lt "$ROW_CHANGES" ]; then log "FAIL: incremental: messages missing from the topic"; status=4; fi
if [ "$RSS_LIMIT_MB" -gt 0 ]; then
    over=$(cat "$FULL_RESULTS" "$INC_RESULTS" | awk -F'\t' -v lim="$RSS_LIMIT_MB" '
        $1 ~ /^tidemark/ { r = (NF == 10) ? $5 : $6; if (r + 0 >= lim + 0) printf "%s MiB; ", r }')
    if [ -n "$over" ]; then
        log "FAIL: tidemark peak RSS not below the limit of $RSS_LIMIT_MB MiB: $over"
        [ "$status" -ne 0 ] || status=3
    else
        log "tidemark peak RSS below $RSS_LIMIT_MB MiB in every run"
    fi
fi
exit "$status"
