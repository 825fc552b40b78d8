"""The skills a scheduled account deletion paused, to list again if it is called off

Revision ID: 0021
Revises: 0020

While a deletion waits out its grace period the person's active skills are paused, so they
take no new orders. Which ones it paused is kept here (the owner's own paused skills and the
hidden ones are not), so cancelling or reinstating lists exactly those again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "skills_paused_by_deletion",
        sa.Column("skill_id", BIGINT, nullable=False),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["skill_id"],
            ["skills.id"],
            name=op.f("fk_skills_paused_by_deletion_skill_id_skills"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("skill_id", name=op.f("pk_skills_paused_by_deletion")),
    )


def downgrade() -> None:
    op.drop_table("skills_paused_by_deletion")
