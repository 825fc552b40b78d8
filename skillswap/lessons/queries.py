"""The signed-in user's lessons: upcoming or past, as the buyer (learner) or the seller (teacher).

A lesson is listed while its order is, or was, going to happen: orders that ended without the
lesson (rejected, cancelled, expired, or a dispute resolved by a refund, which gave the lesson's
time back) are left out. Upcoming lessons have not ended yet, soonest first; past ones have,
latest first. A page is one statement, its count another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sqlalchemy import ColumnElement, case, func, or_, select
from sqlalchemy.orm import aliased

from skillswap.models import Lesson, Order, Skill, User
from skillswap.models.orders import OrderStatus, Resolution

if TYPE_CHECKING:
    from skillswap.deps import Deps

When = Literal["upcoming", "past"]
LessonRole = Literal["buyer", "seller"]
_WITHOUT_THE_LESSON = (OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED)


@dataclass(frozen=True)
class LessonView:
    """One lesson as one of its two participants sees it."""

    lesson: Lesson
    status: str
    skill_id: int
    skill_title_en: str
    skill_title_ar: str
    role: LessonRole
    other: User


async def list_lessons(
    deps: Deps,
    *,
    actor: User,
    when: When,
    role: LessonRole | None,
    offset: int,
    limit: int,
) -> tuple[int, list[LessonView]]:
    """The actor's lessons that are `when`, as `role` (default: both)."""
    now = deps.clock()
    conditions: list[ColumnElement[bool]] = [
        Order.status.not_in(_WITHOUT_THE_LESSON),
        # Only a resolved order has a resolution: a refund ended it without the lesson.
        Order.resolution.is_distinct_from(Resolution.REFUND),
    ]
    if role == "buyer":
        conditions.append(Lesson.buyer_id == actor.id)
    elif role == "seller":
        conditions.append(Lesson.seller_id == actor.id)
    else:
        conditions.append(or_(Lesson.buyer_id == actor.id, Lesson.seller_id == actor.id))
    if when == "upcoming":
        conditions.append(Lesson.ends_at > now)
        ordering = (Lesson.starts_at.asc(), Lesson.order_id.asc())
    else:
        conditions.append(Lesson.ends_at <= now)
        ordering = (Lesson.starts_at.desc(), Lesson.order_id.desc())
    other = aliased(User)
    counted = (
        select(func.count())
        .select_from(Lesson)
        .join(Order, Order.id == Lesson.order_id)
        .where(*conditions)
    )
    page = (
        select(Lesson, Order.status, Skill.id, Skill.title_en, Skill.title_ar, other)
        .join(Order, Order.id == Lesson.order_id)
        .join(Skill, Skill.id == Order.skill_id)
        .join(
            # The other participant: the teacher for the learner, the learner for the teacher.
            other,
            other.id
            == case((Lesson.buyer_id == actor.id, Lesson.seller_id), else_=Lesson.buyer_id),
        )
        .where(*conditions)
        .order_by(*ordering)
        .offset(offset)
        .limit(limit)
    )
    async with deps.db.read() as session:
        count = await session.scalar(counted)
        rows = (await session.execute(page)).all()
    views = [
        LessonView(
            lesson=lesson,
            status=status,
            skill_id=skill_id,
            skill_title_en=title_en,
            skill_title_ar=title_ar,
            role="buyer" if lesson.buyer_id == actor.id else "seller",
            other=person,
        )
        for lesson, status, skill_id, title_en, title_ar, person in rows
    ]
    return int(count or 0), views
