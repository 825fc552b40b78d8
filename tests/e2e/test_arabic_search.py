"""Arabic search finds words whatever article or conjunction they were written with, on
PostgreSQL (tsvector) and on the embedded default (SQLite FTS5); English search is unchanged.

Each test searches only its own owner's listings (`owner=`), so listings of other tests never
count.
"""

from __future__ import annotations

import random


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
