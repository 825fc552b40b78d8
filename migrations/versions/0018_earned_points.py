"""Points are earned: the addresses that had the signup bonus, the review pairs counted per period

Revision ID: 0018
Revises: 0017

`signup_bonus_claims` keeps, for ever and without a foreign key, a keyed hash of each email
address that had the signup bonus, so that no address has it twice (see
skillswap/points/signup_bonus.py). `review_pair_periods` holds the one review from a person about
another counted in the public ratings per period. Reviews already counted are entered here,
the first of each pair and period (periods of REVIEW_PAIR_PERIOD_DAYS as the environment says),
so the ratings they are in stay as they are and later ones are measured against them.
"""

import os
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def upgrade() -> None:
    op.create_table(
        "signup_bonus_claims",
        sa.Column("email_digest", sa.String(length=64), nullable=False),
        sa.Column("user_id", BIGINT, nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("email_digest", name=op.f("pk_signup_bonus_claims")),
    )
    op.create_table(
        "review_pair_periods",
        sa.Column("reviewer_id", BIGINT, nullable=False),
        sa.Column("reviewee_id", BIGINT, nullable=False),
        sa.Column("period_start", sa.Integer(), nullable=False),
        sa.Column("review_id", BIGINT, nullable=False),
        sa.ForeignKeyConstraint(
            ["reviewee_id"],
            ["users.id"],
            name=op.f("fk_review_pair_periods_reviewee_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"],
            ["users.id"],
            name=op.f("fk_review_pair_periods_reviewer_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["review_id"],
            ["reviews.id"],
            name=op.f("fk_review_pair_periods_review_id_reviews"),
        ),
        sa.PrimaryKeyConstraint(
            "reviewer_id", "reviewee_id", "period_start", name=op.f("pk_review_pair_periods")
        ),
        sa.UniqueConstraint("review_id", name=op.f("uq_review_pair_periods_review_id")),
    )
    _enter_counted_reviews()


def _enter_counted_reviews() -> None:
    days = int(os.environ.get("REVIEW_PAIR_PERIOD_DAYS") or 30)
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT id, reviewer_id, reviewee_id, created_at FROM reviews"
            " WHERE counted_at IS NOT NULL ORDER BY id"
        )
    ).all()
    seen: set[tuple[int, int, int]] = set()
    entries = []
    for review_id, reviewer_id, reviewee_id, created_at in rows:
        if isinstance(created_at, str):  # SQLite hands back text when read without the model
            created_at = datetime.fromisoformat(created_at)
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)
        day = (created_at - EPOCH).days
        key = (reviewer_id, reviewee_id, day - day % days)
        if key not in seen:
            seen.add(key)
            entries.append(
                {
                    "reviewer_id": reviewer_id,
                    "reviewee_id": reviewee_id,
                    "period_start": key[2],
                    "review_id": review_id,
                }
            )
    if entries:
        table = sa.table(
            "review_pair_periods",
            sa.column("reviewer_id"),
            sa.column("reviewee_id"),
            sa.column("period_start"),
            sa.column("review_id"),
        )
        op.bulk_insert(table, entries)


def downgrade() -> None:
    op.drop_table("review_pair_periods")
    op.drop_table("signup_bonus_claims")
