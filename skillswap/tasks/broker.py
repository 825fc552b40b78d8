"""The TaskIQ broker: taskiq-redis's stream broker with Redis, TaskIQ's in-memory one without.

The stream broker reads through a consumer group and acknowledges a message once its task
has finished, so a message is delivered at least once; `maxlen` keeps the stream bounded and
`idle_timeout` (longer than any task) is when an unacknowledged message goes to another worker.
Built inside the running loop by the process that uses it, never at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq import AckableMessage, AsyncBroker, InMemoryBroker
from taskiq_redis import RedisStreamBroker

from skillswap.settings import Settings

log = logging.getLogger("skillswap.tasks.broker")

CONSUMER_GROUP = "skillswap-workers"
# How often a worker whose Redis went away asks whether it is back.
REJOIN_SECONDS = 1.0


def task_stream(settings: Settings) -> str:
    """The Redis stream the tasks go through."""
    return f"{settings.redis_prefix}tasks"


def _redis_away(exc: BaseException) -> bool:
    """Whether `exc` says Redis cannot be reached, or came back empty (the group is gone)."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith("NOGROUP")


class OutageProofStreamBroker(RedisStreamBroker):
    """taskiq-redis's stream broker, reading on when Redis goes away and comes back.

    taskiq-redis 1.2's `listen` raises whatever its connection raises; that ends TaskIQ's
    receiver and with it the worker process, for good when it is the only one (nothing restarts
    it). A Redis restarted empty has lost the stream and the consumer group too, so reading
    again answers NOGROUP. Here the reader waits until Redis answers, declares the group again
    (from the stream's start, so what the relays published meanwhile is read) and goes on; the
    entries lost with Redis are the outbox's to publish again, once their leases run out.
    """

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        while True:
            try:
                async with contextlib.aclosing(super().listen()) as messages:
                    async for message in messages:
                        yield message
            except (RedisConnectionError, RedisTimeoutError, ResponseError) as exc:
                if not _redis_away(exc):
                    raise
                log.warning("cannot read the task stream (%s); waiting for Redis", exc)
            await self._rejoin()

    async def _rejoin(self) -> None:
        """Wait until Redis answers, then declare the consumer group (again, if it was lost)."""
        while True:
            await asyncio.sleep(REJOIN_SECONDS)
            try:
                await self._declare_consumer_group()  # an existing group is left as it is
            except (RedisConnectionError, RedisTimeoutError):
                continue
            log.info("reading the task stream again")
            return

    # `id`: taskiq-redis passes it by that name.
    def _ack_generator(self, id: str, queue_name: str) -> Callable[[], Awaitable[None]]:
        ack = super()._ack_generator(id=id, queue_name=queue_name)

        async def ack_unless_redis_is_away() -> None:
            # The outcome is in the outbox row already: an entry left unacknowledged is at
            # worst delivered again, and then skipped as stale.
            try:
                await ack()
            except (RedisConnectionError, RedisTimeoutError, ResponseError) as exc:
                if not _redis_away(exc):
                    raise
                log.warning("task stream entry %s not acknowledged: %s", id, exc)

        return ack_unless_redis_is_away


def make_broker(settings: Settings) -> AsyncBroker:
    """The broker for this deployment: Redis streams when REDIS_URL is set, else in-process."""
    if not settings.redis_url:
        # Runs each task as soon as it is sent, on this loop: the embedded `serve` is its worker.
        return InMemoryBroker(max_async_tasks=settings.worker_concurrency)
    return OutageProofStreamBroker(
        settings.redis_url,
        queue_name=task_stream(settings),
        consumer_group_name=CONSUMER_GROUP,
        # Start a new group at the stream's beginning: what was sent before the first worker
        # started is still read.
        consumer_id="0",
        maxlen=settings.task_stream_maxlen,
        idle_timeout=settings.task_idle_timeout_seconds * 1000,
        # A killed worker may hold the reclaim lock; it is released after this.
        unacknowledged_lock_timeout=30,
        max_connection_pool_size=settings.worker_concurrency + 5,
    )
