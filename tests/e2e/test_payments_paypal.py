"""Buying points with PayPal over real HTTP, against a local PayPal that speaks its protocol.

The buyer approves at PayPal and comes back to the return page, which captures the order; or
only PayPal's webhooks come (the approval, then the capture's). Either way, and when both race,
the order is captured once and the points credited once. Every test ends with the ledger audit
clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import tornado.testing
from sqlalchemy import func, select

from skillswap.app import make_app, make_server
from skillswap.db import Database, create_engine
from skillswap.ledger import TransferKind
from skillswap.models import LedgerTransfer, PaymentEvent
from skillswap.models.payments import PaymentEventOutcome
from skillswap.payments.gateways import gateway_for
from skillswap.tasks.worker import InProcess
from tests.conftest import api_client, build_test_deps, own_database
from tests.factories import TestUser
from tests.fakes.paypal_server import FakePaypal, running_paypal
from tests.fakes.stripe_server import running_stripe
from tests.outbox_support import outbox_settled
from tests.payments_support import HANDLERS, SIGNUP_BONUS, Shop

WEBHOOK = "/api/payments/paypal/webhook/"
RETURN = "/api/payments/paypal/return/"
APP_PAGE = "https://app.skillswap.test/purchase"


@dataclass
class PaypalShop(Shop):
    """The shop with both Stripe and PayPal configured, and PayPal's side of things."""

    paypal: FakePaypal

    async def buy_with_paypal(self, buyer: TestUser, package_id: int) -> dict[str, Any]:
        response = await self.api.post(
            "/api/points/purchase/",
            token=buyer.access,
            json={"package_id": package_id, "gateway": "paypal"},
        )
        assert response.status_code == 201, response.text
        payment: dict[str, Any] = response.json()
        return payment

    async def come_back(self, order_id: str) -> str:
        """The buyer's browser lands on the return page; where it is sent on."""
        response = await self.api.get(RETURN + self.paypal.return_query(order_id))
        assert response.status_code == 302, response.text
        return response.headers["Location"]

    async def notify(self, event: dict[str, Any], **options: Any) -> Any:
        """PayPal delivers the event; expect it accepted, and wait for the worker."""
        response = await self.paypal.deliver(self.url + WEBHOOK, event, **options)
        assert response.status_code == 200, response.text
        await outbox_settled(self.deps)
        return response.json()

    async def purchases_of(self, payment_id: int) -> int:
        async with self.deps.db.read() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(LedgerTransfer)
                .where(
                    LedgerTransfer.payment_id == payment_id,
                    LedgerTransfer.kind == TransferKind.PURCHASE,
                )
            )
        return int(count or 0)

    async def stored_events(self) -> int:
        async with self.deps.db.read() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(PaymentEvent)
                .where(PaymentEvent.gateway == "paypal")
            )
        return int(count or 0)


@contextlib.asynccontextmanager
async def paypal_shop() -> AsyncIterator[PaypalShop]:
    """Both fakes, and the app configured for them (PUBLIC_URL its own) with its worker."""
    async with running_paypal() as paypal, running_stripe() as stripe, own_database() as own:
        sock, port = tornado.testing.bind_unused_port()
        url = f"http://127.0.0.1:{port}"
        settings = own.with_overrides(
            public_url=url,
            payment_return_url=APP_PAGE,
            stripe_secret_key=stripe.secret_key,
            stripe_webhook_secret=stripe.webhook_secret,
            stripe_api_base=stripe.base_url,
            paypal_client_id=paypal.client_id,
            paypal_client_secret=paypal.client_secret,
            paypal_webhook_id=paypal.webhook_id,
            paypal_api_base=paypal.base_url,
            task_retry_base_seconds=1,
        )
        deps = await build_test_deps(settings)
        server = make_server(make_app(settings, deps), settings)
        server.add_sockets([sock])
        pool = Database(create_engine(settings))
        worker = InProcess(dataclasses.replace(deps, db=pool), HANDLERS, jobs=[])
        await worker.start()
        try:
            async with api_client(url) as api:
                yield PaypalShop(api, deps, stripe, url, paypal)
        finally:
            server.stop()
            await server.close_all_connections()
            await worker.close()
            await pool.dispose()
            await deps.close()


@pytest.fixture(scope="module")
async def shop() -> AsyncIterator[PaypalShop]:
    async with paypal_shop() as built:
        yield built


@pytest.fixture(autouse=True)
async def clean_ledger_after(shop: PaypalShop) -> AsyncIterator[None]:
    shop.paypal.capture_delay = 0.0
    shop.paypal.honour_request_ids = True
    shop.paypal.verification_down = False
    shop.paypal.token_lifetime = 32400
    yield
    await shop.assert_ledger_clean()


