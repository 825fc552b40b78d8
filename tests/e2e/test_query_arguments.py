"""Every endpoint declares the query arguments it takes: any other is a 400 naming it, on lists
and detail reads alike, for every method, before the endpoint does anything."""

from __future__ import annotations

import re

import pytest

PARAMETER = re.compile(r"\{([^}]+)\}")
# Google adds arguments of its own to the redirect (scope, authuser, prompt, hd): its callback
# alone ignores what it does not read.
# Where a provider sends the browser back with arguments of its own (Google's, PayPal's PayerID,
# Paymob's ~35 transaction fields), unknown ones are ignored rather than refused.
TAKES_ANY_ARGUMENT = {
    "/api/auth/oauth/google/callback/",
    "/api/payments/paypal/return/",
    "/api/payments/paymob/return/",
}


async def _operations(api) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    schema = (await api.get("/api/schema/")).json()
    operations = []
    for path, item in schema["paths"].items():
        for method in ("get", "post", "put", "patch", "delete"):
            if method in item and path not in TAKES_ANY_ARGUMENT:
                filled = PARAMETER.sub(lambda m: "accept" if m.group(1) == "action" else "1", path)
                operations.append((method, filled))
    return operations


async def test_every_operation_refuses_an_unknown_query_argument(api, make_user):  # type: ignore[no-untyped-def]
    admin = await make_user(admin=True)
    operations = await _operations(api)
    assert len(operations) > 40  # the whole API, not a few endpoints
    answers = {}
    for method, path in operations:
        # A DELETE or GET with a JSON body is unusual but harmless: the query is checked first.
        response = await api.request(method, f"{path}?bogus=1", token=admin.access, json={})
        answers[(method, path)] = (response.status_code, response.json().get("errors"))
    refused = {op: answer for op, answer in answers.items() if answer[0] != 400}
    assert refused == {}
    assert {str(errors) for _, errors in answers.values()} == {"{'bogus': ['Unknown field.']}"}


@pytest.mark.parametrize(
    "path",
    [
        "/api/skills/{skill}/",
        "/api/points/orders/{order}/",
        "/api/auth/profile/",
        "/api/points/balance/",
    ],
)
async def test_a_detail_read_refuses_an_unknown_argument_and_answers_without_it(  # type: ignore[no-untyped-def]
    api, make_user, make_skill, path
):
    buyer = await make_user()
    skill = await make_skill(await make_user())
    order = await api.post(
        "/api/points/orders/", json={"skill_id": skill["id"]}, token=buyer.access
    )
    assert order.status_code == 201, order.text
    target = path.format(skill=skill["id"], order=order.json()["id"])
    refused = await api.get(f"{target}?fields=id", token=buyer.access)
    assert refused.status_code == 400
    assert refused.json()["code"] == "validation_error"
    assert refused.json()["errors"] == {"fields": ["Unknown field."]}
    assert (await api.get(target, token=buyer.access)).status_code == 200


async def test_a_declared_list_argument_still_works_beside_the_check(api, make_user):  # type: ignore[no-untyped-def]
    user = await make_user()
    response = await api.get("/api/points/transactions/?page=1&page_size=5", token=user.access)
    assert response.status_code == 200
    # The signup bonus is the one movement of a new wallet.
    assert [row["amount"] for row in response.json()["results"]] == [100]
