#!/usr/bin/env bash
# Benchmark of `tidemark verify` on sysbench-shaped tables: the time it takes against the
# time of copying the same data, and the bytes it moves over the network.
#
#   bash bench/verify.sh [--tables N] [--rows N] [--diffs N] [options]
#
# Each round: copy the source into an emptied destination with `tidemark run` (schema +
# full; the reference time), verify the equal data, plant differences on the destination
# (--diffs rows deleted, --diffs rows updated, --diffs extra rows inserted, spread over the
# tables), verify again (must exit 1 and report exactly the planted keys), `verify
# --repair`, and verify once more (must exit 0).
#
# Options (defaults in brackets):
#   --tables N          sysbench tables [8]
#   --rows N            rows per table [250000]
#   --threads N         tidemark [full] threads for the copy [4]
#   --verify-threads N  pass `--threads N` to tidemark verify [not passed: its default]
#   --diffs N           rows of each kind of difference planted [10]
#   --repeat N          rounds; the table shows each run's median-time round [1]
#   --out FILE          also write the results (markdown) to FILE
#   --logs DIR          keep the tools' logs, JSON reports, /usr/bin/time reports, slow
#                       query logs and task files in DIR
#
# Environment:
#   BENCH_TARGET_DIR  cargo target directory for the release build
#                     [$CARGO_TARGET_DIR, else <repo>/target]
#   TIDEMARK_BIN      use this tidemark binary instead of building one
#   BENCH_TMPDIR      where the servers' data go [$TMPDIR or /tmp]
#
# Exit status: 0, or 4 (after the results) when a check failed: a wrong exit code from
# verify, keys reported other than the planted ones, or CHECKSUM TABLE differing after the
# repair. Everything the script starts (two mariadbd, in a temporary directory, on free
# ports) is stopped and removed on exit. Missing tools are installed with apt-get.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TABLES=8
ROWS=250000
THREADS=4
VERIFY_THREADS=""
DIFFS=10
OUT=""
LOGS=""
REPEAT=1

while [ $# -gt 0 ]; do
    case "$1" in
        --tables) TABLES="${2:?}"; shift 2 ;;
        --rows) ROWS="${2:?}"; shift 2 ;;
        --threads) THREADS="${2:?}"; shift 2 ;;
        --verify-threads) VERIFY_THREADS="${2:?}"; shift 2 ;;
        --diffs) DIFFS="${2:?}"; shift 2 ;;
        --out) OUT="${2:?}"; shift 2 ;;
        --logs) LOGS="${2:?}"; shift 2 ;;
        --repeat) REPEAT="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
whole_numbers TABLES ROWS THREADS DIFFS REPEAT
[ -z "$VERIFY_THREADS" ] || [[ "$VERIFY_THREADS" =~ ^[0-9]+$ ]] || die "--verify-threads must be a whole number"
[ "$TABLES" -ge 1 ] && [ "$ROWS" -ge 1 ] && [ "$THREADS" -ge 1 ] && [ "$REPEAT" -ge 1 ] && [ "$DIFFS" -ge 1 ] \
    || die "--tables, --rows, --threads, --diffs and --repeat must be at least 1"
[ "$ROWS" -ge $(( 4 * DIFFS )) ] || die "--rows must be at least 4 x --diffs"

# ---------------------------------------------------------------- tools -----------
need mariadb-server mariadbd mysqld
need mariadb-server mariadb-install-db mysql_install_db
need mariadb-client mariadb
need sysbench sysbench
need jq jq
[ -x /usr/bin/time ] || missing+=(time)
install_missing
find_mariadb
SYSBENCH="$(find_tool sysbench)" || die "sysbench not found"
JQ="$(find_tool jq)" || die "jq not found"

# ---------------------------------------------------------------- build -----------
build_tidemark
built_from
VERIFY_ARGS=()
if [ -n "$VERIFY_THREADS" ]; then
    help=$("$TIDEMARK" verify --help 2>&1 || true)
    [[ "$help" == *--threads* ]] || die "--verify-threads: this tidemark's verify has no --threads option"
    VERIFY_ARGS=(--threads "$VERIFY_THREADS")
