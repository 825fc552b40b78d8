"""Lessons over real HTTP: a skill's lesson length, the teacher's availability, free slots,
booking a slot with the order (points held, quarters claimed), refusals, and one's lessons."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from skillswap.models import LedgerHold, Lesson, LessonSlotClaim, Order
from skillswap.points.services import audit_ledger
from tests.factories import balance, unique_name
from tests.query_recorder import QueryRecorder

ORDERS = "/api/points/orders/"
AVAILABILITY = "/api/lessons/availability/"
LESSONS = "/api/lessons/"
ALL_DAY = [{"weekday": day, "start": "00:00", "end": "24:00"} for day in range(7)]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def at(text: str) -> datetime:
    """A datetime from the API's text."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def next_offset_change(zone: ZoneInfo, day: date) -> date:
    """The first date from `day` whose next day's noon has another UTC offset (DST)."""

    def offset(of: date) -> timedelta | None:
        return datetime(of.year, of.month, of.day, 12, tzinfo=zone).utcoffset()

    while offset(day) == offset(day + timedelta(days=1)):
        day += timedelta(days=1)
    return day + timedelta(days=1)


def next_quarter(moment: datetime) -> datetime:
    """The first quarter hour at or after `moment`."""
    floor = moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(minutes=15)


def local_day(zone: str, days_ahead: int, deps: Any) -> date:
    return (deps.clock().astimezone(ZoneInfo(zone)) + timedelta(days=days_ahead)).date()


async def teacher_with_lesson(
    api: Any,
    make_user: Any,
    make_skill: Any,
    *,
    minutes: int = 60,
    timezone: str = "UTC",
    weekly: list[dict[str, Any]] | None = None,
    exceptions: list[dict[str, Any]] | None = None,
    price: int = 10,
) -> tuple[Any, dict[str, Any]]:
    """A teacher with availability and a lesson skill of `minutes`."""
    teacher = await make_user()
    response = await api.put(
        AVAILABILITY,
        token=teacher.access,
        json={
            "timezone": timezone,
            "weekly": ALL_DAY if weekly is None else weekly,
            "exceptions": exceptions or [],
        },
    )
    assert response.status_code == 200, response.text
    skill = await make_skill(teacher, lesson_minutes=minutes, price_points=price)
    return teacher, skill


