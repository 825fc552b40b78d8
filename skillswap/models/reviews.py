"""Double-blind reviews the two participants of a completed order write about each other."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from skillswap.models.base import Base, BigIntPK, UTCDateTime, utcnow


class Review(Base):
    """A rating (1 to 5) and comment; public once both reviewed or the review window closed.

    Visibility is decided when read, from the order's completion time and the other side's
    review, so nothing has to run when a window closes.
    """

    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint("rating >= 1 AND rating <= 5", name="rating_range"),
        CheckConstraint("reviewer_role IN ('buyer', 'seller')", name="reviewer_role_known"),
        CheckConstraint("reviewer_id <> reviewee_id", name="not_self"),
        UniqueConstraint("order_id", "reviewer_id", name="uq_reviews_order_reviewer"),
        Index("ix_reviews_reviewee", "reviewee_id", "id"),
        Index("ix_reviews_skill", "skill_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reviewee_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # The skill the order was for; a buyer's review rates it, a seller's review rates the buyer.
    skill_id: Mapped[int] = mapped_column(ForeignKey("skills.id"))
    reviewer_role: Mapped[str] = mapped_column(String(8))
    rating: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