fi

# ---------------------------------------------------------------- servers ---------
KEEP_DEPTH=4
KEEP_NAMES=('*.log' '*.time' '*.out' '*.toml' '*.checksums' '*.tsv' '*.sql')
make_work bench
start_source_and_destination --slow-query-log-file="$WORK/source/slow.log" \
    -- --slow-query-log-file="$WORK/destination/slow.log"

# Network counters: the servers' own Bytes_sent / Bytes_received (global, all clients).
# Reading them is itself a client connection, whose bytes land in the next reading; that
# overhead is measured below and subtracted.
net_one() { "$MARIADB" --no-defaults -h127.0.0.1 -P"$1" -uroot -N -B -e \
    "SELECT SUM(IF(VARIABLE_NAME = 'BYTES_SENT', VARIABLE_VALUE, 0)), SUM(IF(VARIABLE_NAME = 'BYTES_RECEIVED', VARIABLE_VALUE, 0))
     FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN ('BYTES_SENT', 'BYTES_RECEIVED')" | tr '\t' ' '; }
net() { echo "$(net_one "$SRC_PORT") $(net_one "$DST_PORT")"; } # src_sent src_recv dst_sent dst_recv
net_delta() { # before after -> the four deltas, less the reading's overhead, never below 0
    awk -v a="$1" -v b="$2" -v o="$NET_OVERHEAD" 'BEGIN {
        split(a, x, " "); split(b, y, " "); split(o, z, " ")
        for (i = 1; i <= 4; i++) { d = y[i] - x[i] - z[i]; printf "%s%d", (i > 1 ? " " : ""), (d < 0 ? 0 : d) }
    }'
}
NET_OVERHEAD="0 0 0 0"
samples=()
for i in 1 2 3 4 5; do
    n0=$(net); n1=$(net)
    samples+=("$(net_delta "$n0" "$n1")")