async def book(
    api: Any,
    buyer: Any,
    skill_id: int,
    start: datetime | str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Any:
    """Order the lesson skill at `start` (`extra`: more of the body)."""
    slot = start if isinstance(start, str) else iso(start)
    body = {"skill_id": skill_id, "slot_start": slot, **extra}
    return await api.post(ORDERS, token=buyer.access, json=body, headers=headers)


async def slots_of(api: Any, skill_id: int, **query: str) -> dict[str, Any]:
    response = await api.get(f"/api/skills/{skill_id}/slots/", params=query)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def tomorrow_at(deps: Any, hour: int, minute: int = 0) -> datetime:
    """A UTC time on the day after tomorrow (well past the notice period)."""
    day = (deps.clock() + timedelta(days=2)).date()
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


async def held_orders(deps: Any, buyer_id: int) -> tuple[int, int]:
    """How many orders and holds the buyer has."""
    async with deps.db.read() as session:
        orders = await session.scalar(
            select(func.count()).select_from(Order).where(Order.buyer_id == buyer_id)
        )
        holds = await session.scalar(
            select(func.count())
            .select_from(LedgerHold)
            .join(Order, Order.hold_id == LedgerHold.id)
            .where(Order.buyer_id == buyer_id)
        )
    return int(orders or 0), int(holds or 0)


async def claims_of(deps: Any, order_id: int) -> list[datetime]:
    async with deps.db.read() as session:
        found = await session.scalars(
            select(LessonSlotClaim.quarter_starts_at)
            .where(LessonSlotClaim.order_id == order_id)
            .order_by(LessonSlotClaim.quarter_starts_at)
        )
        return list(found)


# -- lesson_minutes on skills ----------------------------------------------------------------------


async def test_a_skill_is_a_lesson_of_whole_quarters_and_may_stop_being_one(
    api, make_user, make_skill
):
    owner = await make_user()
    work = await make_skill(owner)
    assert work["lesson_minutes"] is None
    lesson = await make_skill(owner, lesson_minutes=90)
    assert lesson["lesson_minutes"] == 90
    read = await api.get(f"/api/skills/{lesson['id']}/")
    assert read.json()["lesson_minutes"] == 90
    changed = await api.patch(
        f"/api/skills/{lesson['id']}/", token=owner.access, json={"lesson_minutes": 45}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["lesson_minutes"] == 45
    untouched = await api.patch(
        f"/api/skills/{lesson['id']}/", token=owner.access, json={"price_points": 12}
    )
    assert untouched.json()["lesson_minutes"] == 45
    cleared = await api.patch(
        f"/api/skills/{lesson['id']}/", token=owner.access, json={"lesson_minutes": None}
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["lesson_minutes"] is None


async def test_a_lesson_length_off_the_quarters_or_out_of_range_is_a_400(
    api, make_user, make_skill
):
    owner = await make_user()
    skill = await make_skill(owner, lesson_minutes=60)
    for wrong in (20, 10, 0, 255, 300, -15, "60", 60.0, True):
        response = await api.patch(
            f"/api/skills/{skill['id']}/", token=owner.access, json={"lesson_minutes": wrong}
        )
        assert response.status_code == 400, wrong
        assert response.json()["code"] == "validation_error"
        assert list(response.json()["errors"]) == ["lesson_minutes"], wrong
    stranger = await make_user()
    response = await api.patch(
        f"/api/skills/{skill['id']}/", token=stranger.access, json={"lesson_minutes": 30}
    )
    assert response.status_code == 403
    assert (await api.get(f"/api/skills/{skill['id']}/")).json()["lesson_minutes"] == 60


# -- availability --------------------------------------------------------------------------------


async def test_availability_is_empty_until_set_then_read_back_in_order(api, make_user):
    teacher = await make_user(timezone="Africa/Cairo")
    empty = await api.get(AVAILABILITY, token=teacher.access)
    assert empty.status_code == 200, empty.text
    assert empty.json() == {
        "timezone": "Africa/Cairo",
        "weekly": [],
        "exceptions": [],
        "updated_at": None,
    }
    body = {
        "timezone": "Africa/Cairo",
        "weekly": [
            {"weekday": 2, "start": "14:00", "end": "16:30"},
            {"weekday": 0, "start": "09:00", "end": "12:00"},
            {"weekday": 2, "start": "09:00", "end": "10:00"},
        ],
        "exceptions": [
            {"date": "2027-01-14", "available": True, "start": "18:00", "end": "20:00"},
            {"date": "2027-01-07", "available": False},
        ],
    }
    saved = await api.put(AVAILABILITY, token=teacher.access, json=body)
    assert saved.status_code == 200, saved.text
    expected_weekly = [
        {"weekday": 0, "start": "09:00", "end": "12:00"},
        {"weekday": 2, "start": "09:00", "end": "10:00"},
        {"weekday": 2, "start": "14:00", "end": "16:30"},
    ]
    expected_exceptions = [
        {"date": "2027-01-07", "available": False},
        {"date": "2027-01-14", "available": True, "start": "18:00", "end": "20:00"},
    ]
    assert saved.json()["weekly"] == expected_weekly
    assert saved.json()["exceptions"] == expected_exceptions
    read = await api.get(AVAILABILITY, token=teacher.access)
    assert read.json()["weekly"] == expected_weekly
    assert read.json()["exceptions"] == expected_exceptions
    assert read.json()["timezone"] == "Africa/Cairo"
    assert read.json()["updated_at"] is not None
    # Each teacher reads their own: another user's is still empty.
    other = await make_user()
    assert (await api.get(AVAILABILITY, token=other.access)).json()["weekly"] == []
    assert (await api.get(AVAILABILITY)).status_code == 401
    assert (await api.put(AVAILABILITY, json=body)).status_code == 401


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "localtime"}, "timezone"),
        ({"weekly": [{"weekday": 7, "start": "09:00", "end": "10:00"}]}, "weekly.0.weekday"),
        ({"weekly": [{"weekday": -1, "start": "09:00", "end": "10:00"}]}, "weekly.0.weekday"),
        ({"weekly": [{"weekday": 1, "start": "09:10", "end": "10:00"}]}, "weekly.0.start"),
        ({"weekly": [{"weekday": 1, "start": "9:00", "end": "10:00"}]}, "weekly.0.start"),
        ({"weekly": [{"weekday": 1, "start": "09:00", "end": "08:00"}]}, "weekly.0.end"),
        ({"weekly": [{"weekday": 1, "start": "09:00", "end": "09:00"}]}, "weekly.0.end"),
        (
            {
                "weekly": [
                    {"weekday": 1, "start": "09:00", "end": "11:00"},
                    {"weekday": 1, "start": "10:45", "end": "12:00"},
                ]
            },
            "weekly.1",
        ),
        ({"weekly": [{"weekday": 1, "start": "09:00"}]}, "weekly.0.end"),
        ({"weekly": ALL_DAY * 7}, "weekly"),
        ({"exceptions": [{"date": "2027-13-01", "available": False}]}, "exceptions.0.date"),
        ({"exceptions": [{"date": "07/01/2027", "available": False}]}, "exceptions.0.date"),
        ({"exceptions": [{"date": "2027-01-07", "available": "no"}]}, "exceptions.0.available"),
        ({"exceptions": [{"date": "2027-01-07", "available": True}]}, "exceptions.0.start"),
        (
            {
                "exceptions": [
                    {"date": "2027-01-07", "available": False},
                    {"date": "2027-01-07", "available": False},
                ]
            },
            "exceptions.1.date",
        ),
        (
            {
                "exceptions": [
                    {"date": f"2027-{1 + n // 28:02d}-{1 + n % 28:02d}", "available": False}
                    for n in range(201)
                ]
            },
            "exceptions",
        ),
        ({"holidays": []}, "holidays"),
    ],
)
async def test_availability_that_is_wrong_is_a_400_naming_the_field(api, make_user, change, field):
    teacher = await make_user()
    good = {"timezone": "Europe/Berlin", "weekly": [], "exceptions": []}
    saved = await api.put(AVAILABILITY, token=teacher.access, json=good)
    assert saved.status_code == 200, saved.text
    response = await api.put(AVAILABILITY, token=teacher.access, json={**good, **change})
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "validation_error"
    assert field in response.json()["errors"], response.json()["errors"]
    # Nothing changed.
    assert (await api.get(AVAILABILITY, token=teacher.access)).json()["timezone"] == "Europe/Berlin"


