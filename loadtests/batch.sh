#!/usr/bin/env bash
# Creates per second through 20-item `$batch` requests against single-request creates, durable
# mode, in ONE run on one server.
#
#   bash loadtests/batch.sh                  # 3 rounds of 10 s per way
#   ROUNDS=1 DURATION=3 bash loadtests/batch.sh
#
# Starts the release emulator (default durable mode) on a fresh data directory, then for each
# round runs wrk with loadtests/wrk/create.lua twice, in alternating order: single creates
# (POST /beta/identity/userFlows) and batches of BATCH (default 20) creates (POST /beta/$batch,
# BENCH_BATCH). Prints creates per second for both and their ratio per round, and the median
# ratio. Single creates use CONNECTIONS (default 64) connections, batches BATCH_CONNECTIONS
# (default 16): each saturates the two cores, and 16 × 20 creates in flight stay under the
# tenant's queue limit (1,024 by default; past it a create is a 503, as it should be). Ids never
# repeat (a random tag per wrk run). Traffic goes to 127.0.0.1 only; the
# server is stopped by its PID.
set -euo pipefail

DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
BATCH="${BATCH:-20}"
CONNECTIONS="${CONNECTIONS:-64}"
BATCH_CONNECTIONS="${BATCH_CONNECTIONS:-16}"
PORT="${PORT:-18330}"
NAME=batch
# shellcheck source=loadtests/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
command -v wrk >/dev/null || { echo "wrk not found (apt-get install -y wrk)" >&2; exit 1; }

"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$TMP/data" >"$TMP/server.log" 2>&1 &
PID=$!
wait_ready "$PORT" >/dev/null
export BENCH_TOKEN; BENCH_TOKEN=$("$BIN" token --tenant bench-tenant)

# run_wrk PATH [BATCH]: creates per second of one wrk run.
run_wrk() {
    local line connections="$CONNECTIONS"
    [[ -n "${2:-}" ]] && connections="$BATCH_CONNECTIONS"
    line=$(BENCH_BATCH="${2:-}" wrk -t2 -c"$connections" -d"${DURATION}s" --latency \
        -s loadtests/wrk/create.lua "http://127.0.0.1:$PORT$1" | grep '^RESULT')
    [[ "$line" == *"non201=0 "* ]] || { echo "unexpected answers: $line" >&2; exit 1; }
    local rps; rps=$(sed 's/.* rps=\([0-9.]*\).*/\1/' <<<"$line")
    awk -v r="$rps" -v n="${2:-1}" 'BEGIN { printf "%.0f", r * n }'
}

echo "| round | single creates/s | creates/s in batches of $BATCH | ratio |"
echo "|---:|---:|---:|---:|"
ratios=()
for round in $(seq 1 "$ROUNDS"); do
    if (( round % 2 )); then
        single=$(run_wrk /beta/identity/userFlows); batched=$(run_wrk '/beta/$batch' "$BATCH")
    else
        batched=$(run_wrk '/beta/$batch' "$BATCH"); single=$(run_wrk /beta/identity/userFlows)
    fi
    ratio=$(awk -v b="$batched" -v s="$single" 'BEGIN { printf "%.2f", b / s }')
    ratios+=("$ratio")
    echo "| $round | $single | $batched | $ratio |"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
echo
echo "median ratio: $median"
