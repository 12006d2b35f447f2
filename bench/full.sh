#!/usr/bin/env bash
# Benchmark of the full data migration (schema + full copy) of sysbench-shaped tables:
# tidemark (default settings, and with defer_secondary_indexes = true), mydumper+myloader, and
# mariadb-dump | mariadb, each into a freshly emptied destination, each verified with
# CHECKSUM TABLE against the source; and the destination's ingest floor: the destination
# server alone creating the tables and loading the same rows from files on its own disk
# (LOAD DATA INFILE, --floor-threads tables at a time), which no tool writing through the
# server can beat. Every tidemark time is printed as a ratio to the others and the floor.
#
#   bash bench/full.sh [--tables N] [--rows N] [--threads N] [options]
#
# Options (defaults in brackets):
#   --tables N        sysbench tables [8]
#   --shape S         sysbench (as sysbench makes them, ~190 bytes a row), wide (plus a
#                     TEXT column of ~2 KB a row) or indexed (4 secondary indexes) [sysbench]
#   --rows N          rows per table [250000]
#   --threads N       tidemark [full] threads [4]
#   --dump-threads N  mydumper/myloader --threads [2]
#   --load-method M   tidemark [full] load_method: auto, insert or load-data
#                     [not set: tidemark's default]
#   --tools LIST      comma list of tidemark,tidemark-defer,mydumper,mariadb-dump,floor
#                     [all]
#   --floor-threads N tables loaded at a time by the floor [2]
#   --repeat N        rounds; each round runs every tool once, in the order above; the
#                     table shows each tool's median-time round (all times listed) [1]
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
# Everything the script starts (two mariadbd, in a temporary directory, on free ports)
# is stopped and removed on exit. Missing tools are installed with apt-get.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
USAGE_LAST_LINE=35

TABLES=8
ROWS=250000
THREADS=4
DUMP_THREADS=2
TOOLS="tidemark,tidemark-defer,mydumper,mariadb-dump,floor"
FLOOR_THREADS=2
RSS_LIMIT_MB=256
OUT=""
LOGS=""
REPEAT=1
LOAD_METHOD=""
SHAPE=sysbench

while [ $# -gt 0 ]; do
    case "$1" in
        --tables) TABLES="${2:?}"; shift 2 ;;
        --shape) SHAPE="${2:?}"; shift 2 ;;
        --rows) ROWS="${2:?}"; shift 2 ;;
        --threads) THREADS="${2:?}"; shift 2 ;;
        --dump-threads) DUMP_THREADS="${2:?}"; shift 2 ;;
        --tools) TOOLS="${2:?}"; shift 2 ;;
        --floor-threads) FLOOR_THREADS="${2:?}"; shift 2 ;;
        --rss-limit-mb) RSS_LIMIT_MB="${2:?}"; shift 2 ;;
        --out) OUT="${2:?}"; shift 2 ;;
        --logs) LOGS="${2:?}"; shift 2 ;;
        --repeat) REPEAT="${2:?}"; shift 2 ;;
        --load-method) LOAD_METHOD="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
whole_numbers TABLES ROWS THREADS DUMP_THREADS RSS_LIMIT_MB REPEAT FLOOR_THREADS
[ "$TABLES" -ge 1 ] && [ "$ROWS" -ge 1 ] && [ "$THREADS" -ge 1 ] && [ "$REPEAT" -ge 1 ] \
    && [ "$FLOOR_THREADS" -ge 1 ] \
    || die "--tables, --rows, --threads, --repeat and --floor-threads must be at least 1"
want() { [[ ",$TOOLS," == *",$1,"* ]]; }
case "$SHAPE" in sysbench|wide|indexed) ;; *) die "--shape must be sysbench, wide or indexed" ;; esac
case "$LOAD_METHOD" in ""|auto|insert|load-data) ;; *) die "--load-method must be auto, insert or load-data" ;; esac
for t in ${TOOLS//,/ }; do
    case "$t" in tidemark|tidemark-defer|mydumper|mariadb-dump|floor) ;; *) die "--tools: unknown tool '$t'" ;; esac
done

