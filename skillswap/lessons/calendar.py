"""The private iCalendar feed of a person's lessons, that calendar apps subscribe to.

The feed's URL carries a key instead of a sign-in (a calendar app sends no bearer token). The
`calendar_feeds` row holds no usable secret: `key_hash` is a random value (the SHA-256 of 32
random bytes), and the key is `{user_id}.{HMAC-SHA256(SECRET_KEY, "lesson-calendar:{user_id}:
{key_hash}")}`. So the database alone gives no working URL, while the server can write the URL
again whenever its owner asks (GET /api/lessons/calendar/ answers the same URL every time).
Rotating replaces the random value (the old URL stops working at once), revoking deletes the
row; a new SECRET_KEY changes every feed's URL. A wrong, rotated or revoked key is a 404.

The feed lists the lessons of the last LOOKBACK and all ahead, as buyer or seller, one VEVENT
per order (its UID is the order's, so an app updates the event in place): DTSTART and DTEND in
UTC, SUMMARY and DESCRIPTION in the owner's language (the skill's title, the other person),
STATUS TENTATIVE while the teacher has not accepted (or the order is paused or disputed: it may
yet end without the lesson), CONFIRMED after, and CANCELLED for a lesson that will not take place
(rejected, cancelled, expired, or a dispute resolved by a refund, which gave its time back), so a
subscribed calendar takes it off rather than keeping a stale copy. SEQUENCE grows with the
order's `updated_at`, which every change of the order (a new time accepted, a status) moves
forward.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

import icalendar
from sqlalchemy import Table, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from skillswap.errors import NotFound
from skillswap.i18n import N_, lazy
from skillswap.models import CalendarFeed, Lesson, Order, Skill, User
from skillswap.models.base import MAX_ID  # ids are BIGINT: a larger "id" in a key is no one's
from skillswap.models.orders import OrderStatus, Resolution
from skillswap.notifications.mailing import translator_for

if TYPE_CHECKING:
    from skillswap.deps import Deps

FEED_PATH = "/api/lessons/calendar.ics"
KEY_PURPOSE = "lesson-calendar"
LOOKBACK = timedelta(days=90)  # past lessons the feed still lists
MAX_EVENTS = 1000

CALENDAR_NAME = N_("SkillSwap lessons")
EVENT_SUMMARY = N_("Lesson: {skill}")
EVENT_DESCRIPTION = N_("With {other} (order #{order}).")
NO_SUCH_FEED = N_("No such calendar feed: the link is wrong, or was replaced or turned off.")

# What a calendar app is told of each order status.
_WILL_NOT_TAKE_PLACE = (OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED)
_TENTATIVE = (OrderStatus.PENDING, OrderStatus.PAUSED, OrderStatus.DISPUTED)

_feeds = cast(Table, CalendarFeed.__table__)


def _random_value() -> str:
    return hashlib.sha256(secrets.token_bytes(32)).hexdigest()


def feed_key(secret_key: str, user_id: int, key_hash: str) -> str:
    """The key of the feed whose row holds `key_hash` (see the module)."""
    message = f"{KEY_PURPOSE}:{user_id}:{key_hash}".encode()
    mac = hmac.new(secret_key.encode(), message, hashlib.sha256).digest()
    return f"{user_id}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def feed_path(key: str) -> str:
    """The feed's path with its key (the handler makes it absolute)."""
    return f"{FEED_PATH}?key={key}"


async def get_feed_key(deps: Deps, *, actor: User) -> str:
    """The actor's feed key, the feed made on the first call (two first calls make one)."""
    async with deps.db.read() as session:
        key_hash = await session.scalar(
            select(CalendarFeed.key_hash).where(CalendarFeed.user_id == actor.id)
        )
    if key_hash is not None:
        return feed_key(deps.settings.secret_key, actor.id, key_hash)
    insert = postgresql.insert if deps.db.on_driver else sqlite.insert
    async with deps.db.uow() as uow:
        await uow.session.execute(
            insert(_feeds)
            .values(user_id=actor.id, key_hash=_random_value(), created_at=deps.clock())
            .on_conflict_do_nothing(index_elements=["user_id"])
        )
        key_hash = await uow.session.scalar(
            select(CalendarFeed.key_hash).where(CalendarFeed.user_id == actor.id)
        )
        await uow.commit()
    assert key_hash is not None
    return feed_key(deps.settings.secret_key, actor.id, key_hash)


async def rotate_feed_key(deps: Deps, *, actor: User) -> str:
    """A new key for the actor's feed; the previous URL stops working."""
    insert = postgresql.insert if deps.db.on_driver else sqlite.insert
    key_hash = _random_value()
    statement = insert(_feeds).values(user_id=actor.id, key_hash=key_hash, created_at=deps.clock())
    async with deps.db.uow() as uow:
        await uow.session.execute(
            statement.on_conflict_do_update(
                index_elements=["user_id"],
                set_={"key_hash": statement.excluded.key_hash, "created_at": deps.clock()},
            )
        )
        await uow.commit()
    return feed_key(deps.settings.secret_key, actor.id, key_hash)


