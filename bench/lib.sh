# Shared helpers of the benchmark scripts in bench/ (full.sh, incremental.sh, verify.sh,
# soak.sh, rocketmq.sh, lindorm.sh, adb.sh, …). Not run on its own: a script sources it first thing after
# `set -euo pipefail`, with
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Sourcing it only defines functions and a few variables (REPO, TIME, CLK_TCK, the array
# `missing`, the settings below) and leaves the shell in the repository's root; nothing
# is started until a script calls a function.
#
# Settings a script may change after sourcing it (before calling the functions that read them):
#   BENCH_NAME       prefix of die/log messages [bench]
#   USAGE_LAST_LINE  usage prints the header comment from line 2 to this line; unset or
#                    0: to the end of the script's opening comment
#   LOGS             --logs DIR: where cleanup copies the files named by KEEP_NAMES
#   KEEP_DEPTH, KEEP_NAMES, KEEP_NOT_PATH
#                    cleanup copies `find . -maxdepth KEEP_DEPTH -name KEEP_NAMES[0] -o ...
#                    [-not -path KEEP_NOT_PATH]` of $WORK into $LOGS [3, *.log, none]
#   SERVER_OPTS      mariadbd options of every server start_server starts
#                    [1G buffer pool, 512M redo log, innodb_flush_log_at_trx_commit=2]
#   CLIENT_OPTS      extra mariadb client options of sql_at/src_sql/dst_sql/rep_sql [none]
#   cleanup_first    a function: when defined, cleanup runs it before stopping the servers
#
# What it offers:
#   die, log, usage                    messages, and --help from the script's own header
#   whole_numbers VAR[:--opt]...       die unless each variable is a whole number;
#   whole_numbers_or_empty VAR...        ...or empty
#   find_tool NAME...                  the first of the names on PATH or in the sbin dirs
#   need PACKAGE NAME...               add PACKAGE to the array `missing` unless find_tool
#                                      finds one of the names
#   install_missing                    apt-get install the packages in `missing`, if any
#   find_mariadb                       set MARIADBD, INSTALL_DB, MARIADB (or die)
#   build_tidemark, built_from         TIDEMARK: TIDEMARK_BIN, or a release build into
#                                      BENCH_TARGET_DIR; BUILT_FROM: its version (+ commit)
#   make_work NAME                     WORK: a new temporary directory; installs the
#                                      cleanup trap (stop the servers, keep logs, rm -rf)
#   free_port [pair], take_port VAR [pair]
#                                      free TCP ports, never the same one twice
#   start_server, wait_ready           mariadb-install-db + mariadbd in $WORK/NAME
#   start_source, start_destination, start_replica
#   build_standin EXAMPLE, start_standin, stop_standin
#                                      tidemark-sandbox's stand-ins (STANDIN, STANDIN_URL,
#                                      STANDIN_PORT); stop_standin belongs in cleanup_first
#                                      the usual three servers, on SRC_PORT/DST_PORT/REP_PORT
#                                      (setting SRC_PID/DST_PID/REP_PID)
#   start_source_and_destination [SOURCE_ARGS...] [-- DESTINATION_ARGS...]
#                                      take two ports, start both servers, wait for them
#   sql_at, src_sql, dst_sql, rep_sql  run SQL (-N -B) on a port / the servers
#   cpu_s, machine_cpu, now, sub       CPU seconds of a pid / the machine, time, a - b
#   settle PORT                        flush a server's dirty pages now
#   flush_binlogs                      FLUSH BINARY LOGS and wait for the checkpoint event
#   slave_field, wait_replica          SHOW SLAVE STATUS field; MASTER_POS_WAIT loop
#   time_field, rss_mib, cpu_of        read /usr/bin/time -v reports
#   plain_log, log_stamp               a log without colours; seconds to a log line
#   count_binlog_range                 row changes etc. in START_FILE:START_POS..END_FILE:END_POS
#   generate_sbtest TEST               sysbench prepare of TABLES x ROWS on the source and
#                                      the table statistics (TABLE_NAMES, QUALIFIED, ...)
#   mysql_task_header NAME             the first lines of a MySQL-to-MySQL task file
#   machine_ram                        "N.N GiB"
#   emit_report                        print `report`'s output, and write it to $OUT

BENCH_NAME=bench

die() { echo "$BENCH_NAME: error: $*" >&2; exit 1; }
log() { echo "$BENCH_NAME [${SECONDS}s]: $*" >&2; }
usage() { # the script's opening comment, without the #! line and the comment marks
    awk -v last="${USAGE_LAST_LINE:-0}" 'NR > 1 && /^#/ && (last == 0 || NR <= last) { sub(/^# ?/, ""); print; next }
        NR > 1 { exit }' "$0"
}

opt_name() { # VAR[:--option] -> the option's name: --var-name, or the one given
    case "$1" in *:*) echo "${1#*:}" ;; *) echo "--$(echo "$1" | tr 'A-Z_' 'a-z-')" ;; esac
}
whole_numbers() { # VAR[:--option]...: die unless each is a whole number
    local v name
    for v in "$@"; do
        name=${v%%:*}
        [[ "${!name}" =~ ^[0-9]+$ ]] || die "$(opt_name "$v") must be a whole number (got ${!name})"
    done
}
whole_numbers_or_empty() { # VAR[:--option]...: die unless each is empty or a whole number
    local v name
    for v in "$@"; do
        name=${v%%:*}
        [ -z "${!name}" ] || [[ "${!name}" =~ ^[0-9]+$ ]] || die "$(opt_name "$v") must be a whole number (got ${!name})"
    done
}

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
need() { # package name...: the package is missing unless one of the names is found
    local pkg=$1; shift
    find_tool "$@" >/dev/null || missing+=("$pkg")
}
install_missing() { # apt-get install what `need` found missing
    if [ ${#missing[@]} -gt 0 ]; then
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        local SUDO=""
        [ "$(id -u)" -eq 0 ] || SUDO="sudo"
        log "installing ${missing[*]} with apt-get"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}
find_mariadb() { # the server, its installer and the client
    MARIADBD="$(find_tool mariadbd mysqld)" || die "mariadbd not found"
    INSTALL_DB="$(find_tool mariadb-install-db mysql_install_db)" || die "mariadb-install-db not found"
    MARIADB="$(find_tool mariadb)" || die "mariadb (client) not found"
}
TIME=/usr/bin/time

# ---------------------------------------------------------------- build -----------
build_tidemark() { # TIDEMARK: $TIDEMARK_BIN, or a release build into BENCH_TARGET_DIR
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
}
built_from() { # BUILT_FROM: tidemark's version, and the commit it was built from
    BUILT_FROM="$("$TIDEMARK" --version 2>/dev/null || echo tidemark)"
    if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1 && [ -z "${TIDEMARK_BIN:-}" ]; then
        BUILT_FROM="$BUILT_FROM, built from $(git -C "$REPO" describe --always --dirty 2>/dev/null)"
    fi
}

# ---------------------------------------------------------------- work dir, cleanup
SERVER_PIDS=()
LOGS=""
KEEP_DEPTH=3
KEEP_NAMES=('*.log')
KEEP_NOT_PATH=""
make_work() { # name: WORK = a new directory tidemark-NAME.XXXXXX; cleanup on exit
    WORK="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/tidemark-$1.XXXXXX")"
    trap cleanup EXIT
    trap 'exit 130' INT TERM HUP
}
stop_servers() { # TERM every mariadbd, then up to 10 s each, then KILL
    local pid i
    for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${SERVER_PIDS[@]}"; do
        for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
keep_logs() { # copy the KEEP_NAMES files of $WORK into $LOGS (--logs)
    [ -n "$LOGS" ] || return 0
    local names=() n
    for n in "${KEEP_NAMES[@]}"; do names+=(${names[0]+-o} -name "$n"); done
    local not=()
    [ -z "$KEEP_NOT_PATH" ] || not=(-not -path "$KEEP_NOT_PATH")
    mkdir -p "$LOGS"
    (cd "$WORK" && find . -maxdepth "$KEEP_DEPTH" \( "${names[@]}" \) "${not[@]}" -print0 \
        | xargs -0 -r cp --parents -t "$LOGS") || true
}
cleanup() {
    if declare -F cleanup_first >/dev/null; then cleanup_first; fi
    stop_servers
    keep_logs
    rm -rf "$WORK"
}

# ---------------------------------------------------------------- ports -----------
USED_PORTS=" "
free_port() { # a port nothing listens on, not handed out before; with "pair": p - 2 free too (the broker's fast channel)
    local p i
    for i in $(seq 1 200); do
        p=$(( 20000 + RANDOM % 40000 ))
        [[ "$USED_PORTS" != *" $p "* ]] || continue
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then continue; fi
        if [ "${1:-}" = pair ]; then
            [[ "$USED_PORTS" != *" $(( p - 2 )) "* ]] || continue
            if (exec 3<>"/dev/tcp/127.0.0.1/$(( p - 2 ))") 2>/dev/null; then continue; fi
            USED_PORTS="$USED_PORTS$(( p - 2 )) "
        fi
        USED_PORTS="$USED_PORTS$p "
        echo "$p"; return 0
    done
    die "no free port found"
}
# free_port runs in a subshell ($(...)): remember what it handed out in this shell too.
take_port() { local p; p=$(free_port "${2:-}"); USED_PORTS="$USED_PORTS$p $(( p - 2 )) "; printf -v "$1" '%s' "$p"; }

# ---------------------------------------------------------------- MariaDB ---------
SERVER_OPTS=(--innodb-buffer-pool-size=1G --innodb-log-file-size=512M --innodb-flush-log-at-trx-commit=2)
CLIENT_OPTS=()

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

start_source() { # [extra mariadbd args]: server-id 1 on SRC_PORT, binlog ROW/FULL; sets SRC_PID
    start_server source "$SRC_PORT" 1 --log-bin="$WORK/source/data/binlog" --binlog-format=ROW \
        --binlog-row-image=FULL "$@"
    SRC_PID=${SERVER_PIDS[-1]}
}
start_destination() { # [extra mariadbd args]: server-id 2 on DST_PORT; sets DST_PID
    start_server destination "$DST_PORT" 2 "$@"
    DST_PID=${SERVER_PIDS[-1]}
}
start_replica() { # [extra mariadbd args]: server-id 3 on REP_PORT, not replicating yet; sets REP_PID
    start_server replica "$REP_PORT" 3 --skip-slave-start --relay-log="$WORK/replica/data/relay" "$@"
    REP_PID=${SERVER_PIDS[-1]}
}
start_source_and_destination() { # [source args...] [-- destination args...]
    local src=() dst=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do src+=("$1"); shift; done
    [ $# -eq 0 ] || { shift; dst=("$@"); }
    take_port SRC_PORT
    take_port DST_PORT
    log "starting source (127.0.0.1:$SRC_PORT, binlog ROW/FULL) and destination (127.0.0.1:$DST_PORT) in $WORK"
    start_source "${src[@]}"
    start_destination "${dst[@]}"
    wait_ready source "$SRC_PORT" "$SRC_PID"
    wait_ready destination "$DST_PORT" "$DST_PID"
}

sql_at() { local port=$1; shift; "$MARIADB" --no-defaults "${CLIENT_OPTS[@]}" -h127.0.0.1 -P"$port" -uroot -N -B -e "$@"; }
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

# FLUSH BINARY LOGS, then wait for the new file's own Binlog_checkpoint event. MariaDB
# writes that event once InnoDB has made the old file's commits durable, which can be
# much later, after transactions written meanwhile: a binlog that then ends with it keeps
# `tidemark run --stop-when-caught-up` from ever seeing itself caught up (its position
# stays at the last transaction's end, short of SHOW MASTER STATUS).
flush_binlogs() {
    local f i
    src_sql 'FLUSH BINARY LOGS'
    f=$(src_sql 'SHOW MASTER STATUS' | cut -f1)
    for i in $(seq 1 600); do
        src_sql "SHOW BINLOG EVENTS IN '$f'" | awk -F'\t' -v f="$f" '$3 == "Binlog_checkpoint" && $6 == f { ok = 1 } END { exit !ok }' \
            && return 0
        [ $(( i % 10 )) -ne 0 ] || src_sql 'FLUSH ENGINE LOGS' >/dev/null 2>&1 || true
        sleep 0.1
    done
    die "the source wrote no Binlog_checkpoint event for $f within 60 s of FLUSH BINARY LOGS"
}

slave_field() { # field name of SHOW SLAVE STATUS on the replica
    "$MARIADB" --no-defaults -h127.0.0.1 -P"$REP_PORT" -uroot -E -e 'SHOW SLAVE STATUS' \
        | sed -n "s/^ *$1: //p" | head -1
}

wait_replica() { # label file pos: until the replica's SQL thread has executed everything up to file:pos
    # MASTER_POS_WAIT returns as soon as the SQL thread has executed (committed) every
    # event up to the position; -1 after its 1 s timeout, NULL when the SQL thread is
    # not running (yet, or after an error).
    local got="" waited=0 io_err sql_err
    while :; do
        got=$(rep_sql "SELECT MASTER_POS_WAIT('$2', $3, 1)")
        if [[ "$got" =~ ^[0-9]+$ ]]; then break; fi
        io_err=$(slave_field Last_IO_Errno); sql_err=$(slave_field Last_SQL_Errno)
        if [ "${io_err:-0}" != 0 ] || [ "${sql_err:-0}" != 0 ]; then
            "$MARIADB" --no-defaults -h127.0.0.1 -P"$REP_PORT" -uroot -E -e 'SHOW SLAVE STATUS' >&2 || true
            die "$1: replication stopped with an error (SHOW SLAVE STATUS above)"
        fi
        [ "$got" = "-1" ] || sleep 0.1
        waited=$(( waited + 1 ))
        [ "$waited" -lt 3600 ] || die "$1: the replica did not reach $2:$3 within an hour"
    done
}

# ---------------------------------------------------------------- measuring -------
time_field() { # file 'field label' -> value after the colon
    sed -n "s/^[[:space:]]*$2: //p" "$1" | head -1
}
rss_mib() { awk -v k="$(time_field "$1" 'Maximum resident set size (kbytes)')" 'BEGIN { printf "%.1f", k / 1024 }'; }
cpu_of() { awk -v u="$(time_field "$1" 'User time (seconds)')" -v s="$(time_field "$1" 'System time (seconds)')" 'BEGIN { printf "%.2f", u + s }'; }

plain_log() { sed 's/\x1b\[[0-9;]*m//g' "$1"; }
log_stamp() { # log-file message t0 -> seconds since t0 at the time stamp of the first log line with it
    local l
    l=$(plain_log "$1" | grep -m1 -- "$2" || true)
    [ -z "$l" ] || awk -v e="$(date -d "$(awk '{ print $1 }' <<<"$l")" +%s.%N)" -v t="$3" \
        'BEGIN { d = e - t; printf "%.2f", (d < 0 ? 0 : d) }'
}

# ---------------------------------------------------------------- data ------------
# sysbench TEST prepare of TABLES tables x ROWS rows in the source's sbtest database,
# then: SERVER_VERSION, TABLE_NAMES, QUALIFIED (sbtest.t1,sbtest.t2,...), TOTAL_ROWS,
# RAW_BYTES, DATA_BYTES, INDEX_BYTES, DATA_MB, RAW_MB, INDEX_MB, and
# $WORK/source.checksums; the source settled.
# SHAPE (set by the caller; default sysbench) changes the generated tables:
#   sysbench  sysbench's own: id, k (indexed), c CHAR(120), pad CHAR(60), about 190 bytes a row
#   wide      plus doc TEXT of about 2 KB a row (c and pad repeated)
#   indexed   plus 3 secondary indexes, 4 in all: k, c, pad, (k, c)
shape_sbtest() {
    RAW_EXTRA=""
    local t t0; t0=$(now)
    case "${SHAPE:-sysbench}" in
        sysbench) return 0 ;;
        wide)
            RAW_EXTRA=" + LENGTH(doc)"
            for t in $(src_sql "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA='sbtest'"); do
                src_sql "ALTER TABLE sbtest.\`$t\` ADD COLUMN doc TEXT NOT NULL; UPDATE sbtest.\`$t\` SET doc = REPEAT(CONCAT(c, pad), 11)"
            done ;;
        indexed)
            for t in $(src_sql "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA='sbtest'"); do
                src_sql "ALTER TABLE sbtest.\`$t\` ADD INDEX c_1 (c), ADD INDEX pad_1 (pad), ADD INDEX k_c_1 (k, c)"
            done ;;
        *) die "unknown shape '${SHAPE}' (sysbench, wide or indexed)" ;;
    esac
    log "  shaped ($SHAPE) in $(sub "$(now)" "$t0") s"
}

