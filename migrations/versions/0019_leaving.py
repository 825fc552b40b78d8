"""People leave: account deletion, copies of one's data, the forfeited points account

Revision ID: 0019
Revises: 0018

`users` gets when a deletion was asked for, when it is due and when it was carried out (the
row stays as a tombstone). `data_exports` holds the copies of their data people asked for. The
`forfeited` system account, at -2 (see SystemAccount), receives what is left in an erased
account's wallet.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
FORFEITED = (-2, "forfeited")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("deletion_requested_at", sa.DateTime(timezone=True)))
        batch_op.add_column(sa.Column("deletion_scheduled_for", sa.DateTime(timezone=True)))
        batch_op.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True)))
        batch_op.create_index(
            "ix_users_deletion_scheduled_for", ["deletion_scheduled_for"], unique=False
        )
    op.create_table(
        "data_exports",
        sa.Column("id", BIGINT, autoincrement=True, nullable=False),
        sa.Column("user_id", BIGINT, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("file_key", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('building', 'ready', 'used', 'expired')",
            name=op.f("ck_data_exports_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_data_exports_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_exports")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_data_exports_token_hash")),
    )
    op.create_index(
        "ix_data_exports_user_created", "data_exports", ["user_id", "created_at"], unique=False
    )
    op.create_index(
        "ix_data_exports_status_expires", "data_exports", ["status", "expires_at"], unique=False
    )
    account_id, code = FORFEITED
    op.bulk_insert(
        sa.table(
            "ledger_accounts",
            sa.column("id", sa.BigInteger()),
            sa.column("kind", sa.String()),
            sa.column("code", sa.String()),
            sa.column("balance", sa.BigInteger()),
            sa.column("held", sa.BigInteger()),
            sa.column("created_at", sa.DateTime(timezone=True)),
        ),
        [
            {
                "id": account_id,
                "kind": "system",
                "code": code,
                "balance": 0,
                "held": 0,
                "created_at": datetime.now(UTC),
            }
        ],
    )


def downgrade() -> None:
    bind = op.get_bind()
    account_id, code = FORFEITED
    used = bind.scalar(
        sa.text(
            "SELECT COUNT(*) FROM ledger_transfers"
            " WHERE debit_account_id = :id OR credit_account_id = :id"
        ),
        {"id": account_id},
    )
    if used:
        # The wallets it emptied would be short: the ledger's history is not undone.
        raise RuntimeError(f"{code} has {used} transfers; the ledger cannot go back before 0019")
    op.execute(sa.text("DELETE FROM ledger_accounts WHERE id = :id").bindparams(id=account_id))
    op.drop_index("ix_data_exports_status_expires", table_name="data_exports")
    op.drop_index("ix_data_exports_user_created", table_name="data_exports")
    op.drop_table("data_exports")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_index("ix_users_deletion_scheduled_for")
        batch_op.drop_column("deleted_at")
        batch_op.drop_column("deletion_scheduled_for")
        batch_op.drop_column("deletion_requested_at")
