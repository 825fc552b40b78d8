"""The scheduler: runs the periodic jobs, in exactly one process per deployment.

Any number of schedulers may be started; only the one holding the scheduler lock runs jobs,
the others wait to take over. On PostgreSQL the lock is a session advisory lock on a
connection of its own, so it goes the moment its holder dies or loses the connection; on the
embedded SQLite database it is an exclusive `flock` on a file beside the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import asyncpg
from sqlalchemy.engine import make_url

from skillswap import metrics
from skillswap.settings import Settings
from skillswap.tasks.jobs import Job
from skillswap.tasks.relay import listen_dsn

if TYPE_CHECKING:
    from skillswap.deps import Deps

log = logging.getLogger("skillswap.tasks.scheduler")

# pg_try_advisory_lock's key: any fixed bigint of our own, the same in every process.
ADVISORY_LOCK_KEY = 0x5357_4150_5343_4844  # "SWAPSCHD"
LOCK_RETRY_SECONDS = 1.0


class SchedulerLock(Protocol):
    async def hold(self) -> bool:
        """Take the lock if free, or confirm it is still held; whether this process holds it."""

    async def release(self) -> None: ...


class AdvisoryLock:
    """A PostgreSQL session advisory lock held on a connection of its own."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._held = False

    async def hold(self) -> bool:
        try:
            if self._conn is None or self._conn.is_closed():
                self._held = False
                self._conn = await asyncpg.connect(self.dsn, timeout=5)
            if self._held:
                await self._conn.fetchval("SELECT 1", timeout=5)  # still ours if still connected
            else:
                self._held = bool(
                    await self._conn.fetchval(
                        "SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY, timeout=5
                    )
                )
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.warning("scheduler lost its database connection; the lock with it")
            await self.release()
        return self._held

    async def release(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)  # closing the session releases the lock


class FileLock:
    """An exclusive flock on a file: one scheduler per embedded database on this machine."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    async def hold(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing releases the flock


def scheduler_lock(settings: Settings) -> SchedulerLock:
    """The lock for this deployment's database."""
    url = settings.effective_database_url
    if settings.is_sqlite:
        database = make_url(url).database or "skillswap.sqlite3"
        return FileLock(Path(f"{database}.scheduler.lock"))
    return AdvisoryLock(listen_dsn(url))


class Scheduler:
    """Runs `jobs` at their intervals while holding `lock`, until `run`'s stop event is set."""

    def __init__(self, deps: Deps, jobs: list[Job], lock: SchedulerLock) -> None:
        self.deps = deps
        self.jobs = jobs
        self.lock = lock
        self.leading = False

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        next_run: dict[str, float] = {}
        try:
            while not stop.is_set():
                if not await self.lock.hold():
                    if self.leading:
                        log.warning("scheduler lock lost; waiting to take it again")
                    self.leading = False
                    next_run.clear()
                    await _sleep_unless(stop, LOCK_RETRY_SECONDS)
                    continue
                if not self.leading:
                    log.info("scheduler lock taken: this process runs the periodic jobs")
                    self.leading = True
                    start = loop.time()
                    next_run = {
                        job.name: start if job.at_start else start + job.interval_seconds
                        for job in self.jobs
                    }
                for job in self.jobs:
                    if stop.is_set():
                        break
                    if loop.time() >= next_run[job.name]:
                        await self._run_job(job)
                        # Ticks keep their rhythm; a job slower than its interval skips ticks.
                        next_run[job.name] = max(
                            next_run[job.name] + job.interval_seconds, loop.time()
                        )
                wait = min(next_run.values(), default=loop.time() + 60) - loop.time()
                # Confirm the lock at least every second or so while waiting for the next job.
                await _sleep_unless(stop, max(0.0, min(wait, LOCK_RETRY_SECONDS)))
        finally:
            await self.lock.release()
            self.leading = False

    async def _run_job(self, job: Job) -> None:
        try:
            await job.run(self.deps, self.deps.clock())
        except Exception:
            metrics.SCHEDULED_JOBS.labels(job.name, "failed").inc()
            log.exception("scheduled job %s failed; it runs again at its next tick", job.name)
        else:
            metrics.SCHEDULED_JOBS.labels(job.name, "ok").inc()


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
