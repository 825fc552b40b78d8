"""Nothing lost: a worker SIGKILLed in the middle of 30 sign-ups, and Redis restarted during a
burst of them. Real `serve`, `worker` and `scheduler` processes on a database of their own, a
real SMTP server (tests/smtp_server.py) in this process; every verification mail must arrive.

PostgreSQL is the source of truth, not the broker: a row claimed by a worker that died is
published again once its lease runs out (the scheduler's `outbox_leases` job), and a stream lost
with Redis is refilled from the rows that are still pending or running. What may happen twice is
a mail whose SMTP answer never reached its sender: the server took it, the worker died before it
heard so. The server here holds each answer a moment (`answer_delay`), so a kill always leaves
such mails behind; they come again with the same Message-ID, and nothing else does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import select
from taskiq import AckableMessage, BrokerMessage

from skillswap.db import Database, create_engine
from skillswap.mail.smtp import message_id_for
from skillswap.models import OutboxRow
from skillswap.notifications.outgoing import MAIL_CODE
from skillswap.settings import Settings
from skillswap.tasks.broker import make_broker
from tests.chat_support import wait_for
from tests.conftest import free_port, make_settings, node_env, own_database
from tests.factories import unique_name
from tests.processes import Child, skillswap
from tests.smtp_server import ReceivedMail, SmtpServer

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

SENDER = "SkillSwap <no-reply@skillswap.test>"
# token_urlsafe: letters, digits, "-" and "_"
VERIFY_CODE = re.compile(r"confirm your email address: ([\w-]+)$", re.MULTILINE)
# Tasks one worker runs at once: the most mails a kill can leave half-sent.
CONCURRENCY = 5


def fast_outbox_env(
    own: Settings, smtp: SmtpServer, *, redis_url: str | None = None
) -> dict[str, str]:
    """A deployment whose outbox recovers within seconds: short leases checked every second,
    and, in production's order, a stream idle timeout longer than the lease (the lease brings a
    dead worker's rows back; its stream entries, reclaimed later, are stale and skipped); quick
    password hashing, so that a burst is a burst."""
    return {
        **node_env(own, redis_url=redis_url),
        "LOG_LEVEL": "INFO",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "SMTP_TLS": "none",
        "SMTP_TIMEOUT_SECONDS": "5",
        "EMAIL_FROM": SENDER,
        "OUTBOX_POLL_SECONDS": "1",
        "OUTBOX_LEASE_SECONDS": "5",
        "OUTBOX_LEASE_CHECK_INTERVAL_SECONDS": "1",
        "TASK_IDLE_TIMEOUT_SECONDS": "8",
        "TASK_RETRY_BASE_SECONDS": "1",
        "TASK_RETRY_MAX_SECONDS": "2",
        "WORKER_CONCURRENCY": str(CONCURRENCY),
        "WORKER_SHUTDOWN_TIMEOUT_SECONDS": "5",
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "1024",
    }


class RedisServer:
    """A redis-server of the test's own on a fixed port, stopped and started again at will."""

    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.logs = logs
        self.child: Child | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.child = await Child.start(
            "redis",
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            env=dict(os.environ),
            logs=self.logs,
        )  # fmt: skip

        async def pongs() -> bool:
            client = Redis.from_url(self.url, socket_connect_timeout=0.5)
            try:
                return bool(await client.ping())
            except RedisConnectionError:
                return False
            finally:
                await client.aclose()

        try:
            await wait_for(pongs, within=10, every=0.05)
        except BaseException:
            await self.child.kill()  # never left running behind a failed test
            raise

    async def stop(self) -> None:
        """SIGTERM: with nothing to save, Redis exits and its stream is gone with it."""
        assert self.child is not None
        assert await self.child.stop() == 0, self.child.log()


@dataclass
class Deployment:
    """serve + worker + scheduler on one database; `client` talks to serve."""

    env: dict[str, str]
    logs: Path
    db: Database
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

    async def mail_rows(self) -> dict[str, str]:
        """Every `mail.code` outbox row: its key and status."""
        async with self.db.read() as session:
            rows = await session.execute(
                select(OutboxRow.key, OutboxRow.status).where(OutboxRow.kind == MAIL_CODE)
            )
            return {key: str(status) for key, status in rows}


@contextlib.asynccontextmanager
async def deployment(own: Settings, env: dict[str, str], logs: Path) -> AsyncIterator[Deployment]:
    port = free_port()
    db = Database(create_engine(own))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
        running = Deployment(env, logs, db, client)
        try:
            await running.start("scheduler", "scheduler")
            await running.start("worker", "worker")
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