async def test_a_purchase_opens_a_paypal_order_and_the_return_page_captures_and_credits(shop):
    buyer = await shop.user()
    package_id = await shop.package(points=250, price_minor=999, currency="USD")
    payment = await shop.buy_with_paypal(buyer, package_id)
    assert (payment["gateway"], payment["status"], payment["amount"]) == (
        "paypal",
        "pending",
        "9.99",
    )
    order_id = (await shop.payment(payment["id"])).reference
    assert order_id in shop.paypal.orders
    assert payment["redirect_url"] == f"{shop.paypal.base_url}/checkoutnow?token={order_id}"
    # What PayPal was asked: an order to capture, naming our payment, with the exact amount.
    method, path, headers, params = shop.paypal.requests[-1]
    assert (method, path) == ("POST", "/v2/checkout/orders")
    assert headers["Paypal-Request-Id"] == f"skillswap-payment-{payment['id']}-order"
    assert params["intent"] == "CAPTURE"
    [unit] = params["purchase_units"]
    assert unit["custom_id"] == str(payment["id"])
    assert unit["amount"] == {"currency_code": "USD", "value": "9.99"}
    context = params["payment_source"]["paypal"]["experience_context"]
    assert context["return_url"] == shop.url + RETURN
    assert context["cancel_url"] == f"{APP_PAGE}?payment={payment['id']}&outcome=cancel"

    shop.paypal.approve(order_id)
    assert await shop.come_back(order_id) == f"{APP_PAGE}?payment={payment['id']}&outcome=success"
    settled = (await shop.api.get(f"/api/payments/{payment['id']}/", token=buyer.access)).json()
    assert settled["status"] == "succeeded" and settled["settled_at"] is not None
    # An app that asks for JSON is shown the payment instead of being sent on.
    shown = await shop.api.get(
        RETURN + shop.paypal.return_query(order_id), headers={"Accept": "application/json"}
    )
    assert shown.status_code == 200 and shown.json() == settled
    assert await shop.balance(buyer) == SIGNUP_BONUS + 250
    assert shop.paypal.capture_requests.count(order_id) == 1
    capture = shop.paypal.capture_of(order_id)
    assert (await shop.payment(payment["id"])).gateway_payment_ref == capture["id"]

    # PayPal's own events for it come later and change nothing; coming back again neither.
    await shop.notify(shop.paypal.order_approved_event(order_id))
    completed = shop.paypal.capture_event("PAYMENT.CAPTURE.COMPLETED", order_id)
    await shop.notify(completed)
    [stored] = await shop.events_of(completed["id"])
    assert stored.outcome == PaymentEventOutcome.ALREADY_SETTLED
    await shop.come_back(order_id)
    assert shop.paypal.capture_requests.count(order_id) == 1
    assert await shop.purchases_of(payment["id"]) == 1
    assert await shop.balance(buyer) == SIGNUP_BONUS + 250


async def test_with_webhooks_only_the_approval_is_captured_by_the_worker_and_credited_once(shop):
    buyer = await shop.user()
    payment = await shop.buy_with_paypal(buyer, await shop.package(points=600, price_minor=1999))
    order_id = (await shop.payment(payment["id"])).reference
    shop.paypal.approve(order_id)
    approved = shop.paypal.order_approved_event(order_id)
    assert await shop.notify(approved) == {"received": True, "duplicate": False}
    [stored] = await shop.events_of(approved["id"])
    assert (stored.outcome, stored.payment_id) == (PaymentEventOutcome.CREDITED, payment["id"])
    assert shop.paypal.orders[order_id]["status"] == "COMPLETED"
    assert await shop.balance(buyer) == SIGNUP_BONUS + 600
    completed = shop.paypal.capture_event("PAYMENT.CAPTURE.COMPLETED", order_id)
    await shop.notify(completed)
    assert (await shop.events_of(completed["id"]))[0].outcome == PaymentEventOutcome.ALREADY_SETTLED
    assert shop.paypal.capture_requests.count(order_id) == 1
    assert await shop.purchases_of(payment["id"]) == 1


async def test_a_capture_completed_event_alone_credits_a_payment_captured_elsewhere(shop):
    buyer = await shop.user()
    payment = await shop.buy_with_paypal(buyer, await shop.package(points=100, price_minor=499))
    order_id = (await shop.payment(payment["id"])).reference
    shop.paypal.approve(order_id)
    shop.paypal.capture_order(order_id)  # e.g. our capture went through, its answer was lost
    await shop.notify(shop.paypal.capture_event("PAYMENT.CAPTURE.COMPLETED", order_id))
    assert (await shop.payment(payment["id"])).status == "succeeded"
    assert await shop.balance(buyer) == SIGNUP_BONUS + 100


