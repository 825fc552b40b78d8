"""Demo data for trying the service and for benchmarks (`skillswap seed-demo`)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy import insert, select

from skillswap.models import User
from skillswap.points import services as points
from skillswap.skills import seed as skills_seed

if TYPE_CHECKING:
    from skillswap.db import UnitOfWork
    from skillswap.deps import Deps

# `seed(deps, uow, user_ids, skills)` adds demo records and returns their counts for the report.
Seed = Callable[["Deps", "UnitOfWork", list[int], int], Awaitable[dict[str, int]]]
# What adds demo records, in order: categories and skills, then wallets' bonuses and packages.
SEEDS: tuple[Seed, ...] = (skills_seed.seed, points.seed)
DEMO_PASSWORD = "demo-password-123"  # README.md names it: keep the two the same


class SeedReport(dict[str, int]):
    """How many records of each kind were made; `sign_in` is one demo user's email."""

    sign_in: str = ""


async def seed_demo(deps: Deps, *, skills: int, users: int | None = None) -> SeedReport:
    """Insert demo users (password `demo-password-123`); later capabilities add their records."""
    user_count = users or max(10, skills // 20)
    password_hash = await deps.hasher.hash(DEMO_PASSWORD)
    batch = secrets.token_hex(3)
    async with deps.db.uow() as uow:
        rows = [
            {
                "email": f"demo-{batch}-{i}@example.com",
                "username": f"demo_{batch}_{i}",
                "username_key": f"demo_{batch}_{i}",
                "password_hash": password_hash,
                "display_name": f"Demo {i}",
                "email_verified": True,
                "locale": "ar" if i % 3 == 0 else "en",
                "bio": "",
                "avatar_url": "",
                "phone": "",
                "is_admin": False,
                "is_active": True,
                "rating_sum": 0,
                "rating_count": 0,
                "created_at": deps.clock(),
                "updated_at": deps.clock(),
            }
            for i in range(user_count)
        ]
        await uow.session.execute(insert(User), rows)
        user_ids = list(
            (
                await uow.session.scalars(
                    select(User.id).where(User.username_key.like(f"demo_{batch}_%"))
                )
            ).all()
        )
        report = SeedReport(users=len(user_ids))
        report.sign_in = f"demo-{batch}-0@example.com"
        for seed in SEEDS:
            report.update(await seed(deps, uow, user_ids, skills))
        await uow.commit()
    return report
