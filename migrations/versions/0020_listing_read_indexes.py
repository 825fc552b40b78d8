"""Listing reads whose cost does not grow with the table: partial indexes for public pages

Revision ID: 0020
Revises: 0019

Public pages show only active skills of active owners, so every index that serves them is
partial (`WHERE status = 'active'`) and carries in its leaf what the page filters on
(`price_points`, `owner_id`: PostgreSQL's INCLUDE), so that choosing a page and counting it are
index-only scans. One index per ordering, with and without the category in front (the rating
order, an average, has none: it sorts the matching rows). Banned owners are few: a partial index
on `users (id) WHERE NOT is_active` lets a page leave their skills out with one hashed look-up
instead of a join per row. The four general indexes these replace are dropped.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = sa.text("status = 'active'")
# name, key columns, covered columns (PostgreSQL only)
INDEXES: list[tuple[str, list[str], list[str]]] = [
    ("ix_skills_active_category_newest", ["category_id", "created_at", "id"], ["price_points", "owner_id"]),
    ("ix_skills_active_category_price", ["category_id", "price_points", "id"], ["owner_id"]),
    ("ix_skills_active_category_popular", ["category_id", "orders_completed", "id"], ["price_points", "owner_id"]),
    ("ix_skills_active_newest", ["created_at", "id"], ["price_points", "owner_id"]),
    ("ix_skills_active_price", ["price_points", "id"], ["owner_id"]),
    ("ix_skills_active_popular", ["orders_completed", "id"], ["price_points", "owner_id"]),
]  # fmt: skip
OLD: list[tuple[str, list[str]]] = [
    ("ix_skills_category_created", ["category_id", "created_at", "id"]),
    ("ix_skills_created", ["created_at", "id"]),
    ("ix_skills_price", ["price_points", "id"]),
    ("ix_skills_popular", ["orders_completed", "id"]),
]


def upgrade() -> None:
    for name, columns, covered in INDEXES:
        op.create_index(
            name,
            "skills",
            columns,
            postgresql_include=covered,
            postgresql_where=ACTIVE,
            sqlite_where=ACTIVE,
        )
    op.create_index(
        "ix_users_banned",
        "users",
        ["id"],
        postgresql_where=sa.text("NOT is_active"),
        sqlite_where=sa.text("NOT is_active"),
    )
    for name, _columns in OLD:
        op.drop_index(name, table_name="skills")


def downgrade() -> None:
    for name, columns in OLD:
        op.create_index(name, "skills", columns)
    op.drop_index("ix_users_banned", table_name="users")
    for name, _columns, _covered in reversed(INDEXES):
        op.drop_index(name, table_name="skills")
