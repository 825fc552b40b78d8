"""The transactional outbox: work that must follow a commit, written in the same transaction.

A row is the source of truth for one piece of background work (a mail, a push, a webhook to
process). The broker only carries the row's id; a row is done when its task reports success,
and a row claimed but not finished within its lease is published again.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from skillswap.models.base import Base, BigIntPK, UTCDateTime, sql_values, utcnow

JSONDocument = JSONB().with_variant(JSON(), "sqlite")


class OutboxStatus(StrEnum):
    PENDING = "pending"  # waiting for its available_at, then for a relay to claim it
    RUNNING = "running"  # claimed and published; done or retried before leased_until
    DONE = "done"
    FAILED = "failed"  # dead letter: out of attempts, or failed for good; last_error says why


class OutboxRow(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_values(OutboxStatus)})", name="status"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        # The relay's question, "which pending rows are due", and the lease sweep's, "which
        # running rows outlived their lease", both start from the status.
        Index("ix_outbox_status_available_at", "status", "available_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))  # which handler runs it ("mail.verify", ...)
    # The domain key: the same work enqueued twice (a retried request) is one row.
    key: Mapped[str] = mapped_column(String(255), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # claims so far
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
