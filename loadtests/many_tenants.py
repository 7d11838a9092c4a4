"""Disk, memory and restart time of many small tenants, for one or more emulator binaries in one run.

For each binary: a fresh data directory, N tenants with one create each (plus, with --refused,
N more tenants that only get a refused DELETE), then the data directory's size, the server's
resident memory against the same binary idle on an empty directory, and the time from a restart
to ready. With --park-after S the servers park tenants idle for S seconds, and the memory is
read again once they have all been parked; without it they never park (the environment variable
USERFLOWS_TENANT_IDLE_SECS, which binaries older than parking ignore). Traffic goes to 127.0.0.1
only; every server is stopped by its PID.

    python3 loadtests/many_tenants.py --tenants 5000 --refused target/release/userflows-emulator /tmp/old/userflows-emulator
"""

import argparse
import base64
import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time


def token(tenant: str) -> str:
    def part(obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'tid': tenant})}.c2ln"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def disk_bytes(path: str) -> int:
    return sum(
        os.stat(os.path.join(root, name)).st_blocks * 512
        for root, _, names in os.walk(path)
        for name in names
    )


class Server:
    def __init__(self, binary: str, data: str, port: int, park_after: int = 0, extra=()):
        self.port = port
        self.process = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data, *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "USERFLOWS_TENANT_IDLE_SECS": str(park_after)},
        )
        self.started = time.monotonic()
        try:
            self.ready_after = self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float = 300) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/_emulator/ready")
                if conn.getresponse().status == 200:
                    return time.monotonic() - self.started
            except OSError:
                pass
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited with {self.process.returncode}")
            time.sleep(0.02)
        raise SystemExit(f"not ready within {timeout} s")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def drive(port: int, tenants: int, refused: bool) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"id": "One", "userFlowType": "signIn", "userFlowTypeVersion": 1})
    for i in range(tenants):
        headers = {"Authorization": "Bearer " + token(f"t{i}"), "Content-Type": "application/json"}
        conn.request("POST", "/beta/identity/userFlows", body, headers)
        response = conn.getresponse()
        response.read()
        if response.status != 201:
            raise SystemExit(f"create in tenant t{i}: {response.status}")
        if refused:
            headers = {"Authorization": "Bearer " + token(f"ghost{i}")}
            conn.request("DELETE", "/beta/identity/userFlows/B2C_1_x", headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 404:
                raise SystemExit(f"refused delete in ghost{i}: {response.status}")


def actors(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/_emulator/metrics")
    for line in conn.getresponse().read().decode().splitlines():
        if line.startswith("userflows_tenant_actors "):
            return int(line.split()[1])
    return -1


def measure(binary: str, tenants: int, refused: bool, port: int, park_after: int) -> dict:
    work = tempfile.mkdtemp(prefix="many-tenants.")
    try:
        empty = Server(binary, os.path.join(work, "empty"), port)
        idle_rss = rss_kib(empty.process.pid)
        empty.stop()
        data = os.path.join(work, "data")
        server = Server(binary, data, port, park_after)
        parked_rss = None
        try:
            started = time.monotonic()
            drive(port, tenants, refused)
            load_s = time.monotonic() - started
            rss = rss_kib(server.process.pid) - idle_rss
            if park_after:
                deadline = time.monotonic() + 3 * park_after + 30
                while actors(port) != 0 and time.monotonic() < deadline:
                    time.sleep(0.5)
                if actors(port) != 0:
                    raise SystemExit("tenants were not all parked")
                parked_rss = rss_kib(server.process.pid) - idle_rss
        finally:
            server.stop()
        disk = disk_bytes(data)
        again = Server(binary, data, port)
        ready_s = again.ready_after
        again_rss = rss_kib(again.process.pid) - idle_rss
        again.stop()
        return {
            "binary": binary,
            "tenants": tenants,
            "refused": tenants if refused else 0,
            "load_s": round(load_s, 1),
            "disk_mib": round(disk / 2**20, 1),
            "disk_per_tenant_b": round(disk / tenants),
            "rss_per_tenant_b": round(rss * 1024 / tenants),
            "rss_parked_per_tenant_b": "-" if parked_rss is None else round(parked_rss * 1024 / tenants),
            "rss_after_restart_per_tenant_b": round(again_rss * 1024 / tenants),
            "restart_to_ready_s": round(ready_s, 2),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--tenants", type=int, default=5000)
    parser.add_argument("--refused", action="store_true", help="also N tenants with only a 404")
    parser.add_argument("--port", type=int, default=18700)
    parser.add_argument("--park-after", type=int, default=0, help="seconds before an idle tenant is parked (0: never)")
    args = parser.parse_args()
    rows = [measure(b, args.tenants, args.refused, args.port, args.park_after) for b in args.binaries]
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
