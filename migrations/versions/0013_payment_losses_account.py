"""The payment losses system account

Revision ID: 0013
Revises: 0012

A refund takes back the points a payment credited; what the buyer had already spent cannot be
taken from the wallet, and is moved from `payment_losses` to `purchased_points` instead, so
that `purchased_points` only counts points paid for and the losses show on an account of their
own. It is created at id 0: ids from 5 on are wallets already (see SystemAccount).
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAYMENT_LOSSES = (0, "payment_losses")

accounts = sa.table(
    "ledger_accounts",
    sa.column("id", sa.BigInteger()),
    sa.column("kind", sa.String()),
    sa.column("code", sa.String()),
    sa.column("balance", sa.BigInteger()),
    sa.column("held", sa.BigInteger()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    account_id, code = PAYMENT_LOSSES
    op.bulk_insert(
        accounts,
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
    account_id, code = PAYMENT_LOSSES
    used = op.get_bind().scalar(
        sa.text(
            "SELECT COUNT(*) FROM ledger_transfers"
            " WHERE debit_account_id = :id OR credit_account_id = :id"
        ),
        {"id": account_id},
    )
    if used:
        # Deleting them would unbalance purchased_points: the ledger's history is not undone.
        raise RuntimeError(f"{code} has {used} transfers; the ledger cannot go back before 0013")
    op.execute(sa.text("DELETE FROM ledger_accounts WHERE id = :id").bindparams(id=account_id))
