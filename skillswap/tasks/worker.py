"""The processes' background loops: a worker (relay + TaskIQ receiver), and everything at once
inside the embedded `serve`.

`run_worker` is one `skillswap worker` process: its relay publishes due outbox rows to the
Redis stream, its receiver runs the tasks it reads. On the stop event (SIGTERM) the relay
stops, the receiver stops taking tasks, and the running ones get
WORKER_SHUTDOWN_TIMEOUT_SECONDS to finish; one still running then is cut off and its row handed
back to the outbox at once (pending, relays woken), so another worker runs it without waiting
for its lease to run out. `InProcess` is the same relay on TaskIQ's
in-memory broker, with the scheduler, for the embedded default.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from taskiq import InMemoryBroker
from taskiq.receiver import Receiver

from skillswap.tasks.broker import make_broker
from skillswap.tasks.definitions import OutboxHandlers, Tasks, register_tasks
from skillswap.tasks.jobs import Job, scheduled_jobs
from skillswap.tasks.relay import OutboxRelay
from skillswap.tasks.scheduler import Scheduler, scheduler_lock

if TYPE_CHECKING:
    from skillswap.deps import Deps

log = logging.getLogger("skillswap.tasks.worker")


async def run_worker(deps: Deps, handlers: OutboxHandlers, stop: asyncio.Event) -> None:
    """One worker process's loop, until `stop` is set and its running tasks finished."""
    settings = deps.settings
    broker = make_broker(settings)
    tasks = register_tasks(broker, deps, handlers)
    broker.is_worker_process = True
    await broker.startup()
    relay = OutboxRelay(deps, tasks.publish)
    finish = asyncio.Event()
    with ThreadPoolExecutor(max_workers=1) as executor:
        receiver = Receiver(
            broker,
            executor=executor,
            max_async_tasks=settings.worker_concurrency,
            run_startup=False,
            wait_tasks_timeout=settings.worker_shutdown_timeout_seconds,
        )
        listening = asyncio.create_task(receiver.listen(finish))
        relaying = asyncio.create_task(relay.run(stop))
        try:
            await _until_stopped_or_failed(stop, listening, relaying)
        finally:
            stop.set()
            finish.set()
            await asyncio.gather(relaying, return_exceptions=True)
            try:
                await asyncio.wait_for(
                    listening, timeout=settings.worker_shutdown_timeout_seconds + 10
                )
            except (TimeoutError, asyncio.CancelledError):
                log.warning("worker stopped before its running tasks finished")
            # The receiver waited WORKER_SHUTDOWN_TIMEOUT_SECONDS: what still runs is cut off
            # and handed back, for another worker to take now rather than after the lease.
            await tasks.hand_back_running(deps)
            await broker.shutdown()


async def _until_stopped_or_failed(stop: asyncio.Event, *loops: asyncio.Task[None]) -> None:
    """Wait for `stop`; a loop that ends first (it failed) ends the worker with its error."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({stopping, *loops}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    for task in done:
        if task is not stopping:
            task.result()  # raises what ended it
            raise RuntimeError("a worker loop ended by itself")


class InProcess:
    """The relay, an in-memory worker and the scheduler inside one process (embedded `serve`).

    `jobs` are the scheduler's (the deployment's periodic jobs unless given; none: no scheduler).
    """

    def __init__(
        self, deps: Deps, handlers: OutboxHandlers, *, jobs: list[Job] | None = None
    ) -> None:
        self.deps = deps
        self.broker = InMemoryBroker(max_async_tasks=deps.settings.worker_concurrency)
        self.tasks: Tasks = register_tasks(self.broker, deps, handlers)
        self.relay = OutboxRelay(deps, self.tasks.publish)
        jobs = scheduled_jobs(deps.settings) if jobs is None else jobs
        self.scheduler = Scheduler(deps, jobs, scheduler_lock(deps.settings)) if jobs else None
        self._stop = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.broker.startup()
        self._loops = [asyncio.create_task(self.relay.run(self._stop), name="outbox relay")]
        if self.scheduler is not None:
            self._loops.append(
                asyncio.create_task(self.scheduler.run(self._stop), name="scheduler")
            )

    async def close(self) -> None:
        """Stop the relay and the scheduler; running tasks get the shutdown timeout."""
        self._stop.set()
        await asyncio.gather(*self._loops, return_exceptions=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(
                self.broker.wait_all(), timeout=self.deps.settings.worker_shutdown_timeout_seconds
            )
        await self.tasks.hand_back_running(self.deps)  # pending again for the next start
        await self.broker.shutdown()
