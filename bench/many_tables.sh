#!/usr/bin/env bash
# Schema + full copy of many small tables: what does not scale with rows (catalog reading,
# precheck, schema creation, chunk planning, state-store writes), against mydumper+myloader
# on the same database (issue 15, the 10 000-table case).
#
# For each N of --counts, creates N tables x --rows rows in a fresh database `many` on a
# throwaway source, then runs `tidemark run` (schema + full, default settings) and
# mydumper | myloader into a throwaway destination, and prints total seconds and seconds
# per 1 000 tables for both, plus tidemark's phases from its log lines (precheck, schema,
# chunk planning, copy, the rest). CHECKSUM TABLE of every table is compared after each run.
#
# Usage: bench/many_tables.sh [options]
#   --counts LIST     comma list of table counts [1000,10000]
#   --rows N          rows per table [10]
#   --dump-threads N  mydumper/myloader --threads [2]
#   --tools LIST      comma list of tidemark,mydumper [all]
#   --out FILE        also write the results (markdown) to FILE
#   --logs DIR        keep the tools' logs, /usr/bin/time reports and task files in DIR
#
# Environment: BENCH_TARGET_DIR, TIDEMARK_BIN, BENCH_TMPDIR as for bench/full.sh.
# Everything the script starts (two mariadbd, in a temporary directory, on free ports)
# is stopped and removed on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BENCH_NAME=many_tables
USAGE_LAST_LINE=22

COUNTS="1000,10000"
ROWS=10
DUMP_THREADS=2
TOOLS="tidemark,mydumper"
OUT=""
LOGS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --counts) COUNTS="${2:?}"; shift 2 ;;
        --rows) ROWS="${2:?}"; shift 2 ;;
        --dump-threads) DUMP_THREADS="${2:?}"; shift 2 ;;
        --tools) TOOLS="${2:?}"; shift 2 ;;
        --out) OUT="${2:?}"; shift 2 ;;
        --logs) LOGS="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
whole_numbers ROWS DUMP_THREADS
for n in ${COUNTS//,/ }; do [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "--counts: '$n' is not a whole number of at least 1"; done
want() { [[ ",$TOOLS," == *",$1,"* ]]; }
for t in ${TOOLS//,/ }; do
    case "$t" in tidemark|mydumper) ;; *) die "--tools: unknown tool '$t'" ;; esac
done

need mariadb-server mariadbd mysqld
need mariadb-server mariadb-install-db mysql_install_db
need mariadb-client mariadb
if want mydumper; then need mydumper mydumper; need mydumper myloader; fi
[ -x /usr/bin/time ] || missing+=(time)
install_missing
find_mariadb
build_tidemark
built_from

KEEP_NAMES=('*.log' '*.time' 'time.txt' '*.toml')
make_work many
# Many tables open at once: the default table cache and open-files limit are too small.
TABLE_OPTS=(--table-open-cache=20000 --table-definition-cache=20000 --open-files-limit=65535)
start_source_and_destination "${TABLE_OPTS[@]}" -- "${TABLE_OPTS[@]}"
SERVER_VERSION=$(src_sql 'SELECT VERSION()')

timed() { local tf=$1 lf=$2; shift 2; "$TIME" -v -o "$tf" "$@" >"$lf" 2>&1; }

generate() { # n: database `many` with n tables t1..tn of ROWS rows each
    log "generating $1 table(s) x $ROWS rows on the source"
    local t0; t0=$(now)
    src_sql 'DROP DATABASE IF EXISTS many; CREATE DATABASE many'
    awk -v n="$1" -v rows="$ROWS" 'BEGIN {
        print "SET SESSION sql_log_bin = 0;"
        for (i = 1; i <= n; i++) {
            printf "CREATE TABLE many.t%d (id INT NOT NULL PRIMARY KEY, k INT NOT NULL, c CHAR(40) NOT NULL, KEY k (k));\n", i
            if (rows > 0) {
                printf "INSERT INTO many.t%d VALUES ", i
                for (r = 1; r <= rows; r++) printf "%s(%d,%d,\"row %d of table %d\")", (r > 1 ? "," : ""), r, r * 7 % 13, r, i
                print ";"
            }
        }
    }' | "$MARIADB" --no-defaults -h127.0.0.1 -P"$SRC_PORT" -uroot
    log "  generated in $(sub "$(now)" "$t0") s"
}

checksums() { # port -> file of "table<TAB>checksum", 1 000 tables per statement
    local port=$1 n=$2 i j list
    for (( i = 1; i <= n; i += 1000 )); do
        list=""
        for (( j = i; j < i + 1000 && j <= n; j++ )); do list="$list${list:+,}many.t$j"; done
        sql_at "$port" "CHECKSUM TABLE $list"
    done | sort
}
verify() { # label n
    checksums "$DST_PORT" "$2" >"$RUN_DIR/$1.checksums"
    diff -q "$WORK/source-$2.checksums" "$RUN_DIR/$1.checksums" >/dev/null \
        || die "$1: the destination's CHECKSUM TABLE differs from the source's on $(diff "$WORK/source-$2.checksums" "$RUN_DIR/$1.checksums" | grep -c '^>') table(s)"
    ! grep -q $'\tNULL$' "$RUN_DIR/$1.checksums" || die "$1: CHECKSUM TABLE returned NULL (a table is missing)"
    log "  $1: CHECKSUM TABLE equal on all $2 table(s)"
}
reset_destination() { dst_sql 'DROP DATABASE IF EXISTS many'; settle "$DST_PORT"; }

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; } # n label wall rss note

