"""The outbox: written in the caller's transaction, claimed once, leased, retried with backoff,
dead-lettered; delivered by the relay and a worker on the in-memory broker and on Redis."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from skillswap.bootstrap import bootstrap
from skillswap.deps import Deps
from skillswap.models import OutboxRow, OutboxStatus
from skillswap.tasks import outbox
from skillswap.tasks.definitions import PermanentTaskError, run_outbox_row
from skillswap.tasks.outbox import OutboxJob
from skillswap.tasks.relay import OutboxRelay
from skillswap.tasks.worker import InProcess, run_worker
from tests.chat_support import wait_for
from tests.conftest import own_database
from tests.mailer import RecordingMailer

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class FrozenClock:
    """A clock that moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Outbox:
    deps: Deps
    clock: FrozenClock

    async def enqueue(self, key: str, payload: dict[str, Any] | None = None, **kw: Any) -> None:
        async with self.deps.db.uow() as uow:
            await outbox.enqueue(
                uow, "test.record", key, payload or {"key": key}, now=self.clock(), **kw
            )
            await uow.commit()

    async def row(self, key: str) -> OutboxRow:
        async with self.deps.db.read() as session:
            row = await session.scalar(select(OutboxRow).where(OutboxRow.key == key))
        assert row is not None
        return row

    async def claim(self, limit: int = 100) -> list[OutboxJob]:
        return await outbox.claim_due(
            self.deps.db,
            limit=limit,
            lease_seconds=self.deps.settings.outbox_lease_seconds,
            now=self.clock(),
        )


@contextlib.asynccontextmanager
async def outbox_on_own_database(**overrides: Any) -> AsyncIterator[Outbox]:
    async with own_database() as own:
        clock = FrozenClock()
        deps = await bootstrap(
            own.with_overrides(**overrides), mailer=RecordingMailer(), clock=clock
        )
        try:
            yield Outbox(deps, clock)
        finally:
            await deps.close()


@dataclass
class Recorder:
    """An outbox handler that records each run, and fails while told to."""

    runs: list[OutboxJob] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)

    async def __call__(self, _deps: Deps, job: OutboxJob) -> None:
        self.runs.append(job)
        if self.failures:
            raise self.failures.pop(0)

    @property
    def handlers(self) -> dict[str, Any]:
        return {"test.record": self}


