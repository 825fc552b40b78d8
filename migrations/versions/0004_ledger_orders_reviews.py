"""Ledger, escrowed orders and reviews

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (id, code) of the ledger's system accounts; the ids are part of the ledger's contract.
SYSTEM_ACCOUNTS = [
    (1, "signup_bonus"),
    (2, "purchased_points"),
    (3, "escrow"),
    (4, "platform_fees"),
]


def upgrade() -> None:
    op.create_table('points_packages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name_en', sa.String(length=80), nullable=False),
    sa.Column('name_ar', sa.String(length=80), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('price_minor', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('sort_order', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('points > 0', name=op.f('ck_points_packages_points_positive')),
    sa.CheckConstraint('price_minor > 0', name=op.f('ck_points_packages_price_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_packages'))
    )
    op.create_index('ix_points_packages_listing', 'points_packages', ['is_active', 'sort_order', 'id'], unique=False)
    op.create_table('ledger_accounts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('code', sa.String(length=32), nullable=True),
    sa.Column('balance', sa.BigInteger(), nullable=False),
    sa.Column('held', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(kind = 'user' AND user_id IS NOT NULL AND code IS NULL) OR (kind = 'system' AND user_id IS NULL AND code IS NOT NULL)", name=op.f('ck_ledger_accounts_owner_matches_kind')),
    sa.CheckConstraint("kind = 'system' OR balance - held >= 0", name=op.f('ck_ledger_accounts_wallet_not_overdrawn')),
    sa.CheckConstraint("kind = 'user' OR held = 0", name=op.f('ck_ledger_accounts_system_accounts_hold_nothing')),
    sa.CheckConstraint("kind IN ('user', 'system')", name=op.f('ck_ledger_accounts_kind_known')),
    sa.CheckConstraint('held >= 0', name=op.f('ck_ledger_accounts_held_not_negative')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_ledger_accounts_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_accounts')),
    sa.UniqueConstraint('code', name=op.f('uq_ledger_accounts_code')),
    sa.UniqueConstraint('user_id', name=op.f('uq_ledger_accounts_user_id'))
    )
    # The system accounts, at fixed ids the ledger code refers to (skillswap/ledger/accounts.py).
    accounts = sa.table(
        "ledger_accounts",
        sa.column("id", sa.BigInteger()),
        sa.column("kind", sa.String()),
        sa.column("code", sa.String()),
        sa.column("balance", sa.BigInteger()),
        sa.column("held", sa.BigInteger()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        accounts,
        [
            {"id": account_id, "kind": "system", "code": code, "balance": 0, "held": 0, "created_at": now}
            for account_id, code in SYSTEM_ACCOUNTS
        ],
    )
    if op.get_bind().dialect.name == "postgresql":
        # Explicit ids do not advance the sequence; wallets must be numbered after them.
        op.execute(
            "SELECT setval(pg_get_serial_sequence('ledger_accounts', 'id'), "
            "(SELECT MAX(id) FROM ledger_accounts))"
        )
    op.create_table('ledger_holds',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('posted_amount', sa.BigInteger(), nullable=True),
    sa.Column('shortfall', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(status = 'pending' AND resolved_at IS NULL) OR (status <> 'pending' AND resolved_at IS NOT NULL)", name=op.f('ck_ledger_holds_resolved_when_not_pending')),
    sa.CheckConstraint("(status = 'posted' AND posted_amount > 0 AND posted_amount <= amount) OR (status <> 'posted' AND posted_amount IS NULL)", name=op.f('ck_ledger_holds_posted_amount_when_posted')),
    sa.CheckConstraint("(status = 'rejected' AND shortfall > 0) OR (status <> 'rejected' AND shortfall IS NULL)", name=op.f('ck_ledger_holds_shortfall_when_rejected')),
    sa.CheckConstraint("status IN ('pending', 'posted', 'voided', 'rejected')", name=op.f('ck_ledger_holds_status_known')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_ledger_holds_amount_positive')),
    sa.ForeignKeyConstraint(['account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_holds_account_id_ledger_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_holds')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_ledger_holds_idempotency_key'))
    )
    op.create_index('ix_ledger_holds_account_status', 'ledger_holds', ['account_id', 'status'], unique=False)
    op.create_table('orders',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('buyer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('seller_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('skill_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('hold_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('price_points', sa.BigInteger(), nullable=False),
    sa.Column('requirements', sa.Text(), nullable=False),
    sa.Column('change_requests', sa.Integer(), nullable=False),
    sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution', sa.String(length=8), nullable=True),
    sa.Column('seller_points', sa.BigInteger(), nullable=True),
    sa.Column('fee_points', sa.BigInteger(), nullable=True),
    sa.Column('refunded_points', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(status = 'resolved' AND resolution IS NOT NULL) OR (status <> 'resolved' AND resolution IS NULL)", name=op.f('ck_orders_resolution_when_resolved')),
    sa.CheckConstraint("resolution IS NULL OR resolution IN ('refund', 'release', 'split')", name=op.f('ck_orders_resolution_known')),
    sa.CheckConstraint("status IN ('pending', 'accepted', 'delivered', 'completed', 'rejected', 'cancelled', 'expired', 'disputed', 'resolved')", name=op.f('ck_orders_status_known')),
    sa.CheckConstraint('buyer_id <> seller_id', name=op.f('ck_orders_buyer_is_not_seller')),
    sa.CheckConstraint('price_points > 0', name=op.f('ck_orders_price_positive')),
    sa.CheckConstraint('change_requests >= 0', name=op.f('ck_orders_change_requests_not_negative')),
    sa.ForeignKeyConstraint(['buyer_id'], ['users.id'], name=op.f('fk_orders_buyer_id_users')),
    sa.ForeignKeyConstraint(['hold_id'], ['ledger_holds.id'], name=op.f('fk_orders_hold_id_ledger_holds')),
    sa.ForeignKeyConstraint(['seller_id'], ['users.id'], name=op.f('fk_orders_seller_id_users')),
    sa.ForeignKeyConstraint(['skill_id'], ['skills.id'], name=op.f('fk_orders_skill_id_skills')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('hold_id', name=op.f('uq_orders_hold_id'))
    )
    op.create_index('ix_orders_buyer_created', 'orders', ['buyer_id', 'id'], unique=False)
    op.create_index('ix_orders_seller_created', 'orders', ['seller_id', 'id'], unique=False)
    op.create_index(op.f('ix_orders_skill_id'), 'orders', ['skill_id'], unique=False)
    op.create_index('ix_orders_status_deadline', 'orders', ['status', 'deadline_at'], unique=False)
    op.create_table('ledger_transfers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('debit_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('credit_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('payment_id', sa.BigInteger(), nullable=True),
    sa.Column('hold_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('failure_code', sa.String(length=32), nullable=True),
    sa.Column('shortfall', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(status = 'posted' AND failure_code IS NULL AND shortfall IS NULL) OR (status = 'rejected' AND failure_code IS NOT NULL AND shortfall > 0)", name=op.f('ck_ledger_transfers_failure_when_rejected')),
    sa.CheckConstraint("status IN ('posted', 'rejected')", name=op.f('ck_ledger_transfers_status_known')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_ledger_transfers_amount_positive')),
    sa.CheckConstraint('debit_account_id <> credit_account_id', name=op.f('ck_ledger_transfers_distinct_accounts')),
    sa.ForeignKeyConstraint(['credit_account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_transfers_credit_account_id_ledger_accounts')),
    sa.ForeignKeyConstraint(['debit_account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_transfers_debit_account_id_ledger_accounts')),
    sa.ForeignKeyConstraint(['hold_id'], ['ledger_holds.id'], name=op.f('fk_ledger_transfers_hold_id_ledger_holds')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_ledger_transfers_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_transfers')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_ledger_transfers_idempotency_key'))
    )
    op.create_index(op.f('ix_ledger_transfers_credit_account_id'), 'ledger_transfers', ['credit_account_id'], unique=False)
    op.create_index(op.f('ix_ledger_transfers_debit_account_id'), 'ledger_transfers', ['debit_account_id'], unique=False)
    op.create_index(op.f('ix_ledger_transfers_hold_id'), 'ledger_transfers', ['hold_id'], unique=False)
    op.create_index(op.f('ix_ledger_transfers_order_id'), 'ledger_transfers', ['order_id'], unique=False)
    op.create_index(op.f('ix_ledger_transfers_payment_id'), 'ledger_transfers', ['payment_id'], unique=False)
    op.create_table('order_transitions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('actor_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_order_transitions_actor_id_users')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_transitions_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_transitions'))
    )
    op.create_index('ix_order_transitions_order', 'order_transitions', ['order_id', 'id'], unique=False)
    op.create_table('reviews',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reviewer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reviewee_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('skill_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reviewer_role', sa.String(length=8), nullable=False),
    sa.Column('rating', sa.SmallInteger(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('counted_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("reviewer_role IN ('buyer', 'seller')", name=op.f('ck_reviews_reviewer_role_known')),
    sa.CheckConstraint('rating >= 1 AND rating <= 5', name=op.f('ck_reviews_rating_range')),
    sa.CheckConstraint('reviewer_id <> reviewee_id', name=op.f('ck_reviews_not_self')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_reviews_order_id_orders')),
    sa.ForeignKeyConstraint(['reviewee_id'], ['users.id'], name=op.f('fk_reviews_reviewee_id_users')),
    sa.ForeignKeyConstraint(['reviewer_id'], ['users.id'], name=op.f('fk_reviews_reviewer_id_users')),
    sa.ForeignKeyConstraint(['skill_id'], ['skills.id'], name=op.f('fk_reviews_skill_id_skills')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reviews')),
    sa.UniqueConstraint('order_id', 'reviewer_id', name='uq_reviews_order_reviewer')
    )
    op.create_index('ix_reviews_reviewee', 'reviews', ['reviewee_id', 'id'], unique=False)
    op.create_index('ix_reviews_skill', 'reviews', ['skill_id', 'id'], unique=False)
    op.create_index('ix_reviews_uncounted', 'reviews', ['order_id'], unique=False, postgresql_where=sa.text('counted_at IS NULL'), sqlite_where=sa.text('counted_at IS NULL'))
    op.create_table('ledger_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('transfer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('balance_after', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount <> 0', name=op.f('ck_ledger_entries_amount_not_zero')),
    sa.ForeignKeyConstraint(['account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_entries_account_id_ledger_accounts')),
    sa.ForeignKeyConstraint(['transfer_id'], ['ledger_transfers.id'], name=op.f('fk_ledger_entries_transfer_id_ledger_transfers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries')),
    sa.UniqueConstraint('transfer_id', 'account_id', name='uq_ledger_entries_transfer_account')
    )
    op.create_index('ix_ledger_entries_account', 'ledger_entries', ['account_id', 'id'], unique=False)


def downgrade() -> None:
    for table in (
        "reviews",
        "order_transitions",
        "ledger_entries",
        "ledger_transfers",
        "orders",
        "ledger_holds",
        "ledger_accounts",
        "points_packages",
    ):
        op.drop_table(table)