run_tidemark() { # n
    local n=$1 dir="$RUN_DIR/tidemark"
    mkdir -p "$dir"
    { mysql_task_header many; cat <<EOT
[migration]
types = ["schema", "full"]
[state]
dir = "$dir/state"
[[objects]]
database = "many"
EOT
    } >"$dir/task.toml"
    reset_destination
    log "tidemark run, $n tables"
    local t0 t1
    t0=$(now)
    timed "$dir/time.txt" "$dir/tidemark.log" "$TIDEMARK" run "$dir/task.toml" --no-progress \
        || { tail -n 40 "$dir/tidemark.log" >&2; die "tidemark run failed"; }
    t1=$(now)
    local wall; wall=$(sub "$t1" "$t0")
    # Phases from the log's time stamps: each boundary is the first line with the message.
    local p s c e
    p=$(log_stamp "$dir/tidemark.log" 'precheck: done' "$t0")
    s=$(log_stamp "$dir/tidemark.log" 'schema: done' "$t0")
    c=$(log_stamp "$dir/tidemark.log" 'chunk(s) to copy in' "$t0")
    e=$(plain_log "$dir/tidemark.log" | grep -E ' in [0-9.]+ s( |$)' | tail -1 | awk '{ print $1 }' || true)
    [ -z "$e" ] || e=$(awk -v e="$(date -d "$e" +%s.%N)" -v t="$t0" 'BEGIN { printf "%.2f", e - t }')
    local note
    note=$(awk -v p="${p:-0}" -v s="${s:-0}" -v c="${c:-0}" -v e="${e:-0}" -v w="$wall" 'BEGIN {
        printf "start+precheck %.1f s, schema %.1f s, chunk planning %.1f s, copy %.1f s, post-load+end %.1f s", p, s - p, c - s, e - c, w - e }')
    log "  tidemark: $wall s ($note)"
    record "$n" tidemark "$wall" "$(rss_mib "$dir/time.txt")" "$note"
    verify tidemark "$n"
}

run_mydumper() { # n
    local n=$1 dir="$RUN_DIR/mydumper" dump="$RUN_DIR/mydumper/dump"
    mkdir -p "$dir"
    reset_destination
    log "mydumper+myloader, $n tables (--threads $DUMP_THREADS)"
    local t0 t1 t2
    t0=$(now)
    timed "$dir/mydumper.time" "$dir/mydumper.log" mydumper -h 127.0.0.1 -P "$SRC_PORT" -u root \
        -B many -o "$dump" --threads "$DUMP_THREADS" || { tail "$dir/mydumper.log" >&2; die "mydumper failed"; }
    t1=$(now)
    timed "$dir/myloader.time" "$dir/myloader.log" myloader -h 127.0.0.1 -P "$DST_PORT" -u root \
        -d "$dump" --threads "$DUMP_THREADS" || { tail "$dir/myloader.log" >&2; die "myloader failed"; }
    t2=$(now)
    local note="mydumper $(sub "$t1" "$t0") s + myloader $(sub "$t2" "$t1") s"
    log "  $note"
    record "$n" "mydumper+myloader" "$(sub "$t2" "$t0")" \
        "$(awk -v a="$(rss_mib "$dir/mydumper.time")" -v b="$(rss_mib "$dir/myloader.time")" 'BEGIN { printf "%.1f", (a > b ? a : b) }')" "$note"
    rm -rf "$dump"
    verify mydumper "$n"
}

for N in ${COUNTS//,/ }; do
    RUN_DIR="$WORK/n$N"
    mkdir -p "$RUN_DIR"
    generate "$N"
    checksums "$SRC_PORT" "$N" >"$WORK/source-$N.checksums"
    settle "$SRC_PORT"
    if want tidemark; then run_tidemark "$N"; fi
    if want mydumper; then run_mydumper "$N"; fi
done

report() {
    echo "## Many small tables: schema + full copy, $ROWS rows per table"
    echo
    echo "MariaDB $SERVER_VERSION, $(nproc) CPU(s), $(machine_ram) RAM; $BUILT_FROM; tidemark defaults; mydumper/myloader --threads $DUMP_THREADS."
    echo
    echo "| tables | tool | wall s | s per 1 000 tables | peak RSS MiB | note |"
    echo "|---:|---|---:|---:|---:|---|"
    awk -F'\t' '{ printf "| %s | %s | %s | %.2f | %s | %s |\n", $1, $2, $3, $3 * 1000 / $1, $4, $5 }' "$RESULTS"
}
emit_report