# -- free slots ----------------------------------------------------------------------------------


async def test_slots_are_listed_in_utc_and_in_the_teachers_or_the_asked_zone(
    api, deps, make_user, make_skill
):
    day = local_day("Asia/Tokyo", 3, deps)
    _, skill = await teacher_with_lesson(
        api,
        make_user,
        make_skill,
        timezone="Asia/Tokyo",
        weekly=[{"weekday": day.weekday(), "start": "09:00", "end": "11:00"}],
    )
    tokyo_midnight = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo("Asia/Tokyo"))
    span = {
        "from": tokyo_midnight.isoformat(),
        "to": (tokyo_midnight + timedelta(days=1)).isoformat(),
    }
    listed = await slots_of(api, skill["id"], **span)
    assert (listed["skill_id"], listed["minutes"], listed["timezone"]) == (
        skill["id"],
        60,
        "Asia/Tokyo",
    )
    first = tokyo_midnight.astimezone(UTC) + timedelta(hours=9)
    expected = [first + timedelta(minutes=15 * n) for n in range(5)]  # 09:00 ... 10:00
    assert [at(slot["start"]) for slot in listed["slots"]] == expected
    assert [at(slot["end"]) - at(slot["start"]) for slot in listed["slots"]] == [
        timedelta(hours=1)
    ] * 5
    assert listed["slots"][0]["start"].endswith("Z")
    assert listed["slots"][0]["local_start"] == f"{day.isoformat()}T09:00:00+09:00"
    assert listed["slots"][-1]["local_end"] == f"{day.isoformat()}T11:00:00+09:00"
    in_cairo = await slots_of(api, skill["id"], tz="UTC", **span)
    assert in_cairo["timezone"] == "UTC"
    assert in_cairo["slots"][0]["local_start"] == iso(first).replace("Z", "+00:00")
    assert [slot["start"] for slot in in_cairo["slots"]] == [
        slot["start"] for slot in listed["slots"]
    ]