generate_sbtest() { # test
    SERVER_VERSION=$(src_sql 'SELECT VERSION()')
    log "MariaDB $SERVER_VERSION; generating $TABLES sysbench table(s) x $ROWS rows on the source"
    src_sql 'CREATE DATABASE sbtest'
    local sb_threads=$(( TABLES < $(nproc) ? TABLES : $(nproc) )) t0 t n b
    t0=$(now)
    "$SYSBENCH" "$1" --db-driver=mysql --tables="$TABLES" --table-size="$ROWS" \
        --threads="$sb_threads" --mysql-host=127.0.0.1 --mysql-port="$SRC_PORT" --mysql-user=root \
        --mysql-db=sbtest prepare >"$WORK/sysbench.log" 2>&1 \
        || { cat "$WORK/sysbench.log" >&2; die "sysbench prepare failed"; }
    log "  generated in $(sub "$(now)" "$t0") s"
    shape_sbtest

    mapfile -t TABLE_NAMES < <(src_sql "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA='sbtest' ORDER BY TABLE_NAME")
    [ "${#TABLE_NAMES[@]}" -eq "$TABLES" ] || die "expected $TABLES tables on the source, found ${#TABLE_NAMES[@]}"
    QUALIFIED=$(printf 'sbtest.%s,' "${TABLE_NAMES[@]}"); QUALIFIED=${QUALIFIED%,}
    src_sql "ANALYZE TABLE $QUALIFIED" >/dev/null
    TOTAL_ROWS=0
    RAW_BYTES=0
    for t in "${TABLE_NAMES[@]}"; do
        read -r n b < <(src_sql "SELECT COUNT(*), COALESCE(SUM(8 + LENGTH(c) + LENGTH(pad)$RAW_EXTRA), 0) FROM sbtest.\`$t\`")
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
}

