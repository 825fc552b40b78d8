"""A fresh install a client team can use at once: default categories in both languages, so the
first skill is listed without an administrator, and the demo data the README promises."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from skillswap.accounts.demo import DEMO_PASSWORD
from skillswap.db import create_engine
from skillswap.migrate import downgrade_to, upgrade_to_head
from skillswap.models import Category
from tests.conftest import BACKENDS, extra_server, make_settings, run_skillswap

README = Path(__file__).resolve().parents[2] / "README.md"
ARABIC = re.compile(r"[\u0600-\u06FF]")

# What migration 0007 makes: slug -> (English, Arabic), in this order.
DEFAULTS = {
    "programming": ("Programming", "البرمجة"),
    "languages": ("Languages", "اللغات"),
    "music": ("Music", "الموسيقى"),
    "design": ("Design", "التصميم"),
    "business": ("Business", "الأعمال"),
    "cooking": ("Cooking", "الطبخ"),
    "fitness": ("Fitness and health", "اللياقة والصحة"),
    "tutoring": ("School tutoring", "الدروس المدرسية"),
}


async def _categories(url: str) -> list[Category]:
    engine = create_engine(make_settings(database_url=url))
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(Category).order_by(Category.position, Category.id))
            return list(rows)  # type: ignore[arg-type]
    finally:
        await engine.dispose()


async def _execute(url: str, statement) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(make_settings(database_url=url))
    try:
        async with engine.begin() as conn:
            await conn.execute(statement)
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def fresh_url(request, tmp_path):  # type: ignore[no-untyped-def]
    """An empty database of each backend (PostgreSQL only when it is running)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    if BACKENDS.admin_url is None:
        pytest.skip("needs PostgreSQL; running on the embedded default")
    import asyncpg

    name = f"skillswap_fresh_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(BACKENDS.admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield BACKENDS.admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        admin = await asyncpg.connect(BACKENDS.admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_a_new_database_has_the_bilingual_default_categories(fresh_url):
    await upgrade_to_head(make_settings(database_url=fresh_url))
    found = await _categories(fresh_url)
    assert [c.slug for c in found] == list(DEFAULTS)
    assert {c.slug: (c.name_en, c.name_ar) for c in found} == DEFAULTS
    assert [c.position for c in found] == list(range(1, 9))
    assert all(c.parent_id is None and c.is_active and c.icon for c in found)
    assert all(ARABIC.search(c.name_ar) and not ARABIC.search(c.name_en) for c in found)


async def test_downgrade_removes_only_the_untouched_defaults(fresh_url):
    settings = make_settings(database_url=fresh_url)
    await upgrade_to_head(settings)
    await _execute(
        fresh_url,
        update(Category).where(Category.slug == "music").values(name_en="Music and singing"),
    )
    await _execute(fresh_url, update(Category).where(Category.slug == "design").values(position=20))
    await downgrade_to(settings, "0006")
    left = await _categories(fresh_url)
    assert sorted(c.slug for c in left) == ["design", "music"]
    assert {c.slug: c.name_en for c in left}["music"] == "Music and singing"
    # Upgrading again adds the removed ones back and leaves the kept ones as they are.
    await upgrade_to_head(settings)
    again = await _categories(fresh_url)
    assert sorted(c.slug for c in again) == sorted(DEFAULTS)
    assert {c.slug: c.name_en for c in again}["music"] == "Music and singing"


async def test_the_first_skill_is_listed_without_an_administrator(tmp_path):
    settings = make_settings(
        database_url=f"sqlite:///{tmp_path / 'first.sqlite3'}",
        redis_url="",
        data_dir=str(tmp_path),
    )
    await upgrade_to_head(settings)
    async with extra_server(settings) as (base, _deps), httpx.AsyncClient(base_url=base) as client:
        tree = await client.get("/api/skills/categories/", headers={"Accept-Language": "ar"})
        assert tree.status_code == 200
        body = tree.json()
        assert body["count"] == 8
        assert [c["slug"] for c in body["results"]] == list(DEFAULTS)
        assert [c["name"] for c in body["results"]] == [ar for _en, ar in DEFAULTS.values()]
        registered = await client.post(
            "/api/auth/register/",
            json={
                "email": "first@example.com",
                "username": "first",
                "password": "a long password 1",
            },
        )
        assert registered.status_code == 201, registered.text
        token = registered.json()["access"]
        cooking = next(c["id"] for c in body["results"] if c["slug"] == "cooking")
        listed = await client.post(
            "/api/skills/",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "title_en": "Maqluba at home",
                "title_ar": "المقلوبة في البيت",
                "description_en": "Layered rice, the family way.",
                "description_ar": "أرز بطبقات على طريقة العائلة.",
                "category_id": cooking,
                "price_points": 10,
            },
        )
        assert listed.status_code == 201, listed.text
        assert listed.json()["category"]["slug"] == "cooking"


