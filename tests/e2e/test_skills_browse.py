"""Browsing and searching: every filter and ordering, stable pages, bilingual full-text search,
bad parameters, a fixed number of queries per page, and reads that always see the last write.

The same tests run on PostgreSQL (tsvector) and on the embedded default (SQLite FTS5).
"""

from __future__ import annotations

import random
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import update

from skillswap.models import Skill, User
from tests.query_recorder import QueryRecorder


def word() -> str:
    """A made-up word no other listing contains (consonants only, so no stemmer touches it)."""
    return "".join(random.choice("bcdfghjkmnpqrtvwxz") for _ in range(10))


def ids(response) -> list[int]:
    assert response.status_code == 200, response.text
    return [skill["id"] for skill in response.json()["results"]]


async def set_stats(deps, skill_id: int, **values: int) -> None:
    """Change what orders and reviews maintain (rating, completed orders), as they would."""
    async with deps.db.uow() as uow:
        await uow.session.execute(update(Skill).where(Skill.id == skill_id).values(**values))
        await uow.commit()


# -- filters ----------------------------------------------------------------------------------


async def test_category_filter_includes_children(api, make_user, make_category, make_skill):
    owner = await make_user()
    parent = await make_category()
    child = await make_category(parent_id=parent["id"])
    in_parent = await make_skill(owner, category_id=parent["id"])
    in_child = await make_skill(owner, category_id=child["id"])
    assert set(ids(await api.get(f"/api/skills/?category={parent['id']}"))) == {
        in_parent["id"],
        in_child["id"],
    }
    assert ids(await api.get(f"/api/skills/?category={child['id']}")) == [in_child["id"]]


async def test_price_level_language_owner_and_tag_filters(
    api, make_user, make_category, make_skill
):
    alice, bob = await make_user(), await make_user()
    category = (await make_category())["id"]
    cheap = await make_skill(alice, category_id=category, price_points=5, tags=["Jazz Piano"])
    mid = await make_skill(
        alice,
        category_id=category,
        price_points=50,
        level="advanced",
        title_ar="بيانو",
        description_ar="سلالم",
        languages=["ar", "en"],
    )
    dear = await make_skill(bob, category_id=category, price_points=500, level="expert")
    base = f"/api/skills/?category={category}&ordering=price"
    assert ids(await api.get(f"{base}&min_price=50")) == [mid["id"], dear["id"]]
    assert ids(await api.get(f"{base}&max_price=50")) == [cheap["id"], mid["id"]]
    assert ids(await api.get(f"{base}&min_price=6&max_price=499")) == [mid["id"]]
    assert ids(await api.get(f"{base}&level=expert")) == [dear["id"]]
    assert ids(await api.get(f"{base}&language=ar")) == [mid["id"]]
    assert ids(await api.get(f"{base}&language=EN")) == [cheap["id"], mid["id"], dear["id"]]
    assert ids(await api.get(f"{base}&owner={bob.id}")) == [dear["id"]]
    assert ids(await api.get(f"{base}&tag=jazz-piano")) == [cheap["id"]]
    assert ids(await api.get(f"{base}&tag=%23Jazz%20Piano")) == [cheap["id"]]  # normalised too
    assert ids(await api.get(f"{base}&tag=jazz")) == []


async def test_min_rating_counts_only_rated_skills(api, deps, make_user, make_category, make_skill):
    owner = await make_user()
    category = (await make_category())["id"]
    great = await make_skill(owner, category_id=category)
    fair = await make_skill(owner, category_id=category)
    await make_skill(owner, category_id=category)  # never rated
    await set_stats(deps, great["id"], rating_sum=9, rating_count=2)  # 4.5
    await set_stats(deps, fair["id"], rating_sum=7, rating_count=2)  # 3.5
    assert ids(await api.get(f"/api/skills/?category={category}&min_rating=4.5")) == [great["id"]]
    assert set(ids(await api.get(f"/api/skills/?category={category}&min_rating=3"))) == {
        great["id"],
        fair["id"],
    }
    detail = await api.get(f"/api/skills/{great['id']}/")
    assert detail.json()["rating_average"] == 4.5 and detail.json()["rating_count"] == 2


async def test_only_active_skills_of_active_users_are_listed(
    api, deps, make_user, make_category, make_skill
):
    owner, leaving = await make_user(), await make_user()
    category = (await make_category())["id"]
    shown = await make_skill(owner, category_id=category)
    paused = await make_skill(owner, category_id=category)
    deleted = await make_skill(owner, category_id=category)
    of_leaving = await make_skill(leaving, category_id=category)
    await api.patch(f"/api/skills/{paused['id']}/", token=owner.access, json={"status": "paused"})
    await api.delete(f"/api/skills/{deleted['id']}/", token=owner.access)
    before = await api.get(f"/api/skills/?category={category}")
    assert set(ids(before)) == {shown["id"], of_leaving["id"]}
    async with deps.db.uow() as uow:
        user = await uow.session.get(User, leaving.id)
        assert user is not None
        user.is_active = False
        await uow.commit()
    assert ids(await api.get(f"/api/skills/?category={category}")) == [shown["id"]]
    assert (await api.get(f"/api/skills/{of_leaving['id']}/")).status_code == 404
    assert (await api.get(f"/api/users/{leaving.id}/skills/")).status_code == 404