# The binlog between START_FILE:START_POS and END_FILE:END_POS, decoded with mariadb-binlog:
# BINLOGS (its files), INSERTS, UPDATES, DELETES, ROW_CHANGES (their sum), TRANSACTIONS,
# RANGE_EVENTS (events mariadb-binlog shows) and BINLOG_MB ("?" over several files).
count_binlog_range() {
    mapfile -t BINLOGS < <(src_sql 'SHOW BINARY LOGS' | awk -v a="$START_FILE" -v b="$END_FILE" '$1 >= a && $1 <= b { print $1 }')
    (cd "$WORK/source/data" && "$MARIADB_BINLOG" --no-defaults --base64-output=decode-rows --verbose \
        --start-position="$START_POS" --stop-position="$END_POS" "${BINLOGS[@]}") >"$WORK/binlog.txt" \
        2>"$WORK/binlog.log" || { cat "$WORK/binlog.log" >&2; die "mariadb-binlog failed"; }
    RANGE_EVENTS=$(grep -cE '^# at [0-9]+$' "$WORK/binlog.txt" || true)
    INSERTS=$(grep -cE '^### INSERT INTO ' "$WORK/binlog.txt" || true)
    UPDATES=$(grep -cE '^### UPDATE ' "$WORK/binlog.txt" || true)
    DELETES=$(grep -cE '^### DELETE FROM ' "$WORK/binlog.txt" || true)
    TRANSACTIONS=$(grep -cE '\sXid = [0-9]+' "$WORK/binlog.txt" || true)
    rm -f "$WORK/binlog.txt"
    ROW_CHANGES=$(( INSERTS + UPDATES + DELETES ))
    [ "$ROW_CHANGES" -gt 0 ] || die "no row events found in the binlog between $START_FILE:$START_POS and $END_FILE:$END_POS"
    BINLOG_MB=$(awk -v s="$START_POS" -v e="$END_POS" -v n="${#BINLOGS[@]}" \
        'BEGIN { if (n == 1) printf "%.1f", (e - s) / 1e6; else printf "?" }')
}