done
# the median of each counter over the 5 pairs
NET_OVERHEAD=$(printf '%s\n' "${samples[@]}" | awk '{ for (i = 1; i <= 4; i++) v[i, NR] = $i }
    END { for (i = 1; i <= 4; i++) { for (j = 1; j <= NR; j++) s[j] = v[i, j]; n = asort(s); printf "%s%d", (i > 1 ? " " : ""), s[int((n + 1) / 2)] } }')
log "one reading of the byte counters costs (src sent, src received, dst sent, dst received): $NET_OVERHEAD bytes; subtracted"

slow_on() { # start logging queries over 0.2 s on both servers (new sessions pick it up)
    local p
    for p in "$SRC_PORT" "$DST_PORT"; do
        "$MARIADB" --no-defaults -h127.0.0.1 -P"$p" -uroot -e 'SET GLOBAL long_query_time = 0.2; SET GLOBAL slow_query_log = ON'
    done
}
slow_off() {
    local p
    for p in "$SRC_PORT" "$DST_PORT"; do
        "$MARIADB" --no-defaults -h127.0.0.1 -P"$p" -uroot -e 'SET GLOBAL slow_query_log = OFF; SET GLOBAL long_query_time = DEFAULT'
    done
}
slow_count() { # server name -> entries so far in its slow log
    local c=0
    [ ! -f "$WORK/$1/slow.log" ] || c=$(grep -c '^# Query_time' "$WORK/$1/slow.log" || true)
    echo "${c:-0}"
}

# ---------------------------------------------------------------- data ------------
generate_sbtest oltp_read_write

# ---------------------------------------------------------------- helpers ---------
FAILURES=()
fail() { log "CHECK FAILED: $*"; FAILURES+=("round $ROUND: $*"); }

checksums_equal() { # label -> 0 when the destination's CHECKSUM TABLE equals the source's
    dst_sql "CHECKSUM TABLE $QUALIFIED" | sort >"$RUN_DIR/$1.checksums"
    if diff -u "$WORK/source.checksums" "$RUN_DIR/$1.checksums" >&2 \
        && ! grep -q $'\tNULL$' "$RUN_DIR/$1.checksums"; then
        log "  $1: CHECKSUM TABLE equal on all ${#TABLE_NAMES[@]} table(s)"
        return 0
    fi
    return 1
}

# Results: one line per run in $RESULTS, tab-separated:
# round label exit wall_s rows client_cpu_s rss_mib src_cpu_s dst_cpu_s other_cpu_s
#   src_sent src_recv dst_sent dst_recv chunks note
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
record() {
    local IFS=$'\t'
    printf '%s\t%s\n' "$ROUND" "$*" >>"$RESULTS"
}

# Runs tidemark under /usr/bin/time -v, measuring wall time, CPU and network.
# $1 = label (also the file stem), rest = tidemark arguments. Sets RUN_RC, RUN_WALL,
# RUN_NET (the four byte counts), RUN_CPU (client src dst other).
measure() {
    local label=$1; shift
    local dir="$RUN_DIR"
    local n0 n1 s0 d0 m0 t0 t1
    n0=$(net); s0=$(cpu_s "$SRC_PID"); d0=$(cpu_s "$DST_PID"); m0=$(machine_cpu); t0=$(now)
    set +e
    "$TIME" -v -o "$dir/$label.time" "$TIDEMARK" "$@" >"$dir/$label.out" 2>"$dir/$label.log"
    RUN_RC=$?
    set -e
    t1=$(now)
    local s1 d1 m1; s1=$(cpu_s "$SRC_PID"); d1=$(cpu_s "$DST_PID"); m1=$(machine_cpu)
    n1=$(net)
    RUN_WALL=$(sub "$t1" "$t0")
    RUN_NET=$(net_delta "$n0" "$n1")
    local client src dst other
    client=$(cpu_of "$dir/$label.time"); src=$(sub "$s1" "$s0"); dst=$(sub "$d1" "$d0")
    other=$(awk -v m="$(sub "$m1" "$m0")" -v a="$client" -v b="$src" -v c="$dst" 'BEGIN { o = m - a - b - c; printf "%.2f", (o < 0 ? 0 : o) }')
    RUN_CPU="$client $src $dst $other"
}

write_task() { # dir
    { mysql_task_header bench; cat <<EOF
[migration]
types = ["schema", "full"]
[full]
threads = $THREADS
[state]
dir = "$1/state"
[[objects]]
database = "sbtest"
EOF
    } >"$1/task.toml"
}

# One verify run: label, expected exit codes (e.g. "0" or "0 1"), extra verify args.
# Records the run; the JSON report is $RUN_DIR/$label.out.
run_verify() {
    local label=$1 expect=$2; shift 2
    local sc0 dc0
    sc0=$(slow_count source); dc0=$(slow_count destination)
    log "$label: tidemark verify --json $* ${VERIFY_ARGS[*]}"
    measure "$label" verify --json "${VERIFY_ARGS[@]}" "$@" "$RUN_DIR/task.toml"
    local json="$RUN_DIR/$label.out" rows=0 chunks=0 differing=0 tmin=0 tmax=0 note
    if "$JQ" -e . "$json" >/dev/null 2>&1; then
        read -r rows chunks differing tmin tmax < <("$JQ" -r '[([.tables[].rows_compared] | add // 0),
            ([.tables[].chunks] | add // 0), ([.tables[].chunks_differing] | add // 0),
            ([.tables[].seconds] | min // 0), ([.tables[].seconds] | max // 0)] | @tsv' "$json")
        local problems
        problems=$("$JQ" -r '.tables[] | select(.problem != null or (.schema // [] | length) > 0)
            | "\(.target): \(.problem // "") \(.schema // [] | join("; "))"' "$json")
        [ -z "$problems" ] || fail "$label: problems or schema differences reported: $problems"
    else
        tail -n 20 "$RUN_DIR/$label.log" >&2
        fail "$label: no JSON report (exit $RUN_RC)"
    fi
    [[ " $expect " == *" $RUN_RC "* ]] || { tail -n 20 "$RUN_DIR/$label.log" >&2; fail "$label: exit $RUN_RC, expected $expect"; }
    [ "$rows" -eq "$TOTAL_ROWS" ] || fail "$label: $rows rows compared, the source has $TOTAL_ROWS"
    local sc dc
    sc=$(( $(slow_count source) - sc0 )); dc=$(( $(slow_count destination) - dc0 ))
    note=$(printf '%d chunks (%d differing), tables %.2f–%.2f s, queries > 0.2 s: %d source, %d destination' \
        "$chunks" "$differing" "$tmin" "$tmax" "$sc" "$dc")
    log "  $label: exit $RUN_RC, $RUN_WALL s, $rows rows, $note; bytes (src sent/recv, dst sent/recv): $RUN_NET"
    record "$label" "$RUN_RC" "$RUN_WALL" "$rows" ${RUN_CPU// /$'\t'} "$(rss_mib "$RUN_DIR/$label.time")" \
        ${RUN_NET// /$'\t'} "$chunks" "$note"
}

# Keys the differences go to: spread over the tables and over each table's key range,
# with the edges covered: the first row deleted, the last row updated, extra rows above
# the largest and below the smallest key (the open-ended first and last chunks).
plant_differences() {
    local i t id col sql="" exp="$RUN_DIR/expected.tsv"
    declare -A used=()
    : >"$exp"
    pick() { # table base-id step -> id: the first unused id from base-id on, by step
        local tt=$1 x=$2
        while [ -n "${used[$tt:$x]:-}" ]; do x=$(( x + $3 )); done
        used[$tt:$x]=1
        id=$x
    }
    for (( i = 0; i < DIFFS; i++ )); do
        t=$(( (i % TABLES) + 1 ))
        pick "$t" $(( 1 + i * ROWS / DIFFS )) 1
        sql+="DELETE FROM sbtest.sbtest$t WHERE id = $id;"
        printf 'missing\tsbtest%d\t%d\t\n' "$t" "$id" >>"$exp"
    done
    for (( i = 0; i < DIFFS; i++ )); do
        t=$(( ((i + 3) % TABLES) + 1 ))
        pick "$t" $(( ROWS - i * ROWS / DIFFS )) -1
        case $(( i % 3 )) in
            0) col=c; sql+="UPDATE sbtest.sbtest$t SET c = CONCAT('verify-bench-', id) WHERE id = $id;" ;;
            1) col=pad; sql+="UPDATE sbtest.sbtest$t SET pad = REPEAT('v', 59) WHERE id = $id;" ;;
            2) col=k; sql+="UPDATE sbtest.sbtest$t SET k = k + 1 WHERE id = $id;" ;;
        esac
        printf 'differing\tsbtest%d\t%d\t%s\n' "$t" "$id" "$col" >>"$exp"
    done
    for (( i = 0; i < DIFFS; i++ )); do
        t=$(( ((i + 6) % TABLES) + 1 ))
        if (( i % 2 == 0 )); then pick "$t" $(( ROWS + 1 + i * 1000 )) 1; else pick "$t" $(( -i )) -1; fi
        sql+="INSERT INTO sbtest.sbtest$t (id, k, c, pad) VALUES ($id, 42, 'verify-bench-extra', 'extra');"
        printf 'extra\tsbtest%d\t%d\t\n' "$t" "$id" >>"$exp"
    done
    dst_sql "$sql"
    sort -o "$exp" "$exp"
    log "planted $DIFFS deleted, $DIFFS updated and $DIFFS extra row(s) on the destination"
}

reported_keys() { # json -> the same shape as expected.tsv
    "$JQ" -r '.tables[] | (.target | split(".") | last | gsub("`"; "")) as $t
        | (.missing[] | "missing\t\($t)\t\(.key | join(","))\t"),
          (.extra[] | "extra\t\($t)\t\(.key | join(","))\t"),
          (.differing[] | "differing\t\($t)\t\(.key | join(","))\t\(.columns // [] | join(","))")' "$1" | sort
}

# ---------------------------------------------------------------- rounds ----------
for ROUND in $(seq 1 "$REPEAT"); do
    RUN_DIR="$WORK/round$ROUND"
    mkdir -p "$RUN_DIR"
    [ "$REPEAT" -eq 1 ] || log "round $ROUND of $REPEAT"
    write_task "$RUN_DIR"
    dst_sql 'DROP DATABASE IF EXISTS sbtest'
    settle "$DST_PORT"

    # 1. the copy: the reference time and the bytes a copy moves
    log "copy: tidemark run (schema + full, threads = $THREADS)"
    measure copy run "$RUN_DIR/task.toml" --no-progress
    if [ "$RUN_RC" -ne 0 ]; then
        tail -n 40 "$RUN_DIR/copy.log" >&2
        die "tidemark run failed (exit $RUN_RC)"
    fi
    log "  copy: $RUN_WALL s; bytes (src sent/recv, dst sent/recv): $RUN_NET"
    record "copy (tidemark run)" "$RUN_RC" "$RUN_WALL" "$TOTAL_ROWS" ${RUN_CPU// /$'\t'} \
        "$(rss_mib "$RUN_DIR/copy.time")" ${RUN_NET// /$'\t'} "" "schema + full, [full] threads = $THREADS"
    checksums_equal copy || die "the copy's CHECKSUM TABLE differs from the source's (diff above)"
    settle "$DST_PORT"

    slow_on
    # 2. equal data
    run_verify verify-equal 0
    # 3. planted differences: exit 1, exactly the planted keys
    plant_differences
    settle "$DST_PORT"
    run_verify verify-diff 1
    if reported_keys "$RUN_DIR/verify-diff.out" >"$RUN_DIR/reported.tsv" 2>/dev/null; then
        if diff -u "$RUN_DIR/expected.tsv" "$RUN_DIR/reported.tsv" >"$RUN_DIR/keys-diff.log"; then
            log "  verify-diff: reported exactly the $(wc -l <"$RUN_DIR/expected.tsv") planted keys, with the right columns"
        else
            cat "$RUN_DIR/keys-diff.log" >&2
            fail "verify-diff: reported keys differ from the planted ones (diff above: - planted, + reported)"
        fi
    fi
    # 4. repair, then equal again
    run_verify verify-repair "0 1" --repair
    repaired=$("$JQ" '[.tables[].repaired] | add // 0' "$RUN_DIR/verify-repair.out" 2>/dev/null || echo "?")
    [ "$repaired" = $(( 3 * DIFFS )) ] || fail "verify-repair: repaired $repaired row(s), expected $(( 3 * DIFFS ))"
    sed -i "\$s/\$/; exit $RUN_RC, $repaired rows repaired/" "$RESULTS"
    settle "$DST_PORT"
    run_verify verify-after-repair 0
    slow_off
    checksums_equal after-repair || fail "after the repair, the destination's CHECKSUM TABLE differs from the source's"
done

# ---------------------------------------------------------------- report ----------
# Per run label, the round with the median wall time; "time / copy time" divides it by
# the copy's median wall time. The verify rows' rows/s counts the rows verify compared.
TABLE_AWK='
BEGIN { FS = "\t" }
{
    r = $1; l = $2; k = r SUBSEP l
    if (!(l in seen)) { seen[l] = 1; order[++n] = l }
    rc[k] = $3; wall[k] = $4; rows[k] = $5; cpu[k] = $6; scpu[k] = $7; dcpu[k] = $8; ocpu[k] = $9
    rss[k] = $10; ss[k] = $11; sr[k] = $12; ds[k] = $13; dr[k] = $14; chunks[k] = $15; note[k] = $16
    if (rss[k] + 0 > maxrss[l] + 0) maxrss[l] = rss[k]
    rounds[l] = rounds[l] " " r; all[l] = all[l] (all[l] == "" ? "" : ", ") $4
}
function median_round(l,    m, i, j, rr, t) {
    m = split(substr(rounds[l], 2), rr, " ")
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++)
        if (wall[rr[j] SUBSEP l] + 0 < wall[rr[i] SUBSEP l] + 0) { t = rr[i]; rr[i] = rr[j]; rr[j] = t }
    return rr[int((m + 1) / 2)]
}
function mb(b) { return sprintf(b < 1e5 ? "%.4f" : "%.1f", b / 1e6) }
END {
    for (i = 1; i <= n; i++) { l = order[i]; med[l] = median_round(l) SUBSEP l }
    c = med["copy (tidemark run)"]; v = med["verify-equal"]
    for (i = 1; i <= n; i++) {
        l = order[i]; k = med[l]
        printf "| %s | %s | %s | %.0f | %.2f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", \
            l, rc[k], wall[k], rows[k] / wall[k], wall[k] / wall[c], mb(ss[k]), mb(ds[k]), mb(sr[k] + dr[k]), \
            maxrss[l], cpu[k], scpu[k], dcpu[k], ocpu[k], (repeat > 1 ? all[l] : "-"), note[k]
    }
    print ""
    printf "- verify on equal data / copy time: **%.2f** (%s s against %s s, medians)\n", wall[v] / wall[c], wall[v], wall[c]
    out = ss[v] + ds[v]; ch = (chunks[v] ? chunks[v] : 1)
    printf "- bytes the servers sent during verify on equal data: %d, %.0f per %.0f-row chunk, %.3f per row compared (precheck and catalog reads included); during the copy: %d, %.0f times as much\n", \
        out, out / ch, rows[v] / ch, out / rows[v], ss[c] + ds[c], (ss[c] + ds[c]) / (out ? out : 1)
    printf "- bytes tidemark sent to the servers during verify on equal data: %d, %.0f per chunk\n", sr[v] + dr[v], (sr[v] + dr[v]) / ch
    d = med["verify-diff"]
    if (d != "") {
        nd = note[d]; sub(/^[^(]*\(/, "", nd); nd += 0   # "N chunks (M differing), ..."
        printf "- verify with differences: %d of %d chunks differed; the servers sent %.1f MB, about %.0f bytes per differing chunk more than on equal data\n", \
            nd, chunks[d], (ss[d] + ds[d]) / 1e6, (ss[d] + ds[d] - out) / (nd ? nd : 1)
    }
}'
report() {
    echo "## Verification: $TABLES table(s) x $ROWS rows (sysbench shape)"
    echo
    echo "MariaDB $SERVER_VERSION, $(nproc) CPU(s), $(machine_ram) RAM;"
    echo "$BUILT_FROM; copy with [full] threads = $THREADS; verify ${VERIFY_THREADS:+--threads $VERIFY_THREADS}${VERIFY_THREADS:-with its default threads}; $DIFFS planted difference(s) of each kind; $REPEAT round(s)."
    echo "Source: $TOTAL_ROWS rows, DATA_LENGTH $DATA_MB MB, INDEX_LENGTH $INDEX_MB MB, raw row bytes $RAW_MB MB."
    echo
    echo "| run | exit | wall s | rows/s | time / copy time | MB sent by source | MB sent by destination | MB sent by tidemark | peak RSS MiB | client CPU s | source server CPU s | destination server CPU s | other CPU s | all rounds, s | note |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    awk -v repeat="$REPEAT" "$TABLE_AWK" "$RESULTS"
    if [ ${#FAILURES[@]} -gt 0 ]; then
        echo
        echo "Checks that failed:"
        printf -- '- %s\n' "${FAILURES[@]}"
    fi
}
emit_report
if [ ${#FAILURES[@]} -gt 0 ]; then
    log "FAIL: ${#FAILURES[@]} check(s) failed"
    exit 4
fi
log "all checks passed"
