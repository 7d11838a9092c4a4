#!/usr/bin/env bash
# A tenant-sharded cluster on loopback: N userflows-emulator instances, each with its own data
# directory, behind HAProxy (Debian's haproxy 2.6) routing by tenant (docs/scale-out.md).
#
#   deploy/cluster.sh up 3        # instances on BASE_PORT+1.., HAProxy on BASE_PORT
#   deploy/cluster.sh start I     # (re)start instance I (1..N) on its data directory
#   deploy/cluster.sh stop I      # stop instance I (SIGTERM: drains and flushes)
#   deploy/cluster.sh move T I    # route tenant T to instance I from now on (no log moved)
#   deploy/cluster.sh migrate T FROM TO
#                                 # move tenant T's log from instance FROM to TO, then route it
#   deploy/cluster.sh status      # each instance's and HAProxy's PID
#   deploy/cluster.sh down        # stop HAProxy and every instance, by PID
#
# Environment: CLUSTER_DIR (default ./cluster: data, logs, PIDs, the generated haproxy.cfg
# and maps), BASE_PORT (default 18400), EMULATOR_BIN (default target/release/userflows-emulator),
# HAPROXY (default haproxy), EMULATOR_ARGS (extra serve flags for every instance).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dir=${CLUSTER_DIR:-cluster}
base=${BASE_PORT:-18400}
bin=${EMULATOR_BIN:-target/release/userflows-emulator}
haproxy=${HAPROXY:-haproxy}
slots=1024

die() { echo "cluster: $*" >&2; exit 1; }
# alive PIDFILE: its process runs (a zombie, killed but not yet reaped, does not).
alive() {
  [[ -s "$1" ]] || return 1
  local pid
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null && [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]]
}
count() { cat "$dir/instances" 2>/dev/null || die "no cluster in $dir (deploy/cluster.sh up N)"; }

stop_pid() { # PIDFILE: SIGTERM, then SIGKILL after 30 s
  local file=$1 pid
  alive "$file" || { rm -f "$file"; return 0; }
  pid=$(cat "$file")
  kill -TERM "$pid"
  for _ in $(seq 300); do alive "$file" || break; sleep 0.1; done
  if alive "$file"; then kill -KILL "$pid"; fi
  rm -f "$file"
}

# haproxy_api COMMAND: one command to the running HAProxy's runtime API; its answer.
haproxy_api() {
  python3 - "$dir/haproxy.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
chunks = []
while chunk := s.recv(65536):
    chunks.append(chunk)
print(b"".join(chunks).decode().strip())
PY
}

# routed I: waits until HAProxy's health check sees instance I up (when HAProxy runs).
routed() {
  alive "$dir/haproxy.pid" || return 0
  for _ in $(seq 100); do
    # `show servers state` rows: ... srv_op_state (2: running) is the sixth field.
    haproxy_api "show servers state shard$1" | awk '$1 ~ /^[0-9]+$/ {print $6}' | grep -qx 2 && return 0
    sleep 0.1
  done
  die "HAProxy does not see instance $1 up"
}

start_instance() { # I
  local i=$1 port=$((base + $1))
  alive "$dir/instance-$i.pid" && die "instance $i is already running"
  # shellcheck disable=SC2086 # EMULATOR_ARGS is a list of flags
  "$bin" serve --listen "127.0.0.1:$port" --data-dir "$dir/instance-$i" ${EMULATOR_ARGS:-} \
    >>"$dir/instance-$i.log" 2>&1 &
  echo $! >"$dir/instance-$i.pid"
  "$bin" wait --url "http://127.0.0.1:$port" --timeout 60s >/dev/null ||
    die "instance $i did not become ready; see $dir/instance-$i.log"
  routed "$i"
}

# slots.map: each slot to the instance with the highest rendezvous score, so that going from
# N to N+1 instances moves only the slots the new instance wins (about 1/(N+1) of them).
write_slots() { # N
  python3 - "$1" "$slots" >"$dir/slots.map" <<'PY'
import hashlib, sys
n, slots = int(sys.argv[1]), int(sys.argv[2])
for slot in range(slots):
    score = lambda i: hashlib.sha256(f"{slot}:{i}".encode()).digest()
    print(slot, max(range(1, n + 1), key=score))
PY
}

write_config() { # N
  local n=$1 any="" shards="" i
  for i in $(seq "$n"); do
    any+="    server instance$i 127.0.0.1:$((base + i)) check inter 500ms fall 2 rise 2"$'\n'
    shards+=$'\n'"backend shard$i"$'\n'"    option httpchk GET /_emulator/ready"$'\n'
    shards+="    http-check expect status 200"$'\n'
    shards+="    server instance$i 127.0.0.1:$((base + i)) check inter 500ms fall 2 rise 2"$'\n'
  done
  python3 - "$here/haproxy/haproxy.cfg.in" "$dir/haproxy.cfg" "$(cd "$dir" && pwd)" \
    "127.0.0.1:$base" "$any" "$shards" <<'PY'
import sys
template, out, d, bind, any_servers, shards = sys.argv[1:]
text = open(template).read()
for key, value in {"@DIR@": d, "@BIND@": bind, "@ANY_SERVERS@": any_servers.rstrip("\n"),
                   "@SHARD_BACKENDS@": shards.rstrip("\n")}.items():
    text = text.replace(key, value)
open(out, "w").write(text + "\n")
PY
  touch "$dir/tenants.map"
}