mysql_task_header() { # name: a task file's first lines, the source and the destination
    cat <<EOF
name = "$1"
[source]
url = "mysql://root@127.0.0.1:$SRC_PORT"
tls = "disabled"
[destination]
url = "mysql://root@127.0.0.1:$DST_PORT"
tls = "disabled"
EOF
}

# ---------------------------------------------------------------- report ----------
machine_ram() { awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo; }
emit_report() { # print the output of the script's `report`, and write it to $OUT (--out)
    REPORT="$(report)"
    echo "$REPORT"
    [ -z "$OUT" ] || { mkdir -p "$(dirname "$OUT")"; echo "$REPORT" >"$OUT"; log "results written to $OUT"; }
}

# ---------------------------------------------------------------- stand-ins -------
# tidemark-sandbox's stand-ins run as examples (`lindorm_standin`, `adb_standin`): each
# prints its URL and stops, with its storage server, when its stdin closes.
STANDIN_PID=""

# build_standin EXAMPLE: sets STANDIN to $STANDIN_BIN, or to a release build of EXAMPLE.
build_standin() {
    if [ -n "${STANDIN_BIN:-}" ]; then
        STANDIN="$STANDIN_BIN"
    else
        local target_dir="${BENCH_TARGET_DIR:-${CARGO_TARGET_DIR:-$REPO/target}}"
        log "building the stand-in $1 (release) into $target_dir"
        CARGO_TARGET_DIR="$target_dir" cargo build --release -p tidemark-sandbox --example "$1" >&2
        STANDIN="$target_dir/release/examples/$1"
    fi
    [ -x "$STANDIN" ] || die "the stand-in $STANDIN is not an executable"
}

