"""Microsoft's Graph beta SDK for Python riding out an injected 429 and 503.

The emulator's fault rules (docs/resilience.md) make the next creates fail; the stock SDK's
retry handler waits for each `Retry-After` and tries again, and the create succeeds. The
flow is then stored exactly once: a refused attempt stores nothing.

    .venv/bin/python examples/python/resilience.py \
        --base-url http://127.0.0.1:8080/beta --token "$(cargo run -q --release -- token --tenant contoso)"

The rules are set through the admin API of the same server (`/_emulator/faults`, loopback only
without an admin key). It exits non-zero, naming the step, if anything is not as expected.
"""

import argparse
import asyncio
import json
import os
import time
import urllib.request
import uuid

from msgraph_beta.generated.models.identity_user_flow import IdentityUserFlow
from msgraph_beta.generated.models.user_flow_type import UserFlowType

from quickstart import check, client_for


def admin(base_url: str, method: str, path: str, body=None):
    origin = base_url.rsplit("/beta", 1)[0]
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(origin + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request) as answer:
        text = answer.read()
        return json.loads(text) if text else None


async def create_through(flows, base_url: str, status: int) -> None:
    rule = {"id": f"two-{status}s", "match": {"operation": "create"}, "times": 2,
            "effect": {"status": status, "retryAfter": 1}}
    admin(base_url, "PUT", "/_emulator/faults", {"seed": 1, "rules": [rule]})
    name = f"Resilient{status}" + uuid.uuid4().hex[:8]
    started = time.monotonic()
    created = await flows.post(
        IdentityUserFlow(id=name, user_flow_type=UserFlowType.SignIn, user_flow_type_version=1)
    )
    waited = time.monotonic() - started
    check(f"create through {status}s", created.id == "B2C_1_" + name, created.id)
    fired = admin(base_url, "GET", "/_emulator/faults")["rules"][0]["fired"]
    check(f"{status} injected twice", fired == 2, fired)
    # Two retries, each after the Retry-After of 1 s it was given.
    check(f"waited for Retry-After after each {status}", waited >= 2.0, waited)
    listed = await flows.get()
    ids = [flow.id for flow in listed.value]
    check(f"stored once after {status}s", ids.count(created.id) == 1, ids)
    print(f"created {created.id} after two {status}s, waiting {waited:.1f} s")


async def main(base_url: str, token: str) -> None:
    flows = client_for(base_url, token).identity.user_flows
    try:
        await create_through(flows, base_url, 429)
        await create_through(flows, base_url, 503)
    finally:
        admin(base_url, "DELETE", "/_emulator/faults")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8080/beta")
    parser.add_argument("--token", default=os.environ.get("EMULATOR_TOKEN"))
    args = parser.parse_args()
    if not args.token:
        parser.error("give --token or set EMULATOR_TOKEN")
    asyncio.run(main(args.base_url, args.token))
