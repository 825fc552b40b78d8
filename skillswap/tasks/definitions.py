"""The task definitions: thin wrappers that run one outbox row through its kind's handler.

Registered on a broker by `register_tasks` (nothing is registered at import). The task is
idempotent on the row: a row already done, dead-lettered, or claimed again since the message
was sent is left alone, so a duplicate delivery does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from taskiq import AsyncBroker, AsyncTaskiqDecoratedTask

from skillswap import metrics
from skillswap.models import OutboxStatus
from skillswap.tasks import outbox
from skillswap.tasks.outbox import OutboxJob

if TYPE_CHECKING:
    from skillswap.deps import Deps

log = logging.getLogger("skillswap.tasks")

OutboxHandler = Callable[["Deps", OutboxJob], Awaitable[None]]
OutboxHandlers = Mapping[str, OutboxHandler]

RUN_OUTBOX_ROW = "skillswap.run_outbox_row"


class PermanentTaskError(Exception):
    """A failure no retry can mend (a malformed payload, a refused address): dead-letter now.

    Any other exception is taken as transient and retried with backoff; one that carries a
    `retry_after` (seconds, as an SMTP or FCM answer may ask) is retried no sooner than that.
    """


async def run_outbox_row(deps: Deps, handlers: OutboxHandlers, row_id: int, attempt: int) -> str:
    """Run the row's handler and record the outcome; what happened, for the logs and tests."""
    settings = deps.settings
    started = time.perf_counter()
    job = await outbox.start(
        deps.db,
        row_id,
        attempt,
        lease_seconds=settings.outbox_lease_seconds,
        now=deps.clock(),
    )
    if job is None:
        # Done, failed, or claimed again since this message was sent.
        return _counted("unknown", "skipped", started)
    handler = handlers.get(job.kind)
    try:
        if handler is None:
            raise PermanentTaskError(f"no handler for outbox kind {job.kind!r}")
        await handler(deps, job)
    except PermanentTaskError as exc:
        await outbox.mark_failed(
            deps.db, row_id, error=str(exc), retry_at=None, max_attempts=settings.task_max_attempts
        )
        log.error("outbox row %d (%s) failed for good: %s", row_id, job.kind, exc)
        return _counted(job.kind, "failed", started)
    except Exception as exc:
        delay = outbox.retry_delay(
            job.attempts,
            base_seconds=settings.task_retry_base_seconds,
            max_seconds=settings.task_retry_max_seconds,
        )
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > delay:
            delay = int(retry_after)
        status = await outbox.mark_failed(
            deps.db,
            row_id,
            error=f"{type(exc).__name__}: {exc}",
            retry_at=deps.clock() + timedelta(seconds=delay),
            max_attempts=settings.task_max_attempts,
        )
        if status == OutboxStatus.FAILED:
            log.error("outbox row %d (%s) is out of attempts: %r", row_id, job.kind, exc)
            return _counted(job.kind, "failed", started)
        log.warning("outbox row %d (%s) failed, retried in %d s: %r", row_id, job.kind, delay, exc)
        return _counted(job.kind, "retry", started)
    await outbox.mark_done(deps.db, row_id, now=deps.clock())
    return _counted(job.kind, "done", started)


def _counted(kind: str, outcome: str, started: float) -> str:
    """Count a task's run by its kind and outcome (the metrics), and return the outcome."""
    metrics.TASKS.labels(kind, outcome).inc()
    if outcome != "skipped":
        metrics.TASK_DURATION.labels(kind).observe(time.perf_counter() - started)
    return outcome


@dataclass(frozen=True)
class Tasks:
    """The tasks registered on one broker, how the relay sends a claimed row, and the rows
    this process is running (row id -> the claim's attempt and the task running it)."""

    broker: AsyncBroker
    run_row: AsyncTaskiqDecoratedTask[Any, Any]
    running: dict[int, tuple[int, asyncio.Task[Any]]] = field(default_factory=dict)

    async def publish(self, job: OutboxJob) -> None:
        await self.run_row.kiq(job.id, job.attempts)

    async def hand_back_running(self, deps: Deps) -> int:
        """Cut off the runs still going (the shutdown timeout is over) and give their rows
        back to the outbox at once; how many were handed back."""
        running = list(self.running.items())
        for _row_id, (_attempt, task) in running:
            task.cancel()
        await asyncio.gather(*(task for _, (_, task) in running), return_exceptions=True)
        claims = [(row_id, attempt) for row_id, (attempt, _task) in running]
        handed = await outbox.hand_back(deps.db, claims, now=deps.clock())
        if handed:
            log.warning("%d outbox rows cut off by the shutdown were handed back", handed)
        return handed


def register_tasks(broker: AsyncBroker, deps: Deps, handlers: OutboxHandlers) -> Tasks:
    """Register this process's tasks on `broker`, bound to its `deps` and outbox handlers."""
    running: dict[int, tuple[int, asyncio.Task[Any]]] = {}

    async def run_row(row_id: int, attempt: int) -> str:
        task = asyncio.current_task()
        assert task is not None
        running[row_id] = (attempt, task)
        try:
            return await run_outbox_row(deps, handlers, row_id, attempt)
        finally:
            if running.get(row_id, (None, None))[1] is task:
                del running[row_id]

    return Tasks(broker, broker.register_task(run_row, task_name=RUN_OUTBOX_ROW), running)
