"""Lessons: a skill taught at a booked time, the teacher's availability, and what the clock sends.

A lesson is an order of a skill with `lesson_minutes`; its `Lesson` row says when. The time it
takes is claimed in quarter hours (`LessonSlotClaim`, one row per teacher and quarter): the
primary key refuses a second claim of any quarter, so two buyers racing for one slot, or for
two overlapping ones, cannot both book it, whatever each read before writing. Claims are
deleted when the order ends without the lesson (rejected, cancelled, expired) or is moved.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from skillswap.models.base import Base, UTCDateTime, utcnow

# Lessons last whole quarter hours, start on a quarter hour, and claim their quarters.
QUARTER = timedelta(minutes=15)
LESSON_MINUTES_MIN = 15
LESSON_MINUTES_MAX = 240


class LessonAvailability(Base):
    """A teacher's weekly hours in their own time zone, and the dates that differ.

    `weekly`: `[{"weekday": 0..6 (Monday 0), "start": "09:00", "end": "12:00"}]` in `timezone`
    (an IANA name); `exceptions`: `[{"date": "2027-01-07", "available": false}]`, or with
    `available: true` and `start`/`end` for hours that replace the week's on that date.
    """

    __tablename__ = "lesson_availability"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    timezone: Mapped[str] = mapped_column(String(64))
    weekly: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    exceptions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Lesson(Base):
    """When a lesson order takes place: `starts_at` to `ends_at` (UTC), `minutes` long.

    `proposed_starts_at` is a new time one party proposed (`propose_time`) and the other has not
    yet accepted (`accept_time`); `proposed_by` who. `call_started_at` / `call_ended_at` are set
    by the call in the order's room.
    """

    __tablename__ = "lessons"
    __table_args__ = (
        Index("ix_lessons_seller_starts", "seller_id", "starts_at"),
        Index("ix_lessons_buyer_starts", "buyer_id", "starts_at"),
        Index("ix_lessons_starts", "starts_at"),  # the reminders' sweep
    )

    order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    seller_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    minutes: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    proposed_starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    proposed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    call_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    call_ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the current time was set: booked, or moved by an accepted proposal. A reminder whose
    # moment was already past then is not sent (skillswap.lessons.reminders).
    timed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LessonSlotClaim(Base):
    """One quarter hour of a teacher's time, taken by the lesson of `order_id`."""

    __tablename__ = "lesson_slot_claims"

    seller_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    quarter_starts_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)


class LessonReminder(Base):
    """A reminder sent: to `user_id`, `offset_seconds` before the lesson of `order_id`, once."""

    __tablename__ = "lesson_reminders"

    order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    offset_seconds: Mapped[int] = mapped_column(Integer, primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CalendarFeed(Base):
    """A person's private iCalendar feed (revocable): `key_hash` is a random value, the SHA-256 of
    random bytes; the feed's key is derived from it under SECRET_KEY (skillswap.lessons.calendar),
    so what is stored is no usable key."""

    __tablename__ = "calendar_feeds"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
