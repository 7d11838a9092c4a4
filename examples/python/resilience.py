"""Microsoft's Graph beta SDK for Python riding out injected 429s, 503s and an ambiguous 504.

The emulator's fault rules (docs/resilience.md) make the next creates fail; the stock SDK's
retry handler waits for each `Retry-After` and tries again, and the create succeeds. The
flow is then stored exactly once: a refused attempt stores nothing. The request journal
(`/_emulator/requests/summary`) proves it: three attempts, `[429, 429, 201]`, each retry
after the `Retry-After` it was given.

The hard case last: a `504` after the create was stored (`afterCommit`). The SDK retries and
meets `409 nameAlreadyExists`; a client must read that as "already done" and check the flow.

    .venv/bin/python examples/python/resilience.py \
        --base-url http://127.0.0.1:8080/beta --token "$(cargo run -q --release -- token --tenant contoso)"

The rules are set through the admin API of the same server (`/_emulator/faults`, loopback only
without an admin key). It exits non-zero, naming the step, if anything is not as expected.
"""

import argparse
import asyncio
import base64
import json
import os
import re
import time
import urllib.request
import uuid

from kiota_abstractions.api_error import APIError
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


def tenant_of(token: str) -> str:
    """The tenant the emulator files the token's requests under: its `tid` (a GUID lower-cased)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    tid = claims["tid"]
    return tid.lower() if re.fullmatch(r"[0-9A-Fa-f-]{36}", tid) else tid


def create_attempts(base_url: str, tenant: str) -> dict:
    """The journal's last logical create of `tenant`: its attempts, statuses and waits.

    The SDK sends no client-request-id, so the journal chains its attempts by app, method,
    path, body digest and the `Retry-Attempt` header its retry handler adds."""
    summary = admin(base_url, "GET", f"/_emulator/requests/summary?tenant={tenant}")
    creates = [r for r in summary["value"]
               if r["method"] == "POST" and r["path"].endswith("/identity/userFlows")]
    check("a logical create in the journal", len(creates) > 0, summary)
    return creates[-1]


async def create_through(flows, base_url: str, tenant: str, status: int) -> None:
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
    attempts = create_attempts(base_url, tenant)
    check(f"journal: {status}, {status}, 201", attempts["statuses"] == [status, status, 201],
          attempts)
    check(f"journal: every retry waited its Retry-After after {status}s", attempts["honoured"],
          attempts)
    print(f"created {created.id} after two {status}s, waiting {waited:.1f} s; "
          f"journal {attempts['statuses']} waits {attempts['waitsMs']} ms, honoured")


async def ambiguous_create(flows, base_url: str, tenant: str) -> None:
    """A 504 after the write was stored: the SDK's retry meets 409, and the flow is there."""
    rule = {"id": "ambiguous", "match": {"operation": "create"}, "times": 1,
            "effect": {"status": 504, "retryAfter": 1, "afterCommit": True}}
    admin(base_url, "PUT", "/_emulator/faults", {"seed": 1, "rules": [rule]})
    name = "Ambiguous" + uuid.uuid4().hex[:8]
    try:
        await flows.post(
            IdentityUserFlow(id=name, user_flow_type=UserFlowType.SignIn, user_flow_type_version=1)
        )
        check("the retry after an ambiguous 504 meets 409", False, "the create succeeded")
    except APIError as error:
        check("the retry after an ambiguous 504 meets 409", error.response_status_code == 409,
              error.response_status_code)
    # "Already exists" after a failed attempt: the first attempt may have succeeded. Check.
    stored = await flows.by_identity_user_flow_id("B2C_1_" + name).get()
    check("the ambiguous create was stored", stored.id == "B2C_1_" + name, stored.id)
    attempts = create_attempts(base_url, tenant)
    check("journal: 504, 409", attempts["statuses"] == [504, 409], attempts)
    check("journal: the retry waited its Retry-After", attempts["honoured"], attempts)
    print(f"ambiguous create {stored.id}: journal {attempts['statuses']}, stored once")


async def main(base_url: str, token: str) -> None:
    flows = client_for(base_url, token).identity.user_flows
    tenant = tenant_of(token)
    try:
        await create_through(flows, base_url, tenant, 429)
        await create_through(flows, base_url, tenant, 503)
        await ambiguous_create(flows, base_url, tenant)
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
