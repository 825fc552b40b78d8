"""Orders over real HTTP: escrow on placing, the state machine, permissions, history, replays."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import httpx
import pytest

from skillswap import events
from skillswap.points.services import audit_ledger
from tests.conftest import EVENT_LOG, Api, extra_server
from tests.factories import balance, insert_skill, skill_row, unique_name

ORDERS = "/api/points/orders/"

# Every event the test apps emit, in order (the harness lists its log after chat's and
# notifications' subscribers).
seen_events = EVENT_LOG.events


@contextlib.asynccontextmanager
async def node_with(settings, **overrides):
    """An Api on another app of this deployment whose settings differ by `overrides`."""
    configured = settings.with_overrides(**overrides)
    async with (
        extra_server(configured, event_handlers=EVENT_LOG.handlers()) as (url, _deps),
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield Api(client)


@pytest.fixture
def parties(make_user, deps):
    """A buyer, a seller with a 10-point skill, a stranger and an administrator."""

    async def build(price: int = 10):
        buyer, seller, stranger = await make_user(), await make_user(), await make_user()
        admin = await make_user(admin=True)
        skill_id = await insert_skill(deps, owner_id=seller.id, price=price)
        return buyer, seller, stranger, admin, skill_id

    return build


async def place(api, buyer, skill_id, **extra):
    return await api.post(ORDERS, token=buyer.access, json={"skill_id": skill_id, **extra})


async def act(api, user, order_id, action, **body):
    return await api.post(f"{ORDERS}{order_id}/{action}/", token=user.access, json=body)


async def test_placing_an_order_holds_its_price_and_starts_pending(api, deps, parties):
    buyer, seller, _, _, skill_id = await parties(price=30)
    response = await place(api, buyer, skill_id, requirements="Weekday evenings")
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "pending"
    assert order["price_points"] == 30
    assert order["requirements"] == "Weekday evenings"
    assert order["buyer"]["id"] == buyer.id and order["seller"]["id"] == seller.id
    assert "email" not in order["buyer"] and "email" not in order["seller"]
    # The placement answers with the same order (and the same seller) that reading it shows.
    read_back = (await api.get(f"{ORDERS}{order['id']}/", token=buyer.access)).json()
    assert order["seller"] == read_back["seller"] and order["buyer"] == read_back["buyer"]
    assert order["skill"] == read_back["skill"] and order["history"] == read_back["history"]
    assert order["roles"] == ["buyer"]
    assert order["allowed_actions"] == ["cancel"]
    assert order["deadline_at"] is not None
    assert [step["action"] for step in order["history"]] == ["place"]
    wallet = (await api.get("/api/points/balance/", token=buyer.access)).json()
    assert wallet == {"balance": 100, "held": 30, "available": 70}
    placed = [e for e in seen_events if isinstance(e, events.OrderPlaced)][-1]
    assert placed == events.OrderPlaced(order["id"], buyer.id, seller.id, skill_id)


async def test_the_full_lifecycle_pays_the_seller_and_records_every_step(api, deps, parties):
    buyer, seller, _, _, skill_id = await parties(price=25)
    order_id = (await place(api, buyer, skill_id)).json()["id"]
    accepted = await act(api, seller, order_id, "accept", note="See you Monday")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    assert accepted.json()["allowed_actions"] == ["deliver", "cancel"]
    delivered = await api.put(
        f"{ORDERS}{order_id}/", token=seller.access, json={"action": "deliver"}
    )
    assert delivered.json()["status"] == "delivered"
    completed = await act(api, buyer, order_id, "complete")
    body = completed.json()
    assert body["status"] == "completed"
    assert body["completed_at"] is not None and body["deadline_at"] is None
    assert body["settlement"] == {"seller_points": 25, "fee_points": 0, "refunded_points": 0}
    history = body["history"]
    assert [(s["action"], s["from_status"], s["to_status"]) for s in history] == [
        ("place", None, "pending"),
        ("accept", "pending", "accepted"),
        ("deliver", "accepted", "delivered"),
        ("complete", "delivered", "completed"),
    ]
    assert history[1]["actor_id"] == seller.id and history[1]["note"] == "See you Monday"
    assert await balance(deps, buyer.id) == (75, 0)
    assert await balance(deps, seller.id) == (125, 0)
    assert (await skill_row(deps, skill_id)).orders_completed == 1
    transitions = [e for e in seen_events if isinstance(e, events.OrderTransitioned)]
    assert [e.action for e in transitions if e.order_id == order_id] == [
        "accept",
        "deliver",
        "complete",
    ]
    statement = (await api.get("/api/points/transactions/", token=seller.access)).json()
    newest = statement["results"][0]
    assert (newest["amount"], newest["kind"], newest["order_id"]) == (
        25,
        "order_earnings",
        order_id,
    )
    assert newest["balance_after"] == 125
    assert newest["description"] == f"Earnings from order #{order_id}"
    assert (await audit_ledger(deps.db)).ok


async def test_refunds_on_reject_and_on_either_sides_cancel(api, deps, parties):
    buyer, seller, _, _, skill_id = await parties(price=20)
    rejected = (await place(api, buyer, skill_id)).json()["id"]
    assert (await act(api, seller, rejected, "reject")).json()["status"] == "rejected"
    by_buyer = (await place(api, buyer, skill_id)).json()["id"]
    assert (await act(api, buyer, by_buyer, "cancel")).json()["status"] == "cancelled"
    by_seller = (await place(api, buyer, skill_id)).json()["id"]
    await act(api, seller, by_seller, "accept")
    cancelled = await act(api, seller, by_seller, "cancel")
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["settlement"] == {
        "seller_points": 0,
        "fee_points": 0,
        "refunded_points": 20,
    }
    assert await balance(deps, buyer.id) == (100, 0)
    assert await balance(deps, seller.id) == (100, 0)


async def test_requesting_changes_sends_a_delivery_back(api, deps, parties):
    buyer, seller, _, _, skill_id = await parties()
    order_id = (await place(api, buyer, skill_id)).json()["id"]
    await act(api, seller, order_id, "accept")
    await act(api, seller, order_id, "deliver")
    back = await act(api, buyer, order_id, "request_changes", note="Add exercises")
    assert back.json()["status"] == "accepted"
    await act(api, seller, order_id, "deliver")
    assert (await act(api, buyer, order_id, "complete")).json()["status"] == "completed"


async def test_changes_can_be_requested_a_limited_number_of_times(api, deps, parties):
    buyer, seller, _, _, skill_id = await parties()
    order_id = (await place(api, buyer, skill_id)).json()["id"]
    await act(api, seller, order_id, "accept")
    limit = deps.settings.order_max_change_requests
    assert limit == 3  # the default
    for _ in range(limit):
        await act(api, seller, order_id, "deliver")
        back = await act(api, buyer, order_id, "request_changes")
        assert (back.status_code, back.json()["status"]) == (200, "accepted")
    delivered = await act(api, seller, order_id, "deliver")
    assert delivered.json()["status"] == "delivered"
    detail = (await api.get(f"{ORDERS}{order_id}/", token=buyer.access)).json()
    assert detail["allowed_actions"] == ["complete", "dispute"]
    refused = await act(api, buyer, order_id, "request_changes")
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["code"] == "change_requests_exhausted"
    assert (problem["status"], problem["order_status"]) == (409, "delivered")
    assert problem["max_change_requests"] == 3
    assert problem["allowed_actions"] == ["complete", "dispute"]
    assert problem["detail"] == (
        "Changes were requested 3 times already: complete the order or open a dispute."
    )
    # Still delivered, and the buyer can still complete it.
    done = await act(api, buyer, order_id, "complete")
    assert done.json()["status"] == "completed"
    steps = [step["action"] for step in done.json()["history"]]
    assert steps.count("request_changes") == 3 and steps.count("deliver") == 4
    transitions = [
        e.action
        for e in seen_events
        if isinstance(e, events.OrderTransitioned) and e.order_id == order_id
    ]
    assert transitions.count("request_changes") == 3


async def test_after_the_last_change_request_the_buyer_may_dispute(
    settings, deps, parties, make_user
):
    _, seller, _, _, skill_id = await parties()
    buyer = await make_user(locale="ar")
    async with node_with(settings, order_max_change_requests=1) as api:
        order_id = (await place(api, buyer, skill_id)).json()["id"]
        await act(api, seller, order_id, "accept")
        await act(api, seller, order_id, "deliver")
        assert (await act(api, buyer, order_id, "request_changes")).status_code == 200
        await act(api, seller, order_id, "deliver")
        again = await act(api, buyer, order_id, "request_changes")
        assert (again.status_code, again.json()["code"]) == (409, "change_requests_exhausted")
        assert again.json()["detail"] == (
            "طُلبت التعديلات مرة واحدة من قبل: أكمل الطلب أو افتح نزاعًا."
        )
        disputed = await act(api, buyer, order_id, "dispute", note="Still not what I asked")
    assert disputed.json()["status"] == "disputed"
    assert await balance(deps, buyer.id) == (100, 10)  # still in escrow for an administrator


async def parties_on(app, price: int = 10):
    """`parties` on an app of its own (a sweep there touches only this test's orders)."""
    buyer, seller, stranger = await app.user(), await app.user(), await app.user()
    admin = await app.user(admin=True)
    skill_id = await insert_skill(app.deps, owner_id=seller.id, price=price)
    return buyer, seller, stranger, admin, skill_id


async def test_a_sent_back_delivery_whose_deadline_passes_is_disputed_not_refunded(own_app):
    from skillswap.orders.deadlines import expire_overdue_orders, run_order_deadlines

    api, deps = own_app.api, own_app.deps
    buyer, seller, _, admin, skill_id = await parties_on(own_app, price=10)
    sent_back = (await place(api, buyer, skill_id)).json()["id"]
    await act(api, seller, sent_back, "accept")
    await act(api, seller, sent_back, "deliver")
    await act(api, buyer, sent_back, "request_changes", note="Add exercises")
    never_delivered = (await place(api, buyer, skill_id)).json()["id"]
    await act(api, seller, never_delivered, "accept")
    due = deps.clock() + timedelta(seconds=deps.settings.order_delivery_timeout_seconds + 60)
    report = await run_order_deadlines(deps, now=due)
    assert (report.disputed, report.expired) == (1, 1)
    disputed = (await api.get(f"{ORDERS}{sent_back}/", token=buyer.access)).json()
    assert (disputed["status"], disputed["deadline_at"], disputed["settlement"]) == (
        "disputed",
        None,
        None,
    )
    last = disputed["history"][-1]
    assert (last["action"], last["from_status"], last["to_status"], last["actor_id"]) == (
        "dispute",
        "accepted",
        "disputed",
        None,
    )
    assert disputed["allowed_actions"] == []  # the buyer waits for an administrator
    assert (
        events.OrderTransitioned(
            order_id=sent_back,
            buyer_id=buyer.id,
            seller_id=seller.id,
            actor_id=None,
            action="dispute",
            from_status="accepted",
            to_status="disputed",
            note="",
        )
        in seen_events
    )
    # The order that was never delivered still expires and refunds the buyer.
    expired = (await api.get(f"{ORDERS}{never_delivered}/", token=buyer.access)).json()
    assert expired["status"] == "expired"
    assert await balance(deps, buyer.id) == (100, 10)  # the disputed price stays in escrow
    await expire_overdue_orders(deps, now=due + timedelta(days=30))  # a later sweep...
    assert (await api.get(f"{ORDERS}{sent_back}/", token=buyer.access)).json()["history"] == (
        disputed["history"]
    )  # a dispute has no deadline: later sweeps leave it alone
    resolved = await act(api, admin, sent_back, "resolve", resolution="release")
    assert resolved.json()["status"] == "resolved"
    assert await balance(deps, seller.id) == (110, 0)
    assert (await audit_ledger(deps.db)).ok


async def test_an_administrator_cannot_settle_a_dispute_over_their_own_order(api, deps, make_user):
    admin_buyer, admin_seller = await make_user(admin=True), await make_user(admin=True)
    other_admin = await make_user(admin=True)
    skill_id = await insert_skill(deps, owner_id=admin_seller.id, price=10)
    order_id = (await place(api, admin_buyer, skill_id)).json()["id"]
    await act(api, admin_seller, order_id, "accept")
    disputed = await act(api, admin_buyer, order_id, "dispute")
    assert (disputed.json()["roles"], disputed.json()["allowed_actions"]) == (["buyer"], [])
    for participant in (admin_buyer, admin_seller):
        refused = await act(api, participant, order_id, "resolve", resolution="refund")
        assert (refused.status_code, refused.json()["code"]) == (403, "action_not_permitted")
    as_seller = (await api.get(f"{ORDERS}{order_id}/", token=admin_seller.access)).json()
    assert (as_seller["roles"], as_seller["allowed_actions"]) == (["seller"], [])
    listed = (await api.get(ORDERS + "?role=all&status=disputed", token=admin_buyer.access)).json()
    mine = next(o for o in listed["results"] if o["id"] == order_id)
    assert (mine["roles"], mine["allowed_actions"]) == (["buyer"], [])
    # An administrator with no part in the order decides it.
    as_other = (await api.get(f"{ORDERS}{order_id}/", token=other_admin.access)).json()
    assert (as_other["roles"], as_other["allowed_actions"]) == (["admin"], ["resolve"])
    resolved = await act(api, other_admin, order_id, "resolve", resolution="refund")
    assert resolved.json()["status"] == "resolved"
    assert await balance(deps, admin_buyer.id) == (100, 0)


async def test_ordering_is_refused_for_own_paused_unknown_and_unaffordable_skills(
    api, deps, parties, make_user
):
    buyer, seller, _, _, skill_id = await parties(price=10)
    own = await place(api, seller, skill_id)
    assert (own.status_code, own.json()["code"]) == (403, "own_skill")
    paused = await insert_skill(deps, owner_id=seller.id, status="paused")
    refused = await place(api, buyer, paused)
    assert (refused.status_code, refused.json()["code"]) == (409, "skill_paused")
    missing = await place(api, buyer, 10**9)
    assert (missing.status_code, missing.json()["code"]) == (404, "skill_not_found")
    dear = await insert_skill(deps, owner_id=seller.id, price=130)
    short = await place(api, buyer, dear)
    assert short.status_code == 402
    assert short.headers["content-type"].startswith("application/problem+json")
    problem = short.json()
    assert problem["code"] == "insufficient_points"
    assert problem["missing"] == 30
    assert problem["detail"] == "You need 30 more points to order this skill."
    arabic_speaker = await make_user(locale="ar")
    arabic = (await place(api, arabic_speaker, dear)).json()
    assert arabic["missing"] == 30
    assert arabic["detail"] == "تحتاج إلى 30 نقطة إضافية لطلب هذه المهارة."
    assert await balance(deps, buyer.id) == (100, 0)


async def test_each_action_is_refused_to_the_wrong_user(api, deps, parties):
    buyer, seller, stranger, admin, skill_id = await parties()
    order_id = (await place(api, buyer, skill_id)).json()["id"]
    # Buyers never accept, reject or deliver; sellers never complete, dispute or request changes.
    for user, action in [
        (buyer, "accept"),
        (buyer, "reject"),
        (buyer, "deliver"),
        (seller, "complete"),
        (seller, "request_changes"),
        (seller, "dispute"),
        (buyer, "resolve"),
        (seller, "resolve"),
        (admin, "accept"),
        (admin, "cancel"),
    ]:
        response = await act(api, user, order_id, action)
        assert response.status_code == 403, (action, response.text)
        assert response.json()["code"] == "action_not_permitted"
    # Someone with no part in the order cannot tell it exists.
    for action in ("accept", "cancel", "complete", "resolve"):
        response = await act(api, stranger, order_id, action)
        assert (response.status_code, response.json()["code"]) == (404, "order_not_found")
    assert (await api.get(f"{ORDERS}{order_id}/", token=stranger.access)).status_code == 404
    assert (await api.get(f"{ORDERS}{order_id}/", token=admin.access)).status_code == 200
    detail = (await api.get(f"{ORDERS}{order_id}/", token=buyer.access)).json()
    assert detail["status"] == "pending" and len(detail["history"]) == 1


async def test_a_transition_from_the_wrong_status_names_the_status_and_what_is_allowed(
    api, deps, parties
):
    buyer, seller, _, _, skill_id = await parties()
    order_id = (await place(api, buyer, skill_id)).json()["id"]
    early = await act(api, buyer, order_id, "complete")
    assert early.status_code == 409
    problem = early.json()
    assert problem["code"] == "invalid_transition"
    assert (problem["status"], problem["order_status"]) == (409, "pending")
    assert problem["allowed_actions"] == ["cancel"]
    assert "pending" in problem["detail"]
    await act(api, seller, order_id, "accept")
    again = await act(api, seller, order_id, "accept")
    assert again.status_code == 409
    assert (again.json()["order_status"], again.json()["allowed_actions"]) == (
        "accepted",
        ["deliver", "cancel"],
    )
    unknown = await api.put(f"{ORDERS}{order_id}/", token=seller.access, json={"action": "fly"})
    assert (unknown.status_code, unknown.json()["code"]) == (400, "validation_error")


async def test_admins_resolve_disputes_by_refund_release_or_split_exactly_once(api, deps, parties):
    buyer, seller, _, admin, skill_id = await parties(price=30)
    ids = []
    for _ in range(3):
        order_id = (await place(api, buyer, skill_id)).json()["id"]
        await act(api, seller, order_id, "accept")
        disputed = await act(api, buyer, order_id, "dispute", note="No show")
        assert disputed.json()["status"] == "disputed"
        assert disputed.json()["deadline_at"] is None
        ids.append(order_id)
    refund, release, split = ids
    seller_tries = await act(api, seller, refund, "resolve", resolution="release")
    assert seller_tries.status_code == 403
    missing = await act(api, admin, refund, "resolve")
    assert (missing.status_code, list(missing.json()["errors"])) == (400, ["resolution"])
    done = await act(api, admin, refund, "resolve", resolution="refund")
    assert (done.json()["status"], done.json()["resolution"]) == ("resolved", "refund")
    twice = await act(api, admin, refund, "resolve", resolution="release")
    assert twice.status_code == 409
    assert (twice.json()["order_status"], twice.json()["allowed_actions"]) == ("resolved", [])
    await api.put(
        f"{ORDERS}{release}/",
        token=admin.access,
        json={"action": "resolve", "resolution": "release"},
    )
    for bad in (0, 30, 31):
        refused = await act(api, admin, split, "resolve", resolution="split", buyer_points=bad)
        assert refused.status_code == 400, bad
    halves = await api.put(
        f"{ORDERS}{split}/",
        token=admin.access,
        json={"action": "resolve", "resolution": "split", "buyer_points": 15},
    )
    assert halves.json()["settlement"] == {
        "seller_points": 15,
        "fee_points": 0,
        "refunded_points": 15,
    }
    # Refund: nothing moved; release: 30 to the seller; split: 15 to the seller.
    assert await balance(deps, buyer.id) == (100 - 30 - 15, 0)
    assert await balance(deps, seller.id) == (100 + 30 + 15, 0)
    assert (await audit_ledger(deps.db)).ok


async def test_a_platform_fee_goes_to_the_fee_account(settings, deps, parties):
    buyer, seller, _, admin, skill_id = await parties(price=50)
    async with node_with(settings, platform_fee_percent=10) as api:
        order_id = (await place(api, buyer, skill_id)).json()["id"]
        await act(api, seller, order_id, "accept")
        await act(api, seller, order_id, "deliver")
        done = (await act(api, buyer, order_id, "complete")).json()
        split_id = (await place(api, buyer, skill_id)).json()["id"]
        await act(api, seller, split_id, "accept")
        await act(api, buyer, split_id, "dispute")
        split = (
            await act(api, admin, split_id, "resolve", resolution="split", buyer_points=21)
        ).json()
    assert done["settlement"] == {"seller_points": 45, "fee_points": 5, "refunded_points": 0}
    assert split["settlement"] == {"seller_points": 27, "fee_points": 2, "refunded_points": 21}
    assert await balance(deps, seller.id) == (100 + 45 + 27, 0)
    assert await balance(deps, buyer.id) == (100 - 50 - 29, 0)
    assert (await audit_ledger(deps.db)).ok


async def test_the_same_idempotency_key_places_one_order_and_replays_refusals(api, deps, parties):
    buyer, seller, _, _, skill_id = await parties(price=10)
    key = {"Idempotency-Key": unique_name("order")}
    first = await api.post(ORDERS, token=buyer.access, json={"skill_id": skill_id}, headers=key)
    again = await api.post(ORDERS, token=buyer.access, json={"skill_id": skill_id}, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert first.json()["id"] == again.json()["id"]
    assert await balance(deps, buyer.id) == (100, 10)
    other = await api.post(
        ORDERS, token=buyer.access, json={"skill_id": skill_id, "requirements": "x"}, headers=key
    )
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_key_reused")
    dear = await insert_skill(deps, owner_id=seller.id, price=95)
    short_key = {"Idempotency-Key": unique_name("short")}
    refused = await api.post(ORDERS, token=buyer.access, json={"skill_id": dear}, headers=short_key)
    assert (refused.status_code, refused.json()["missing"]) == (402, 5)
    await act(api, buyer, first.json()["id"], "cancel")  # now 100 are available
    replayed = await api.post(
        ORDERS, token=buyer.access, json={"skill_id": dear}, headers=short_key
    )
    assert replayed.status_code == 402 and replayed.json()["missing"] == 5
    fresh = await api.post(ORDERS, token=buyer.access, json={"skill_id": dear})
    assert fresh.status_code == 201


async def test_a_repeated_action_with_its_key_replays_the_first_answer(api, deps, parties):
    buyer, seller, _, _, skill_id = await parties()
    order_id = (await place(api, buyer, skill_id)).json()["id"]
    key = {"Idempotency-Key": unique_name("accept")}
    url = f"{ORDERS}{order_id}/accept/"
    first = await api.post(url, token=seller.access, json={}, headers=key)
    second = await api.post(url, token=seller.access, json={}, headers=key)
    assert first.status_code == second.status_code == 200
    assert second.headers.get("Idempotent-Replayed") == "true"


async def test_service_level_retries_with_one_key_return_the_first_order(deps, make_user):
    from skillswap.models import User
    from skillswap.orders import services as orders

    buyer, seller = await make_user(), await make_user()
    skill_id = await insert_skill(deps, owner_id=seller.id, price=10)
    async with deps.db.read() as session:
        actor = await session.get(User, buyer.id)
    key = unique_name("svc")
    first = await orders.place_order(deps, actor=actor, skill_id=skill_id, idempotency_key=key)
    second = await orders.place_order(deps, actor=actor, skill_id=skill_id, idempotency_key=key)
    assert first.order.id == second.order.id
    assert await balance(deps, buyer.id) == (100, 10)
    other_skill = await insert_skill(deps, owner_id=seller.id, price=10)
    with pytest.raises(Exception) as reused:
        await orders.place_order(deps, actor=actor, skill_id=other_skill, idempotency_key=key)
    assert getattr(reused.value, "code", "") == "idempotency_key_reused"


async def test_orders_list_filters_by_role_and_status_and_paginates(api, deps, parties, make_user):
    buyer, seller, _, admin, skill_id = await parties(price=5)
    first = (await place(api, buyer, skill_id)).json()["id"]
    second = (await place(api, buyer, skill_id)).json()["id"]
    await act(api, seller, second, "accept")
    own_skill = await insert_skill(deps, owner_id=buyer.id, price=5)
    sold = (await place(api, seller, own_skill)).json()["id"]

    mine = (await api.get(ORDERS, token=buyer.access)).json()
    assert [o["id"] for o in mine["results"]] == [sold, second, first]
    as_buyer = (await api.get(ORDERS + "?role=buyer", token=buyer.access)).json()
    assert [o["id"] for o in as_buyer["results"]] == [second, first]
    as_seller = (await api.get(ORDERS + "?role=seller", token=buyer.access)).json()
    assert [o["id"] for o in as_seller["results"]] == [sold]
    assert as_seller["results"][0]["roles"] == ["seller"]
    pending = (await api.get(ORDERS + "?status=pending", token=buyer.access)).json()
    assert {o["id"] for o in pending["results"]} == {first, sold}
    both = (await api.get(ORDERS + "?status=pending,accepted", token=buyer.access)).json()
    assert both["count"] == 3
    paged = (await api.get(ORDERS + "?page_size=2", token=buyer.access)).json()
    assert (paged["count"], len(paged["results"])) == (3, 2)
    assert paged["next"] is not None and "history" not in paged["results"][0]
    bad = await api.get(ORDERS + "?status=lost", token=buyer.access)
    assert bad.status_code == 400
    assert (await api.get(ORDERS + "?role=all", token=buyer.access)).status_code == 403
    everything = (await api.get(ORDERS + "?role=all&status=accepted", token=admin.access)).json()
    assert second in {o["id"] for o in everything["results"]}


async def test_deadlines_expire_pending_and_accepted_orders_and_complete_deliveries(own_app):
    from skillswap.orders.deadlines import (
        complete_overdue_deliveries,
        expire_overdue_orders,
        run_order_deadlines,
    )

    api, deps = own_app.api, own_app.deps
    buyer, seller, _, _, skill_id = await parties_on(own_app, price=10)
    first_event = len(seen_events)
    pending = (await place(api, buyer, skill_id)).json()["id"]
    accepted = (await place(api, buyer, skill_id)).json()["id"]
    await act(api, seller, accepted, "accept")
    delivered = (await place(api, buyer, skill_id)).json()["id"]
    await act(api, seller, delivered, "accept")
    await act(api, seller, delivered, "deliver")
    now = deps.clock()
    settings = deps.settings
    # Not yet due: nothing moves.
    assert await expire_overdue_orders(deps, now=now + timedelta(hours=1)) == 0
    assert await complete_overdue_deliveries(deps, now=now + timedelta(hours=1)) == 0
    later = now + timedelta(seconds=settings.order_accept_timeout_seconds + 60)
    report = await run_order_deadlines(deps, now=later)
    assert (report.expired, report.completed) == (1, 1)
    expired = (await api.get(f"{ORDERS}{pending}/", token=buyer.access)).json()
    assert expired["status"] == "expired"
    assert expired["history"][-1]["actor_id"] is None
    assert expired["history"][-1]["action"] == "expire"
    done = (await api.get(f"{ORDERS}{delivered}/", token=buyer.access)).json()
    assert done["status"] == "completed" and done["history"][-1]["actor_id"] is None
    clock_events = [
        e
        for e in seen_events[first_event:]
        if isinstance(e, events.OrderTransitioned) and e.actor_id is None
    ]
    assert {(e.order_id, e.action) for e in clock_events} == {
        (pending, "expire"),
        (delivered, "complete"),
    }
    # The accepted order has longer to deliver.
    much_later = now + timedelta(seconds=settings.order_delivery_timeout_seconds + 60)
    assert await expire_overdue_orders(deps, now=much_later) == 1
    assert (await api.get(f"{ORDERS}{accepted}/", token=buyer.access)).json()["status"] == "expired"
    assert await balance(deps, buyer.id) == (90, 0)
    assert await balance(deps, seller.id) == (110, 0)
    assert await expire_overdue_orders(deps, now=much_later) == 0  # nothing left, nothing twice


async def test_deleting_a_skill_with_open_orders_pauses_it(api, deps, parties):
    buyer, seller, _, _, skill_id = await parties()
    order_id = (await place(api, buyer, skill_id)).json()["id"]
    response = await api.delete(f"/api/skills/{skill_id}/", token=seller.access)
    assert response.status_code == 200, response.text
    assert (await skill_row(deps, skill_id)).status == "paused"
    await act(api, seller, order_id, "reject")
    gone = await api.delete(f"/api/skills/{skill_id}/", token=seller.access)
    assert gone.status_code == 204, gone.text
    assert (await skill_row(deps, skill_id)).status == "deleted"


async def test_order_endpoints_need_a_signed_in_user(api, parties):
    _, _, _, _, skill_id = await parties()
    assert (await api.post(ORDERS, json={"skill_id": skill_id})).status_code == 401
    assert (await api.get(ORDERS)).status_code == 401
    assert (await api.get("/api/points/balance/")).status_code == 401
