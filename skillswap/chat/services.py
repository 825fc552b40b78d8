"""Chat use cases: a room per order, direct rooms between users who share an order, messages,
read receipts, and what the realtime actors read back from the database.

Only a room's members read and write it; an administrator may read any room (disputes) but
never writes. Messages are persisted before anyone hears of them: `send_message` hands the
message to the node's MessageWriter (group commit, see chat_writer.py) and returns once it is
committed; live delivery follows the commit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from skillswap.api.encoding import iso
from skillswap.api.input_rules import UNSTORABLE_TEXT, has_unstorable_text
from skillswap.db import CompiledStatement, Database, UnitOfWork
from skillswap.errors import NotFound, PermissionDenied, ValidationFailed
from skillswap.i18n import lazy
from skillswap.models import ChatMember, ChatMessage, ChatRoom, Order, User
from skillswap.models.chat import RoomKind

if TYPE_CHECKING:
    from skillswap.chat.writer import SentMessage
    from skillswap.deps import Deps

MessageRecord = dict[str, Any]

MAX_PAGE = 100
DEFAULT_PAGE = 50


@dataclass(frozen=True)
class RoomState:
    """What a room actor needs to start: who may follow the room and where it stands."""

    members: frozenset[int]
    last_seq: int
    last_id: int


@dataclass(frozen=True)
class RoomSummary:
    room: ChatRoom
    members: list[User]
    last_message: MessageRecord | None
    unread_count: int
    last_read_id: int


@dataclass(frozen=True)
class RoomDetail:
    summary: RoomSummary
    messages: list[MessageRecord]
    has_more: bool


def message_record(message: ChatMessage) -> MessageRecord:
    """A stored message as plain JSON data (what the actors and the streams carry)."""
    return {
        "id": message.id,
        "room": message.room_id,
        "seq": message.seq,
        "sender": message.sender_id,
        "body": message.body,
        "created_at": iso(message.created_at),
        "client_id": message.client_id,
    }


def message_public(record: MessageRecord) -> dict[str, Any]:
    """A message as clients see it."""
    return {
        "id": record["id"],
        "sender": record["sender"],
        "body": record["body"],
        "created_at": record["created_at"],
        "client_id": record["client_id"],
    }


def room_not_found() -> NotFound:
    # A room the user may not read answers exactly like a room that does not exist.
    return NotFound(lazy("No such chat room."), code="room_not_found")


def read_only() -> PermissionDenied:
    return PermissionDenied(
        lazy("Administrators can read this room but not write in it."), code="read_only"
    )


# -- rooms ---------------------------------------------------------------------------------------


# Constant statements with bound values: compiled once, not re-keyed on every order.
_rooms: Table = ChatRoom.__table__  # type: ignore[assignment]
_members: Table = ChatMember.__table__  # type: ignore[assignment]
_INSERT_ROOM = CompiledStatement(insert(_rooms).returning(_rooms.c.id))
_INSERT_MEMBER = CompiledStatement(insert(_members))


async def open_order_room(
    deps: Deps, uow: UnitOfWork, *, order_id: int, buyer_id: int, seller_id: int
) -> int:
    """Create the order's room with buyer and seller as members; its id.

    Runs inside the order's own transaction (two statements, no ORM: it is on the path of
    every order placed). One room per order: the unique `order_id` refuses a second.
    """
    now = deps.clock()
    conn = await uow.session.connection()
    room_id: int = await _INSERT_ROOM.scalar(
        conn,
        {
            "kind": RoomKind.ORDER,
            "order_id": order_id,
            "last_seq": 0,
            "last_activity_at": now,
            "created_at": now,
        },
    )
    await _INSERT_MEMBER.many(
        conn,
        [
            {
                "room_id": room_id,
                "user_id": user_id,
                "last_read_id": 0,
                "last_read_seq": 0,
                "joined_at": now,
            }
            for user_id in (buyer_id, seller_id)
        ],
    )
    return room_id


async def open_direct_room(deps: Deps, *, actor: User, user_id: int) -> tuple[RoomSummary, bool]:
    """The direct room between the actor and `user_id` (created if new; they must share an order)."""
    if user_id == actor.id:
        raise ValidationFailed(errors={"user_id": [lazy("You cannot open a room with yourself.")]})
    low, high = sorted((actor.id, user_id))
    key = f"{low}:{high}"
    async with deps.db.uow() as uow:
        session = uow.session
        other = await session.get(User, user_id)
        if other is None or not other.is_active:
            raise NotFound(lazy("No such user."), code="user_not_found")
        shared_order = await session.scalar(
            select(Order.id)
            .where(
                or_(
                    and_(Order.buyer_id == actor.id, Order.seller_id == user_id),
                    and_(Order.buyer_id == user_id, Order.seller_id == actor.id),
                )
            )
            .limit(1)
        )
        if shared_order is None:
            raise PermissionDenied(
                lazy("You can message someone directly only when you share an order."),
                code="no_shared_order",
            )
        room_id = await session.scalar(select(ChatRoom.id).where(ChatRoom.direct_key == key))
        created = room_id is None
        if room_id is None:
            now = deps.clock()
            room = ChatRoom(
                kind=RoomKind.DIRECT, direct_key=key, last_activity_at=now, created_at=now
            )
            session.add(room)
            try:
                await session.flush()
                session.add_all(
                    [ChatMember(room_id=room.id, user_id=u, joined_at=now) for u in (low, high)]
                )
                await session.flush()
                await uow.commit()
                room_id = room.id
            except IntegrityError:
                created = False  # the pair opened it concurrently: use theirs
    if room_id is None:
        async with deps.db.read() as session:
            room_id = await session.scalar(select(ChatRoom.id).where(ChatRoom.direct_key == key))
        if room_id is None:
            raise room_not_found()
    summaries = await _summaries(deps, actor=actor, room_ids=[room_id])
    return summaries[0], created


async def list_rooms(
    deps: Deps, *, actor: User, offset: int, limit: int, order_id: int | None = None
) -> tuple[int, list[RoomSummary]]:
    """The actor's rooms, newest activity first, with last message and unread count; with
    `order_id`, only that order's room (none when the actor is not one of its members)."""
    mine = [ChatMember.user_id == actor.id]
    if order_id is not None:
        mine.append(ChatRoom.order_id == order_id)
    async with deps.db.read() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(ChatMember)
            .join(ChatRoom, ChatRoom.id == ChatMember.room_id)
            .where(*mine)
        )
        room_ids = list(
            await session.scalars(
                select(ChatRoom.id)
                .join(ChatMember, ChatMember.room_id == ChatRoom.id)
                .where(*mine)
                .order_by(ChatRoom.last_activity_at.desc(), ChatRoom.id.desc())
                .offset(offset)
                .limit(limit)
            )
        )
    return int(count or 0), await _summaries(deps, actor=actor, room_ids=room_ids)


