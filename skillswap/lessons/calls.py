"""The lesson's call: who may join it and when, its ICE servers, and the notices it leaves.

A call belongs to a lesson order and takes place in the order's chat room. Its buyer and its
seller (no one else, administrators included) may join it once the order is accepted (or
delivered), from LESSON_CALL_EARLY_SECONDS before the start until CALL_GRACE after the end.

The media go peer to peer; the server hands out ICE servers - STUN_URLS and, when TURN_URLS
and TURN_SECRET are set, TURN with the time-limited credentials of coturn's REST API
(`use-auth-secret`): the username is `expiry:user_id`, the credential the base64 HMAC-SHA1 of
that username under the shared secret, so coturn checks it without asking us. Signalling
(offer, answer, candidates, hang-up) travels over the WebSocket and is never stored; the first
offer of a call and its hang-up are recorded on the lesson (`call_started_at`, `call_ended_at`)
and written to the room's history as the notices `call_started` and `call_ended`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select, update

from skillswap.api.encoding import iso
from skillswap.chat import services as chat
from skillswap.errors import Conflict, NotFound
from skillswap.i18n import lazy
from skillswap.models import ChatRoom, Lesson, Order, User
from skillswap.models.orders import OrderStatus
from skillswap.orders.queries import order_not_found

if TYPE_CHECKING:
    from skillswap.db import Database
    from skillswap.deps import Deps
    from skillswap.settings import Settings

# A lesson that overruns keeps its call this long after its end.
CALL_GRACE = timedelta(minutes=15)
# The orders whose lesson may be joined: confirmed by the seller, or already marked taught.
OPEN_STATUSES = frozenset({OrderStatus.ACCEPTED, OrderStatus.DELIVERED})
# The room's notices: chat messages of the participant who started or ended the call, their
# bodies these codes (clients show them translated) and their client_id the code and the
# moment, so a retried write stores one.
CALL_STARTED = "call_started"
CALL_ENDED = "call_ended"


@dataclass(frozen=True, slots=True)
class CallRoom:
    """A lesson order as its call needs it: its room, its two participants, its time."""

    order_id: int
    room_id: int | None
    buyer_id: int
    seller_id: int
    status: str
    starts_at: datetime
    ends_at: datetime

    def has(self, user_id: int) -> bool:
        return user_id in (self.buyer_id, self.seller_id)

    def other(self, user_id: int) -> int:
        return self.seller_id if user_id == self.buyer_id else self.buyer_id

    def opens_at(self, settings: Settings) -> datetime:
        return self.starts_at - timedelta(seconds=settings.lesson_call_early_seconds)

    def closes_at(self) -> datetime:
        return self.ends_at + CALL_GRACE


@dataclass(frozen=True, slots=True)
class CallAccess:
    """What a participant joins the call with."""

    room_id: int
    ice_servers: list[dict[str, Any]]
    expires_at: datetime


def lesson_not_found() -> NotFound:
    return NotFound(lazy("This order is not a lesson."), code="lesson_not_found")


def call_refusal(room: CallRoom, settings: Settings, now: datetime) -> Conflict | None:
    """Why the lesson's call cannot be joined now (409 `call_not_open`, with its window), or
    None when it is open."""
    opens_at, closes_at = room.opens_at(settings), room.closes_at()
    window = {"opens_at": iso(opens_at), "closes_at": iso(closes_at)}
    if room.status not in OPEN_STATUSES:
        return Conflict(
            lazy("The call opens once the teacher has accepted the lesson."),
            code="call_not_open",
            extra={**window, "order_status": room.status},
        )
    if not opens_at <= now <= closes_at:
        return Conflict(
            lazy(
                "The call is open from {opens_at} to {closes_at} (UTC).",
                opens_at=window["opens_at"],
                closes_at=window["closes_at"],
            ),
            code="call_not_open",
            extra={**window, "order_status": room.status},
        )
    return None


def turn_credentials(secret: str, user_id: int, expiry: int) -> tuple[str, str]:
    """coturn's REST API credentials: `expiry:user_id` and base64(HMAC-SHA1(secret, username))."""
    username = f"{expiry}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers(
    settings: Settings, *, user_id: int, now: datetime
) -> tuple[list[dict[str, Any]], datetime]:
    """The ICE servers for `user_id` and when their credentials expire (now + TURN_TTL_SECONDS)."""
    expires_at = (now + timedelta(seconds=settings.turn_ttl_seconds)).replace(microsecond=0)
    servers: list[dict[str, Any]] = []
    if settings.stun_urls:
        servers.append({"urls": list(settings.stun_urls)})
    if settings.turn_urls and settings.turn_secret:
        username, credential = turn_credentials(
            settings.turn_secret, user_id, int(expires_at.timestamp())
        )
        servers.append(
            {"urls": list(settings.turn_urls), "username": username, "credential": credential}
        )
    return servers, expires_at


