"""Free slots of a lesson skill: the teacher's hours, minus exceptions, claims and the notice.

Hours are local to the teacher's zone, so each local date is computed on its own: a start is
built as a local wall time with zoneinfo and then converted to UTC, which keeps a 09:00 lesson
at 09:00 local on both sides of a DST change (at a different UTC hour). A local time that does
not exist (the hour skipped in spring) is no start; one that happens twice (the hour repeated in
autumn) is taken once, at its first occurrence (fold=0). Starts step by quarter hours, and a
start is offered only when the whole lesson fits inside the teacher's hours: windows that touch
join, on one date (09:00-10:00 and 10:00-11:00) and across midnight (a window to 24:00 and the
next date's from 00:00), so a teacher there all day can teach from 23:30 to 00:30.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from skillswap.errors import NotFound, ValidationFailed
from skillswap.i18n import lazy
from skillswap.lessons.availability import minutes_of, parse_date, unknown_zone, zone_named
from skillswap.models import LessonAvailability, LessonSlotClaim, Skill, User
from skillswap.models.lessons import QUARTER
from skillswap.models.skills import SkillStatus

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from skillswap.deps import Deps

DEFAULT_SPAN = timedelta(days=14)
MAX_SPAN = timedelta(days=31)
# How far ahead slots may be asked for (and a start booked): a year and a bit.
MAX_AHEAD = timedelta(days=400)

Window = tuple[int, int]  # minutes after local midnight: start, end


@dataclass(frozen=True)
class Schedule:
    """A teacher's hours, ready to compute with: windows per weekday and per exceptional date
    (an empty list closes that date)."""

    zone: ZoneInfo
    weekly: dict[int, list[Window]]
    exceptions: dict[date, list[Window]]

    @classmethod
    def of(cls, row: LessonAvailability) -> Schedule | None:
        """The schedule stored in `row` (None if its zone is no longer known here)."""
        zone = zone_named(row.timezone)
        if zone is None:
            return None
        weekly: dict[int, list[Window]] = {}
        for item in row.weekly:
            window = _stored_window(item)
            if window is not None:
                weekly.setdefault(int(item["weekday"]), []).append(window)
        exceptions: dict[date, list[Window]] = {}
        for item in row.exceptions:
            day = parse_date(str(item.get("date", "")))
            if day is None:
                continue
            window = _stored_window(item) if item.get("available") else None
            exceptions[day] = [window] if window is not None else []
        return cls(zone, weekly, exceptions)

    def windows_on(self, day: date) -> list[Window]:
        """The windows of one local date."""
        if day in self.exceptions:
            return self.exceptions[day]
        return self.weekly.get(day.weekday(), [])


def _stored_window(item: dict[str, Any]) -> Window | None:
    first, last = minutes_of(str(item.get("start", ""))), minutes_of(str(item.get("end", "")))
    if first is None or last is None or last <= first:
        return None
    return first, last


def _local(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    """The wall time `minutes` after local midnight of `day` (fold=0 when it happens twice)."""
    return datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(minutes=minutes)


def _exists(moment: datetime) -> bool:
    """Whether a local wall time happens at all (not in the hour a DST change skips)."""
    back = moment.astimezone(UTC).astimezone(moment.tzinfo)
    return back.replace(tzinfo=None) == moment.replace(tzinfo=None)


def lesson_starts(
    schedule: Schedule, minutes: int, *, start: datetime, end: datetime
) -> list[datetime]:
    """Every UTC start in [start, end) at which a lesson of `minutes` fits in one window."""
    length = timedelta(minutes=minutes)
    first_day = start.astimezone(schedule.zone).date() - timedelta(days=1)
    # A day more than the starts need: a lesson begun late may run into the next date's hours.
    last_day = end.astimezone(schedule.zone).date() + timedelta(days=2)
    days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    hours = _joined(
        (
            _local(day, window_start, schedule.zone).astimezone(UTC),
            _local(day, window_end, schedule.zone).astimezone(UTC),
        )
        for day in days
        for window_start, window_end in schedule.windows_on(day)
    )
    found: set[datetime] = set()
    for day in days[:-1]:
        for window_start, window_end in schedule.windows_on(day):
            for offset in range(window_start, window_end, 15):
                local = _local(day, offset, schedule.zone)
                if not _exists(local):
                    continue
                begins = local.astimezone(UTC)
                if begins.minute % 15 or begins.second:  # a zone off the quarter hours
                    continue
                if start <= begins < end and _within(hours, begins, begins + length):
                    found.add(begins)
    return sorted(found)


def _joined(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """The spans in order, those that overlap or touch joined into one."""
    joined: list[tuple[datetime, datetime]] = []
    for opens, closes in sorted(spans):
        if joined and opens <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(joined[-1][1], closes))
        else:
            joined.append((opens, closes))
    return joined


def _within(hours: list[tuple[datetime, datetime]], begins: datetime, ends: datetime) -> bool:
    """Whether [begins, ends) lies inside one of the joined spans `hours`."""
    return any(opens <= begins and ends <= closes for opens, closes in hours)


def quarters(begins: datetime, minutes: int) -> list[datetime]:
    """The quarter hours a lesson of `minutes` from `begins` takes."""
    return [begins + n * QUARTER for n in range(minutes // 15)]


def free_starts(
    candidates: Iterable[datetime], minutes: int, claimed: set[datetime]
) -> list[datetime]:
    """The candidates none of whose quarters is claimed."""
    return [
        begins
        for begins in candidates
        if not any(quarter in claimed for quarter in quarters(begins, minutes))
    ]


async def claimed_quarters(
    session: AsyncSession, seller_id: int, *, start: datetime, end: datetime
) -> set[datetime]:
    """The teacher's quarters claimed from `start` to `end`."""
    found = await session.scalars(
        select(LessonSlotClaim.quarter_starts_at).where(
            LessonSlotClaim.seller_id == seller_id,
            LessonSlotClaim.quarter_starts_at >= start,
            LessonSlotClaim.quarter_starts_at < end,
        )
    )
    return set(found)


