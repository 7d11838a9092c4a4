#!/usr/bin/env bash
# Recovery speed: full replay (snapshots off) and start-up from a snapshot, for logs of
# different lengths with the same small live state (a churn log: creates and deletes).
#
#   bash loadtests/recovery.sh                 # 100k and 1M events
#   SIZES="10000 100000" bash loadtests/recovery.sh
#
# For each size: generate an NDJSON log of one tenant, `log import` it into a fresh
# directory, then start the release emulator three times on it and read recoveryMs from
# GET /_emulator/ready: (1) --no-snapshots: a full replay; (2) snapshots on: a full replay that
# saves a snapshot; (3) snapshots on again: start-up from the snapshot. Traffic goes to
# 127.0.0.1 only; every server is stopped by its PID.
set -euo pipefail

SIZES="${SIZES:-100000 1000000}"
LIVE="${LIVE:-1000}"
PORT="${PORT:-18300}"
NAME=recovery
# shellcheck source=loadtests/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

generate() { # events live out
    python3 - "$1" "$2" "$3" <<'PY'
import sys, uuid
n, live, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with open(out, "w") as f:
    seq, i = 0, 0
    while seq < n:
        seq += 1
        f.write('{"tenant_id":"bench","seq":%d,"event_id":"%s","event_type":"UserFlowCreated","schema_version":1,"recorded_at":"2026-11-20T10:00:00.000Z","request_id":"r","client_request_id":"c","payload":{"id":"B2C_1_f%d","userFlowType":"signUpOrSignIn","userFlowTypeVersion":1}}\n' % (seq, uuid.uuid4(), i))
        if i >= live and seq < n:
            seq += 1
            f.write('{"tenant_id":"bench","seq":%d,"event_id":"%s","event_type":"UserFlowDeleted","schema_version":1,"recorded_at":"2026-11-20T10:00:00.000Z","request_id":"r","client_request_id":"c","payload":{"id":"B2C_1_f%d"}}\n' % (seq, uuid.uuid4(), i - live))
        i += 1
PY
}

# Starts the server on $1 with extra flags, waits for readiness, prints recoveryMs and the
# wall time from process start to ready (ms), then stops it.
start_and_time() {
    local dir="$1"; shift
    local started; started=$(date +%s%N)
    "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$dir" "$@" >"$TMP/server.log" 2>&1 &
    PID=$!
    local body; body=$(wait_ready "$PORT")
    local ready; ready=$(date +%s%N)
    [[ "$body" == *'"status":"ready"'* ]] || { cat "$TMP/server.log" >&2; echo "not ready" >&2; exit 1; }
    local ms; ms=$(sed -E 's/.*"recoveryMs":([0-9]+).*/\1/' <<<"$body")
    local snap; snap=$(sed -E 's/.*"fromSnapshots":([0-9]+).*/\1/' <<<"$body")
    kill -TERM "$PID"; wait "$PID" || true; PID=""
    echo "$ms $(( (ready - started) / 1000000 )) $snap"
}

echo "## Recovery"
echo
echo "- date (UTC): $(date -u '+%Y-%m-%d %H:%M:%S'); nproc: $(nproc); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "- commit: $(git rev-parse --short HEAD); command: \`SIZES=\"$SIZES\" LIVE=$LIVE bash loadtests/recovery.sh\`"
echo
echo "| events | live flows | full replay (recoveryMs) | replay events/s | process start → ready, full | from snapshot (recoveryMs) | process start → ready, snapshot |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for n in $SIZES; do
    file="$TMP/log-$n.ndjson"; dir="$TMP/data-$n"
    generate "$n" "$LIVE" "$file"
    "$BIN" log import --data-dir "$dir" "$file" >/dev/null 2>&1
    rm -f "$file"
    read -r full_ms full_wall _ < <(start_and_time "$dir" --no-snapshots)
    start_and_time "$dir" >/dev/null   # full replay that saves a snapshot
    read -r snap_ms snap_wall from < <(start_and_time "$dir")
    [[ "$from" == 1 ]] || { echo "expected a start from a snapshot" >&2; exit 1; }
    rate=$(python3 -c "print(f'{$n / max($full_ms, 1) * 1000:,.0f}')")
    echo "| $n | $LIVE | $full_ms ms | $rate | $full_wall ms | $snap_ms ms | $snap_wall ms |"
    rm -rf "$dir"
done