async def revoke_feed(deps: Deps, *, actor: User) -> None:
    """Turn the actor's feed off: its URL is a 404 until a new one is asked for."""
    async with deps.db.uow() as uow:
        await uow.session.execute(delete(CalendarFeed).where(CalendarFeed.user_id == actor.id))
        await uow.commit()


@dataclass(frozen=True)
class FeedLesson:
    """One lesson as the feed shows it to its owner."""

    order_id: int
    status: str
    resolution: str | None
    starts_at: datetime
    ends_at: datetime
    booked_at: datetime
    updated_at: datetime
    skill: str
    other: str


def _skill_title(title_en: str, title_ar: str | None, locale: str) -> str:
    if locale == "ar" and title_ar:
        return title_ar
    return title_en or title_ar or ""


async def _feed_owner(deps: Deps, key: str) -> User:
    user_id_text, dot, _mac = key.partition(".")
    if (
        not dot
        or not user_id_text.isdecimal()
        or len(user_id_text) > len(str(MAX_ID))
        or int(user_id_text) > MAX_ID
    ):
        raise NotFound(lazy(NO_SUCH_FEED), code="calendar_feed_not_found")
    user_id = int(user_id_text)
    async with deps.db.read() as session:
        found = (
            await session.execute(
                select(User, CalendarFeed.key_hash)
                .join(CalendarFeed, CalendarFeed.user_id == User.id)
                .where(User.id == user_id)
            )
        ).first()
    if found is None or not found.User.is_active:
        raise NotFound(lazy(NO_SUCH_FEED), code="calendar_feed_not_found")
    expected = feed_key(deps.settings.secret_key, user_id, found.key_hash)
    if not hmac.compare_digest(expected.encode(), key.encode()):
        raise NotFound(lazy(NO_SUCH_FEED), code="calendar_feed_not_found")
    return cast(User, found.User)


async def _lessons_of(deps: Deps, user: User, locale: str) -> list[FeedLesson]:
    since = deps.clock() - LOOKBACK
    async with deps.db.read() as session:
        rows = (
            await session.execute(
                select(
                    Lesson.order_id,
                    Lesson.seller_id,
                    Lesson.buyer_id,
                    Lesson.starts_at,
                    Lesson.ends_at,
                    Lesson.created_at,
                    Order.status,
                    Order.resolution,
                    Order.updated_at,
                    Skill.title_en,
                    Skill.title_ar,
                )
                .join(Order, Order.id == Lesson.order_id)
                .join(Skill, Skill.id == Order.skill_id)
                .where(
                    or_(Lesson.seller_id == user.id, Lesson.buyer_id == user.id),
                    Lesson.starts_at >= since,
                )
                .order_by(Lesson.starts_at, Lesson.order_id)
                .limit(MAX_EVENTS)
            )
        ).all()
        others = {row.buyer_id if row.seller_id == user.id else row.seller_id for row in rows}
        names = {
            user_id: display_name or username
            for user_id, display_name, username in await session.execute(
                select(User.id, User.display_name, User.username).where(User.id.in_(others))
            )
        }
    return [
        FeedLesson(
            order_id=row.order_id,
            status=row.status,
            resolution=row.resolution,
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            booked_at=row.created_at,
            updated_at=max(row.updated_at, row.created_at),
            skill=_skill_title(row.title_en, row.title_ar, locale),
            other=names.get(row.buyer_id if row.seller_id == user.id else row.seller_id, ""),
        )
        for row in rows
    ]


def _event_status(status: str, resolution: str | None) -> str:
    if status in _WILL_NOT_TAKE_PLACE or resolution == Resolution.REFUND:
        return "CANCELLED"
    if status in _TENTATIVE:
        return "TENTATIVE"
    return "CONFIRMED"


async def calendar_feed(deps: Deps, *, key: str, links_base: str) -> bytes:
    """The iCalendar document of the feed with `key` (a 404 for any other key).

    `links_base` is where the web app's order pages are (each event links its order)."""
    user = await _feed_owner(deps, key)
    translator = translator_for(deps, user)
    lessons = await _lessons_of(deps, user, translator.locale)
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//SkillSwap//Lessons//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", translator.gettext(CALENDAR_NAME))
    for lesson in lessons:
        event = icalendar.Event()
        event.add("uid", f"order-{lesson.order_id}@skillswap")
        event.add("dtstamp", lesson.updated_at)
        event.add("last-modified", lesson.updated_at)
        event.add("created", lesson.booked_at)
        event.add("dtstart", lesson.starts_at)
        event.add("dtend", lesson.ends_at)
        # Whole seconds since booking: larger after every change of the order.
        event.add("sequence", int((lesson.updated_at - lesson.booked_at).total_seconds()))
        event.add("status", _event_status(lesson.status, lesson.resolution))
        event.add("summary", translator.gettext(EVENT_SUMMARY).format(skill=lesson.skill))
        event.add(
            "description",
            translator.gettext(EVENT_DESCRIPTION).format(other=lesson.other, order=lesson.order_id),
        )
        event.add("url", f"{links_base.rstrip('/')}/orders/{lesson.order_id}")
        calendar.add_component(event)
    return bytes(calendar.to_ical())
