"""The request journal's share of memory: two servers side by side under the same load, one
with a journal of --journal-bytes (default 16 MiB) and one with none (--journal-bytes 0);
resident memory of both and what the journal holds (its metrics) sampled every 10 s. The
journal's share is the difference. The two processes' own memory drifts apart by a few MiB
under load whatever the journal does, so the verdict reads the median of the samples once the
journal is full (the largest is printed beside it): PASS when it is within the bound plus
--overhead (default 25 %: what the allocator keeps of freed entries).

    python3 loadtests/journal_memory.py target/release/userflows-emulator --minutes 10

The load is soak.py's mix (creates, lists, gets, deletes over many tenants), the same number
of client threads against each server. Traffic goes to 127.0.0.1 only; both servers run on
fresh data directories and are stopped by their PIDs.
"""

import argparse
import http.client
import os
import shutil
import tempfile
import threading
import time

from many_tenants import Server, rss_kib
from soak import Counts, client


def metric(port: int, name: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/_emulator/metrics")
    for line in conn.getresponse().read().decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split(" ")[1]))
    raise SystemExit(f"no {name} in the metrics")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--journal-bytes", type=int, default=16 * 2**20)
    parser.add_argument("--overhead", type=float, default=0.25,
                        help="allowed bookkeeping beyond the JSON bytes, as a share of the bound")
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--ids", type=int, default=20, help="distinct flow ids per tenant")
    parser.add_argument("--clients", type=int, default=2, help="client threads per server")
    parser.add_argument("--port", type=int, default=18760)
    parser.add_argument("--every", type=float, default=10, help="seconds between samples")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="journal-memory.")
    on_port, off_port = args.port, args.port + 1
    servers = []
    try:
        on = Server(args.binary, os.path.join(work, "on"), on_port,
                    extra=["--journal-bytes", str(args.journal_bytes)])
        servers.append(on)
        off = Server(args.binary, os.path.join(work, "off"), off_port, extra=["--journal-bytes", "0"])
        servers.append(off)
        started = time.monotonic()
        until = started + args.minutes * 60
        counts = {port: Counts() for port in (on_port, off_port)}
        threads = [
            threading.Thread(target=client, args=(port, args.tenants, args.ids, until, counts[port], i),
                             daemon=True)
            for port in (on_port, off_port) for i in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        print("| minute | requests (on / off) | RSS on MiB | RSS off MiB | share MiB | journal entries | journal JSON MiB | dropped |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        samples = []
        while time.monotonic() < until:
            time.sleep(max(0.0, min(args.every, until - time.monotonic())))
            for server in servers:
                if server.process.poll() is not None:
                    raise SystemExit(f"a server exited with {server.process.returncode}")
            s = {
                "minute": (time.monotonic() - started) / 60,
                "on": rss_kib(on.process.pid) * 1024,
                "off": rss_kib(off.process.pid) * 1024,
                "entries": metric(on_port, "userflows_journal_entries"),
                "json": metric(on_port, "userflows_journal_json_bytes"),
                "dropped": metric(on_port, "userflows_journal_dropped_total"),
            }
            s["share"] = s["on"] - s["off"]
            samples.append(s)
            print(f"| {s['minute']:.1f} | {counts[on_port].done} / {counts[off_port].done} | "
                  f"{s['on'] / 2**20:.1f} | {s['off'] / 2**20:.1f} | {s['share'] / 2**20:.1f} | "
                  f"{s['entries']} | {s['json'] / 2**20:.2f} | {s['dropped']} |", flush=True)
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    full = [s for s in samples if s["dropped"] > 0]
    if not full:
        raise SystemExit("the journal never filled: run longer or with a smaller --journal-bytes")
    allowed = args.journal_bytes * (1 + args.overhead)
    shares = sorted(s["share"] for s in full)
    median, worst = shares[len(shares) // 2], shares[-1]
    unexpected = {k: v for c in counts.values() for k, v in c.unexpected.items()}
    print(f"\njournal full from minute {full[0]['minute']:.1f}; its share of RSS once full: "
          f"median {median / 2**20:.1f} MiB, {shares[0] / 2**20:.1f}-{worst / 2**20:.1f} MiB, for a "
          f"bound of {args.journal_bytes / 2**20:.1f} MiB ({full[-1]['entries']} entries, "
          f"{full[-1]['json'] / 2**20:.2f} MiB of JSON, {full[-1]['dropped']} dropped); "
          f"unexpected statuses: {unexpected or 'none'}")
    ok = median <= allowed and not unexpected
    print("PASS" if ok else f"FAIL: share above {allowed / 2**20:.1f} MiB")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
