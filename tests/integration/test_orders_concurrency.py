"""Concurrency on PostgreSQL: no interleaving of simultaneous requests overdraws or double-settles."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from skillswap.models import LedgerHold, Order
from skillswap.orders.deadlines import complete_overdue_deliveries
from skillswap.points.services import audit_ledger
from tests.factories import balance, insert_skill, unique_name

pytestmark = pytest.mark.postgres
ORDERS = "/api/points/orders/"


async def test_fifty_simultaneous_orders_against_a_balance_for_ten(api, deps, make_user):
    buyer, seller = await make_user(), await make_user()
    skill_id = await insert_skill(deps, owner_id=seller.id, price=10)
    responses = await asyncio.gather(
        *(api.post(ORDERS, token=buyer.access, json={"skill_id": skill_id}) for _ in range(50))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 10 + [402] * 40
    refusals = [r.json() for r in responses if r.status_code == 402]
    assert all(r["code"] == "insufficient_points" and r["missing"] == 10 for r in refusals)
    assert await balance(deps, buyer.id) == (100, 100)
    async with deps.db.read() as session:
        orders = await session.scalar(
            select(func.count()).select_from(Order).where(Order.buyer_id == buyer.id)
        )
    assert orders == 10
    report = await audit_ledger(deps.db)
    assert report.ok, report.violations


async def test_simultaneous_accept_and_cancel_exactly_one_wins(api, deps, make_user):
    buyer, seller = await make_user(), await make_user()
    skill_id = await insert_skill(deps, owner_id=seller.id, price=10)
    winners = []
    for _ in range(8):
        order_id = (await api.post(ORDERS, token=buyer.access, json={"skill_id": skill_id})).json()[
            "id"
        ]
        accept, cancel = await asyncio.gather(
            api.post(f"{ORDERS}{order_id}/accept/", token=seller.access, json={}),
            api.post(f"{ORDERS}{order_id}/cancel/", token=buyer.access, json={}),
        )
        assert sorted((accept.status_code, cancel.status_code)) == [200, 409]
        loser = cancel if accept.status_code == 200 else accept
        assert loser.json()["code"] == "invalid_transition"
        final = (await api.get(f"{ORDERS}{order_id}/", token=buyer.access)).json()
        expected = "accepted" if accept.status_code == 200 else "cancelled"
        assert final["status"] == expected
        assert [s["to_status"] for s in final["history"]] == ["pending", expected]
        winners.append(expected)
        if expected == "accepted":
            await api.post(f"{ORDERS}{order_id}/cancel/", token=seller.access, json={})
    assert await balance(deps, buyer.id) == (100, 0)
    assert (await audit_ledger(deps.db)).ok


async def test_buyer_completing_at_the_deadline_races_the_clock_and_is_paid_once(own_app):
    # An app of its own: the sweep can finish only these five orders.
    api, deps = own_app.api, own_app.deps
    buyer, seller = await own_app.user(), await own_app.user()
    skill_id = await insert_skill(deps, owner_id=seller.id, price=10)
    order_ids = []
    for _ in range(5):
        order_id = (await api.post(ORDERS, token=buyer.access, json={"skill_id": skill_id})).json()[
            "id"
        ]
        await api.post(f"{ORDERS}{order_id}/accept/", token=seller.access, json={})
        await api.post(f"{ORDERS}{order_id}/deliver/", token=seller.access, json={})
        order_ids.append(order_id)
    due = deps.clock() + timedelta(seconds=deps.settings.order_auto_complete_seconds + 1)
    results = await asyncio.gather(
        complete_overdue_deliveries(deps, now=due),
        *(
            api.post(f"{ORDERS}{order_id}/complete/", token=buyer.access, json={})
            for order_id in order_ids
        ),
    )
    by_buyer = sum(1 for r in results[1:] if r.status_code == 200)
    refused = [r.json()["code"] for r in results[1:] if r.status_code != 200]
    # Each order is completed exactly once: by its buyer or by the sweep, never both.
    assert by_buyer + results[0] == len(order_ids)
    assert len(refused) == results[0]
    assert set(refused) <= {"invalid_transition"}
    assert await balance(deps, seller.id) == (150, 0)
    assert await balance(deps, buyer.id) == (50, 0)
    assert (await audit_ledger(deps.db)).ok


async def test_two_administrators_resolving_one_dispute_settle_it_once(api, deps, make_user):
    buyer, seller = await make_user(), await make_user()
    first_admin, second_admin = await make_user(admin=True), await make_user(admin=True)
    skill_id = await insert_skill(deps, owner_id=seller.id, price=30)
    order_id = (await api.post(ORDERS, token=buyer.access, json={"skill_id": skill_id})).json()[
        "id"
    ]
    await api.post(f"{ORDERS}{order_id}/accept/", token=seller.access, json={})
    await api.post(f"{ORDERS}{order_id}/dispute/", token=buyer.access, json={})
    refund, release = await asyncio.gather(
        api.post(
            f"{ORDERS}{order_id}/resolve/", token=first_admin.access, json={"resolution": "refund"}
        ),
        api.post(
            f"{ORDERS}{order_id}/resolve/",
            token=second_admin.access,
            json={"resolution": "release"},
        ),
    )
    assert sorted((refund.status_code, release.status_code)) == [200, 409]
    if refund.status_code == 200:
        assert await balance(deps, buyer.id) == (100, 0)
        assert await balance(deps, seller.id) == (100, 0)
    else:
        assert await balance(deps, buyer.id) == (70, 0)
        assert await balance(deps, seller.id) == (130, 0)
    assert (await audit_ledger(deps.db)).ok


async def test_one_idempotency_key_sent_twenty_times_at_once_places_one_order(api, deps, make_user):
    buyer, seller = await make_user(), await make_user()
    skill_id = await insert_skill(deps, owner_id=seller.id, price=10)
    headers = {"Idempotency-Key": unique_name("burst")}
    responses = await asyncio.gather(
        *(
            api.post(ORDERS, token=buyer.access, json={"skill_id": skill_id}, headers=headers)
            for _ in range(20)
        )
    )
    assert [r.status_code for r in responses] == [201] * 20
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 19
    async with deps.db.read() as session:
        orders = await session.scalar(
            select(func.count()).select_from(Order).where(Order.buyer_id == buyer.id)
        )
        holds = await session.scalar(
            select(func.count())
            .select_from(LedgerHold)
            .where(LedgerHold.idempotency_key.like(f"order:{buyer.id}:%"))
        )
    assert (orders, holds) == (1, 1)
    assert await balance(deps, buyer.id) == (100, 10)
    assert (await audit_ledger(deps.db)).ok


async def test_transfers_both_ways_between_the_same_wallets_at_once_never_deadlock(deps, make_user):
    """Accounts are locked in id order (FOR NO KEY UPDATE, compatible with the foreign-key
    locks the transfer's own rows take), so crossing transfers queue instead of deadlocking."""
    from skillswap import ledger
    from skillswap.ledger import TransferKind, TransferRequest

    users = [await make_user() for _ in range(3)]
    async with deps.db.read() as session:
        wallets = [await ledger.find_wallet(session, u.id) for u in users]
    moves = [(a, b) for a in wallets for b in wallets if a != b] * 8

    async def move(debit: int, credit: int) -> None:
        await ledger.run_transfer(
            deps.db,
            TransferRequest(unique_name("x"), TransferKind.ADJUSTMENT, debit, credit, 1),
            now=deps.clock(),
        )

    await asyncio.gather(*(move(a, b) for a, b in moves))
    # Every wallet paid and received the same number of single points.
    assert [await balance(deps, u.id) for u in users] == [(100, 0)] * 3
    assert (await audit_ledger(deps.db)).ok
