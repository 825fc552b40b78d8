"""The TaskIQ broker: taskiq-redis's stream broker with Redis, TaskIQ's in-memory one without.

The stream broker reads through a consumer group and acknowledges a message once its task
has finished, so a message is delivered at least once; `maxlen` keeps the stream bounded and
`idle_timeout` (longer than any task) is when an unacknowledged message goes to another worker.
Built inside the running loop by the process that uses it, never at import.
"""

from __future__ import annotations

from taskiq import AsyncBroker, InMemoryBroker
from taskiq_redis import RedisStreamBroker

from skillswap.settings import Settings

CONSUMER_GROUP = "skillswap-workers"


def task_stream(settings: Settings) -> str:
    """The Redis stream the tasks go through."""
    return f"{settings.redis_prefix}tasks"


def make_broker(settings: Settings) -> AsyncBroker:
    """The broker for this deployment: Redis streams when REDIS_URL is set, else in-process."""
    if not settings.redis_url:
        # Runs each task as soon as it is sent, on this loop: the embedded `serve` is its worker.
        return InMemoryBroker(max_async_tasks=settings.worker_concurrency)
    return RedisStreamBroker(
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
