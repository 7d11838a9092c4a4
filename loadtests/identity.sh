#!/usr/bin/env bash
# What HTTPS and strict auth cost, in ONE run: durable creates over HTTPS against plain HTTP (one
# lenient server with both listeners), strict auth (an RS256 token from the token endpoint)
# against lenient (a second server), the token endpoint's rate, and the time from start to
# ready with TLS material made on first start against a start that finds it kept.
#
#   bash loadtests/identity.sh                    # 3 rounds of 8 s per target
#   ROUNDS=1 DURATION=2 WARMUP=1 bash loadtests/identity.sh   # a quick check
#
# Each round measures the three create targets in a rotated order (a slow minute does not always
# land on the same one) and prints each ratio; the last lines give the median ratios. Traffic
# goes to 127.0.0.1 only; both servers are stopped by PID at exit. Environment: ROUNDS (3),
# DURATION (8), WARMUP (2), CONNECTIONS (64), BASE_PORT (18100: uses BASE_PORT..BASE_PORT+4),
# STARTS (5: start-up measurements of each kind).
set -euo pipefail
NAME=identity
source "$(dirname "$0")/common.sh"
ROUNDS="${ROUNDS:-3}"; DURATION="${DURATION:-8}"; WARMUP="${WARMUP:-2}"
CONNECTIONS="${CONNECTIONS:-64}"; BASE_PORT="${BASE_PORT:-18100}"; STARTS="${STARTS:-5}"
command -v wrk >/dev/null || { echo "wrk not found (apt-get install -y wrk)" >&2; exit 1; }
PLAIN=$BASE_PORT; TLS=$((BASE_PORT + 1)); STRICT=$((BASE_PORT + 2)); START_PORT=$((BASE_PORT + 3))
STRICT_PID=""
stop_strict() { [[ -n "$STRICT_PID" ]] && kill -TERM "$STRICT_PID" 2>/dev/null && wait "$STRICT_PID" || true; }
trap 'stop_strict; cleanup' EXIT

"$BIN" --listen "127.0.0.1:$PLAIN" --tls-listen "127.0.0.1:$TLS" --data-dir "$TMP/lenient" \
    >"$TMP/lenient.log" 2>&1 &
PID=$!
"$BIN" --listen "127.0.0.1:$STRICT" --auth strict --app bench:bench-secret --data-dir "$TMP/strict" \
    >"$TMP/strict.log" 2>&1 &
STRICT_PID=$!
wait_ready "$PLAIN" >/dev/null
wait_ready "$STRICT" >/dev/null

LENIENT_TOKEN=$("$BIN" token --tenant bench-tenant)
STRICT_TOKEN=$(curl -s "http://127.0.0.1:$STRICT/bench-tenant/oauth2/v2.0/token" \
    -d grant_type=client_credentials -d client_id=bench -d client_secret=bench-secret \
    -d scope=https://graph.microsoft.com/.default | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[[ -n "$STRICT_TOKEN" ]] || { echo "no token from the token endpoint" >&2; exit 1; }

# rps TARGET: creates per second against one target (after a warm-up).
rps() {
    local url token
    case "$1" in
        http) url="http://127.0.0.1:$PLAIN"; token=$LENIENT_TOKEN ;;
        https) url="https://127.0.0.1:$TLS"; token=$LENIENT_TOKEN ;;
        strict) url="http://127.0.0.1:$STRICT"; token=$STRICT_TOKEN ;;
    esac
    creates_rps "$url/beta/identity/userFlows" "$token" "$1"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

TARGETS=(http https strict)
: >"$TMP/https.ratios"; : >"$TMP/strict.ratios"
echo "| round | http req/s | https req/s | strict req/s | https/http | strict/lenient |"
echo "|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
    declare -A got=()
    for i in 0 1 2; do
        target=${TARGETS[$(((i + round - 1) % 3))]}
        got[$target]=$(rps "$target")
    done
    https_ratio=$(ratio "${got[https]}" "${got[http]}")
    strict_ratio=$(ratio "${got[strict]}" "${got[http]}")
    echo "$https_ratio" >>"$TMP/https.ratios"; echo "$strict_ratio" >>"$TMP/strict.ratios"
    echo "| $round | ${got[http]} | ${got[https]} | ${got[strict]} | $https_ratio | $strict_ratio |"
done
echo
echo "median https/http: $(median <"$TMP/https.ratios")  median strict/lenient: $(median <"$TMP/strict.ratios")"

wrk -t2 -c16 -d"${WARMUP}s" -s loadtests/wrk/token.lua "http://127.0.0.1:$STRICT/bench-tenant/oauth2/v2.0/token" >/dev/null
wrk -t2 -c16 -d"${DURATION}s" -s loadtests/wrk/token.lua "http://127.0.0.1:$STRICT/bench-tenant/oauth2/v2.0/token" >"$TMP/token.wrk"
echo "token endpoint (16 connections, HTTP): $(grep -m1 '^RESULT ' "$TMP/token.wrk")"
stop_strict; STRICT_PID=""

# start_ms DIR: milliseconds from exec to ready of a server with an HTTPS listener on DIR.
start_ms() {
    local t0 t1 pid
    t0=$(date +%s%N)
    "$BIN" --listen "127.0.0.1:$START_PORT" --tls-listen "127.0.0.1:$((START_PORT + 1))" \
        --data-dir "$1" >>"$TMP/start.log" 2>&1 &
    pid=$!
    wait_ready "$START_PORT" >/dev/null
    t1=$(date +%s%N)
    kill -TERM "$pid"; wait "$pid" || true
    echo $(((t1 - t0) / 1000000))
}
: >"$TMP/first.ms"; : >"$TMP/kept.ms"
for i in $(seq 1 "$STARTS"); do
    start_ms "$TMP/start-$i" >>"$TMP/first.ms"
    start_ms "$TMP/start-$i" >>"$TMP/kept.ms"
done
echo "start to ready, ms (median of $STARTS): first start, making the CA, certificate and signing key: $(median <"$TMP/first.ms"); a start that finds them kept: $(median <"$TMP/kept.ms")"