@pytest.mark.parametrize("paypal_dedupes", [True, False], ids=["request-id", "already-captured"])
async def test_the_return_page_racing_the_approval_webhook_captures_once_and_credits_once(
    shop, paypal_dedupes
):
    buyer = await shop.user()
    payment = await shop.buy_with_paypal(buyer, await shop.package(points=250, price_minor=999))
    order_id = (await shop.payment(payment["id"])).reference
    shop.paypal.approve(order_id)
    # A slow capture, so that both sides ask for it before either is answered; without
    # PayPal-Request-Id the second is answered ORDER_ALREADY_CAPTURED, which is a success.
    shop.paypal.capture_delay = 0.5
    shop.paypal.honour_request_ids = paypal_dedupes
    approved = shop.paypal.order_approved_event(order_id)
    delivered, location, also_back = await asyncio.gather(
        shop.paypal.deliver(shop.url + WEBHOOK, approved),
        shop.come_back(order_id),
        shop.come_back(order_id),  # the buyer's browser reloads the page
    )
    assert delivered.status_code == 200
    await outbox_settled(shop.deps)
    assert location == also_back == f"{APP_PAGE}?payment={payment['id']}&outcome=success"
    assert shop.paypal.capture_requests.count(order_id) >= 2  # both asked PayPal
    assert (
        len([c for c in shop.paypal.captures.values() if c["custom_id"] == str(payment["id"])]) == 1
    )
    assert (await shop.payment(payment["id"])).status == "succeeded"
    assert await shop.purchases_of(payment["id"]) == 1
    assert await shop.balance(buyer) == SIGNUP_BONUS + 250


async def test_the_same_webhook_delivered_five_times_is_stored_once_and_credits_once(shop):
    buyer = await shop.user()
    payment = await shop.buy_with_paypal(buyer, await shop.package(points=100, price_minor=499))
    order_id = (await shop.payment(payment["id"])).reference
    shop.paypal.approve(order_id)
    shop.paypal.capture_order(order_id)
    completed = shop.paypal.capture_event("PAYMENT.CAPTURE.COMPLETED", order_id)
    answers = [await shop.notify(completed) for _ in range(5)]
    assert [a["duplicate"] for a in answers] == [False, True, True, True, True]
    assert len(await shop.events_of(completed["id"])) == 1
    assert await shop.purchases_of(payment["id"]) == 1
    assert await shop.balance(buyer) == SIGNUP_BONUS + 100


@pytest.mark.parametrize("tampering", ["forged", "altered", "reserialised", "unsigned"])
async def test_a_webhook_paypal_does_not_vouch_for_is_refused_and_nothing_is_stored(
    shop, tampering
):
    buyer = await shop.user()
    payment = await shop.buy_with_paypal(buyer, await shop.package())
    order_id = (await shop.payment(payment["id"])).reference
    shop.paypal.approve(order_id)
    shop.paypal.capture_order(order_id)
    event = shop.paypal.capture_event("PAYMENT.CAPTURE.COMPLETED", order_id)
    body = shop.paypal.body_of(event)
    stored_before = await shop.stored_events()
    if tampering == "unsigned":
        async with api_client(shop.url) as bare:
            response = await bare.post(WEBHOOK, content=body)
    else:
        options = {
            "forged": {"key": b"not PayPal's key"},
            "altered": {"body": body.replace(b'"value":"9.99"', b'"value":"0.01"')},
            # The same event, only written differently: PayPal checks the bytes it sent.
            "reserialised": {"body": json.dumps(event).encode()},
        }[tampering]
        response = await shop.paypal.deliver(shop.url + WEBHOOK, event, **options)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "invalid_webhook"
    assert await shop.stored_events() == stored_before
    assert (await shop.payment(payment["id"])).status == "pending"
    assert await shop.balance(buyer) == SIGNUP_BONUS
    if tampering != "unsigned":
        assert shop.paypal.verified[-1][1] == "FAILURE"


