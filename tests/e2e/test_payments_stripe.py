"""Buying points with Stripe over real HTTP, against a local Stripe that speaks its protocol.

Every test ends with the ledger audit clean: a payment's points are credited exactly once, only
for a confirmation that matches it, and a refund takes back no more than the wallet holds.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from skillswap.models.payments import PaymentEventOutcome
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


async def test_a_purchase_opens_a_stripe_checkout_and_its_completion_credits_the_points(shop):
    buyer = await shop.user()
    package_id = await shop.package(points=250, price_minor=999, currency="USD")
    payment = await shop.buy(buyer, package_id)
    assert payment["status"] == "pending"
    assert payment["gateway"] == "stripe"
    assert (payment["package_id"], payment["points"]) == (package_id, 250)
    assert (payment["amount"], payment["amount_minor"], payment["currency"]) == ("9.99", 999, "USD")
    session_id = await shop.session_of(payment["id"])
    assert payment["redirect_url"] == f"{shop.stripe.base_url}/c/pay/{session_id}"
    # What Stripe was asked: a payment-mode session for the package, naming our payment.
    method, path, params = shop.stripe.requests[-1]
    assert (method, path) == ("POST", "/v1/checkout/sessions")
    assert params["mode"] == "payment"
    assert params["client_reference_id"] == str(payment["id"])
    assert params["metadata"] == {"payment_id": str(payment["id"]), "points": "250"}
    assert params["payment_intent_data"] == {"metadata": {"payment_id": str(payment["id"])}}
    price = params["line_items"][0]["price_data"]
    assert (price["currency"], price["unit_amount"]) == ("usd", "999")
    assert params["success_url"].endswith(f"?payment={payment['id']}&outcome=success")
    assert shop.stripe.idempotency[f"skillswap-payment-{payment['id']}-checkout"]

    shop.stripe.pay(session_id)
    answer = await shop.send(shop.stripe.session_event("checkout.session.completed", session_id))
    assert answer == {"received": True, "duplicate": False}

    settled = (await shop.api.get(f"/api/payments/{payment['id']}/", token=buyer.access)).json()
    assert settled["status"] == "succeeded" and settled["settled_at"] is not None
    assert await shop.balance(buyer) == SIGNUP_BONUS + 250
    statement = (await shop.api.get("/api/points/transactions/", token=buyer.access)).json()
    purchase = statement["results"][0]
    assert (purchase["kind"], purchase["amount"], purchase["payment_id"]) == (
        "purchase",
        250,
        payment["id"],
    )


async def test_the_seed_path_and_an_idempotency_key_open_one_checkout(shop):
    buyer = await shop.user()
    package_id = await shop.package()
    sessions_before = len(shop.stripe.sessions)
    first = await shop.api.post(
        "/api/payments/stripe/",
        token=buyer.access,
        json={"package_id": package_id},
        headers={"Idempotency-Key": "buy-once"},
    )
    again = await shop.api.post(
        "/api/payments/stripe/",
        token=buyer.access,
        json={"package_id": package_id},
        headers={"Idempotency-Key": "buy-once"},
    )
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json() == again.json()
    assert first.headers["Location"].endswith(f"/api/payments/{first.json()['id']}/")
    assert len(shop.stripe.sessions) == sessions_before + 1


async def test_the_same_webhook_delivered_five_times_credits_once(shop):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(points=600, price_minor=1999))
    session_id = await shop.session_of(payment["id"])
    shop.stripe.pay(session_id)
    event = shop.stripe.session_event("checkout.session.completed", session_id)
    answers = [await shop.send(event) for _ in range(5)]
    assert [a["duplicate"] for a in answers] == [False, True, True, True, True]
    assert len(await shop.events_of(event["id"])) == 1
    assert await shop.balance(buyer) == SIGNUP_BONUS + 600


async def test_two_different_events_for_one_payment_credit_once(shop):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(points=100, price_minor=499))
    session_id = await shop.session_of(payment["id"])
    shop.stripe.pay(session_id)
    completed = shop.stripe.session_event("checkout.session.completed", session_id)
    succeeded = shop.stripe.session_event("checkout.session.async_payment_succeeded", session_id)
    await shop.send(completed)
    await shop.send(succeeded)
    assert await shop.balance(buyer) == SIGNUP_BONUS + 100
    [first], [second] = await shop.events_of(completed["id"]), await shop.events_of(succeeded["id"])
    assert first.outcome == PaymentEventOutcome.CREDITED
    assert second.outcome == PaymentEventOutcome.ALREADY_SETTLED
    assert first.payment_id == second.payment_id == payment["id"]


async def test_a_refund_that_arrives_before_the_completion_waits_for_it_then_reverses(shop):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(points=250, price_minor=999))
    session_id = await shop.session_of(payment["id"])
    shop.stripe.pay(session_id)
    refund = shop.stripe.refund(shop.stripe.charge_of(session_id), 999)
    # Stripe sends them out of order: the refund's events first.
    await shop.send(shop.stripe.charge_refunded_event(session_id))
    await shop.send(shop.stripe.refund_event("refund.updated", refund))
    assert (await shop.payment(payment["id"])).status == "pending"
    await shop.send(shop.stripe.session_event("checkout.session.completed", session_id))
    refunded = await shop.wait_for_status(payment["id"], "refunded")
    assert refunded.refunded_minor == 999
    assert await shop.balance(buyer) == SIGNUP_BONUS
    statement = (await shop.api.get("/api/points/transactions/", token=buyer.access)).json()
    assert [line["amount"] for line in statement["results"][:2]] == [-250, 250]


async def test_a_refund_naming_a_payment_intent_not_yet_known_waits_for_the_completion(shop):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(points=100, price_minor=499))
    session_id = await shop.session_of(payment["id"])
    shop.stripe.pay(session_id)
    refund = shop.stripe.refund(shop.stripe.charge_of(session_id), 499)
    # Only the refund's own event, which names the payment intent and nothing of ours.
    await shop.send(shop.stripe.refund_event("refund.updated", refund))
    await shop.send(shop.stripe.session_event("checkout.session.completed", session_id))
    await shop.wait_for_status(payment["id"], "refunded")
    assert await shop.balance(buyer) == SIGNUP_BONUS


async def test_a_partial_refund_takes_back_its_share_of_the_points(shop):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(points=600, price_minor=2000))
    session_id = await shop.session_of(payment["id"])
    shop.stripe.pay(session_id)
    await shop.send(shop.stripe.session_event("checkout.session.completed", session_id))
    refund = shop.stripe.refund(shop.stripe.charge_of(session_id), 500)
    await shop.send(shop.stripe.refund_event("refund.created", refund))
    await shop.send(shop.stripe.refund_event("refund.updated", refund))  # the same refund again
    partial = await shop.payment(payment["id"])
    assert (partial.status, partial.refunded_minor) == ("partially_refunded", 500)
    assert await shop.balance(buyer) == SIGNUP_BONUS + 600 - 150
    rest = shop.stripe.refund(shop.stripe.charge_of(session_id), 1500)
    await shop.send(shop.stripe.refund_event("refund.updated", rest))
    assert (await shop.payment(payment["id"])).status == "refunded"
    assert await shop.balance(buyer) == SIGNUP_BONUS


@pytest.mark.parametrize("tampering", ["forged", "stale", "altered", "unsigned"])
async def test_a_webhook_not_signed_by_stripe_now_is_refused_and_nothing_is_stored(shop, tampering):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package())
    session_id = await shop.session_of(payment["id"])
    shop.stripe.pay(session_id)
    event = shop.stripe.session_event("checkout.session.completed", session_id)
    options = {
        "forged": {"secret": "whsec_not_the_endpoints"},
        "stale": {"timestamp": int(time.time()) - 301},
        "altered": {"body": shop.stripe.body_of(event).replace(b'"paid"', b'"paid" ')},
        "unsigned": {"signature": "t=1,v0=abc"},
    }[tampering]
    response = await shop.stripe.deliver(shop.webhook_url, event, **options)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "invalid_webhook"
    assert await shop.events_of(event["id"]) == []
    assert (await shop.payment(payment["id"])).status == "pending"
    assert await shop.balance(buyer) == SIGNUP_BONUS


async def test_a_webhook_signed_within_the_tolerance_is_accepted(shop):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(points=100, price_minor=499))
    session_id = await shop.session_of(payment["id"])
    shop.stripe.pay(session_id)
    event = shop.stripe.session_event("checkout.session.completed", session_id)
    await shop.send(event, timestamp=int(time.time()) - 290)
    assert await shop.balance(buyer) == SIGNUP_BONUS + 100


async def test_a_declined_asynchronous_payment_fails_without_credit(shop):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package())
    session_id = await shop.session_of(payment["id"])
    session = shop.stripe.sessions[session_id]
    session.update(status="complete")  # a bank debit: completed, not yet paid
    completed = shop.stripe.session_event("checkout.session.completed", session_id)
    await shop.send(completed)
    assert (await shop.payment(payment["id"])).status == "pending"
    assert (await shop.events_of(completed["id"]))[0].outcome == PaymentEventOutcome.IGNORED
    await shop.send(shop.stripe.session_event("checkout.session.async_payment_failed", session_id))
    failed = await shop.payment(payment["id"])
    assert failed.status == "failed" and failed.settled_at is None
    # A success reported later cannot move it back.
    await shop.send(
        shop.stripe.session_event("checkout.session.async_payment_succeeded", session_id)
    )
    assert (await shop.payment(payment["id"])).status == "failed"
    assert await shop.balance(buyer) == SIGNUP_BONUS


async def test_an_expired_checkout_expires_the_payment(shop):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package())
    session_id = await shop.session_of(payment["id"])
    shop.stripe.expire(session_id)
    await shop.send(shop.stripe.session_event("checkout.session.expired", session_id))
    read = (await shop.api.get(f"/api/payments/{payment['id']}/", token=buyer.access)).json()
    assert read["status"] == "expired"
    assert await shop.balance(buyer) == SIGNUP_BONUS


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [("amount_total", 100, "amount 100, expected 999"), ("currency", "eur", "currency 'EUR'")],
)
async def test_a_confirmation_that_does_not_match_is_recorded_and_never_credited(
    shop, field, value, said
):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(price_minor=999))
    session_id = await shop.session_of(payment["id"])
    shop.stripe.pay(session_id)
    event = shop.stripe.session_event("checkout.session.completed", session_id)
    event["data"]["object"][field] = value
    await shop.send(event)
    refused = await shop.payment(payment["id"])
    assert refused.status == "failed"
    assert said in (refused.failure_reason or "")
    assert (await shop.events_of(event["id"]))[0].outcome == PaymentEventOutcome.MISMATCH
    assert await shop.balance(buyer) == SIGNUP_BONUS


async def test_an_event_naming_no_payment_of_ours_changes_nothing(shop):
    event = shop.stripe.event(
        "checkout.session.completed",
        {
            "id": "cs_test_elsewhere",
            "payment_status": "paid",
            "amount_total": 999,
            "currency": "usd",
        },
    )
    await shop.send(event)
    [stored] = await shop.events_of(event["id"])
    assert stored.outcome == PaymentEventOutcome.UNKNOWN_PAYMENT and stored.payment_id is None


async def test_unknown_and_unconfigured_gateways_are_refused_naming_the_configured_ones(shop):
    buyer = await shop.user()
    package_id = await shop.package()
    for gateway in ("bitcoin", "paypal"):
        response = await shop.api.post(
            "/api/points/purchase/",
            token=buyer.access,
            json={"package_id": package_id, "gateway": gateway},
        )
        assert response.status_code == 400, response.text
        problem = response.json()
        assert problem["code"] == "unknown_gateway"
        assert problem["configured_gateways"] == ["stripe"]
    seed_path = await shop.api.post(
        "/api/payments/paymob/", token=buyer.access, json={"package_id": package_id}
    )
    assert seed_path.status_code == 400 and seed_path.json()["code"] == "unknown_gateway"


async def test_a_package_not_for_sale_is_not_found_and_a_stranger_cannot_buy(shop):
    buyer = await shop.user()
    hidden = await shop.package(active=False)
    for package_id in (hidden, 987_654_321):
        response = await shop.api.post(
            "/api/points/purchase/",
            token=buyer.access,
            json={"package_id": package_id, "gateway": "stripe"},
        )
        assert response.status_code == 404 and response.json()["code"] == "package_not_found"
    anonymous = await shop.api.post(
        "/api/points/purchase/", json={"package_id": hidden, "gateway": "stripe"}
    )
    assert anonymous.status_code == 401


async def test_payments_are_read_by_their_buyer_and_administrators_only(shop):
    buyer, stranger, admin = await shop.user(), await shop.user(), await shop.user(admin=True)
    package_id = await shop.package()
    first = await shop.buy(buyer, package_id)
    second = await shop.buy(buyer, package_id)
    history = (await shop.api.get("/api/payments/history/", token=buyer.access)).json()
    assert history["count"] == 2
    assert [p["id"] for p in history["results"]] == [second["id"], first["id"]]
    path = f"/api/payments/{first['id']}/"
    assert (await shop.api.get(path, token=stranger.access)).status_code == 404
    assert (await shop.api.get(path, token=admin.access)).json()["id"] == first["id"]
    assert (await shop.api.get("/api/payments/history/", token=stranger.access)).json()[
        "count"
    ] == 0


async def test_a_refusal_is_in_the_buyers_language(shop):
    buyer = await shop.user(locale="ar")
    response = await shop.api.post(
        "/api/points/purchase/",
        token=buyer.access,
        json={"package_id": await shop.package(), "gateway": "paypal"},
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "اختر إحدى بوابات الدفع المتاحة: stripe."
