"""Lesson reminders: a mail and a push to each participant some time before a lesson starts.

The scheduler's `lesson_reminders` job (`send_due_reminders`) runs every minute with the time
it takes as `now`. LESSON_REMINDERS lists the offsets (seconds before the start, 24 h and 1 h
by default). For a lesson whose order is pending or accepted and that starts after `now`, the
reminder due is the nearest offset whose moment (`starts_at - offset`) has come: a scheduler
that was down through the 24 h moment and is back 30 minutes before the start sends the 1 h
reminder alone, not both. A reminder whose moment had passed when the lesson was booked
or moved (`lessons.timed_at`) is never sent: a lesson booked 2 h ahead gets the 1 h reminder
only.

Each reminder is sent once per lesson, participant and offset: the `lesson_reminders` row is
inserted with ON CONFLICT DO NOTHING, and only the rows this transaction inserted get their
notification (stored, with its `notification.deliver` outbox row that mails and pushes it) in
the same transaction. Two sweeps at once (two schedulers, or a re-run) insert the same keys;
on PostgreSQL the second waits for the first to commit and then inserts nothing, so whatever
runs, each person is reminded once. A lesson moved to a new time (an accepted proposal) is reminded
afresh: its sent rows are deleted with the move, and `timed_at` becomes the moment of the move.

The words are chosen when the reminder is due, for its reader: their language (`users.locale`),
the skill's title in it, the other participant's name, and the start in the reader's time zone
(`users.timezone`), written by Babel for that language.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

from babel import Locale
from babel.dates import format_date, format_time
from sqlalchemy import ColumnElement, Table, and_, exists, not_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute

from skillswap.api.encoding import iso
from skillswap.i18n import N_, lazy, negotiate_locale
from skillswap.lessons.availability import zone_of
from skillswap.models import Lesson, LessonReminder, Order, Skill, User
from skillswap.models.notifications import NotificationKind
from skillswap.models.orders import OrderStatus
from skillswap.notifications.services import notify

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from skillswap.deps import Deps

# The orders whose lessons are still to happen: booked (waiting for the teacher) or confirmed.
REMINDED_STATUSES = (OrderStatus.PENDING, OrderStatus.ACCEPTED)
PAGE_SIZE = 500  # lessons read per page of one run
MAX_PAGES = 20  # pages one run reads at most (the rest wait for the next minute)

REMINDER_TEXT = N_("Your lesson {skill} with {other} starts on {starts}.")

_reminders = cast(Table, LessonReminder.__table__)


def due_offset(
    offsets: tuple[int, ...], *, starts_at: datetime, booked_at: datetime, now: datetime
) -> int | None:
    """The reminder due for a lesson at `now`, as its offset; None when none is.

    The nearest offset whose moment has come, unless that moment was already past when the
    lesson was booked (a reminder about a booking just made says nothing).
    """
    if now >= starts_at:
        return None
    come = [offset for offset in offsets if starts_at - timedelta(seconds=offset) <= now]
    if not come:
        return None
    offset = min(come)
    if starts_at - timedelta(seconds=offset) < booked_at:
        return None
    return offset


def lesson_time(when: datetime, *, zone: str, locale: str) -> str:
    """`when` as its reader reads it: the full date and the time in their zone and language,
    with the zone's name ("Tuesday, January 12, 2027, 2:00 PM (Africa/Cairo)")."""
    tz = zone_of(zone)
    local = when.astimezone(tz)
    language = Locale.parse(locale)
    pattern = str(language.datetime_formats["full"]).replace("'", "")
    text = pattern.format(
        format_time(local, "short", locale=language), format_date(local, "full", locale=language)
    )
    return f"{text} ({tz.key})"


@dataclass(frozen=True)
class DueReminder:
    """One reminder to send now: to `user_id`, about the lesson of `order_id`."""

    order_id: int
    user_id: int
    other_id: int
    offset_seconds: int
    starts_at: datetime
    skill_en: str
    skill_ar: str


def _not_sent_to_both(offset: int) -> ColumnElement[bool]:
    """The lesson still owes someone the reminder of `offset` (a re-run skips the rest)."""

    def sent(user_column: InstrumentedAttribute[int]) -> ColumnElement[bool]:
        return exists().where(
            _reminders.c.order_id == Lesson.order_id,
            _reminders.c.user_id == user_column,
            _reminders.c.offset_seconds == offset,
        )

    return not_(and_(sent(Lesson.seller_id), sent(Lesson.buyer_id)))