@dataclass(frozen=True)
class SignUp:
    address: str
    status: int
    content_type: str
    body: str


async def sign_up(client: httpx.AsyncClient) -> SignUp:
    name = unique_name()
    address = f"{name}@example.com"
    try:
        response = await client.post(
            "/api/auth/register/",
            json={"email": address, "username": name, "password": "correct horse battery"},
        )
    except httpx.HTTPError as exc:
        # No answer at all is something a client must never get; kept to be asserted on.
        return SignUp(address, 0, "", f"{type(exc).__name__}: {exc}")
    return SignUp(
        address, response.status_code, response.headers.get("content-type", ""), response.text
    )


def duplicates(mails: list[ReceivedMail]) -> dict[str, int]:
    """Message-IDs that arrived more than once, and how often."""
    counts = Counter(mail.message_id for mail in mails)
    return {message_id: n for message_id, n in counts.items() if n > 1}


def message_id_of(key: str) -> str:
    return f"<{message_id_for(key, sender=SENDER)}>"


async def every_address_mailed(smtp: SmtpServer, addresses: list[str], *, within: float) -> None:
    async def all_arrived() -> bool:
        return all(smtp.to(address) for address in addresses)

    try:
        await wait_for(all_arrived, within=within, every=0.1)
    except TimeoutError:
        missing = [address for address in addresses if not smtp.to(address)]
        raise AssertionError(f"no verification mail for {len(missing)}: {missing}") from None


async def every_row_done(running: Deployment, *, count: int, within: float) -> None:
    async def all_done() -> bool:
        statuses = list((await running.mail_rows()).values())
        return len(statuses) == count and all(status == "done" for status in statuses)

    try:
        await wait_for(all_done, within=within, every=0.2)
    except TimeoutError:
        left = Counter((await running.mail_rows()).values())
        raise AssertionError(f"mail.code rows not all done: {dict(left)}") from None


async def codes_work(client: httpx.AsyncClient, smtp: SmtpServer, addresses: list[str]) -> None:
    """The code in each address's mail confirms it, once; a duplicate carries the same code."""
    for address in addresses:
        codes = {VERIFY_CODE.search(mail.text).group(1) for mail in smtp.to(address)}  # type: ignore[union-attr]
        assert len(codes) == 1, (address, codes)
        response = await client.post("/api/auth/verify-email/", json={"token": codes.pop()})
        assert response.status_code == 200, (address, response.text)
        assert response.json()["verified"] is True


