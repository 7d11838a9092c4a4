#!/usr/bin/env bash
# Memory per stored flow and disk per event, for a log of N creates of one tenant.
#
#   bash loadtests/footprint.sh                # 1,000,000 flows
#   FLOWS=100000 bash loadtests/footprint.sh
#
# Generates N `UserFlowCreated` envelopes (ids B2C_1_flow0000001…, a UUID for each of the event,
# request and client-request ids), imports them with `log import`, and reports `du -sb` of the
# data directory per event. Then starts the release server with --no-snapshots on it and on an
# empty directory and reports the difference in resident memory (VmRSS, read once /ready
# answers) per flow. Traffic goes to 127.0.0.1 only; every server is stopped by its PID.
set -euo pipefail

FLOWS="${FLOWS:-1000000}"
PORT="${PORT:-18310}"
NAME=footprint
# shellcheck source=loadtests/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

python3 - "$FLOWS" "$TMP/log.ndjson" <<'PY'
import sys, uuid
n, out = int(sys.argv[1]), sys.argv[2]
with open(out, "w") as f:
    for seq in range(1, n + 1):
        f.write('{"tenant_id":"bench","seq":%d,"event_id":"%s","event_type":"UserFlowCreated","schema_version":1,"recorded_at":"2026-11-20T10:00:00.000Z","request_id":"%s","client_request_id":"%s","payload":{"id":"B2C_1_flow%07d","userFlowType":"signUpOrSignIn","userFlowTypeVersion":1}}\n' % (seq, uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), seq))
PY
line_bytes=$(( $(stat -c %s "$TMP/log.ndjson") / FLOWS ))
"$BIN" log import --data-dir "$TMP/data" "$TMP/log.ndjson" >/dev/null 2>&1
rm -f "$TMP/log.ndjson"
disk=$(du -sb "$TMP/data" | cut -f1)
mkdir -p "$TMP/empty"

# Prints the resident memory (bytes) of a server on $1 once it is ready.
rss_when_ready() {
    "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$1" --no-snapshots >"$TMP/server.log" 2>&1 &
    PID=$!
    wait_ready "$PORT" >/dev/null
    local kb; kb=$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status")
    kill -TERM "$PID"; wait "$PID" || true; PID=""
    echo $(( kb * 1024 ))
}

empty=$(rss_when_ready "$TMP/empty")
full=$(rss_when_ready "$TMP/data")
echo "## Footprint"
echo
echo "- date (UTC): $(date -u '+%Y-%m-%d %H:%M:%S'); commit: $(git rev-parse --short HEAD); command: \`FLOWS=$FLOWS bash loadtests/footprint.sh\`"
echo
echo "| measure | bytes |"
echo "|---|---:|"
echo "| NDJSON line per event | $line_bytes |"
echo "| disk per event (du -sb of the data directory) | $(( disk / FLOWS )) |"
echo "| resident memory per stored flow (ready server minus an empty one) | $(( (full - empty) / FLOWS )) |"
