"""A shop for payment tests: the app on a database of its own, configured for the fake Stripe.

On its own database so that no other test app's relay (which knows no payment handlers) takes
its outbox rows; its worker runs production's handlers plus the payment ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import tornado.testing
from sqlalchemy import select

from skillswap.app import make_app, make_server
from skillswap.bootstrap import OUTBOX_HANDLERS
from skillswap.db import Database, create_engine
from skillswap.deps import Deps
from skillswap.models import Payment, PaymentEvent, PointsPackage
from skillswap.payments import settlement
from skillswap.points.services import audit_ledger
from skillswap.tasks.worker import InProcess
from tests import factories
from tests.conftest import Api, api_client, build_test_deps, own_database
from tests.factories import TestUser
from tests.fakes.stripe_server import FakeStripe, running_stripe
from tests.outbox_support import outbox_settled

HANDLERS = {**OUTBOX_HANDLERS, **settlement.HANDLERS}
SIGNUP_BONUS = 100  # what a new test user starts with
WEBHOOK = "/api/payments/stripe/webhook/"


async def insert_package(
    db: Database,
    *,
    points: int,
    price_minor: int,
    currency: str,
    active: bool = True,
    now: datetime | None = None,
) -> int:
    """A points package written straight to the database (the admin API has its own tests)."""
    stamps = {} if now is None else {"created_at": now, "updated_at": now}
    async with db.uow() as uow:
        package = PointsPackage(
            name_en="Learner",
            name_ar="باقة المتعلّم",
            points=points,
            price_minor=price_minor,
            currency=currency,
            is_active=active,
            sort_order=0,
            **stamps,
        )
        uow.session.add(package)
        await uow.session.flush()
        await uow.commit()
        return package.id


@dataclass
class Shop:
    api: Api
    deps: Deps
    stripe: FakeStripe
    url: str

    @property
    def webhook_url(self) -> str:
        return self.url + WEBHOOK

    async def user(self, **options: Any) -> TestUser:
        return await factories.make_user(self.api, self.deps, **options)

    async def package(
        self,
        *,
        points: int = 250,
        price_minor: int = 999,
        currency: str = "USD",
        active: bool = True,
    ) -> int:
        return await insert_package(
            self.deps.db,
            points=points,
            price_minor=price_minor,
            currency=currency,
            active=active,
            now=self.deps.clock(),
        )

    async def buy(self, buyer: TestUser, package_id: int, **headers: str) -> dict[str, Any]:
        response = await self.api.post(
            "/api/points/purchase/",
            token=buyer.access,
            json={"package_id": package_id, "gateway": "stripe"},
            headers=headers,
        )
        assert response.status_code == 201, response.text
        payment: dict[str, Any] = response.json()
        return payment

    async def session_of(self, payment_id: int) -> str:
        async with self.deps.db.read() as session:
            reference = await session.scalar(
                select(Payment.reference).where(Payment.id == payment_id)
            )
        assert reference is not None
        return reference

    async def send(self, event: dict[str, Any], **options: Any) -> Any:
        """Deliver the event, expect it accepted, and wait for the worker to process it."""
        response = await self.stripe.deliver(self.webhook_url, event, **options)
        assert response.status_code == 200, response.text
        await outbox_settled(self.deps)
        return response.json()

    async def payment(self, payment_id: int) -> Payment:
        async with self.deps.db.read() as session:
            found = await session.get(Payment, payment_id)
        assert found is not None
        return found

    async def events_of(self, event_id: str) -> list[PaymentEvent]:
        async with self.deps.db.read() as session:
            rows = await session.scalars(
                select(PaymentEvent).where(PaymentEvent.event_id == event_id)
            )
            return list(rows)

    async def wait_for_status(self, payment_id: int, status: str, within: float = 15) -> Payment:
        """The payment once it reaches `status` (a refund may wait for a retry of its event)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            payment = await self.payment(payment_id)
            if payment.status == status:
                return payment
            if loop.time() > deadline:
                raise AssertionError(f"payment {payment_id} is {payment.status}, not {status}")
            await asyncio.sleep(0.05)

    async def balance(self, user: TestUser) -> int:
        response = await self.api.get("/api/points/balance/", token=user.access)
        assert response.status_code == 200, response.text
        balance: int = response.json()["balance"]
        return balance

    async def assert_ledger_clean(self) -> None:
        report = await audit_ledger(self.deps.db)
        assert report.ok, report.violations


@contextlib.asynccontextmanager
async def stripe_shop(**overrides: Any) -> AsyncIterator[Shop]:
    """The fake Stripe, and the app configured for it with its worker beside it."""
    async with running_stripe() as stripe, own_database() as own:
        configured: dict[str, Any] = {
            "stripe_secret_key": stripe.secret_key,
            "stripe_webhook_secret": stripe.webhook_secret,
            "stripe_api_base": stripe.base_url,
            # A refund that came before its payment's confirmation is retried a second later.
            "task_retry_base_seconds": 1,
        }
        settings = own.with_overrides(**{**configured, **overrides})
        deps = await build_test_deps(settings)
        app = make_app(settings, deps)
        server = make_server(app, settings)
        sock, port = tornado.testing.bind_unused_port()
        server.add_sockets([sock])
        pool = Database(create_engine(settings))
        worker = InProcess(dataclasses.replace(deps, db=pool), HANDLERS, jobs=[])
        await worker.start()
        url = f"http://127.0.0.1:{port}"
        try:
            async with api_client(url) as api:
                yield Shop(api, deps, stripe, url)
        finally:
            server.stop()
            await server.close_all_connections()
            await worker.close()
            await pool.dispose()
            await deps.close()
