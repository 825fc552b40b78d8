"""The marketplace statistics' daily rollup of closed days

Revision ID: 0017
Revises: 0016

`stats_days` keeps, per closed UTC day, what GET /api/admin/stats/ would otherwise count over
a year of orders, payments and messages on every request: users signed up, orders placed,
completed and disputed, points earned, payments by gateway and currency, messages, the day's active users (a bitmap of ids) and its completion durations (sorted);
`stats_day_completions` the orders completed on a day by the day they were placed. The
scheduler fills them, up to the first closed day with a payment still pending; today (and any
day not rolled up yet) is read live.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOCUMENT = postgresql.JSONB(astext_type=sa.Text()).with_variant(sa.JSON(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "stats_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("new_users", sa.Integer(), nullable=False),
        sa.Column("placed", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("earned", sa.BigInteger(), nullable=False),
        sa.Column("disputed", sa.Integer(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("payments", JSON_DOCUMENT, nullable=False),
        sa.Column("active_users", sa.LargeBinary(), nullable=False),
        sa.Column("durations", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_stats_days")),
    )
    op.create_table(
        "stats_day_completions",
        sa.Column("completed_day", sa.Date(), nullable=False),
        sa.Column("placed_day", sa.Date(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "completed_day", "placed_day", name=op.f("pk_stats_day_completions")
        ),
    )
    with op.batch_alter_table("stats_day_completions", schema=None) as batch_op:
        batch_op.create_index("ix_stats_day_completions_placed", ["placed_day"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("stats_day_completions", schema=None) as batch_op:
        batch_op.drop_index("ix_stats_day_completions_placed")
    op.drop_table("stats_day_completions")
    op.drop_table("stats_days")