def _call_rooms() -> Any:
    return (
        select(
            Order.id,
            ChatRoom.id,
            Order.buyer_id,
            Order.seller_id,
            Order.status,
            Lesson.starts_at,
            Lesson.ends_at,
        )
        .select_from(Order)
        .join(Lesson, Lesson.order_id == Order.id)
        .outerjoin(ChatRoom, ChatRoom.order_id == Order.id)
    )


def _call_room(row: Any) -> CallRoom:
    return CallRoom(
        order_id=row[0],
        room_id=row[1],
        buyer_id=row[2],
        seller_id=row[3],
        status=str(row[4]),
        starts_at=row[5],
        ends_at=row[6],
    )


async def room_call(db: Database, room_id: int) -> CallRoom | None:
    """The lesson whose order owns the chat room `room_id`, or None (no such room, or its order
    is not a lesson)."""
    async with db.read() as session:
        row = (await session.execute(_call_rooms().where(ChatRoom.id == room_id))).first()
    return None if row is None else _call_room(row)


async def join_call(deps: Deps, *, actor: User, order_id: int) -> CallAccess:
    """The call of the lesson order `order_id` for one of its two participants, while it is open.

    Anyone else gets the answer of an order that does not exist (404 `order_not_found`).
    """
    async with deps.db.read() as session:
        order = (
            await session.execute(
                select(Order.buyer_id, Order.seller_id).where(Order.id == order_id)
            )
        ).first()
        if order is None or actor.id not in (order[0], order[1]):
            raise order_not_found()
        row = (await session.execute(_call_rooms().where(Order.id == order_id))).first()
    if row is None:
        raise lesson_not_found()
    room = _call_room(row)
    now = deps.clock()
    refusal = call_refusal(room, deps.settings, now)
    if refusal is not None:
        raise refusal
    if room.room_id is None:  # every order has its room; a lesson without one is not callable
        raise lesson_not_found()
    servers, expires_at = ice_servers(deps.settings, user_id=actor.id, now=now)
    return CallAccess(room_id=room.room_id, ice_servers=servers, expires_at=expires_at)


async def call_started(deps: Deps, *, room: CallRoom, actor: User) -> bool:
    """The first offer of a call: mark the lesson's call started and write `call_started` to the
    room; False (nothing written) when the call had already started.

    One conditional UPDATE decides, so two offers at once (both peers calling) leave one
    notice: a call starts when none was started yet or the last one ended.
    """
    now = deps.clock()
    async with deps.db.uow() as uow:
        started = await uow.session.execute(
            update(Lesson)
            .where(
                Lesson.order_id == room.order_id,
                or_(Lesson.call_started_at.is_(None), Lesson.call_ended_at.is_not(None)),
            )
            .values(call_started_at=now, call_ended_at=None)
        )
        await uow.commit()
    if _rowcount(started) != 1:
        return False
    await _notice(deps, room=room, actor=actor, code=CALL_STARTED, at=now)
    return True


async def call_ended(deps: Deps, *, room: CallRoom, actor: User) -> bool:
    """A hang-up: mark the call ended and write `call_ended` to the room; False when no call
    was going on (never started, or already hung up by the other side)."""
    now = deps.clock()
    async with deps.db.uow() as uow:
        ended = await uow.session.execute(
            update(Lesson)
            .where(
                and_(
                    Lesson.order_id == room.order_id,
                    Lesson.call_started_at.is_not(None),
                    Lesson.call_ended_at.is_(None),
                )
            )
            .values(call_ended_at=now)
        )
        await uow.commit()
    if _rowcount(ended) != 1:
        return False
    await _notice(deps, room=room, actor=actor, code=CALL_ENDED, at=now)
    return True


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def _notice(deps: Deps, *, room: CallRoom, actor: User, code: str, at: datetime) -> None:
    assert room.room_id is not None
    await chat.send_message(
        deps,
        actor=actor,
        room_id=room.room_id,
        body=code,
        client_id=f"{code}:{int(at.timestamp() * 1000)}",
    )
