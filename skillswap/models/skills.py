"""The skills marketplace: categories (two levels), skill listings and their images."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from skillswap.models.base import Base, BigIntPK, UTCDateTime, sql_values, utcnow

# JSON lists (tags, languages) are JSONB on PostgreSQL so `@>` containment can use a GIN index.
JSONList = JSONB().with_variant(JSON(), "sqlite")
# The weighted search vector is PostgreSQL's; on SQLite the FTS5 table `skills_fts` (created by
# the migration, kept in sync by skillswap.skills.search) holds the search document instead.
SearchVector = TSVECTOR().with_variant(Text(), "sqlite")


class SkillStatus(StrEnum):
    ACTIVE = "active"  # listed, takes orders
    PAUSED = "paused"  # shown to its owner only, takes no orders
    DELETED = "deleted"  # gone for everyone (the row stays: orders refer to it)
    # Taken off the marketplace by an administrator (`moderation_note` says why): shown to its
    # owner only, takes no orders, and only an administrator puts it back.
    HIDDEN = "hidden"


class SkillLevel(StrEnum):
    BEGINNER = "beginner"
    INTERMEDIATE = "intermediate"
    ADVANCED = "advanced"
    EXPERT = "expert"


SKILL_STATUSES: tuple[SkillStatus, ...] = tuple(SkillStatus)
SKILL_LEVELS: tuple[SkillLevel, ...] = tuple(SkillLevel)

# Tables that live in the database but not in this metadata (SQLite's FTS5 index and its shadow
# tables); migrations/env.py leaves them out of autogenerate comparisons.
Base.metadata.info.setdefault("unmanaged_tables", set()).update(
    {
        "skills_fts",
        "skills_fts_data",
        "skills_fts_idx",
        "skills_fts_content",
        "skills_fts_docsize",
        "skills_fts_config",
    }
)


_ACTIVE = text("status = 'active'")
_COVERS = ("price_points", "owner_id")
_OWNER = ("owner_id",)


def _active_index(name: str, *columns: Any, covers: tuple[str, ...] = ()) -> Index:
    return Index(
        f"ix_skills_active_{name}",
        *columns,
        postgresql_include=list(covers),
        postgresql_where=_ACTIVE,
        sqlite_where=_ACTIVE,
    )


class Category(Base):
    """A marketplace category; `parent_id` makes a second level (never deeper)."""

    __tablename__ = "skill_categories"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("skill_categories.id", ondelete="RESTRICT"), index=True
    )
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    name_en: Mapped[str] = mapped_column(String(80))
    name_ar: Mapped[str] = mapped_column(String(80))
    icon: Mapped[str] = mapped_column(String(60), default="")
    position: Mapped[int] = mapped_column(Integer, default=0)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Skill(Base):
    """One listing: what its owner teaches, in English and/or Arabic, for a price in points.

    `rating_sum`, `rating_count` and `orders_completed` are changed by orders and reviews with
    atomic `UPDATE ... SET x = x + n`; the average is derived, as on User. A skill is never
    removed (orders refer to it): deleting sets `status = 'deleted'`.
    """

    __tablename__ = "skills"
    __table_args__ = (
        CheckConstraint("price_points > 0", name="price_positive"),
        CheckConstraint("delivery_days > 0", name="delivery_days_positive"),
        CheckConstraint(f"status IN ({sql_values(SkillStatus)})", name="status_known"),
        # A lesson lasts whole quarter hours, 15 minutes to 4 hours (skillswap.models.lessons).
        CheckConstraint(
            "lesson_minutes IS NULL OR (lesson_minutes BETWEEN 15 AND 240"
            " AND lesson_minutes % 15 = 0)",
            name="lesson_minutes_quarters",
        ),
        # Public pages (active skills, by each ordering, with or without a category): partial,
        # covering what a page filters on, so choosing and counting a page read the index only.
        _active_index("category_newest", "category_id", "created_at", "id", covers=_COVERS),
        _active_index("category_price", "category_id", "price_points", "id", covers=_OWNER),
        _active_index("category_popular", "category_id", "orders_completed", "id", covers=_COVERS),
        _active_index("newest", "created_at", "id", covers=_COVERS),
        _active_index("price", "price_points", "id", covers=_OWNER),
        _active_index("popular", "orders_completed", "id", covers=_COVERS),
        # fastupdate off: new listings go straight into the index instead of a pending list
        # that every search scans linearly until the next vacuum (reads outnumber writes).
        Index(
            "ix_skills_search_vector",
            "search_vector",
            postgresql_using="gin",
            postgresql_with={"fastupdate": "off"},
        ),
        Index(
            "ix_skills_tags",
            "tags",
            postgresql_using="gin",
            postgresql_ops={"tags": "jsonb_path_ops"},
            postgresql_with={"fastupdate": "off"},
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("skill_categories.id"))
    title_en: Mapped[str] = mapped_column(String(120), default="")
    title_ar: Mapped[str] = mapped_column(String(120), default="")
    description_en: Mapped[str] = mapped_column(Text, default="")
    description_ar: Mapped[str] = mapped_column(Text, default="")
    price_points: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(16))
    languages: Mapped[list[str]] = mapped_column(JSONList, default=list)
    tags: Mapped[list[str]] = mapped_column(JSONList, default=list)
    delivery_days: Mapped[int] = mapped_column(Integer)
    # Set: the skill is a lesson of this many minutes, booked at a time (skillswap.lessons).
    lesson_minutes: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=SkillStatus.ACTIVE)
    moderation_note: Mapped[str] = mapped_column(Text, default="")  # why it is hidden
    rating_sum: Mapped[int] = mapped_column(Integer, default=0)
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    orders_completed: Mapped[int] = mapped_column(Integer, default=0)
    search_vector: Mapped[Any] = mapped_column(SearchVector, nullable=True, deferred=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def rating_average(self) -> float | None:
        return round(self.rating_sum / self.rating_count, 2) if self.rating_count else None


class SkillImage(Base):
    """An image of a skill, stored through skillswap.storage under `storage_key`."""

    __tablename__ = "skill_images"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    skill_id: Mapped[int] = mapped_column(ForeignKey("skills.id", ondelete="CASCADE"), index=True)
    storage_key: Mapped[str] = mapped_column(String(200), unique=True)
    content_type: Mapped[str] = mapped_column(String(40))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
