"""Reconciliation against the local Stripe: a payment whose webhook was lost is settled by
asking Stripe, once, however the webhook races it; open checkouts and recent payments are left
alone; each run is bounded; `skillswap payments reconcile` does the same by hand."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from skillswap.models import LedgerTransfer, Payment, PaymentEvent
from skillswap.models.payments import PaymentEventOutcome
from skillswap.payments import settlement
from skillswap.payments.gateways import gateway_for
from skillswap.payments.reconcile import reconcile_payments, stale_pending_payments
from skillswap.tasks.jobs import payments_reconcile, scheduled_jobs
from tests.payments_support import SIGNUP_BONUS, Shop, stripe_shop

ROOT = Path(__file__).resolve().parents[2]
WINDOW = 900  # PAYMENTS_RECONCILE_AFTER_SECONDS by default


@pytest.fixture(scope="module")
async def shop() -> AsyncIterator[Shop]:
    async with stripe_shop() as built:
        yield built


@pytest.fixture
async def clean_ledger_after(shop: Shop) -> AsyncIterator[None]:
    yield
    await shop.assert_ledger_clean()


pytestmark = pytest.mark.usefixtures("clean_ledger_after")


def _past_the_window(shop: Shop) -> datetime:
    """A moment at which every payment made so far has been pending past the window."""
    return shop.deps.clock() + timedelta(seconds=WINDOW + 1)


async def _credits(shop: Shop, payment_id: int) -> list[str]:
    async with shop.deps.db.read() as session:
        keys = await session.scalars(
            select(LedgerTransfer.idempotency_key).where(LedgerTransfer.payment_id == payment_id)
        )
        return list(keys)


async def test_a_paid_payment_whose_webhook_was_lost_is_settled_by_the_job_once(shop):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(points=250, price_minor=999))
    session_id = await shop.session_of(payment["id"])
    shop.stripe.pay(session_id)  # ... and Stripe's webhook never arrives

    await payments_reconcile(shop.deps, _past_the_window(shop))
    settled = await shop.payment(payment["id"])
    assert settled.status == "succeeded" and settled.settled_at is not None
    assert settled.gateway_payment_ref == shop.stripe.sessions[session_id]["payment_intent"]
    assert await shop.balance(buyer) == SIGNUP_BONUS + 250

    # A second run has nothing to ask about it.
    stale = await stale_pending_payments(shop.deps, now=_past_the_window(shop))
    assert payment["id"] not in [payment_id for payment_id, _, _ in stale]
    await payments_reconcile(shop.deps, _past_the_window(shop))
    # The webhook arrives after all: stored, and it changes nothing.
    event = shop.stripe.session_event("checkout.session.completed", session_id)
    await shop.send(event)
    [stored] = await shop.events_of(event["id"])
    assert stored.outcome == PaymentEventOutcome.ALREADY_SETTLED
    assert await shop.balance(buyer) == SIGNUP_BONUS + 250
    assert await _credits(shop, payment["id"]) == [f"payment:{payment['id']}:credit"]


async def test_reconciliation_racing_the_webhook_credits_once(shop):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(points=100, price_minor=499))
    session_id = await shop.session_of(payment["id"])
    shop.stripe.pay(session_id)
    event = shop.stripe.session_event("checkout.session.completed", session_id)
    async with shop.deps.db.uow() as uow:
        stored = PaymentEvent(
            gateway="stripe",
            event_id=event["id"],
            event_type=event["type"],
            body=json.dumps(event).encode(),
            headers={},
            received_at=shop.deps.clock(),
        )
        uow.session.add(stored)
        await uow.session.flush()
        await uow.commit()
    signals = gateway_for(shop.deps, "stripe").read_event(stored.body)
    webhook, _ = await asyncio.gather(
        settlement.apply_event(shop.deps, stored, signals),
        payments_reconcile(shop.deps, _past_the_window(shop)),
    )
    assert webhook[0].outcome in (PaymentEventOutcome.CREDITED, PaymentEventOutcome.ALREADY_SETTLED)
    assert (await shop.payment(payment["id"])).status == "succeeded"
    assert await _credits(shop, payment["id"]) == [f"payment:{payment['id']}:credit"]
    assert await shop.balance(buyer) == SIGNUP_BONUS + 100


async def test_open_and_recent_checkouts_are_left_pending_and_expired_ones_close(shop):
    buyer = await shop.user()
    package_id = await shop.package()
    still_open, expired = await shop.buy(buyer, package_id), await shop.buy(buyer, package_id)
    shop.stripe.expire(await shop.session_of(expired["id"]))
    long_ago = shop.deps.clock() - timedelta(seconds=2 * WINDOW)
    async with shop.deps.db.uow() as uow:  # these two were created long ago
        await uow.session.execute(
            update(Payment)
            .where(Payment.id.in_((still_open["id"], expired["id"])))
            .values(created_at=long_ago)
        )
        await uow.commit()
    recent = await shop.buy(buyer, package_id)
    recent_session = await shop.session_of(recent["id"])
    shop.stripe.pay(recent_session)  # paid a moment ago: its webhook is still on its way
    await payments_reconcile(shop.deps, shop.deps.clock())
    assert (await shop.payment(still_open["id"])).status == "pending"
    assert (await shop.payment(expired["id"])).status == "expired"
    # Paid at Stripe, but not asked about: its webhook has time to come.
    assert (await shop.payment(recent["id"])).status == "pending"
    assert await shop.balance(buyer) == SIGNUP_BONUS


async def test_a_run_asks_about_one_batch_oldest_first():
    async with stripe_shop() as shop:
        buyer = await shop.user()
        package_id = await shop.package(points=10, price_minor=100)
        payments = [await shop.buy(buyer, package_id) for _ in range(3)]
        for payment in payments:
            shop.stripe.pay(await shop.session_of(payment["id"]))
        settings = shop.deps.settings.with_overrides(payments_reconcile_batch_size=2)
        batch_of_two = dataclasses.replace(shop.deps, settings=settings)
        await payments_reconcile(batch_of_two, _past_the_window(shop))
        statuses = [(await shop.payment(p["id"])).status for p in payments]
        assert statuses == ["succeeded", "succeeded", "pending"]
        await payments_reconcile(batch_of_two, _past_the_window(shop))
        assert (await shop.payment(payments[2]["id"])).status == "succeeded"
        assert await shop.balance(buyer) == SIGNUP_BONUS + 30
        await shop.assert_ledger_clean()


async def test_checkouts_left_open_go_to_the_back_and_hold_no_newer_payment_back():
    async with stripe_shop() as shop:
        buyer = await shop.user()
        package_id = await shop.package(points=10, price_minor=100)
        abandoned = [await shop.buy(buyer, package_id) for _ in range(2)]  # never paid
        paid = await shop.buy(buyer, package_id)
        shop.stripe.pay(await shop.session_of(paid["id"]))
        settings = shop.deps.settings.with_overrides(payments_reconcile_batch_size=2)
        batch_of_two = dataclasses.replace(shop.deps, settings=settings)
        first = await reconcile_payments(batch_of_two, now=_past_the_window(shop))
        assert [r.payment_id for r in first.asked] == [p["id"] for p in abandoned]
        assert first.settled == []
        second = await reconcile_payments(batch_of_two, now=_past_the_window(shop))
        assert second.asked[0].payment_id == paid["id"]
        assert [r.payment_id for r in second.settled] == [paid["id"]]
        assert await shop.balance(buyer) == SIGNUP_BONUS + 10
        await shop.assert_ledger_clean()


def test_the_scheduler_runs_it_at_its_interval():
    from skillswap.settings import Settings

    jobs = {
        job.name: job for job in scheduled_jobs(Settings(payments_reconcile_interval_seconds=120))
    }
    assert jobs["payments_reconcile"].interval_seconds == 120
    assert jobs["payments_reconcile"].run is payments_reconcile


async def test_the_command_settles_what_stripe_says_was_paid_and_prints_it(shop):
    buyer = await shop.user()
    paid = await shop.buy(buyer, await shop.package(points=70, price_minor=300))
    shop.stripe.pay(await shop.session_of(paid["id"]))
    unpaid = await shop.buy(buyer, await shop.package(points=70, price_minor=300))
    settings = shop.deps.settings
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "REDIS_PREFIX": settings.redis_prefix,
        "SECRET_KEY": settings.secret_key,
        "LOG_LEVEL": "WARNING",
        "STRIPE_SECRET_KEY": settings.stripe_secret_key,
        "STRIPE_WEBHOOK_SECRET": settings.stripe_webhook_secret,
        "STRIPE_API_BASE": settings.stripe_api_base,
    }
    # A child process, asynchronously: it asks the local Stripe, which runs on this loop.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "skillswap",
        "payments",
        "reconcile",
        "--after",
        "0",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert f"payment {paid['id']} (stripe): succeeded" in lines
    assert f"payment {unpaid['id']} (stripe): pending" in lines
    assert lines[-1].endswith("still pending") and " settled, " in lines[-1]
    assert (await shop.payment(paid["id"])).status == "succeeded"
    assert await shop.balance(buyer) == SIGNUP_BONUS + 70
