"""Lesson starts from a teacher's hours: local wall times per date, converted to UTC, DST-safe."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from skillswap.errors import ValidationFailed
from skillswap.lessons.availability import checked_availability
from skillswap.lessons.slots import Schedule, free_starts, lesson_starts
from skillswap.models import LessonAvailability

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def schedule(timezone: str, weekly=(), exceptions=()) -> Schedule:
    ordered_weekly, ordered_exceptions = checked_availability(
        timezone, list(weekly), list(exceptions)
    )
    found = Schedule.of(
        LessonAvailability(
            user_id=1, timezone=timezone, weekly=ordered_weekly, exceptions=ordered_exceptions
        )
    )
    assert found is not None
    return found


def every_day(start: str, end: str) -> list[dict[str, object]]:
    return [{"weekday": day, "start": start, "end": end} for day in range(7)]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def starts_on(found: Schedule, minutes: int, day: date) -> list[datetime]:
    """The starts of one local date of the schedule's zone."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=found.zone)
    return [
        begins
        for begins in lesson_starts(
            found, minutes, start=midnight - timedelta(days=1), end=midnight + timedelta(days=2)
        )
        if begins.astimezone(found.zone).date() == day
    ]


def test_a_nine_oclock_lesson_stays_at_nine_local_across_both_berlin_changes():
    hours = schedule(BERLIN, every_day("09:00", "10:00"))
    zone = ZoneInfo(BERLIN)
    # 2027: summer time from 28 March, winter time from 31 October.
    for before, after in (
        (date(2027, 3, 27), date(2027, 3, 29)),
        (date(2027, 10, 30), date(2027, 11, 1)),
    ):
        first, second = starts_on(hours, 60, before), starts_on(hours, 60, after)
        assert len(first) == len(second) == 1
        assert first[0].astimezone(zone).hour == second[0].astimezone(zone).hour == 9
        assert {first[0].hour, second[0].hour} == {7, 8}  # UTC moves, local does not


def test_new_york_nine_oclock_is_14_utc_in_winter_and_13_in_summer():
    hours = schedule(NEW_YORK, every_day("09:00", "10:00"))
    assert starts_on(hours, 60, date(2027, 3, 13)) == [utc(2027, 3, 13, 14)]
    assert starts_on(hours, 60, date(2027, 3, 15)) == [utc(2027, 3, 15, 13)]


def test_the_hour_skipped_in_spring_offers_no_start():
    hours = schedule(BERLIN, every_day("02:00", "04:00"))
    local = [
        begins.astimezone(ZoneInfo(BERLIN)) for begins in starts_on(hours, 30, date(2027, 3, 28))
    ]
    # 02:00-03:00 does not happen that night; the window's real hour left is 03:00-04:00.
    assert [moment.strftime("%H:%M") for moment in local] == ["03:00", "03:15", "03:30"]


def test_the_hour_repeated_in_autumn_is_offered_once_at_its_first_occurrence():
    hours = schedule(BERLIN, every_day("02:00", "03:00"))
    found = starts_on(hours, 30, date(2027, 10, 31))
    # 02:00-03:00 local happens twice that night (00:00-01:00 UTC in summer time, then
    # 01:00-02:00 UTC): each local start is offered once, at its first occurrence (fold=0).
    assert found == [utc(2027, 10, 31, 0, minute) for minute in (0, 15, 30, 45)]


def test_starts_step_by_quarters_and_the_whole_lesson_fits_in_one_window():
    hours = schedule("UTC", [{"weekday": 0, "start": "09:00", "end": "10:30"}])
    monday = date(2027, 1, 4)
    assert starts_on(hours, 60, monday) == [
        utc(2027, 1, 4, 9, 0),
        utc(2027, 1, 4, 9, 15),
        utc(2027, 1, 4, 9, 30),
    ]
    assert starts_on(hours, 120, monday) == []  # longer than the window
    assert starts_on(hours, 60, monday + timedelta(days=1)) == []  # a Tuesday: no hours


