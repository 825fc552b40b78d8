"""The points ledger through its service functions: transfers, holds, idempotency, invariants."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from skillswap import ledger
from skillswap.ledger import (
    HoldNotPending,
    IdempotencyMismatch,
    InsufficientFunds,
    InvalidAmount,
    Payout,
    SystemAccount,
    TransferKind,
    TransferRequest,
)
from skillswap.models import LedgerEntry, LedgerHold, LedgerTransfer
from skillswap.points.services import audit_ledger, signup_bonus_key
from tests.conftest import run_skillswap
from tests.factories import unique_name


async def wallet_of(deps, user) -> int:
    async with deps.db.read() as session:
        wallet = await ledger.find_wallet(session, user.id)
    assert wallet is not None
    return wallet


async def balance_of(deps, user) -> ledger.WalletBalance:
    async with deps.db.read() as session:
        return await ledger.wallet_balance(session, user.id)


def adjustment(key: str, debit: int, credit: int, amount: int) -> TransferRequest:
    return TransferRequest(
        key=key,
        kind=TransferKind.ADJUSTMENT,
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
    )


async def test_new_users_get_the_signup_bonus_once_as_a_ledger_transfer(deps, make_user):
    user = await make_user()
    assert await balance_of(deps, user) == ledger.WalletBalance(balance=100, held=0)
    async with deps.db.read() as session:
        bonus = await session.scalar(
            select(LedgerTransfer).where(
                LedgerTransfer.idempotency_key == signup_bonus_key(user.id)
            )
        )
    assert bonus is not None
    assert bonus.kind == "signup_bonus"
    assert bonus.debit_account_id == SystemAccount.SIGNUP_BONUS
    assert bonus.amount == 100
    # Asking again (a replayed event) changes nothing.
    async with deps.db.uow() as uow:
        from skillswap.points.services import grant_signup_bonus

        await grant_signup_bonus(deps, uow, user_id=user.id)
        await uow.commit()
    assert (await balance_of(deps, user)).balance == 100


async def test_transfer_moves_points_and_writes_two_entries(deps, make_user):
    alice, bob = await make_user(), await make_user()
    a, b = await wallet_of(deps, alice), await wallet_of(deps, bob)
    result = await ledger.run_transfer(
        deps.db, adjustment(unique_name("t"), a, b, 30), now=deps.clock()
    )
    assert not result.replayed
    assert (await balance_of(deps, alice)).balance == 70
    assert (await balance_of(deps, bob)).balance == 130
    async with deps.db.read() as session:
        entries = (
            await session.execute(
                select(LedgerEntry.account_id, LedgerEntry.amount, LedgerEntry.balance_after)
                .where(LedgerEntry.transfer_id == result.transfer_id)
                .order_by(LedgerEntry.id)
            )
        ).all()
    assert [tuple(e) for e in entries] == [(a, -30, 70), (b, 30, 130)]


async def test_retrying_a_transfer_key_returns_the_first_outcome(deps, make_user):
    alice, bob = await make_user(), await make_user()
    a, b = await wallet_of(deps, alice), await wallet_of(deps, bob)
    key = unique_name("retry")
    first = await ledger.run_transfer(deps.db, adjustment(key, a, b, 10), now=deps.clock())
    again = await ledger.run_transfer(deps.db, adjustment(key, a, b, 10), now=deps.clock())
    assert again.replayed and again.transfer_id == first.transfer_id
    assert (await balance_of(deps, alice)).balance == 90


async def test_a_refused_transfer_key_stays_refused_even_after_a_top_up(deps, make_user):
    alice, bob = await make_user(), await make_user()
    a, b = await wallet_of(deps, alice), await wallet_of(deps, bob)
    key = unique_name("short")
    with pytest.raises(InsufficientFunds) as refused:
        await ledger.run_transfer(deps.db, adjustment(key, a, b, 130), now=deps.clock())
    assert refused.value.shortfall == 30 and not refused.value.replayed
    await ledger.run_transfer(deps.db, adjustment(unique_name("topup"), b, a, 50), now=deps.clock())
    with pytest.raises(InsufficientFunds) as replayed:
        await ledger.run_transfer(deps.db, adjustment(key, a, b, 130), now=deps.clock())
    assert replayed.value.replayed and replayed.value.shortfall == 30
    assert (await balance_of(deps, alice)).balance == 150
    async with deps.db.read() as session:
        stored = await session.scalar(
            select(LedgerTransfer).where(LedgerTransfer.idempotency_key == key)
        )
        assert stored is not None
        assert (stored.status, stored.failure_code, stored.shortfall) == (
            "rejected",
            "insufficient_funds",
            30,
        )
        assert (
            await session.scalar(
                select(func.count())
                .select_from(LedgerEntry)
                .where(LedgerEntry.transfer_id == stored.id)
            )
            == 0
        )


async def test_a_key_used_for_another_transfer_is_refused(deps, make_user):
    alice, bob = await make_user(), await make_user()
    a, b = await wallet_of(deps, alice), await wallet_of(deps, bob)
    key = unique_name("key")
    await ledger.run_transfer(deps.db, adjustment(key, a, b, 5), now=deps.clock())
    with pytest.raises(IdempotencyMismatch):
        await ledger.run_transfer(deps.db, adjustment(key, a, b, 6), now=deps.clock())
    with pytest.raises(IdempotencyMismatch):
        await ledger.run_transfer(deps.db, adjustment(key, b, a, 5), now=deps.clock())


async def test_simultaneous_transfers_never_overdraw_and_never_deadlock(deps, make_user):
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    a, b, c = [await wallet_of(deps, user) for user in (alice, bob, carol)]
    # Thirty transfers of 10 out of alice's 100 at once, beside transfers between bob and carol
    # in both directions: exactly ten of alice's go through, the rest are recorded as refused.
    out_of_alice = [adjustment(unique_name("race"), a, (b, c)[n % 2], 10) for n in range(30)]
    crossing = [
        adjustment(unique_name("cross"), *((b, c) if n % 2 else (c, b)), 1) for n in range(20)
    ]
    outcomes = await asyncio.gather(
        *(
            ledger.run_transfer(deps.db, request, now=deps.clock())
            for request in out_of_alice + crossing
        ),
        return_exceptions=True,
    )
    alices, crossed = outcomes[:30], outcomes[30:]
    assert sum(isinstance(o, ledger.TransferResult) for o in alices) == 10
    refused = [o for o in alices if isinstance(o, InsufficientFunds)]
    assert len(refused) == 20 and all(r.shortfall == 10 and not r.replayed for r in refused)
    assert all(isinstance(o, ledger.TransferResult) for o in crossed), crossed
    assert (await balance_of(deps, alice)).balance == 0
    bob_now, carol_now = (
        (await balance_of(deps, bob)).balance,
        (await balance_of(deps, carol)).balance,
    )
    assert bob_now + carol_now == 300  # the crossing transfers cancel out
    async with deps.db.read() as session:
        statuses = (
            await session.execute(
                select(LedgerTransfer.status, func.count())
                .where(LedgerTransfer.idempotency_key.in_([r.key for r in out_of_alice]))
                .group_by(LedgerTransfer.status)
            )
        ).all()
    assert dict(statuses) == {"posted": 10, "rejected": 20}
    report = await audit_ledger(deps.db)
    assert report.ok, report.violations


async def test_one_transfer_key_sent_ten_times_at_once_moves_points_once(deps, make_user):
    alice, bob = await make_user(), await make_user()
    a, b = await wallet_of(deps, alice), await wallet_of(deps, bob)
    request = adjustment(unique_name("same"), a, b, 25)
    results = await asyncio.gather(
        *(ledger.run_transfer(deps.db, request, now=deps.clock()) for _ in range(10))
    )
    assert len({r.transfer_id for r in results}) == 1
    assert sorted(r.replayed for r in results) == [False] + [True] * 9
    assert (await balance_of(deps, alice)).balance == 75
    assert (await balance_of(deps, bob)).balance == 125


async def test_a_transfer_naming_a_missing_account_writes_nothing(deps, make_user):
    alice = await make_user()
    a = await wallet_of(deps, alice)
    key = unique_name("ghost")
    with pytest.raises(ledger.UnknownAccount):
        await ledger.run_transfer(deps.db, adjustment(key, a, 2**62, 5), now=deps.clock())
    assert (await balance_of(deps, alice)).balance == 100
    async with deps.db.read() as session:
        assert (
            await session.scalar(
                select(func.count())
                .select_from(LedgerTransfer)
                .where(LedgerTransfer.idempotency_key == key)
            )
            == 0
        )


async def test_simultaneous_holds_reserve_no_more_than_is_available(deps, make_user):
    buyer = await make_user()
    wallet = await wallet_of(deps, buyer)

    async def hold(n: int) -> ledger.HoldResult | Exception:
        async with deps.db.uow() as uow:
            try:
                placed = await ledger.place_hold(
                    uow.session,
                    key=unique_name(f"h{n}"),
                    account_id=wallet,
                    amount=30,
                    now=deps.clock(),
                )
            except InsufficientFunds as refused:
                await uow.commit()  # the refusal is the key's outcome
                return refused
            await uow.commit()
            return placed

    outcomes = await asyncio.gather(*(hold(n) for n in range(12)))
    assert sum(isinstance(o, ledger.HoldResult) for o in outcomes) == 3
    assert sorted(o.shortfall for o in outcomes if isinstance(o, InsufficientFunds)) == [20] * 9
    assert await balance_of(deps, buyer) == ledger.WalletBalance(balance=100, held=90)
    report = await audit_ledger(deps.db)
    assert report.ok, report.violations


@pytest.mark.parametrize("amount", [0, -5, 1.5, True])
async def test_only_positive_whole_amounts_move(deps, make_user, amount):
    alice, bob = await make_user(), await make_user()
    a, b = await wallet_of(deps, alice), await wallet_of(deps, bob)
    with pytest.raises(InvalidAmount):
        await ledger.run_transfer(
            deps.db, adjustment(unique_name("bad"), a, b, amount), now=deps.clock()
        )


async def test_system_accounts_may_go_negative_so_that_balances_sum_to_zero(deps, make_user):
    await make_user()
    async with deps.db.read() as session:
        bonus_source = await session.scalar(
            text("SELECT balance FROM ledger_accounts WHERE id = :id"),
            {"id": int(SystemAccount.SIGNUP_BONUS)},
        )
        total = await session.scalar(text("SELECT SUM(balance) FROM ledger_accounts"))
    assert bonus_source < 0
    assert total == 0


async def test_a_hold_reserves_points_at_once_and_is_voided_back(deps, make_user):
    alice = await make_user()
    a = await wallet_of(deps, alice)
    async with deps.db.uow() as uow:
        hold = await ledger.place_hold(
            uow.session, key=unique_name("h"), account_id=a, amount=40, now=deps.clock()
        )
        await uow.commit()
    assert await balance_of(deps, alice) == ledger.WalletBalance(balance=100, held=40)
    assert (await balance_of(deps, alice)).available == 60
    async with deps.db.uow() as uow:
        await ledger.void_hold(uow.session, hold_id=hold.hold_id, now=deps.clock())
        await uow.commit()
    assert await balance_of(deps, alice) == ledger.WalletBalance(balance=100, held=0)


async def test_holds_cannot_reserve_more_than_is_available(deps, make_user):
    alice = await make_user()
    a = await wallet_of(deps, alice)
    async with deps.db.uow() as uow:
        await ledger.place_hold(
            uow.session, key=unique_name("h"), account_id=a, amount=70, now=deps.clock()
        )
        await uow.commit()
    key = unique_name("h")
    async with deps.db.uow() as uow:
        with pytest.raises(InsufficientFunds) as refused:
            await ledger.place_hold(uow.session, key=key, account_id=a, amount=31, now=deps.clock())
        await uow.commit()  # the refusal is the key's outcome
    assert refused.value.shortfall == 1
    async with deps.db.uow() as uow:
        with pytest.raises(InsufficientFunds) as replayed:
            await ledger.place_hold(uow.session, key=key, account_id=a, amount=31, now=deps.clock())
    assert replayed.value.replayed
    assert await balance_of(deps, alice) == ledger.WalletBalance(balance=100, held=70)


async def test_posting_a_hold_pays_the_seller_and_fee_through_escrow(deps, make_user):
    buyer, seller = await make_user(), await make_user()
    a, s = await wallet_of(deps, buyer), await wallet_of(deps, seller)
    async with deps.db.uow() as uow:
        hold = await ledger.place_hold(
            uow.session, key=unique_name("h"), account_id=a, amount=50, now=deps.clock()
        )
        paid = await ledger.post_hold(
            uow.session,
            hold_id=hold.hold_id,
            payouts=[
                Payout(s, 45, TransferKind.ORDER_EARNINGS),
                Payout(SystemAccount.PLATFORM_FEES, 5, TransferKind.PLATFORM_FEE),
            ],
            order_id=None,
            now=deps.clock(),
        )
        await uow.commit()
    assert paid == 50
    assert await balance_of(deps, buyer) == ledger.WalletBalance(balance=50, held=0)
    assert await balance_of(deps, seller) == ledger.WalletBalance(balance=145, held=0)
    async with deps.db.read() as session:
        escrow = await session.scalar(
            text("SELECT balance FROM ledger_accounts WHERE id = :id"),
            {"id": int(SystemAccount.ESCROW)},
        )
    assert escrow == 0


async def test_a_partly_posted_hold_releases_the_rest(deps, make_user):
    buyer, seller = await make_user(), await make_user()
    a, s = await wallet_of(deps, buyer), await wallet_of(deps, seller)
    async with deps.db.uow() as uow:
        hold = await ledger.place_hold(
            uow.session, key=unique_name("h"), account_id=a, amount=60, now=deps.clock()
        )
        await ledger.post_hold(
            uow.session,
            hold_id=hold.hold_id,
            payouts=[Payout(s, 20, TransferKind.ORDER_EARNINGS)],
            order_id=None,
            now=deps.clock(),
        )
        await uow.commit()
    assert await balance_of(deps, buyer) == ledger.WalletBalance(balance=80, held=0)
    async with deps.db.read() as session:
        stored = await session.get(LedgerHold, hold.hold_id)
    assert stored is not None and (stored.status, stored.posted_amount) == ("posted", 20)


async def test_a_hold_is_resolved_exactly_once(deps, make_user):
    buyer, seller = await make_user(), await make_user()
    a, s = await wallet_of(deps, buyer), await wallet_of(deps, seller)
    async with deps.db.uow() as uow:
        hold = await ledger.place_hold(
            uow.session, key=unique_name("h"), account_id=a, amount=10, now=deps.clock()
        )
        await ledger.void_hold(uow.session, hold_id=hold.hold_id, now=deps.clock())
        await uow.commit()
    async with deps.db.uow() as uow:
        with pytest.raises(HoldNotPending) as again:
            await ledger.void_hold(uow.session, hold_id=hold.hold_id, now=deps.clock())
        assert again.value.status == "voided"
        with pytest.raises(HoldNotPending):
            await ledger.post_hold(
                uow.session,
                hold_id=hold.hold_id,
                payouts=[Payout(s, 10, TransferKind.ORDER_EARNINGS)],
                order_id=None,
                now=deps.clock(),
            )
    assert await balance_of(deps, buyer) == ledger.WalletBalance(balance=100, held=0)
    assert (await balance_of(deps, seller)).balance == 100


async def test_the_database_refuses_an_overdrawn_wallet_even_past_the_code(deps, make_user):
    alice = await make_user()
    a = await wallet_of(deps, alice)
    async with deps.db.uow() as uow:
        with pytest.raises(IntegrityError):
            await uow.session.execute(
                text("UPDATE ledger_accounts SET balance = balance - 101 WHERE id = :id"),
                {"id": a},
            )


async def test_the_audit_names_each_broken_invariant(deps, make_user):
    """Tamper inside a transaction that is rolled back, and audit what that connection sees."""
    alice = await make_user()
    a = await wallet_of(deps, alice)
    async with deps.db.engine.connect() as conn:
        transaction = await conn.begin()
        try:
            await conn.execute(
                text("UPDATE ledger_accounts SET balance = balance + 7 WHERE id = :id"), {"id": a}
            )
            violations = await ledger.run_checks(conn, ledger.LEDGER_INVARIANTS)
        finally:
            await transaction.rollback()
    names = {v.invariant for v in violations}
    assert {"balances_sum_to_zero", "balance_equals_entries"} <= names
    assert any(f"account {a}:" in v.detail for v in violations)


async def test_the_audit_passes_on_the_shared_test_database(deps, make_user):
    await make_user()
    report = await audit_ledger(deps.db)
    assert report.ok, report.violations
    assert "balances_sum_to_zero" in report.checked
    assert "order_holds_match_status" in report.checked


def _cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL="", LOG_LEVEL="WARNING")
    return run_skillswap(*args, env=env)


async def test_ledger_check_command_exits_non_zero_naming_the_violation():
    path = Path(tempfile.mkdtemp(prefix="ledger-check-")) / "db.sqlite3"
    url = f"sqlite:///{path}"
    assert _cli("migrate", database_url=url).returncode == 0
    healthy = _cli("ledger", "check", database_url=url)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "ledger check ok" in healthy.stdout
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE ledger_accounts SET balance = 5 WHERE id = 4")
    broken = _cli("ledger", "check", database_url=url)
    assert broken.returncode == 1
    assert "VIOLATION balances_sum_to_zero" in broken.stdout
    assert "VIOLATION balance_equals_entries" in broken.stdout
    assert "VIOLATION escrow_is_clear" not in broken.stdout


async def test_demo_users_get_their_signup_bonus_and_an_empty_shop_gets_packages(deps):
    from skillswap.accounts.demo import seed_demo
    from skillswap.models import PointsPackage

    async with deps.db.read() as session:
        before = await session.scalar(select(func.count()).select_from(PointsPackage))
    report = await seed_demo(deps, skills=2, users=2)
    assert report["wallets"] == 2
    # Packages are added only to a shop with none (other tests may have made some).
    assert report["points packages"] == (3 if before == 0 else 0)
    async with deps.db.read() as session:
        balances = (
            (
                await session.execute(
                    text(
                        "SELECT a.balance FROM ledger_accounts a JOIN users u ON u.id = a.user_id"
                        " WHERE u.username LIKE 'demo%' ORDER BY a.id DESC LIMIT 2"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert balances == [100, 100]
    assert (await audit_ledger(deps.db)).ok


@pytest.mark.postgres
async def test_a_lost_connection_fails_one_transfer_and_is_never_reused(deps, make_user):
    alice, bob = await make_user(), await make_user()
    a, b = await wallet_of(deps, alice), await wallet_of(deps, bob)
    await asyncio.gather(
        *(
            ledger.run_transfer(deps.db, adjustment(unique_name("warm"), a, b, 1), now=deps.clock())
            for _ in range(30)
        )
    )
    # The server drops every idle connection that ran a transfer (a restart, a failover).
    async with deps.db.engine.connect() as conn:
        killed = await conn.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND state = 'idle' AND query LIKE '%WITH locked AS%'"
            )
        )
    assert killed >= 1
    pool_limit = deps.settings.db_pool_size + deps.settings.db_max_overflow
    failed: list[str] = []
    for _ in range(pool_limit + killed):  # each dead connection fails one transfer, is dropped
        if len(failed) == killed:
            break
        key = unique_name("after")
        try:
            await ledger.run_transfer(deps.db, adjustment(key, a, b, 1), now=deps.clock())
        except Exception:
            failed.append(key)
    assert len(failed) == killed
    for _ in range(pool_limit + 1):  # no dead connection is left to hand out
        result = await ledger.run_transfer(
            deps.db, adjustment(unique_name("healed"), a, b, 1), now=deps.clock()
        )
        assert result.replayed is False
    async with deps.db.read() as session:  # a lost connection's transfer is not half-written
        written = await session.scalar(
            select(func.count())
            .select_from(LedgerTransfer)
            .where(LedgerTransfer.idempotency_key.in_(failed))
        )
    assert written == 0
    report = await audit_ledger(deps.db)
    assert report.ok, report.violations