def test_seed_demo_adds_under_the_defaults_and_prints_a_sign_in_the_readme_names(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "REDIS_URL": "",
        "DATA_DIR": str(tmp_path),
        "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "LOG_LEVEL": "WARNING",
    }
    seeded = run_skillswap("seed-demo", "--skills", "20", "--users", "2", env=env)
    assert seeded.returncode == 0, seeded.stderr
    lines = seeded.stdout.strip().splitlines()
    assert re.fullmatch(
        r"2 users, 20 categories, 20 skills, 2 wallets, \d+ points packages", lines[0]
    ), lines[0]
    match = re.fullmatch(
        r"sign in as (demo-[0-9a-f]{6}-0@example\.com) \(any demo user\) with the password (\S+)",
        lines[-1],
    )
    assert match is not None, lines[-1]
    assert match.group(2) == DEMO_PASSWORD
    readme = README.read_text(encoding="utf-8")
    assert "seed-demo" in readme and f"`{DEMO_PASSWORD}`" in readme


async def test_seeded_demo_user_signs_in_and_demo_categories_hang_under_the_defaults(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo2.sqlite3'}"
    settings = make_settings(database_url=url, redis_url="", data_dir=str(tmp_path))
    await upgrade_to_head(settings)
    async with extra_server(settings) as (base, deps), httpx.AsyncClient(base_url=base) as client:
        from skillswap.accounts.demo import seed_demo

        report = await seed_demo(deps, skills=10, users=2)
        signed_in = await client.post(
            "/api/auth/login/", json={"email": report.sign_in, "password": DEMO_PASSWORD}
        )
        assert signed_in.status_code == 200, signed_in.text
        tree = (await client.get("/api/skills/categories/")).json()
    # 8 defaults, 5 of them the demo's parents (reused by slug) with 3 children each.
    assert tree["count"] == 8
    assert sum(len(top["children"]) for top in tree["results"]) == 15
    assert {top["slug"]: len(top["children"]) for top in tree["results"]} == {
        "programming": 3,
        "languages": 3,
        "music": 3,
        "design": 3,
        "business": 3,
        "cooking": 0,
        "fitness": 0,
        "tutoring": 0,
    }


# -- orders name their room; unknown query arguments are refused ----------------------------------


async def test_every_order_answer_names_its_chat_room(api, deps, make_user):
    from tests.factories import place_order

    buyer, seller, stranger = await make_user(), await make_user(), await make_user()
    placed = await place_order(api, deps, buyer, seller)
    room_id = placed["room_id"]
    assert isinstance(room_id, int)
    detail = await api.get(f"/api/points/orders/{placed['id']}/", token=buyer.access)
    assert detail.json()["room_id"] == room_id
    listed = await api.get("/api/points/orders/", token=seller.access, params={"page_size": 100})
    assert {o["id"]: o["room_id"] for o in listed.json()["results"]}[placed["id"]] == room_id
    accepted = await api.post(f"/api/points/orders/{placed['id']}/accept/", token=seller.access)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["room_id"] == room_id

    rooms = await api.get("/api/chat/rooms/", token=buyer.access, params={"order_id": placed["id"]})
    assert rooms.status_code == 200, rooms.text
    assert rooms.json()["count"] == 1
    assert [(r["id"], r["order_id"]) for r in rooms.json()["results"]] == [(room_id, placed["id"])]
    # Another user's order has no room of theirs: the same empty answer as an unknown order.
    for token, order_id in ((stranger.access, placed["id"]), (buyer.access, 999_999_999)):
        none = await api.get("/api/chat/rooms/", token=token, params={"order_id": order_id})
        assert none.status_code == 200
        assert none.json() == {"count": 0, "next": None, "previous": None, "results": []}
    bad = await api.get("/api/chat/rooms/", token=buyer.access, params={"order_id": "x"})
    assert bad.status_code == 400 and list(bad.json()["errors"]) == ["order_id"]


async def test_unknown_query_arguments_are_a_400_on_every_list(api, deps, make_user):
    from tests.factories import order_room

    admin, buyer, seller = await make_user(admin=True), await make_user(), await make_user()
    room_id = await order_room(api, deps, buyer, seller)
    skill_id = (await api.get("/api/skills/", params={"owner": seller.id})).json()["results"][0][
        "id"
    ]
    paths = [
        ("/api/chat/rooms/", buyer),
        (f"/api/chat/rooms/{room_id}/", buyer),
        ("/api/notifications/", seller),
        (f"/api/users/{seller.id}/reviews/", None),
        (f"/api/skills/{skill_id}/reviews/", None),
        ("/api/points/transactions/", buyer),
        ("/api/points/balance/", buyer),
        ("/api/points/packages/", None),
        ("/api/points/orders/", buyer),
        ("/api/admin/packages/", admin),
        ("/api/admin/categories/", admin),
        ("/api/skills/categories/", None),
        ("/api/skills/", None),
    ]
    for path, user in paths:
        token = user.access if user else None
        # Warm any cache first: a cached answer must not skip the check.
        assert (await api.get(path, token=token)).status_code == 200, path
        refused = await api.get(path, token=token, params={"pagesize": "5"})
        assert refused.status_code == 400, (path, refused.text)
        problem = refused.json()
        assert problem["code"] == "validation_error", path
        assert problem["errors"] == {"pagesize": ["Unknown field."]}, path
    for path, user in paths:
        if path.endswith(f"/rooms/{room_id}/") or "/balance/" in path or "categories" in path:
            continue  # not paginated
        token = user.access if user else None
        paged = await api.get(path, token=token, params={"page": "1", "page_size": "5"})
        assert paged.status_code == 200, (path, paged.text)
