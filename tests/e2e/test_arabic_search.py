"""Arabic search finds words whatever article or conjunction they were written with, on
PostgreSQL (tsvector) and on the embedded default (SQLite FTS5); English search is unchanged.

Each test searches only its own owner's listings (`owner=`), so listings of other tests never
count.
"""

from __future__ import annotations

import importlib.util
import itertools
import random
from pathlib import Path

from sqlalchemy import text


def word() -> str:
    """A made-up Latin word no other listing contains."""
    return "".join(random.choice("bcdfghjkmnpqrtvwxz") for _ in range(10))


async def found(api, owner, search: str) -> list[int]:
    response = await api.get("/api/skills/", params={"search": search, "owner": owner.id})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["results"])
    return sorted(skill["id"] for skill in body["results"])


async def arabic_skill(make_skill, owner, title: str, description: str = "دروس") -> int:
    skill = await make_skill(
        owner, title_en="", description_en="", title_ar=title, description_ar=description
    )
    return int(skill["id"])


async def test_a_word_is_found_without_its_article_or_conjunction(api, make_user, make_skill):
    owner = await make_user()
    maqluba = await arabic_skill(make_skill, owner, "المقلوبة الفلسطينية")
    secrets = await arabic_skill(make_skill, owner, "المطبخ الشامي", "وصفات وأسرار الطبخ")
    beginners = await arabic_skill(make_skill, owner, "تعليم الغيتار للمبتدئين")
    arabic = await arabic_skill(make_skill, owner, "دروس خصوصية", "نشرح بالعربية والإنجليزية")
    assert await found(api, owner, "مقلوبة") == [maqluba]
    assert await found(api, owner, "اسرار") == [secrets]
    assert await found(api, owner, "أسرار المطبخ") == [secrets]
    assert await found(api, owner, "مبتدئين") == [beginners]
    assert await found(api, owner, "المبتدئين") == [beginners]
    assert await found(api, owner, "عربية") == [arabic]
    assert await found(api, owner, "انجليزية") == [arabic]
    # and the other way: a query with the article finds the word written without it
    plain = await arabic_skill(make_skill, owner, "مقلوبة سريعة")
    assert await found(api, owner, "المقلوبة") == [maqluba, plain]
    assert await found(api, owner, "والمقلوبة") == [maqluba, plain]


async def test_lone_proclitics_match_nothing_and_short_words_keep_their_letters(
    api, make_user, make_skill
):
    owner = await make_user()
    await arabic_skill(make_skill, owner, "المقلوبة", "وأسرار الطبخ بالبيت")
    rose = await arabic_skill(make_skill, owner, "تنسيق ورد", "باقات")
    card = await arabic_skill(make_skill, owner, "تصميم بطاقة", "دعوات")
    for lone in ("ال", "و", "ب", "ل", "و ال"):
        assert await found(api, owner, lone) == [], lone
    assert await found(api, owner, "ورد") == [rose]
    assert await found(api, owner, "رد") == []  # ورد is a word, not و + رد
    assert await found(api, owner, "بطاقة") == [card]
    assert await found(api, owner, "طاقة") == []  # a lone ب is not taken off


async def test_an_edited_title_is_searched_with_the_same_rules(api, make_user, make_skill):
    owner = await make_user()
    skill = await arabic_skill(make_skill, owner, "دروس طبخ")
    assert await found(api, owner, "مقلوبة") == []
    response = await api.patch(
        f"/api/skills/{skill}/", json={"title_ar": "والمقلوبة"}, token=owner.access
    )
    assert response.status_code == 200, response.text
    assert await found(api, owner, "مقلوبة") == [skill]
    assert await found(api, owner, "طبخ") == []


async def test_english_search_is_unchanged(api, make_user, make_skill):
    owner = await make_user()
    tag = word()
    teach = await make_skill(owner, title_en=f"I teach {tag} guitar", description_en="Chords.")
    other = await make_skill(owner, title_en="Piano", description_en=f"All about {tag} pianos.")
    assert await found(api, owner, f"teaching {tag}") == [teach["id"]]
    assert await found(api, owner, f"Teaches {tag} GUITARS") == [teach["id"]]
    assert await found(api, owner, f"piano {tag}") == [other["id"]]
    assert await found(api, owner, f"{tag}") == sorted([teach["id"], other["id"]])
    assert await found(api, owner, f"violin {tag}") == []
    assert await found(api, owner, "the of and") == []


async def test_a_mixed_query_needs_every_word(api, make_user, make_skill):
    owner = await make_user()
    tag = word()
    both = await make_skill(
        owner,
        title_en=f"{tag} cooking",
        description_en="Home food.",
        title_ar="المقلوبة",
        description_ar="طبخ",
    )
    await make_skill(owner, title_en=f"{tag} baking", description_en="Bread.")
    assert await found(api, owner, f"{tag} مقلوبة") == [both["id"]]
    assert await found(api, owner, f"cooks مقلوبة {tag}") == [both["id"]]
    assert await found(api, owner, f"{tag} فلافل") == []


REVISION_0008 = (
    Path(__file__).resolve().parents[2] / "migrations/versions/0008_arabic_proclitics.py"
)


def _revision_0008():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("revision_0008", REVISION_0008)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_revision_0008_rebuilds_the_documents_written_before(
    api, deps, make_user, make_skill
):
    """Documents written by the earlier code (no forms) are found once 0008 has run; its
    downgrade writes them as before. Each search has its own page size: the revision writes
    behind the service's back (as it does before a start), so no cached answer may be reused."""
    revision = _revision_0008()
    page_sizes = itertools.count(10)
    owner = await make_user()
    maqluba = await arabic_skill(make_skill, owner, "المقلوبة", "وأسرار الطبخ")
    deleted = await arabic_skill(make_skill, owner, "والمقلوبة")
    response = await api.delete(f"/api/skills/{deleted}/", token=owner.access)
    assert response.status_code == 204, response.text

    async def searched(text: str) -> list[int]:
        params = {"search": text, "owner": owner.id, "page_size": next(page_sizes)}
        response = await api.get("/api/skills/", params=params)
        assert response.status_code == 200, response.text
        return [skill["id"] for skill in response.json()["results"]]

    async def run(step: str) -> None:
        async with deps.db.engine.begin() as conn:
            index = revision.normalise_search_text if step == "down" else revision.index_text
            await conn.run_sync(lambda sync: revision.rebuild(sync, index))

    await run("down")
    assert await searched("المقلوبة") == [maqluba]
    assert await searched("مقلوبة") == []
    assert await searched("اسرار") == []
    await run("up")
    assert await searched("مقلوبة") == [maqluba]
    assert await searched("اسرار") == [maqluba]
    await run("up")  # running it again changes nothing
    assert await searched("مقلوبة") == [maqluba]
    async with deps.db.engine.connect() as conn:  # the deleted skill got no document back
        if deps.db.is_sqlite:
            query = "SELECT count(*) FROM skills_fts WHERE rowid = :id"
        else:
            query = "SELECT count(*) FROM skills WHERE id = :id AND search_vector IS NOT NULL"
        assert (await conn.execute(text(query), {"id": deleted})).scalar_one() == 0
