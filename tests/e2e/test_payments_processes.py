"""A Stripe payment across real processes: `serve`, `worker` and `scheduler` on a database of
their own, the fake Stripe (tests/fakes/stripe_server.py) in this process, reached over HTTP.

The webhook is stored (answered 2xx) by `serve`; its processing is an outbox row the worker
runs. A worker that is not running, or is SIGKILLed in the middle of processing, loses nothing:
the row waits, or its lease runs out and the scheduler hands it back, and the next worker
credits the payment exactly once. To land the kill inside the processing, this test holds the
payment's row lock (as any concurrent settlement would) and kills the worker while PostgreSQL
shows it waiting for that lock, in the transaction that has already claimed the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from skillswap.db import Database, create_engine
from skillswap.models import LedgerTransfer, OutboxRow, Payment, PaymentEvent
from skillswap.payments.services import EVENT_KIND
from skillswap.payments.settlement import credit_key
from skillswap.settings import Settings
from tests.chat_support import wait_for
from tests.conftest import free_port, node_env, own_database
from tests.factories import unique_name
from tests.fakes.stripe_server import FakeStripe, running_stripe
from tests.payments_support import insert_package
from tests.processes import Child, skillswap

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

SIGNUP_BONUS = 100
POINTS, PRICE_MINOR = 250, 999
WEBHOOK = "/api/payments/stripe/webhook/"
# A worker waiting on the payment's row lock, inside the settlement's transaction.
WAITING_FOR_THE_PAYMENT_LOCK = text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND wait_event_type = 'Lock' AND query ILIKE '%FROM payments%FOR UPDATE%'"
)


def payments_env(own: Settings, stripe: FakeStripe) -> dict[str, str]:
    """A deployment on the fake Stripe whose outbox recovers within seconds: short leases
    checked every second, a stream idle timeout longer than the lease (as in production),
    quick password hashing."""
    return {
        **node_env(own),
        "LOG_LEVEL": "INFO",
        "STRIPE_API_BASE": stripe.base_url,
        "STRIPE_SECRET_KEY": stripe.secret_key,
        "STRIPE_WEBHOOK_SECRET": stripe.webhook_secret,
        "OUTBOX_POLL_SECONDS": "1",
        "OUTBOX_LEASE_SECONDS": "5",
        "OUTBOX_LEASE_CHECK_INTERVAL_SECONDS": "1",
        "TASK_IDLE_TIMEOUT_SECONDS": "8",
        "TASK_RETRY_BASE_SECONDS": "1",
        "TASK_RETRY_MAX_SECONDS": "2",
        "WORKER_SHUTDOWN_TIMEOUT_SECONDS": "5",
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "1024",
        # Buyers sign up and buy at once: their balance starts with the bonus, as at signup.
        "SIGNUP_BONUS_ON": "signup",
    }


@dataclass
class Deployment:
    """serve + scheduler (and workers when the test starts them) on one database; `client`
    talks to serve."""

    env: dict[str, str]
    logs: Path
    db: Database
    stripe: FakeStripe
    client: httpx.AsyncClient
    children: dict[str, Child] = field(default_factory=dict)

    async def start(self, name: str, *args: str) -> Child:
        child = await skillswap(name, *args, env=self.env, logs=self.logs)
        self.children[name] = child
        return child

    async def stop_all(self) -> dict[str, int]:
        """SIGTERM to every process still running; each one's exit status."""
        statuses = await asyncio.gather(*(child.stop() for child in self.children.values()))
        return dict(zip(self.children, statuses, strict=True))

    def logs_text(self) -> str:
        return "\n".join(f"--- {name}\n{child.log()}" for name, child in self.children.items())

    async def user(self) -> str:
        """A new user's access token."""
        name = unique_name()
        response = await self.client.post(
            "/api/auth/register/",
            json={
                "email": f"{name}@example.com",
                "username": name,
                "password": "correct horse battery",
            },
        )
        assert response.status_code == 201, response.text
        access: str = response.json()["access"]
        return access

    async def package(self) -> int:
        return await insert_package(self.db, points=POINTS, price_minor=PRICE_MINOR, currency="USD")

    async def paid_purchase(self, access: str) -> tuple[int, dict[str, Any]]:
        """A purchase through serve, paid at Stripe: the payment's id and Stripe's event."""
        response = await self.client.post(
            "/api/points/purchase/",
            headers={"Authorization": f"Bearer {access}"},
            json={"package_id": await self.package(), "gateway": "stripe"},
        )
        assert response.status_code == 201, response.text
        payment_id: int = response.json()["id"]
        async with self.db.read() as session:
            session_id = await session.scalar(
                select(Payment.reference).where(Payment.id == payment_id)
            )
        assert session_id is not None
        self.stripe.pay(session_id)
        return payment_id, self.stripe.session_event("checkout.session.completed", session_id)

    async def deliver(self, event: dict[str, Any]) -> Any:
        """Stripe's delivery of the event to serve: answered 200, stored."""
        response = await self.stripe.deliver(str(self.client.base_url) + WEBHOOK, event)
        assert response.status_code == 200, response.text
        return response.json()

    async def balance(self, access: str) -> int:
        response = await self.client.get(
            "/api/points/balance/", headers={"Authorization": f"Bearer {access}"}
        )
        assert response.status_code == 200, response.text
        balance: int = response.json()["balance"]
        return balance

    async def event_work(self) -> list[str]:
        """The status of every `payment.event` outbox row."""
        async with self.db.read() as session:
            rows = await session.scalars(
                select(OutboxRow.status).where(OutboxRow.kind == EVENT_KIND)
            )
            return [str(status) for status in rows]

    async def stored(self, event: dict[str, Any]) -> list[PaymentEvent]:
        async with self.db.read() as session:
            rows = await session.scalars(
                select(PaymentEvent).where(PaymentEvent.event_id == event["id"])
            )
            return list(rows)

    async def payment(self, payment_id: int) -> Payment:
        async with self.db.read() as session:
            found = await session.get(Payment, payment_id)
        assert found is not None
        return found

    async def credits(self, payment_id: int) -> list[tuple[str, int, str]]:
        """Every ledger transfer of the payment: its key, amount and status."""
        async with self.db.read() as session:
            rows = await session.execute(
                select(
                    LedgerTransfer.idempotency_key, LedgerTransfer.amount, LedgerTransfer.status
                ).where(LedgerTransfer.payment_id == payment_id)
            )
            return [(key, amount, str(status)) for key, amount, status in rows]

    async def settled(self, payment_id: int, *, within: float) -> None:
        """The payment succeeded and every `payment.event` row is done."""

        async def done() -> bool:
            work = await self.event_work()
            return (await self.payment(payment_id)).status == "succeeded" and all(
                status == "done" for status in work
            )

        try:
            await wait_for(done, within=within, every=0.1)
        except TimeoutError:
            payment = await self.payment(payment_id)
            raise AssertionError(
                f"payment {payment.status}, event work {await self.event_work()}\n"
                + self.logs_text()
            ) from None

    async def assert_credited_once(self, payment_id: int, access: str) -> None:
        assert await self.balance(access) == SIGNUP_BONUS + POINTS
        assert await self.credits(payment_id) == [(credit_key(payment_id), POINTS, "posted")]

    async def ledger_check(self) -> None:
        """`python -m skillswap ledger check` as an operator runs it: exits 0."""
        checking = await self.start("ledger-check", "ledger", "check")
        assert await asyncio.wait_for(checking.process.wait(), timeout=60) == 0, checking.log()
        assert "ledger check ok" in checking.log(), checking.log()
        del self.children["ledger-check"]


