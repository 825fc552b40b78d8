"""Demo categories and bilingual skills for `skillswap seed-demo` (bulk inserts, search indexed).

On PostgreSQL the skills are streamed with COPY into a temporary table and moved into `skills`
by one INSERT ... SELECT, which computes each search vector once per distinct document
(demo texts repeat); the full-text index takes them through its pending list, flushed in bulk
at the end. `seed-demo --skills 1000000` took 4 minutes on a shared two-core host (11 with
row-by-row INSERTs).
"""

from __future__ import annotations

import functools
import json
import random
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from skillswap.db import UnitOfWork
from skillswap.models import Category
from skillswap.models.skills import SkillLevel, SkillStatus
from skillswap.skills.queries import skills as skills_table
from skillswap.skills.search import SearchDocument, store_fts_documents, vector_from_params
from skillswap.skills.text import index_text

if TYPE_CHECKING:
    from skillswap.deps import Deps

BATCH = 1000
COPY_BATCH = 50_000

# slug, English, Arabic, icon, children; each child: slug, English, Arabic, icon, topics
# (topic: English, Arabic, tag).
CATEGORY_TREE: list[tuple[str, str, str, str, list[tuple[str, str, str, str, list[tuple[str, str, str]]]]]] = [
    ("programming", "Programming", "البرمجة", "code", [
        ("web-development", "Web development", "تطوير الويب", "globe", [
            ("Python web apps", "تطبيقات الويب ببايثون", "python"),
            ("JavaScript", "جافاسكريبت", "javascript"),
            ("HTML and CSS", "لغة HTML وتنسيق CSS", "html"),
            ("Django", "إطار جانغو", "django"),
        ]),
        ("mobile-apps", "Mobile apps", "تطبيقات الجوال", "smartphone", [
            ("Android apps", "تطبيقات أندرويد", "android"),
            ("iOS apps with Swift", "تطبيقات آيفون بلغة سويفت", "swift"),
            ("Flutter", "فلاتر", "flutter"),
        ]),
        ("data-science", "Data science", "علم البيانات", "chart", [
            ("data analysis with pandas", "تحليل البيانات", "pandas"),
            ("machine learning", "تعلّم الآلة", "machine-learning"),
            ("SQL databases", "قواعد البيانات", "sql"),
        ]),
    ]),
    ("languages", "Languages", "اللغات", "translate", [
        ("english", "English", "اللغة الإنجليزية", "book", [
            ("English conversation", "المحادثة بالإنجليزية", "english"),
            ("IELTS preparation", "التحضير لاختبار آيلتس", "ielts"),
            ("business English", "الإنجليزية للأعمال", "english"),
        ]),
        ("arabic", "Arabic", "اللغة العربية", "book", [
            ("Arabic grammar", "قواعد اللغة العربية", "arabic"),
            ("Quran recitation", "تلاوة القرآن وتجويده", "tajweed"),
            ("Arabic calligraphy", "الخطّ العربيّ", "calligraphy"),
        ]),
        ("french", "French", "اللغة الفرنسية", "book", [
            ("French for beginners", "الفرنسية للمبتدئين", "french"),
            ("French pronunciation", "النطق الفرنسي", "french"),
        ]),
    ]),
    ("music", "Music", "الموسيقى", "music", [
        ("guitar", "Guitar", "الغيتار", "guitar", [
            ("acoustic guitar", "الغيتار الصوتي", "guitar"),
            ("guitar chords", "أوتار الغيتار", "guitar"),
        ]),
        ("piano", "Piano", "البيانو", "piano", [
            ("piano", "العزف على البيانو", "piano"),
            ("music theory", "نظرية الموسيقى", "music-theory"),
        ]),
        ("singing", "Singing", "الغناء", "mic", [
            ("singing", "الغناء", "singing"),
            ("Arabic maqam", "المقامات العربية", "maqam"),
        ]),
    ]),
    ("design", "Design", "التصميم", "brush", [
        ("graphic-design", "Graphic design", "التصميم الجرافيكي", "pen", [
            ("logo design", "تصميم الشعارات", "logo"),
            ("Photoshop", "فوتوشوب", "photoshop"),
        ]),
        ("photography", "Photography", "التصوير الفوتوغرافي", "camera", [
            ("portrait photography", "تصوير البورتريه", "photography"),
            ("photo editing", "تعديل الصور", "lightroom"),
        ]),
        ("video-editing", "Video editing", "مونتاج الفيديو", "film", [
            ("video editing", "مونتاج الفيديو", "video"),
            ("motion graphics", "الموشن جرافيك", "motion"),
        ]),
    ]),
    ("business", "Business", "الأعمال", "briefcase", [
        ("marketing", "Marketing", "التسويق", "megaphone", [
            ("digital marketing", "التسويق الرقمي", "marketing"),
            ("social media", "وسائل التواصل الاجتماعي", "social-media"),
        ]),
        ("accounting", "Accounting", "المحاسبة", "calculator", [
            ("bookkeeping", "مسك الدفاتر", "accounting"),
            ("Excel for finance", "إكسل للمالية", "excel"),
        ]),
        ("public-speaking", "Public speaking", "الخطابة", "presentation", [
            ("public speaking", "فنّ الإلقاء والخطابة", "speaking"),
            ("presentation skills", "مهارات العرض والتقديم", "presentation"),
        ]),
    ]),
]  # fmt: skip