async def test_one_persons_skills(api, make_user, make_skill):
    owner, other = await make_user(), await make_user()
    first = await make_skill(owner)
    second = await make_skill(owner, price_points=99)
    hidden = await make_skill(owner)
    await make_skill(other)
    await api.patch(f"/api/skills/{hidden['id']}/", token=owner.access, json={"status": "paused"})
    response = await api.get(f"/api/users/{owner.id}/skills/?ordering=-price")
    assert ids(response) == [second["id"], first["id"]]
    assert response.json()["count"] == 2
    assert (await api.get("/api/users/999999999/skills/")).status_code == 404
    bad = await api.get(f"/api/users/{owner.id}/skills/?ordering=relevance")
    assert bad.status_code == 400


# -- orderings and pages ----------------------------------------------------------------------


async def test_every_ordering_ends_with_the_id_tie_breaker(
    api, deps, make_user, make_category, make_skill
):
    owner = await make_user()
    category = (await make_category())["id"]
    a = await make_skill(owner, category_id=category, price_points=20)
    b = await make_skill(owner, category_id=category, price_points=10)
    c = await make_skill(owner, category_id=category, price_points=20)
    d = await make_skill(owner, category_id=category, price_points=30)
    await set_stats(deps, a["id"], rating_sum=8, rating_count=2, orders_completed=7)  # 4.0
    await set_stats(deps, b["id"], rating_sum=5, rating_count=1, orders_completed=7)  # 5.0
    await set_stats(deps, c["id"], rating_sum=12, rating_count=3, orders_completed=1)  # 4.0
    base = f"/api/skills/?category={category}&ordering="
    assert ids(await api.get(base + "newest")) == [d["id"], c["id"], b["id"], a["id"]]
    assert ids(await api.get(f"/api/skills/?category={category}")) == [
        d["id"],
        c["id"],
        b["id"],
        a["id"],
    ]
    assert ids(await api.get(base + "price")) == [b["id"], a["id"], c["id"], d["id"]]
    assert ids(await api.get(base + "-price")) == [d["id"], c["id"], a["id"], b["id"]]
    # rating: average, then number of ratings, then id; unrated last
    assert ids(await api.get(base + "rating")) == [b["id"], c["id"], a["id"], d["id"]]
    assert ids(await api.get(base + "popular")) == [b["id"], a["id"], c["id"], d["id"]]


async def test_unknown_ordering_lists_the_allowed_values(api):
    response = await api.get("/api/skills/?ordering=price;DROP TABLE skills")
    assert response.status_code == 400
    message = response.json()["errors"]["ordering"][0]
    for allowed in ("relevance", "newest", "price", "-price", "rating", "popular"):
        assert f"'{allowed}'" in message