async def test_a_nine_oclock_slot_stays_at_nine_local_across_a_dst_change(
    api, deps, make_user, make_skill
):
    zone = ZoneInfo("Europe/Berlin")
    # The next change of Berlin's offset (summer or winter time), at least two days ahead.
    day = next_offset_change(zone, local_day("Europe/Berlin", 3, deps))
    before, after = day - timedelta(days=2), day + timedelta(days=1)
    _, skill = await teacher_with_lesson(
        api,
        make_user,
        make_skill,
        timezone="Europe/Berlin",
        weekly=[{"weekday": d, "start": "09:00", "end": "10:00"} for d in range(7)],
    )
    start = datetime(before.year, before.month, before.day, tzinfo=zone)
    listed = await slots_of(
        api,
        skill["id"],
        **{"from": start.isoformat(), "to": (start + timedelta(days=4)).isoformat()},
    )
    by_day = {at(slot["start"]).astimezone(zone).date(): slot for slot in listed["slots"]}
    assert sorted(by_day) == [before + timedelta(days=n) for n in range(4)]  # one a day
    first, second = by_day[before], by_day[after]
    assert at(first["local_start"]).hour == at(second["local_start"]).hour == 9
    assert at(first["local_start"]).utcoffset() != at(second["local_start"]).utcoffset()
    assert at(first["start"]).hour != at(second["start"]).hour  # the UTC hour moved
    buyer = await make_user()
    for slot in (first, second):
        booked = await book(api, buyer, skill["id"], slot["start"])
        assert booked.status_code == 201, booked.text
        assert booked.json()["lesson"]["starts_at"] == slot["start"]


async def test_slots_leave_out_the_notice_period_exceptions_and_claimed_quarters(
    api, deps, make_user, make_skill
):
    soon = next_quarter(deps.clock() + timedelta(seconds=deps.settings.lesson_notice_seconds))
    closed = (deps.clock() + timedelta(days=3)).date()
    other_hours = closed + timedelta(days=1)
    teacher, skill = await teacher_with_lesson(
        api,
        make_user,
        make_skill,
        minutes=30,
        exceptions=[
            {"date": closed.isoformat(), "available": False},
            {"date": other_hours.isoformat(), "available": True, "start": "14:00", "end": "15:00"},
        ],
    )
    listed = await slots_of(api, skill["id"])
    starts = [at(slot["start"]) for slot in listed["slots"]]
    assert starts[0] in (soon, soon + timedelta(minutes=15))  # the clock may pass a quarter
    assert at(listed["from"]) <= starts[0]
    assert at(listed["to"]) - at(listed["from"]) == timedelta(days=14)
    assert not [moment for moment in starts if moment.date() == closed]
    assert [moment.strftime("%H:%M") for moment in starts if moment.date() == other_hours] == [
        "14:00",
        "14:15",
        "14:30",
    ]
    # Too soon to book, and never listed.
    refused = await book(api, await make_user(), skill["id"], soon - timedelta(minutes=15))
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "slot_unavailable"

    # A booked hour of a 60-minute lesson of the same teacher takes its quarters from the 30.
    hour = await make_skill(teacher, lesson_minutes=60)
    booked_at = tomorrow_at(deps, 10)
    booked = await book(api, await make_user(), hour["id"], booked_at)
    assert booked.status_code == 201, booked.text
    day = {"from": iso(booked_at - timedelta(hours=1)), "to": iso(booked_at + timedelta(hours=2))}
    around = [at(slot["start"]) for slot in (await slots_of(api, skill["id"], **day))["slots"]]
    assert around == [
        booked_at - timedelta(minutes=60),
        booked_at - timedelta(minutes=45),
        booked_at - timedelta(minutes=30),
        booked_at + timedelta(minutes=60),
        booked_at + timedelta(minutes=75),
        booked_at + timedelta(minutes=90),
        booked_at + timedelta(minutes=105),
    ]


