"""Orders of skills, paid from escrow, and the history of every transition they went through."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from skillswap.models.base import Base, BigIntPK, UTCDateTime, sql_values, utcnow


class OrderStatus(StrEnum):
    """Where an order stands; the stored value of `orders.status` and the API's `status`."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    DISPUTED = "disputed"
    RESOLVED = "resolved"
    # A party was banned: the order waits for an administrator, who resolves it (or the
    # unban resumes it in the status it had).
    PAUSED = "paused"


class OrderAction(StrEnum):
    """What moved an order: `place` creates it, `expire` only the clock takes, the rest are rules."""

    PLACE = "place"
    ACCEPT = "accept"
    REJECT = "reject"
    DELIVER = "deliver"
    CANCEL = "cancel"
    COMPLETE = "complete"
    REQUEST_CHANGES = "request_changes"
    DISPUTE = "dispute"
    RESOLVE = "resolve"
    EXPIRE = "expire"
    PAUSE = "pause"  # an administrator banned a party
    RESUME = "resume"  # ... and lifted the ban
    # Lessons (skillswap.lessons.rules): a new time proposed and accepted, the buyer not there.
    PROPOSE_TIME = "propose_time"
    ACCEPT_TIME = "accept_time"
    NO_SHOW = "no_show"


class Resolution(StrEnum):
    """How an administrator settled a dispute."""

    REFUND = "refund"
    RELEASE = "release"
    SPLIT = "split"


ORDER_STATUSES: tuple[OrderStatus, ...] = tuple(OrderStatus)
RESOLUTIONS: tuple[Resolution, ...] = tuple(Resolution)


class Order(Base):
    """A buyer's order of a seller's skill; its price waits in the hold `hold_id` until settled.

    `deadline_at` is when the current status runs out (NULL in terminal states and while a
    dispute waits for an administrator). The settlement columns say where the points went.
    """

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(
            f"status IN ({sql_values(OrderStatus)})",
            name="status_known",
        ),
        CheckConstraint("buyer_id <> seller_id", name="buyer_is_not_seller"),
        CheckConstraint("price_points > 0", name="price_positive"),
        CheckConstraint("change_requests >= 0", name="change_requests_not_negative"),
        CheckConstraint(
            f"resolution IS NULL OR resolution IN ({sql_values(Resolution)})",
            name="resolution_known",
        ),
        CheckConstraint(
            "(status = 'resolved' AND resolution IS NOT NULL)"
            " OR (status <> 'resolved' AND resolution IS NULL)",
            name="resolution_when_resolved",
        ),
        # The deadline sweeps read "orders in status S whose deadline has passed".
        Index("ix_orders_status_deadline", "status", "deadline_at"),
        Index("ix_orders_buyer_created", "buyer_id", "id"),
        Index("ix_orders_seller_created", "seller_id", "id"),
        # The statistics: orders placed per period with their parties (active users), and
        # completed ones with what completing them took and paid, read from the index alone.
        Index("ix_orders_created_parties", "created_at", "status", "buyer_id", "seller_id"),
        Index(
            "ix_orders_completed",
            "completed_at",
            "created_at",
            "seller_points",
            postgresql_where=text("completed_at IS NOT NULL"),
            sqlite_where=text("completed_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    seller_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    skill_id: Mapped[int] = mapped_column(ForeignKey("skills.id"), index=True)
    hold_id: Mapped[int] = mapped_column(ForeignKey("ledger_holds.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=OrderStatus.PENDING)
    price_points: Mapped[int] = mapped_column(BigInteger)
    requirements: Mapped[str] = mapped_column(Text, default="")
    # How many times the buyer sent a delivery back (capped by ORDER_MAX_CHANGE_REQUESTS). Only
    # `request_changes` leads from delivered back to accepted, so an accepted order with a
    # count above zero has been delivered before: its deadline disputes it instead of refunding.
    change_requests: Mapped[int] = mapped_column(Integer, default=0)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution: Mapped[str | None] = mapped_column(String(8))
    # Settlement: what the seller received, the platform fee, what went back to the buyer.
    seller_points: Mapped[int | None] = mapped_column(BigInteger)
    fee_points: Mapped[int | None] = mapped_column(BigInteger)
    refunded_points: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OrderTransition(Base):
    """One step of an order's history: who (NULL for a deadline), when, from, to, and a note."""

    __tablename__ = "order_transitions"
    __table_args__ = (
        Index("ix_order_transitions_order", "order_id", "id"),
        Index("ix_order_transitions_to_status", "to_status", "created_at"),  # disputes per period
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(20))
    from_status: Mapped[str | None] = mapped_column(String(16))  # NULL when the order was placed
    to_status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
