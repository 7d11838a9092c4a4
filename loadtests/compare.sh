#!/usr/bin/env bash
# Compare create throughput of the emulator's storage modes against the no-op ceiling, in ONE run.
#
#   bash loadtests/compare.sh                      # 10 s measured per target
#   ROUNDS=3 bash loadtests/compare.sh             # three rounds, median ratio per target
#   DURATION=2 WARMUP=1 bash loadtests/compare.sh  # quick smoke check
#   BASELINE=/tmp/old/userflows-emulator ROUNDS=3 bash loadtests/compare.sh
#                                                  # A/B: an older build's three modes as well
#
# For each target: (a) noop-server (the ceiling: a fixed 201 of the same shape and size as the
# emulator's answer to a create), (a') noop-server --bare (a fixed, shorter 201: four headers
# and a 67-byte body, the ceiling before 2026-11-21, kept as a reference), (b) emulator durable
# (--durability flush, fresh data dir), (c) emulator relaxed (fresh data dir), (d) emulator
# --in-memory: start it on its own loopback port, wait until it answers, warm up, run wrk with
# loadtests/wrk/create.lua (a unique id per request), stop it with SIGTERM and wait for it.
# Then print a Markdown table with each target's ratio to both ceilings. Traffic goes to
# 127.0.0.1 only.
#
# Why the ceiling answers Graph-shaped bytes: wrk shares the two cores with the server, and
# its CPU per response grows with the response (measured: 6.9 us per bare answer, 8.5 us per
# emulator answer), so a shorter fixed answer also gives the ceiling more CPU, for work (the
# headers docs/reference.md §3 requires, and the body) that no faithful emulator can skip.
#
# On a shared machine one round's ratios can move by 0.1 from one run to the next, mostly with
# the ceiling. With ROUNDS > 1 every round measures all five targets again, each round starting
# one target later (a slow minute does not always land on the same target), and a last table
# gives each target's median ratio to its own round's ceiling, with the lowest and highest.
#
# Environment: DURATION (s, default 10), WARMUP (s, default 3), ROUNDS (default 1),
# CONNECTIONS (default 64), THREADS (default 2), BASE_PORT (default 18090; targets use
# BASE_PORT..BASE_PORT+4), READY_TIMEOUT (s, default 30), STOP_TIMEOUT (s, default 30),
# KEEP_TMP=1 keeps logs and data, BASELINE (path to another emulator binary: its three modes
# are measured in every round beside this build's, on ports BASE_PORT+5..BASE_PORT+7),
# TENANTS (a number N: one more target, durable creates spread round-robin over N tenants, on
# the next port; its ratio to the one-tenant durable target of the same round is printed).
set -euo pipefail

DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-3}"
ROUNDS="${ROUNDS:-1}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
BASE_PORT="${BASE_PORT:-18090}"
READY_TIMEOUT="${READY_TIMEOUT:-30}"
STOP_TIMEOUT="${STOP_TIMEOUT:-30}"
BASELINE="${BASELINE:-}"
TENANTS="${TENANTS:-}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LUA="loadtests/wrk/create.lua"
EMULATOR="target/release/userflows-emulator"
NOOP="target/release/noop-server"
URL_PATH="/beta/identity/userFlows"

