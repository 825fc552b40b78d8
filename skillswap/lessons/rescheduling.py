"""Moving a lesson by agreement: one side proposes a new start (`propose_time`), the other
accepts it (`accept_time`).

A proposal is checked as a booking's start is (skillswap.lessons.booking): on a quarter hour, at
least LESSON_NOTICE_SECONDS ahead, within a year, and inside the teacher's hours for the whole
lesson (409 `slot_unavailable` otherwise); whether its quarters are free is decided only when it
is accepted. It is recorded on the lesson (`proposed_starts_at`, `proposed_by`); a new proposal,
by either side, replaces it. Accepting it
moves the lesson in the order's unit of work: the old quarters' claims are deleted and the new
ones inserted (the claims' primary key refuses a quarter taken meanwhile: 409 `slot_taken`, and
nothing changes), the times move, the proposal is cleared, and the reminders already sent are
forgotten so that the new time is reminded. The order's status does not change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from skillswap.errors import Conflict, ValidationFailed
from skillswap.i18n import lazy
from skillswap.lessons.booking import Booking, check_slot_offered, slot_taken
from skillswap.lessons.slots import as_utc, quarters
from skillswap.models import Lesson, LessonReminder, LessonSlotClaim

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from skillswap.settings import Settings


async def checked_proposal(
    session: AsyncSession,
    lesson: Lesson,
    slot_start: datetime | None,
    *,
    now: datetime,
    settings: Settings,
) -> datetime:
    """`slot_start` as UTC if the lesson may be moved there: 400 without one (or with the
    lesson's own time), 409 `slot_unavailable` where a booking could not be made either."""
    if slot_start is None:
        raise ValidationFailed(
            errors={"slot_start": [lazy("Give the proposed start of the lesson.")]}
        )
    start = as_utc(slot_start, "slot_start")
    if start == lesson.starts_at:
        raise ValidationFailed(errors={"slot_start": [lazy("This is already the lesson's time.")]})
    await check_slot_offered(
        session,
        Booking(start, lesson.minutes),
        seller_id=lesson.seller_id,
        now=now,
        settings=settings,
    )
    return start


async def check_still_offered(
    session: AsyncSession, lesson: Lesson, *, now: datetime, settings: Settings
) -> None:
    """409 `slot_unavailable` when the lesson's proposal could no longer be booked at `now`
    (too near or past, or outside the teacher's hours as they are now)."""
    assert lesson.proposed_starts_at is not None
    await check_slot_offered(
        session,
        Booking(lesson.proposed_starts_at, lesson.minutes),
        seller_id=lesson.seller_id,
        now=now,
        settings=settings,
    )


def time_note(start: datetime, note: str) -> str:
    """The history's note of a proposed or accepted time: the time (UTC), then the person's note."""
    stamp = start.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return f"{stamp}\n{note}" if note else stamp


async def record_proposal(
    session: AsyncSession, lesson: Lesson, start: datetime, *, by: int
) -> None:
    """Record `start` as the lesson's proposed time, proposed by `by` (replacing any other)."""
    await session.execute(
        update(Lesson)
        .where(Lesson.order_id == lesson.order_id)
        .values(proposed_starts_at=start, proposed_by=by)
    )
    await session.refresh(lesson)


async def move_to_proposal(session: AsyncSession, lesson: Lesson, *, now: datetime) -> datetime:
    """Move the lesson to the proposal it was read with; the new start.

    The caller has already moved the order (so it holds the order's row): the lesson is updated
    only if its proposal is still the one read (409 `proposal_changed` otherwise), and the claims
    swap fails as a whole if a new quarter is taken (409 `slot_taken`). Either refusal leaves the
    unit of work to be rolled back.
    """
    start, by = lesson.proposed_starts_at, lesson.proposed_by
    assert start is not None and by is not None
    length = timedelta(minutes=lesson.minutes)
    moved = await session.execute(
        update(Lesson)
        .where(
            Lesson.order_id == lesson.order_id,
            Lesson.proposed_starts_at == start,
            Lesson.proposed_by == by,
        )
        .values(
            starts_at=start,
            ends_at=start + length,
            proposed_starts_at=None,
            proposed_by=None,
            timed_at=now,
        )
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(
            lazy("The proposed time changed meanwhile: look at the lesson again."),
            code="proposal_changed",
        )
    await session.execute(
        delete(LessonSlotClaim).where(LessonSlotClaim.order_id == lesson.order_id)
    )
    try:
        await session.execute(
            insert(LessonSlotClaim),
            [
                {
                    "seller_id": lesson.seller_id,
                    "quarter_starts_at": quarter,
                    "order_id": lesson.order_id,
                }
                for quarter in quarters(start, lesson.minutes)
            ],
        )
    except IntegrityError:
        raise slot_taken() from None
    await session.execute(delete(LessonReminder).where(LessonReminder.order_id == lesson.order_id))
    await session.refresh(lesson)
    return start


async def release_claims(session: AsyncSession, order_id: int) -> None:
    """Give back the quarters the lesson of `order_id` claimed (its order ended without it)."""
    await session.execute(delete(LessonSlotClaim).where(LessonSlotClaim.order_id == order_id))


async def claimed_by(session: AsyncSession, order_id: int) -> list[datetime]:
    """The quarters the lesson of `order_id` claims, in order."""
    found = await session.scalars(
        select(LessonSlotClaim.quarter_starts_at)
        .where(LessonSlotClaim.order_id == order_id)
        .order_by(LessonSlotClaim.quarter_starts_at)
    )
    return list(found)