async def test_slots_of_what_is_not_an_active_lesson_are_a_404(api, deps, make_user, make_skill):
    owner = await make_user()
    work = await make_skill(owner)
    _, lesson = await teacher_with_lesson(api, make_user, make_skill)
    paused = await api.patch(
        f"/api/skills/{lesson['id']}/",
        token=(await make_user()).access,
        json={"status": "paused"},
    )
    assert paused.status_code == 403  # not theirs
    for skill_id in (work["id"], 999_999_999):
        response = await api.get(f"/api/skills/{skill_id}/slots/")
        assert response.status_code == 404
        assert response.json()["code"] == "skill_not_found"
    teacher, other = await teacher_with_lesson(api, make_user, make_skill)
    await api.patch(f"/api/skills/{other['id']}/", token=teacher.access, json={"status": "paused"})
    response = await api.get(f"/api/skills/{other['id']}/slots/")
    assert response.status_code == 404


async def test_a_teacher_without_availability_has_no_slots(api, make_user, make_skill):
    teacher = await make_user()
    skill = await make_skill(teacher, lesson_minutes=30)
    listed = await slots_of(api, skill["id"])
    assert listed["slots"] == []
    assert listed["timezone"] == "UTC"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "2027-01-01T00:00:00Z", "to": "2027-02-02T00:00:00Z"}, "to"),
        ({"from": "2027-01-02T00:00:00Z", "to": "2027-01-01T00:00:00Z"}, "to"),
        ({"from": "2027-01-02T00:00:00Z", "to": "2027-01-02T00:00:00Z"}, "to"),
        ({"from": "tomorrow"}, "from"),
        ({"to": "2027-01-32"}, "to"),
        ({"from": "9999-12-31T23:00:00Z"}, "from"),
        ({"from": "0001-01-01T00:00:00+05:00"}, "from"),
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"tz": "../../etc/passwd"}, "tz"),
        ({"zone": "UTC"}, "zone"),
    ],
)
async def test_a_wrong_slot_query_is_a_400_naming_the_argument(
    api, make_user, make_skill, query, field
):
    _, skill = await teacher_with_lesson(api, make_user, make_skill)
    response = await api.get(f"/api/skills/{skill['id']}/slots/", params=query)
    assert response.status_code == 400, response.text
    assert list(response.json()["errors"]) == [field]


# -- booking -------------------------------------------------------------------------------------


async def test_booking_holds_the_price_and_claims_every_quarter_of_the_lesson(
    api, deps, make_user, make_skill
):
    teacher, skill = await teacher_with_lesson(api, make_user, make_skill, price=30)
    buyer = await make_user()
    starts_at = tomorrow_at(deps, 9, 30)
    response = await book(api, buyer, skill["id"], starts_at, requirements="Scales, please")
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "pending"
    assert order["lesson"] == {
        "starts_at": iso(starts_at),
        "ends_at": iso(starts_at + timedelta(hours=1)),
        "minutes": 60,
        "proposed_starts_at": None,
        "proposed_by": None,
    }
    # Unconfirmed, it expires by the lesson's start at the latest.
    assert at(order["deadline_at"]) <= starts_at
    assert await balance(deps, buyer.id) == (100, 30)
    assert await claims_of(deps, order["id"]) == [
        starts_at + timedelta(minutes=15 * n) for n in range(4)
    ]
    detail = await api.get(f"{ORDERS}{order['id']}/", token=teacher.access)
    assert detail.json()["lesson"] == order["lesson"]
    listed = await api.get(f"{ORDERS}?role=buyer", token=buyer.access)
    assert [item["lesson"] for item in listed.json()["results"]] == [order["lesson"]]
    # The slot is gone from the list.
    span = {"from": iso(starts_at - timedelta(hours=1)), "to": iso(starts_at + timedelta(hours=1))}
    starts = [slot["start"] for slot in (await slots_of(api, skill["id"], **span))["slots"]]
    assert iso(starts_at) not in starts
    assert iso(starts_at - timedelta(minutes=60)) in starts
    # Another order of the buyer's (not a lesson) has none.
    work = await make_skill(teacher)
    plain = await api.post(ORDERS, token=buyer.access, json={"skill_id": work["id"]})
    assert plain.status_code == 201, plain.text
    assert plain.json()["lesson"] is None
    assert (await audit_ledger(deps.db)).ok