log() { printf '[compare] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive whole number, not '$ROUNDS'"
command -v wrk >/dev/null || die "wrk not found (apt-get install -y wrk)"
command -v curl >/dev/null || die "curl not found"
[[ -f "$LUA" ]] || die "$LUA not found"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/userflows-compare.XXXXXX")"
SERVER_PID=""

cleanup() {
    local rc=$?
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        log "cleanup: stopping server pid $SERVER_PID"
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "building release binaries"
cargo build --release --workspace >&2
[[ -x "$EMULATOR" && -x "$NOOP" ]] || die "release binaries missing after build"

BENCH_TOKEN="$("$EMULATOR" token --tenant bench-tenant)"
export BENCH_TOKEN

# Waits until the server answers GET /_emulator/health (the noop server answers 201 to any path).
wait_ready() {
    local port=$1 deadline=$((SECONDS + READY_TIMEOUT)) code
    while ((SECONDS < deadline)); do
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        code="$(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:${port}/_emulator/health" || true)"
        [[ "$code" == 200 || "$code" == 201 ]] && return 0
        sleep 0.1
    done
    return 1
}

# Sends SIGTERM and waits (bounded) for the server to exit.
stop_server() {
    local pid=$SERVER_PID deadline=$((SECONDS + STOP_TIMEOUT))
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid did not stop within ${STOP_TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    SERVER_PID=""
}

# field NAME FILE: value of NAME=... from the RESULT line wrk's done() printed.
field() {
    { grep -m1 '^RESULT ' "$2" || true; } | tr ' ' '\n' | sed -n "s/^$1=//p"
}

WRK_CMD="wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION}s --latency -s ${LUA} http://127.0.0.1:PORT${URL_PATH}"
TARGETS=(noop bare durable relaxed in-memory)
if [[ -n "$BASELINE" ]]; then
    [[ -x "$BASELINE" ]] || die "BASELINE=$BASELINE is not an executable"
    TARGETS+=(base-durable base-relaxed base-in-memory)
fi
if [[ -n "$TENANTS" ]]; then
    [[ "$TENANTS" =~ ^[1-9][0-9]*$ ]] || die "TENANTS must be a positive whole number, not '$TENANTS'"
    TARGETS+=(durable-spread)
fi
declare -A RPS P50 P99 NON201 EPF

# measure TARGET ROUND PORT: one warmed-up wrk run against a fresh server; results go to
# RPS, P50, P99, NON201 and EPF under the key "TARGET ROUND".
measure() {
    local target=$1 round=$2 port=$3 key="$1 $2" tag="[$1, round $2]" file="$TMP/$1-$2"
    local data="$file.data" url="http://127.0.0.1:${3}${URL_PATH}" cmd n errs w_non201 stats
    mkdir -p "$data"
    case "$target" in
        noop) cmd=("$NOOP" "127.0.0.1:$port") ;;
        bare) cmd=("$NOOP" "127.0.0.1:$port" --bare) ;;
        durable | durable-spread) cmd=("$EMULATOR" serve --listen "127.0.0.1:$port" --data-dir "$data" --durability flush) ;;
        relaxed) cmd=("$EMULATOR" serve --listen "127.0.0.1:$port" --data-dir "$data" --durability relaxed) ;;
        in-memory) cmd=("$EMULATOR" serve --listen "127.0.0.1:$port" --data-dir "$data" --in-memory) ;;
        base-durable) cmd=("$BASELINE" serve --listen "127.0.0.1:$port" --data-dir "$data" --durability flush) ;;
        base-relaxed) cmd=("$BASELINE" serve --listen "127.0.0.1:$port" --data-dir "$data" --durability relaxed) ;;
        base-in-memory) cmd=("$BASELINE" serve --listen "127.0.0.1:$port" --data-dir "$data" --in-memory) ;;
    esac
    if curl -s -o /dev/null -m 1 "http://127.0.0.1:${port}/" 2>/dev/null; then
        die "port $port is already in use; set BASE_PORT"
    fi

    log "$tag starting: ${cmd[*]}"
    "${cmd[@]}" >"$file.stdout" 2>"$file.stderr" &
    SERVER_PID=$!
    if ! wait_ready "$port"; then
        cat "$file.stderr" >&2 || true
        die "$tag not ready within ${READY_TIMEOUT}s"
    fi

    local spread=""
    [[ "$target" != durable-spread ]] || spread="$TENANTS"
    if ((WARMUP > 0)); then
        log "$tag warm-up ${WARMUP}s"
        BENCH_TENANTS="$spread" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s "$LUA" "$url" >"$file.warmup" 2>&1 \
            || die "$tag warm-up wrk failed: $(cat "$file.warmup")"
        w_non201="$(field non201 "$file.warmup")"
        [[ "${w_non201:-0}" == 0 ]] || log "$tag WARNING: warm-up had ${w_non201} non-201 responses"
    fi

    log "$tag measured run ${DURATION}s"
    BENCH_TENANTS="$spread" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$LUA" "$url" >"$file.wrk" 2>&1 \
        || die "$tag wrk failed: $(cat "$file.wrk")"
    sed 's/^/    /' "$file.wrk" >&2

    stop_server

    grep -q '^RESULT ' "$file.wrk" || die "$tag no RESULT line in wrk output"
    RPS[$key]="$(field rps "$file.wrk")"
    P50[$key]="$(field p50_us "$file.wrk")"
    P99[$key]="$(field p99_us "$file.wrk")"
    n="$(field non201 "$file.wrk")"
    errs="$(field socket_errors "$file.wrk")"
    if [[ "$errs" != 0 ]]; then
        n="$n (+${errs} socket errors)"
    fi
    NON201[$key]="$n"
    # Strip ANSI colour codes in case the log was coloured, then take the last stats line.
    stats="$(sed 's/\x1b\[[0-9;]*m//g' "$file.stderr" | grep -o 'flushes=[0-9]* events=[0-9]* events_per_flush="[^"]*"' | tail -n1 || true)"
    if [[ -n "$stats" ]]; then
        EPF[$key]="$(sed -n 's/.*events_per_flush="\([^"]*\)".*/\1/p' <<<"$stats")"
        log "$tag $stats"
    elif [[ "$target" == durable || "$target" == base-durable || "$target" == durable-spread ]]; then
        log "$tag WARNING: no events_per_flush line in server stderr"
        EPF[$key]="missing"
    else
        EPF[$key]="n/a"
    fi
}

for round in $(seq 1 "$ROUNDS"); do
    for i in "${!TARGETS[@]}"; do
        # Round r starts with target r-1 (mod the number of targets); each keeps its own port.
        j=$(((i + round - 1) % ${#TARGETS[@]}))
        measure "${TARGETS[$j]}" "$round" $((BASE_PORT + j))
    done
done

label() {
    case "$1" in
        noop) echo "noop ceiling (Graph-shaped 201)" ;;
        bare) echo "noop, bare 201 (reference)" ;;
        durable) echo "emulator durable (flush)" ;;
        relaxed) echo "emulator relaxed" ;;
        in-memory) echo "emulator --in-memory" ;;
        base-durable) echo "baseline durable (flush)" ;;
        base-relaxed) echo "baseline relaxed" ;;
        base-in-memory) echo "baseline --in-memory" ;;
        durable-spread) echo "emulator durable, round-robin over ${TENANTS} tenants" ;;
    esac
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}

