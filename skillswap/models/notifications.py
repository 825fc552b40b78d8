"""Notifications: what happened to a user, stored so that none is lost and read at leisure.

The text is stored as its English source (`msgid`, `msgid_plural`) with its parameters, and
rendered in the reader's locale when it is read or delivered, so one record serves English and
Arabic readers alike.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from skillswap.models.base import Base, BigIntPK, UTCDateTime, utcnow

JSONDocument = JSONB().with_variant(JSON(), "sqlite")


class NotificationKind(StrEnum):
    """What a notification is about (clients pick an icon or a screen by it)."""

    ORDER_PLACED = "order_placed"
    ORDER_ACCEPTED = "order_accepted"
    ORDER_REJECTED = "order_rejected"
    ORDER_DELIVERED = "order_delivered"
    ORDER_COMPLETED = "order_completed"
    ORDER_CANCELLED = "order_cancelled"
    ORDER_CHANGES_REQUESTED = "order_changes_requested"
    ORDER_DISPUTED = "order_disputed"
    ORDER_RESOLVED = "order_resolved"
    ORDER_EXPIRED = "order_expired"
    ORDER_UPDATED = "order_updated"  # a transition with no kind of its own
    CHAT_MESSAGE = "chat_message"
    REVIEW_RECEIVED = "review_received"
    # Administrators' actions the person must know of.
    SKILL_HIDDEN = "skill_hidden"
    SKILL_RESTORED = "skill_restored"
    ORDER_PAUSED = "order_paused"
    ORDER_RESUMED = "order_resumed"
    POINTS_ADJUSTED = "points_adjusted"
    LESSON_REMINDER = "lesson_reminder"  # a booked lesson starts soon (LESSON_REMINDERS)
    # Security mails: never stored as notifications, and never turned off (see preferences).
    EMAIL_VERIFICATION = "email_verification"
    PASSWORD_RESET = "password_reset"


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user_id_id", "user_id", "id"),
        Index("ix_notifications_user_id_group_key", "user_id", "group_key"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))  # a NotificationKind
    msgid: Mapped[str] = mapped_column(Text)
    msgid_plural: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    # Unread notifications with one group key collapse into the newest (e.g. one per chat room).
    group_key: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