async def _due_page(
    session: AsyncSession,
    *,
    offsets: tuple[int, ...],
    now: datetime,
    after: tuple[datetime, int] | None,
) -> tuple[list[DueReminder], tuple[datetime, int] | None]:
    """One page of lessons in their reminders' windows, in (start, order) order: the reminders
    due among them, and where the next page starts (None: this was the last)."""
    windows = []
    for index, offset in enumerate(offsets):  # largest first: the next is the nearer one
        nearer = offsets[index + 1] if index + 1 < len(offsets) else 0
        windows.append(
            and_(
                Lesson.starts_at > now + timedelta(seconds=nearer),
                Lesson.starts_at <= now + timedelta(seconds=offset),
                _not_sent_to_both(offset),
            )
        )
    statement = (
        select(
            Lesson.order_id,
            Lesson.seller_id,
            Lesson.buyer_id,
            Lesson.starts_at,
            Lesson.timed_at,
            Skill.title_en,
            Skill.title_ar,
        )
        .join(Order, Order.id == Lesson.order_id)
        .join(Skill, Skill.id == Order.skill_id)
        .where(Order.status.in_(REMINDED_STATUSES), or_(*windows))
        .order_by(Lesson.starts_at, Lesson.order_id)
        .limit(PAGE_SIZE)
    )
    if after is not None:
        starts_at, order_id = after
        statement = statement.where(
            or_(
                Lesson.starts_at > starts_at,
                and_(Lesson.starts_at == starts_at, Lesson.order_id > order_id),
            )
        )
    rows = (await session.execute(statement)).all()
    due: list[DueReminder] = []
    for order_id, seller_id, buyer_id, starts_at, booked_at, title_en, title_ar in rows:
        due_now = due_offset(offsets, starts_at=starts_at, booked_at=booked_at, now=now)
        if due_now is None:
            continue
        for user_id, other_id in ((seller_id, buyer_id), (buyer_id, seller_id)):
            due.append(
                DueReminder(
                    order_id, user_id, other_id, due_now, starts_at, title_en, title_ar or ""
                )
            )
    following = (rows[-1].starts_at, rows[-1].order_id) if len(rows) == PAGE_SIZE else None
    return due, following


def _skill_title(reminder: DueReminder, locale: str) -> str:
    if locale == "ar" and reminder.skill_ar:
        return reminder.skill_ar
    return reminder.skill_en or reminder.skill_ar


def _name(user: User) -> str:
    return user.display_name or user.username


async def _send(deps: Deps, due: list[DueReminder], now: datetime) -> int:
    """Record the reminders of `due` and notify each one this transaction recorded first."""
    insert = postgresql.insert if deps.db.on_driver else sqlite.insert
    # One key order for every sweep, so two at once wait on each other and never deadlock.
    due = sorted(due, key=lambda r: (r.order_id, r.user_id, r.offset_seconds))
    async with deps.db.uow() as uow:
        session = uow.session
        inserted = await session.execute(
            insert(_reminders)
            .values(
                [
                    {
                        "order_id": r.order_id,
                        "user_id": r.user_id,
                        "offset_seconds": r.offset_seconds,
                        "sent_at": now,
                    }
                    for r in due
                ]
            )
            .on_conflict_do_nothing(index_elements=["order_id", "user_id", "offset_seconds"])
            .returning(_reminders.c.order_id, _reminders.c.user_id, _reminders.c.offset_seconds)
        )
        firsts = {tuple(row) for row in inserted}
        sending = [r for r in due if (r.order_id, r.user_id, r.offset_seconds) in firsts]
        if not sending:
            await uow.commit()
            return 0
        people_ids = {r.user_id for r in sending} | {r.other_id for r in sending}
        people = {
            user.id: user
            for user in await session.scalars(select(User).where(User.id.in_(people_ids)))
        }
        for reminder in sending:
            user, other = people.get(reminder.user_id), people.get(reminder.other_id)
            if user is None or other is None or not user.is_active:
                continue
            locale = negotiate_locale(
                user_locale=user.locale,
                accept_language=None,
                default=deps.settings.default_locale,
            )
            await notify(
                deps,
                uow,
                user_id=user.id,
                kind=NotificationKind.LESSON_REMINDER,
                text=lazy(
                    REMINDER_TEXT,
                    skill=_skill_title(reminder, locale),
                    other=_name(other),
                    starts=lesson_time(reminder.starts_at, zone=user.timezone, locale=locale),
                ),
                payload={
                    "order_id": reminder.order_id,
                    "starts_at": iso(reminder.starts_at),
                    "offset_seconds": reminder.offset_seconds,
                },
            )
        await uow.commit()
    return len(sending)


async def send_due_reminders(deps: Deps, *, now: datetime) -> int:
    """The `lesson_reminders` job: every reminder due at `now` sent once; how many were."""
    offsets = deps.settings.lesson_reminder_offsets
    if not offsets:
        return 0
    sent = 0
    after: tuple[datetime, int] | None = None
    for _ in range(MAX_PAGES):
        async with deps.db.read() as session:
            due, after = await _due_page(session, offsets=offsets, now=now, after=after)
        if due:
            sent += await _send(deps, due, now)
        if after is None:
            break
    return sent
