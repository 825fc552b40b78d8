"""Marketplace statistics: the indexes its per-period figures read, and the ledger checks kept

Revision ID: 0016
Revises: 0015

GET /api/admin/stats/ groups rows by a period of their time column over a range of it; each
index below serves one section's range scan, with the columns it reads, so that a year of a
million orders is read from the indexes alone. Partial where only some rows count (completed
orders, adjustments), so the hot inserts that do not match write nothing more. `ledger_checks`
keeps each nightly ledger check's outcome for the administrators' ledger page.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOCUMENT = postgresql.JSONB(astext_type=sa.Text()).with_variant(sa.JSON(), "sqlite")
UTC_DATETIME = sa.DateTime(timezone=True)

# (table, name, columns, partial condition or None)
INDEXES: tuple[tuple[str, str, list[str], str | None], ...] = (
    ("users", "ix_users_created_at", ["created_at"], None),
    (
        "orders",
        "ix_orders_created_parties",
        ["created_at", "status", "buyer_id", "seller_id"],
        None,
    ),
    (
        "orders",
        "ix_orders_completed",
        ["completed_at", "created_at", "seller_points"],
        "completed_at IS NOT NULL",
    ),
    ("order_transitions", "ix_order_transitions_to_status", ["to_status", "created_at"], None),
    (
        "payments",
        "ix_payments_created_at",
        ["created_at", "gateway", "status", "currency", "points", "amount_minor"],
        None,
    ),
    ("chat_messages", "ix_chat_messages_created_sender", ["created_at", "sender_id"], None),
    ("ledger_transfers", "ix_ledger_transfers_adjustments", ["created_at"], "kind = 'adjustment'"),
)


def upgrade() -> None:
    for table, name, columns, where in INDEXES:
        condition = (
            {}
            if where is None
            else {
                "postgresql_where": sa.text(where),
                "sqlite_where": sa.text(where),
            }
        )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(name, columns, unique=False, **condition)
    op.create_table(
        "ledger_checks",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("checked_at", UTC_DATETIME, nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("invariants", JSON_DOCUMENT, nullable=False),
        sa.Column("problem_count", sa.Integer(), nullable=False),
        sa.Column("problems", JSON_DOCUMENT, nullable=False),
        sa.Column("counts", JSON_DOCUMENT, nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_checks")),
    )
    with op.batch_alter_table("ledger_checks", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_checks_checked_at", ["checked_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ledger_checks", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_checks_checked_at")
    op.drop_table("ledger_checks")
    for table, name, _columns, _where in reversed(INDEXES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
