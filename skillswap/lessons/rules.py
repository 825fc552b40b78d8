"""What a lesson changes in the order state machine: when its actions open, its deadlines, and
when its time is given back.

A lesson order goes through the same statuses as any order (skillswap.orders.rules), with
these differences, all decided by the lesson's times and the clock:

| action       | who           | from              | when                                         |
|--------------|---------------|-------------------|----------------------------------------------|
| accept       | seller        | pending           | before the start                             |
| cancel       | buyer         | pending, accepted | before the start (the cancellation rule)     |
| cancel       | seller        | accepted          | any time: the buyer is refunded in full      |
| deliver      | seller        | accepted          | once the lesson has ended (it was taught)    |
| no_show      | seller        | accepted          | from the start + 10 minutes to the deadline  |
| propose_time | buyer, seller | pending, accepted | before the start                             |
| accept_time  | the other one | pending, accepted | before the start, a proposal of the other's  |

Deadlines: a pending lesson runs out at its start at the latest (unconfirmed, it expires); an
accepted one at its end plus ORDER_DELIVERY_TIMEOUT_SECONDS (never marked taught nor a no-show:
it expires, refunded); a delivered one completes as any delivered order. The quarters a lesson
claims are given back when its order ends without it: rejected, cancelled, expired, or resolved
by a refund.

This module is plain: it reads times and ids, and touches no session and no HTTP layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from skillswap.errors import Conflict
from skillswap.i18n import Message, lazy
from skillswap.models.lessons import Lesson
from skillswap.models.orders import OrderAction, OrderStatus, Resolution
from skillswap.settings import Settings

# The seller may report a no-show once the buyer is this late.
NO_SHOW_AFTER = timedelta(minutes=10)


class LessonTimes(Protocol):
    """When a lesson takes place (a `Lesson` row, or the times a booking is about to write)."""

    @property
    def starts_at(self) -> datetime: ...

    @property
    def ends_at(self) -> datetime: ...


@dataclass(frozen=True)
class LessonMoment:
    """A lesson order as one of its people sees it at `now`: what its actions depend on."""

    now: datetime
    starts_at: datetime
    ends_at: datetime
    deadline_at: datetime | None
    proposed_starts_at: datetime | None
    proposed_by: int | None
    viewer_id: int


def moment_of(
    lesson: Lesson | None, *, deadline_at: datetime | None, viewer_id: int, now: datetime
) -> LessonMoment | None:
    """A lesson order's `lesson` as `viewer_id` sees it at `now` (None: not a lesson)."""
    if lesson is None:
        return None
    return LessonMoment(
        now=now,
        starts_at=lesson.starts_at,
        ends_at=lesson.ends_at,
        deadline_at=deadline_at,
        proposed_starts_at=lesson.proposed_starts_at,
        proposed_by=lesson.proposed_by,
        viewer_id=viewer_id,
    )


@dataclass(frozen=True)
class NotNow:
    """Why a lesson action is closed at this moment: a stable code and what the person reads."""

    code: str
    message: Message

    def conflict(self, *, order_status: str, action: str, allowed: list[str]) -> Conflict:
        return Conflict(
            self.message,
            code=self.code,
            extra={"order_status": order_status, "action": action, "allowed_actions": allowed},
        )


_STARTED = NotNow("lesson_started", lazy("The lesson has started: this is no longer possible."))
_NOT_OVER = NotNow(
    "lesson_not_over", lazy("The lesson has not ended yet: mark it taught after its end.")
)
_TOO_EARLY = NotNow(
    "no_show_too_early",
    lazy("A no-show can be reported from {minutes} minutes after the start.", minutes=10),
)
_DEADLINE_PASSED = NotNow(
    "lesson_deadline_passed", lazy("The time to report on this lesson has run out.")
)
_NO_PROPOSAL = NotNow("no_proposal", lazy("No new time has been proposed for this lesson."))
_OWN_PROPOSAL = NotNow(
    "own_proposal", lazy("You proposed this time: the other side accepts it, not you.")
)


def not_now(action: str, role: str, moment: LessonMoment) -> NotNow | None:
    """Why `role` ("buyer" or "seller") may not take `action` on the lesson now (None: may)."""
    started = moment.now >= moment.starts_at
    if action in (OrderAction.ACCEPT, OrderAction.PROPOSE_TIME):
        return _STARTED if started else None
    if action == OrderAction.CANCEL:
        # The seller's cancellation refunds the buyer in full, so it stays open.
        return _STARTED if started and role == "buyer" else None
    if action == OrderAction.DELIVER:
        return None if moment.now >= moment.ends_at else _NOT_OVER
    if action == OrderAction.NO_SHOW:
        if moment.now < moment.starts_at + NO_SHOW_AFTER:
            return _TOO_EARLY
        if moment.deadline_at is not None and moment.now >= moment.deadline_at:
            return _DEADLINE_PASSED
        return None
    if action == OrderAction.ACCEPT_TIME:
        if moment.proposed_by is None or moment.proposed_starts_at is None:
            return _NO_PROPOSAL
        if moment.proposed_by == moment.viewer_id:
            return _OWN_PROPOSAL
        return _STARTED if started else None
    return None


def lesson_deadline(
    status: str, now: datetime, settings: Settings, lesson: LessonTimes
) -> datetime | None:
    """When a lesson order entering `status` at `now` runs out of time (None: it waits)."""
    if status == OrderStatus.PENDING:
        # Unconfirmed at its start, it is too late to confirm it.
        return min(now + timedelta(seconds=settings.order_accept_timeout_seconds), lesson.starts_at)
    if status == OrderStatus.ACCEPTED:
        # Marked taught (or a no-show) within the delivery timeout after the end, or refunded.
        after = max(now, lesson.ends_at)
        return after + timedelta(seconds=settings.order_delivery_timeout_seconds)
    if status == OrderStatus.DELIVERED:
        return now + timedelta(seconds=settings.order_auto_complete_seconds)
    return None


def releases_slot(to_status: str, resolution: str | None) -> bool:
    """Whether an order entering `to_status` ends without its lesson, so its time is free again."""
    if to_status in (OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED):
        return True
    return to_status == OrderStatus.RESOLVED and resolution == Resolution.REFUND
