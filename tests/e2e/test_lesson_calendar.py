"""The lessons' calendar feed: a private iCalendar URL per person, revocable, that calendar
apps read without signing in; what it lists, and how each lesson reads in it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import icalendar
from sqlalchemy import func, select, update

from skillswap.models import CalendarFeed, Lesson, Order, Skill
from skillswap.points.services import audit_ledger
from tests.factories import make_user
from tests.lesson_support import lesson_order

FEED = "/api/lessons/calendar/"
ICS = "/api/lessons/calendar.ics"


def _quarter(moment: datetime) -> datetime:
    return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


async def feed_url(api, user) -> str:
    response = await api.get(FEED, token=user.access)
    assert response.status_code == 200, response.text
    return str(response.json()["url"])


def key_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["key"][0]


async def read_feed(api, key: str) -> icalendar.Calendar:
    response = await api.get(ICS, params={"key": key})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert b"\r\n" in response.content  # RFC 5545 lines end in CRLF
    return icalendar.Calendar.from_ical(response.content)


def events_by_order(calendar: icalendar.Calendar) -> dict[str, icalendar.Event]:
    return {str(event["uid"]): event for event in calendar.walk("VEVENT")}


async def _titles(deps, order_id: int, english: str, arabic: str) -> None:
    async with deps.db.uow() as uow:
        order = await uow.session.get(Order, order_id)
        assert order is not None
        await uow.session.execute(
            update(Skill)
            .where(Skill.id == order.skill_id)
            .values(title_en=english, title_ar=arabic)
        )
        await uow.commit()


async def test_the_feed_url_is_absolute_stable_and_reads_without_signing_in(api, deps):
    user = await make_user(api, deps)
    url = await feed_url(api, user)
    parts = urlsplit(url)
    assert (parts.scheme, parts.path) == ("http", ICS)
    assert await feed_url(api, user) == url  # the same URL each time it is asked
    calendar = await read_feed(api, key_of(url))
    assert str(calendar["version"]) == "2.0"
    assert str(calendar["x-wr-calname"]) == "SkillSwap lessons"
    assert list(calendar.walk("VEVENT")) == []
    # The database holds no usable key: the URL's key is not what is stored.
    async with deps.db.read() as session:
        stored = await session.scalar(
            select(CalendarFeed.key_hash).where(CalendarFeed.user_id == user.id)
        )
    assert stored is not None and stored not in url


async def test_each_lesson_is_an_event_in_utc_in_the_readers_language(api, deps):
    teacher = await make_user(api, deps, locale="ar", display_name="سارة")
    learner = await make_user(api, deps, display_name="Lina")
    starts = _quarter(deps.clock()) + timedelta(days=3)
    order = await lesson_order(api, deps, learner, teacher, starts_at=starts, minutes=45)
    await _titles(deps, order["id"], "Oud lessons", "دروس العود")

    teacher_events = events_by_order(await read_feed(api, key_of(await feed_url(api, teacher))))
    event = teacher_events[f"order-{order['id']}@skillswap"]
    assert event["dtstart"].dt == starts
    assert event["dtend"].dt == starts + timedelta(minutes=45)
    assert event["dtstart"].dt.tzinfo is not None and event["dtstart"].dt.utcoffset() == timedelta()
    assert str(event["summary"]) == "درس: دروس العود"
    assert str(event["description"]) == f"مع Lina (الطلب #{order['id']})."
    assert str(event["status"]) == "TENTATIVE"  # not accepted yet
    assert str(event["url"]).endswith(f"/orders/{order['id']}")

    learner_events = events_by_order(await read_feed(api, key_of(await feed_url(api, learner))))
    mine = learner_events[f"order-{order['id']}@skillswap"]
    assert str(mine["summary"]) == "Lesson: Oud lessons"
    assert str(mine["description"]) == f"With سارة (order #{order['id']})."

    response = await api.post(
        f"/api/points/orders/{order['id']}/accept/", token=teacher.access, json={}
    )
    assert response.status_code == 200, response.text
    accepted = events_by_order(await read_feed(api, key_of(await feed_url(api, learner))))
    again = accepted[f"order-{order['id']}@skillswap"]
    assert str(again["status"]) == "CONFIRMED"
    assert again["uid"] == mine["uid"]
    assert int(again["sequence"]) >= int(mine["sequence"])


async def test_a_moved_lesson_keeps_its_uid_and_bumps_its_sequence(api, deps):
    teacher, learner = await make_user(api, deps), await make_user(api, deps)
    starts = _quarter(deps.clock()) + timedelta(days=4)
    order = await lesson_order(api, deps, learner, teacher, starts_at=starts)
    key = key_of(await feed_url(api, learner))
    (before,) = events_by_order(await read_feed(api, key)).values()

    later = starts + timedelta(hours=2)
    async with deps.db.uow() as uow:
        await uow.session.execute(
            update(Lesson)
            .where(Lesson.order_id == order["id"])
            .values(starts_at=later, ends_at=later + timedelta(hours=1))
        )
        await uow.session.execute(
            update(Order)
            .where(Order.id == order["id"])
            .values(updated_at=deps.clock() + timedelta(seconds=5))
        )
        await uow.commit()
    (after,) = events_by_order(await read_feed(api, key)).values()
    assert after["uid"] == before["uid"]
    assert after["dtstart"].dt == later
    assert int(after["sequence"]) > int(before["sequence"])


async def test_a_cancelled_lesson_stays_as_cancelled_so_calendars_drop_it(api, deps):
    teacher, learner = await make_user(api, deps), await make_user(api, deps)
    starts = _quarter(deps.clock()) + timedelta(days=5)
    order = await lesson_order(api, deps, learner, teacher, starts_at=starts)
    response = await api.post(
        f"/api/points/orders/{order['id']}/cancel/", token=learner.access, json={}
    )
    assert response.status_code == 200, response.text
    events = events_by_order(await read_feed(api, key_of(await feed_url(api, teacher))))
    assert str(events[f"order-{order['id']}@skillswap"]["status"]) == "CANCELLED"


async def test_a_disputed_lesson_is_tentative_and_one_refunded_is_cancelled(api, deps):
    teacher, learner = await make_user(api, deps), await make_user(api, deps)
    admin = await make_user(api, deps, admin=True)
    starts = _quarter(deps.clock()) + timedelta(days=5)
    refunded = await lesson_order(api, deps, learner, teacher, starts_at=starts)
    released = await lesson_order(
        api, deps, learner, teacher, starts_at=starts + timedelta(hours=2)
    )
    orders = "/api/points/orders"
    for order in (refunded, released):
        for user, action in ((teacher, "accept"), (learner, "dispute")):
            response = await api.post(
                f"{orders}/{order['id']}/{action}/", token=user.access, json={}
            )
            assert response.status_code == 200, response.text
    keys = [key_of(await feed_url(api, user)) for user in (teacher, learner)]

    async def statuses(key: str) -> dict[int, str]:
        events = events_by_order(await read_feed(api, key))
        return {
            order["id"]: str(events[f"order-{order['id']}@skillswap"]["status"])
            for order in (refunded, released)
        }

    # A dispute may yet end without the lesson: not CONFIRMED.
    for key in keys:
        assert await statuses(key) == {refunded["id"]: "TENTATIVE", released["id"]: "TENTATIVE"}
    for order, resolution in ((refunded, "refund"), (released, "release")):
        response = await api.post(
            f"{orders}/{order['id']}/resolve/",
            token=admin.access,
            json={"resolution": resolution},
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "resolved"
    # The refund gave the lesson's time back: it will not take place; the release kept it.
    for key in keys:
        assert await statuses(key) == {refunded["id"]: "CANCELLED", released["id"]: "CONFIRMED"}
    assert (await audit_ledger(deps.db)).ok


async def test_a_feed_lists_only_its_owners_lessons(api, deps):
    teacher, learner, stranger = [await make_user(api, deps) for _ in range(3)]
    starts = _quarter(deps.clock()) + timedelta(days=6)
    await lesson_order(api, deps, learner, teacher, starts_at=starts)
    events = events_by_order(await read_feed(api, key_of(await feed_url(api, stranger))))
    assert events == {}


async def test_rotating_replaces_the_url_and_the_old_key_is_a_404(api, deps):
    user = await make_user(api, deps)
    old = await feed_url(api, user)
    rotated = await api.post(FEED, token=user.access)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["url"]
    assert new != old
    assert await feed_url(api, user) == new
    gone = await api.get(ICS, params={"key": key_of(old)})
    assert gone.status_code == 404
    assert gone.headers["Content-Type"].startswith("application/problem+json")
    assert gone.json()["code"] == "calendar_feed_not_found"
    await read_feed(api, key_of(new))


async def test_a_revoked_feed_is_a_404_until_a_new_one_is_asked_for(api, deps):
    user = await make_user(api, deps)
    old = await feed_url(api, user)
    revoked = await api.delete(FEED, token=user.access)
    assert revoked.status_code == 204
    assert (await api.get(ICS, params={"key": key_of(old)})).status_code == 404
    again = await api.delete(FEED, token=user.access)  # revoking twice is still revoked
    assert again.status_code == 204
    new = await feed_url(api, user)
    assert new != old
    assert (await api.get(ICS, params={"key": key_of(old)})).status_code == 404
    await read_feed(api, key_of(new))


async def test_wrong_or_missing_keys_are_404(api, deps):
    user = await make_user(api, deps)
    other = await make_user(api, deps)
    key = key_of(await feed_url(api, user))
    other_key = key_of(await feed_url(api, other))
    user_id, mac = key.split(".")
    for wrong in (
        f"{user_id}.{mac[:-1]}A" if not mac.endswith("A") else f"{user_id}.{mac[:-1]}B",
        f"{other.id}.{mac}",  # this user's MAC under another's id
        f"{user_id}.{other_key.split('.')[1]}",
        mac,
        f"{'9' * 30}.{mac}",
        # 19 digits, as many as a BIGINT has, but past the largest id: no one's, not a 500.
        f"{'9' * 19}.abc",
        f"{2**63}.abc",
        f"{2**63}.{mac}",
        f"{2**63 - 1}.abc",  # the largest id: no such user
        f"-{user_id}.{mac}",
        "x",
    ):
        response = await api.get(ICS, params={"key": wrong})
        assert response.status_code == 404, wrong
        assert response.json()["code"] == "calendar_feed_not_found"
    missing = await api.get(ICS)
    assert missing.status_code == 404
    assert missing.json()["code"] == "calendar_feed_not_found"
    too_long = await api.get(ICS, params={"key": f"{user_id}.{mac * 10}"})
    assert too_long.status_code == 400
    assert list(too_long.json()["errors"]) == ["key"]


async def test_the_feed_url_needs_a_signed_in_user(api):
    for method in ("get", "post", "delete"):
        response = await getattr(api, method)(FEED)
        assert response.status_code == 401, method


async def test_lessons_more_than_ninety_days_old_are_not_listed(api, deps):
    teacher, learner = await make_user(api, deps), await make_user(api, deps)
    old = datetime(2020, 1, 6, 9, 0, tzinfo=UTC)
    await lesson_order(api, deps, learner, teacher, starts_at=old)
    events = events_by_order(await read_feed(api, key_of(await feed_url(api, learner))))
    assert events == {}


async def test_the_document_is_escaped_and_folded_and_parses_back(api, deps):
    teacher, learner = await make_user(api, deps), await make_user(api, deps)
    starts = _quarter(deps.clock()) + timedelta(days=7)
    order = await lesson_order(api, deps, learner, teacher, starts_at=starts)
    title = "Maqam, rhythm; and a back\\slash, " * 3 + "عود"
    await _titles(deps, order["id"], title.strip(), "")
    response = await api.get(ICS, params={"key": key_of(await feed_url(api, learner))})
    raw = response.content
    lines = raw.split(b"\r\n")
    assert all(len(line) <= 75 for line in lines)  # folded at 75 octets
    assert any(line.startswith(b" ") for line in lines)  # ... so some continue a line
    assert b"Maqam\\, rhythm\\; and a back\\\\slash\\," in raw.replace(b"\r\n ", b"")
    start = starts.strftime("%Y%m%dT%H%M%SZ").encode()
    assert b"DTSTART:" + start in lines
    (event,) = icalendar.Calendar.from_ical(raw).walk("VEVENT")
    assert str(event["summary"]) == f"Lesson: {title.strip()}"


async def test_two_first_calls_at_once_make_one_feed(api, deps):
    user = await make_user(api, deps)
    first, second = await asyncio.gather(
        api.get(FEED, token=user.access), api.get(FEED, token=user.access)
    )
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    async with deps.db.read() as session:
        feeds = await session.scalar(
            select(func.count()).select_from(CalendarFeed).where(CalendarFeed.user_id == user.id)
        )
    assert feeds == 1
