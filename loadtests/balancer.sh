#!/usr/bin/env bash
# Durable creates through HAProxy against direct to one instance, in ONE run: a 3-instance
# cluster (deploy/cluster.sh) and wrk's create script, rounds alternating between the balancer
# and the instance that holds the benchmark tenant (so both paths reach the same instance).
# Where the time goes: the CPU seconds HAProxy and that instance used during the balancer
# rounds, from /proc.
#
#   ROUNDS=3 DURATION=8 bash loadtests/balancer.sh
#
# Traffic goes to 127.0.0.1 only; the cluster is brought down (by PID) at exit. Environment:
# ROUNDS (3), DURATION (8), WARMUP (2), CONNECTIONS (64), BASE_PORT (18500).
set -euo pipefail
NAME=balancer; source "$(dirname "$0")/common.sh"
ROUNDS="${ROUNDS:-3}"; DURATION="${DURATION:-8}"; WARMUP="${WARMUP:-2}"
CONNECTIONS="${CONNECTIONS:-64}"; BASE="${BASE_PORT:-18500}"
command -v wrk >/dev/null || { echo "wrk not found (apt-get install -y wrk)" >&2; exit 1; }
export CLUSTER_DIR="$TMP/cluster" BASE_PORT="$BASE" EMULATOR_BIN="$BIN"
trap 'bash deploy/cluster.sh down >/dev/null 2>&1 || true; cleanup' EXIT
bash deploy/cluster.sh up 3

TOKEN=$("$BIN" token --tenant bench-tenant)
# The instance that holds the tenant: create one flow through the balancer, then ask each.
curl -sf -o /dev/null "http://127.0.0.1:$BASE/beta/identity/userFlows" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d '{"id":"Probe","userFlowType":"signIn","userFlowTypeVersion":1}'
for i in 1 2 3; do
    if curl -s "http://127.0.0.1:$((BASE + i))/_emulator/tenants" | grep -q '"bench-tenant"'; then INSTANCE=$i; fi
done
echo "bench-tenant is on instance $INSTANCE (127.0.0.1:$((BASE + INSTANCE)))"

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # utime + stime, in clock ticks
rps() { creates_rps "http://127.0.0.1:$1/beta/identity/userFlows" "$TOKEN" "$1"; }

HAPROXY_PID=$(cat "$CLUSTER_DIR/haproxy.pid"); INSTANCE_PID=$(cat "$CLUSTER_DIR/instance-$INSTANCE.pid")
: >"$TMP/ratios"
echo "| round | direct creates/s | through HAProxy creates/s | ratio | HAProxy CPU s | instance CPU s (balancer rounds) |"
echo "|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
    direct=$(rps $((BASE + INSTANCE)))
    h0=$(cpu "$HAPROXY_PID"); i0=$(cpu "$INSTANCE_PID")
    balanced=$(rps "$BASE")
    h1=$(cpu "$HAPROXY_PID"); i1=$(cpu "$INSTANCE_PID")
    ratio=$(awk -v a="$balanced" -v b="$direct" 'BEGIN {printf "%.2f", a / b}')
    tick=$(getconf CLK_TCK)
    echo "| $round | $direct | $balanced | $ratio | $(awk -v d=$((h1 - h0)) -v t="$tick" 'BEGIN {printf "%.1f", d / t}') | $(awk -v d=$((i1 - i0)) -v t="$tick" 'BEGIN {printf "%.1f", d / t}') |"
    echo "$ratio" >>"$TMP/ratios"
done
echo "median through HAProxy / direct: $(median <"$TMP/ratios")"
