"""Payments: a purchase of points through a gateway, the gateway's events, and its refunds.

A payment is created `pending` with the amount, currency and points it was created for; only a
gateway's confirmation that matches them moves it to `succeeded` (and credits the points, in the
same transaction). Its status only moves forward (`PAYMENT_MOVES_FORWARD`): every change is a
conditional update from the statuses it may leave. A gateway's event is stored once under
UNIQUE (gateway, event_id), whatever the number of times it is delivered.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from skillswap.models.base import Base, BigIntPK, UTCDateTime, sql_values, utcnow

JSONDocument = JSONB().with_variant(JSON(), "sqlite")


class PaymentStatus(StrEnum):
    PENDING = "pending"  # created, the buyer is at the gateway's checkout
    SUCCEEDED = "succeeded"  # the gateway confirmed it; the points were credited
    FAILED = "failed"  # declined, or the confirmation did not match the payment
    CANCELLED = "cancelled"  # the buyer or the gateway gave it up
    EXPIRED = "expired"  # the checkout ran out before it was paid
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


# Where each status may go: nothing ever moves back to `pending` or out of a closed payment.
PAYMENT_MOVES_FORWARD: dict[PaymentStatus, tuple[PaymentStatus, ...]] = {
    PaymentStatus.PENDING: (
        PaymentStatus.SUCCEEDED,
        PaymentStatus.FAILED,
        PaymentStatus.CANCELLED,
        PaymentStatus.EXPIRED,
    ),
    PaymentStatus.SUCCEEDED: (PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED),
    PaymentStatus.PARTIALLY_REFUNDED: (
        PaymentStatus.PARTIALLY_REFUNDED,
        PaymentStatus.REFUNDED,
    ),
    PaymentStatus.FAILED: (),
    PaymentStatus.CANCELLED: (),
    PaymentStatus.EXPIRED: (),
    PaymentStatus.REFUNDED: (),
}


class PaymentEventOutcome(StrEnum):
    """What processing a stored event did (None on the row: not processed yet)."""

    CREDITED = "credited"  # it settled the payment and credited the points
    CLOSED = "closed"  # it moved the payment to failed, cancelled or expired
    REFUNDED = "refunded"  # it reversed (part of) the points of a refund
    MISMATCH = "mismatch"  # its amount, currency or reference differ from the payment's
    ALREADY_SETTLED = "already_settled"  # the payment had left `pending` already
    UNKNOWN_PAYMENT = "unknown_payment"  # it names no payment of ours
    IGNORED = "ignored"  # a kind of event that changes nothing here


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_values(PaymentStatus)})", name="status_known"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint(
            "refunded_minor >= 0 AND refunded_minor <= amount_minor", name="refund_within_amount"
        ),
        CheckConstraint(
            "(status IN ('pending', 'failed', 'cancelled', 'expired')) = (settled_at IS NULL)",
            name="settled_when_paid",
        ),
        # A user's history, newest first.
        Index("ix_payments_user_created", "user_id", "id"),
        # Reconciliation's question: which payments are still pending, oldest first.
        Index("ix_payments_status_created", "status", "created_at"),
        # The gateway's checkout (Stripe's session), unique per gateway once it is known.
        UniqueConstraint("gateway", "reference", name="uq_payments_gateway_reference"),
        # Refund events name the gateway's payment (Stripe's payment intent), not the checkout.
        Index("ix_payments_gateway_payment_ref", "gateway", "gateway_payment_ref"),
        # Attempts, successes, points bought and revenue per period (the statistics), read
        # from the index alone.
        Index(
            "ix_payments_created_at",
            "created_at",
            "gateway",
            "status",
            "currency",
            "points",
            "amount_minor",
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # The package bought; the payment keeps its own copy of points and price, so a package
    # changed or deleted later changes nothing about what was paid for.
    package_id: Mapped[int | None] = mapped_column(
        ForeignKey("points_packages.id", ondelete="SET NULL")
    )
    gateway: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(20), default=PaymentStatus.PENDING)
    points: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))  # ISO 4217, upper case
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    reference: Mapped[str | None] = mapped_column(String(255))  # the gateway's checkout id
    gateway_payment_ref: Mapped[str | None] = mapped_column(String(255))  # its payment's id
    redirect_url: Mapped[str | None] = mapped_column(Text)
    # Why it failed, or what did not match in a confirmation that was refused.
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PaymentEvent(Base):
    """A gateway's notification, stored as received (after its signature was checked)."""

    __tablename__ = "payment_events"
    __table_args__ = (
        UniqueConstraint("gateway", "event_id", name="uq_payment_events_gateway_event_id"),
        Index("ix_payment_events_payment", "payment_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    gateway: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(128))
    body: Mapped[bytes] = mapped_column(LargeBinary)  # the raw bytes the signature covers
    headers: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    outcome: Mapped[str | None] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PaymentRefund(Base):
    """One refund of (part of) a payment, and the points it took back from the wallet.

    `points_unrecovered` are points the refund should have taken back but the buyer had
    already spent: the wallet never goes below zero.
    """

    __tablename__ = "payment_refunds"
    __table_args__ = (
        UniqueConstraint(
            "payment_id", "gateway_refund_id", name="uq_payment_refunds_payment_refund"
        ),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("points_reversed >= 0", name="points_reversed_not_negative"),
        CheckConstraint("points_unrecovered >= 0", name="points_unrecovered_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"))
    gateway_refund_id: Mapped[str] = mapped_column(String(255))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    points_reversed: Mapped[int] = mapped_column(Integer, default=0)
    points_unrecovered: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
