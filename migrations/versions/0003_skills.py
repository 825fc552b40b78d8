"""Skills marketplace: categories, skills, images, search

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_LIST = postgresql.JSONB(astext_type=sa.Text()).with_variant(sa.JSON(), "sqlite")
SEARCH_VECTOR = postgresql.TSVECTOR().with_variant(sa.Text(), "sqlite")

# SQLite's full-text index: one row per listed skill (rowid = skills.id), maintained by the
# service. Porter stemming for English; Arabic text arrives already normalised.
SQLITE_FTS = (
    "CREATE VIRTUAL TABLE skills_fts USING fts5("
    "title, tags, body, tokenize = 'porter unicode61 remove_diacritics 2')"
)


def upgrade() -> None:
    op.create_table(
        "skill_categories",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("parent_id", BIGINT, nullable=True),
        sa.Column("slug", sa.String(length=60), nullable=False),
        sa.Column("name_en", sa.String(length=80), nullable=False),
        sa.Column("name_ar", sa.String(length=80), nullable=False),
        sa.Column("icon", sa.String(length=60), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["skill_categories.id"],
            name=op.f("fk_skill_categories_parent_id_skill_categories"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skill_categories")),
        sa.UniqueConstraint("slug", name=op.f("uq_skill_categories_slug")),
    )
    with op.batch_alter_table("skill_categories", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_skill_categories_parent_id"), ["parent_id"], unique=False
        )

    op.create_table(
        "skills",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("owner_id", BIGINT, nullable=False),
        sa.Column("category_id", BIGINT, nullable=False),
        sa.Column("title_en", sa.String(length=120), nullable=False),
        sa.Column("title_ar", sa.String(length=120), nullable=False),
        sa.Column("description_en", sa.Text(), nullable=False),
        sa.Column("description_ar", sa.Text(), nullable=False),
        sa.Column("price_points", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("languages", JSON_LIST, nullable=False),
        sa.Column("tags", JSON_LIST, nullable=False),
        sa.Column("delivery_days", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rating_sum", sa.Integer(), nullable=False),
        sa.Column("rating_count", sa.Integer(), nullable=False),
        sa.Column("orders_completed", sa.Integer(), nullable=False),
        sa.Column("search_vector", SEARCH_VECTOR, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("price_points > 0", name=op.f("ck_skills_price_positive")),
        sa.CheckConstraint("delivery_days > 0", name=op.f("ck_skills_delivery_days_positive")),
        sa.CheckConstraint(
            "status IN ('active', 'paused', 'deleted')", name=op.f("ck_skills_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["skill_categories.id"],
            name=op.f("fk_skills_category_id_skill_categories"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_skills_owner_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skills")),
    )
    with op.batch_alter_table("skills", schema=None) as batch_op:
        batch_op.create_index(
            "ix_skills_category_created", ["category_id", "created_at", "id"], unique=False
        )
        batch_op.create_index("ix_skills_created", ["created_at", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_skills_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index("ix_skills_popular", ["orders_completed", "id"], unique=False)
        batch_op.create_index("ix_skills_price", ["price_points", "id"], unique=False)
        batch_op.create_index(
            "ix_skills_search_vector",
            ["search_vector"],
            unique=False,
            postgresql_using="gin",
            postgresql_with={"fastupdate": "off"},
        )
        batch_op.create_index(
            "ix_skills_tags",
            ["tags"],
            unique=False,
            postgresql_using="gin",
            postgresql_ops={"tags": "jsonb_path_ops"},
            postgresql_with={"fastupdate": "off"},
        )

    op.create_table(
        "skill_images",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("skill_id", BIGINT, nullable=False),
        sa.Column("storage_key", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["skill_id"],
            ["skills.id"],
            name=op.f("fk_skill_images_skill_id_skills"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skill_images")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_skill_images_storage_key")),
    )
    with op.batch_alter_table("skill_images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_skill_images_skill_id"), ["skill_id"], unique=False)

    if op.get_bind().dialect.name == "sqlite":
        op.execute(SQLITE_FTS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS skills_fts")
    with op.batch_alter_table("skill_images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_skill_images_skill_id"))
    op.drop_table("skill_images")
    with op.batch_alter_table("skills", schema=None) as batch_op:
        batch_op.drop_index("ix_skills_tags", postgresql_using="gin")
        batch_op.drop_index("ix_skills_search_vector", postgresql_using="gin")
        batch_op.drop_index("ix_skills_price")
        batch_op.drop_index("ix_skills_popular")
        batch_op.drop_index(batch_op.f("ix_skills_owner_id"))
        batch_op.drop_index("ix_skills_created")
        batch_op.drop_index("ix_skills_category_created")
    op.drop_table("skills")
    with op.batch_alter_table("skill_categories", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_skill_categories_parent_id"))
    op.drop_table("skill_categories")
