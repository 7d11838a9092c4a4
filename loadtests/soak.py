"""Soak: mixed creates, lists, gets and deletes over many tenants for a bounded time, with the
server's resident memory and open files sampled every 10 s; after the warm-up, resident memory
must stay within 10 % of its first post-warm-up sample (PASS or FAIL on the last line).

Each tenant draws ids from a small fixed set, so its flows settle around a steady count while
its event log keeps growing: what should stay flat is memory, not disk. Traffic goes to
127.0.0.1 only; the server is started on a fresh data directory and stopped by its PID.

    python3 loadtests/soak.py target/release/userflows-emulator --minutes 20
"""

import argparse
import http.client
import json
import os
import random
import shutil
import tempfile
import threading
import time

from many_tenants import Server, disk_bytes, rss_kib, token

# Share of each operation in the mix.
MIX = [("create", 35), ("list", 20), ("get", 25), ("delete", 20)]
EXPECTED = {
    "create": {201, 409},
    "list": {200},
    "get": {200, 404},
    "delete": {204, 404},
}


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.done = 0
        self.unexpected = {}

    def add(self, op: str, status: int) -> None:
        with self.lock:
            self.done += 1
            if status not in EXPECTED[op]:
                key = f"{op} {status}"
                self.unexpected[key] = self.unexpected.get(key, 0) + 1


def client(port: int, tenants: int, ids: int, until: float, counts: Counts, seed: int) -> None:
    rng = random.Random(seed)
    ops = [op for op, weight in MIX for _ in range(weight)]
    tokens = [f"Bearer {token(f'soak-{t}')}" for t in range(tenants)]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while time.monotonic() < until:
        op = rng.choice(ops)
        auth = {"Authorization": rng.choice(tokens)}
        flow = f"f{rng.randrange(ids)}"
        if op == "create":
            body = json.dumps({"id": flow, "userFlowType": "signUpOrSignIn", "userFlowTypeVersion": 3})
            conn.request("POST", "/beta/identity/userFlows", body,
                         {**auth, "Content-Type": "application/json"})
        elif op == "list":
            conn.request("GET", "/beta/identity/userFlows?$top=10&$count=true", headers=auth)
        elif op == "get":
            conn.request("GET", f"/beta/identity/userFlows/B2C_1_{flow}", headers=auth)
        else:
            conn.request("DELETE", f"/beta/identity/userFlows/B2C_1_{flow}", headers=auth)
        response = conn.getresponse()
        response.read()
        counts.add(op, response.status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--warmup-minutes", type=float, default=3)
    parser.add_argument("--tenants", type=int, default=2000)
    parser.add_argument("--ids", type=int, default=20, help="distinct flow ids per tenant")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--port", type=int, default=18750)
    parser.add_argument("--every", type=float, default=10, help="seconds between samples")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="soak.")
    data = os.path.join(work, "data")
    server = Server(args.binary, data, args.port)
    pid = server.process.pid
    counts = Counts()
    started = time.monotonic()
    until = started + args.minutes * 60
    threads = [
        threading.Thread(target=client, args=(args.port, args.tenants, args.ids, until, counts, i), daemon=True)
        for i in range(args.clients)
    ]
    samples = []
    try:
        for thread in threads:
            thread.start()
        print("| minute | requests | requests/s | RSS MiB | open files | disk MiB |")
        print("|---:|---:|---:|---:|---:|---:|")
        last_done, last_at = 0, started
        while time.monotonic() < until:
            time.sleep(max(0.0, min(args.every, until - time.monotonic())))
            now = time.monotonic()
            done = counts.done
            sample = {
                "minute": (now - started) / 60,
                "requests": done,
                "rate": (done - last_done) / max(now - last_at, 1e-9),
                "rss_kib": rss_kib(pid),
                "files": open_files(pid),
                "disk": disk_bytes(data),
            }
            last_done, last_at = done, now
            samples.append(sample)
            print(f"| {sample['minute']:.1f} | {done} | {sample['rate']:.0f} | "
                  f"{sample['rss_kib'] / 1024:.1f} | {sample['files']} | {sample['disk'] / 2**20:.1f} |",
                  flush=True)
            if server.process.poll() is not None:
                raise SystemExit(f"the server exited with {server.process.returncode}")
        for thread in threads:
            thread.join(timeout=60)
        server.stop()
        # What the same data costs a fresh process: memory that follows the data (flows, the
        # storage engine's bookkeeping of a longer log) rather than the hours of traffic.
        again = Server(args.binary, data, args.port)
        time.sleep(2)
        restarted_kib = rss_kib(again.process.pid)
        again.stop()
        empty = Server(args.binary, os.path.join(work, "empty"), args.port)
        empty_kib = rss_kib(empty.process.pid)
        empty.stop()
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    steady = [s for s in samples if s["minute"] >= args.warmup_minutes]
    if not steady:
        raise SystemExit("no sample after the warm-up: run longer")
    base = steady[0]["rss_kib"]
    worst = max(abs(s["rss_kib"] - base) / base for s in steady)
    files = {s["files"] for s in steady}
    print(f"\n{counts.done} requests; unexpected statuses: {counts.unexpected or 'none'}")
    print(f"after {args.warmup_minutes} min warm-up: RSS {base / 1024:.1f} MiB at first, "
          f"{min(s['rss_kib'] for s in steady) / 1024:.1f}-{max(s['rss_kib'] for s in steady) / 1024:.1f} MiB, "
          f"largest change {worst * 100:.1f} %; open files {min(files)}-{max(files)}")
    print(f"the final data directory ({samples[-1]['disk'] / 2**20:.0f} MiB) restarted: RSS "
          f"{restarted_kib / 1024:.1f} MiB once ready, idle on an empty directory {empty_kib / 1024:.1f} MiB")
    ok = worst <= 0.10 and not counts.unexpected
    print("PASS" if ok else "FAIL")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