async def _summaries(deps: Deps, *, actor: User, room_ids: list[int]) -> list[RoomSummary]:
    if not room_ids:
        return []
    async with deps.db.read() as session:
        rooms = {
            r.id: r
            for r in await session.scalars(select(ChatRoom).where(ChatRoom.id.in_(room_ids)))
        }
        last_messages = {
            m.room_id: message_record(m)
            for m in await session.scalars(
                select(ChatMessage)
                .join(
                    ChatRoom,
                    and_(ChatRoom.id == ChatMessage.room_id, ChatRoom.last_seq == ChatMessage.seq),
                )
                .where(ChatRoom.id.in_(room_ids))
            )
        }
        members: dict[int, list[User]] = {room_id: [] for room_id in room_ids}
        reads: dict[int, tuple[int, int]] = {}
        for member, user in await session.execute(
            select(ChatMember, User)
            .join(User, User.id == ChatMember.user_id)
            .where(ChatMember.room_id.in_(room_ids))
            .order_by(ChatMember.room_id, User.id)
        ):
            members[member.room_id].append(user)
            if member.user_id == actor.id:
                reads[member.room_id] = (member.last_read_seq, member.last_read_id)
    summaries = []
    for room_id in room_ids:
        room = rooms[room_id]
        read_seq, read_id = reads.get(room_id, (room.last_seq, 0))
        summaries.append(
            RoomSummary(
                room=room,
                members=members[room_id],
                last_message=last_messages.get(room_id),
                unread_count=max(0, room.last_seq - read_seq),
                last_read_id=read_id,
            )
        )
    return summaries


async def get_room(
    deps: Deps, *, actor: User, room_id: int, before: int | None = None, limit: int = DEFAULT_PAGE
) -> RoomDetail:
    """A room and its latest messages (or those before message `before`), oldest first."""
    async with deps.db.read() as session:
        room = await session.get(ChatRoom, room_id)
        membership = await session.get(ChatMember, (room_id, actor.id)) if room else None
        if room is None or (membership is None and not actor.is_admin):
            raise room_not_found()
        query = select(ChatMessage).where(ChatMessage.room_id == room_id)
        if before is not None:
            before_seq = await session.scalar(
                select(ChatMessage.seq).where(
                    ChatMessage.id == before, ChatMessage.room_id == room_id
                )
            )
            if before_seq is None:
                raise ValidationFailed(errors={"before": [lazy("Not a message of this room.")]})
            query = query.where(ChatMessage.seq < before_seq)
        rows = list(await session.scalars(query.order_by(ChatMessage.seq.desc()).limit(limit + 1)))
    has_more = len(rows) > limit
    messages = [message_record(m) for m in reversed(rows[:limit])]
    summary = (await _summaries(deps, actor=actor, room_ids=[room_id]))[0]
    return RoomDetail(summary=summary, messages=messages, has_more=has_more)


# -- messages ------------------------------------------------------------------------------------


