"""Ledger adjustments, a wallet's statement and the last nightly check, over real HTTP.

An adjustment is a transfer to or from the `adjustments` account, its audit row and the
user's notification, together or not at all; an `Idempotency-Key` makes it happen once, even
racing. The ledger's invariants hold after each test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from skillswap.deps import Deps
from skillswap.ledger import SystemAccount
from skillswap.models import AuditEntry, LedgerAccount, LedgerTransfer, Notification
from skillswap.points.services import audit_ledger
from skillswap.tasks.jobs import ledger_check
from tests.conftest import Api
from tests.factories import TestUser, balance, place_order

BONUS = 100  # the signup bonus of every test user

pytestmark = pytest.mark.usefixtures("ledger_stays_clean")


@pytest.fixture
async def ledger_stays_clean(deps: Deps) -> AsyncIterator[None]:
    yield
    report = await audit_ledger(deps.db)
    assert report.ok, report.violations


async def _adjust(api: Api, admin: TestUser, *, key: str | None = None, **body: Any) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    return await api.post(
        "/api/admin/ledger/adjustments/", token=admin.access, json=body, headers=headers
    )


async def _adjustments_account(deps: Deps) -> int:
    async with deps.db.read() as session:
        found = await session.scalar(
            select(LedgerAccount.balance).where(LedgerAccount.id == SystemAccount.ADJUSTMENTS)
        )
    return int(found or 0)


async def _audit_rows(deps: Deps, user_id: int) -> list[AuditEntry]:
    async with deps.db.read() as session:
        rows = await session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "wallet.adjust", AuditEntry.target_id == user_id)
            .order_by(AuditEntry.id)
        )
        return list(rows)


async def _adjustment_transfers(deps: Deps) -> int:
    async with deps.db.read() as session:
        found = await session.scalar(
            select(func.count())
            .select_from(LedgerTransfer)
            .where(LedgerTransfer.kind == "adjustment")
        )
    return int(found or 0)


async def test_a_credit_moves_points_from_adjustments_audits_and_tells_the_user(
    api: Api, make_user, deps: Deps
):
    admin, user = await make_user(admin=True), await make_user()
    account_before = await _adjustments_account(deps)
    response = await _adjust(api, admin, user_id=user.id, amount=25, reason="Goodwill credit")
    assert response.status_code == 201, response.text
    done = response.json()
    assert response.headers["Location"].endswith(f"/api/admin/ledger/wallets/{user.id}/")
    assert {k: done[k] for k in ("user_id", "amount", "balance_before", "balance_after")} == {
        "user_id": user.id,
        "amount": 25,
        "balance_before": BONUS,
        "balance_after": BONUS + 25,
    }
    assert (done["held"], done["available"], done["actor_id"]) == (0, BONUS + 25, admin.id)
    assert await balance(deps, user.id) == (BONUS + 25, 0)
    assert await _adjustments_account(deps) == account_before - 25
    [row] = await _audit_rows(deps, user.id)
    assert (row.actor_id, row.target_type, row.reason) == (admin.id, "wallet", "Goodwill credit")
    assert (row.before, row.after) == (
        {"balance": BONUS},
        {"balance": BONUS + 25, "amount": 25, "transfer_id": done["transfer_id"]},
    )
    assert row.request_id == response.headers["X-Request-ID"]
    told = await api.get("/api/notifications/", token=user.access)
    [note] = [n for n in told.json()["results"] if n["kind"] == "points_adjusted"]
    assert note["text"] == "An administrator added 25 points to your wallet: Goodwill credit"
    assert note["payload"] == {
        "amount": 25,
        "reason": "Goodwill credit",
        "transfer_id": done["transfer_id"],
        "balance": BONUS + 25,
    }
    statement = await api.get("/api/points/transactions/", token=user.access)
    newest = statement.json()["results"][0]
    assert (newest["amount"], newest["kind"]) == (25, "adjustment")


async def test_a_debit_takes_points_back_to_adjustments(api: Api, make_user, deps: Deps):
    admin, user = await make_user(admin=True), await make_user(locale="ar")
    account_before = await _adjustments_account(deps)
    response = await _adjust(api, admin, user_id=user.id, amount=-1, reason="Duplicate bonus")
    assert response.status_code == 201, response.text
    assert response.json()["balance_after"] == BONUS - 1
    assert await balance(deps, user.id) == (BONUS - 1, 0)
    assert await _adjustments_account(deps) == account_before + 1
    told = await api.get("/api/notifications/", token=user.access)
    [note] = [n for n in told.json()["results"] if n["kind"] == "points_adjusted"]
    assert note["payload"]["amount"] == -1
    assert "Duplicate bonus" in note["text"] and "An administrator" not in note["text"]


async def test_a_debit_past_the_available_points_is_refused_with_nothing_written(
    api: Api, make_user, deps: Deps
):
    admin, buyer, seller = await make_user(admin=True), await make_user(), await make_user()
    await place_order(api, deps, buyer, seller)  # 1 point held in escrow
    assert await balance(deps, buyer.id) == (BONUS, 1)
    transfers_before = await _adjustment_transfers(deps)
    refused = await _adjust(api, admin, user_id=buyer.id, amount=-BONUS, reason="Too much")
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert (problem["code"], problem["points_available"], problem["shortfall"]) == (
        "insufficient_points",
        BONUS - 1,
        1,
    )
    assert await balance(deps, buyer.id) == (BONUS, 1)
    assert await _adjustment_transfers(deps) == transfers_before
    assert await _audit_rows(deps, buyer.id) == []
    async with deps.db.read() as session:
        notes = await session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.user_id == buyer.id, Notification.kind == "points_adjusted")
        )
    assert notes == 0
    exact = await _adjust(api, admin, user_id=buyer.id, amount=1 - BONUS, reason="All of it")
    assert exact.status_code == 201, exact.text
    assert await balance(deps, buyer.id) == (1, 1)


async def test_a_replay_answers_the_first_adjustment_and_moves_nothing(
    api: Api, make_user, deps: Deps
):
    admin, user = await make_user(admin=True), await make_user()
    key = f"adjust-{user.id}"
    first = await _adjust(api, admin, key=key, user_id=user.id, amount=10, reason="Once")
    again = await _adjust(api, admin, key=key, user_id=user.id, amount=10, reason="Once")
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert await balance(deps, user.id) == (BONUS + 10, 0)
    other = await _adjust(api, admin, key=key, user_id=user.id, amount=11, reason="Once")
    assert other.status_code == 409, other.text
    assert await balance(deps, user.id) == (BONUS + 10, 0)
    assert len(await _audit_rows(deps, user.id)) == 1


@pytest.mark.postgres
async def test_racing_requests_with_one_key_move_the_points_once(api: Api, make_user, deps: Deps):
    admin, user = await make_user(admin=True), await make_user()
    key = f"race-{user.id}"
    answers = await asyncio.gather(
        *(_adjust(api, admin, key=key, user_id=user.id, amount=7, reason="Raced") for _ in range(8))
    )
    done = [a for a in answers if a.status_code == 201]
    assert done, [a.text for a in answers]
    assert {a.json()["transfer_id"] for a in done} == {done[0].json()["transfer_id"]}
    # A request that found the key still claimed by the first is told to retry (409).
    assert all(a.status_code in (201, 409) for a in answers), [a.text for a in answers]
    assert await balance(deps, user.id) == (BONUS + 7, 0)
    assert len(await _audit_rows(deps, user.id)) == 1


async def test_the_ledger_key_alone_keeps_a_raced_adjustment_once(make_user, deps: Deps):
    """Past the HTTP layer (the dashboard calls the service): the same key moves points once."""
    from skillswap.admin.adjustments import adjust_wallet
    from skillswap.models import User

    admin_user, user = await make_user(admin=True), await make_user()
    async with deps.db.read() as session:
        admin = await session.get(User, admin_user.id)
    assert admin is not None

    async def once() -> Any:
        return await adjust_wallet(
            deps, actor=admin, user_id=user.id, amount=3, reason="Key", idempotency_key="k1"
        )

    results = await asyncio.gather(*(once() for _ in range(4)))
    assert {r.transfer_id for r in results} == {results[0].transfer_id}
    assert sorted(r.replayed for r in results) == [False, True, True, True]
    assert await balance(deps, user.id) == (BONUS + 3, 0)
    assert len(await _audit_rows(deps, user.id)) == 1


async def test_bad_adjustments_are_refused_and_non_administrators_first(api: Api, make_user):
    admin, user = await make_user(admin=True), await make_user()
    for body in ({}, {"user_id": "x", "amount": 0}, {"user_id": user.id, "amount": 5}):
        refused = await _adjust(api, user, **body)
        assert refused.status_code == 403 and refused.json()["code"] == "admin_only"
    assert (await api.post("/api/admin/ledger/adjustments/", json={})).status_code == 401
    cases = [
        ({"user_id": user.id, "amount": 0, "reason": "x"}, {"amount"}),
        ({"user_id": user.id, "amount": 10**7, "reason": "x"}, {"amount"}),
        ({"user_id": user.id, "amount": 1.5, "reason": "x"}, {"amount"}),
        ({"user_id": user.id, "amount": 5, "reason": ""}, {"reason"}),
        ({"user_id": user.id, "amount": 5, "reason": "x" * 501}, {"reason"}),
        ({"user_id": user.id, "amount": 5}, {"reason"}),
        ({"amount": 5, "reason": "x"}, {"user_id"}),
    ]
    for body, fields in cases:
        bad = await _adjust(api, admin, **body)
        assert bad.status_code == 400, (body, bad.text)
        assert set(bad.json()["errors"]) == fields, (body, bad.json())
    missing = await _adjust(api, admin, user_id=987_654_321, amount=5, reason="x")
    assert missing.status_code == 404 and missing.json()["code"] == "user_not_found"


async def test_adjustments_are_listed_newest_first(api: Api, make_user):
    admin, user = await make_user(admin=True), await make_user()
    for amount in (5, -2):
        made = await _adjust(api, admin, user_id=user.id, amount=amount, reason=f"r{amount}")
        assert made.status_code == 201, made.text
    listed = await api.get(f"/api/admin/ledger/adjustments/?user_id={user.id}", token=admin.access)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert page["count"] == 2
    assert [
        (r["amount"], r["balance_before"], r["balance_after"], r["reason"]) for r in page["results"]
    ] == [(-2, BONUS + 5, BONUS + 3, "r-2"), (5, BONUS, BONUS + 5, "r5")]
    refused = await api.get("/api/admin/ledger/adjustments/?user_id=x", token=user.access)
    assert refused.status_code == 403


async def test_an_administrator_reads_any_wallet_statement(api: Api, make_user, deps: Deps):
    admin, buyer, seller = await make_user(admin=True), await make_user(), await make_user()
    await place_order(api, deps, buyer, seller)
    await _adjust(api, admin, user_id=buyer.id, amount=4, reason="Four")
    response = await api.get(
        f"/api/admin/ledger/wallets/{buyer.id}/?page_size=1", token=admin.access
    )
    assert response.status_code == 200, response.text
    statement = response.json()
    assert statement["user"] == {
        "id": buyer.id,
        "username": buyer.username,
        "email": buyer.email,
        "is_active": True,
    }
    assert (statement["balance"], statement["held"], statement["available"]) == (
        BONUS + 4,
        1,
        BONUS + 3,
    )
    entries = statement["entries"]
    assert entries["count"] == 2 and entries["previous"] is None
    assert entries["next"].endswith("?page=2&page_size=1")
    [newest] = entries["results"]
    assert (newest["amount"], newest["kind"], newest["balance_after"]) == (
        4,
        "adjustment",
        BONUS + 4,
    )
    assert (await api.get(entries["next"], token=admin.access)).json()["entries"]["results"][0][
        "kind"
    ] == "signup_bonus"
    for path in (f"/api/admin/ledger/wallets/{buyer.id}/", "/api/admin/ledger/check/"):
        refused = await api.get(path, token=buyer.access)
        assert refused.status_code == 403 and refused.json()["code"] == "admin_only"
    missing = await api.get("/api/admin/ledger/wallets/987654321/", token=admin.access)
    assert missing.status_code == 404 and missing.json()["code"] == "user_not_found"


async def test_the_last_nightly_check_is_kept_for_administrators(api: Api, make_user, deps: Deps):
    admin = await make_user(admin=True)
    now = deps.clock()
    await ledger_check(deps, now)
    response = await api.get("/api/admin/ledger/check/", token=admin.access)
    assert response.status_code == 200, response.text
    check = response.json()
    assert (check["checked"], check["passed"], check["problem_count"]) == (True, True, 0)
    assert check["checked_at"].startswith(now.strftime("%Y-%m-%dT%H:%M"))
    assert "balances_sum_to_zero" in check["invariants"]
    assert check["problems"] == [] and check["counts"]["ledger_accounts"] >= 1
