"""Chat: rooms (one per order, or direct between two users who share an order), members, messages.

Ordering invariant: a room's messages get a dense per-room `seq` (1, 2, 3, ...) assigned while
the room's row is locked (`SELECT ... FOR UPDATE`; SQLite has one writer anyway), and the global
`id` is drawn inside that same locked transaction. Two transactions writing to one room are
therefore serialised, so within a room `id` order, `seq` order and commit order are the same.
Clients see the `id`; the dense `seq` lets a node notice a gap in what it was delivered
(seq jumps by more than one) and fill it from the database.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from skillswap.models.base import Base, BigIntPK, UTCDateTime, sql_values, utcnow


class RoomKind(StrEnum):
    ORDER = "order"  # the buyer and seller of one order
    DIRECT = "direct"  # two users who share an order


ROOM_KINDS: tuple[RoomKind, ...] = tuple(RoomKind)


class ChatRoom(Base):
    """A conversation; its members are fixed when it is created."""

    __tablename__ = "chat_rooms"
    __table_args__ = (
        CheckConstraint(f"kind IN ({sql_values(RoomKind)})", name="kind"),
        Index("ix_chat_rooms_last_activity_at", "last_activity_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    # The order this room belongs to (kind "order"); one room per order.
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), unique=True)
    # "<smaller user id>:<larger user id>" for direct rooms, so a pair has at most one.
    direct_key: Mapped[str | None] = mapped_column(String(48), unique=True)
    # The seq of the newest message; raised only while the room's row is locked.
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChatMember(Base):
    """A user's place in a room and how far they have read."""

    __tablename__ = "chat_members"

    room_id: Mapped[int] = mapped_column(
        ForeignKey("chat_rooms.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    # The newest message this member has read (0: none). Sending a message reads up to it.
    last_read_id: Mapped[int] = mapped_column(BigInteger, default=0)
    # The same position as a seq, so the unread count is `room.last_seq - last_read_seq`.
    last_read_seq: Mapped[int] = mapped_column(Integer, default=0)
    # The newest seq an unread-chat digest mail has covered, so no message is mailed twice
    # (skillswap.chat.digest), and when that mail was decided (at most one an hour). A server
    # default, not a Python one: the compiled insert of every new order's members stays as is.
    digested_seq: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    digested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChatMessage(Base):
    """One message; never edited. `client_id` makes a retried send store one message."""

    __tablename__ = "chat_messages"
    __table_args__ = (
        UniqueConstraint("room_id", "seq"),
        UniqueConstraint("room_id", "sender_id", "client_id"),
        # Messages and their senders per period (the statistics).
        Index("ix_chat_messages_created_sender", "created_at", "sender_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("chat_rooms.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    sender_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(Text)
    client_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
