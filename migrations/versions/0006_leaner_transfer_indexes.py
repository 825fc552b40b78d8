"""Leaner ledger_transfers indexes: none by account, references indexed only when set

Revision ID: 0006
Revises: 0005

Every index on ledger_transfers is written by the service's hottest insert. Transfers are never
looked up by their accounts (a wallet's history reads ledger_entries), and most transfers carry
at most one of order, payment and hold, so those three are indexed only where they are set.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFERENCES = ("order_id", "payment_id", "hold_id")


def upgrade() -> None:
    op.drop_index("ix_ledger_transfers_debit_account_id", table_name="ledger_transfers")
    op.drop_index("ix_ledger_transfers_credit_account_id", table_name="ledger_transfers")
    for column in REFERENCES:
        op.drop_index(f"ix_ledger_transfers_{column}", table_name="ledger_transfers")
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            f"ix_ledger_transfers_{column}",
            "ledger_transfers",
            [column],
            postgresql_where=where,
            sqlite_where=where,
        )


def downgrade() -> None:
    for column in REFERENCES:
        op.drop_index(f"ix_ledger_transfers_{column}", table_name="ledger_transfers")
        op.create_index(f"ix_ledger_transfers_{column}", "ledger_transfers", [column])
    op.create_index("ix_ledger_transfers_credit_account_id", "ledger_transfers", ["credit_account_id"])
    op.create_index("ix_ledger_transfers_debit_account_id", "ledger_transfers", ["debit_account_id"])