class SmtpBusy(Exception):
    """A transient failure with an answer saying when to try again."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"421 try again in {retry_after} s")
        self.retry_after = retry_after


async def test_a_row_is_written_only_when_the_transaction_commits_and_once_per_key():
    async with outbox_on_own_database() as box:
        async with box.deps.db.uow() as uow:
            await outbox.enqueue(uow, "test.record", "rolled-back", {}, now=box.clock())
            # left without commit: rolled back
        await box.enqueue("mail:1", {"n": 1})
        await box.enqueue("mail:1", {"n": 2})  # the same work again: nothing new
        async with box.deps.db.read() as session:
            rows = (await session.scalars(select(OutboxRow))).all()
        assert [(r.key, r.payload, r.status, r.attempts) for r in rows] == [
            ("mail:1", {"n": 1}, "pending", 0)
        ]
        assert rows[0].available_at == START
        assert rows[0].created_at == START


async def test_only_due_rows_are_claimed_each_once_and_leased():
    async with outbox_on_own_database(outbox_lease_seconds=300) as box:
        await box.enqueue("now")
        await box.enqueue("later", available_at=START + timedelta(seconds=60))
        claimed = await box.claim()
        assert [(job.key, job.attempts, job.payload) for job in claimed] == [
            ("now", 1, {"key": "now"})
        ]
        assert await box.claim() == []  # running rows are not claimed again
        row = await box.row("now")
        assert (row.status, row.leased_until) == ("running", START + timedelta(seconds=300))
        box.clock.advance(60)
        assert [job.key for job in await box.claim()] == ["later"]


async def test_concurrent_relays_never_claim_a_row_twice():
    async with outbox_on_own_database() as box:
        for n in range(60):
            await box.enqueue(f"row:{n}")
        batches = await asyncio.gather(*(box.claim(limit=7) for _ in range(12)))
        ids = [job.id for batch in batches for job in batch]
        assert len(ids) == 60
        assert len(set(ids)) == 60
        async with box.deps.db.read() as session:
            counts = dict(
                (
                    await session.execute(
                        select(OutboxRow.status, func.count()).group_by(OutboxRow.status)
                    )
                ).all()
            )
        assert counts == {"running": 60}


async def test_a_failing_row_backs_off_doubling_then_is_dead_lettered_with_its_error():
    async with outbox_on_own_database(
        task_max_attempts=3, task_retry_base_seconds=10, task_retry_max_seconds=15
    ) as box:
        recorder = Recorder(failures=[RuntimeError("421 busy")] * 3)
        await box.enqueue("mail:flaky")
        outcomes, delays = [], []
        for _ in range(3):
            (job,) = await box.claim()
            outcomes.append(await run_outbox_row(box.deps, recorder.handlers, job.id, job.attempts))
            row = await box.row("mail:flaky")
            delays.append((row.available_at - box.clock()).total_seconds())
            assert await box.claim() == []  # not before its backoff
            box.clock.advance(max(delays[-1], 0))
        assert outcomes == ["retry", "retry", "failed"]
        assert delays[:2] == [10, 15]  # 10, then 20 capped at 15
        row = await box.row("mail:flaky")
        assert (row.status, row.attempts, row.last_error) == (
            "failed",
            3,
            "RuntimeError: 421 busy",
        )
        assert len(recorder.runs) == 3
        assert await box.claim() == []  # the dead letter stays put
        failed = await outbox.list_failed(box.deps.db)
        assert [r.key for r in failed] == ["mail:flaky"]
        assert await outbox.retry_failed(box.deps.db, row.id, now=box.clock())
        row = await box.row("mail:flaky")
        assert (row.status, row.attempts) == ("pending", 0)
        (job,) = await box.claim()
        assert await run_outbox_row(box.deps, recorder.handlers, job.id, job.attempts) == "done"
        row = await box.row("mail:flaky")
        assert (row.status, row.done_at) == ("done", box.clock())
        assert not await outbox.retry_failed(box.deps.db, row.id, now=box.clock())


async def test_a_retry_after_longer_than_the_backoff_is_respected():
    async with outbox_on_own_database(task_retry_base_seconds=10) as box:
        recorder = Recorder(failures=[SmtpBusy(retry_after=120)])
        await box.enqueue("push:busy")
        (job,) = await box.claim()
        assert await run_outbox_row(box.deps, recorder.handlers, job.id, 1) == "retry"
        row = await box.row("push:busy")
        assert (row.status, row.available_at) == ("pending", START + timedelta(seconds=120))
        assert row.last_error == "SmtpBusy: 421 try again in 120 s"


async def test_a_permanent_failure_and_an_unknown_kind_are_dead_lettered_at_once():
    async with outbox_on_own_database(task_max_attempts=5) as box:
        recorder = Recorder(failures=[PermanentTaskError("550 no such mailbox")])
        await box.enqueue("mail:bounce")
        async with box.deps.db.uow() as uow:
            await outbox.enqueue(uow, "nobody.handles", "odd", {}, now=box.clock())
            await uow.commit()
        jobs = {job.key: job for job in await box.claim()}
        assert await run_outbox_row(box.deps, recorder.handlers, jobs["mail:bounce"].id, 1) == (
            "failed"
        )
        assert await run_outbox_row(box.deps, recorder.handlers, jobs["odd"].id, 1) == "failed"
        bounce, odd = await box.row("mail:bounce"), await box.row("odd")
        assert (bounce.status, bounce.attempts, bounce.last_error) == (
            "failed",
            1,
            "550 no such mailbox",
        )
        assert (odd.status, odd.last_error) == (
            "failed",
            "no handler for outbox kind 'nobody.handles'",
        )


async def test_a_row_whose_lease_ran_out_is_claimed_again_and_the_stale_message_does_nothing():
    async with outbox_on_own_database(outbox_lease_seconds=60, task_max_attempts=2) as box:
        recorder = Recorder()
        await box.enqueue("mail:lost")
        (first,) = await box.claim()  # published, then its worker was killed
        box.clock.advance(59)
        assert (
            await outbox.release_expired_leases(box.deps.db, now=box.clock(), max_attempts=2) == 0
        )
        box.clock.advance(2)
        assert (
            await outbox.release_expired_leases(box.deps.db, now=box.clock(), max_attempts=2) == 1
        )
        row = await box.row("mail:lost")
        assert (row.status, row.leased_until) == ("pending", None)
        (second,) = await box.claim()
        assert (second.id, second.attempts) == (first.id, 2)
        # The first claim's message, delivered late, finds the row claimed again: skipped.
        assert await run_outbox_row(box.deps, recorder.handlers, first.id, 1) == "skipped"
        assert await run_outbox_row(box.deps, recorder.handlers, second.id, 2) == "done"
        # A duplicate of the finished one (the stream redelivered it) is skipped too.
        assert await run_outbox_row(box.deps, recorder.handlers, second.id, 2) == "skipped"
        assert [job.attempts for job in recorder.runs] == [2]
        # Out of attempts, a lost lease dead-letters the row instead.
        await box.enqueue("mail:lost-twice")
        for _ in range(2):
            await box.claim()
            box.clock.advance(61)
            await outbox.release_expired_leases(box.deps.db, now=box.clock(), max_attempts=2)
        row = await box.row("mail:lost-twice")
        assert (row.status, row.attempts, row.last_error) == (
            "failed",
            2,
            "the lease ran out before the task reported",
        )


@contextlib.asynccontextmanager
async def live_deps(**overrides: Any) -> AsyncIterator[Deps]:
    """Deps on a database of its own with the real clock (relays and workers run live)."""
    async with own_database() as own:
        deps = await bootstrap(own.with_overrides(**overrides), mailer=RecordingMailer())
        try:
            yield deps
        finally:
            await deps.close()


async def _enqueue_live(deps: Deps, key: str) -> None:
    async with deps.db.uow() as uow:
        await outbox.enqueue(uow, "test.record", key, {"key": key}, now=deps.clock())
        await uow.commit()


async def _status(deps: Deps, key: str) -> str | None:
    async with deps.db.read() as session:
        return await session.scalar(select(OutboxRow.status).where(OutboxRow.key == key))


async def test_the_in_process_relay_and_worker_deliver_a_row_and_retry_a_failure():
    async with live_deps(redis_url="", outbox_poll_seconds=1, task_retry_base_seconds=1) as deps:
        recorder = Recorder(failures=[RuntimeError("transient")])
        background = InProcess(deps, recorder.handlers)
        await background.start()
        try:
            await _enqueue_live(deps, "mail:in-process")
            await wait_for(
                lambda: _is(deps, "mail:in-process", OutboxStatus.DONE), within=15, every=0.1
            )
        finally:
            await background.close()
        assert [(job.key, job.attempts) for job in recorder.runs] == [
            ("mail:in-process", 1),
            ("mail:in-process", 2),
        ]


async def _is(deps: Deps, key: str, status: OutboxStatus) -> bool:
    return await _status(deps, key) == status


@pytest.mark.redis
async def test_a_worker_on_the_redis_stream_delivers_rows_enqueued_before_and_while_it_runs():
    async with live_deps(outbox_poll_seconds=1) as deps:
        assert deps.settings.redis_url
        recorder = Recorder()
        await _enqueue_live(deps, "mail:before")
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(deps, recorder.handlers, stop))
        try:
            await wait_for(lambda: _is(deps, "mail:before", OutboxStatus.DONE), within=15)
            for n in range(20):
                await _enqueue_live(deps, f"mail:burst:{n}")
            for n in range(20):
                await wait_for(
                    lambda n=n: _is(deps, f"mail:burst:{n}", OutboxStatus.DONE), within=15
                )
        finally:
            stop.set()
            await asyncio.wait_for(worker, timeout=30)
        keys = [job.key for job in recorder.runs]
        assert sorted(keys) == sorted(["mail:before", *(f"mail:burst:{n}" for n in range(20))])


@pytest.mark.postgres
async def test_a_relay_is_woken_by_notify_at_commit_long_before_its_poll():
    async with live_deps(redis_url="", outbox_poll_seconds=60) as deps:
        recorder = Recorder()
        background = InProcess(deps, recorder.handlers)
        await background.start()
        try:
            await asyncio.sleep(0.5)  # the relay's first look found nothing; it now waits 60 s
            await _enqueue_live(deps, "mail:notified")
            await wait_for(lambda: _is(deps, "mail:notified", OutboxStatus.DONE), within=5)
        finally:
            await background.close()
        assert [job.key for job in recorder.runs] == ["mail:notified"]


async def test_two_schedulers_run_each_tick_once_and_the_second_takes_over_when_the_first_stops():
    from skillswap.tasks.jobs import Job
    from skillswap.tasks.scheduler import Scheduler, scheduler_lock

    async with live_deps() as deps:
        runs: list[tuple[str, float]] = []
        loop = asyncio.get_running_loop()

        def job_of(name: str) -> Job:
            async def tick(_deps: Deps, _now: datetime) -> None:
                runs.append((name, loop.time()))

            return Job("tick", 1, tick)

        stop_a, stop_b = asyncio.Event(), asyncio.Event()
        a = Scheduler(deps, [job_of("a")], scheduler_lock(deps.settings))
        b = Scheduler(deps, [job_of("b")], scheduler_lock(deps.settings))
        running_a = asyncio.create_task(a.run(stop_a))
        await wait_for(lambda: a.leading, within=5)
        running_b = asyncio.create_task(b.run(stop_b))
        await asyncio.sleep(3.5)
        assert not b.leading
        by_a = [t for name, t in runs if name == "a"]
        assert [name for name, _ in runs] == ["a"] * len(by_a)
        assert len(by_a) in {4, 5}  # at start, then once a second
        assert all(0.9 < later - earlier < 1.5 for earlier, later in itertools.pairwise(by_a))
        stop_a.set()
        await running_a
        await wait_for(lambda: b.leading, within=5)
        await wait_for(lambda: any(name == "b" for name, _ in runs), within=5)
        stop_b.set()
        await running_b
        first_b = next(t for name, t in runs if name == "b")
        assert first_b > by_a[-1]


async def test_the_sweep_deletes_old_done_rows_in_batches_and_keeps_failed_and_recent_ones():
    async with outbox_on_own_database(outbox_retention_seconds=3600) as box:
        recorder = Recorder(failures=[PermanentTaskError("550 refused")])
        await box.enqueue("old:failed")
        (job,) = await box.claim()
        assert await run_outbox_row(box.deps, recorder.handlers, job.id, 1) == "failed"
        for n in range(5):
            await box.enqueue(f"old:done:{n}")
        await box.enqueue("old:pending", available_at=START + timedelta(days=30))
        for job in await box.claim():
            assert await run_outbox_row(box.deps, recorder.handlers, job.id, 1) == "done"
        box.clock.advance(1800)
        await box.enqueue("recent:done")
        (job,) = await box.claim()
        await run_outbox_row(box.deps, recorder.handlers, job.id, 1)
        box.clock.advance(1801)  # the old rows are done 3601 s ago, the recent one 1801 s
        cutoff = box.clock() - timedelta(seconds=3600)
        assert await outbox.purge_done(box.deps.db, older_than=cutoff, batch=2) == 5
        async with box.deps.db.read() as session:
            left = (await session.execute(select(OutboxRow.key, OutboxRow.status))).all()
        assert sorted(left) == [
            ("old:failed", "failed"),
            ("old:pending", "pending"),
            ("recent:done", "done"),
        ]
        assert await outbox.purge_done(box.deps.db, older_than=cutoff) == 0  # a rerun: nothing


async def test_the_outbox_sweep_job_keeps_rows_within_the_retention():
    from skillswap.tasks.jobs import outbox_sweep

    async with outbox_on_own_database(outbox_retention_seconds=600) as box:
        recorder = Recorder()
        await box.enqueue("done:early")
        (job,) = await box.claim()
        await run_outbox_row(box.deps, recorder.handlers, job.id, 1)
        box.clock.advance(600)
        await outbox_sweep(box.deps, box.clock())
        assert (await box.row("done:early")).status == "done"  # exactly the retention: kept
        box.clock.advance(1)
        await outbox_sweep(box.deps, box.clock())
        async with box.deps.db.read() as session:
            assert await session.scalar(select(func.count()).select_from(OutboxRow)) == 0


async def test_a_row_starting_late_has_its_lease_renewed_from_its_start():
    async with outbox_on_own_database(outbox_lease_seconds=60) as box:
        seen: list[datetime | None] = []

        async def handler(deps: Deps, job: OutboxJob) -> None:
            seen.append((await box.row(job.key)).leased_until)

        await box.enqueue("mail:waited")
        (job,) = await box.claim()
        box.clock.advance(50)  # the message waited in the stream behind others
        assert await run_outbox_row(box.deps, {"test.record": handler}, job.id, 1) == "done"
        # Renewed from its start: the claim's lease had 10 s left, too little to send a mail.
        assert seen == [box.clock() + timedelta(seconds=60)]


class Broker:
    """A publish function that fails while told to, and counts its calls."""

    def __init__(self) -> None:
        self.away = False
        self.calls = 0
        self.sent: list[int] = []

    async def __call__(self, job: OutboxJob) -> None:
        self.calls += 1
        if self.away:
            raise ConnectionError("Redis is away")
        self.sent.append(job.id)


async def test_a_relay_claims_no_more_than_ten_batches_ahead_of_the_workers():
    async with outbox_on_own_database(outbox_batch_size=5) as box:
        for n in range(60):
            await box.enqueue(f"mail:{n}")
        broker = Broker()
        relay = OutboxRelay(box.deps, broker)
        while await relay.relay_once():
            pass
        assert len(broker.sent) == 50  # 10 batches of 5 in flight, none finished yet
        assert await outbox.running(box.deps.db) == 50
        assert await outbox.mark_done(box.deps.db, broker.sent[0], now=box.clock())
        assert await relay.relay_once() is True
        assert len(broker.sent) == 51


async def test_while_the_broker_is_away_the_batch_goes_back_and_wakes_do_not_retry_at_once():
    async with outbox_on_own_database(outbox_poll_seconds=1) as box:
        for n in range(3):
            await box.enqueue(f"mail:{n}")
        broker = Broker()
        broker.away = True
        relay = OutboxRelay(box.deps, broker)
        assert await relay.relay_once() is False
        assert [(await box.row(f"mail:{n}")).status for n in range(3)] == ["pending"] * 3
        assert [(await box.row(f"mail:{n}")).attempts for n in range(3)] == [0, 0, 0]
        for _ in range(5):  # each new row wakes the relay: it waits for the poll instead
            assert await relay.relay_once() is False
        assert broker.calls == 1
        broker.away = False
        await asyncio.sleep(1.05)
        assert await relay.relay_once() is False  # a batch of 3 is not full
        assert len(broker.sent) == 3
