"""Demo categories and bilingual skills for `skillswap seed-demo` (bulk inserts, search indexed)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from skillswap.db import UnitOfWork
from skillswap.models import Category
from skillswap.models.skills import SkillLevel, SkillStatus
from skillswap.skills.queries import skills as skills_table
from skillswap.skills.search import SearchDocument, store_fts_documents, vector_from_params

if TYPE_CHECKING:
    from skillswap.deps import Deps

BATCH = 1000

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


async def seed(deps: Deps, uow: UnitOfWork, user_ids: list[int], skills: int) -> dict[str, int]:
    """Add 20 demo categories (two levels) and `skills` bilingual skills owned by `user_ids`."""
    leaves = await _categories(uow, deps)
    rng = random.Random(20_240_601 + len(user_ids))
    dialect = "sqlite" if deps.db.is_sqlite else "postgresql"
    table = skills_table
    made = 0
    while made < skills:
        rows = []
        for n in range(made, min(skills, made + BATCH)):
            category_id, topics = leaves[n % len(leaves)]
            rows.append(_skill_row(rng, deps, user_ids[n % len(user_ids)], category_id, topics))
        documents = [
            SearchDocument.of(
                title_en=row["title_en"],
                title_ar=row["title_ar"],
                tags=row["tags"],
                description_en=row["description_en"],
                description_ar=row["description_ar"],
            )
            for row in rows
        ]
        if dialect == "postgresql":
            # The search vector is computed by the INSERT itself (one row version per skill).
            await uow.session.execute(
                insert(table).values(search_vector=vector_from_params()),
                [{**row, **doc.params()} for row, doc in zip(rows, documents, strict=True)],
            )
        else:
            result = await uow.session.execute(
                insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
            )
            ids = [row.id for row in result]
            await store_fts_documents(uow.session, dict(zip(ids, documents, strict=True)))
        made += len(rows)
    return {"categories": sum(1 + len(c[4]) for c in CATEGORY_TREE), "skills": made}
