"""Microsoft's Graph beta SDK for Python against the emulator: create, get, list, delete.

The stock SDK, unchanged: only the base URL and the token differ. The emulator's default
(lenient) auth accepts any JWT whose payload names the tenant in `tid`, so the token comes from
`userflows-emulator token --tenant T`, given here with --token (or the EMULATOR_TOKEN variable).

    .venv/bin/python examples/python/quickstart.py \
        --base-url http://127.0.0.1:8080/beta --token "$(cargo run -q --release -- token --tenant contoso)"

It exits non-zero, naming the step, if any answer is not what Graph would give.
"""

import argparse
import asyncio
import os
import sys
import uuid

from kiota_abstractions.api_error import APIError
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from msgraph_beta import GraphRequestAdapter, GraphServiceClient
from msgraph_beta.generated.models.identity_user_flow import IdentityUserFlow
from msgraph_beta.generated.models.user_flow_type import UserFlowType


class StaticToken(AccessTokenProvider):
    """Hands the SDK one bearer token for every request."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def get_authorization_token(self, uri, additional_authentication_context=None) -> str:
        return self.token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return AllowedHostsValidator([])  # no list: every host


def client_for(base_url: str, token: str) -> GraphServiceClient:
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(StaticToken(token)))
    adapter.base_url = base_url
    return GraphServiceClient(request_adapter=adapter)


async def main(base_url: str, token: str) -> None:
    client = client_for(base_url, token)
    flows = client.identity.user_flows
    name = "Quickstart" + uuid.uuid4().hex[:8]

    created = await flows.post(
        IdentityUserFlow(
            id=name,
            user_flow_type=UserFlowType.SignUpOrSignIn,
            user_flow_type_version=1,
        )
    )
    check("create", created.id == "B2C_1_" + name, created.id)
    print(f"created {created.id} ({created.user_flow_type.value} v{created.user_flow_type_version})")

    fetched = await flows.by_identity_user_flow_id(created.id).get()
    check("get", fetched.id == created.id, fetched.id)

    listed = await flows.get()
    ids = [flow.id for flow in listed.value]
    check("list", created.id in ids, ids)
    print(f"listed {len(ids)} flow(s)")

    await delete_and_check(flows, created.id)


async def delete_and_check(flows, flow_id: str) -> None:
    """Deletes a flow and checks that a get of it is then 404."""
    await flows.by_identity_user_flow_id(flow_id).delete()
    try:
        await flows.by_identity_user_flow_id(flow_id).get()
    except APIError as error:
        check("get after delete", error.response_status_code == 404, error.response_status_code)
    else:
        fail("get after delete", "the deleted flow is still there")
    print(f"deleted {flow_id}")


def check(step: str, ok: bool, got) -> None:
    if not ok:
        fail(step, f"unexpected answer: {got!r}")


def fail(step: str, why: str) -> None:
    print(f"FAILED at {step}: {why}", file=sys.stderr)
    sys.exit(1)


def run(main, doc: str) -> None:
    """Parses --base-url and --token, then runs `main(base_url, token)`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8080/beta")
    parser.add_argument("--token", default=os.environ.get("EMULATOR_TOKEN"))
    args = parser.parse_args()
    if not args.token:
        parser.error("give --token (or EMULATOR_TOKEN): userflows-emulator token --tenant T")
    asyncio.run(main(args.base_url, args.token))


if __name__ == "__main__":
    run(main, __doc__)
