"""Stripe: Checkout Sessions through the `stripe` SDK, and Stripe's signed webhooks.

The SDK speaks to STRIPE_API_BASE over the process's shared httpx client (`_SharedHttpx`), so
no connection pool is opened per request and tests point it at a local fake. A webhook's
`Stripe-Signature` (`t=...,v1=...`: HMAC-SHA256 with the endpoint's secret over `t.` + the raw
body) is checked on the bytes as received, before anything is parsed, against this process's
clock (the SDK's `construct_event` reads `time.time()` and decodes the body first).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx
import stripe

from skillswap.payments.gateway import (
    Checkout,
    CheckoutRequest,
    GatewayError,
    GatewayRefund,
    Signal,
    SignalKind,
    VerifiedEvent,
    WebhookRefused,
)
from skillswap.settings import Settings

NAME = "stripe"
SIGNATURE_HEADER = "Stripe-Signature"
TIMEOUT_SECONDS = 30.0
# The events that settle, close or refund a payment; the README asks for exactly these.
SESSION_EVENTS = {
    "checkout.session.async_payment_succeeded": SignalKind.PAID,
    "checkout.session.async_payment_failed": SignalKind.FAILED,
    "checkout.session.expired": SignalKind.EXPIRED,
}
REFUND_EVENTS = ("refund.created", "refund.updated")


class _SharedHttpx(stripe.HTTPClient):
    """The SDK's async transport on a given httpx client (which its owner closes)."""

    name = "httpx"

    def __init__(self, client: httpx.AsyncClient) -> None:
        super().__init__()
        self._client = client

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        try:
            response = await self._client.request(
                method, url, headers=dict(headers), content=post_data, timeout=TIMEOUT_SECONDS
            )
        except httpx.HTTPError as exc:
            raise stripe.APIConnectionError(
                f"Stripe could not be reached: {type(exc).__name__}", should_retry=True
            ) from exc
        return response.content, response.status_code, response.headers

    async def sleep_async(self, secs: float) -> None:
        await asyncio.sleep(secs)


def configured(settings: Settings) -> bool:
    """Stripe is offered when its secret key and its webhook secret are both set."""
    return bool(settings.stripe_secret_key and settings.stripe_webhook_secret)


