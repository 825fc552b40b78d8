"""Running the marketplace: the audit trail, reports, bans, hidden skills, paused orders

Revision ID: 0015
Revises: 0014

`admin_audit`: one row per administrator action, append-only (a trigger refuses UPDATE and
DELETE on both backends). `reports`: users' reports of skills, users, reviews and chat
messages, with at most one open report per reporter and target. Users get the `is_verified`
trust badge and `banned_at`; skills the `hidden` status and the administrator's note; orders
the `paused` status (a party was banned). The `adjustments` system account is created at -1.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOCUMENT = postgresql.JSONB(astext_type=sa.Text()).with_variant(sa.JSON(), "sqlite")
UTC_DATETIME = sa.DateTime(timezone=True)
ADJUSTMENTS = (-1, "adjustments")

ORDER_STATUSES_BEFORE = (
    "'pending', 'accepted', 'delivered', 'completed', 'rejected', 'cancelled', 'expired', "
    "'disputed', 'resolved'"
)
SKILL_STATUSES_BEFORE = "'active', 'paused', 'deleted'"

PG_REFUSE = (
    """CREATE FUNCTION admin_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'admin_audit is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$""",
    "CREATE TRIGGER admin_audit_append_only BEFORE UPDATE OR DELETE ON admin_audit"
    " FOR EACH ROW EXECUTE FUNCTION admin_audit_append_only()",
    "CREATE TRIGGER admin_audit_no_truncate BEFORE TRUNCATE ON admin_audit"
    " FOR EACH STATEMENT EXECUTE FUNCTION admin_audit_append_only()",
)
SQLITE_REFUSE = (
    "CREATE TRIGGER admin_audit_no_update BEFORE UPDATE ON admin_audit"
    " BEGIN SELECT RAISE(ABORT, 'admin_audit is append-only: UPDATE refused'); END",
    "CREATE TRIGGER admin_audit_no_delete BEFORE DELETE ON admin_audit"
    " BEGIN SELECT RAISE(ABORT, 'admin_audit is append-only: DELETE refused'); END",
)


def _status_check(table: str, values: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.drop_constraint(op.f(f"ck_{table}_status_known"), type_="check")
        batch_op.create_check_constraint(op.f(f"ck_{table}_status_known"), f"status IN ({values})")


def upgrade() -> None:
    op.create_table(
        "admin_audit",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("actor_id", BIGINT, nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target_type", sa.String(length=16), nullable=False),
        sa.Column("target_id", BIGINT, nullable=False),
        sa.Column("before", JSON_DOCUMENT, nullable=True),
        sa.Column("after", JSON_DOCUMENT, nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.CheckConstraint(
            "target_type IN ('user', 'skill', 'order', 'payment', 'report', 'category', "
            "'package', 'wallet')",
            name=op.f("ck_admin_audit_target_known"),
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_admin_audit_actor_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_audit")),
    )
    with op.batch_alter_table("admin_audit", schema=None) as batch_op:
        batch_op.create_index("ix_admin_audit_actor", ["actor_id", "id"], unique=False)
        batch_op.create_index(
            "ix_admin_audit_target", ["target_type", "target_id", "id"], unique=False
        )
    refusals = PG_REFUSE if op.get_bind().dialect.name == "postgresql" else SQLITE_REFUSE
    for statement in refusals:
        op.execute(statement)

    op.create_table(
        "reports",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("reporter_id", BIGINT, nullable=False),
        sa.Column("target_type", sa.String(length=16), nullable=False),
        sa.Column("target_id", BIGINT, nullable=False),
        sa.Column("subject_user_id", BIGINT, nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("closed_by", BIGINT, nullable=True),
        sa.Column("closed_at", UTC_DATETIME, nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.CheckConstraint(
            "target_type IN ('skill', 'user', 'review', 'message')",
            name=op.f("ck_reports_target_known"),
        ),
        sa.CheckConstraint(
            "reason IN ('spam', 'fraud', 'abuse', 'inappropriate', 'copyright', 'other')",
            name=op.f("ck_reports_reason_known"),
        ),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_reports_status_known")),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('dismissed', 'skill_hidden', 'user_banned', 'warned')",
            name=op.f("ck_reports_outcome_known"),
        ),
        sa.CheckConstraint(
            "(status = 'open' AND outcome IS NULL) OR (status = 'closed' AND outcome IS NOT NULL)",
            name=op.f("ck_reports_outcome_when_closed"),
        ),
        sa.ForeignKeyConstraint(
            ["reporter_id"], ["users.id"], name=op.f("fk_reports_reporter_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["subject_user_id"], ["users.id"], name=op.f("fk_reports_subject_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["closed_by"], ["users.id"], name=op.f("fk_reports_closed_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
    )
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.create_index("ix_reports_status_id", ["status", "id"], unique=False)
        batch_op.create_index("ix_reports_target", ["target_type", "target_id"], unique=False)
        batch_op.create_index("ix_reports_reporter", ["reporter_id", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_reports_subject_user_id"), ["subject_user_id"], unique=False
        )
        batch_op.create_index(
            "uq_reports_open_per_reporter",
            ["reporter_id", "target_type", "target_id"],
            unique=True,
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_verified", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("banned_at", UTC_DATETIME, nullable=True))
    with op.batch_alter_table("skills", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("moderation_note", sa.Text(), nullable=False, server_default="")
        )
    _status_check("skills", SKILL_STATUSES_BEFORE + ", 'hidden'")
    _status_check("orders", ORDER_STATUSES_BEFORE + ", 'paused'")

    account_id, code = ADJUSTMENTS
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
    account_id, code = ADJUSTMENTS
    used = bind.scalar(
        sa.text(
            "SELECT COUNT(*) FROM ledger_transfers"
            " WHERE debit_account_id = :id OR credit_account_id = :id"
        ),
        {"id": account_id},
    )
    if used:
        # Deleting them would unbalance the wallets: the ledger's history is not undone.
        raise RuntimeError(f"{code} has {used} transfers; the ledger cannot go back before 0015")
    op.execute(sa.text("DELETE FROM ledger_accounts WHERE id = :id").bindparams(id=account_id))
    for table, status in (("orders", "paused"), ("skills", "hidden")):
        if bind.scalar(sa.text(f"SELECT COUNT(*) FROM {table} WHERE status = :s"), {"s": status}):
            raise RuntimeError(f"{table} in status {status}: resolve them before going back")
    _status_check("orders", ORDER_STATUSES_BEFORE)
    _status_check("skills", SKILL_STATUSES_BEFORE)
    with op.batch_alter_table("skills", schema=None) as batch_op:
        batch_op.drop_column("moderation_note")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("banned_at")
        batch_op.drop_column("is_verified")
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_index("uq_reports_open_per_reporter")
        batch_op.drop_index(batch_op.f("ix_reports_subject_user_id"))
        batch_op.drop_index("ix_reports_reporter")
        batch_op.drop_index("ix_reports_target")
        batch_op.drop_index("ix_reports_status_id")
    op.drop_table("reports")
    if bind.dialect.name == "postgresql":
        op.execute("DROP TABLE admin_audit")
        op.execute("DROP FUNCTION admin_audit_append_only()")
    else:
        op.drop_table("admin_audit")  # its triggers go with it