# start_standin: starts $STANDIN in $WORK; sets STANDIN_URL and STANDIN_PORT.
start_standin() {
    mkfifo "$WORK/standin.in"
    "$STANDIN" <"$WORK/standin.in" >"$WORK/standin.url" 2>"$WORK/standin.log" &
    STANDIN_PID=$!
    exec 7>"$WORK/standin.in"
    for _ in $(seq 1 1200); do
        [ -s "$WORK/standin.url" ] && break
        kill -0 "$STANDIN_PID" 2>/dev/null || { cat "$WORK/standin.log" >&2; die "the stand-in exited"; }
        sleep 0.1
    done
    STANDIN_URL=$(head -n1 "$WORK/standin.url")
    [ -n "$STANDIN_URL" ] || die "the stand-in printed no URL in 120 s"
    STANDIN_PORT=${STANDIN_URL##*:}
}

# stop_standin: closes the stand-in's stdin and waits for it (up to 30 s); for cleanup_first.
stop_standin() {
    local i
    exec 7>&- 2>/dev/null || true
    if [ -n "$STANDIN_PID" ]; then
        for i in $(seq 1 300); do kill -0 "$STANDIN_PID" 2>/dev/null || break; sleep 0.1; done
        kill "$STANDIN_PID" 2>/dev/null || true
    fi
}
