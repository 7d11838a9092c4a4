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

# creates_rps URL TOKEN NAME: durable creates per second of wrk's create script against URL
# (after a warm-up of $WARMUP s, measured over $DURATION s, $CONNECTIONS connections); fails
# unless every answer was a 201. NAME names the wrk output in $TMP.
creates_rps() {
    local url=$1 token=$2 name=$3 line non201
    BENCH_TOKEN=$token wrk -t2 -c"$CONNECTIONS" -d"${WARMUP}s" -s loadtests/wrk/create.lua "$url" >/dev/null
    BENCH_TOKEN=$token wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -s loadtests/wrk/create.lua "$url" >"$TMP/$name.wrk"
    line=$(grep -m1 '^RESULT ' "$TMP/$name.wrk")
    non201=$(tr ' ' '\n' <<<"$line" | sed -n 's/^non201=//p')
    [[ "$non201" == 0 ]] || { echo "$name: $non201 answers were not 201: $line" >&2; exit 1; }
    tr ' ' '\n' <<<"$line" | sed -n 's/^rps=//p'
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

cargo build --release --quiet
