"""Lessons on a calendar: skills taught at a booked time, availability, reminders, feeds

Revision ID: 0022
Revises: 0021

A skill with `lesson_minutes` is a lesson. `lesson_availability` holds a teacher's weekly hours
in their zone; `lessons` when each lesson order takes place; `lesson_slot_claims` the quarter
hours each takes, keyed by teacher and quarter so that no two lessons share one;
`lesson_reminders` the reminders sent (once each); `calendar_feeds` the key of each person's
iCalendar feed. `users.timezone` is the zone a person's times are shown in.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0022"
down_revision: str | Sequence[str] | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calendar_feeds",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_calendar_feeds_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_calendar_feeds")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_calendar_feeds_key_hash")),
    )
    op.create_table(
        "lesson_availability",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("weekly", sa.JSON(), nullable=False),
        sa.Column("exceptions", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_lesson_availability_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_lesson_availability")),
    )
    op.create_table(
        "lesson_reminders",
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("offset_seconds", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_lesson_reminders_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_lesson_reminders_user_id_users")
        ),
        sa.PrimaryKeyConstraint(
            "order_id", "user_id", "offset_seconds", name=op.f("pk_lesson_reminders")
        ),
    )
    op.create_table(
        "lesson_slot_claims",
        sa.Column(
            "seller_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("quarter_starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_lesson_slot_claims_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["users.id"], name=op.f("fk_lesson_slot_claims_seller_id_users")
        ),
        sa.PrimaryKeyConstraint(
            "seller_id", "quarter_starts_at", name=op.f("pk_lesson_slot_claims")
        ),
    )
    with op.batch_alter_table("lesson_slot_claims", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lesson_slot_claims_order_id"), ["order_id"], unique=False
        )

    op.create_table(
        "lessons",
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "seller_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("buyer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("proposed_starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "proposed_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("call_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("call_ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("timed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["buyer_id"], ["users.id"], name=op.f("fk_lessons_buyer_id_users")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_lessons_order_id_orders"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["proposed_by"], ["users.id"], name=op.f("fk_lessons_proposed_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["users.id"], name=op.f("fk_lessons_seller_id_users")
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_lessons")),
    )
    with op.batch_alter_table("lessons", schema=None) as batch_op:
        batch_op.create_index("ix_lessons_buyer_starts", ["buyer_id", "starts_at"], unique=False)
        batch_op.create_index("ix_lessons_seller_starts", ["seller_id", "starts_at"], unique=False)
        batch_op.create_index("ix_lessons_starts", ["starts_at"], unique=False)

    with op.batch_alter_table("skills", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lesson_minutes", sa.Integer(), nullable=True))
        batch_op.create_check_constraint(
            op.f("ck_skills_lesson_minutes_quarters"),
            "lesson_minutes IS NULL OR (lesson_minutes BETWEEN 15 AND 240"
            " AND lesson_minutes % 15 = 0)",
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("timezone", sa.String(length=64), nullable=False, server_default="UTC")
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("timezone")

    with op.batch_alter_table("skills", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_skills_lesson_minutes_quarters"), type_="check")
        batch_op.drop_column("lesson_minutes")

    with op.batch_alter_table("lessons", schema=None) as batch_op:
        batch_op.drop_index("ix_lessons_starts")
        batch_op.drop_index("ix_lessons_seller_starts")
        batch_op.drop_index("ix_lessons_buyer_starts")

    op.drop_table("lessons")
    with op.batch_alter_table("lesson_slot_claims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lesson_slot_claims_order_id"))

    op.drop_table("lesson_slot_claims")
    op.drop_table("lesson_reminders")
    op.drop_table("lesson_availability")
    op.drop_table("calendar_feeds")
