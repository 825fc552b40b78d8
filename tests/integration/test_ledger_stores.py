"""The ledger's driver-level paths write exactly what the step-by-step SQLAlchemy store writes.

On PostgreSQL a one-leg transfer is one statement (`AsyncpgStore.transfer_at_once`, also run
in autocommit by `run_transfer`) and a hold placement is one statement (`hold_at_once`);
`SqlAlchemyStore` runs the same decisions one statement at a time. Each case below runs every
way on its own fresh wallets with the same balances, and the rows each way leaves must match.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from skillswap import ledger
from skillswap.ledger import InsufficientFunds, TransferKind, TransferRequest
from skillswap.ledger.holds import place_hold_in
from skillswap.ledger.stores import AsyncpgStore, LedgerStore, SqlAlchemyStore
from skillswap.ledger.transfers import transfer_in
from skillswap.models import LedgerAccount, LedgerEntry, LedgerHold, LedgerTransfer
from tests.factories import unique_name

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 28, 9, 30, 15, 123456, tzinfo=UTC)
WAYS = ("one statement", "in steps", "one statement in autocommit")


async def wallet_pair(deps, make_user) -> tuple[int, int]:
    """Two fresh wallets holding the signup bonus (100 points) each."""
    ids = []
    for _ in range(2):
        user = await make_user()
        async with deps.db.read() as session:
            ids.append(await ledger.find_wallet(session, user.id))
    return ids[0], ids[1]


def store_of(way: str, uow: Any, conn: Any) -> LedgerStore:
    return AsyncpgStore(uow.driver) if way == "one statement" else SqlAlchemyStore(conn)


async def transfer(deps, way: str, request: TransferRequest) -> object:
    """The transfer's outcome (its result, or the refusal), committed either way."""
    if way == "one statement in autocommit":
        try:
            return await ledger.run_transfer(deps.db, request, now=NOW)
        except InsufficientFunds as refused:
            return ("refused", refused.shortfall, refused.replayed)
    async with deps.db.uow() as uow:
        store = store_of(way, uow, await uow.session.connection())
        try:
            outcome: object = await transfer_in(store, request, now=NOW)
        except InsufficientFunds as refused:
            outcome = ("refused", refused.shortfall, refused.replayed)
        await uow.commit()
    return outcome


async def written(deps, key: str, debit: int, credit: int) -> dict[str, Any]:
    """What a transfer left, with its accounts named by role and its own ids left out."""
    role = {debit: "debit", credit: "credit"}
    async with deps.db.read() as session:
        row = await session.scalar(
            select(LedgerTransfer).where(LedgerTransfer.idempotency_key == key)
        )
        assert row is not None
        entries = (
            await session.execute(
                select(
                    LedgerEntry.account_id,
                    LedgerEntry.amount,
                    LedgerEntry.balance_after,
                    LedgerEntry.created_at,
                )
                .where(LedgerEntry.transfer_id == row.id)
                .order_by(LedgerEntry.id)
            )
        ).all()
        accounts = (
            await session.execute(
                select(LedgerAccount.id, LedgerAccount.balance, LedgerAccount.held).where(
                    LedgerAccount.id.in_([debit, credit])
                )
            )
        ).all()
    return {
        "transfer": (
            row.kind,
            row.status,
            role[row.debit_account_id],
            role[row.credit_account_id],
            row.amount,
            row.order_id,
            row.payment_id,
            row.hold_id,
            row.failure_code,
            row.shortfall,
            row.created_at,
        ),
        "entries": [(role[a], amount, after, at) for a, amount, after, at in entries],
        "accounts": sorted((role[a], balance, held) for a, balance, held in accounts),
    }


def adjustment(key: str, debit: int, credit: int, amount: int) -> TransferRequest:
    return TransferRequest(
        key=key,
        kind=TransferKind.ADJUSTMENT,
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        payment_id=7,
    )


async def test_a_transfer_writes_the_same_rows_every_way(deps, make_user):
    seen = {}
    for way in WAYS:
        debit, credit = await wallet_pair(deps, make_user)
        key = unique_name("same")
        outcome = await transfer(deps, way, adjustment(key, debit, credit, 30))
        replay = await transfer(deps, way, adjustment(key, debit, credit, 30))
        assert replay == type(outcome)(transfer_id=outcome.transfer_id, replayed=True)
        seen[way] = await written(deps, key, debit, credit)
    assert seen["one statement"] == {
        "transfer": ("adjustment", "posted", "debit", "credit", 30, None, 7, None, None, None, NOW),
        "entries": [("debit", -30, 70, NOW), ("credit", 30, 130, NOW)],
        "accounts": [("credit", 130, 0), ("debit", 70, 0)],
    }
    assert seen["in steps"] == seen["one statement"]
    assert seen["one statement in autocommit"] == seen["one statement"]


async def test_a_refused_transfer_is_recorded_the_same_every_way(deps, make_user):
    seen = {}
    for way in WAYS:
        debit, credit = await wallet_pair(deps, make_user)
        key = unique_name("short")
        assert await transfer(deps, way, adjustment(key, debit, credit, 130)) == (
            "refused",
            30,
            False,
        )
        assert await transfer(deps, way, adjustment(key, debit, credit, 130)) == (
            "refused",
            30,
            True,
        )
        seen[way] = await written(deps, key, debit, credit)
    assert seen["one statement"] == {
        "transfer": (
            "adjustment",
            "rejected",
            "debit",
            "credit",
            130,
            None,
            7,
            None,
            "insufficient_funds",
            30,
            NOW,
        ),
        "entries": [],
        "accounts": [("credit", 100, 0), ("debit", 100, 0)],
    }
    assert seen["in steps"] == seen["one statement"]
    assert seen["one statement in autocommit"] == seen["one statement"]


async def hold(deps, way: str, key: str, wallet: int, amount: int) -> object:
    async with deps.db.uow() as uow:
        store = store_of(way, uow, await uow.session.connection())
        try:
            outcome: object = await place_hold_in(
                store, key=key, account_id=wallet, amount=amount, now=NOW
            )
        except InsufficientFunds as refused:
            outcome = ("refused", refused.shortfall, refused.replayed)
        await uow.commit()
    return outcome


async def hold_written(deps, key: str, wallet: int) -> tuple[Any, ...]:
    async with deps.db.read() as session:
        row = await session.scalar(select(LedgerHold).where(LedgerHold.idempotency_key == key))
        account = await session.get(LedgerAccount, wallet)
    assert row is not None and account is not None
    return (
        row.amount,
        row.status,
        row.posted_amount,
        row.shortfall,
        row.created_at,
        row.resolved_at,
        account.balance,
        account.held,
    )


@pytest.mark.parametrize("amount", [40, 130], ids=["placed", "refused"])
async def test_a_hold_is_placed_or_refused_the_same_both_ways(deps, make_user, amount):
    seen = {}
    for way in WAYS[:2]:
        wallet, _other = await wallet_pair(deps, make_user)
        key = unique_name("hold")
        first = await hold(deps, way, key, wallet, amount)
        again = await hold(deps, way, key, wallet, amount)
        if amount == 40:
            assert (first.status, first.replayed) == ("pending", False)
            assert (again.hold_id, again.status, again.replayed) == (first.hold_id, "pending", True)
        else:
            assert (first, again) == (("refused", 30, False), ("refused", 30, True))
        seen[way] = await hold_written(deps, key, wallet)
    expected = (
        (40, "pending", None, None, NOW, None, 100, 40)
        if amount == 40
        else (130, "rejected", None, 30, NOW, NOW, 100, 0)
    )
    assert seen["one statement"] == expected
    assert seen["in steps"] == expected
