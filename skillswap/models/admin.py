"""Running the marketplace: the administrators' audit trail and the users' reports.

`admin_audit` is append-only: the code has no update or delete path for it, and a database
trigger (migration 0015) refuses both, so a row once written says for ever who did what.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from skillswap.models.base import Base, BigIntPK, UTCDateTime, sql_values, utcnow
from skillswap.models.notifications import JSONDocument


class AuditTarget(StrEnum):
    """What an administrator's action was done to."""

    USER = "user"
    SKILL = "skill"
    ORDER = "order"
    PAYMENT = "payment"
    REPORT = "report"
    CATEGORY = "category"
    PACKAGE = "package"
    WALLET = "wallet"  # a ledger adjustment (target id: the user)


class AuditEntry(Base):
    """One administrator action: who, when, what, to which target, before and after, and why."""

    __tablename__ = "admin_audit"
    __table_args__ = (
        CheckConstraint(f"target_type IN ({sql_values(AuditTarget)})", name="target_known"),
        Index("ix_admin_audit_actor", "actor_id", "id"),
        Index("ix_admin_audit_target", "target_type", "target_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    actor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(40))  # e.g. "user.ban", "skill.hide"
    target_type: Mapped[str] = mapped_column(String(16))  # an AuditTarget
    target_id: Mapped[int] = mapped_column(BigIntPK)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    reason: Mapped[str] = mapped_column(Text, default="")
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReportTarget(StrEnum):
    SKILL = "skill"
    USER = "user"
    REVIEW = "review"
    MESSAGE = "message"  # a chat message


class ReportReason(StrEnum):
    SPAM = "spam"
    FRAUD = "fraud"
    ABUSE = "abuse"  # harassment, hate
    INAPPROPRIATE = "inappropriate"
    COPYRIGHT = "copyright"
    OTHER = "other"


class ReportStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class ReportOutcome(StrEnum):
    """What the administrator who closed a report did about it."""

    DISMISSED = "dismissed"  # nothing wrong
    SKILL_HIDDEN = "skill_hidden"
    USER_BANNED = "user_banned"
    WARNED = "warned"  # handled outside the product (a mail, a call)


class Report(Base):
    """A signed-in user's report of a skill, a user, a review or a chat message."""

    __tablename__ = "reports"
    __table_args__ = (
        CheckConstraint(f"target_type IN ({sql_values(ReportTarget)})", name="target_known"),
        CheckConstraint(f"reason IN ({sql_values(ReportReason)})", name="reason_known"),
        CheckConstraint(f"status IN ({sql_values(ReportStatus)})", name="status_known"),
        CheckConstraint(
            f"outcome IS NULL OR outcome IN ({sql_values(ReportOutcome)})", name="outcome_known"
        ),
        CheckConstraint(
            "(status = 'open' AND outcome IS NULL) OR (status = 'closed' AND outcome IS NOT NULL)",
            name="outcome_when_closed",
        ),
        # The queue: open reports, oldest first; and every report about one target.
        Index("ix_reports_status_id", "status", "id"),
        Index("ix_reports_target", "target_type", "target_id"),
        Index("ix_reports_reporter", "reporter_id", "id"),  # a reporter's own, newest first
        # One open report per reporter and target: reporting again while it waits changes nothing.
        Index(
            "uq_reports_open_per_reporter",
            "reporter_id",
            "target_type",
            "target_id",
            unique=True,
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    reporter_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    target_type: Mapped[str] = mapped_column(String(16))  # a ReportTarget
    target_id: Mapped[int] = mapped_column(BigIntPK)
    # The user the report is about (the skill's owner, the message's sender...), for the
    # "reports against them" on a user's page.
    subject_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    reason: Mapped[str] = mapped_column(String(16))  # a ReportReason
    detail: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(8), default=ReportStatus.OPEN)
    outcome: Mapped[str | None] = mapped_column(String(16))  # a ReportOutcome, once closed
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text, default="")  # the administrator's, on closing
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerCheck(Base):
    """One run of the scheduler's nightly ledger check: when, whether every invariant held, and
    what broke (at most 20 violations named per invariant, as `skillswap ledger check` lists
    them), for the administrators' ledger page. Rows are only ever added; the newest is the
    last check."""

    __tablename__ = "ledger_checks"
    __table_args__ = (Index("ix_ledger_checks_checked_at", "checked_at", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    passed: Mapped[bool] = mapped_column(Boolean)
    invariants: Mapped[list[str]] = mapped_column(JSONDocument)  # the names checked
    problem_count: Mapped[int] = mapped_column(Integer, default=0)
    problems: Mapped[list[dict[str, str]]] = mapped_column(JSONDocument)  # {invariant, detail}
    counts: Mapped[dict[str, int]] = mapped_column(JSONDocument)  # rows per ledger table
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