# ---------------------------------------------------------------- tools -----------
need mariadb-server mariadbd mysqld
need mariadb-server mariadb-install-db mysql_install_db
need mariadb-client mariadb
need mariadb-client mariadb-dump
if want mydumper; then
    need mydumper mydumper
    need mydumper myloader
fi
need sysbench sysbench
[ -x /usr/bin/time ] || missing+=(time)
install_missing
find_mariadb
MARIADB_DUMP="$(find_tool mariadb-dump)" || die "mariadb-dump not found"
SYSBENCH="$(find_tool sysbench)" || die "sysbench not found"

# ---------------------------------------------------------------- build -----------
build_tidemark
built_from

# ---------------------------------------------------------------- servers ---------
KEEP_NAMES=('*.log' '*.time' 'time.txt' '*.toml' '*.checksums' '*.tsv')
make_work bench
start_source_and_destination

# ---------------------------------------------------------------- data ------------
generate_sbtest oltp_read_only

# ---------------------------------------------------------------- helpers ---------
reset_destination() {
    dst_sql 'DROP DATABASE IF EXISTS sbtest'
    settle "$DST_PORT"
}

verify() { # label
    dst_sql "CHECKSUM TABLE $QUALIFIED" | sort >"$RUN_DIR/$1.checksums"
    if ! diff -u "$WORK/source.checksums" "$RUN_DIR/$1.checksums" >&2; then
        die "$1: the destination's CHECKSUM TABLE differs from the source's (diff above: - source, + destination)"
    fi
    ! grep -q $'\tNULL$' "$RUN_DIR/$1.checksums" || die "$1: CHECKSUM TABLE returned NULL"
    log "  $1: CHECKSUM TABLE equal on all ${#TABLE_NAMES[@]} table(s)"
}

