"""At 100,000 skills every listing page is read through its index, never a scan of `skills`.

The table is filled in SQL (INSERT ... SELECT over generate_series, a few seconds), analysed,
and each page's one statement is explained twice: with its values (the plan of a statement's
first executions) and as the generic plan a statement prepared once on a pooled connection
settles on. Neither may hold a sequential scan of skills, and a browsing page may touch only
what its bounded count needs, whatever the size of the table.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import text

from skillswap.skills.browse import BrowseQuery, explain_page

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SKILLS = 100_000
TITLES = ("guitar lessons for beginners", "python tutoring", "piano basics", "calligraphy art")


async def _fill(deps: Any, owner: int, banned: int) -> tuple[int, list[int]]:
    """A parent category with three children and SKILLS skills among them (one in ten paused,
    one in fifty the banned owner's); returns the parent and the children."""
    async with deps.db.uow() as uow:
        session = uow.session
        parent = await session.scalar(
            text(
                "INSERT INTO skill_categories (slug, name_en, name_ar, icon, position, is_active,"
                " created_at, updated_at) VALUES ('plan-parent', 'Parent', 'أصل', '', 0, true,"
                " now(), now()) RETURNING id"
            )
        )
        children = list(
            await session.scalars(
                text(
                    "INSERT INTO skill_categories (parent_id, slug, name_en, name_ar, icon,"
                    " position, is_active, created_at, updated_at)"
                    " SELECT :parent, 'plan-child-' || n, 'Child', 'فرع', '', n, true, now(), now()"
                    " FROM generate_series(1, 3) AS n RETURNING id"
                ),
                {"parent": parent},
            )
        )
        await session.execute(
            text(
                "INSERT INTO skills (owner_id, category_id, title_en, title_ar, description_en,"
                " description_ar, price_points, level, languages, tags, delivery_days, status,"
                " moderation_note, rating_sum, rating_count, orders_completed, search_vector,"
                " created_at, updated_at)"
                " SELECT CASE WHEN n % 50 = 0 THEN CAST(:banned AS bigint) ELSE CAST(:owner AS bigint) END,"
                " (CAST(ARRAY[:c0, :c1, :c2] AS bigint[]))[n % 3 + 1], docs.title, '', 'A listing.', '',"
                " 5 + n % 500, 'beginner', '[\"en\"]', '[]', 7,"
                " CASE WHEN n % 10 = 0 THEN 'paused' ELSE 'active' END, '',"
                " n % 5 * (n % 7), n % 7, n % 250, docs.vector,"
                " now() - n * interval '1 minute', now() - n * interval '1 minute'"
                " FROM generate_series(1, CAST(:count AS integer)) AS n"
                " JOIN (SELECT i, t AS title, to_tsvector('english', t) AS vector"
                "       FROM unnest(CAST(:titles AS text[])) WITH ORDINALITY AS d(t, i)) AS docs"
                " ON docs.i = n % 4 + 1"
            ),
            {
                "owner": owner,
                "banned": banned,
                "c0": children[0],
                "c1": children[1],
                "c2": children[2],
                "count": SKILLS,
                "titles": list(TITLES),
            },
        )
        await session.execute(
            text("UPDATE users SET is_active = false WHERE id = :id"), {"id": banned}
        )
        await uow.commit()
    async with deps.db.autocommit() as driver:
        await driver.execute("VACUUM ANALYZE skills")
        await driver.execute("ANALYZE users")
        await driver.execute("ANALYZE skill_categories")
    return int(parent), children


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(_nodes(child))
    return found


async def _plan(deps: Any, query: BrowseQuery, *, generic: bool) -> list[dict[str, Any]]:
    lines = await explain_page(
        deps, query, options="ANALYZE, BUFFERS, FORMAT JSON", generic=generic
    )
    document = json.loads(lines[0]) if isinstance(lines[0], str) else lines[0]
    return _nodes(document[0]["Plan"])


def _buffers(nodes: list[dict[str, Any]]) -> int:
    top = nodes[0]
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])


async def test_every_listing_page_at_100k_skills_reads_its_index_not_the_table(own_app):
    api, deps = own_app.api, own_app.deps
    owner, banned = await own_app.user(), await own_app.user()
    parent, children = await _fill(deps, owner.id, banned.id)

    pages = {
        "family, newest, max_price": BrowseQuery(category=parent, max_price=200),
        "child, price": BrowseQuery(category=children[0], ordering="price"),
        "child, -price": BrowseQuery(category=children[1], ordering="-price"),
        "child, popular": BrowseQuery(category=children[2], ordering="popular", min_price=50),
        "everything, newest": BrowseQuery(),
        "everything, popular": BrowseQuery(ordering="popular", max_price=100),
        "search, common word": BrowseQuery(search="lessons", max_price=300),
        "search, rare word": BrowseQuery(search="calligraphy", category=parent),
        "search, newest": BrowseQuery(search="piano", ordering="newest"),
    }
    for name, query in pages.items():
        for generic in (False, True):
            nodes = await _plan(deps, query, generic=generic)
            scans = {
                (node["Node Type"], node.get("Index Name"))
                for node in nodes
                if node.get("Relation Name") == "skills"
            }
            assert ("Seq Scan", None) not in scans, (name, generic, scans)
            if query.search is None:
                # Choosing and counting a page read the index only: what the count's bound of
                # 1,000 rows needs (index pages, the 21 rows read in full), not the table.
                assert _buffers(nodes) < 1500, (name, generic, _buffers(nodes))
                ours = [i for _, i in scans if i and i.startswith("ix_skills_active_")]
                assert ours, (name, generic, scans)

    # And through the API: the count is exact up to 1,000, then an estimate said to be one;
    # paused skills and the banned owner's are left out.
    listed = (await api.get(f"/api/skills/?category={parent}&max_price=200")).json()
    assert listed["count_is_estimate"] is True and listed["count"] >= 1000, listed["count"]
    assert len(listed["results"]) == 20
    assert {s["owner"]["id"] for s in listed["results"]} == {owner.id}
    assert all(s["price_points"] <= 200 for s in listed["results"])
    few = (await api.get(f"/api/skills/?category={children[0]}&max_price=5")).json()
    # Prices 5 + n % 500 = 5: n % 500 = 0, so n % 10 = 0 (paused): none are listed.
    assert (few["count"], few["count_is_estimate"], few["results"]) == (0, False, [])
    exact = (await api.get(f"/api/skills/?category={children[0]}&max_price=6")).json()
    # n % 500 = 1 and n % 3 = 0: n = 501 + 1500 k below 100,000, none paused or banned.
    assert (exact["count"], exact["count_is_estimate"]) == (len(range(501, SKILLS, 1500)), False)