async def test_the_event_is_verified_byte_for_byte_as_paypal_sent_it(shop):
    buyer = await shop.user()
    payment = await shop.buy_with_paypal(buyer, await shop.package(points=100, price_minor=499))
    order_id = (await shop.payment(payment["id"])).reference
    shop.paypal.approve(order_id)
    approved = shop.paypal.order_approved_event(order_id)
    await shop.notify(approved)
    # The approval carries the payer's Arabic name, unescaped, as PayPal writes it.
    assert shop.paypal.verified[-1] == (shop.paypal.body_of(approved), "SUCCESS")
    assert "ليلى".encode() in shop.paypal.verified[-1][0]
    [stored] = await shop.events_of(approved["id"])
    assert stored.body == shop.paypal.body_of(approved)


@pytest.mark.parametrize("how", ["capture", "webhook"])
async def test_a_declined_capture_fails_the_payment_without_credit(shop, how):
    buyer = await shop.user()
    payment = await shop.buy_with_paypal(buyer, await shop.package())
    order_id = (await shop.payment(payment["id"])).reference
    if how == "capture":
        shop.paypal.approve(order_id, capture="DECLINED")
        assert await shop.come_back(order_id) == (
            f"{APP_PAGE}?payment={payment['id']}&outcome=cancel"
        )
        await shop.notify(shop.paypal.capture_event("PAYMENT.CAPTURE.DECLINED", order_id))
    else:
        # Held for review at the capture, then denied: only the webhook tells.
        shop.paypal.approve(order_id, capture="PENDING")
        await shop.come_back(order_id)
        assert (await shop.payment(payment["id"])).status == "pending"
        await shop.notify(shop.paypal.capture_event("PAYMENT.CAPTURE.DENIED", order_id))
    failed = await shop.payment(payment["id"])
    assert failed.status == "failed" and failed.settled_at is None
    # A completion reported later cannot move it back.
    shop.paypal.capture_of(order_id)["status"] = "COMPLETED"
    await shop.notify(shop.paypal.capture_event("PAYMENT.CAPTURE.COMPLETED", order_id))
    assert (await shop.payment(payment["id"])).status == "failed"
    assert await shop.balance(buyer) == SIGNUP_BONUS


async def test_a_capture_of_another_amount_is_recorded_and_never_credited(shop):
    buyer = await shop.user()
    payment = await shop.buy_with_paypal(buyer, await shop.package(price_minor=999))
    order_id = (await shop.payment(payment["id"])).reference
    shop.paypal.approve(order_id, amount={"currency_code": "USD", "value": "1.00"})
    assert await shop.come_back(order_id) == f"{APP_PAGE}?payment={payment['id']}&outcome=cancel"
    refused = await shop.payment(payment["id"])
    assert refused.status == "failed"
    assert "amount 100, expected 999" in (refused.failure_reason or "")
    completed = shop.paypal.capture_event("PAYMENT.CAPTURE.COMPLETED", order_id)
    await shop.notify(completed)
    assert (await shop.events_of(completed["id"]))[0].outcome == PaymentEventOutcome.MISMATCH
    assert await shop.balance(buyer) == SIGNUP_BONUS


async def test_a_refund_at_paypal_takes_back_its_share_then_the_rest(shop):
    buyer = await shop.user()
    payment = await shop.buy_with_paypal(buyer, await shop.package(points=600, price_minor=2000))
    order_id = (await shop.payment(payment["id"])).reference
    shop.paypal.approve(order_id)
    await shop.come_back(order_id)
    capture_id = shop.paypal.capture_of(order_id)["id"]
    refund = shop.paypal.refund(capture_id, "5.00")
    event = shop.paypal.refund_event(refund)
    await shop.notify(event)
    await shop.notify(event)  # delivered again
    partial = await shop.payment(payment["id"])
    assert (partial.status, partial.refunded_minor) == ("partially_refunded", 500)
    assert await shop.balance(buyer) == SIGNUP_BONUS + 600 - 150
    # The adapter refunds the rest (as an administrator's refund would), PayPal tells us.
    adapter = gateway_for(shop.deps, "paypal")
    rest = await adapter.refund(capture_id, 1500, key=f"payment:{payment['id']}:refund:rest")
    assert rest.amount_minor == 1500 and rest.refund_id in shop.paypal.refunds
    assert shop.paypal.capture_of(order_id)["status"] == "REFUNDED"
    await shop.notify(shop.paypal.refund_event(shop.paypal.refunds[rest.refund_id]))
    assert (await shop.payment(payment["id"])).status == "refunded"
    assert await shop.balance(buyer) == SIGNUP_BONUS


