# Shared set-up of the measurement scripts (sourced, not run): moves to the repository root,
# builds the release binaries, makes a temporary directory removed at exit, and stops the server
# whose PID is in $PID at exit. Usage: NAME=recovery; source "$(dirname "$0")/common.sh"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="target/release/userflows-emulator"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/userflows-${NAME:-measure}.XXXXXX")"
PID=""
cleanup() {
    if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

# Waits (up to 60 s) until the server on port $1 answers ready; prints /ready's body.
wait_ready() {
    local body=""
    for _ in $(seq 1 6000); do
        body=$(curl -s "http://127.0.0.1:$1/_emulator/ready" || true)
        [[ "$body" == *'"status":"ready"'* ]] && break
        sleep 0.01
    done
    echo "$body"
}

cargo build --release --quiet