echo
echo "## userflows-emulator create throughput vs no-op ceiling"
echo
echo "- date (UTC): $(date -u '+%Y-%m-%d %H:%M:%S')"
echo "- nproc: $(nproc)"
echo "- CPU: $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty tree)')"
[[ -z "$BASELINE" ]] || echo "- baseline: $BASELINE"
echo "- command: \`DURATION=${DURATION} WARMUP=${WARMUP} ROUNDS=${ROUNDS} CONNECTIONS=${CONNECTIONS} THREADS=${THREADS} bash loadtests/compare.sh\`"
echo "- wrk (per target, warm-up ${WARMUP}s first): \`BENCH_TOKEN=\$(userflows-emulator token --tenant bench-tenant) ${WRK_CMD}\`"
for round in $(seq 1 "$ROUNDS"); do
    ceiling="${RPS[noop $round]}"
    bare="${RPS[bare $round]}"
    echo
    ((ROUNDS == 1)) || echo "Round $round:"
    ((ROUNDS == 1)) || echo
    echo "| target | req/s | ratio to ceiling | ratio to bare 201 | p50 | p99 | non-201 | events/flush |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for target in "${TARGETS[@]}"; do
        key="$target $round"
        rps="$(awk -v a="${RPS[$key]}" 'BEGIN { printf "%.0f", a }')"
        p50="$(awk -v a="${P50[$key]}" 'BEGIN { printf "%.2f ms", a / 1000 }')"
        p99="$(awk -v a="${P99[$key]}" 'BEGIN { printf "%.2f ms", a / 1000 }')"
        echo "| $(label "$target") | $rps | $(ratio "${RPS[$key]}" "$ceiling") | $(ratio "${RPS[$key]}" "$bare") | $p50 | $p99 | ${NON201[$key]} | ${EPF[$key]} |"
    done
done

if ((ROUNDS > 1)); then
    # spread: "median | lowest | highest" of the numbers on stdin.
    spread() {
        sort -g | awk '
            { v[NR] = $1 }
            END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
                  printf "%.2f | %.2f | %.2f", m, v[1], v[NR] }'
    }
    echo
    echo "Over ${ROUNDS} rounds, each ratio against the ceilings of its own round:"
    echo
    echo "| target | median ratio | lowest | highest | median ratio to bare 201 | highest p99 | non-201 in all |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for target in "${TARGETS[@]}"; do
        ratios=() bare_ratios=() p99s=() total=0
        for round in $(seq 1 "$ROUNDS"); do
            ratios+=("$(ratio "${RPS[$target $round]}" "${RPS[noop $round]}")")
            bare_ratios+=("$(ratio "${RPS[$target $round]}" "${RPS[bare $round]}")")
            p99s+=("${P99[$target $round]}")
            n="${NON201[$target $round]%% *}"
            total=$((total + ${n:-0}))
        done
        summary="$(printf '%s\n' "${ratios[@]}" | spread)"
        bare_median="$(printf '%s\n' "${bare_ratios[@]}" | spread | cut -d' ' -f1)"
        worst_p99="$(printf '%s\n' "${p99s[@]}" | sort -g | tail -n1)"
        echo "| $(label "$target") | $summary | $bare_median | $(awk -v a="$worst_p99" 'BEGIN { printf "%.2f ms", a / 1000 }') | $total |"
    done
fi

if [[ -n "$TENANTS" ]]; then
    echo
    echo "Durable creates over ${TENANTS} tenants against one tenant, each round against its own:"
    echo
    for round in $(seq 1 "$ROUNDS"); do
        echo "- round $round: $(ratio "${RPS[durable-spread $round]}" "${RPS[durable $round]}")"
    done
fi