async def test_a_lesson_needs_a_slot_and_other_skills_refuse_one(api, deps, make_user, make_skill):
    teacher, skill = await teacher_with_lesson(api, make_user, make_skill)
    buyer = await make_user()
    missing = await api.post(ORDERS, token=buyer.access, json={"skill_id": skill["id"]})
    assert missing.status_code == 400, missing.text
    assert missing.json()["code"] == "slot_required"
    assert list(missing.json()["errors"]) == ["slot_start"]
    work = await make_skill(teacher)
    refused = await book(api, buyer, work["id"], tomorrow_at(deps, 9))
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "slot_not_a_lesson"
    for wrong in ("tomorrow at nine", "", "2027-02-30T09:00:00Z", True, [1]):
        response = await api.post(
            ORDERS, token=buyer.access, json={"skill_id": skill["id"], "slot_start": wrong}
        )
        assert response.status_code == 400, wrong
        assert list(response.json()["errors"]) == ["slot_start"], wrong
    assert await held_orders(deps, buyer.id) == (0, 0)
    assert await balance(deps, buyer.id) == (100, 0)


async def test_a_time_the_teacher_does_not_offer_is_a_409_slot_unavailable(
    api, deps, make_user, make_skill
):
    day = (deps.clock() + timedelta(days=2)).date()
    teacher, skill = await teacher_with_lesson(
        api,
        make_user,
        make_skill,
        weekly=[{"weekday": day.weekday(), "start": "09:00", "end": "12:00"}],
    )
    buyer = await make_user()
    for start in (
        tomorrow_at(deps, 9, 10),  # off the quarter hours
        tomorrow_at(deps, 9, 0) + timedelta(seconds=30),
        tomorrow_at(deps, 8, 45),  # before the window
        tomorrow_at(deps, 11, 15),  # the lesson would end after it
        tomorrow_at(deps, 9) + timedelta(days=1),  # another weekday
        tomorrow_at(deps, 9) - timedelta(days=7),  # in the past
        tomorrow_at(deps, 9) + timedelta(days=700),  # too far ahead
    ):
        response = await book(api, buyer, skill["id"], start)
        assert response.status_code == 409, (start, response.text)
        assert response.json()["code"] == "slot_unavailable"
    ok = await book(api, buyer, skill["id"], tomorrow_at(deps, 11))
    assert ok.status_code == 201, ok.text
    assert await held_orders(deps, buyer.id) == (1, 1)
    own = await book(api, teacher, skill["id"], tomorrow_at(deps, 9))
    assert own.status_code == 403
    assert own.json()["code"] == "own_skill"


async def test_a_slot_booked_already_is_a_409_slot_taken_and_nothing_is_written(
    api, deps, make_user, make_skill
):
    teacher, skill = await teacher_with_lesson(api, make_user, make_skill)
    first, second = await make_user(), await make_user()
    starts_at = tomorrow_at(deps, 15)
    assert (await book(api, first, skill["id"], starts_at)).status_code == 201
    for start in (starts_at, starts_at + timedelta(minutes=45), starts_at - timedelta(minutes=45)):
        taken = await book(api, second, skill["id"], start)
        assert taken.status_code == 409, taken.text
        assert taken.json()["code"] == "slot_taken"
    assert await held_orders(deps, second.id) == (0, 0)
    assert await balance(deps, second.id) == (100, 0)
    # A 30-minute lesson of the same teacher overlapping it is taken too; next to it is free.
    half = await make_skill(teacher, lesson_minutes=30)
    assert (await book(api, second, half["id"], starts_at + timedelta(minutes=30))).json()[
        "code"
    ] == "slot_taken"
    after = await book(api, second, half["id"], starts_at + timedelta(minutes=60))
    assert after.status_code == 201, after.text
    assert (await audit_ledger(deps.db)).ok