# Results: one line per measured row in $RESULTS, tab-separated:
# round label wall_s client_cpu_s rss_mib src_cpu_s dst_cpu_s other_cpu_s note
# (a label starting with two spaces is a part of the row before it). other_cpu_s is the
# CPU the rest of the machine used meanwhile: > 0.5 s or so means the run was disturbed.
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
record() { # label wall client_cpu rss src_cpu dst_cpu machine_cpu note
    local other
    other=$(awk -v m="$7" -v a="$3" -v b="$5" -v c="$6" 'BEGIN { o = m - a - b - c; printf "%.2f", (o < 0 ? 0 : o) }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ROUND" "$1" "$2" "$3" "$4" "$5" "$6" "$other" "$8" >>"$RESULTS"
}

# Runs a command under /usr/bin/time -v; $1 = time file, $2 = stdout/stderr log.
timed() {
    local tf=$1 lf=$2; shift 2
    "$TIME" -v -o "$tf" "$@" >"$lf" 2>&1
}

# ---------------------------------------------------------------- tidemark --------
run_tidemark() { # label defer(true|default)
    local label=$1 defer=$2 dir="$RUN_DIR/$1"
    local method="" defer_line=""
    [ -z "$LOAD_METHOD" ] || method=$'\n'"load_method = \"$LOAD_METHOD\""
    [ "$defer" = default ] || defer_line=$'\n'"defer_secondary_indexes = $defer"
    mkdir -p "$dir"
    { mysql_task_header bench; cat <<EOF
[migration]
types = ["schema", "full"]
[full]
threads = $THREADS$defer_line$method
[state]
dir = "$dir/state"
[[objects]]
database = "sbtest"
EOF
    } >"$dir/task.toml"
    reset_destination
    log "$label: tidemark run (threads = $THREADS, defer_secondary_indexes = $defer${LOAD_METHOD:+, load_method = $LOAD_METHOD})"
    local s0 d0 m0 t0 t1
    s0=$(cpu_s "$SRC_PID"); d0=$(cpu_s "$DST_PID"); m0=$(machine_cpu); t0=$(now)
    if ! timed "$dir/time.txt" "$dir/tidemark.log" "$TIDEMARK" run "$dir/task.toml" --no-progress; then
        tail -n 40 "$dir/tidemark.log" >&2
        dst_sql 'SHOW ENGINE INNODB STATUS' | sed 's/\\n/\n/g' >"$dir/innodb-status.log" 2>&1 || true
        sed -n '/LATEST DETECTED DEADLOCK/,/^TRANSACTIONS$/p' "$dir/innodb-status.log" >&2
        die "$label: tidemark run failed (log above; destination's SHOW ENGINE INNODB STATUS saved as innodb-status.log with --logs)"
    fi
    t1=$(now)
    local wall; wall=$(sub "$t1" "$t0")
    log "  $label: $wall s"
    # Phase split from the log: the copy's own line ("... in X s (N rows/s)", stamped
    # when the copy ended) splits the run into precheck + schema, copy, and post-load
    # (deferred indexes, triggers).
    local line copy_s copy_end phases="phases: ?"
    line=$(sed 's/\x1b\[[0-9;]*m//g' "$dir/tidemark.log" | grep -E ' in [0-9.]+ s( \([0-9]+ rows/s\))?$' | tail -1 || true)
    if [ -n "$line" ]; then
        copy_s=$(sed -n 's/.* in \([0-9.]*\) s\( ([0-9]* rows\/s)\)\{0,1\}$/\1/p' <<<"$line")
        copy_end=$(date -d "$(awk '{ print $1 }' <<<"$line")" +%s.%N)
        phases="precheck+schema $(awk -v e="$copy_end" -v c="$copy_s" -v t="$t0" 'BEGIN { d = e - c - t; printf "%.1f", (d < 0 ? 0 : d) }') s, copy $copy_s s, post-load $(awk -v e="$copy_end" -v t="$t1" 'BEGIN { printf "%.1f", t - e }') s"
    fi
    record "$label" "$wall" "$(cpu_of "$dir/time.txt")" "$(rss_mib "$dir/time.txt")" \
        "$(sub "$(cpu_s "$SRC_PID")" "$s0")" "$(sub "$(cpu_s "$DST_PID")" "$d0")" "$(sub "$(machine_cpu)" "$m0")" "$phases"
    verify "$label"
}

# ---------------------------------------------------------------- mydumper --------
run_mydumper() {
    local dir="$RUN_DIR/mydumper" dump="$RUN_DIR/mydumper/dump"
    mkdir -p "$dir"
    local chunking=() note="no row chunking"
    if [ "$(mydumper --help 2>&1 | grep -c -- '--rows')" -gt 0 ]; then
        chunking=(--rows 50000); note="--rows 50000"
    fi
    reset_destination
    log "mydumper+myloader: --threads $DUMP_THREADS, $note ($(mydumper --version 2>&1 | head -1))"
    local s0 d0 m0 s1 d1 m1 t0 t1 t2
    s0=$(cpu_s "$SRC_PID"); d0=$(cpu_s "$DST_PID"); m0=$(machine_cpu); t0=$(now)
    timed "$dir/mydumper.time" "$dir/mydumper.log" mydumper -h 127.0.0.1 -P "$SRC_PORT" -u root \
        -B sbtest -o "$dump" --threads "$DUMP_THREADS" "${chunking[@]}" \
        || { cat "$dir/mydumper.log" >&2; die "mydumper failed"; }
    t1=$(now); s1=$(cpu_s "$SRC_PID"); d1=$(cpu_s "$DST_PID"); m1=$(machine_cpu)
    local retried=""
    if ! timed "$dir/myloader.time" "$dir/myloader.log" myloader -h 127.0.0.1 -P "$DST_PORT" -u root \
            -d "$dump" --threads "$DUMP_THREADS"; then
        # myloader's parallel INSERTs into one table can deadlock each other, and it then
        # gives up: load again from scratch, timing only the attempt that succeeds.
        grep -q 'Deadlock found' "$dir/myloader.log" || { cat "$dir/myloader.log" >&2; die "myloader failed"; }
        log "  myloader stopped on a deadlock of its own statements; loading again (the time is the second attempt's)"
        retried="; myloader deadlocked once and was run again (CPU columns include both attempts)"
        local dump_s; dump_s=$(sub "$t1" "$t0")
        reset_destination
        s1=$(cpu_s "$SRC_PID"); d1=$(cpu_s "$DST_PID"); m1=$(machine_cpu); t1=$(now)
        t0=$(sub "$t1" "$dump_s")
        timed "$dir/myloader.time" "$dir/myloader.log" myloader -h 127.0.0.1 -P "$DST_PORT" -u root \
            -d "$dump" --threads "$DUMP_THREADS" \
            || { cat "$dir/myloader.log" >&2; die "myloader failed again"; }
    fi
    t2=$(now)
    local s2 d2 m2; s2=$(cpu_s "$SRC_PID"); d2=$(cpu_s "$DST_PID"); m2=$(machine_cpu)
    local dump_mb; dump_mb=$(du -sm "$dump" | cut -f1)
    log "  mydumper $(sub "$t1" "$t0") s + myloader $(sub "$t2" "$t1") s = $(sub "$t2" "$t0") s (dump $dump_mb MB)"
    local rss_d rss_l
    rss_d=$(rss_mib "$dir/mydumper.time"); rss_l=$(rss_mib "$dir/myloader.time")
    record "mydumper+myloader" "$(sub "$t2" "$t0")" \
        "$(awk -v a="$(cpu_of "$dir/mydumper.time")" -v b="$(cpu_of "$dir/myloader.time")" 'BEGIN { printf "%.2f", a + b }')" \
        "$(awk -v a="$rss_d" -v b="$rss_l" 'BEGIN { printf "%.1f", (a > b ? a : b) }')" \
        "$(sub "$s2" "$s0")" "$(sub "$d2" "$d0")" "$(sub "$m2" "$m0")" "dump $dump_mb MB on disk$retried"
    record "  mydumper" "$(sub "$t1" "$t0")" "$(cpu_of "$dir/mydumper.time")" "$rss_d" \
        "$(sub "$s1" "$s0")" "$(sub "$d1" "$d0")" "$(sub "$m1" "$m0")" "$note"
    record "  myloader" "$(sub "$t2" "$t1")" "$(cpu_of "$dir/myloader.time")" "$rss_l" \
        "$(sub "$s2" "$s1")" "$(sub "$d2" "$d1")" "$(sub "$m2" "$m1")" ""
    rm -rf "$dump"
    verify mydumper
}

# ---------------------------------------------------------------- mariadb-dump ----
run_mariadb_dump() {
    local dir="$RUN_DIR/mariadb-dump"
    mkdir -p "$dir"
    reset_destination
    dst_sql 'CREATE DATABASE sbtest'
    log "mariadb-dump --single-transaction sbtest | mariadb"
    local s0 d0 t0 t1
    s0=$(cpu_s "$SRC_PID"); d0=$(cpu_s "$DST_PID"); m0=$(machine_cpu); t0=$(now)
    if ! "$TIME" -v -o "$dir/dump.time" "$MARIADB_DUMP" --no-defaults -h127.0.0.1 -P"$SRC_PORT" -uroot \
            --single-transaction sbtest 2>"$dir/dump.log" \
        | "$TIME" -v -o "$dir/load.time" "$MARIADB" --no-defaults -h127.0.0.1 -P"$DST_PORT" -uroot sbtest \
            >"$dir/load.log" 2>&1; then
        cat "$dir/dump.log" "$dir/load.log" >&2
        die "mariadb-dump | mariadb failed"
    fi
    t1=$(now)
    log "  mariadb-dump | mariadb: $(sub "$t1" "$t0") s"
    local rss_d rss_l
    rss_d=$(rss_mib "$dir/dump.time"); rss_l=$(rss_mib "$dir/load.time")
    record "mariadb-dump | mariadb" "$(sub "$t1" "$t0")" \
        "$(awk -v a="$(cpu_of "$dir/dump.time")" -v b="$(cpu_of "$dir/load.time")" 'BEGIN { printf "%.2f", a + b }')" \
        "$(awk -v a="$rss_d" -v b="$rss_l" 'BEGIN { printf "%.1f", (a > b ? a : b) }')" \
        "$(sub "$(cpu_s "$SRC_PID")" "$s0")" "$(sub "$(cpu_s "$DST_PID")" "$d0")" "$(sub "$(machine_cpu)" "$m0")" \
        "RSS: dump $rss_d, client $rss_l MiB"
    verify mariadb-dump
}

# ---------------------------------------------------------------- floor -----------
# The rows as files on the destination's disk, once: the source writes them (same machine)
# with SELECT ... INTO OUTFILE, in LOAD DATA's default format.
export_floor_files() {
    FLOOR_DIR="$WORK/floor-files"
    mkdir -p "$FLOOR_DIR"
    chmod 777 "$FLOOR_DIR"
    local t
    for t in "${TABLE_NAMES[@]}"; do
        src_sql "SELECT * INTO OUTFILE '$FLOOR_DIR/$t.tsv' FROM sbtest.\`$t\`" \
            || die "floor: SELECT ... INTO OUTFILE failed on the source (secure_file_priv?)"
        src_sql "SHOW CREATE TABLE sbtest.\`$t\`" | cut -f2- | sed 's/\\n/\n/g' >"$FLOOR_DIR/$t.sql"
    done
}

run_floor() {
    local dir="$RUN_DIR/floor"
    mkdir -p "$dir"
    [ -n "${FLOOR_DIR:-}" ] || export_floor_files
    reset_destination
    log "floor: the destination alone, CREATE TABLE + LOAD DATA INFILE, $FLOOR_THREADS table(s) at a time"
    local s0 d0 m0 t0 t1
    s0=$(cpu_s "$SRC_PID"); d0=$(cpu_s "$DST_PID"); m0=$(machine_cpu); t0=$(now)
    dst_sql 'CREATE DATABASE sbtest'
    printf '%s\n' "${TABLE_NAMES[@]}" | xargs -P "$FLOOR_THREADS" -I{} \
        "$MARIADB" --no-defaults -h127.0.0.1 -P"$DST_PORT" -uroot sbtest \
        -e "source $FLOOR_DIR/{}.sql; LOAD DATA INFILE '$FLOOR_DIR/{}.tsv' INTO TABLE \`{}\`" \
        >"$dir/floor.log" 2>&1 || { cat "$dir/floor.log" >&2; die "floor: LOAD DATA INFILE failed"; }
    t1=$(now)
    log "  floor: $(sub "$t1" "$t0") s"
    record floor "$(sub "$t1" "$t0")" 0 0 "$(sub "$(cpu_s "$SRC_PID")" "$s0")" \
        "$(sub "$(cpu_s "$DST_PID")" "$d0")" "$(sub "$(machine_cpu)" "$m0")" \
        "LOAD DATA INFILE, $FLOOR_THREADS at a time"
    verify floor
}

for ROUND in $(seq 1 "$REPEAT"); do
    RUN_DIR="$WORK/round$ROUND"
    mkdir -p "$RUN_DIR"
    [ "$REPEAT" -eq 1 ] || log "round $ROUND of $REPEAT"
    if want tidemark; then run_tidemark tidemark default; fi
    if want tidemark-defer; then run_tidemark tidemark-defer true; fi
    if want mydumper; then run_mydumper; fi
    if want mariadb-dump; then run_mariadb_dump; fi
    if want floor; then run_floor; fi
done

# ---------------------------------------------------------------- report ----------
# The table: per tool, the round with the median wall time (its parts from the same
# round); peak RSS is the maximum over all rounds.
TABLE_AWK='
BEGIN { FS = "\t" }
{
    r = $1; l = $2
    if (substr(l, 1, 2) != "  ") { parent = l; if (!(l in seen)) { seen[l] = 1; order[++n] = l } }
    else { key = parent SUBSEP l; if (!(key in subseen)) { subseen[key] = 1; subs[parent] = subs[parent] SUBSEP l } }
    k = r SUBSEP l
    wall[k] = $3; cpu[k] = $4; rss[k] = $5; scpu[k] = $6; dcpu[k] = $7; ocpu[k] = $8; note[k] = $9
    if ($5 + 0 > maxrss[l] + 0) maxrss[l] = $5
    if (substr(l, 1, 2) != "  ") { rounds[l] = rounds[l] " " r; all[l] = all[l] (all[l] == "" ? "" : ", ") $3 }
}
function median_round(l,    m, i, j, rr, t) {
    m = split(substr(rounds[l], 2), rr, " ")
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++)
        if (wall[rr[j] SUBSEP l] + 0 < wall[rr[i] SUBSEP l] + 0) { t = rr[i]; rr[i] = rr[j]; rr[j] = t }
    return rr[int((m + 1) / 2)]
}
function esc(s) { gsub(/\|/, "\\|", s); return s }
END {
    for (i = 1; i <= n; i++) {
        l = order[i]; r = median_round(l); k = r SUBSEP l
        printf "| %s | %s | %.0f | %.1f | %s | %s | %s | %s | %s | %s | %s |\n", esc(l), wall[k], rows / wall[k], bytes / 1e6 / wall[k], maxrss[l], cpu[k], scpu[k], dcpu[k], ocpu[k], (repeat > 1 ? all[l] : "-"), note[k]
        m = split(substr(subs[l], 2), ss, SUBSEP)
        for (j = 1; j <= m; j++) {
            sk = r SUBSEP ss[j]
            printf "| ↳ %s | %s | | | %s | %s | %s | %s | %s | | %s |\n", substr(ss[j], 3), wall[sk], maxrss[ss[j]], cpu[sk], scpu[sk], dcpu[sk], ocpu[sk], note[sk]
        }
        med[l] = wall[k]
    }
    print ""
    split("tidemark tidemark-defer", tm, " ")
    base[1] = "mydumper+myloader"; base[2] = "mariadb-dump | mariadb"; base[3] = "floor"; nb = 3
    for (a = 1; a <= 2; a++) for (b = 1; b <= nb; b++)
        if ((tm[a] in med) && (base[b] in med))
            printf "- %s / %s time: %.2f%s\n", tm[a], base[b], med[tm[a]] / med[base[b]], \
                (b == 3 ? " (goal: at most 1.25)" : "")
    for (a = 1; a <= 2; a++)
        if ((tm[a] in med) && (base[1] in med))
            printf "- %s / %s time (speed-up): %.2f (goal: at least 1.3)\n", base[1], tm[a], med[base[1]] / med[tm[a]]
    for (b = 1; b <= 2; b++)
        if ((base[b] in med) && ("floor" in med))
            printf "- %s / floor time: %.2f\n", base[b], med[base[b]] / med["floor"]
}'
report() {
    echo "## Full migration: $TABLES table(s) x $ROWS rows ($SHAPE shape)"
    echo
    echo "MariaDB $SERVER_VERSION, $(nproc) CPU(s), $(machine_ram) RAM;"
    echo "$BUILT_FROM; tidemark threads = $THREADS${LOAD_METHOD:+, load_method = $LOAD_METHOD}; mydumper/myloader --threads $DUMP_THREADS; $REPEAT round(s)."
    echo "Source: $TOTAL_ROWS rows, DATA_LENGTH $DATA_MB MB (MB/s below uses this), INDEX_LENGTH $INDEX_MB MB, raw row bytes $RAW_MB MB."
    echo
    echo "| tool | wall s | rows/s | MB/s | peak RSS MiB | client CPU s | source server CPU s | destination server CPU s | other CPU s | all rounds, s | note |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    awk -v rows="$TOTAL_ROWS" -v bytes="$DATA_BYTES" -v repeat="$REPEAT" "$TABLE_AWK" "$RESULTS"
}
emit_report

if [ "$RSS_LIMIT_MB" -gt 0 ]; then
    over=$(awk -F'\t' -v lim="$RSS_LIMIT_MB" '$2 ~ /^tidemark/ && $5 + 0 >= lim + 0 { printf "%s (round %s): %s MiB; ", $2, $1, $5 }' "$RESULTS")
    if [ -n "$over" ]; then
        log "FAIL: tidemark peak RSS not below the limit of $RSS_LIMIT_MB MiB: $over"
        exit 3
    fi
    log "tidemark peak RSS below $RSS_LIMIT_MB MiB in every run"
fi
