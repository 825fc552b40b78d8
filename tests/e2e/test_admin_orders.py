"""Administrators and orders over real HTTP: every order, filtered and searched, and a disputed
order's case (its history with who acted, both parties, its chat, read-only) shown to
administrators and refused to everyone else."""

from __future__ import annotations

from typing import Any

from skillswap.deps import Deps
from tests.conftest import Api
from tests.factories import TestUser, place_order


async def _act(api: Api, who: TestUser, order_id: int, action: str, **body: Any) -> None:
    response = await api.post(
        f"/api/points/orders/{order_id}/{action}/", token=who.access, json=body
    )
    assert response.status_code == 200, response.text


async def _say(api: Api, who: TestUser, room_id: int, body: str) -> None:
    response = await api.post(
        f"/api/chat/rooms/{room_id}/send/", token=who.access, json={"body": body}
    )
    assert response.status_code in (200, 201), response.text


async def _disputed(api: Api, deps: Deps, buyer: TestUser, seller: TestUser) -> dict[str, Any]:
    order = await place_order(api, deps, buyer, seller)
    await _act(api, seller, order["id"], "accept")
    await _say(api, buyer, order["room_id"], "Hello, when will it be ready?")
    await _act(api, seller, order["id"], "deliver", note="Here it is")
    await _say(api, seller, order["room_id"], "Delivered, have a look.")
    await _say(api, buyer, order["room_id"], "This is not what I asked for.")
    await _act(api, buyer, order["id"], "dispute", note="Not as described")
    return order


async def test_an_administrator_reads_a_disputed_orders_history_and_chat(
    api: Api, make_user, deps: Deps
):
    admin = await make_user(admin=True)
    buyer = await make_user(display_name="Bea Buyer")
    seller = await make_user()
    order = await _disputed(api, deps, buyer, seller)
    response = await api.get(f"/api/admin/orders/{order['id']}/", token=admin.access)
    assert response.status_code == 200, response.text
    case = response.json()
    assert (case["order"]["id"], case["order"]["status"]) == (order["id"], "disputed")
    assert case["order"]["roles"] == ["admin"] and "resolve" in case["order"]["allowed_actions"]
    assert (case["buyer"]["id"], case["buyer"]["email"]) == (buyer.id, buyer.email)
    assert case["seller"]["username"] == seller.username
    assert [
        (s["action"], s["to_status"], s["actor_id"], s["actor_name"]) for s in case["history"]
    ] == [
        ("place", "pending", buyer.id, "Bea Buyer"),
        ("accept", "accepted", seller.id, seller.username),
        ("deliver", "delivered", seller.id, seller.username),
        ("dispute", "disputed", buyer.id, "Bea Buyer"),
    ]
    assert case["history"][3]["note"] == "Not as described"
    assert [(m["sender"], m["sender_name"], m["body"]) for m in case["messages"]] == [
        (buyer.id, "Bea Buyer", "Hello, when will it be ready?"),
        (seller.id, seller.username, "Delivered, have a look."),
        (buyer.id, "Bea Buyer", "This is not what I asked for."),
    ]
    assert case["has_more"] is False
    last_two = await api.get(f"/api/admin/orders/{order['id']}/?limit=2", token=admin.access)
    page = last_two.json()
    assert [m["body"] for m in page["messages"]] == [
        "Delivered, have a look.",
        "This is not what I asked for.",
    ]
    assert page["has_more"] is True
    older = await api.get(
        f"/api/admin/orders/{order['id']}/?limit=2&before={page['messages'][0]['seq']}",
        token=admin.access,
    )
    assert [m["body"] for m in older.json()["messages"]] == ["Hello, when will it be ready?"]
    assert older.json()["has_more"] is False


async def test_the_case_is_refused_to_everyone_but_administrators(api: Api, make_user, deps: Deps):
    buyer, seller, stranger = await make_user(), await make_user(), await make_user()
    order = await _disputed(api, deps, buyer, seller)
    for who in (buyer, seller, stranger):
        for path in (f"/api/admin/orders/{order['id']}/?limit=0", "/api/admin/orders/?x=1"):
            refused = await api.get(path, token=who.access)
            assert refused.status_code == 403, refused.text
            assert refused.json()["code"] == "admin_only"
    assert (await api.get(f"/api/admin/orders/{order['id']}/")).status_code == 401
    admin = await make_user(admin=True)
    missing = await api.get("/api/admin/orders/987654321/", token=admin.access)
    assert missing.status_code == 404 and missing.json()["code"] == "order_not_found"
    bad = await api.get(f"/api/admin/orders/{order['id']}/?limit=0", token=admin.access)
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"limit"}


async def test_every_order_is_listed_by_status_party_and_search(api: Api, make_user, deps: Deps):
    admin, buyer, seller = await make_user(admin=True), await make_user(), await make_user()
    disputed = await _disputed(api, deps, buyer, seller)
    pending = await place_order(api, deps, buyer, seller)

    async def ids(query: str) -> list[int]:
        response = await api.get(f"/api/admin/orders/?{query}", token=admin.access)
        assert response.status_code == 200, response.text
        return [o["id"] for o in response.json()["results"]]

    assert await ids(f"buyer_id={buyer.id}") == [pending["id"], disputed["id"]]
    assert await ids(f"seller_id={seller.id}&status=disputed") == [disputed["id"]]
    assert await ids(f"buyer_id={buyer.id}&status=completed") == []
    assert await ids(f"search={seller.username.upper()}") == [pending["id"], disputed["id"]]
    assert await ids(f"search={buyer.email}&status=pending") == [pending["id"]]
    # An id is searched for as itself (and as a part of names, which hold digits too).
    assert pending["id"] in await ids(f"search={pending['id']}&buyer_id={buyer.id}")
    assert disputed["id"] in await ids("status=disputed&page_size=100")
    bad = await api.get("/api/admin/orders/?status=lost&buyer_id=0", token=admin.access)
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"status", "buyer_id"}
