"""Lesson reminders: a mail over real SMTP and a push to the fake FCM, to each participant,
LESSON_REMINDERS before the start, in their language and time zone, once each.

Each test has an app on a database of its own, with its own relay and worker, the production
mailer pointed at a real SMTP server (tests/smtp_server.py) and push at the fake FCM
(tests/fakes/fcm_server.py). The scheduler's job is run by the test with the time it says.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from skillswap.deps import Deps
from skillswap.lessons.reminders import due_offset, lesson_time, send_due_reminders
from skillswap.models import Lesson, LessonReminder, Notification, Order, Skill
from skillswap.tasks.jobs import scheduled_jobs
from tests.conftest import Api, api_client, extra_server, own_database
from tests.e2e.test_email import smtp_settings
from tests.e2e.test_lesson_rules import act, iso, quarter_after, teaches_all_week
from tests.factories import TestUser, insert_skill, make_user
from tests.fakes.fcm_server import FakeFcm, running_fcm
from tests.lesson_support import lesson_order
from tests.outbox_support import outbox_settled
from tests.smtp_server import ReceivedMail, SmtpServer

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

DAY, HOUR = 86400, 3600
# A Tuesday in Cairo's winter (UTC+2): 12:00 UTC is 2 PM there, 7 AM in New York.
STARTS = datetime(2027, 1, 12, 12, 0, tzinfo=UTC)
DEVICES = "/api/notifications/devices/"
REMINDER_SUBJECTS = ("Reminder: ", "تذكير: ")


@dataclass
class App:
    api: Api
    deps: Deps
    smtp: SmtpServer
    fcm: FakeFcm

    async def user(self, **options: Any) -> TestUser:
        return await make_user(self.api, self.deps, **options)

    async def lesson(self, buyer: TestUser, seller: TestUser, **options: Any) -> int:
        order = await lesson_order(self.api, self.deps, buyer, seller, **options)
        return int(order["id"])

    async def sweep(self, at: datetime) -> int:
        sent = await send_due_reminders(self.deps, now=at)
        await outbox_settled(self.deps)
        return sent

    def reminders_to(self, user: TestUser) -> list[ReceivedMail]:
        return [m for m in self.smtp.to(user.email) if m.subject.startswith(REMINDER_SUBJECTS)]

    async def reminder_rows(self, order_id: int) -> list[tuple[int, int]]:
        async with self.deps.db.read() as session:
            rows = await session.execute(
                select(LessonReminder.user_id, LessonReminder.offset_seconds)
                .where(LessonReminder.order_id == order_id)
                .order_by(LessonReminder.user_id, LessonReminder.offset_seconds)
            )
            return [tuple(row) for row in rows]  # type: ignore[misc]

    async def notifications(self, user: TestUser) -> list[dict[str, Any]]:
        response = await self.api.get("/api/notifications/", token=user.access)
        assert response.status_code == 200, response.text
        return [n for n in response.json()["results"] if n["kind"] == "lesson_reminder"]


@contextlib.asynccontextmanager
async def reminders_app() -> AsyncIterator[App]:
    async with contextlib.AsyncExitStack() as stack:
        own = await stack.enter_async_context(own_database())
        smtp = stack.enter_context(SmtpServer())
        fcm = await stack.enter_async_context(running_fcm())
        settings = smtp_settings(
            own,
            smtp,
            outbox_poll_seconds=1,
            fcm_credentials_file=fcm.account_file(),
            fcm_api_base=fcm.base_url,
        )
        url, deps = await stack.enter_async_context(
            extra_server(settings, mailer=None, background=True)
        )
        api = await stack.enter_async_context(api_client(url))
        yield App(api, deps, smtp, fcm)


@pytest.fixture
async def app() -> AsyncIterator[App]:
    async with reminders_app() as built:
        yield built


async def _titles(deps: Deps, order_id: int, english: str, arabic: str) -> None:
    async with deps.db.uow() as uow:
        order = await uow.session.get(Order, order_id)
        assert order is not None
        await uow.session.execute(
            update(Skill)
            .where(Skill.id == order.skill_id)
            .values(title_en=english, title_ar=arabic)
        )
        await uow.commit()


async def test_the_arabic_teacher_is_mailed_in_arabic_with_the_cairo_time(app: App):
    teacher = await app.user(locale="ar", display_name="سارة", timezone="Africa/Cairo")
    learner = await app.user(display_name="Lina", timezone="America/New_York")
    order_id = await app.lesson(learner, teacher, starts_at=STARTS)
    await _titles(app.deps, order_id, "Oud lessons", "دروس العود")

    assert await app.sweep(STARTS - timedelta(seconds=DAY - 60)) == 2

    (to_teacher,) = app.reminders_to(teacher)
    assert to_teacher.message["Content-Language"] == "ar"
    when = "الثلاثاء، 12 يناير 2027، 2:00 م (Africa/Cairo)"
    assert to_teacher.subject == f"تذكير: دروس العود مع Lina، {when}"
    assert to_teacher.text == (
        "مرحبًا سارة،\n\n"
        f"يبدأ درسك دروس العود مع Lina يوم {when}.\n\n"
        f"أو افتح هذا الرابط: https://skillswap.test/orders/{order_id}\n"
    )
    assert '<html lang="ar" dir="rtl">' in to_teacher.html
    (to_learner,) = app.reminders_to(learner)
    assert to_learner.message["Content-Language"] == "en"
    assert to_learner.subject == (
        "Reminder: Oud lessons with سارة, Tuesday, January 12, 2027, 7:00\u202fAM"
        " (America/New_York)"
    )
    assert to_learner.text.splitlines()[2] == (
        "Your lesson Oud lessons with سارة starts on Tuesday, January 12, 2027, 7:00\u202fAM"
        " (America/New_York)."
    )
    assert await app.reminder_rows(order_id) == sorted([(teacher.id, DAY), (learner.id, DAY)])
    # The stored notification says it too, in the reader's language.
    (note,) = await app.notifications(teacher)
    assert note["text"] == f"يبدأ درسك دروس العود مع Lina يوم {when}."
    assert note["payload"] == {
        "order_id": order_id,
        "starts_at": "2027-01-12T12:00:00Z",
        "offset_seconds": DAY,
    }


async def test_the_reminder_is_pushed_to_each_participant_in_their_language(app: App):
    teacher = await app.user(locale="ar", display_name="سارة", timezone="Africa/Cairo")
    learner = await app.user(display_name="Lina", timezone="Europe/London")
    for user, token in ((teacher, "teacher-phone"), (learner, "learner-phone")):
        response = await app.api.post(
            DEVICES, token=user.access, json={"token": token, "platform": "android"}
        )
        assert response.status_code == 201, response.text
    order_id = await app.lesson(learner, teacher, starts_at=STARTS)
    await _titles(app.deps, order_id, "Oud lessons", "دروس العود")
    await outbox_settled(app.deps)  # the order's own notification, pushed to the teacher
    app.fcm.messages.clear()

    assert await app.sweep(STARTS - timedelta(seconds=HOUR - 30)) == 2

    (to_teacher,) = app.fcm.received("teacher-phone")
    assert to_teacher["notification"]["title"] == "تذكير بالدرس"
    assert to_teacher["notification"]["body"] == (
        "يبدأ درسك دروس العود مع Lina يوم الثلاثاء، 12 يناير 2027، 2:00 م (Africa/Cairo)."
    )
    assert to_teacher["data"]["kind"] == "lesson_reminder"
    assert to_teacher["data"]["order_id"] == str(order_id)
    assert to_teacher["data"]["offset_seconds"] == str(HOUR)
    (to_learner,) = app.fcm.received("learner-phone")
    assert to_learner["notification"]["title"] == "Lesson reminder"
    assert to_learner["notification"]["body"] == (
        "Your lesson Oud lessons with سارة starts on Tuesday, January 12, 2027, 12:00\u202fPM"
        " (Europe/London)."
    )


async def test_running_the_sweep_twice_or_every_minute_sends_each_reminder_once(app: App):
    teacher, learner = await app.user(), await app.user()
    order_id = await app.lesson(learner, teacher, starts_at=STARTS)
    day_before = STARTS - timedelta(seconds=DAY)

    assert await app.sweep(day_before - timedelta(minutes=1)) == 0  # not yet
    assert await app.sweep(day_before) == 2
    assert await app.sweep(day_before) == 0
    assert await app.sweep(day_before + timedelta(minutes=1)) == 0
    assert await app.sweep(STARTS - timedelta(seconds=HOUR, minutes=1)) == 0
    assert len(app.reminders_to(teacher)) == len(app.reminders_to(learner)) == 1

    assert await app.sweep(STARTS - timedelta(seconds=HOUR)) == 2
    assert await app.sweep(STARTS - timedelta(minutes=59)) == 0
    assert await app.sweep(STARTS - timedelta(minutes=1)) == 0
    assert await app.sweep(STARTS) == 0  # started: nothing more
    assert len(app.reminders_to(teacher)) == len(app.reminders_to(learner)) == 2
    assert len({m.message_id for m in app.reminders_to(teacher)}) == 2
    assert await app.reminder_rows(order_id) == sorted(
        [(teacher.id, HOUR), (teacher.id, DAY), (learner.id, HOUR), (learner.id, DAY)]
    )
    assert len(await app.notifications(teacher)) == 2


async def test_a_cancelled_lesson_gets_no_reminder(app: App):
    teacher, learner = await app.user(), await app.user()
    order_id = await app.lesson(learner, teacher, starts_at=STARTS)
    response = await app.api.post(
        f"/api/points/orders/{order_id}/cancel/", token=learner.access, json={}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"

    assert await app.sweep(STARTS - timedelta(seconds=DAY - 60)) == 0
    assert await app.sweep(STARTS - timedelta(seconds=HOUR - 60)) == 0
    assert app.reminders_to(teacher) == app.reminders_to(learner) == []
    assert await app.reminder_rows(order_id) == []
    assert await app.notifications(learner) == []


async def test_a_lesson_booked_two_hours_ahead_gets_the_hour_reminder_only(app: App):
    teacher, learner = await app.user(), await app.user()
    booked = app.deps.clock()
    starts = booked.replace(second=0, microsecond=0) + timedelta(hours=2)
    order_id = await app.lesson(learner, teacher, starts_at=starts)

    for minutes in range(0, 60, 15):  # the 24 h moment is long past: nothing
        assert await app.sweep(booked + timedelta(minutes=minutes)) == 0
    assert await app.sweep(starts - timedelta(seconds=HOUR)) == 2
    assert await app.reminder_rows(order_id) == sorted([(teacher.id, HOUR), (learner.id, HOUR)])
    assert len(app.reminders_to(teacher)) == 1


async def test_a_lesson_moved_to_two_hours_ahead_is_reminded_an_hour_before_its_new_time(
    app: App,
):
    teacher, learner = await app.user(), await app.user()
    await teaches_all_week(app.deps, teacher.id)
    now = app.deps.clock()
    first = quarter_after(now, timedelta(days=3))
    order_id = await app.lesson(learner, teacher, starts_at=first)
    async with app.deps.db.uow() as uow:  # booked two days ago
        booked = now - timedelta(days=2)
        await uow.session.execute(
            update(Lesson)
            .where(Lesson.order_id == order_id)
            .values(created_at=booked, timed_at=booked)
        )
        await uow.commit()
    accepted = await act(app.api, teacher, order_id, "accept")
    assert accepted.status_code == 200, accepted.text
    assert await app.sweep(first - timedelta(seconds=DAY)) == 2  # the 24 h reminders, sent

    moved_to = quarter_after(now, timedelta(hours=2, minutes=15))
    proposed = await act(app.api, learner, order_id, "propose_time", slot_start=iso(moved_to))
    assert proposed.status_code == 200, proposed.text
    moved = await act(app.api, teacher, order_id, "accept_time")
    assert moved.status_code == 200, moved.text
    assert await app.reminder_rows(order_id) == []  # the new time is reminded afresh

    # Its 24 h moment was past when it moved there: nothing until the hour before it.
    for minutes in range(0, 60, 15):
        assert await app.sweep(now + timedelta(minutes=minutes)) == 0
    assert await app.sweep(moved_to - timedelta(seconds=HOUR)) == 2
    assert await app.reminder_rows(order_id) == sorted([(teacher.id, HOUR), (learner.id, HOUR)])
    assert len(app.reminders_to(learner)) == 2  # the 24 h one of the first time, this one


async def test_an_accepted_lesson_is_reminded_and_other_orders_are_not(app: App):
    teacher, learner = await app.user(), await app.user()
    order_id = await app.lesson(learner, teacher, starts_at=STARTS)
    response = await app.api.post(
        f"/api/points/orders/{order_id}/accept/", token=teacher.access, json={}
    )
    assert response.status_code == 200, response.text
    plain = await app.api.post(
        "/api/points/orders/",
        token=learner.access,
        json={"skill_id": await insert_skill(app.deps, owner_id=teacher.id)},
    )
    assert plain.status_code == 201, plain.text
    assert await app.sweep(STARTS - timedelta(seconds=DAY)) == 2
    async with app.deps.db.read() as session:
        reminded = await session.scalar(select(func.count(func.distinct(LessonReminder.order_id))))
        notified = await session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.kind == "lesson_reminder")
        )
    assert (reminded, notified) == (1, 2)


def test_the_due_reminder_is_the_nearest_whose_moment_came_after_the_booking():
    offsets = (DAY, HOUR)
    booked = STARTS - timedelta(days=3)

    def due(at: datetime, booked_at: datetime = booked) -> int | None:
        return due_offset(offsets, starts_at=STARTS, booked_at=booked_at, now=at)

    assert due(STARTS - timedelta(days=2)) is None
    assert due(STARTS - timedelta(seconds=DAY)) == DAY
    assert due(STARTS - timedelta(hours=2)) == DAY
    assert due(STARTS - timedelta(seconds=HOUR)) == HOUR
    assert due(STARTS - timedelta(seconds=1)) == HOUR
    assert due(STARTS) is None
    # A scheduler back 30 minutes before the start: the hour reminder, not both.
    assert due(STARTS - timedelta(minutes=30)) == HOUR
    # Booked two hours ahead: the day's moment had passed; the hour's had not.
    late = STARTS - timedelta(hours=2)
    assert due(STARTS - timedelta(hours=2), late) is None
    assert due(STARTS - timedelta(minutes=61), late) is None
    assert due(STARTS - timedelta(minutes=60), late) == HOUR
    # Booked 30 minutes ahead: none at all.
    assert due(STARTS - timedelta(minutes=10), STARTS - timedelta(minutes=30)) is None


def test_lesson_times_are_written_in_the_readers_zone_across_daylight_saving():
    summer = datetime(2027, 7, 12, 12, 0, tzinfo=UTC)
    assert lesson_time(STARTS, zone="Africa/Cairo", locale="en") == (
        "Tuesday, January 12, 2027, 2:00\u202fPM (Africa/Cairo)"
    )
    assert lesson_time(summer, zone="Africa/Cairo", locale="ar") == (
        "الاثنين، 12 يوليو 2027، 3:00 م (Africa/Cairo)"
    )
    # A zone that is not one (never stored: the profile refuses it) reads as UTC.
    assert lesson_time(STARTS, zone="Nowhere/Else", locale="en").endswith("12:00\u202fPM (UTC)")


def test_the_scheduler_runs_the_reminders_every_minute(settings):
    jobs = {job.name: job for job in scheduled_jobs(settings)}
    assert jobs["lesson_reminders"].interval_seconds == 60
    assert settings.lesson_reminder_offsets == (DAY, HOUR)
