#!/usr/bin/env bash
# What throttling, fault rules and the request journal cost, in ONE run, and the fault rate
# rules realise:
# - durable creates against four servers of the same build: the defaults (throttling and faults
#   off, the journal on at its default 16 MiB); throttling on with limits never reached; a
#   fault rule set that never matches a create; the journal off (--journal-bytes 0);
# - for probabilities 0.01, 0.1 and 0.5, a seeded rule on `get` and at least MIN_REQUESTS gets:
#   the share that met the fault, read from the rule's own counts, against the configured one.
#
#   bash loadtests/chaos.sh                       # 3 rounds of 8 s per target
#   ROUNDS=1 DURATION=2 WARMUP=1 bash loadtests/chaos.sh   # a quick check
#
# Each round measures the three targets in a rotated order. Traffic goes to 127.0.0.1 only;
# every server is stopped by PID at exit. Environment: ROUNDS (3), DURATION (8), WARMUP (2),
# CONNECTIONS (64), BASE_PORT (18200: uses BASE_PORT..BASE_PORT+3), MIN_REQUESTS (100000).
set -euo pipefail
NAME=chaos
source "$(dirname "$0")/common.sh"
ROUNDS="${ROUNDS:-3}"; DURATION="${DURATION:-8}"; WARMUP="${WARMUP:-2}"
CONNECTIONS="${CONNECTIONS:-64}"; BASE_PORT="${BASE_PORT:-18200}"; MIN_REQUESTS="${MIN_REQUESTS:-100000}"
command -v wrk >/dev/null || { echo "wrk not found (apt-get install -y wrk)" >&2; exit 1; }
OFF=$BASE_PORT; THROTTLED=$((BASE_PORT + 1)); FAULTED=$((BASE_PORT + 2)); UNJOURNALED=$((BASE_PORT + 3))
PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null && wait "$p" || true; done; }
trap 'stop_all; cleanup' EXIT

cat >"$TMP/faults.json" <<'JSON'
{"seed": 1, "rules": [
  {"id": "other-tenant", "match": {"tenant": "nobody-here"}, "effect": {"status": 503}},
  {"id": "gets-only", "match": {"operation": "get"}, "probability": 0.5, "effect": {"status": 500}}
]}
JSON
"$BIN" --listen "127.0.0.1:$OFF" --data-dir "$TMP/off" >"$TMP/off.log" 2>&1 &
PIDS+=($!)
"$BIN" --listen "127.0.0.1:$THROTTLED" --data-dir "$TMP/throttled" \
    --throttle-tenant-rpm 4000000000 --throttle-app-rpm 4000000000 >"$TMP/throttled.log" 2>&1 &
PIDS+=($!)
"$BIN" --listen "127.0.0.1:$FAULTED" --data-dir "$TMP/faulted" --faults "$TMP/faults.json" \
    >"$TMP/faulted.log" 2>&1 &
PIDS+=($!)
"$BIN" --listen "127.0.0.1:$UNJOURNALED" --data-dir "$TMP/unjournaled" --journal-bytes 0 \
    >"$TMP/unjournaled.log" 2>&1 &
PIDS+=($!)
for port in $OFF $THROTTLED $FAULTED $UNJOURNALED; do wait_ready "$port" >/dev/null; done
TOKEN=$("$BIN" token --tenant bench-tenant)

# rps PORT: creates per second against one server (after a warm-up); every answer a 201.
rps() { creates_rps "http://127.0.0.1:$1/beta/identity/userFlows" "$TOKEN" "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

PORTS=("$OFF" "$THROTTLED" "$FAULTED" "$UNJOURNALED")
: >"$TMP/throttle.ratios"; : >"$TMP/faults.ratios"; : >"$TMP/journal.ratios"
echo "| round | defaults req/s | throttling on req/s | fault rules on req/s | journal off req/s | throttling/defaults | faults/defaults | journal on/off |"
echo "|---|---|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
    declare -A got=()
    for i in 0 1 2 3; do
        port=${PORTS[$(((i + round - 1) % 4))]}
        got[$port]=$(rps "$port")
    done
    t=$(ratio "${got[$THROTTLED]}" "${got[$OFF]}"); f=$(ratio "${got[$FAULTED]}" "${got[$OFF]}")
    j=$(ratio "${got[$OFF]}" "${got[$UNJOURNALED]}")
    echo "$t" >>"$TMP/throttle.ratios"; echo "$f" >>"$TMP/faults.ratios"; echo "$j" >>"$TMP/journal.ratios"
    echo "| $round | ${got[$OFF]} | ${got[$THROTTLED]} | ${got[$FAULTED]} | ${got[$UNJOURNALED]} | $t | $f | $j |"
done
echo
echo "median throttling/defaults: $(median <"$TMP/throttle.ratios")  median faults/defaults: $(median <"$TMP/faults.ratios")  median journal on/off: $(median <"$TMP/journal.ratios")"
[[ -n "${SKIP_RATES:-}" ]] && exit 0
echo
echo "| probability | requests that reached the rule | faults | realised rate | 3 standard errors |"
echo "|---|---|---|---|---|"
for p in 0.01 0.1 0.5; do
    curl -s -X PUT "http://127.0.0.1:$OFF/_emulator/faults" -H 'Content-Type: application/json' \
        -d "{\"seed\": 7, \"rules\": [{\"id\": \"coin\", \"match\": {\"operation\": \"get\"}, \"probability\": $p, \"effect\": {\"status\": 500}}]}" >/dev/null
    matched=0
    while ((matched < MIN_REQUESTS)); do
        wrk -t2 -c"$CONNECTIONS" -d2s -H "Authorization: Bearer $TOKEN" \
            "http://127.0.0.1:$OFF/beta/identity/userFlows/B2C_1_missing" >/dev/null
        counts=$(curl -s "http://127.0.0.1:$OFF/_emulator/faults")
        matched=$(sed -n 's/.*"matched":\([0-9]*\).*/\1/p' <<<"$counts")
    done
    fired=$(sed -n 's/.*"fired":\([0-9]*\).*/\1/p' <<<"$counts")
    awk -v p="$p" -v n="$matched" -v k="$fired" \
        'BEGIN {printf "| %s | %d | %d | %.4f | ±%.4f |\n", p, n, k, k / n, 3 * sqrt(p * (1 - p) / n)}'
done
