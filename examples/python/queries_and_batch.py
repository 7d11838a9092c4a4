"""Microsoft's Graph beta SDK for Python against the emulator: $filter, $orderby, $select,
paging with the SDK's own PageIterator, and a $batch built with the SDK's batch classes.

The stock SDK, unchanged: only the base URL and the token differ (see quickstart.py).

    .venv/bin/python examples/python/queries_and_batch.py \
        --base-url http://127.0.0.1:8080/beta --token "$(cargo run -q --release -- token --tenant contoso)"

It exits non-zero, naming the step, if any answer is not what Graph would give.
"""

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph_beta.generated.identity.user_flows.user_flows_request_builder import (
    UserFlowsRequestBuilder,
)
from msgraph_beta.generated.models.identity_user_flow import IdentityUserFlow
from msgraph_beta.generated.models.user_flow_type import UserFlowType
from msgraph_core.requests.batch_request_builder import BatchRequestBuilder
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_item import BatchRequestItem
from msgraph_core.tasks.page_iterator import PageIterator

from quickstart import check, client_for, run

Query = UserFlowsRequestBuilder.UserFlowsRequestBuilderGetQueryParameters


def flow(name: str, kind: UserFlowType, version: float) -> IdentityUserFlow:
    return IdentityUserFlow(id=name, user_flow_type=kind, user_flow_type_version=version)


async def main(base_url: str, token: str) -> None:
    client = client_for(base_url, token)
    flows = client.identity.user_flows

    # Twelve flows: SignIn1..SignIn8 (signIn, versions 1-2), Reset1..Reset4 (passwordReset, 3).
    for i in range(1, 9):
        await flows.post(flow(f"SignIn{i}", UserFlowType.SignIn, 1 + i % 2))
    for i in range(1, 5):
        await flows.post(flow(f"Reset{i}", UserFlowType.PasswordReset, 3))

    # $filter, $orderby, $select, $count.
    page = await flows.get(
        RequestConfiguration(
            query_parameters=Query(
                filter="startswith(id,'B2C_1_SignIn') and userFlowTypeVersion eq 2",
                orderby=["id desc"],
                select=["id", "userFlowType"],
                count=True,
            )
        )
    )
    ids = [f.id for f in page.value]
    check("filter and order", ids == ["B2C_1_SignIn7", "B2C_1_SignIn5", "B2C_1_SignIn3", "B2C_1_SignIn1"], ids)
    check("select", all(f.user_flow_type_version is None for f in page.value), page.value)
    check("count", page.odata_count == 4, page.odata_count)
    print(f"filtered and ordered: {', '.join(ids)}")

    # Paging with the SDK's own iterator: three flows a page, by type then id.
    first = await flows.get(
        RequestConfiguration(query_parameters=Query(orderby=["userFlowType", "id"], top=3))
    )
    walked: list[str] = []

    def collect(item: IdentityUserFlow) -> bool:
        walked.append(item.id)
        return True

    iterator = PageIterator(first, client.request_adapter)
    await iterator.iterate(collect)
    expected = [f"B2C_1_SignIn{i}" for i in range(1, 9)] + [f"B2C_1_Reset{i}" for i in range(1, 5)]
    check("page iterator", walked == expected, walked)
    print(f"walked {len(walked)} flows in pages of 3")

    # A batch built with the SDK's classes: two creates, a get that depends on the first, and a
    # create of an id that exists (its own 409; the others still succeed).
    batch = BatchRequestContent()
    create_a = BatchRequestItem(flows.to_post_request_information(flow("BatchA", UserFlowType.SignUp, 1)))
    create_b = BatchRequestItem(flows.to_post_request_information(flow("BatchB", UserFlowType.SignUp, 1)))
    get_a = BatchRequestItem(flows.by_identity_user_flow_id("B2C_1_BatchA").to_get_request_information())
    get_a.set_depends_on([create_a])
    again = BatchRequestItem(flows.to_post_request_information(flow("Reset1", UserFlowType.PasswordReset, 3)))
    for item in (create_a, create_b, get_a, again):
        batch.add_request(item.id, item)
    answers = await BatchRequestBuilder(client.request_adapter).post(batch)
    statuses = answers.get_response_status_codes()
    check(
        "batch",
        [statuses[i.id] for i in (create_a, create_b, get_a, again)] == [201, 201, 200, 409],
        statuses,
    )
    location = answers.get_response_by_id(create_a.id).headers.get("Location", "")
    check("batch location", location.endswith("/identity/userFlows/B2C_1_BatchA"), location)
    fetched = await flows.by_identity_user_flow_id("B2C_1_BatchB").get()
    check("batch create stored", fetched.user_flow_type == UserFlowType.SignUp, fetched)
    print(f"batch answered {sorted(statuses.values())}")

    # Clean up: delete everything this example created, in one more batch.
    cleanup = BatchRequestContent()
    for name in expected + ["B2C_1_BatchA", "B2C_1_BatchB"]:
        item = BatchRequestItem(flows.by_identity_user_flow_id(name).to_delete_request_information())
        cleanup.add_request(item.id, item)
    if len(cleanup.requests) > BatchRequestContent.MAX_REQUESTS:
        raise RuntimeError("too many deletes for one batch")
    deleted = await BatchRequestBuilder(client.request_adapter).post(cleanup)
    codes = set(deleted.get_response_status_codes().values())
    check("batch delete", codes == {204}, codes)
    left = await flows.get()
    check("nothing left", not left.value, [f.id for f in left.value])
    print("deleted every flow in one batch")


if __name__ == "__main__":
    run(main, __doc__)
