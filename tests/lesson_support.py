"""Lessons written directly, for tests of what happens around a booked lesson (reminders, the
calendar feed, the call, cancellation) that need one at a chosen time without going through
booking. Booking itself is tested through the API (tests/e2e/test_lessons_booking.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from skillswap.models import Lesson, LessonSlotClaim, Order, Skill
from skillswap.models.lessons import QUARTER
from tests.factories import insert_skill

if TYPE_CHECKING:
    from skillswap.deps import Deps
    from tests.conftest import Api
    from tests.factories import TestUser


async def insert_lesson(
    deps: Deps, *, order_id: int, starts_at: datetime, minutes: int = 60
) -> None:
    """Make the order `order_id` a lesson from `starts_at` for `minutes`, its quarters claimed."""
    async with deps.db.uow() as uow:
        order = await uow.session.get(Order, order_id)
        assert order is not None
        await uow.session.execute(
            update(Skill).where(Skill.id == order.skill_id).values(lesson_minutes=minutes)
        )
        uow.session.add(
            Lesson(
                order_id=order_id,
                seller_id=order.seller_id,
                buyer_id=order.buyer_id,
                minutes=minutes,
                starts_at=starts_at,
                ends_at=starts_at + timedelta(minutes=minutes),
                created_at=deps.clock(),
                timed_at=deps.clock(),
            )
        )
        for n in range(minutes // 15):
            uow.session.add(
                LessonSlotClaim(
                    seller_id=order.seller_id,
                    quarter_starts_at=starts_at + n * QUARTER,
                    order_id=order_id,
                )
            )
        await uow.commit()


async def lesson_order(
    api: Api,
    deps: Deps,
    buyer: TestUser,
    seller: TestUser,
    *,
    starts_at: datetime,
    minutes: int = 60,
    price: int = 10,
) -> dict[str, Any]:
    """An order of a lesson skill of `seller` placed by `buyer` through the API, made a lesson
    at `starts_at` directly; the order as the API answered its placement."""
    skill_id = await insert_skill(deps, owner_id=seller.id, price=price)
    response = await api.post(
        "/api/points/orders/", token=buyer.access, json={"skill_id": skill_id}
    )
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    await insert_lesson(deps, order_id=order["id"], starts_at=starts_at, minutes=minutes)
    return order