TITLES = [
    ("{topic} lessons for {audience}", "دروس {topic} لـ{audience_ar}"),
    ("Learn {topic} step by step", "تعلَّم {topic} خطوة بخطوة"),
    ("Teaching {topic} online", "تعليم {topic} عبر الإنترنت"),
    ("Private {topic} tutoring", "دروس خصوصية في {topic}"),
    ("{topic} coaching and practice", "تدريب {topic} وممارسة عملية"),
]
AUDIENCES = [
    ("beginners", "المبتدئين"),
    ("students", "الطلاب"),
    ("professionals", "المحترفين"),
    ("kids", "الأطفال"),
    ("adults", "الكبار"),
]
LEVELS = tuple(SkillLevel)


async def _categories(uow: UnitOfWork, deps: Deps) -> list[tuple[int, list[tuple[str, str, str]]]]:
    """Create the missing demo categories; return the leaf ids with their topics."""
    session = uow.session
    existing = {c.slug: c for c in (await session.scalars(select(Category))).all()}
    now = deps.clock()
    leaves: list[tuple[int, list[tuple[str, str, str]]]] = []
    for position, (slug, name_en, name_ar, icon, children) in enumerate(CATEGORY_TREE, start=1):
        parent = existing.get(slug)
        if parent is None:
            parent = Category(
                slug=slug, name_en=name_en, name_ar=name_ar, icon=icon, position=position,
                is_active=True, created_at=now, updated_at=now,
            )  # fmt: skip
            session.add(parent)
            await session.flush()
        for child_position, (c_slug, c_en, c_ar, c_icon, topics) in enumerate(children, start=1):
            child = existing.get(c_slug)
            if child is None:
                child = Category(
                    slug=c_slug, name_en=c_en, name_ar=c_ar, icon=c_icon, parent_id=parent.id,
                    position=child_position, is_active=True, created_at=now, updated_at=now,
                )  # fmt: skip
                session.add(child)
                await session.flush()
            leaves.append((child.id, topics))
    return leaves


def _skill_row(
    rng: random.Random,
    deps: Deps,
    owner_id: int,
    category_id: int,
    topics: list[tuple[str, str, str]],
) -> dict[str, Any]:
    topic_en, topic_ar, tag = rng.choice(topics)
    audience_en, audience_ar = rng.choice(AUDIENCES)
    title_en_t, title_ar_t = rng.choice(TITLES)
    languages = rng.choice((["en", "ar"], ["en", "ar"], ["en", "ar"], ["en"], ["ar"]))
    title_en = title_en_t.format(topic=topic_en, audience=audience_en)
    title_ar = title_ar_t.format(topic=topic_ar, audience_ar=audience_ar)
    days = rng.randint(1, 30)
    description_en = (
        f"I teach {topic_en} to {audience_en}, with clear explanations, practical exercises "
        f"and feedback on your work. Each package is delivered within {days} days."
    )
    description_ar = (
        f"أُعلِّم {topic_ar} لـ{audience_ar} بشرحٍ واضح وتمارين عملية وملاحظات على عملك. "
        f"تُسلَّم كل باقة خلال {days} يومًا."
    )
    if languages == ["en"]:
        title_ar = description_ar = ""
    elif languages == ["ar"]:
        title_en = description_en = ""
    rated = rng.random() < 0.7
    rating_count = rng.randint(1, 60) if rated else 0
    created = deps.clock() - timedelta(minutes=rng.randint(0, 365 * 24 * 60))
    return {
        "owner_id": owner_id,
        "category_id": category_id,
        "title_en": title_en,
        "title_ar": title_ar,
        "description_en": description_en,
        "description_ar": description_ar,
        "price_points": rng.choice((5, 10, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200, 300, 500)),
        "level": rng.choice(LEVELS),
        "languages": languages,
        "tags": sorted({tag, rng.choice(("online", "1-on-1", "weekend", "evening", "group"))}),
        "delivery_days": days,
        "status": SkillStatus.ACTIVE,
        "rating_sum": sum(rng.randint(3, 5) for _ in range(rating_count)),
        "rating_count": rating_count,
        "orders_completed": rng.randint(0, 250) if rated else 0,
        "created_at": created,
        "updated_at": created,
    }


# Demo texts repeat (a topic, an audience, a number of days): each is normalised once.
_indexed = functools.lru_cache(maxsize=100_000)(index_text)


def _document_of(row: dict[str, Any]) -> SearchDocument:
    """As SearchDocument.of, each text normalised once per seeding."""
    return SearchDocument(
        title_en=_indexed(row["title_en"]),
        title_ar=_indexed(row["title_ar"]),
        tags=_indexed(" ".join(row["tags"])),
        body_en=_indexed(row["description_en"]),
        body_ar=_indexed(row["description_ar"]),
    )


