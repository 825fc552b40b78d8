"""Buying points with Paymob over real HTTP, against a local Paymob that speaks its protocol.

Every test ends with the ledger audit clean: a payment's points are credited exactly once, only
for a signed transaction that matches it, and the buyer's return URL never credits anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import tornado.testing
from sqlalchemy import func, select

from skillswap.app import make_app, make_server
from skillswap.db import Database, create_engine
from skillswap.deps import Deps
from skillswap.models import Payment, PaymentEvent
from skillswap.models.payments import PaymentEventOutcome
from skillswap.payments.gateways import gateway_for
from skillswap.points.services import audit_ledger
from skillswap.tasks.worker import InProcess
from tests import factories
from tests.conftest import Api, api_client, build_test_deps, own_database
from tests.factories import TestUser
from tests.fakes.paymob_server import FakePaymob, running_paymob
from tests.outbox_support import outbox_settled
from tests.payments_support import HANDLERS, SIGNUP_BONUS, insert_package

RETURN_PAGE = "https://app.skillswap.test/payments/done"


@dataclass
class PaymobShop:
    api: Api
    deps: Deps
    paymob: FakePaymob
    url: str

    async def user(self, **options: Any) -> TestUser:
        return await factories.make_user(self.api, self.deps, **options)

    async def package(self, *, points: int = 500, price_minor: int = 10000) -> int:
        return await insert_package(
            self.deps.db,
            points=points,
            price_minor=price_minor,
            currency="EGP",
            now=self.deps.clock(),
        )

    async def buy(self, buyer: TestUser, package_id: int) -> dict[str, Any]:
        response = await self.api.post(
            "/api/payments/paymob/", token=buyer.access, json={"package_id": package_id}
        )
        assert response.status_code == 201, response.text
        payment: dict[str, Any] = response.json()
        return payment

    async def send(self, tx: dict[str, Any], **options: Any) -> dict[str, Any]:
        """Deliver the callback, expect it accepted, and wait for the worker to process it."""
        response = await self.paymob.deliver(tx, **options)
        assert response.status_code == 200, response.text
        await outbox_settled(self.deps)
        answer: dict[str, Any] = response.json()
        return answer

    async def payment(self, payment_id: int) -> Payment:
        async with self.deps.db.read() as session:
            found = await session.get(Payment, payment_id)
        assert found is not None
        return found

    async def events_of(self, tx: dict[str, Any]) -> list[PaymentEvent]:
        async with self.deps.db.read() as session:
            rows = await session.scalars(
                select(PaymentEvent)
                .where(PaymentEvent.event_id.startswith(f"{tx['id']}:"))
                .order_by(PaymentEvent.id)
            )
            return list(rows)

    async def event_count(self) -> int:
        async with self.deps.db.read() as session:
            return int(await session.scalar(select(func.count()).select_from(PaymentEvent)) or 0)

    async def balance(self, user: TestUser) -> int:
        response = await self.api.get("/api/points/balance/", token=user.access)
        assert response.status_code == 200, response.text
        balance: int = response.json()["balance"]
        return balance


@contextlib.asynccontextmanager
async def paymob_shop() -> AsyncIterator[PaymobShop]:
    """The fake Paymob, and the app configured for it (its public URL known to Paymob)."""
    async with running_paymob() as paymob, own_database() as own:
        sock, port = tornado.testing.bind_unused_port()
        url = f"http://127.0.0.1:{port}"
        settings = own.with_overrides(
            public_url=url,
            payment_return_url=RETURN_PAGE,
            paymob_secret_key=paymob.secret_key,
            paymob_public_key=paymob.public_key,
            paymob_hmac_secret=paymob.hmac_secret,
            paymob_integration_ids=tuple(str(i) for i in paymob.integration_ids),
            paymob_api_base=paymob.base_url,
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
                yield PaymobShop(api, deps, paymob, url)
        finally:
            server.stop()
            await server.close_all_connections()
            await worker.close()
            await pool.dispose()
            await deps.close()


@pytest.fixture(scope="module")
async def shop() -> AsyncIterator[PaymobShop]:
    async with paymob_shop() as built:
        yield built


@pytest.fixture
async def clean_ledger_after(shop: PaymobShop) -> AsyncIterator[None]:
    yield
    report = await audit_ledger(shop.deps.db)
    assert report.ok, report.violations


pytestmark = pytest.mark.usefixtures("clean_ledger_after")


async def _browse(url: str) -> httpx.Response:
    """The buyer's browser following Paymob's redirect (not the redirect after it)."""
    async with httpx.AsyncClient(timeout=30) as browser:
        return await browser.get(url)


async def test_a_purchase_opens_an_intention_and_its_paid_callback_credits_the_points(shop):
    buyer = await shop.user(display_name="Mona Abdel Fattah")
    package_id = await shop.package(points=500, price_minor=10000)
    payment = await shop.buy(buyer, package_id)
    assert (payment["status"], payment["gateway"], payment["points"]) == ("pending", "paymob", 500)
    assert (payment["amount"], payment["amount_minor"], payment["currency"]) == (
        "100.00",
        10000,
        "EGP",
    )
    # What Paymob was asked: an intention whose items add up to the amount, naming the payment.
    method, path, params = shop.paymob.requests[-1]
    assert (method, path) == ("POST", "/v1/intention/")
    assert (params["amount"], params["currency"]) == (10000, "EGP")
    assert params["payment_methods"] == list(shop.paymob.integration_ids)
    assert sum(item["amount"] * item["quantity"] for item in params["items"]) == 10000
    assert params["special_reference"] == f"skillswap-payment-{payment['id']}"
    assert params["notification_url"] == f"{shop.url}/api/payments/paymob/webhook/"
    assert params["redirection_url"] == f"{shop.url}/api/payments/paymob/return/"
    billing = params["billing_data"]
    assert (billing["first_name"], billing["last_name"]) == ("Mona", "Abdel Fattah")
    assert billing["email"] == buyer.email
    assert billing["phone_number"] == billing["street"] == billing["postal_code"] == "NA"
    # The buyer goes to the Unified Checkout with the public key and the intention's secret.
    checkout = urlsplit(payment["redirect_url"])
    assert f"{checkout.scheme}://{checkout.netloc}{checkout.path}" == (
        f"{shop.paymob.base_url}/unifiedcheckout/"
    )
    query = parse_qs(checkout.query)
    intention = shop.paymob.intention_of(payment["redirect_url"])
    assert query == {
        "publicKey": [shop.paymob.public_key],
        "clientSecret": [intention["client_secret"]],
    }

    tx = shop.paymob.pay(payment["redirect_url"])
    assert await shop.send(tx) == {"received": True, "duplicate": False}
    settled = (await shop.api.get(f"/api/payments/{payment['id']}/", token=buyer.access)).json()
    assert settled["status"] == "succeeded" and settled["settled_at"] is not None
    assert await shop.balance(buyer) == SIGNUP_BONUS + 500
    stored = await shop.payment(payment["id"])
    assert (stored.reference, stored.gateway_payment_ref) == (
        str(intention["intention_order_id"]),
        str(tx["id"]),
    )


async def test_the_same_callback_delivered_five_times_credits_once(shop):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(points=300, price_minor=5000))
    tx = shop.paymob.pay(payment["redirect_url"])
    answers = [await shop.send(tx) for _ in range(5)]
    assert [a["duplicate"] for a in answers] == [False, True, True, True, True]
    [event] = await shop.events_of(tx)
    assert event.outcome == PaymentEventOutcome.CREDITED
    assert await shop.balance(buyer) == SIGNUP_BONUS + 300


async def test_a_pending_callback_arriving_after_the_success_changes_nothing(shop):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(points=200, price_minor=4000))
    tx = shop.paymob.pay(payment["redirect_url"], pending=True, wallet=True)
    pending = dict(tx)  # the wallet's first callback, delivered late
    shop.paymob.settle(tx)
    await shop.send(tx)
    await shop.send(pending)
    first, second = await shop.events_of(tx)
    assert (first.outcome, second.outcome) == (
        PaymentEventOutcome.CREDITED,
        PaymentEventOutcome.IGNORED,
    )
    assert "pending" in (second.detail or "")
    assert (await shop.payment(payment["id"])).status == "succeeded"
    assert await shop.balance(buyer) == SIGNUP_BONUS + 200


async def test_a_pending_wallet_payment_is_credited_when_it_goes_through(shop):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(points=200, price_minor=4000))
    tx = shop.paymob.pay(payment["redirect_url"], pending=True, wallet=True)
    await shop.send(tx)
    assert (await shop.payment(payment["id"])).status == "pending"
    await shop.send(shop.paymob.settle(tx))  # the same transaction, in a new state
    assert (await shop.payment(payment["id"])).status == "succeeded"
    assert await shop.balance(buyer) == SIGNUP_BONUS + 200


@pytest.mark.parametrize("tampering", ["forged", "altered", "unsigned", "not_a_transaction"])
async def test_a_callback_not_signed_by_paymob_is_refused_and_nothing_is_stored(shop, tampering):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package())
    tx = shop.paymob.pay(payment["redirect_url"], success=False)
    events_before = await shop.event_count()
    raised = dict(tx, success=True)  # what a forger would like Paymob to have said
    options: dict[str, Any] = {
        "forged": {"secret": "not-the-hmac-secret"},
        "altered": {"body": shop.paymob.body_of(raised)},
        "unsigned": {"signature": ""},
        "not_a_transaction": {"body": b'{"type": "TOKEN", "obj": {"id": 1}}'},
    }[tampering]
    response = await shop.paymob.deliver(tx if tampering != "forged" else raised, **options)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "invalid_webhook"
    assert await shop.event_count() == events_before
    assert (await shop.payment(payment["id"])).status == "pending"
    assert await shop.balance(buyer) == SIGNUP_BONUS


async def test_a_declined_attempt_credits_nothing_and_the_buyer_may_pay_again(shop):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(points=250, price_minor=9900))
    declined = shop.paymob.pay(payment["redirect_url"], success=False)
    await shop.send(declined)
    [event] = await shop.events_of(declined)
    assert event.outcome == PaymentEventOutcome.IGNORED
    assert "declined: Do not honour" in (event.detail or "")
    assert (await shop.payment(payment["id"])).status == "pending"
    assert await shop.balance(buyer) == SIGNUP_BONUS
    # Another card on the same checkout: Paymob took the money, so the points come.
    await shop.send(shop.paymob.pay(payment["redirect_url"]))
    assert (await shop.payment(payment["id"])).status == "succeeded"
    assert await shop.balance(buyer) == SIGNUP_BONUS + 250


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"amount": 100}, "amount 100, expected 10000"),
        ({"currency": "USD"}, "currency 'USD', expected 'EGP'"),
    ],
)
async def test_a_paid_transaction_that_does_not_match_is_recorded_and_never_credited(
    shop, change, said
):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(price_minor=10000))
    tx = shop.paymob.pay(payment["redirect_url"], **change)
    await shop.send(tx)
    refused = await shop.payment(payment["id"])
    assert refused.status == "failed"
    assert said in (refused.failure_reason or "")
    [event] = await shop.events_of(tx)
    assert event.outcome == PaymentEventOutcome.MISMATCH
    assert await shop.balance(buyer) == SIGNUP_BONUS


async def test_the_return_url_shows_the_result_and_never_credits(shop):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(points=100, price_minor=2500))
    tx = shop.paymob.pay(payment["redirect_url"])
    events_before = await shop.event_count()
    for _ in range(3):
        shown = await _browse(shop.paymob.return_url(tx))
        assert shown.status_code == 302
        assert shown.headers["Location"] == (
            f"{RETURN_PAGE}?payment={payment['id']}&outcome=success"
        )
    async with httpx.AsyncClient(timeout=30) as app:
        asked = await app.get(shop.paymob.return_url(tx), headers={"Accept": "application/json"})
    assert asked.json() == {
        "payment_id": payment["id"],
        "outcome": "success",
        "redirect_url": f"{RETURN_PAGE}?payment={payment['id']}&outcome=success",
    }
    await outbox_settled(shop.deps)
    assert await shop.event_count() == events_before
    assert (await shop.payment(payment["id"])).status == "pending"
    assert await shop.balance(buyer) == SIGNUP_BONUS
    # Only the processed callback credits.
    await shop.send(tx)
    assert await shop.balance(buyer) == SIGNUP_BONUS + 100


async def test_a_declined_return_goes_to_the_cancel_page_and_a_forged_one_is_refused(shop):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package())
    declined = shop.paymob.pay(payment["redirect_url"], success=False)
    shown = await _browse(shop.paymob.return_url(declined))
    assert shown.headers["Location"] == f"{RETURN_PAGE}?payment={payment['id']}&outcome=cancel"
    forged = shop.paymob.return_url(declined).replace("success=false", "success=true")
    refused = await _browse(forged)
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_return"
    other_secret = await _browse(shop.paymob.return_url(declined, secret="guessed"))
    assert other_secret.status_code == 400
    assert (await shop.payment(payment["id"])).status == "pending"


async def test_a_refund_at_paymob_takes_back_the_points_once(shop):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(points=600, price_minor=20000))
    tx = shop.paymob.pay(payment["redirect_url"])
    await shop.send(tx)
    # Refunded from Paymob's dashboard: a child transaction, and the parent sent again.
    child = shop.paymob.refund(tx, 5000)
    await shop.send(child)
    await shop.send(child)
    await shop.send(tx)  # now `is_refunded`: a new state of the paid transaction
    partial = await shop.payment(payment["id"])
    assert (partial.status, partial.refunded_minor) == ("partially_refunded", 5000)
    assert await shop.balance(buyer) == SIGNUP_BONUS + 600 - 150
    [refund_event] = await shop.events_of(child)
    assert refund_event.outcome == PaymentEventOutcome.REFUNDED
    rest = shop.paymob.refund(tx, 15000)
    await shop.send(rest)
    assert (await shop.payment(payment["id"])).status == "refunded"
    assert await shop.balance(buyer) == SIGNUP_BONUS


async def test_the_adapter_refunds_through_paymob_and_its_callback_changes_nothing_more(shop):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(points=400, price_minor=8000))
    tx = shop.paymob.pay(payment["redirect_url"])
    await shop.send(tx)
    gateway = gateway_for(shop.deps, "paymob")
    made = await gateway.refund(str(tx["id"]), 8000, key=f"payment:{payment['id']}:refund")
    method, path, params = shop.paymob.requests[-1]
    assert (method, path) == ("POST", "/api/acceptance/void_refund/refund")
    assert params == {"transaction_id": tx["id"], "amount_cents": 8000}
    child = shop.paymob.transactions[int(made.refund_id)]
    assert (child["parent_transaction"], made.amount_minor) == (tx["id"], 8000)
    await shop.send(child)
    assert (await shop.payment(payment["id"])).status == "refunded"
    assert await shop.balance(buyer) == SIGNUP_BONUS


async def test_the_inquiry_tells_reconciliation_how_an_order_stands(shop):
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(points=100, price_minor=3000))
    reference = (await shop.payment(payment["id"])).reference
    assert reference is not None
    gateway = gateway_for(shop.deps, "paymob")
    unpaid = await gateway.fetch_status(reference)
    assert unpaid.kind == "ignored" and "no transaction" in unpaid.reason
    shop.paymob.pay(payment["redirect_url"], success=False)
    assert (await gateway.fetch_status(reference)).kind == "failed"
    tx = shop.paymob.pay(payment["redirect_url"])
    paid = await gateway.fetch_status(reference)
    assert (paid.kind, paid.reference, paid.payment_ref) == ("paid", reference, str(tx["id"]))
    assert (paid.amount_minor, paid.currency) == (3000, "EGP")


async def test_paymob_is_offered_beside_the_other_configured_gateways(shop):
    buyer = await shop.user()
    response = await shop.api.post(
        "/api/points/purchase/",
        token=buyer.access,
        json={"package_id": await shop.package(), "gateway": "stripe"},
    )
    assert response.status_code == 400
    assert response.json()["configured_gateways"] == ["paymob"]
