"""A teacher's availability: weekly hours in their own zone, and the dates that differ.

Times are "HH:MM" on quarter hours, local to the teacher's IANA zone ("24:00" ends a window at
midnight). A weekday's windows may not overlap; a date's exception either closes it
(`available: false`) or replaces its hours with one window (`available: true`, `start`, `end`).
What is stored is checked and put in order here, so that slots are computed from clean data.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from skillswap.accounts.services import NOT_A_TIME_ZONE, is_time_zone
from skillswap.errors import FieldErrors, ValidationFailed
from skillswap.i18n import Message, lazy
from skillswap.models import LessonAvailability, User

if TYPE_CHECKING:
    from skillswap.deps import Deps

MAX_WEEKLY_WINDOWS = 42  # six a day
MAX_EXCEPTIONS = 200
DAY_MINUTES = 24 * 60
_HHMM = re.compile(r"^([01][0-9]|2[0-4]):([0-5][0-9])$")
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def zone_named(name: str) -> zoneinfo.ZoneInfo | None:
    """The zone called `name`, or None if it is not an IANA name this machine knows (as the
    profile's `timezone` is checked)."""
    if not is_time_zone(name):
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


def zone_of(name: str) -> zoneinfo.ZoneInfo:
    """The zone a stored name stands for: UTC when it is no longer one known here (names are
    checked when they are set)."""
    return zone_named(name) or zoneinfo.ZoneInfo("UTC")


def unknown_zone() -> Message:
    return lazy(NOT_A_TIME_ZONE)


def minutes_of(text: str) -> int | None:
    """Minutes after midnight of "HH:MM" on a quarter hour (up to "24:00"), or None."""
    matched = _HHMM.match(text)
    if matched is None:
        return None
    hours, minutes = int(matched.group(1)), int(matched.group(2))
    total = hours * 60 + minutes
    if minutes % 15 or total > DAY_MINUTES:
        return None
    return total


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_date(text: str) -> date | None:
    """An ISO date "YYYY-MM-DD", or None."""
    if not _ISO_DATE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class AvailabilityView:
    """What a teacher has set (or the empty default, in their profile's zone)."""

    timezone: str
    weekly: list[dict[str, Any]]
    exceptions: list[dict[str, Any]]
    updated_at: datetime | None


def _window(
    errors: FieldErrors, where: str, start: str | None, end: str | None
) -> tuple[int, int] | None:
    """The window's (start, end) in minutes, or None with its errors noted under `where`."""
    bad_time = lazy("Use a time of day as HH:MM on a quarter hour (:00, :15, :30 or :45).")
    first = minutes_of(start or "")
    last = minutes_of(end or "")
    if first is None or first == DAY_MINUTES:
        errors.setdefault(f"{where}.start", []).append(bad_time)
    if last is None:
        errors.setdefault(f"{where}.end", []).append(bad_time)
    if first is None or last is None or first == DAY_MINUTES:
        return None
    if last <= first:
        errors.setdefault(f"{where}.end", []).append(lazy("The end must be after the start."))
        return None
    return first, last


def checked_availability(
    timezone: str, weekly: list[dict[str, Any]], exceptions: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`weekly` and `exceptions` checked and in order (weekday and start; date), or the 400
    naming every field that is wrong."""
    errors: FieldErrors = {}
    if zone_named(timezone) is None:
        errors["timezone"] = [unknown_zone()]
    windows: list[tuple[int, int, int, int]] = []  # weekday, start, end, index
    for index, item in enumerate(weekly):
        found = _window(errors, f"weekly.{index}", item["start"], item["end"])
        if found is not None:
            windows.append((item["weekday"], found[0], found[1], index))
    windows.sort()
    reach: dict[int, int] = {}  # the latest end so far on each weekday
    for weekday, first, last, index in windows:
        if first < reach.get(weekday, 0):
            errors.setdefault(f"weekly.{index}", []).append(
                lazy("This window overlaps another on the same weekday.")
            )
        reach[weekday] = max(last, reach.get(weekday, 0))
    dated: dict[date, dict[str, Any]] = {}
    for index, item in enumerate(exceptions):
        where = f"exceptions.{index}"
        day = parse_date(item["date"])
        if day is None:
            errors.setdefault(f"{where}.date", []).append(lazy("Use a date as YYYY-MM-DD."))
            continue
        if day in dated:
            errors.setdefault(f"{where}.date", []).append(lazy("This date is listed twice."))
            continue
        entry: dict[str, Any] = {"date": day.isoformat(), "available": item["available"]}
        if item["available"]:
            found = _window(errors, where, item.get("start"), item.get("end"))
            if found is not None:
                entry.update(start=hhmm(found[0]), end=hhmm(found[1]))
        elif item.get("start") is not None or item.get("end") is not None:
            errors.setdefault(where, []).append(
                lazy("A date that is not available takes no start or end.")
            )
        dated[day] = entry
    if errors:
        raise ValidationFailed(errors=errors)
    ordered_weekly = [
        {"weekday": weekday, "start": hhmm(first), "end": hhmm(last)}
        for weekday, first, last, _ in windows
    ]
    return ordered_weekly, [dated[day] for day in sorted(dated)]


async def set_availability(
    deps: Deps,
    *,
    actor: User,
    timezone: str,
    weekly: list[dict[str, Any]],
    exceptions: list[dict[str, Any]],
) -> AvailabilityView:
    """Replace the actor's availability (what new bookings are checked against; lessons
    already booked keep their time)."""
    ordered_weekly, ordered_exceptions = checked_availability(timezone, weekly, exceptions)
    now = deps.clock()
    async with deps.db.uow() as uow:
        row = await uow.session.get(LessonAvailability, actor.id, with_for_update=True)
        if row is None:
            row = LessonAvailability(user_id=actor.id)
            uow.session.add(row)
        row.timezone = timezone
        row.weekly = ordered_weekly
        row.exceptions = ordered_exceptions
        row.updated_at = now
        await uow.commit()
    return AvailabilityView(timezone, ordered_weekly, ordered_exceptions, now)


async def get_availability(deps: Deps, *, actor: User) -> AvailabilityView:
    """The actor's availability; none set yet: no hours, in their profile's zone."""
    async with deps.db.read() as session:
        row = await session.get(LessonAvailability, actor.id)
    if row is None:
        return AvailabilityView(actor.timezone or "UTC", [], [], None)
    return AvailabilityView(row.timezone, list(row.weekly), list(row.exceptions), row.updated_at)
