"""Accounts: users, refresh-token families, single-use tokens."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from skillswap.models.base import Base, BigIntPK, UTCDateTime, sql_values, utcnow


class TokenPurpose(StrEnum):
    """What an emailed one-time code is for."""

    VERIFY_EMAIL = "verify_email"
    PASSWORD_RESET = "password_reset"


class User(Base):
    __tablename__ = "users"
    # New users per period (the statistics).
    __table_args__ = (
        Index("ix_users_created_at", "created_at"),
        # Banned accounts are few: public listings leave out their skills with one look-up here.
        Index(
            "ix_users_banned",
            "id",
            postgresql_where=text("NOT is_active"),
            sqlite_where=text("NOT is_active"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-cased
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    username: Mapped[str] = mapped_column(String(32))
    username_key: Mapped[str] = mapped_column(String(32), unique=True)  # lower-cased, for lookups
    password_hash: Mapped[str | None] = mapped_column(
        String(255)
    )  # None: signs in with Google only
    display_name: Mapped[str] = mapped_column(String(80), default="")
    bio: Mapped[str] = mapped_column(Text, default="")
    avatar_url: Mapped[str] = mapped_column(String(500), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    locale: Mapped[str] = mapped_column(String(8), default="en")
    # An IANA zone: the times of their lessons, reminders and calendar are shown in it.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)  # False: banned
    # The trust badge on the public profile, given by an administrator (not the email check).
    is_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    banned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    google_sub: Mapped[str | None] = mapped_column(String(255), unique=True)
    # Ratings are kept as an exact sum and count, updated atomically; the average is derived.
    rating_sum: Mapped[int] = mapped_column(Integer, default=0)
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Leaving (skillswap.accounts.deletion): asked for, erased on `deletion_scheduled_for` by the
    # scheduler unless cancelled; `deleted_at` marks the tombstone the erasure leaves.
    deletion_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deletion_scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def rating_average(self) -> float | None:
        return round(self.rating_sum / self.rating_count, 2) if self.rating_count else None

    @property
    def is_deleted(self) -> bool:
        """An erased account: a tombstone that keeps others' orders, reviews and chat whole."""
        return self.deleted_at is not None


class RefreshToken(Base):
    """One issued refresh token; rotation links tokens of one sign-in into a family."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family", "family_id"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OneTimeToken(Base):
    """Email-verification and password-reset tokens: single use, expiring, stored hashed."""

    __tablename__ = "one_time_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(32))  # a TokenPurpose
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SignupBonusClaim(Base):
    """An email address that has had the signup bonus, for ever, as a keyed hash of its
    normalised form (skillswap.points.signup_bonus): a second account with the address, after
    the first is gone or under a gmail dot/+tag variant, finds it and gets no second bonus.

    No foreign key to users, on purpose: the claim outlives the account that made it.
    """

    __tablename__ = "signup_bonus_claims"

    email_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigIntPK)  # the account that had the bonus
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExportStatus(StrEnum):
    """Where a copy of one's data stands."""

    BUILDING = "building"  # asked for; the worker is making the zip
    READY = "ready"  # mailed; the link works once, until `expires_at`
    USED = "used"  # downloaded (the file is gone)
    EXPIRED = "expired"  # not downloaded in time (the file is gone)


class DataExport(Base):
    """A copy of a user's data: a zip in storage under `file_key`, fetched once through a
    mailed link whose token is stored hashed (`token_hash`, set when the zip is ready)."""

    __tablename__ = "data_exports"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_values(ExportStatus)})", name="status_known"),
        # One a day: the user's latest export is what the next request is measured against.
        Index("ix_data_exports_user_created", "user_id", "created_at"),
        # The sweep's question: which ready exports ran out.
        Index("ix_data_exports_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=ExportStatus.BUILDING)
    file_key: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
