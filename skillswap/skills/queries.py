"""The read side of listings: lean Core selects (one join for the owner, one for the category)
and the JSON shape of a skill in the reader's language.

List pages never load ORM objects: rows come straight from a Core `select` of the columns a
response shows, so a page costs the same few queries whatever its size. A row may be a
SQLAlchemy row or a mapping of the same names (a page read straight from asyncpg), and its images
are `ImageTuple`s: (id, storage key, content type, width, height).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import JSON, ColumnElement, Row, Select, Table, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from skillswap.i18n import in_language
from skillswap.models import Category, Skill, SkillImage, User
from skillswap.storage import Storage

skills = cast(Table, Skill.__table__)
users = cast(Table, User.__table__)
categories = cast(Table, Category.__table__)
images = cast(Table, SkillImage.__table__)

AnyRow = Row[*tuple[Any, ...]]

Executor = AsyncSession | AsyncConnection
ImageTuple = tuple[int, str, str, int, int]

SKILL_COLUMNS = (
    skills.c.id,
    skills.c.owner_id,
    skills.c.category_id,
    skills.c.title_en,
    skills.c.title_ar,
    skills.c.description_en,
    skills.c.description_ar,
    skills.c.price_points,
    skills.c.level,
    skills.c.languages,
    skills.c.tags,
    skills.c.delivery_days,
    skills.c.lesson_minutes,
    skills.c.status,
    skills.c.moderation_note,
    skills.c.rating_sum,
    skills.c.rating_count,
    skills.c.orders_completed,
    skills.c.created_at,
    skills.c.updated_at,
    users.c.username.label("owner_username"),
    users.c.display_name.label("owner_display_name"),
    users.c.avatar_url.label("owner_avatar_url"),
    users.c.is_verified.label("owner_is_verified"),
    users.c.rating_sum.label("owner_rating_sum"),
    users.c.rating_count.label("owner_rating_count"),
    users.c.is_active.label("owner_is_active"),
    categories.c.slug.label("category_slug"),
    categories.c.name_en.label("category_name_en"),
    categories.c.name_ar.label("category_name_ar"),
    categories.c.parent_id.label("category_parent_id"),
)


def skill_select() -> Select[Any]:
    """Skills with their owner's public fields and their category, ready to filter."""
    return select(*SKILL_COLUMNS).select_from(
        skills.join(users, users.c.id == skills.c.owner_id).join(
            categories, categories.c.id == skills.c.category_id
        )
    )


def images_json(dialect: str) -> ColumnElement[Any]:
    """A skill's images as one JSON array of [id, key, type, width, height, position] arrays,
    to select beside the skill itself (a page and its images in one statement); `image_tuples`
    puts them in display order."""
    build, gather = (
        (func.json_build_array, func.json_agg)
        if dialect == "postgresql"
        else (func.json_array, func.json_group_array)
    )
    element = build(
        images.c.id,
        images.c.storage_key,
        images.c.content_type,
        images.c.width,
        images.c.height,
        images.c.position,
    )
    return type_coerce(
        select(gather(element)).where(images.c.skill_id == skills.c.id).scalar_subquery(), JSON
    )


def image_tuples(value: Any) -> list[ImageTuple]:
    """The images selected by `images_json` (None or a list), in display order."""
    if not value:
        return []
    ordered = sorted(value, key=lambda image: (image[5], image[0]))
    return [(image[0], image[1], image[2], image[3], image[4]) for image in ordered]


async def fetch_images(executor: Executor, skill_ids: Sequence[int]) -> dict[int, list[ImageTuple]]:
    """The images of several skills in one query, in their display order."""
    found: dict[int, list[ImageTuple]] = defaultdict(list)
    if not skill_ids:
        return found
    result = await executor.execute(
        select(
            images.c.id,
            images.c.skill_id,
            images.c.storage_key,
            images.c.content_type,
            images.c.width,
            images.c.height,
        )
        .where(images.c.skill_id.in_(skill_ids))
        .order_by(images.c.skill_id, images.c.position, images.c.id)
    )
    for row in result:
        found[row.skill_id].append(
            (row.id, row.storage_key, row.content_type, row.width, row.height)
        )
    return found


async def fetch_skill(executor: Executor, skill_id: int) -> tuple[AnyRow, list[ImageTuple]] | None:
    """One skill (whatever its status) with its images, or None."""
    row = (await executor.execute(skill_select().where(skills.c.id == skill_id))).first()
    if row is None:
        return None
    return row, (await fetch_images(executor, [skill_id])).get(skill_id, [])


def _average(total: int, count: int) -> float | None:
    return round(total / count, 2) if count else None


def skill_view(
    record: AnyRow | Mapping[str, Any],
    skill_images: Iterable[ImageTuple],
    *,
    locale: str,
    storage: Storage,
) -> dict[str, Any]:
    """A skill as the API shows it: text in `locale` (else the other language), the owner's
    public profile only (never email, phone, balance or anything private)."""
    row: Any = record._mapping if isinstance(record, Row) else record
    title, language = in_language(row["title_en"], row["title_ar"], locale)
    description, _ = in_language(row["description_en"], row["description_ar"], locale)
    return {
        "id": row["id"],
        "title": title,
        "description": description,
        "language": language,
        "title_en": row["title_en"],
        "title_ar": row["title_ar"],
        "description_en": row["description_en"],
        "description_ar": row["description_ar"],
        "category": {
            "id": row["category_id"],
            "slug": row["category_slug"],
            "name": row["category_name_ar"] if locale == "ar" else row["category_name_en"],
            "parent_id": row["category_parent_id"],
        },
        "price_points": row["price_points"],
        "level": row["level"],
        "languages": row["languages"],
        "tags": row["tags"],
        "delivery_days": row["delivery_days"],
        # A lesson of this many minutes, booked at a time (None: a piece of work delivered).
        "lesson_minutes": row["lesson_minutes"],
        "status": row["status"],
        # Why an administrator hid it (only its owner and administrators see a hidden skill).
        "moderation_note": row["moderation_note"] if row["status"] == "hidden" else None,
        "rating_average": _average(row["rating_sum"], row["rating_count"]),
        "rating_count": row["rating_count"],
        "orders_completed": row["orders_completed"],
        "images": [
            {
                "id": image_id,
                "url": storage.url(key),
                "content_type": content_type,
                "width": width,
                "height": height,
            }
            for image_id, key, content_type, width, height in skill_images
        ],
        "owner": {
            "id": row["owner_id"],
            "username": row["owner_username"],
            "display_name": row["owner_display_name"],
            "avatar_url": row["owner_avatar_url"],
            "is_verified": row["owner_is_verified"],
            "rating_average": _average(row["owner_rating_sum"], row["owner_rating_count"]),
            "rating_count": row["owner_rating_count"],
        },
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
