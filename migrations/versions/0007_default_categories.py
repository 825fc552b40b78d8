"""Default categories: a fresh install can list its first skill without an administrator

Revision ID: 0007
Revises: 0006

A small bilingual (English and Arabic) set of top-level categories. Administrators edit,
reorder, deactivate or extend them like any other; `skillswap seed-demo` adds its demo
subcategories under the ones with the same slugs. The rows are written out here rather than
imported from the application, so this revision inserts the same rows whatever the code
becomes later.

Downgrading removes only the rows this revision made and nobody has touched since: a default
that an administrator renamed, moved, reordered or deactivated, that has subcategories, or
that a skill is listed in, stays.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# slug, English name, Arabic name, icon; the position is the place in this list (from 1).
DEFAULT_CATEGORIES: list[tuple[str, str, str, str]] = [
    ("programming", "Programming", "البرمجة", "code"),
    ("languages", "Languages", "اللغات", "translate"),
    ("music", "Music", "الموسيقى", "music"),
    ("design", "Design", "التصميم", "brush"),
    ("business", "Business", "الأعمال", "briefcase"),
    ("cooking", "Cooking", "الطبخ", "chef-hat"),
    ("fitness", "Fitness and health", "اللياقة والصحة", "heart"),
    ("tutoring", "School tutoring", "الدروس المدرسية", "school"),
]

categories = sa.table(
    "skill_categories",
    sa.column("id", sa.BigInteger()),
    sa.column("parent_id", sa.BigInteger()),
    sa.column("slug", sa.String()),
    sa.column("name_en", sa.String()),
    sa.column("name_ar", sa.String()),
    sa.column("icon", sa.String()),
    sa.column("position", sa.Integer()),
    sa.column("is_active", sa.Boolean()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
skills = sa.table("skills", sa.column("category_id", sa.BigInteger()))


def upgrade() -> None:
    connection = op.get_bind()
    taken = set(
        connection.scalars(
            sa.select(categories.c.slug).where(
                categories.c.slug.in_([slug for slug, *_ in DEFAULT_CATEGORIES])
            )
        )
    )
    now = datetime.now(UTC)
    if connection.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # as the models store it there (UTCDateTime)
    rows = [
        {
            "parent_id": None,
            "slug": slug,
            "name_en": name_en,
            "name_ar": name_ar,
            "icon": icon,
            "position": position,
            "is_active": True,
            "created_at": now,
            "updated_at": now,
        }
        for position, (slug, name_en, name_ar, icon) in enumerate(DEFAULT_CATEGORIES, start=1)
        # An installation that already made a category with one of these slugs keeps its own.
        if slug not in taken
    ]
    if rows:
        op.bulk_insert(categories, rows)


def downgrade() -> None:
    connection = op.get_bind()
    child = categories.alias("child")
    for position, (slug, name_en, name_ar, icon) in enumerate(DEFAULT_CATEGORIES, start=1):
        connection.execute(
            sa.delete(categories).where(
                categories.c.slug == slug,
                categories.c.parent_id.is_(None),
                categories.c.name_en == name_en,
                categories.c.name_ar == name_ar,
                categories.c.icon == icon,
                categories.c.position == position,
                categories.c.is_active.is_(True),
                ~sa.exists().where(skills.c.category_id == categories.c.id),
                ~sa.exists().where(child.c.parent_id == categories.c.id),
            )
        )
