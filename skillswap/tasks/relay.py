"""The outbox relay: claims due rows and publishes each to the broker.

Woken by PostgreSQL's LISTEN/NOTIFY when a row is enqueued (the NOTIFY is sent at commit),
and by polling every OUTBOX_POLL_SECONDS in any case: a lost notification, a row enqueued to
run later, or the embedded SQLite database (which has no notifications) delay work by at most
one poll. Several relays share the table (`FOR UPDATE SKIP LOCKED`). A row whose message
cannot be sent goes back to pending; one sent but never finished is released by the lease job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy.engine import make_url

from skillswap.tasks import outbox
from skillswap.tasks.outbox import NOTIFY_CHANNEL, OutboxJob

if TYPE_CHECKING:
    from skillswap.deps import Deps

log = logging.getLogger("skillswap.tasks.relay")

Publish = Callable[[OutboxJob], Awaitable[None]]
# Rows a relay lets be claimed and unfinished at once, in batches (OUTBOX_BATCH_SIZE each).
MAX_BATCHES_IN_FLIGHT = 10


def listen_dsn(database_url: str) -> str:
    """The plain `postgresql://` DSN asyncpg connects to, from SQLAlchemy's URL."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class OutboxRelay:
    """Publishes due outbox rows until `run`'s stop event is set."""

    def __init__(self, deps: Deps, publish: Publish) -> None:
        self.deps = deps
        self.publish = publish
        self._wake = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self.published = 0
        self._broker_away = False
        self._broker_retry_at = 0.0

    def wake(self) -> None:
        """Look for due rows now rather than at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.deps.settings
        stop_waking = outbox.wake_on_commit(self.wake)
        try:
            while not stop.is_set():
                await self._listen()
                self._wake.clear()
                try:
                    full = await self.relay_once()
                except Exception:
                    log.exception("outbox relay failed; trying again at the next poll")
                    full = False
                if full:
                    continue  # more may be due at once
                await _first_of(stop, self._wake, within=settings.outbox_poll_seconds)
        finally:
            stop_waking()
            await self._unlisten()

    async def relay_once(self) -> bool:
        """Claim and publish one batch; whether more may be due at once."""
        settings = self.deps.settings
        loop = asyncio.get_running_loop()
        if loop.time() < self._broker_retry_at:
            return False  # the broker was away a moment ago: wait for the poll, not each wake
        # Claim no more than the workers have in hand: a lease runs from the claim, so rows
        # claimed far ahead of the workers would outlive their leases (and spend attempts)
        # while they wait in the stream.
        room = MAX_BATCHES_IN_FLIGHT * settings.outbox_batch_size - await outbox.running(
            self.deps.db
        )
        if room <= 0:
            return False
        limit = min(settings.outbox_batch_size, room)
        jobs = await outbox.claim_due(
            self.deps.db,
            limit=limit,
            lease_seconds=settings.outbox_lease_seconds,
            now=self.deps.clock(),
        )
        for index, job in enumerate(jobs):
            try:
                await self.publish(job)
            except Exception as exc:
                # The broker is away: this row and the rest of the batch go back to pending.
                for unsent in jobs[index:]:
                    await outbox.unclaim(self.deps.db, unsent)
                if not self._broker_away:
                    log.warning("the task broker is unreachable; outbox rows wait: %r", exc)
                self._broker_away = True
                self._broker_retry_at = loop.time() + settings.outbox_poll_seconds
                return False
            self.published += 1
        if self._broker_away and jobs:
            log.warning("the task broker is back; outbox rows are published again")
            self._broker_away = False
        return len(jobs) == limit

    async def _listen(self) -> None:
        """LISTEN on PostgreSQL (again, if the connection was lost); nothing on SQLite."""
        if not self.deps.db.on_driver:
            return
        if self._listener is not None and not self._listener.is_closed():
            return
        try:
            dsn = listen_dsn(self.deps.settings.effective_database_url)
            self._listener = await asyncpg.connect(dsn)
            await self._listener.add_listener(NOTIFY_CHANNEL, self._notified)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("outbox relay cannot LISTEN (%s); polling only", exc)
            self._listener = None

    def _notified(self, *_args: Any) -> None:
        self._wake.set()

    async def _unlisten(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
            self._listener = None


async def _first_of(*events: asyncio.Event, within: float) -> None:
    """Wait until one of `events` is set, or `within` seconds."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
