#!/usr/bin/env bash
# Durable creates against servers that differ only in --journal-bytes, in ONE run: does the
# request journal's cost follow its size (memory traffic) or only its count of entries (code)?
# Rounds rotate the order of the servers; each prints creates/s, the server's CPU per create
# (utime + stime from /proc over the measured run, which the load generator's share of the
# cores does not blur) and the ratios to the first.
#
#   SIZES="0 1048576 16777216" ROUNDS=3 DURATION=5 bash loadtests/journal_sizes.sh
#
# Traffic goes to 127.0.0.1 only; every server is stopped by PID at exit. Environment: SIZES
# (the first is the baseline), ROUNDS (3), DURATION (5), WARMUP (1), CONNECTIONS (64),
# BASE_PORT (18600).
set -euo pipefail
NAME=journal-sizes; source "$(dirname "$0")/common.sh"
read -r -a SIZES <<<"${SIZES:-0 1048576 16777216}"
ROUNDS="${ROUNDS:-3}"; DURATION="${DURATION:-5}"; WARMUP="${WARMUP:-1}"
CONNECTIONS="${CONNECTIONS:-64}"; BASE="${BASE_PORT:-18600}"
command -v wrk >/dev/null || { echo "wrk not found (apt-get install -y wrk)" >&2; exit 1; }
PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null && wait "$p" || true; done; }
trap 'stop_all; cleanup' EXIT
for i in "${!SIZES[@]}"; do
    "$BIN" --listen "127.0.0.1:$((BASE + i))" --data-dir "$TMP/$i" --journal-bytes "${SIZES[$i]}" \
        >"$TMP/$i.log" 2>&1 &
    PIDS+=($!)
done
for i in "${!SIZES[@]}"; do wait_ready $((BASE + i)) >/dev/null; done
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # utime + stime, in clock ticks
TICK=$(getconf CLK_TCK)
TOKEN=$("$BIN" token --tenant bench-tenant)

n=${#SIZES[@]}
header="| round |"
for size in "${SIZES[@]}"; do header+=" $size B creates/s | µs CPU per create |"; done
for size in "${SIZES[@]:1}"; do header+=" $size / ${SIZES[0]} |"; done
echo "$header"
for round in $(seq 1 "$ROUNDS"); do
    declare -A rate=() cost=()
    for k in $(seq 0 $((n - 1))); do
        i=$(( (k + round - 1) % n ))
        before=$(cpu "${PIDS[$i]}")
        rate[$i]=$(creates_rps "http://127.0.0.1:$((BASE + i))/beta/identity/userFlows" "$TOKEN" "$i")
        after=$(cpu "${PIDS[$i]}")
        # The CPU covers the warm-up too: divide by the creates of both runs, at the measured rate.
        cost[$i]=$(awk -v c=$((after - before)) -v t="$TICK" -v r="${rate[$i]}" -v d="$DURATION" -v w="$WARMUP" \
            'BEGIN {printf "%.2f", c / t * 1e6 / (r * (d + w))}')
    done
    row="| $round |"
    for i in $(seq 0 $((n - 1))); do row+=" ${rate[$i]} | ${cost[$i]} |"; done
    for i in $(seq 1 $((n - 1))); do
        row+=" $(awk -v a="${rate[$i]}" -v b="${rate[0]}" 'BEGIN {printf "%.2f", a / b}') |"
    done
    echo "$row"
done