@contextlib.asynccontextmanager
async def deployment(logs: Path) -> AsyncIterator[Deployment]:
    """The fake Stripe, and serve + scheduler configured for it on a database of their own."""
    port = free_port()
    async with running_stripe() as stripe, own_database() as own:
        db = Database(create_engine(own))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
            running = Deployment(payments_env(own, stripe), logs, db, stripe, client)
            try:
                await running.start("scheduler", "scheduler")
                serve = await running.start("serve", "serve", "--port", str(port))

                async def answers() -> bool:
                    if not serve.running:
                        raise RuntimeError(f"serve exited:\n{serve.log()}")
                    try:
                        return (await client.get("/healthz")).status_code == 200
                    except httpx.HTTPError:
                        return False

                await wait_for(answers, within=60, every=0.2)
                yield running
            finally:
                await running.stop_all()
                await db.dispose()


async def test_a_webhook_stored_while_no_worker_runs_is_credited_once_by_the_next_worker(
    tmp_path: Path,
) -> None:
    async with deployment(tmp_path) as running:
        buyer = await running.user()
        payment_id, event = await running.paid_purchase(buyer)
        assert await running.deliver(event) == {"received": True, "duplicate": False}
        await asyncio.sleep(2)  # the scheduler's rounds pass: nobody else processes it
        assert await running.event_work() == ["pending"]
        assert (await running.payment(payment_id)).status == "pending"
        assert await running.balance(buyer) == SIGNUP_BONUS
        # Stripe retries meanwhile: the same event adds nothing.
        assert await running.deliver(event) == {"received": True, "duplicate": True}
        assert len(await running.stored(event)) == 1

        await running.start("worker", "worker")
        await running.settled(payment_id, within=20)
        assert await running.event_work() == ["done"]
        await running.assert_credited_once(payment_id, buyer)
        assert await running.deliver(event) == {"received": True, "duplicate": True}
        await asyncio.sleep(1)
        await running.assert_credited_once(payment_id, buyer)
        await running.ledger_check()
        statuses = await running.stop_all()
    assert statuses == {"scheduler": 0, "serve": 0, "worker": 0}, running.logs_text()


