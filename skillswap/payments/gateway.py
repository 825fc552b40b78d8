"""What every payment gateway adapter does, in the gateway-neutral terms the services use.

An adapter is a thin client of one gateway's HTTP API: it opens a checkout, checks a webhook's
signature on the raw bytes and reads the event into `Signal`s, asks for a checkout's state
(reconciliation) and refunds. It never touches the database or the ledger: the payment state
machine lives in `skillswap.payments.services`, and takes the signals as claims to be checked
against what the payment stored at creation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class SignalKind(StrEnum):
    PAID = "paid"  # the money was taken: credit (once the amount matches)
    FAILED = "failed"  # declined
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REFUNDED = "refunded"  # a refund of part or all of it succeeded at the gateway
    # The buyer approved; the money is taken only when the gateway is asked (PayPal's capture):
    # the worker asks `fetch_status`, and applies what it answers instead.
    APPROVED = "approved"
    IGNORED = "ignored"  # an event that changes nothing here (a session still open, ...)


@dataclass(frozen=True)
class Signal:
    """One thing an event (or a status query) says about one payment."""

    kind: SignalKind
    payment_id: int | None = None  # the payment the gateway was told about, if it says
    reference: str | None = None  # the checkout's id (what `Checkout.reference` was)
    payment_ref: str | None = None  # the gateway's payment (Stripe's payment intent)
    amount_minor: int | None = None
    currency: str | None = None  # upper case
    refund_id: str | None = None
    refund_minor: int | None = None  # this refund's amount
    reason: str = ""


@dataclass(frozen=True)
class VerifiedEvent:
    """A webhook whose signature holds: its id (the unit of deduplication) and type."""

    event_id: str
    event_type: str


@dataclass(frozen=True)
class CheckoutRequest:
    payment_id: int
    amount_minor: int
    currency: str  # upper case
    points: int
    description: str  # what the buyer sees on the checkout page
    buyer_email: str
    success_url: str
    cancel_url: str
    # The buyer's profile, for gateways that ask who pays (Paymob's billing data).
    buyer_name: str = ""
    buyer_phone: str = ""


@dataclass(frozen=True)
class Checkout:
    reference: str  # the gateway's id of the checkout
    redirect_url: str  # where the buyer goes to pay


@dataclass(frozen=True)
class GatewayRefund:
    refund_id: str
    amount_minor: int


class WebhookRefused(Exception):
    """The webhook is not the gateway's (bad or missing signature, stale, malformed)."""


class GatewayError(Exception):
    """The gateway could not be reached or refused the request; `retryable` if worth a retry."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        self.retryable = retryable
        super().__init__(message)


class Gateway(Protocol):
    """One payment gateway (Stripe now; PayPal and Paymob behind the same five methods)."""

    name: str
    currencies: tuple[str, ...]  # what it takes; empty: any

    async def create_checkout(self, request: CheckoutRequest) -> Checkout:
        """Open the gateway's checkout for a new payment (idempotent on the payment)."""
        ...

    def verify_webhook(
        self, body: bytes, headers: Mapping[str, str], *, now: datetime
    ) -> VerifiedEvent | Awaitable[VerifiedEvent]:
        """Check the notification is the gateway's, on the raw bytes, before reading anything.

        A signature checked here answers at once; a gateway that must be asked whether the
        notification is its own (PayPal) answers an awaitable.
        """
        ...

    def read_event(self, body: bytes) -> list[Signal]:
        """What a stored (already verified) event says, payment by payment."""
        ...

    async def fetch_status(self, reference: str) -> Signal:
        """Ask the gateway how a checkout stands (for payments left pending)."""
        ...

    async def refund(self, payment_ref: str, amount_minor: int, *, key: str) -> GatewayRefund:
        """Refund `amount_minor` of a paid payment (idempotent on `key`)."""
        ...