async def test_a_refund_before_the_capture_is_known_waits_for_it(shop):
    buyer = await shop.user()
    payment = await shop.buy_with_paypal(buyer, await shop.package(points=100, price_minor=499))
    order_id = (await shop.payment(payment["id"])).reference
    shop.paypal.approve(order_id)
    shop.paypal.capture_order(order_id)
    refund = shop.paypal.refund(shop.paypal.capture_of(order_id)["id"], "4.99")
    await shop.notify(shop.paypal.refund_event(refund))
    assert (await shop.payment(payment["id"])).status == "pending"
    await shop.notify(shop.paypal.capture_event("PAYMENT.CAPTURE.COMPLETED", order_id))
    await shop.wait_for_status(payment["id"], "refunded")
    assert await shop.balance(buyer) == SIGNUP_BONUS


async def test_fetch_status_captures_an_approved_order_for_reconciliation(shop):
    buyer = await shop.user()
    payment = await shop.buy_with_paypal(buyer, await shop.package())
    order_id = (await shop.payment(payment["id"])).reference
    adapter = gateway_for(shop.deps, "paypal")
    waiting = await adapter.fetch_status(order_id)
    assert (waiting.kind, waiting.reason) == ("ignored", "order PAYER_ACTION_REQUIRED")
    shop.paypal.approve(order_id)
    paid = await adapter.fetch_status(order_id)
    capture = shop.paypal.capture_of(order_id)
    assert (paid.kind, paid.payment_id, paid.reference, paid.payment_ref) == (
        "paid",
        payment["id"],
        order_id,
        capture["id"],
    )
    assert (paid.amount_minor, paid.currency) == (999, "USD")
    assert (await adapter.fetch_status(order_id)) == paid  # read, not captured again
    assert shop.paypal.capture_requests[-1:] == [order_id]
    await shop.come_back(order_id)
    assert await shop.balance(buyer) == SIGNUP_BONUS + 250


async def test_the_token_is_fetched_once_and_renewed_when_paypal_refuses_it(shop):
    buyer = await shop.user()
    package_id = await shop.package()
    await shop.buy_with_paypal(buyer, package_id)
    fetched = shop.paypal.token_requests
    await shop.buy_with_paypal(buyer, package_id)
    await shop.buy_with_paypal(buyer, package_id)
    assert shop.paypal.token_requests == fetched
    shop.paypal.revoke_tokens()
    await shop.buy_with_paypal(buyer, package_id)
    assert shop.paypal.token_requests == fetched + 1
    # A token about to expire (within five minutes) is not used again.
    shop.paypal.token_lifetime = 240
    shop.paypal.revoke_tokens()
    await shop.buy_with_paypal(buyer, package_id)
    await shop.buy_with_paypal(buyer, package_id)
    assert shop.paypal.token_requests == fetched + 3


async def test_a_webhook_paypal_cannot_verify_now_is_answered_503_and_not_stored(shop):
    buyer = await shop.user()
    payment = await shop.buy_with_paypal(buyer, await shop.package())
    order_id = (await shop.payment(payment["id"])).reference
    shop.paypal.approve(order_id)
    approved = shop.paypal.order_approved_event(order_id)
    shop.paypal.verification_down = True
    response = await shop.paypal.deliver(shop.url + WEBHOOK, approved)
    assert response.status_code == 503 and response.json()["code"] == "gateway_unavailable"
    assert await shop.events_of(approved["id"]) == []
    shop.paypal.verification_down = False
    await shop.notify(approved)  # PayPal delivers it again
    assert await shop.balance(buyer) == SIGNUP_BONUS + 250


async def test_both_gateways_are_offered_and_a_currency_paypal_does_not_take_is_refused(shop):
    buyer = await shop.user()
    response = await shop.api.post(
        "/api/payments/paymob/", token=buyer.access, json={"package_id": await shop.package()}
    )
    assert response.status_code == 400
    assert response.json()["configured_gateways"] == ["stripe", "paypal"]
    seed_path = await shop.api.post(
        "/api/payments/paypal/",
        token=buyer.access,
        json={"package_id": await shop.package(currency="EGP", price_minor=50000)},
    )
    assert seed_path.status_code == 400 and seed_path.json()["code"] == "currency_not_offered"


async def test_a_return_naming_no_order_of_ours_is_not_found(shop):
    response = await shop.api.get(RETURN + "?token=NOTANORDER123")
    assert response.status_code == 404 and response.json()["code"] == "payment_not_found"
    missing = await shop.api.get(RETURN)
    assert missing.status_code == 400
    assert missing.json()["errors"] == {"token": ["This field is required."]}
    # Arguments PayPal may add beside the token are PayPal's business: ignored.
    other = await shop.api.get(RETURN + "?token=NOTANORDER123&PayerID=X&ba_token=Y")
    assert other.status_code == 404
