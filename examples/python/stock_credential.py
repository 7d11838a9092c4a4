"""Microsoft's stock Python stack against the emulator over HTTPS, with a token from its token endpoint.

Nothing here is emulator-specific but configuration: azure-identity's ClientSecretCredential
gets the emulator as its authority (and no instance discovery, which would call Microsoft), and
the Graph client's base URL is the emulator's HTTPS listener. The emulator must run with
--tls-listen; the client trusts the CA it generated through two variables, set before Python
starts:

    SSL_CERT_FILE=data/tls/ca.pem REQUESTS_CA_BUNDLE=data/tls/ca.pem \\
    .venv/bin/python examples/python/stock_credential.py \\
        --authority https://127.0.0.1:8443 --tenant contoso --client-id my-app --client-secret s3cret

(SSL_CERT_FILE is read by aiohttp and httpx, REQUESTS_CA_BUNDLE by MSAL's requests.) It creates,
lists, gets and deletes a flow, and exits non-zero, naming the step, if any answer is not what
Graph would give.
"""

import argparse
import asyncio
import sys
import uuid

from azure.identity.aio import ClientSecretCredential
from msgraph_beta import GraphServiceClient
from msgraph_beta.generated.models.identity_user_flow import IdentityUserFlow
from msgraph_beta.generated.models.user_flow_type import UserFlowType

from quickstart import check, delete_and_check


async def main(args: argparse.Namespace) -> None:
    credential = ClientSecretCredential(
        args.tenant,
        args.client_id,
        args.client_secret,
        authority=args.authority,
        disable_instance_discovery=True,
    )
    async with credential:
        client = GraphServiceClient(
            credentials=credential, scopes=["https://graph.microsoft.com/.default"]
        )
        client.request_adapter.base_url = args.authority + "/beta"
        flows = client.identity.user_flows
        name = "Stock" + uuid.uuid4().hex[:8]

        created = await flows.post(
            IdentityUserFlow(
                id=name, user_flow_type=UserFlowType.SignUpOrSignIn, user_flow_type_version=3
            )
        )
        check("create", created.id == "B2C_1_" + name, created.id)
        print(f"created {created.id} over HTTPS with a token from the emulator's token endpoint")

        listed = await flows.get()
        check("list", created.id in [flow.id for flow in listed.value], listed.value)
        fetched = await flows.by_identity_user_flow_id(created.id).get()
        check("get", fetched.user_flow_type_version == 3, fetched.user_flow_type_version)

        await delete_and_check(flows, created.id)

        token = await credential.get_token("https://graph.microsoft.com/.default")
        check("token lifetime", token.expires_on > 0, token.expires_on)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authority", default="https://127.0.0.1:8443")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    asyncio.run(main(parser.parse_args()))