@dataclass(frozen=True)
class Slot:
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class SlotList:
    """The free slots of a lesson skill from `start` to `end`, shown in `zone`."""

    skill_id: int
    minutes: int
    zone: ZoneInfo
    start: datetime
    end: datetime
    slots: list[Slot]


def lesson_not_found() -> NotFound:
    return NotFound(lazy("This skill does not exist or is not a lesson."), code="skill_not_found")


def as_utc(moment: datetime, field: str) -> datetime:
    """A moment given with an offset (or none: UTC) as UTC; one UTC cannot hold is a 400."""
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValidationFailed(errors={field: [lazy("Enter a valid date and time.")]}) from None


def _span(now: datetime, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """[start, end) as asked (default: now to 14 days on), or the 400 saying what is wrong."""
    begins = as_utc(start, "from") if start is not None else now
    if begins > now + MAX_AHEAD:
        raise ValidationFailed(errors={"from": [lazy("Ask for slots within the next year.")]})
    ends = as_utc(end, "to") if end is not None else begins + DEFAULT_SPAN
    if ends <= begins:
        raise ValidationFailed(errors={"to": [lazy("`to` must be after `from`.")]})
    if ends - begins > MAX_SPAN:
        raise ValidationFailed(errors={"to": [lazy("Ask for at most 31 days of slots at once.")]})
    return begins, ends


async def list_slots(
    deps: Deps,
    *,
    skill_id: int,
    start: datetime | None,
    end: datetime | None,
    timezone: str | None,
) -> SlotList:
    """The free slots of an active lesson skill (public), shown in `timezone` (default: the
    teacher's)."""
    now = deps.clock()
    begins, ends = _span(now, start, end)
    shown_in = zone_named(timezone) if timezone is not None else None
    if timezone is not None and shown_in is None:
        raise ValidationFailed(errors={"tz": [unknown_zone()]})
    async with deps.db.read() as session:
        found = (
            await session.execute(
                select(Skill.owner_id, Skill.lesson_minutes, LessonAvailability)
                .join(User, User.id == Skill.owner_id)
                .outerjoin(LessonAvailability, LessonAvailability.user_id == Skill.owner_id)
                .where(
                    Skill.id == skill_id,
                    Skill.status == SkillStatus.ACTIVE,
                    Skill.lesson_minutes.is_not(None),
                    User.is_active.is_(True),
                )
            )
        ).first()
        if found is None or found.lesson_minutes is None:
            raise lesson_not_found()
        owner_id, minutes, availability = found.owner_id, found.lesson_minutes, found[2]
        schedule = Schedule.of(availability) if availability is not None else None
        slots: list[Slot] = []
        if schedule is not None:
            earliest = max(begins, now + timedelta(seconds=deps.settings.lesson_notice_seconds))
            candidates = (
                lesson_starts(schedule, minutes, start=earliest, end=ends)
                if earliest < ends
                else []
            )
            claimed: set[datetime] = set()
            if candidates:
                claimed = await claimed_quarters(
                    session,
                    owner_id,
                    start=candidates[0],
                    end=candidates[-1] + timedelta(minutes=minutes),
                )
            length = timedelta(minutes=minutes)
            slots = [
                Slot(begins_at, begins_at + length)
                for begins_at in free_starts(candidates, minutes, claimed)
            ]
    zone = shown_in or (schedule.zone if schedule is not None else ZoneInfo("UTC"))
    return SlotList(skill_id, minutes, zone, begins, ends, slots)