def test_windows_that_touch_join_on_a_date_and_across_midnight():
    hours = schedule(
        "UTC",
        [
            {"weekday": 0, "start": "09:00", "end": "10:00"},
            {"weekday": 0, "start": "10:00", "end": "11:00"},
        ],
    )
    found = starts_on(hours, 60, date(2027, 1, 4))
    assert found == [utc(2027, 1, 4, 9, minute) for minute in (0, 15, 30, 45)] + [
        utc(2027, 1, 4, 10)
    ]
    # All day on Monday and Tuesday: a lesson may run from Monday 23:30 into Tuesday.
    all_day = schedule("UTC", [{"weekday": d, "start": "00:00", "end": "24:00"} for d in (0, 1)])
    monday_night = lesson_starts(all_day, 60, start=utc(2027, 1, 4, 23), end=utc(2027, 1, 5, 0, 1))
    assert monday_night == [utc(2027, 1, 4, 23, minute) for minute in (0, 15, 30, 45)] + [
        utc(2027, 1, 5, 0)
    ]
    # ... but not from Tuesday 23:30 into Wednesday, when there are no hours.
    tuesday_night = lesson_starts(all_day, 60, start=utc(2027, 1, 5, 23), end=utc(2027, 1, 6, 0, 1))
    assert tuesday_night == [utc(2027, 1, 5, 23)]
    # A window touching another of the next day in the teacher's zone joins it too.
    cairo = schedule(
        "Africa/Cairo",
        [
            {"weekday": 0, "start": "22:00", "end": "24:00"},
            {"weekday": 1, "start": "00:00", "end": "01:00"},
        ],
    )
    late = lesson_starts(cairo, 120, start=utc(2027, 1, 4, 19), end=utc(2027, 1, 5, 1))
    assert late == [
        utc(2027, 1, 4, 20, 0),
        utc(2027, 1, 4, 20, 15),
        utc(2027, 1, 4, 20, 30),
        utc(2027, 1, 4, 20, 45),
        utc(2027, 1, 4, 21, 0),
    ]


def test_an_exception_closes_a_date_or_replaces_its_hours():
    hours = schedule(
        "UTC",
        every_day("09:00", "10:00"),
        [
            {"date": "2027-01-05", "available": False},
            {"date": "2027-01-06", "available": True, "start": "14:00", "end": "15:00"},
        ],
    )
    assert starts_on(hours, 60, date(2027, 1, 4)) == [utc(2027, 1, 4, 9)]
    assert starts_on(hours, 60, date(2027, 1, 5)) == []
    assert starts_on(hours, 60, date(2027, 1, 6)) == [utc(2027, 1, 6, 14)]


def test_a_window_may_end_at_midnight():
    hours = schedule("UTC", [{"weekday": 0, "start": "23:00", "end": "24:00"}])
    assert starts_on(hours, 60, date(2027, 1, 4)) == [utc(2027, 1, 4, 23)]


def test_any_claimed_quarter_of_a_lesson_removes_its_start():
    starts = [utc(2027, 1, 4, 9, minute) for minute in (0, 15, 30, 45)]
    claimed = {utc(2027, 1, 4, 9, 45)}
    assert free_starts(starts, 30, claimed) == [utc(2027, 1, 4, 9, 0), utc(2027, 1, 4, 9, 15)]
    assert free_starts(starts, 15, claimed) == starts[:3]


@pytest.mark.parametrize(
    ("weekly", "exceptions", "field"),
    [
        ([{"weekday": 0, "start": "09:10", "end": "10:00"}], [], "weekly.0.start"),
        ([{"weekday": 0, "start": "09:00", "end": "25:00"}], [], "weekly.0.end"),
        ([{"weekday": 0, "start": "10:00", "end": "09:00"}], [], "weekly.0.end"),
        ([{"weekday": 0, "start": "24:00", "end": "24:00"}], [], "weekly.0.start"),
        (
            [
                {"weekday": 2, "start": "09:00", "end": "17:00"},
                {"weekday": 2, "start": "10:00", "end": "11:00"},
                {"weekday": 2, "start": "12:00", "end": "13:00"},
            ],
            [],
            "weekly.1",
        ),
        ([], [{"date": "2027-02-30", "available": False}], "exceptions.0.date"),
        ([], [{"date": "7 Jan", "available": False}], "exceptions.0.date"),
        ([], [{"date": "2027-01-07", "available": True}], "exceptions.0.start"),
        (
            [],
            [{"date": "2027-01-07", "available": False, "start": "09:00", "end": "10:00"}],
            "exceptions.0",
        ),
    ],
)
def test_availability_that_cannot_be_computed_is_refused_naming_the_field(
    weekly, exceptions, field
):
    with pytest.raises(ValidationFailed) as refused:
        checked_availability("UTC", weekly, exceptions)
    assert field in refused.value.errors


def test_overlaps_are_found_whichever_window_they_follow():
    weekly = [
        {"weekday": 2, "start": "09:00", "end": "17:00"},
        {"weekday": 2, "start": "10:00", "end": "11:00"},
        {"weekday": 2, "start": "12:00", "end": "13:00"},
        {"weekday": 3, "start": "12:00", "end": "13:00"},  # another day: no overlap
    ]
    with pytest.raises(ValidationFailed) as refused:
        checked_availability("UTC", weekly, [])
    assert sorted(refused.value.errors) == ["weekly.1", "weekly.2"]


def test_an_unknown_zone_is_refused():
    for wrong in ("Mars/Olympus", "localtime", "../etc/passwd", ""):
        with pytest.raises(ValidationFailed) as refused:
            checked_availability(wrong, [], [])
        assert list(refused.value.errors) == ["timezone"]