async def test_a_worker_killed_in_the_middle_of_settling_a_payment_leaves_it_to_the_next(
    tmp_path: Path,
) -> None:
    async with deployment(tmp_path) as running:
        worker = await running.start("worker", "worker")
        buyer = await running.user()
        payment_id, event = await running.paid_purchase(buyer)
        async with running.db.engine.connect() as holder:
            # The payment's row locked here, as a concurrent settlement would hold it: the
            # worker's transaction, which has claimed the event, waits for it.
            await holder.execute(
                select(Payment.id).where(Payment.id == payment_id).with_for_update()
            )
            assert await running.deliver(event) == {"received": True, "duplicate": False}

            async def waiting_inside() -> bool:
                async with running.db.read() as session:
                    waiting = await session.scalar(WAITING_FOR_THE_PAYMENT_LOCK)
                return bool(waiting) and await running.event_work() == ["running"]

            await wait_for(waiting_inside, within=10, every=0.02)
            await worker.kill()
            await holder.rollback()
        # Nothing of the dead worker's transaction stayed: the event is unprocessed.
        [stored] = await running.stored(event)
        assert stored.processed_at is None
        assert (await running.payment(payment_id)).status == "pending"
        assert await running.balance(buyer) == SIGNUP_BONUS
        assert await running.credits(payment_id) == []
        assert await running.deliver(event) == {"received": True, "duplicate": True}

        await running.start("worker-2", "worker")
        await running.settled(payment_id, within=30)
        assert await running.event_work() == ["done"]
        await running.assert_credited_once(payment_id, buyer)
        assert await running.deliver(event) == {"received": True, "duplicate": True}
        assert len(await running.stored(event)) == 1
        await running.ledger_check()
        statuses = await running.stop_all()
    assert statuses == {
        "scheduler": 0,
        "worker": -signal.SIGKILL,
        "serve": 0,
        "worker-2": 0,
    }, running.logs_text()


async def test_the_same_webhook_delivered_five_times_at_once_to_a_running_worker_credits_once(
    tmp_path: Path,
) -> None:
    async with deployment(tmp_path) as running:
        await running.start("worker", "worker")
        buyer = await running.user()
        payment_id, event = await running.paid_purchase(buyer)
        answers = await asyncio.gather(*(running.deliver(event) for _ in range(5)))
        assert sorted(answer["duplicate"] for answer in answers) == [False, True, True, True, True]
        assert all(answer["received"] is True for answer in answers)
        assert len(await running.stored(event)) == 1
        await running.settled(payment_id, within=20)
        assert await running.event_work() == ["done"]
        await running.assert_credited_once(payment_id, buyer)
        await running.ledger_check()
        statuses = await running.stop_all()
    assert statuses == {"scheduler": 0, "serve": 0, "worker": 0}, running.logs_text()