def queue_message(
    deps: Deps, *, actor: User, room_id: int, body: str, client_id: str | None
) -> asyncio.Future[SentMessage]:
    """Validate a message and hand it to this node's writer; the future resolves once committed.

    Synchronous up to the hand-over, so messages one client sends are written in the order sent.
    """
    text = body.strip()
    limit = deps.settings.chat_message_max_chars
    # Refused here, before the message joins a batch it would fail (see chat_writer.py).
    unstorable = [
        name
        for name, value in (("body", text), ("client_id", client_id))
        if value is not None and has_unstorable_text(value)
    ]
    if unstorable:
        raise ValidationFailed(errors={name: [lazy(UNSTORABLE_TEXT)] for name in unstorable})
    if not text:
        raise ValidationFailed(errors={"body": [lazy("This field may not be blank.")]})
    if len(text) > limit:
        raise ValidationFailed(
            errors={"body": [lazy("Ensure this field has at most {max} characters.", max=limit)]}
        )
    if client_id is not None and not 1 <= len(client_id) <= 64:
        raise ValidationFailed(errors={"client_id": [lazy("Use 1 to 64 characters.")]})
    return deps.messages.submit(actor=actor, room_id=room_id, body=text, client_id=client_id)


async def send_message(
    deps: Deps, *, actor: User, room_id: int, body: str, client_id: str | None = None
) -> SentMessage:
    """Persist a message (once per client_id), then deliver it live to everyone connected."""
    return await queue_message(deps, actor=actor, room_id=room_id, body=body, client_id=client_id)


async def mark_read(deps: Deps, *, actor: User, room_id: int, message_id: int) -> dict[str, int]:
    """Move the actor's read position in a room forward to `message_id` (never backwards)."""
    async with deps.db.uow() as uow:
        session = uow.session
        room = await session.get(ChatRoom, room_id)
        member = await session.get(ChatMember, (room_id, actor.id)) if room else None
        if room is None or member is None:
            raise read_only() if room is not None and actor.is_admin else room_not_found()
        seq = await session.scalar(
            select(ChatMessage.seq).where(
                ChatMessage.id == message_id, ChatMessage.room_id == room_id
            )
        )
        if seq is None:
            raise NotFound(lazy("No such message in this room."), code="message_not_found")
        # Conditional, so concurrent receipts can only move the position forward.
        moved = await session.execute(
            update(ChatMember)
            .where(
                ChatMember.room_id == room_id,
                ChatMember.user_id == actor.id,
                ChatMember.last_read_seq < seq,
            )
            .values(last_read_seq=seq, last_read_id=message_id)
        )
        await session.refresh(member)
        result = {
            "room": room_id,
            "last_read_id": member.last_read_id,
            "unread_count": max(0, room.last_seq - member.last_read_seq),
        }
        if getattr(moved, "rowcount", 0):
            event = {"type": "read", "room": room_id, "user": actor.id, "message_id": message_id}

            async def announce() -> None:
                deps.publisher.publish_room_event(room_id, event)

            uow.after_commit(announce)
        await uow.commit()
    return result


# -- what the realtime actors read -----------------------------------------------------------------


async def load_room_state(db: Database, room_id: int) -> RoomState | None:
    """The room's members and newest message, or None when there is no such room."""
    async with db.read() as session:
        row = (
            await session.execute(
                select(ChatRoom.last_seq, ChatMessage.id)
                .outerjoin(
                    ChatMessage,
                    and_(ChatMessage.room_id == ChatRoom.id, ChatMessage.seq == ChatRoom.last_seq),
                )
                .where(ChatRoom.id == room_id)
            )
        ).first()
        if row is None:
            return None
        members = frozenset(
            await session.scalars(select(ChatMember.user_id).where(ChatMember.room_id == room_id))
        )
    return RoomState(members=members, last_seq=row[0], last_id=row[1] or 0)


async def messages_by_seq(
    db: Database, *, room_id: int, after_seq: int, upto_seq: int | None, limit: int = 1000
) -> list[MessageRecord]:
    """Messages with `after_seq < seq <= upto_seq` (no upper bound when None), in order."""
    query = select(ChatMessage).where(ChatMessage.room_id == room_id, ChatMessage.seq > after_seq)
    if upto_seq is not None:
        query = query.where(ChatMessage.seq <= upto_seq)
    async with db.read() as session:
        rows = await session.scalars(query.order_by(ChatMessage.seq).limit(limit))
        return [message_record(m) for m in rows]


async def missed_messages(
    db: Database, *, room_id: int, after_id: int, upto_seq: int, limit: int
) -> tuple[list[MessageRecord], bool]:
    """What a client that last saw `after_id` missed up to `upto_seq`: at most the newest
    `limit`, and whether older ones were left out (it then pages with `?before=`)."""
    async with db.read() as session:
        # ids and seqs rise together within a room, so the newest seq at or below after_id
        # is where the client stands (scanning down from the top stops right there).
        seen_seq = await session.scalar(
            select(ChatMessage.seq)
            .where(ChatMessage.room_id == room_id, ChatMessage.id <= after_id)
            .order_by(ChatMessage.seq.desc())
            .limit(1)
        )
        start = seen_seq or 0
        truncated = upto_seq - start > limit
        rows = await session.scalars(
            select(ChatMessage)
            .where(
                ChatMessage.room_id == room_id,
                ChatMessage.seq > max(start, upto_seq - limit),
                ChatMessage.seq <= upto_seq,
            )
            .order_by(ChatMessage.seq)
        )
        return [message_record(m) for m in rows], truncated
