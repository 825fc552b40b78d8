"""What the unread-chat digest covered

Revision ID: 0011
Revises: 0010

`chat_members.digested_seq`: the newest message of the room a digest mail has covered (0:
none), so a message is never mailed twice; `chat_members.digested_at`: when that digest was
decided, so a member gets at most one an hour per room (skillswap.chat.digest).

What is unread when this runs counts as covered: the members heard of it by notification
already, and a deployment should not start with a burst of mails about old messages.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("chat_members", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("digested_seq", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(sa.Column("digested_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE chat_members SET digested_seq = "
        "(SELECT last_seq FROM chat_rooms WHERE chat_rooms.id = chat_members.room_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("chat_members", schema=None) as batch_op:
        batch_op.drop_column("digested_at")
        batch_op.drop_column("digested_seq")