def verify_stripe_signature(
    body: bytes, header: str | None, secret: str, *, now: datetime, tolerance_seconds: int
) -> None:
    """Raise WebhookRefused unless some `v1` of `header` signs `t.` + `body` and `t` is recent."""
    if not header:
        raise WebhookRefused(f"no {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t" and value.isdecimal():
            timestamp = int(value)
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookRefused(f"{SIGNATURE_HEADER} has no timestamp or no v1 signature")
    expected = hmac.new(
        secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256
    ).hexdigest()
    # Every v1 is compared (Stripe sends two while an endpoint's secret is being rolled).
    if not any(hmac.compare_digest(expected, signature) for signature in signatures):
        raise WebhookRefused("no v1 signature matches the body")
    if timestamp < now.timestamp() - tolerance_seconds:
        raise WebhookRefused(f"the signature's timestamp is more than {tolerance_seconds} s old")


def _payment_id(*candidates: Any) -> int | None:
    """Our payment's id as the event names it; None if it names none, or two different ones."""
    named = {str(c) for c in candidates if isinstance(c, str | int) and str(c).isdecimal()}
    return int(named.pop()) if len(named) == 1 else None


def _id_of(value: Any) -> str | None:
    """An id field that may come expanded into its object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else None


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _currency(obj: Mapping[str, Any]) -> str | None:
    currency = obj.get("currency")
    return currency.upper() if isinstance(currency, str) else None


def _session_signal(kind: SignalKind, session: Mapping[str, Any]) -> Signal:
    amount = session.get("amount_total")
    return Signal(
        kind=kind,
        payment_id=_payment_id(
            session.get("client_reference_id"), _metadata(session).get("payment_id")
        ),
        reference=_id_of(session.get("id")),
        payment_ref=_id_of(session.get("payment_intent")),
        amount_minor=amount if isinstance(amount, int) else None,
        currency=_currency(session),
    )


def _refund_signal(refund: Mapping[str, Any], *, payment_id: int | None) -> Signal:
    if refund.get("status") != "succeeded":
        return Signal(SignalKind.IGNORED, reason=f"refund {refund.get('status')}")
    amount = refund.get("amount")
    return Signal(
        kind=SignalKind.REFUNDED,
        payment_id=payment_id,
        payment_ref=_id_of(refund.get("payment_intent")),
        currency=_currency(refund),
        refund_id=_id_of(refund.get("id")),
        refund_minor=amount if isinstance(amount, int) else None,
        reason=str(refund.get("reason") or ""),
    )


def read_stripe_event(event: Mapping[str, Any]) -> list[Signal]:
    """The signals of one Stripe event (an already verified one)."""
    kind = event.get("type")
    obj = (event.get("data") or {}).get("object") or {}
    if kind == "checkout.session.completed":
        # `unpaid`: an asynchronous method (a bank debit) is still on its way; the
        # async_payment_succeeded or _failed event that follows decides.
        if obj.get("payment_status") == "paid":
            return [_session_signal(SignalKind.PAID, obj)]
        return [Signal(SignalKind.IGNORED, reason=f"session {obj.get('payment_status')}")]
    if kind in SESSION_EVENTS:
        return [_session_signal(SESSION_EVENTS[kind], obj)]
    if kind in REFUND_EVENTS:
        return [_refund_signal(obj, payment_id=_payment_id(_metadata(obj).get("payment_id")))]
    if kind == "charge.refunded":
        # The charge lists its refunds in API versions before 2022-11-15; later ones leave
        # them out, and the refund.created / refund.updated events carry them instead.
        refunds = (obj.get("refunds") or {}).get("data")
        if not isinstance(refunds, list):
            return [Signal(SignalKind.IGNORED, reason="charge.refunded without its refunds")]
        payment_id = _payment_id(_metadata(obj).get("payment_id"))
        return [
            _refund_signal(
                {"payment_intent": obj.get("payment_intent"), **refund}, payment_id=payment_id
            )
            for refund in refunds
            if isinstance(refund, dict)
        ]
    return [Signal(SignalKind.IGNORED, reason=f"{kind} is not an event payments act on")]


def _gateway_error(exc: stripe.StripeError) -> GatewayError:
    retryable = (
        isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError | stripe.APIError)
        or (exc.http_status or 0) >= 500
    )
    return GatewayError(
        f"Stripe: {type(exc).__name__}: {exc.user_message or exc}", retryable=retryable
    )


class StripeGateway:
    """The Gateway for Stripe (see skillswap.payments.gateway)."""

    name = NAME

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.currencies = tuple(c.upper() for c in settings.stripe_currencies)
        self._webhook_secret = settings.stripe_webhook_secret
        self._tolerance = settings.stripe_webhook_tolerance_seconds
        self._client = stripe.StripeClient(
            settings.stripe_secret_key,
            base_addresses={"api": settings.stripe_api_base.rstrip("/")},
            http_client=_SharedHttpx(http),
            max_network_retries=2,
        )

    async def create_checkout(self, request: CheckoutRequest) -> Checkout:
        """A Checkout Session in payment mode for the package, naming our payment three ways."""
        payment = str(request.payment_id)
        try:
            session = await self._client.v1.checkout.sessions.create_async(
                {
                    "mode": "payment",
                    "line_items": [
                        {
                            "quantity": 1,
                            "price_data": {
                                "currency": request.currency.lower(),
                                "unit_amount": request.amount_minor,
                                "product_data": {"name": request.description},
                            },
                        }
                    ],
                    "client_reference_id": payment,
                    "metadata": {"payment_id": payment, "points": str(request.points)},
                    # Refunds and charges name the payment intent, which carries this.
                    "payment_intent_data": {"metadata": {"payment_id": payment}},
                    "customer_email": request.buyer_email,
                    "success_url": request.success_url,
                    "cancel_url": request.cancel_url,
                },
                # The same payment never opens two sessions, however often this is retried.
                {"idempotency_key": f"skillswap-payment-{payment}-checkout"},
            )
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc
        if not session.url:
            raise GatewayError("Stripe answered a session without a url", retryable=False)
        return Checkout(reference=session.id, redirect_url=session.url)

    def verify_webhook(
        self, body: bytes, headers: Mapping[str, str], *, now: datetime
    ) -> VerifiedEvent:
        verify_stripe_signature(
            body,
            headers.get(SIGNATURE_HEADER),
            self._webhook_secret,
            now=now,
            tolerance_seconds=self._tolerance,
        )
        try:
            event = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise WebhookRefused("the body is not JSON") from exc
        event_id = event.get("id") if isinstance(event, dict) else None
        event_type = event.get("type") if isinstance(event, dict) else None
        if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
            raise WebhookRefused("the body is not a Stripe event")
        return VerifiedEvent(event_id=event_id[:255], event_type=event_type[:128])

    def read_event(self, body: bytes) -> list[Signal]:
        return read_stripe_event(json.loads(body))

    async def fetch_status(self, reference: str) -> Signal:
        """The session's state: paid, expired, or still open (ignored)."""
        try:
            session = await self._client.v1.checkout.sessions.retrieve_async(reference)
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc
        found = session.to_dict()
        if found.get("status") == "complete" and found.get("payment_status") == "paid":
            return _session_signal(SignalKind.PAID, found)
        if found.get("status") == "expired":
            return _session_signal(SignalKind.EXPIRED, found)
        return Signal(SignalKind.IGNORED, reason=f"session {found.get('status')}")

    async def refund(self, payment_ref: str, amount_minor: int, *, key: str) -> GatewayRefund:
        try:
            refund = await self._client.v1.refunds.create_async(
                {"payment_intent": payment_ref, "amount": amount_minor},
                {"idempotency_key": key},
            )
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc
        return GatewayRefund(refund_id=refund.id, amount_minor=refund.amount)