async def test_relevance_needs_a_search(api):
    response = await api.get("/api/skills/?ordering=relevance")
    assert response.status_code == 400
    assert "ordering" in response.json()["errors"]


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("category=abc", {"category"}),
        ("category=0", {"category"}),
        ("min_price=-1&max_price=x", {"min_price", "max_price"}),
        ("min_price=10&max_price=5", {"max_price"}),
        ("min_rating=6", {"min_rating"}),
        ("min_rating=high", {"min_rating"}),
        ("level=guru", {"level"}),
        ("language=english", {"language"}),
        ("owner=me", {"owner"}),
        ("page=0&page_size=1000", {"page", "page_size"}),
        ("colour=red", {"colour"}),
        ("cursor=not-a-cursor", {"cursor"}),
        (f"search={'x' * 201}", {"search"}),
        ("search=a%00b&tag=%00", {"search", "tag"}),
        ("min_rating=nan", {"min_rating"}),
        ("owner=99999999999999999999&category=99999999999999999999", {"owner", "category"}),
        ("max_price=99999999999", {"max_price"}),
        ("page=99999999999", {"page"}),
    ],
)
async def test_bad_parameters_are_a_clear_400(api, query, fields):
    response = await api.get(f"/api/skills/?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "validation_error"
    assert set(response.json()["errors"]) == fields


async def test_a_forged_cursor_is_refused_not_crashed(api):
    import base64
    import json

    for forged in (
        ["newest", "a", ["2026-01-01T00:00:00", 1]],  # a time without a zone
        ["price", "a", [10**30, 1]],  # beyond any integer column
        ["rating", "b", [float("inf"), 1, 1]],
        ["price", "x", [1, 1]],
        {"not": "a list"},
    ):
        raw = json.dumps(forged).encode()
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        ordering = forged[0] if isinstance(forged, list) else "newest"
        response = await api.get(f"/api/skills/?ordering={ordering}&cursor={cursor}")
        assert response.status_code == 400, (forged, response.text)
        assert "cursor" in response.json()["errors"]


async def test_a_cursor_for_another_ordering_is_refused(api, make_user, make_category, make_skill):
    owner = await make_user()
    category = (await make_category())["id"]
    for _ in range(3):
        await make_skill(owner, category_id=category)
    first = await api.get(f"/api/skills/?category={category}&page_size=2")
    cursor = parse_qs(urlsplit(first.json()["next"]).query)["cursor"][0]
    other = await api.get(f"/api/skills/?category={category}&ordering=price&cursor={cursor}")
    assert other.status_code == 400 and "cursor" in other.json()["errors"]


async def test_pages_stay_stable_while_listings_change(api, make_user, make_category, make_skill):
    owner = await make_user()
    category = (await make_category())["id"]
    made = [await make_skill(owner, category_id=category, price_points=10) for _ in range(7)]
    newest_first = [s["id"] for s in reversed(made)]

    page1 = await api.get(f"/api/skills/?category={category}&page_size=3")
    assert ids(page1) == newest_first[:3]
    assert page1.json()["count"] == 7 and page1.json()["previous"] is None
    # While the reader looks at page 1, a listing is added on top and one of page 1 goes away.
    added = await make_skill(owner, category_id=category, price_points=10)
    await api.delete(f"/api/skills/{newest_first[0]}/", token=owner.access)

    page2 = await api.get(page1.json()["next"])
    assert ids(page2) == newest_first[3:6]  # nothing repeated, nothing skipped
    page3 = await api.get(page2.json()["next"])
    assert ids(page3) == newest_first[6:]
    assert page3.json()["next"] is None
    back = await api.get(page2.json()["previous"])
    # The page before page 2 as it is now: the new listing, minus the deleted one.
    assert ids(back) == [added["id"], *newest_first[1:3]]
    assert back.json()["previous"] is None


async def test_equal_prices_page_through_in_id_order(api, make_user, make_category, make_skill):
    owner = await make_user()
    category = (await make_category())["id"]
    made = [await make_skill(owner, category_id=category, price_points=10) for _ in range(5)]
    seen: list[int] = []
    url: str | None = f"/api/skills/?category={category}&ordering=price&page_size=2"
    while url:
        response = await api.get(url)
        seen += ids(response)
        url = response.json()["next"]
    assert seen == sorted(s["id"] for s in made)
    by_number = await api.get(f"/api/skills/?category={category}&ordering=price&page_size=2&page=2")
    assert ids(by_number) == seen[2:4]
    beyond = await api.get(f"/api/skills/?category={category}&page_size=2&page=9")
    assert ids(beyond) == [] and beyond.json()["count"] == 5
    assert "page=8" in beyond.json()["previous"]


# -- search -----------------------------------------------------------------------------------


async def test_english_search_is_stemmed(api, make_user, make_skill):
    owner = await make_user()
    tag = word()
    teach = await make_skill(owner, title_en=f"I teach {tag} guitar", description_en="Chords.")
    assert ids(await api.get(f"/api/skills/?search=teaching {tag}")) == [teach["id"]]
    assert ids(await api.get(f"/api/skills/?search=Teaches+{tag}+GUITARS")) == [teach["id"]]
    assert ids(await api.get(f"/api/skills/?search=piano {tag}")) == []  # every word must match


@pytest.mark.parametrize(
    ("written", "searched"),
    [
        ("أحمد", "احمد"),
        ("إدارة", "اداره"),
        ("آلة", "الة"),
        ("مدرسة", "مدرسه"),
        ("مستشفى", "مستشفي"),
        ("عَرَبِيّ", "عربي"),
        ("تعلـــيم", "تعليم"),
        ("برمجة", "بَرْمَجَة"),  # the query has the diacritics this time
    ],
)
async def test_arabic_search_ignores_spelling_variants(
    api, make_user, make_skill, written, searched
):
    owner = await make_user()
    tag = word()
    skill = await make_skill(
        owner, title_en="", description_en="", title_ar=f"{written} {tag}", description_ar="دروس"
    )
    assert ids(await api.get("/api/skills/", params={"search": f"{searched} {tag}"})) == [
        skill["id"]
    ]


async def test_search_covers_titles_descriptions_and_tags_in_both_languages(
    api, make_user, make_skill
):
    owner = await make_user()
    tag = word()
    in_title = await make_skill(owner, title_en=f"{tag} workshop", description_en="Hands on.")
    in_description = await make_skill(owner, title_en="Workshop", description_en=f"About {tag}.")
    in_tags = await make_skill(owner, tags=[tag])
    in_arabic = await make_skill(
        owner, title_en="", description_en="", title_ar="ورشة", description_ar=f"عن {tag}"
    )
    found = ids(await api.get(f"/api/skills/?search={tag}"))
    assert set(found) == {in_title["id"], in_description["id"], in_tags["id"], in_arabic["id"]}
    assert found[0] == in_title["id"]  # title matches rank first
    assert found.index(in_tags["id"]) < found.index(in_description["id"])


async def test_relevance_pages_follow_the_rank(api, make_user, make_skill):
    owner = await make_user()
    tag = word()
    made = [
        await make_skill(owner, title_en=f"{tag} {'x' * n}", description_en=f"{tag} notes")
        for n in range(1, 6)
    ]
    first = await api.get(f"/api/skills/?search={tag}&page_size=2")
    seen = ids(first)
    url = first.json()["next"]
    while url:
        page = await api.get(url)
        seen += ids(page)
        url = page.json()["next"]
    assert sorted(seen) == sorted(s["id"] for s in made)
    assert len(seen) == len(set(seen)) == first.json()["count"] == 5
    by_price = await api.get(f"/api/skills/?search={tag}&ordering=-price")
    assert len(ids(by_price)) == 5


async def test_search_combines_with_filters_and_handles_no_words(api, make_user, make_skill):
    owner = await make_user()
    tag = word()
    cheap = await make_skill(owner, title_en=f"{tag} basics", price_points=5)
    await make_skill(owner, title_en=f"{tag} mastery", price_points=500)
    assert ids(await api.get(f"/api/skills/?search={tag}&max_price=10")) == [cheap["id"]]
    for nothing in ("!!!", "the of and", '"'):
        response = await api.get("/api/skills/", params={"search": nothing})
        assert response.status_code == 200 and response.json()["count"] == 0
    quoted = await api.get("/api/skills/", params={"search": f'"{tag}* -(basics:'})
    assert ids(quoted) == [cheap["id"]]  # search syntax in the text is just words


# -- cost and freshness -----------------------------------------------------------------------


async def test_a_list_page_costs_the_same_queries_whatever_its_size(
    api, deps, make_user, make_category, make_skill
):
    owner = await make_user()
    category = (await make_category())["id"]
    for n in range(12):
        await make_skill(owner, category_id=category, tags=[f"t{n}"])
    costs = {}
    for size in (1, 5, 12):
        async with QueryRecorder(deps.db) as queries:
            response = await api.get(f"/api/skills/?category={category}&page_size={size}")
        assert len(ids(response)) == size
        costs[size] = queries.count
    assert costs[1] == costs[5] == costs[12] == 1, costs  # the count, the rows, their images


async def test_a_write_is_visible_on_the_next_read(api, deps, make_user, make_skill):
    owner = await make_user(display_name="Before")
    skill = await make_skill(owner)
    detail_path = f"/api/skills/{skill['id']}/"
    list_path = f"/api/skills/?owner={owner.id}"
    assert (await api.get(detail_path)).json()["price_points"] == 10
    assert (await api.get(list_path)).json()["results"][0]["price_points"] == 10
    await api.patch(detail_path, token=owner.access, json={"price_points": 11})
    assert (await api.get(detail_path)).json()["price_points"] == 11
    assert (await api.get(list_path)).json()["results"][0]["price_points"] == 11
    # Another capability's atomic update (orders completing) is seen too.
    async with deps.db.uow() as uow:
        await uow.session.execute(
            update(Skill)
            .where(Skill.id == skill["id"])
            .values(orders_completed=Skill.orders_completed + 1)
        )
        await uow.commit()
    assert (await api.get(detail_path)).json()["orders_completed"] == 1
    # So is the owner renaming themselves (their public profile is part of the listing).
    await api.patch("/api/auth/profile/", token=owner.access, json={"display_name": "After"})
    assert (await api.get(detail_path)).json()["owner"]["display_name"] == "After"
    assert (await api.get(list_path)).json()["results"][0]["owner"]["display_name"] == "After"


async def test_a_rolled_back_write_changes_nothing(api, deps, make_user, make_skill):
    owner = await make_user()
    skill = await make_skill(owner)
    path = f"/api/skills/{skill['id']}/"
    assert (await api.get(path)).json()["price_points"] == 10
    async with deps.db.uow() as uow:
        await uow.session.execute(
            update(Skill).where(Skill.id == skill["id"]).values(price_points=77)
        )
        # no commit: rolled back
    assert (await api.get(path)).json()["price_points"] == 10
