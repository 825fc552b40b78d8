"""Administrators and payments over real HTTP, against the local Stripe: every payment listed,
refunds made at Stripe and the points taken back once, refunds of points already spent refused
until confirmed (the rest then a loss on `payment_losses`). The ledger audit is clean after each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from skillswap import ledger
from skillswap.ledger import SystemAccount, TransferKind, TransferRequest
from skillswap.models import LedgerAccount, LedgerTransfer
from skillswap.models.payments import PaymentEventOutcome
from skillswap.payments.gateways import gateway_for
from tests.factories import TestUser
from tests.payments_support import SIGNUP_BONUS, Shop, stripe_shop


@pytest.fixture(scope="module")
async def shop() -> AsyncIterator[Shop]:
    async with stripe_shop() as built:
        yield built


@pytest.fixture
async def clean_ledger_after(shop: Shop) -> AsyncIterator[None]:
    yield
    await shop.assert_ledger_clean()


pytestmark = pytest.mark.usefixtures("clean_ledger_after")


async def _paid(
    shop: Shop, *, points: int, price_minor: int
) -> tuple[TestUser, dict[str, Any], str]:
    """A buyer whose payment Stripe confirmed and the worker credited."""
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(points=points, price_minor=price_minor))
    session_id = await shop.session_of(payment["id"])
    shop.stripe.pay(session_id)
    await shop.send(shop.stripe.session_event("checkout.session.completed", session_id))
    assert (await shop.payment(payment["id"])).status == "succeeded"
    return buyer, payment, session_id


async def _refund(shop: Shop, admin: TestUser, payment_id: int, **body: Any) -> Any:
    return await shop.api.post(
        f"/api/admin/payments/{payment_id}/refund/",
        token=admin.access,
        json={"reason": "the buyer asked", **body},
    )


async def _spend(shop: Shop, buyer: TestUser, points: int) -> None:
    """The buyer spends `points` (paid to the platform, as an order's fee would be)."""
    async with shop.deps.db.read() as session:
        wallet = await ledger.find_wallet(session, buyer.id)
    assert wallet is not None
    await ledger.run_transfer(
        shop.deps.db,
        TransferRequest(
            key=f"test:spend:{buyer.id}:{points}",
            kind=TransferKind.ADJUSTMENT,
            debit_account_id=wallet,
            credit_account_id=SystemAccount.PLATFORM_FEES,
            amount=points,
        ),
        now=shop.deps.clock(),
    )


async def _losses(shop: Shop) -> int:
    async with shop.deps.db.read() as session:
        balance = await session.scalar(
            select(LedgerAccount.balance).where(LedgerAccount.id == SystemAccount.PAYMENT_LOSSES)
        )
    assert balance is not None
    return balance


async def test_an_administrator_refunds_a_payment_at_stripe_and_its_points_come_back(shop):
    admin = await shop.user(admin=True)
    buyer, payment, session_id = await _paid(shop, points=250, price_minor=999)
    response = await _refund(shop, admin, payment["id"])
    assert response.status_code == 200, response.text
    done = response.json()
    refund = done["refund"]
    stripe_refund = shop.stripe.refunds[refund["gateway_refund_id"]]
    assert (stripe_refund["amount"], stripe_refund["payment_intent"]) == (
        999,
        shop.stripe.sessions[session_id]["payment_intent"],
    )
    method, path, params = shop.stripe.requests[-1]
    assert (method, path, params["amount"]) == ("POST", "/v1/refunds", "999")
    assert shop.stripe.idempotency[f"skillswap-payment-{payment['id']}-refund-0-999"]
    assert (refund["amount"], refund["amount_minor"]) == ("9.99", 999)
    assert (refund["points_reversed"], refund["points_unrecovered"]) == (250, 0)
    assert refund["reason"] == "the buyer asked"
    assert done["payment"]["status"] == "refunded"
    assert (done["payment"]["refunded_minor"], done["payment"]["user_id"]) == (999, buyer.id)
    assert await shop.balance(buyer) == SIGNUP_BONUS
    statement = (await shop.api.get("/api/points/transactions/", token=buyer.access)).json()
    line = statement["results"][0]
    assert (line["kind"], line["amount"], line["payment_id"]) == (
        "purchase_refund",
        -250,
        payment["id"],
    )
    assert line["description"] == "Points purchase refunded"


async def test_a_partial_refund_takes_back_its_share_and_the_rest_can_follow(shop):
    admin = await shop.user(admin=True)
    buyer, payment, _ = await _paid(shop, points=600, price_minor=2000)
    first = await _refund(shop, admin, payment["id"], amount_minor=500)
    assert first.status_code == 200, first.text
    assert first.json()["refund"]["points_reversed"] == 150
    assert first.json()["payment"]["status"] == "partially_refunded"
    assert await shop.balance(buyer) == SIGNUP_BONUS + 450
    too_much = await _refund(shop, admin, payment["id"], amount_minor=1501)
    assert too_much.status_code == 400
    assert too_much.json()["errors"]["amount_minor"] == [
        "At most 15.00 USD (1500) is left to refund."
    ]
    rest = await _refund(shop, admin, payment["id"])  # no amount: all that is left
    assert rest.status_code == 200, rest.text
    assert (rest.json()["refund"]["amount_minor"], rest.json()["refund"]["points_reversed"]) == (
        1500,
        450,
    )
    assert rest.json()["payment"]["status"] == "refunded"
    assert await shop.balance(buyer) == SIGNUP_BONUS
    again = await _refund(shop, admin, payment["id"])
    assert again.status_code == 409 and again.json()["code"] == "payment_not_refundable"


async def test_a_refund_of_points_already_spent_is_refused_until_confirmed_then_the_rest_is_a_loss(
    shop,
):
    admin = await shop.user(admin=True)
    buyer, payment, _ = await _paid(shop, points=250, price_minor=1000)
    await _spend(shop, buyer, 300)  # of the 350 points the buyer has: 50 are left
    refunds_before = len(shop.stripe.refunds)
    refused = await _refund(shop, admin, payment["id"])
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["code"] == "refund_points_spent"
    assert (problem["points_due"], problem["points_available"]) == (250, 50)
    assert "50 of the 250" in problem["detail"] and "take_available" in problem["detail"]
    # Refused before Stripe was asked: nothing was refunded anywhere.
    assert len(shop.stripe.refunds) == refunds_before
    assert (await shop.payment(payment["id"])).status == "succeeded"
    assert await shop.balance(buyer) == 50

    losses_before = await _losses(shop)
    confirmed = await _refund(shop, admin, payment["id"], take_available=True)
    assert confirmed.status_code == 200, confirmed.text
    refund = confirmed.json()["refund"]
    assert (refund["points_reversed"], refund["points_unrecovered"]) == (50, 200)
    assert confirmed.json()["payment"]["status"] == "refunded"
    assert len(shop.stripe.refunds) == refunds_before + 1
    assert await shop.balance(buyer) == 0
    assert await _losses(shop) == losses_before - 200
    async with shop.deps.db.read() as session:
        moves = (
            await session.execute(
                select(LedgerTransfer.kind, LedgerTransfer.debit_account_id, LedgerTransfer.amount)
                .where(LedgerTransfer.payment_id == payment["id"])
                .order_by(LedgerTransfer.id)
            )
        ).all()
    assert [(m.kind, m.amount) for m in moves] == [
        ("purchase", 250),
        ("purchase_refund", 50),
        ("payment_loss", 200),
    ]
    assert moves[2].debit_account_id == SystemAccount.PAYMENT_LOSSES


async def test_stripes_refund_webhooks_after_an_administrators_refund_change_nothing(shop):
    admin = await shop.user(admin=True)
    buyer, payment, session_id = await _paid(shop, points=600, price_minor=2000)
    made = await _refund(shop, admin, payment["id"], amount_minor=1000)
    assert made.status_code == 200, made.text
    refund_id = made.json()["refund"]["gateway_refund_id"]
    stripe_refund = shop.stripe.refunds[refund_id]
    events = [
        shop.stripe.refund_event("refund.created", stripe_refund),
        shop.stripe.charge_refunded_event(session_id),
        shop.stripe.refund_event("refund.updated", stripe_refund),
    ]
    for event in events:
        await shop.send(event)
        [stored] = await shop.events_of(event["id"])
        assert stored.outcome == PaymentEventOutcome.ALREADY_SETTLED, stored.detail
    after = await shop.payment(payment["id"])
    assert (after.status, after.refunded_minor) == ("partially_refunded", 1000)
    assert await shop.balance(buyer) == SIGNUP_BONUS + 300


async def test_a_retry_after_a_lost_answer_gets_the_same_refund_from_stripe(shop):
    admin = await shop.user(admin=True)
    buyer, payment, session_id = await _paid(shop, points=100, price_minor=500)
    # A first attempt reached Stripe, but its answer was lost before anything was recorded.
    intent = shop.stripe.sessions[session_id]["payment_intent"]
    lost = await gateway_for(shop.deps, "stripe").refund(
        intent, 500, key=f"skillswap-payment-{payment['id']}-refund-0-500"
    )
    retried = await _refund(shop, admin, payment["id"])
    assert retried.status_code == 200, retried.text
    assert retried.json()["refund"]["gateway_refund_id"] == lost.refund_id
    assert shop.stripe.charge_of(session_id)["amount_refunded"] == 500
    assert await shop.balance(buyer) == SIGNUP_BONUS


async def test_the_same_idempotency_key_replays_the_refund(shop):
    admin = await shop.user(admin=True)
    _, payment, session_id = await _paid(shop, points=100, price_minor=800)
    path = f"/api/admin/payments/{payment['id']}/refund/"
    body = {"amount_minor": 200, "reason": "a goodwill gesture"}
    headers = {"Idempotency-Key": f"refund-{payment['id']}"}
    first = await shop.api.post(path, token=admin.access, json=body, headers=headers)
    again = await shop.api.post(path, token=admin.access, json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json() == again.json()
    assert shop.stripe.charge_of(session_id)["amount_refunded"] == 200


async def test_refunds_are_for_administrators_and_for_payments_that_were_paid(shop):
    admin, stranger = await shop.user(admin=True), await shop.user()
    buyer, payment, _ = await _paid(shop, points=100, price_minor=499)
    refunds_before = len(shop.stripe.refunds)
    for who in (stranger, buyer):
        response = await _refund(shop, who, payment["id"])
        assert response.status_code == 403 and response.json()["code"] == "admin_only"
        # Refused before the body is read: a member learns nothing of its rules.
        invalid = await shop.api.post(
            f"/api/admin/payments/{payment['id']}/refund/",
            token=who.access,
            json={"amount_minor": "all"},
        )
        assert (invalid.status_code, invalid.json()["code"]) == (403, "admin_only")
    anonymous = await shop.api.post(
        f"/api/admin/payments/{payment['id']}/refund/", json={"reason": "x"}
    )
    assert anonymous.status_code == 401
    missing = await _refund(shop, admin, 987_654_321)
    assert missing.status_code == 404 and missing.json()["code"] == "payment_not_found"
    pending = await shop.buy(buyer, await shop.package())
    unpaid = await _refund(shop, admin, pending["id"])
    assert unpaid.status_code == 409, unpaid.text
    assert (unpaid.json()["code"], unpaid.json()["payment_status"]) == (
        "payment_not_refundable",
        "pending",
    )
    no_reason = await shop.api.post(
        f"/api/admin/payments/{payment['id']}/refund/", token=admin.access, json={}
    )
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["errors"]
    assert len(shop.stripe.refunds) == refunds_before
    assert await shop.balance(buyer) == SIGNUP_BONUS + 100


async def test_administrators_list_every_payment_filtered_by_status_and_gateway(shop):
    admin, buyer = await shop.user(admin=True), await shop.user()
    pending = await shop.buy(buyer, await shop.package())
    _, paid, _ = await _paid(shop, points=100, price_minor=499)
    listed = await shop.api.get("/api/admin/payments/?status=pending", token=admin.access)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    ids = [p["id"] for p in page["results"]]
    assert pending["id"] in ids and paid["id"] not in ids
    assert {p["status"] for p in page["results"]} == {"pending"}
    assert page["results"][ids.index(pending["id"])]["user_id"] == buyer.id
    succeeded = (
        await shop.api.get(
            "/api/admin/payments/?status=succeeded&gateway=stripe&page_size=1", token=admin.access
        )
    ).json()
    assert succeeded["results"][0]["id"] == paid["id"]  # newest first
    assert succeeded["count"] >= 1 and set(succeeded) == {"count", "next", "previous", "results"}
    other = (await shop.api.get("/api/admin/payments/?gateway=paymob", token=admin.access)).json()
    assert other == {"count": 0, "next": None, "previous": None, "results": []}
    everything = (await shop.api.get("/api/admin/payments/", token=admin.access)).json()
    assert everything["count"] >= 2
    bad = await shop.api.get("/api/admin/payments/?status=lost", token=admin.access)
    assert bad.status_code == 400 and "status" in bad.json()["errors"]
    refused = await shop.api.get("/api/admin/payments/", token=buyer.access)
    assert refused.status_code == 403 and refused.json()["code"] == "admin_only"
