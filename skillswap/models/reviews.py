"""Double-blind reviews the two participants of a completed order write about each other."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from skillswap.models.base import Base, BigIntPK, UTCDateTime, sql_values, utcnow


class ReviewerRole(StrEnum):
    """Which side of the order wrote a review (the buyer's rates the skill too)."""

    BUYER = "buyer"
    SELLER = "seller"


class Review(Base):
    """A rating (1 to 5) and comment; public once both reviewed or the review window closed.

    Visibility in listings is decided when read, from the order's completion time and the other
    side's review. The public rating aggregates are another matter: a review's rating is added
    to them (and `counted_at` set, once) only when it becomes public - with the second review,
    or by `publish_due_reviews` after the window - because a hidden rating added at once could
    be worked out from the change in the reviewee's average and count.
    """

    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint("rating >= 1 AND rating <= 5", name="rating_range"),
        CheckConstraint(
            f"reviewer_role IN ({sql_values(ReviewerRole)})", name="reviewer_role_known"
        ),
        CheckConstraint("reviewer_id <> reviewee_id", name="not_self"),
        UniqueConstraint("order_id", "reviewer_id", name="uq_reviews_order_reviewer"),
        Index("ix_reviews_reviewee", "reviewee_id", "id"),
        Index("ix_reviews_skill", "skill_id", "id"),
        # The reviews still waiting to be counted: few (open windows only), swept by deadline.
        Index(
            "ix_reviews_uncounted",
            "order_id",
            postgresql_where=text("counted_at IS NULL"),
            sqlite_where=text("counted_at IS NULL"),
        ),
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
    # When the rating was added to the reviewee's (and skill's) public aggregates; NULL while
    # the review is hidden. Set by a conditional update, so a rating is counted exactly once.
    counted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReviewPairPeriod(Base):
    """The one review from `reviewer_id` about `reviewee_id` counted in the public ratings for
    the period starting on day `period_start` (days since 1970-01-01, periods of
    REVIEW_PAIR_PERIOD_DAYS): the primary key lets a second one of the same pair and period be
    stored and shown, never counted, however many count at once."""

    __tablename__ = "review_pair_periods"

    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    reviewee_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    period_start: Mapped[int] = mapped_column(Integer, primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id"), unique=True)