async def test_a_worker_killed_in_the_middle_of_30_sign_ups_loses_no_verification_mail(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    with SmtpServer() as smtp:
        # Each mail is taken at once and answered 0.3 s later: a worker killed then has
        # delivered mails it will send again.
        smtp.answer_delay = 0.3
        async with (
            own_database() as own,
            deployment(own, fast_outbox_env(own, smtp), tmp_path) as running,
        ):
            worker = running.children["worker"]
            signing_up = [asyncio.create_task(sign_up(running.client)) for _ in range(30)]

            def some_arrived_and_some_in_flight() -> bool:
                return len(smtp.received) >= 10 and smtp.answering > 0

            await wait_for(some_arrived_and_some_in_flight, within=30, every=0.005)
            await worker.kill()
            killed_at = time.monotonic()
            arrived_before = len(smtp.received)
            await asyncio.sleep(0.5)  # what the dead worker had already sent lands
            # Taken by the server but never known done: the mails that will come twice.
            unconfirmed = {mail.message_id for mail in smtp.received} - {
                message_id_of(key)
                for key, status in (await running.mail_rows()).items()
                if status == "done"
            }
            sign_ups = await asyncio.gather(*signing_up)
            assert [s.status for s in sign_ups] == [201] * 30, [s.body for s in sign_ups]
            addresses = [s.address for s in sign_ups]

            await running.start("worker-2", "worker")
            await every_address_mailed(smtp, addresses, within=40)
            recovered_in = time.monotonic() - killed_at
            await every_row_done(running, count=30, within=20)
            await codes_work(running.client, smtp, addresses)

            repeated = duplicates(list(smtp.received))
            print(
                f"SIGKILL after {arrived_before} of 30 mails: {len(repeated)} duplicates "
                f"({len(unconfirmed)} mails unconfirmed at the kill); all 30 arrived "
                f"{recovered_in:.1f} s after the kill, {time.monotonic() - started:.1f} s in all"
            )
            assert set(repeated) == unconfirmed, running.logs_text()
            assert all(n == 2 for n in repeated.values()), repeated
            assert 1 <= len(unconfirmed) <= CONCURRENCY
            assert len(smtp.received) == 30 + len(repeated)
            statuses = await running.stop_all()
        assert statuses == {"scheduler": 0, "worker": -signal.SIGKILL, "serve": 0, "worker-2": 0}, (
            running.logs_text()
        )


async def steady_sign_ups(client: httpx.AsyncClient, *, count: int, every: float) -> list[SignUp]:
    """`count` sign-ups, one started every `every` seconds, each not waiting for the others."""
    started = []
    for _ in range(count):
        started.append(asyncio.create_task(sign_up(client)))
        await asyncio.sleep(every)
    return list(await asyncio.gather(*started))


async def test_redis_restarted_during_a_burst_of_sign_ups_loses_no_verification_mail(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    redis = RedisServer(tmp_path)
    try:
        await redis.start()
        with SmtpServer() as smtp:
            smtp.answer_delay = 0.05
            async with (
                own_database() as own,
                deployment(
                    own, fast_outbox_env(own, smtp, redis_url=redis.url), tmp_path
                ) as running,
            ):
                # 7 s of sign-ups; Redis is away from the 2nd to the 4th second. A sign-up's
                # row is in PostgreSQL: whatever the stream held is published again.
                burst = asyncio.create_task(steady_sign_ups(running.client, count=70, every=0.1))
                await asyncio.sleep(2)
                await redis.stop()
                stopped_at = time.monotonic()
                await asyncio.sleep(2)
                await redis.start()
                restarted_at = time.monotonic()
                sign_ups = await burst

                made = [s for s in sign_ups if s.status == 201]
                refused = [s for s in sign_ups if s.status != 201]
                for s in refused:
                    assert 500 <= s.status < 600, s
                    assert s.content_type.startswith("application/problem+json"), s
                addresses = [s.address for s in made]
                await every_address_mailed(smtp, addresses, within=40)
                delivered_in = time.monotonic() - restarted_at
                await every_row_done(running, count=len(made), within=20)
                await codes_work(running.client, smtp, addresses[:5])
                repeated = duplicates(list(smtp.received))
                assert len(repeated) <= CONCURRENCY, repeated
                print(
                    f"Redis down {restarted_at - stopped_at:.1f} s during 70 sign-ups: "
                    f"{len(made)} made, {len(refused)} refused "
                    f"({Counter(s.status for s in refused)}), {len(repeated)} duplicates; "
                    f"all mailed {delivered_in:.1f} s after the restart, "
                    f"{time.monotonic() - started:.1f} s in all"
                )
                # The one worker process read on through the outage: nothing restarted it.
                worker = running.children["worker"]
                assert worker.running, running.logs_text()
                assert "reading the task stream again" in worker.log()
                statuses = await running.stop_all()
            assert statuses == {"scheduler": 0, "worker": 0, "serve": 0}, running.logs_text()
    finally:
        if redis.child is not None:
            await redis.child.stop()


def a_message(text: bytes) -> BrokerMessage:
    return BrokerMessage(task_id=text.decode(), task_name="any", message=text, labels={})


async def acknowledge(message: AckableMessage) -> None:
    acked = message.ack()
    if acked is not None:
        await acked


async def test_the_stream_broker_reads_on_after_redis_restarts_empty(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    await redis.start()
    broker = make_broker(make_settings(redis_url=redis.url, redis_prefix=f"{unique_name()}:"))
    messages = broker.listen()
    reading: asyncio.Future[bytes | AckableMessage] | None = None
    try:
        await broker.startup()
        await broker.kick(a_message(b"before"))
        before = await asyncio.wait_for(anext(messages), timeout=5)
        assert isinstance(before, AckableMessage) and before.data == b"before"
        await redis.stop()
        reading = asyncio.ensure_future(anext(messages))
        # Its task done while Redis is away: the acknowledgement is dropped, not raised.
        await acknowledge(before)
        await asyncio.sleep(1.5)
        assert not reading.done()  # waiting for Redis, not failed
        await redis.start()  # empty: no stream, no consumer group
        await broker.kick(a_message(b"after"))
        after = await asyncio.wait_for(reading, timeout=10)
        assert isinstance(after, AckableMessage) and after.data == b"after"
        await acknowledge(after)
    finally:
        if reading is not None and not reading.done():
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
        await messages.aclose()
        await broker.shutdown()
        if redis.child is not None:
            await redis.child.stop()
