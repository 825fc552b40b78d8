"""The points ledger (accounts, transfers, entries, holds) and the points packages for sale.

The database itself refuses what must never happen: a transfer of nothing, a user wallet whose
available balance goes below zero, a hold resolved twice (its status leaves `pending` once, by
a conditional update). `skillswap ledger check` verifies the invariants that span rows.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from skillswap.models.base import Base, BigIntPK, UTCDateTime, sql_values, utcnow


class AccountKind(StrEnum):
    """A user's wallet, or one of the platform's own accounts."""

    USER = "user"
    SYSTEM = "system"


class TransferStatus(StrEnum):
    POSTED = "posted"  # its two entries are written
    REJECTED = "rejected"  # refused (kept so that retrying its key replays the refusal)


class HoldStatus(StrEnum):
    PENDING = "pending"  # the points are reserved
    POSTED = "posted"  # paid out (all or part of it)
    VOIDED = "voided"  # given back
    REJECTED = "rejected"  # refused for lack of points


ACCOUNT_KINDS: tuple[AccountKind, ...] = tuple(AccountKind)
TRANSFER_STATUSES: tuple[TransferStatus, ...] = tuple(TransferStatus)
HOLD_STATUSES: tuple[HoldStatus, ...] = tuple(HoldStatus)


class LedgerAccount(Base):
    """A user's wallet or one of the system accounts; `balance` is the sum of its entries.

    `held` is what pending holds reserve on a wallet: available = balance - held. System
    accounts (where bonuses and purchased points come from, escrow, fees) may go negative, so
    that the sum of every balance is exactly zero.
    """

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint(f"kind IN ({sql_values(AccountKind)})", name="kind_known"),
        CheckConstraint(
            "(kind = 'user' AND user_id IS NOT NULL AND code IS NULL)"
            " OR (kind = 'system' AND user_id IS NULL AND code IS NOT NULL)",
            name="owner_matches_kind",
        ),
        CheckConstraint("held >= 0", name="held_not_negative"),
        CheckConstraint("kind = 'user' OR held = 0", name="system_accounts_hold_nothing"),
        CheckConstraint("kind = 'system' OR balance - held >= 0", name="wallet_not_overdrawn"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), unique=True)
    code: Mapped[str | None] = mapped_column(String(32), unique=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerHold(Base):
    """Points reserved on a wallet (escrow): later posted or voided, exactly once.

    A hold refused for lack of points is kept as `rejected` so that retrying its key replays
    the refusal instead of trying again.
    """

    __tablename__ = "ledger_holds"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(f"status IN ({sql_values(HoldStatus)})", name="status_known"),
        CheckConstraint(
            "(status = 'pending' AND resolved_at IS NULL)"
            " OR (status <> 'pending' AND resolved_at IS NOT NULL)",
            name="resolved_when_not_pending",
        ),
        CheckConstraint(
            "(status = 'posted' AND posted_amount > 0 AND posted_amount <= amount)"
            " OR (status <> 'posted' AND posted_amount IS NULL)",
            name="posted_amount_when_posted",
        ),
        CheckConstraint(
            "(status = 'rejected' AND shortfall > 0) OR (status <> 'rejected' AND shortfall IS NULL)",
            name="shortfall_when_rejected",
        ),
        Index("ix_ledger_holds_account_status", "account_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10), default=HoldStatus.PENDING)
    posted_amount: Mapped[int | None] = mapped_column(BigInteger)
    shortfall: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LedgerTransfer(Base):
    """One movement of a positive whole amount from one account to another.

    A `posted` transfer has exactly two entries (−amount on the debit account, +amount on the
    credit account); a `rejected` one has none and records why and by how much it fell short.
    """

    __tablename__ = "ledger_transfers"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="distinct_accounts"),
        CheckConstraint(f"status IN ({sql_values(TransferStatus)})", name="status_known"),
        CheckConstraint(
            "(status = 'posted' AND failure_code IS NULL AND shortfall IS NULL)"
            " OR (status = 'rejected' AND failure_code IS NOT NULL AND shortfall > 0)",
            name="failure_when_rejected",
        ),
        # Only transfers that have a reference are indexed by it: every index is written on
        # the hottest insert of the service, and most transfers reference one thing at most.
        # Transfers are never looked up by account (statements read entries for that).
        *(
            Index(
                f"ix_ledger_transfers_{column}",
                column,
                postgresql_where=text(f"{column} IS NOT NULL"),
                sqlite_where=text(f"{column} IS NOT NULL"),
            )
            for column in ("order_id", "payment_id", "hold_id")
        ),
        # Adjustments per period (the statistics); the other kinds write nothing to it.
        Index(
            "ix_ledger_transfers_adjustments",
            "created_at",
            postgresql_where=text("kind = 'adjustment'"),
            sqlite_where=text("kind = 'adjustment'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(10))
    debit_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    credit_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    # References: the order it settles, the payment that bought the points (payments are a
    # later capability, so no foreign key yet), the hold it posts.
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    payment_id: Mapped[int | None] = mapped_column(BigInteger)
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_holds.id"))
    failure_code: Mapped[str | None] = mapped_column(String(32))
    shortfall: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerEntry(Base):
    """One side of a posted transfer on one account, with the account's balance after it."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        UniqueConstraint("transfer_id", "account_id", name="uq_ledger_entries_transfer_account"),
        # A wallet's statement, newest first.
        Index("ix_ledger_entries_account", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("ledger_transfers.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)  # signed: credit > 0, debit < 0
    balance_after: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PointsPackage(Base):
    """A bundle of points for sale, named in both languages; the price is in minor units.

    `price_minor`/`currency` is the default price; `extra_prices` are the package's prices in
    other currencies (never in the default's own currency: see skillswap.payments.packages).
    """

    __tablename__ = "points_packages"
    __table_args__ = (
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("price_minor > 0", name="price_positive"),
        Index("ix_points_packages_listing", "is_active", "sort_order", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name_en: Mapped[str] = mapped_column(String(80))
    name_ar: Mapped[str] = mapped_column(String(80))
    points: Mapped[int] = mapped_column(Integer)
    price_minor: Mapped[int] = mapped_column(Integer)  # cents, piastres, fils...
    currency: Mapped[str] = mapped_column(String(3))  # ISO 4217, upper case
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Loaded with the package wherever it is read: a package is never shown without its prices.
    extra_prices: Mapped[list[PointsPackagePrice]] = relationship(
        lazy="selectin",
        cascade="all, delete-orphan",
        order_by="PointsPackagePrice.currency",
    )


CURRENCY_CHECK = "length(currency) = 3 AND upper(currency) = currency AND " + " AND ".join(
    f"lower(substr(currency, {i}, 1)) <> substr(currency, {i}, 1)" for i in (1, 2, 3)
)


class PointsPackagePrice(Base):
    """A package's price in one more currency, in that currency's minor units."""

    __tablename__ = "points_package_prices"
    __table_args__ = (
        UniqueConstraint("package_id", "currency", name="uq_points_package_prices_currency"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        # Three capital letters, said in SQL both backends speak (no regular expressions).
        CheckConstraint(CURRENCY_CHECK, name="currency_iso_4217"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("points_packages.id", ondelete="CASCADE"))
    currency: Mapped[str] = mapped_column(String(3))  # ISO 4217, upper case
    amount_minor: Mapped[int] = mapped_column(Integer)