# route_tenant T I: tenants.map (read at start) and the running HAProxy (its runtime API).
route_tenant() {
  local tenant to n lower
  tenant=$1; to=$2; n=$(count)
  (( to >= 1 && to <= n )) || die "no instance $to"
  lower=$(tr '[:upper:]' '[:lower:]' <<<"$tenant")
  grep -v "^$lower " "$dir/tenants.map" >"$dir/tenants.map.new" || true
  echo "$lower $to" >>"$dir/tenants.map.new"
  mv "$dir/tenants.map.new" "$dir/tenants.map"
  local map
  map="$(cd "$dir" && pwd)/tenants.map"
  haproxy_api "del map $map $lower" >/dev/null
  local answer
  answer=$(haproxy_api "add map $map $lower $to")
  [[ -z "$answer" ]] || die "haproxy refused the route of $tenant: $answer"
  echo "cluster: tenant $tenant routes to instance $to"
}

start_haproxy() {
  "$haproxy" -c -q -f "$dir/haproxy.cfg" || die "haproxy refused $dir/haproxy.cfg"
  "$haproxy" -f "$dir/haproxy.cfg" -db >>"$dir/haproxy.log" 2>&1 &
  echo $! >"$dir/haproxy.pid"
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$base") 2>/dev/null && return 0
    alive "$dir/haproxy.pid" || die "haproxy exited; see $dir/haproxy.log"
    sleep 0.1
  done
  die "haproxy is not listening on $base"
}

case "${1:-}" in
  up)
    n=${2:-3}
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "up N: N instances, at least 1"
    command -v "$haproxy" >/dev/null || die "haproxy not found (apt-get install -y haproxy)"
    [[ -x "$bin" ]] || die "no emulator at $bin (cargo build --release, or set EMULATOR_BIN)"
    mkdir -p "$dir"
    [[ -s "$dir/instances" ]] && alive "$dir/haproxy.pid" && die "a cluster is already up in $dir"
    # The slots were spread over the instances this directory was first brought up with;
    # a different count would route tenants to instances that do not hold them.
    if [[ -s "$dir/layout" && "$(cat "$dir/layout")" != "$n" ]]; then
      die "$dir holds tenants spread over $(cat "$dir/layout") instances: bring it up with that many (adding instances moves tenants: docs/scale-out.md)"
    fi
    echo "$n" >"$dir/layout"
    echo "$n" >"$dir/instances"
    write_slots "$n"
    write_config "$n"
    for i in $(seq "$n"); do start_instance "$i"; done
    start_haproxy
    echo "cluster: $n instances on 127.0.0.1:$((base + 1))..$((base + n)), HAProxy on http://127.0.0.1:$base"
    ;;
  start) start_instance "${2:?start I}" ;;
  stop) stop_pid "$dir/instance-${2:?stop I}.pid" ;;
  move)
    route_tenant "${2:?move TENANT I}" "${3:?move TENANT I}"
    ;;
  migrate)
    tenant=${2:?migrate TENANT FROM TO}; from=${3:?migrate TENANT FROM TO}; to=${4:?migrate TENANT FROM TO}
    n=$(count)
    (( from >= 1 && from <= n && to >= 1 && to <= n && from != to )) || die "migrate: FROM and TO are two instances of 1..$n"
    # Both instances stop (sled locks a data directory while a server runs): their tenants
    # get the balancer's 503 for the few seconds this takes; the other instances go on.
    stop_pid "$dir/instance-$from.pid"
    stop_pid "$dir/instance-$to.pid"
    "$bin" log export --data-dir "$dir/instance-$from" --tenant "$tenant" --output "$dir/move.ndjson"
    [[ -s "$dir/move.ndjson" ]] || { start_instance "$from"; start_instance "$to"; die "tenant $tenant has no events on instance $from"; }
    "$bin" log import --data-dir "$dir/instance-$to" "$dir/move.ndjson" ||
      { start_instance "$from"; start_instance "$to"; die "import into instance $to refused; nothing moved"; }
    start_instance "$to"
    route_tenant "$tenant" "$to"
    start_instance "$from"
    # The source's copy goes, so that only one instance holds the tenant.
    curl -sSf -X DELETE "http://127.0.0.1:$((base + from))/_emulator/tenants/$tenant" >/dev/null
    rm -f "$dir/move.ndjson"
    echo "cluster: tenant $tenant moved from instance $from to instance $to"
    ;;
  status)
    n=$(count)
    for i in $(seq "$n"); do
      state=down; alive "$dir/instance-$i.pid" && state="pid $(cat "$dir/instance-$i.pid")"
      echo "instance $i (127.0.0.1:$((base + i))): $state"
    done
    state=down; alive "$dir/haproxy.pid" && state="pid $(cat "$dir/haproxy.pid")"
    echo "haproxy (127.0.0.1:$base): $state"
    ;;
  down)
    n=$(count)
    stop_pid "$dir/haproxy.pid"
    for i in $(seq "$n"); do stop_pid "$dir/instance-$i.pid"; done
    rm -f "$dir/instances"
    echo "cluster: down"
    ;;
  *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
