#!/usr/bin/env bash
# Runs a client's tests against a fresh emulator, the way docs/ci.md sets it up in a CI job:
#
#   examples/ci/with-emulator.sh COMMAND [ARG...]
#
# 1. starts the emulator in the background on free ports (plain HTTP and HTTPS, port 0, the
#    bound addresses read from --port-file), with a data directory of its own;
# 2. waits until it is ready (`userflows-emulator wait`, 30 s at most);
# 3. runs COMMAND with the emulator's addresses, CA and a token in its environment:
#      EMULATOR_URL        http://127.0.0.1:PORT         (Graph is $EMULATOR_URL/beta)
#      EMULATOR_HTTPS_URL  https://127.0.0.1:PORT        (also the token authority)
#      EMULATOR_CA         the CA to trust; SSL_CERT_FILE, REQUESTS_CA_BUNDLE and
#                          NODE_EXTRA_CA_CERTS point at it too
#      EMULATOR_TENANT     a tenant of this run's own; EMULATOR_TOKEN a token for it, signed
#                          with the emulator's own key (good in every --auth mode)
# 4. keeps the request journal (NDJSON) and the tenant's retry summary as artifacts;
# 5. runs a bounded goose load test (unless LOADTEST_ARGS is empty) and keeps its HTML report
#    and its console output;
# 6. stops the emulator by its PID (SIGTERM, which drains and flushes), and exits with
#    COMMAND's status, or the first step's failure.
#
# Settings (environment): EMULATOR_BIN (default target/release/userflows-emulator),
# LOADTEST_BIN (default beside it), ARTIFACTS (default ./emulator-artifacts),
# EMULATOR_ARGS (extra serve flags, e.g. "--faults faults.json"), EMULATOR_TENANT,
# LOADTEST_ARGS (default "--scenarios mixed -u 8 -r 8 -t 10s").
set -euo pipefail

if [[ $# -eq 0 ]]; then
  echo "usage: $0 COMMAND [ARG...]" >&2
  exit 2
fi

emulator=${EMULATOR_BIN:-target/release/userflows-emulator}
loadtest=${LOADTEST_BIN:-$(dirname "$emulator")/loadtest}
artifacts=${ARTIFACTS:-emulator-artifacts}
loadtest_args=${LOADTEST_ARGS---scenarios mixed -u 8 -r 8 -t 10s}
tenant=${EMULATOR_TENANT:-ci-$(date +%s)-$$}

# Before anything starts: a binary that is missing fails here, with its name, not later in a log.
need() {
  if [[ ! -x "$1" ]]; then
    echo "with-emulator: $1 is not an executable file; build it first ($2), or set $3" >&2
    exit 2
  fi
}
need "$emulator" "cargo build --release" EMULATOR_BIN
if [[ -n "$loadtest_args" ]]; then
  need "$loadtest" "cargo build --release -p userflows-loadtests" "LOADTEST_BIN (or LOADTEST_ARGS= to skip the load test)"
fi

mkdir -p "$artifacts"
artifacts=$(cd "$artifacts" && pwd)
data=$(mktemp -d "${TMPDIR:-/tmp}/emulator-data.XXXXXX")
ports="$data/ports.json"
emulator_pid=""

stop() {
  if [[ -n "$emulator_pid" ]] && kill -0 "$emulator_pid" 2>/dev/null; then
    kill -TERM "$emulator_pid"
    for _ in $(seq 300); do
      kill -0 "$emulator_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$emulator_pid" 2>/dev/null; then
      echo "with-emulator: the emulator did not stop in 30 s; killing it" >&2
      kill -KILL "$emulator_pid"
    fi
    wait "$emulator_pid" 2>/dev/null || true
  fi
  emulator_pid=""
  rm -rf "$data"
}
trap stop EXIT

# shellcheck disable=SC2086 # EMULATOR_ARGS is a list of flags
"$emulator" serve --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 --data-dir "$data" \
  --port-file "$ports" ${EMULATOR_ARGS:-} >"$artifacts/emulator.log" 2>&1 &
emulator_pid=$!

for _ in $(seq 300); do
  [[ -s "$ports" ]] && break
  kill -0 "$emulator_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ ! -s "$ports" ]]; then
  echo "with-emulator: the emulator did not start; its log:" >&2
  cat "$artifacts/emulator.log" >&2
  exit 1
fi
address() { sed -E "s/.*\"$1\":\"([^\"]+)\".*/\1/" "$ports"; }
export EMULATOR_URL="http://$(address http)"
export EMULATOR_HTTPS_URL="https://$(address https)"
export EMULATOR_CA="$data/tls/ca.pem"
export SSL_CERT_FILE="$EMULATOR_CA" REQUESTS_CA_BUNDLE="$EMULATOR_CA" NODE_EXTRA_CA_CERTS="$EMULATOR_CA"
export EMULATOR_TENANT="$tenant"

"$emulator" wait --url "$EMULATOR_URL" --timeout 30s
"$emulator" wait --url "$EMULATOR_HTTPS_URL" --ca "$EMULATOR_CA" --timeout 30s
# Signed with the key this emulator verifies, so it is also good under --auth strict.
EMULATOR_TOKEN=$("$emulator" token --tenant "$tenant" --data-dir "$data")
export EMULATOR_TOKEN
echo "with-emulator: serving $EMULATOR_URL and $EMULATOR_HTTPS_URL (pid $emulator_pid), tenant $tenant"

status=0
"$@" || status=$?
echo "with-emulator: the client's tests exited with $status"

curl -sSf "$EMULATOR_URL/_emulator/requests?format=ndjson&limit=1000000" -o "$artifacts/journal.ndjson"
curl -sSf "$EMULATOR_URL/_emulator/requests/summary?tenant=$tenant" -o "$artifacts/summary.json"
echo "with-emulator: kept $(wc -l <"$artifacts/journal.ndjson") journal entries"

if [[ -n "$loadtest_args" ]]; then
  # shellcheck disable=SC2086 # LOADTEST_ARGS is a list of flags
  "$loadtest" --host "$EMULATOR_URL" $loadtest_args --report-file "$artifacts/loadtest.html" \
    >"$artifacts/loadtest.log" 2>&1 || { failed=$?; [[ $status -ne 0 ]] || status=$failed; }
  # The verdict: the run's totals, each request's statuses, PASS or why it failed.
  sed -n '/^run /,$p' "$artifacts/loadtest.log"
fi

stop
echo "with-emulator: artifacts in $artifacts: $(ls "$artifacts" | tr '\n' ' ')"
exit "$status"
