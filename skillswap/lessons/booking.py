"""Booking a lesson: what placing an order of a lesson skill checks and writes besides the order.

The order is placed as any other (its price held in escrow, in the same transaction); a lesson
also writes its `Lesson` row and one `LessonSlotClaim` per quarter hour it takes. The claims'
primary key (teacher, quarter) is what decides between two buyers racing for one slot, or for
two overlapping ones: the second insert fails, the whole transaction rolls back (no order, no
hold), and that buyer is told `slot_taken`. The availability read before is only there to
refuse a time the teacher does not offer; it never decides a race.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError

from skillswap.errors import Conflict, ValidationFailed
from skillswap.i18n import Message, lazy
from skillswap.lessons.slots import MAX_AHEAD, Schedule, as_utc, lesson_starts, quarters
from skillswap.models import Lesson, LessonAvailability, LessonSlotClaim
from skillswap.models.lessons import QUARTER

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from skillswap.settings import Settings

_lessons: Table = Lesson.__table__  # type: ignore[assignment]
_claims: Table = LessonSlotClaim.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Booking:
    """The slot a lesson order books: its UTC start and length."""

    starts_at: datetime
    minutes: int

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.minutes)


def booking_for(lesson_minutes: int | None, slot_start: datetime | None) -> Booking | None:
    """The booking an order of a skill asks for (None: not a lesson), or the 400: a lesson
    needs `slot_start`, anything else refuses one."""
    if lesson_minutes is not None and slot_start is None:
        raise ValidationFailed(
            lazy("This skill is a lesson: choose a time (slot_start) from its free slots."),
            code="slot_required",
            errors={"slot_start": [lazy("This field is required.")]},
        )
    if lesson_minutes is None and slot_start is not None:
        raise ValidationFailed(
            lazy("This skill is not a lesson: it takes no slot_start."),
            code="slot_not_a_lesson",
            errors={"slot_start": [lazy("Only a lesson skill takes a time.")]},
        )
    if lesson_minutes is None or slot_start is None:
        return None
    return Booking(as_utc(slot_start, "slot_start"), lesson_minutes)


def _unavailable(detail: Message) -> Conflict:
    return Conflict(detail, code="slot_unavailable")


async def check_slot_offered(
    session: AsyncSession,
    booking: Booking,
    *,
    seller_id: int,
    now: datetime,
    settings: Settings,
) -> None:
    """Refuse (409 `slot_unavailable`) a start off the quarter hours, sooner than the notice
    period, or outside the teacher's hours for the whole lesson."""
    begins = booking.starts_at
    if begins.minute % 15 or begins.second or begins.microsecond:
        raise _unavailable(lazy("Lessons start on the quarter hour (:00, :15, :30 or :45)."))
    if begins < now + timedelta(seconds=settings.lesson_notice_seconds):
        raise _unavailable(lazy("This time is too soon: book with more notice."))
    if begins > now + MAX_AHEAD:
        raise _unavailable(lazy("This time is too far ahead to book."))
    availability = await session.scalar(
        select(LessonAvailability).where(LessonAvailability.user_id == seller_id)
    )
    schedule = Schedule.of(availability) if availability is not None else None
    offered = schedule is not None and begins in lesson_starts(
        schedule, booking.minutes, start=begins, end=begins + QUARTER
    )
    if not offered:
        raise _unavailable(lazy("The teacher does not offer this time."))


def pending_deadline(deadline_at: datetime | None, booking: Booking | None) -> datetime | None:
    """When a new order runs out of time unaccepted: a booking no later than its lesson starts."""
    if booking is None:
        return deadline_at
    if deadline_at is None:
        return booking.starts_at
    return min(deadline_at, booking.starts_at)


def slot_taken() -> Conflict:
    return Conflict(
        lazy("Someone has just booked this time (or part of it): choose another slot."),
        code="slot_taken",
    )


async def claim_slot(
    session: AsyncSession,
    booking: Booking,
    *,
    order_id: int,
    seller_id: int,
    buyer_id: int,
    now: datetime,
) -> Lesson:
    """Write the lesson of `order_id` and claim its quarters; a quarter already claimed is
    `slot_taken` (the caller's transaction is then only fit to roll back)."""
    values = {
        "order_id": order_id,
        "seller_id": seller_id,
        "buyer_id": buyer_id,
        "minutes": booking.minutes,
        "starts_at": booking.starts_at,
        "ends_at": booking.ends_at,
        "proposed_starts_at": None,
        "proposed_by": None,
        "call_started_at": None,
        "call_ended_at": None,
        "created_at": now,
        "timed_at": now,
    }
    conn = await session.connection()
    await conn.execute(insert(_lessons), values)
    claims = [
        {"seller_id": seller_id, "quarter_starts_at": quarter, "order_id": order_id}
        for quarter in quarters(booking.starts_at, booking.minutes)
    ]
    try:
        await conn.execute(insert(_claims).values(claims))
    except IntegrityError:
        raise slot_taken() from None
    return Lesson(**values)