async def seed(deps: Deps, uow: UnitOfWork, user_ids: list[int], skills: int) -> dict[str, int]:
    """Add 20 demo categories (two levels) and `skills` bilingual skills owned by `user_ids`."""
    leaves = await _categories(uow, deps)
    rng = random.Random(20_240_601 + len(user_ids))

    def rows(start: int, stop: int) -> list[dict[str, Any]]:
        made = []
        for n in range(start, stop):
            category_id, topics = leaves[n % len(leaves)]
            made.append(_skill_row(rng, deps, user_ids[n % len(user_ids)], category_id, topics))
        return made

    if deps.db.is_sqlite:
        made = 0
        while made < skills:
            batch = rows(made, min(skills, made + BATCH))
            result = await uow.session.execute(
                insert(skills_table).returning(skills_table.c.id, sort_by_parameter_order=True),
                batch,
            )
            ids = [row.id for row in result]
            documents = dict(zip(ids, map(_document_of, batch), strict=True))
            await store_fts_documents(uow.session, documents)
            made += len(batch)
    elif skills <= BATCH:
        # The search vector is computed by the INSERT itself (one row version per skill).
        batch = rows(0, skills)
        await uow.session.execute(
            insert(skills_table).values(search_vector=vector_from_params()),
            [{**row, **_document_of(row).params()} for row in batch],
        )
    else:
        await _copy(uow, skills, rows)
    return {"categories": sum(1 + len(c[4]) for c in CATEGORY_TREE), "skills": skills}


_COLUMNS = (
    "owner_id", "category_id", "title_en", "title_ar", "description_en", "description_ar",
    "price_points", "level", "languages", "tags", "delivery_days", "status", "rating_sum",
    "rating_count", "orders_completed", "created_at", "updated_at",
)  # fmt: skip
_DOCUMENT_PARTS = ("title_en", "title_ar", "tags", "body_en", "body_ar")


async def _copy(uow: UnitOfWork, skills: int, rows: Any) -> None:
    """PostgreSQL: COPY batches into a temporary table, then INSERT ... SELECT into skills."""
    driver = uow.driver
    assert driver is not None, "a PostgreSQL unit of work runs on its asyncpg connection"
    await driver.execute(
        "CREATE TEMPORARY TABLE seed_skills (LIKE skills INCLUDING DEFAULTS, doc integer)"
        " ON COMMIT DROP"
    )
    await driver.execute(
        "CREATE TEMPORARY TABLE seed_documents (doc integer PRIMARY KEY, title_en text,"
        " title_ar text, tags text, body_en text, body_ar text) ON COMMIT DROP"
    )
    await driver.execute("ALTER INDEX ix_skills_search_vector SET (fastupdate = on)")
    documents: dict[SearchDocument, int] = {}
    made = 0
    while made < skills:
        batch = rows(made, min(skills, made + COPY_BATCH))
        records = []
        new_documents = []
        for row in batch:
            document = _document_of(row)
            number = documents.get(document)
            if number is None:
                number = documents[document] = len(documents)
                new_documents.append((number, *(getattr(document, p) for p in _DOCUMENT_PARTS)))
            values = [row[c] for c in _COLUMNS]
            values[_COLUMNS.index("languages")] = json.dumps(row["languages"])
            values[_COLUMNS.index("tags")] = json.dumps(row["tags"])
            records.append((*values, number))
        if new_documents:
            await driver.copy_records_to_table(
                "seed_documents", records=new_documents, columns=["doc", *_DOCUMENT_PARTS]
            )
        await driver.copy_records_to_table(
            "seed_skills", records=records, columns=[*_COLUMNS, "doc"]
        )
        made += len(batch)
    columns = ", ".join(_COLUMNS)
    await driver.execute(
        "CREATE TEMPORARY TABLE seed_vectors ON COMMIT DROP AS"
        f" SELECT d.doc, {_vector_sql()} AS search_vector FROM seed_documents d"
    )
    await driver.execute(
        f"INSERT INTO skills ({columns}, search_vector)"
        f" SELECT {', '.join('s.' + c for c in _COLUMNS)}, v.search_vector"
        " FROM seed_skills s JOIN seed_vectors v ON v.doc = s.doc ORDER BY s.created_at"
    )
    await driver.execute("SELECT gin_clean_pending_list('ix_skills_search_vector')")
    await driver.execute("ALTER INDEX ix_skills_search_vector SET (fastupdate = off)")


def _vector_sql() -> str:
    """The SQL of search.vector_from_params over the columns of seed_documents `d`."""
    english, simple = "'english'::regconfig", "'simple'::regconfig"
    parts = [
        (english, "title_en", "A"),
        (simple, "title_ar", "A"),
        (english, "tags", "B"),
        (simple, "tags", "B"),
        (english, "body_en", "C"),
        (simple, "body_ar", "C"),
    ]
    return " || ".join(
        f"setweight(to_tsvector({config}, d.{column}), '{weight}')"
        for config, column, weight in parts
    )
