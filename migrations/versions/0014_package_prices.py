"""Points packages priced in several currencies

Revision ID: 0014
Revises: 0013

`points_package_prices`: a package's price in a currency other than its default one
(`points_packages.price_minor`/`currency` stays the default), at most one per currency.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Three capital letters, in SQL both backends speak (as the model says).
CURRENCY_CHECK = "length(currency) = 3 AND upper(currency) = currency AND " + " AND ".join(
    f"lower(substr(currency, {i}, 1)) <> substr(currency, {i}, 1)" for i in (1, 2, 3)
)


def upgrade() -> None:
    op.create_table(
        "points_package_prices",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("package_id", BIGINT, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "amount_minor > 0", name=op.f("ck_points_package_prices_amount_positive")
        ),
        sa.CheckConstraint(CURRENCY_CHECK, name=op.f("ck_points_package_prices_currency_iso_4217")),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["points_packages.id"],
            name=op.f("fk_points_package_prices_package_id_points_packages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_package_prices")),
        sa.UniqueConstraint("package_id", "currency", name="uq_points_package_prices_currency"),
    )


def downgrade() -> None:
    op.drop_table("points_package_prices")
