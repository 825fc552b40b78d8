"""Two schedulers sweeping lesson reminders at once, on PostgreSQL: each person is reminded
once. The schedulers are two real processes (`skillswap.lessons.reminders` bootstrapped in
each, started together), or, where the test must pause one mid-transaction, a second Deps of
this process with its own engine and connections (`build_test_deps`) on the same database."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from skillswap.deps import Deps
from skillswap.lessons.reminders import send_due_reminders
from skillswap.models import Lesson, LessonReminder, Notification, OutboxRow
from tests.conftest import OwnApp, build_test_deps, node_env
from tests.lesson_support import lesson_order
from tests.processes import ROOT

pytestmark = pytest.mark.postgres

DAY = 86400
STARTS = datetime(2027, 3, 2, 9, 0, tzinfo=UTC)
DUE = STARTS - timedelta(seconds=DAY) + timedelta(hours=1)  # each 23 h to 23 h 45 ahead


# A scheduler process reduced to the job: bootstrapped from its environment, it sweeps at the
# wall-clock moment it is given (so two start together), with the `now` it is given.
SWEEP_PROCESS = """
import asyncio, sys, time
from datetime import datetime

from skillswap.bootstrap import bootstrap
from skillswap.lessons.reminders import send_due_reminders
from skillswap.settings import Settings


async def main():
    deps = await bootstrap(Settings.from_env())
    try:
        await asyncio.sleep(max(0.0, float(sys.argv[2]) - time.time()))
        print(await send_due_reminders(deps, now=datetime.fromisoformat(sys.argv[1])))
    finally:
        await deps.close()


asyncio.run(main())
"""


async def sweep_in_processes(app: OwnApp, processes: int) -> list[int]:
    """What each of `processes` scheduler processes sweeping at one moment sent."""
    start_at = time.time() + 3  # after every process has started and bootstrapped
    env = node_env(app.deps.settings)
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SWEEP_PROCESS,
            DUE.isoformat(),
            str(start_at),
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    sent = []
    for child in children:
        out, err = await asyncio.wait_for(child.communicate(), timeout=60)
        assert child.returncode == 0, err.decode()
        sent.append(int(out.decode().split()[-1]))
    return sent


async def test_two_scheduler_processes_sweeping_at_once_remind_each_person_once(
    own_app: OwnApp,
):
    await book(own_app, 40)
    sent = await sweep_in_processes(own_app, 2)
    assert sum(sent) == 80, sent
    assert await counts(own_app.deps) == (80, 80, 80)
    assert await sweep_in_processes(own_app, 2) == [0, 0]


@contextlib.asynccontextmanager
async def second_scheduler(app: OwnApp) -> AsyncIterator[Deps]:
    other = await build_test_deps(app.deps.settings)
    try:
        yield other
    finally:
        await other.close()


async def book(app: OwnApp, lessons: int) -> list[int]:
    """`lessons` lessons at STARTS, 15 minutes apart, between a few pairs of people."""
    orders = []
    pairs = [(await app.user(), await app.user()) for _ in range(max(1, lessons // 4))]
    for n in range(lessons):
        learner, teacher = pairs[n % len(pairs)]
        order = await lesson_order(
            app.api,
            app.deps,
            learner,
            teacher,
            starts_at=STARTS + timedelta(minutes=15 * (n // len(pairs))),
            minutes=15,
            price=1,
        )
        orders.append(int(order["id"]))
    return orders


async def counts(deps: Deps) -> tuple[int, int, int]:
    """Reminder rows, reminder notifications, and their delivery rows."""
    async with deps.db.read() as session:
        reminders = await session.scalar(select(func.count()).select_from(LessonReminder))
        notified = await session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.kind == "lesson_reminder")
        )
        delivered = await session.scalar(
            select(func.count())
            .select_from(OutboxRow)
            .where(
                OutboxRow.kind == "notification.deliver",
                OutboxRow.key.in_(
                    select(func.concat("notification:", Notification.id)).where(
                        Notification.kind == "lesson_reminder"
                    )
                ),
            )
        )
    return int(reminders or 0), int(notified or 0), int(delivered or 0)


async def test_two_schedulers_of_one_process_sweeping_at_once_remind_each_person_once(
    own_app: OwnApp,
):
    await book(own_app, 24)
    async with second_scheduler(own_app) as other:
        first = await asyncio.gather(
            send_due_reminders(own_app.deps, now=DUE), send_due_reminders(other, now=DUE)
        )
        assert sum(first) == 48, first
        for minute in (0, 1):  # the same minute again, and the next, by both at once
            again = await asyncio.gather(
                send_due_reminders(own_app.deps, now=DUE + timedelta(minutes=minute)),
                send_due_reminders(other, now=DUE + timedelta(minutes=minute)),
            )
            assert again == [0, 0]
    assert await counts(own_app.deps) == (48, 48, 48)


async def test_a_sweep_waits_for_the_other_schedulers_and_sends_nothing_it_sent(
    own_app: OwnApp,
):
    (order_id,) = await book(own_app, 1)
    async with own_app.deps.db.read() as session:
        lesson = await session.get(Lesson, order_id)
        assert lesson is not None
    async with second_scheduler(own_app) as other, other.db.uow() as uow:
        # The other scheduler has recorded both reminders and not committed yet.
        for user_id in (lesson.seller_id, lesson.buyer_id):
            uow.session.add(
                LessonReminder(order_id=order_id, user_id=user_id, offset_seconds=DAY, sent_at=DUE)
            )
        await uow.session.flush()
        sweep = asyncio.create_task(send_due_reminders(own_app.deps, now=DUE))
        await asyncio.sleep(0.5)
        assert not sweep.done()  # it waits on the rows in flight: the database decides
        await uow.commit()
    assert await asyncio.wait_for(sweep, timeout=10) == 0
    assert await counts(own_app.deps) == (2, 0, 0)


async def test_a_sweep_whose_rival_rolled_back_sends_the_reminders_itself(own_app: OwnApp):
    (order_id,) = await book(own_app, 1)
    async with own_app.deps.db.read() as session:
        lesson = await session.get(Lesson, order_id)
        assert lesson is not None
    async with second_scheduler(own_app) as other:
        async with other.db.uow() as uow:
            for user_id in (lesson.seller_id, lesson.buyer_id):
                uow.session.add(
                    LessonReminder(
                        order_id=order_id, user_id=user_id, offset_seconds=DAY, sent_at=DUE
                    )
                )
            await uow.session.flush()
            sweep = asyncio.create_task(send_due_reminders(own_app.deps, now=DUE))
            await asyncio.sleep(0.5)
            assert not sweep.done()
            await uow.rollback()  # that scheduler died before committing
        assert await asyncio.wait_for(sweep, timeout=10) == 2
    assert await counts(own_app.deps) == (2, 2, 2)
