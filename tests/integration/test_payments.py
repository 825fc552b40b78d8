"""The payment state machine and the Stripe adapter against the fake Stripe, on the real database:
concurrent confirmations, refunds of points already spent, a gateway that fails."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from skillswap import ledger
from skillswap.ledger import SystemAccount, TransferKind, TransferRequest
from skillswap.models import LedgerTransfer, PaymentEvent, PaymentRefund
from skillswap.models.payments import PaymentEventOutcome
from skillswap.payments import settlement
from skillswap.payments.gateway import CheckoutRequest, GatewayError, SignalKind
from skillswap.payments.gateways import gateway_for
from skillswap.payments.stripe_gateway import StripeGateway
from tests.payments_support import SIGNUP_BONUS, Shop, stripe_shop


@pytest.fixture(scope="module")
async def shop() -> AsyncIterator[Shop]:
    async with stripe_shop() as built:
        yield built


async def _stored(shop: Shop, event: dict) -> PaymentEvent:
    """The event stored as the webhook stores it, but not processed (no outbox row)."""
    async with shop.deps.db.uow() as uow:
        row = PaymentEvent(
            gateway="stripe",
            event_id=event["id"],
            event_type=event["type"],
            body=json.dumps(event).encode(),
            headers={},
            received_at=shop.deps.clock(),
        )
        uow.session.add(row)
        await uow.session.flush()
        await uow.commit()
    return row


async def _paid_session(shop: Shop, points: int = 250, price_minor: int = 999):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(points=points, price_minor=price_minor))
    session_id = await shop.session_of(payment["id"])
    shop.stripe.pay(session_id)
    return buyer, payment, session_id


async def test_concurrent_confirmations_of_one_payment_credit_it_once(shop):
    buyer, payment, session_id = await _paid_session(shop)
    gateway = gateway_for(shop.deps, "stripe")
    events = [
        await _stored(shop, shop.stripe.session_event(kind, session_id))
        for kind in ["checkout.session.completed"] * 3
        + ["checkout.session.async_payment_succeeded"] * 3
    ]
    results = await asyncio.gather(
        *(
            settlement.apply_event(shop.deps, event, gateway.read_event(event.body))
            for event in events
        )
    )
    outcomes = sorted(applied[0].outcome for applied in results)
    assert outcomes.count(PaymentEventOutcome.CREDITED) == 1
    assert outcomes.count(PaymentEventOutcome.ALREADY_SETTLED) == 5
    async with shop.deps.db.read() as session:
        credits = await session.scalars(
            select(LedgerTransfer.idempotency_key).where(LedgerTransfer.payment_id == payment["id"])
        )
        assert list(credits) == [f"payment:{payment['id']}:credit"]
    assert await shop.balance(buyer) == SIGNUP_BONUS + 250
    await shop.assert_ledger_clean()


async def test_an_event_is_applied_once_however_often_it_is_processed(shop):
    buyer, _, session_id = await _paid_session(shop, points=100, price_minor=499)
    event = await _stored(shop, shop.stripe.session_event("checkout.session.completed", session_id))
    signals = gateway_for(shop.deps, "stripe").read_event(event.body)
    first = await settlement.apply_event(shop.deps, event, signals)
    again = await settlement.apply_event(shop.deps, event, signals)
    assert [a.outcome for a in first] == [PaymentEventOutcome.CREDITED] and again == []
    assert await shop.balance(buyer) == SIGNUP_BONUS + 100


async def test_a_refund_of_points_already_spent_takes_back_only_what_is_left(shop):
    buyer, payment, session_id = await _paid_session(shop, points=250, price_minor=1000)
    await shop.send(shop.stripe.session_event("checkout.session.completed", session_id))
    now = shop.deps.clock()
    async with shop.deps.db.read() as session:
        wallet = await ledger.find_wallet(session, buyer.id)
    assert wallet is not None
    # The buyer spends 300 of their 350 points.
    await ledger.run_transfer(
        shop.deps.db,
        TransferRequest(
            key=f"test:spend:{payment['id']}",
            kind=TransferKind.ADJUSTMENT,
            debit_account_id=wallet,
            credit_account_id=SystemAccount.PLATFORM_FEES,
            amount=300,
        ),
        now=now,
    )
    refund = shop.stripe.refund(shop.stripe.charge_of(session_id), 1000)
    await shop.send(shop.stripe.refund_event("refund.updated", refund))
    refunded = await shop.wait_for_status(payment["id"], "refunded")
    assert refunded.refunded_minor == 1000
    assert await shop.balance(buyer) == 0
    async with shop.deps.db.read() as session:
        [row] = await session.scalars(
            select(PaymentRefund).where(PaymentRefund.payment_id == payment["id"])
        )
    assert (row.gateway_refund_id, row.points_reversed, row.points_unrecovered) == (
        refund["id"],
        50,
        200,
    )
    await shop.assert_ledger_clean()


async def test_a_refund_of_an_unknown_payment_is_recorded_on_the_last_attempt(shop):
    refund = {
        "id": "re_test_elsewhere",
        "object": "refund",
        "amount": 500,
        "currency": "usd",
        "payment_intent": "pi_test_elsewhere",
        "status": "succeeded",
        "metadata": {},
    }
    event = await _stored(shop, shop.stripe.refund_event("refund.updated", refund))
    signals = gateway_for(shop.deps, "stripe").read_event(event.body)
    with pytest.raises(settlement.PaymentNotSettledYet):
        await settlement.apply_event(shop.deps, event, signals)
    [applied] = await settlement.apply_event(shop.deps, event, signals, wait_for_payment=False)
    assert applied.outcome == PaymentEventOutcome.UNKNOWN_PAYMENT


async def test_the_adapter_reads_a_sessions_state_and_refunds_through_the_api(shop):
    _, payment, session_id = await _paid_session(shop, points=100, price_minor=800)
    gateway = StripeGateway(shop.deps.settings, shop.deps.http)
    status = await gateway.fetch_status(session_id)
    assert (status.kind, status.payment_id, status.amount_minor, status.currency) == (
        SignalKind.PAID,
        payment["id"],
        800,
        "USD",
    )
    intent = shop.stripe.sessions[session_id]["payment_intent"]
    refund = await gateway.refund(intent, 300, key=f"payment:{payment['id']}:refund:1")
    again = await gateway.refund(intent, 300, key=f"payment:{payment['id']}:refund:1")
    assert refund == again and refund.amount_minor == 300
    assert shop.stripe.charge_of(session_id)["amount_refunded"] == 300


async def test_the_same_payment_never_opens_two_checkout_sessions(shop):
    gateway = StripeGateway(shop.deps.settings, shop.deps.http)
    request = CheckoutRequest(
        payment_id=999_001,
        amount_minor=499,
        currency="USD",
        points=100,
        description="Starter: 100 SkillSwap points",
        buyer_email="buyer@example.com",
        success_url="https://app.example/?outcome=success",
        cancel_url="https://app.example/?outcome=cancel",
    )
    first, second = await gateway.create_checkout(request), await gateway.create_checkout(request)
    assert first == second


async def test_a_refused_api_key_fails_the_payment_and_answers_503():
    async with stripe_shop(stripe_secret_key="sk_test_wrong") as shop:
        buyer = await shop.user()
        response = await shop.api.post(
            "/api/points/purchase/",
            token=buyer.access,
            json={"package_id": await shop.package(), "gateway": "stripe"},
        )
        assert response.status_code == 503 and response.json()["code"] == "gateway_unavailable"
        history = (await shop.api.get("/api/payments/history/", token=buyer.access)).json()
        [payment] = history["results"]
        assert payment["status"] == "failed" and payment["redirect_url"] is None
        gateway = StripeGateway(shop.deps.settings, shop.deps.http)
        with pytest.raises(GatewayError) as refused:
            await gateway.fetch_status("cs_test_any")
        assert refused.value.retryable is False
