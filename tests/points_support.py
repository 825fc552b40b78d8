"""Factories shared by the points, orders and reviews tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from skillswap import ledger
from skillswap.deps import Deps
from skillswap.models import Category, Skill
from tests.conftest import unique_name


async def make_skill(
    deps: Deps, *, owner_id: int, price: int = 10, status: str = "active", title_ar: str = ""
) -> int:
    """A skill listing owned by `owner_id` (rows only: orders read nothing else of a skill)."""
    now = deps.clock()
    async with deps.db.uow() as uow:
        slug = "orders-tests"
        category = await uow.session.scalar(select(Category).where(Category.slug == slug))
        if category is None:
            category = Category(
                slug=slug, name_en="Orders tests", name_ar="اختبارات الطلبات", created_at=now
            )
            uow.session.add(category)
            await uow.session.flush()
        skill = Skill(
            owner_id=owner_id,
            category_id=category.id,
            title_en=f"Lesson {unique_name('s')}",
            title_ar=title_ar,
            description_en="A lesson.",
            price_points=price,
            level="beginner",
            languages=["en"],
            tags=[],
            delivery_days=3,
            status=status,
            created_at=now,
            updated_at=now,
        )
        uow.session.add(skill)
        await uow.session.flush()
        await uow.commit()
    return skill.id


async def balance(deps: Deps, user_id: int) -> tuple[int, int]:
    """(balance, held) of the user's wallet."""
    async with deps.db.read() as session:
        wallet = await ledger.wallet_balance(session, user_id)
    return wallet.balance, wallet.held


async def skill_row(deps: Deps, skill_id: int) -> Skill:
    async with deps.db.read() as session:
        skill = await session.get(Skill, skill_id)
    assert skill is not None
    return skill


def bearer(user: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.access}"}
