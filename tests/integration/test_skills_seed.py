"""`skillswap seed-demo` makes 20 bilingual categories and searchable bilingual skills."""

from __future__ import annotations

from sqlalchemy import func, select

from skillswap.accounts.demo import seed_demo
from skillswap.models import Category, Skill


async def test_seed_demo_makes_categories_and_searchable_skills(own_app):
    # A database of its own: the categories counted are the migration's and the seed's alone.
    api, deps = own_app.api, own_app.deps
    report = await seed_demo(deps, skills=60, users=6)
    assert report["categories"] == 20 and report["skills"] == 60
    async with deps.db.read() as session:
        slugs = ("programming", "web-development", "arabic", "calligraphy")
        found = dict(
            (
                await session.execute(
                    select(Category.slug, Category.parent_id).where(Category.slug.in_(slugs[:3]))
                )
            ).all()
        )
        assert found["programming"] is None and found["web-development"] is not None
        top_level = await session.scalar(
            select(func.count()).select_from(Category).where(Category.parent_id.is_(None))
        )
        assert top_level == 8  # the defaults of migration 0007: the seed files its own under them
        skill = await session.scalar(
            select(Skill)
            .where(Skill.title_en != "", Skill.title_ar != "")
            .order_by(Skill.id.desc())
        )
    assert skill is not None
    english = skill.title_en.split()[0]
    arabic = skill.title_ar.split()[-1]
    for word in (english, arabic):
        response = await api.get("/api/skills/", params={"search": word, "owner": skill.owner_id})
        assert skill.id in [s["id"] for s in response.json()["results"]], word
    # Seeding again reuses the categories instead of failing on their slugs.
    again = await seed_demo(deps, skills=1, users=1)
    assert again["skills"] == 1