async def test_a_replayed_booking_returns_the_first_order(api, deps, make_user, make_skill):
    _, skill = await teacher_with_lesson(api, make_user, make_skill)
    buyer = await make_user()
    headers = {"Idempotency-Key": unique_name("booking")}
    starts_at = tomorrow_at(deps, 18)
    first = await book(api, buyer, skill["id"], starts_at, headers=headers)
    again = await book(api, buyer, skill["id"], starts_at, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["lesson"] == first.json()["lesson"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    other_time = await book(
        api, buyer, skill["id"], starts_at + timedelta(hours=2), headers=headers
    )
    assert other_time.status_code == 409
    assert other_time.json()["code"] == "idempotency_key_reused"
    assert await held_orders(deps, buyer.id) == (1, 1)
    assert len(await claims_of(deps, first.json()["id"])) == 4


async def test_changing_a_lessons_length_changes_only_new_bookings(
    api, deps, make_user, make_skill
):
    teacher, skill = await teacher_with_lesson(api, make_user, make_skill, minutes=60)
    buyer = await make_user()
    first = await book(api, buyer, skill["id"], tomorrow_at(deps, 6))
    assert first.status_code == 201, first.text
    changed = await api.patch(
        f"/api/skills/{skill['id']}/", token=teacher.access, json={"lesson_minutes": 30}
    )
    assert changed.status_code == 200
    second = await book(api, buyer, skill["id"], tomorrow_at(deps, 8))
    assert second.status_code == 201, second.text
    assert second.json()["lesson"]["minutes"] == 30
    assert len(await claims_of(deps, second.json()["id"])) == 2
    kept = await api.get(f"{ORDERS}{first.json()['id']}/", token=buyer.access)
    assert kept.json()["lesson"]["minutes"] == 60
    assert kept.json()["lesson"]["ends_at"] == iso(tomorrow_at(deps, 7))
    assert len(await claims_of(deps, first.json()["id"])) == 4


# -- one's lessons -------------------------------------------------------------------------------


async def test_my_lessons_upcoming_and_past_as_buyer_or_seller(api, deps, make_user, make_skill):
    teacher, skill = await teacher_with_lesson(api, make_user, make_skill, price=5)
    buyer = await make_user(timezone="America/New_York")
    later, sooner = tomorrow_at(deps, 20), tomorrow_at(deps, 4)
    booked = {}
    for start in (later, sooner):
        response = await book(api, buyer, skill["id"], start)
        assert response.status_code == 201, response.text
        booked[start] = response.json()["id"]
    mine = await api.get(LESSONS, token=buyer.access)
    assert mine.status_code == 200, mine.text
    page = mine.json()
    assert page["count"] == 2
    assert [item["order_id"] for item in page["results"]] == [booked[sooner], booked[later]]
    first = page["results"][0]
    assert first["role"] == "buyer"
    assert first["status"] == "pending"
    assert first["skill"]["id"] == skill["id"]
    assert first["other"]["id"] == teacher.id
    assert (first["starts_at"], first["ends_at"], first["minutes"]) == (
        iso(sooner),
        iso(sooner + timedelta(hours=1)),
        60,
    )
    new_york = sooner.astimezone(ZoneInfo("America/New_York"))
    assert first["timezone"] == "America/New_York"
    assert first["local_starts_at"] == new_york.isoformat()
    taught = await api.get(f"{LESSONS}?role=seller", token=teacher.access)
    assert [item["other"]["id"] for item in taught.json()["results"]] == [buyer.id, buyer.id]
    assert {item["role"] for item in taught.json()["results"]} == {"seller"}
    assert (await api.get(f"{LESSONS}?role=seller", token=buyer.access)).json()["count"] == 0
    assert (await api.get(f"{LESSONS}?role=buyer", token=teacher.access)).json()["count"] == 0
    # Someone else sees none of them.
    stranger = await make_user()
    assert (await api.get(LESSONS, token=stranger.access)).json()["count"] == 0
    # Paged the project's way.
    one = await api.get(f"{LESSONS}?page_size=1", token=buyer.access)
    assert (one.json()["count"], len(one.json()["results"])) == (2, 1)
    assert one.json()["next"] is not None
    # Once the first has ended it is past; the other is still upcoming.
    with deps.clock.moved(sooner + timedelta(hours=1, minutes=1) - deps.clock()):
        past = await api.get(f"{LESSONS}?when=past", token=buyer.access)
        upcoming = await api.get(f"{LESSONS}?when=upcoming", token=buyer.access)
    assert [item["order_id"] for item in past.json()["results"]] == [booked[sooner]]
    assert [item["order_id"] for item in upcoming.json()["results"]] == [booked[later]]


async def test_my_lessons_leave_out_a_lesson_whose_dispute_was_refunded(
    api, deps, make_user, make_skill
):
    teacher, skill = await teacher_with_lesson(api, make_user, make_skill, price=5)
    buyer, admin = await make_user(), await make_user(admin=True)
    refunded_at, released_at = tomorrow_at(deps, 8), tomorrow_at(deps, 10)
    booked = {}
    for start in (refunded_at, released_at):
        response = await book(api, buyer, skill["id"], start)
        assert response.status_code == 201, response.text
        order_id = response.json()["id"]
        accepted = await api.post(f"{ORDERS}{order_id}/accept/", token=teacher.access, json={})
        assert accepted.status_code == 200, accepted.text
        disputed = await api.post(f"{ORDERS}{order_id}/dispute/", token=buyer.access, json={})
        assert disputed.status_code == 200, disputed.text
        booked[start] = order_id

    async def listed(user: Any) -> list[tuple[int, str]]:
        response = await api.get(LESSONS, token=user.access)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["count"] == len(page["results"])
        return [(item["order_id"], item["status"]) for item in page["results"]]

    # Disputed, they may still take place: both are listed.
    both = [(booked[refunded_at], "disputed"), (booked[released_at], "disputed")]
    assert await listed(buyer) == await listed(teacher) == both
    for start, resolution in ((refunded_at, "refund"), (released_at, "release")):
        resolved = await api.post(
            f"{ORDERS}{booked[start]}/resolve/",
            token=admin.access,
            json={"resolution": resolution},
        )
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["status"] == "resolved"
    # The refund ended the order without its lesson (its time is free again); the release
    # kept it.
    kept = [(booked[released_at], "resolved")]
    assert await listed(buyer) == await listed(teacher) == kept
    assert await claims_of(deps, booked[refunded_at]) == []
    with deps.clock.moved(released_at + timedelta(hours=2) - deps.clock()):
        past = await api.get(f"{LESSONS}?when=past", token=buyer.access)
    assert [item["order_id"] for item in past.json()["results"]] == [booked[released_at]]
    assert await balance(deps, buyer.id) == (95, 0)
    assert (await audit_ledger(deps.db)).ok


async def test_my_lessons_refuse_wrong_arguments_and_strangers(api, make_user):
    user = await make_user()
    for query in ("when=later", "role=admin", "role=all", "page=0", "order=starts"):
        response = await api.get(f"{LESSONS}?{query}", token=user.access)
        assert response.status_code == 400, query
    assert (await api.get(LESSONS)).status_code == 401


async def test_a_lesson_row_is_read_with_its_order_page(api, deps, make_user, make_skill):
    """One statement for the page's orders and their lessons, whatever the page's size."""
    _, skill = await teacher_with_lesson(api, make_user, make_skill, price=1)
    buyer = await make_user()
    for hour in (1, 3, 5):
        assert (await book(api, buyer, skill["id"], tomorrow_at(deps, hour))).status_code == 201
    async with QueryRecorder(deps.db) as few:
        await api.get(f"{ORDERS}?page_size=1", token=buyer.access)
    async with QueryRecorder(deps.db) as many:
        listed = await api.get(f"{ORDERS}?page_size=3", token=buyer.access)
    assert many.count == few.count
    assert all(item["lesson"]["minutes"] == 60 for item in listed.json()["results"])
    async with deps.db.read() as session:
        lessons = await session.scalar(
            select(func.count()).select_from(Lesson).where(Lesson.buyer_id == buyer.id)
        )
    assert lessons == 3


async def test_a_booking_without_the_points_claims_nothing(api, deps, make_user, make_skill):
    _, skill = await teacher_with_lesson(api, make_user, make_skill, price=150)
    buyer = await make_user()
    starts_at = tomorrow_at(deps, 12)
    refused = await book(api, buyer, skill["id"], starts_at)
    assert refused.status_code == 402, refused.text
    assert (refused.json()["code"], refused.json()["missing"]) == ("insufficient_points", 50)
    assert await balance(deps, buyer.id) == (100, 0)
    assert await held_orders(deps, buyer.id) == (0, 0)
    span = {"from": iso(starts_at), "to": iso(starts_at + timedelta(minutes=15))}
    assert [slot["start"] for slot in (await slots_of(api, skill["id"], **span))["slots"]] == [
        iso(starts_at)
    ]
