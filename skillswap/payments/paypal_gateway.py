"""PayPal: Orders v2 (intent CAPTURE) over plain httpx, and webhooks PayPal itself verifies.

Every call carries an OAuth2 client-credentials token, kept until shortly before it expires.
An order names our payment in `custom_id` and its amount as a decimal string; it is opened and
captured with a `PayPal-Request-Id`, so a retry never opens two orders or takes the money
twice, and a capture answered `ORDER_ALREADY_CAPTURED` is read back as the success it is. A
webhook is verified by `POST /v1/notifications/verify-webhook-signature` with its transmission
headers and the event exactly as received: the raw body is spliced into the request, since
PayPal checks a CRC of the bytes it sent and a re-serialised event fails.
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import httpx

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
from skillswap.payments.packages import price_text
from skillswap.settings import Settings

NAME = "paypal"
RETURN_PATH = "/api/payments/paypal/return/"  # PayPal sends the buyer here with ?token=ORDER
TIMEOUT_SECONDS = 30.0
TOKEN_REFRESH_MARGIN_SECONDS = 300  # a cached token is renewed this long before it expires
# The transmission headers the verification is asked about, by the field PayPal names them.
TRANSMISSION_HEADERS = {
    "auth_algo": "PAYPAL-AUTH-ALGO",
    "cert_url": "PAYPAL-CERT-URL",
    "transmission_id": "PAYPAL-TRANSMISSION-ID",
    "transmission_sig": "PAYPAL-TRANSMISSION-SIG",
    "transmission_time": "PAYPAL-TRANSMISSION-TIME",
}
CAPTURE_EVENTS = {
    "PAYMENT.CAPTURE.COMPLETED": SignalKind.PAID,
    "PAYMENT.CAPTURE.DENIED": SignalKind.FAILED,
    "PAYMENT.CAPTURE.DECLINED": SignalKind.FAILED,
}
CAPTURE_STATUSES = {
    "COMPLETED": SignalKind.PAID,
    # A refunded capture was paid first; its refunds come as their own events.
    "PARTIALLY_REFUNDED": SignalKind.PAID,
    "REFUNDED": SignalKind.PAID,
    "DECLINED": SignalKind.FAILED,
    "FAILED": SignalKind.FAILED,
}


@dataclass(frozen=True)
class _Token:
    value: str
    renew_at: float  # time.monotonic()


# Adapters are made per use (skillswap.payments.gateways), the token is the process's: kept
# with the process's httpx client it was fetched through, and gone with it.
_tokens: weakref.WeakKeyDictionary[httpx.AsyncClient, dict[tuple[str, str], _Token]] = (
    weakref.WeakKeyDictionary()
)


def configured(settings: Settings) -> bool:
    """PayPal is offered when its client id and secret and its webhook's id are all set."""
    return bool(
        settings.paypal_client_id and settings.paypal_client_secret and settings.paypal_webhook_id
    )


def return_url(settings: Settings) -> str:
    """Where PayPal sends the buyer after approving (our capture endpoint)."""
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    return base.rstrip("/") + RETURN_PATH


def minor_units(value: Any, currency: str | None) -> int | None:
    """A PayPal amount ("9.99") in minor units; None when it is not an amount of `currency`."""
    if not isinstance(value, str) or currency is None:
        return None
    try:
        amount = Decimal(value)
        # The currency's minor unit, as `price_text` writes it ("0.01", "0.001", "1").
        unit = Decimal(price_text(1, currency))
    except InvalidOperation:
        return None
    minor = amount / unit
    return int(minor) if minor == minor.to_integral_value() and minor > 0 else None


def _amount(obj: Mapping[str, Any]) -> tuple[int | None, str | None]:
    amount = obj.get("amount")
    if not isinstance(amount, dict):
        return None, None
    currency = amount.get("currency_code")
    currency = currency.upper() if isinstance(currency, str) else None
    return minor_units(amount.get("value"), currency), currency


def _payment_id(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.isdecimal() else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _link(obj: Mapping[str, Any], *rels: str) -> str | None:
    """The first HATEOAS link of `obj` with one of `rels`, in their order."""
    links = [link for link in obj.get("links") or () if isinstance(link, dict)]
    for rel in rels:
        for link in links:
            if link.get("rel") == rel and isinstance(link.get("href"), str):
                return str(link["href"])
    return None


def _capture_signal(
    kind: SignalKind, capture: Mapping[str, Any], *, order_id: str | None, custom_id: Any = None
) -> Signal:
    """What a capture says about its payment: `kind`, with the capture's own figures."""
    amount, currency = _amount(capture)
    related = ((capture.get("supplementary_data") or {}).get("related_ids")) or {}
    details = capture.get("status_details") or {}
    return Signal(
        kind=kind,
        payment_id=_payment_id(capture.get("custom_id") or custom_id),
        reference=order_id or _text(related.get("order_id")),
        payment_ref=_text(capture.get("id")),
        amount_minor=amount,
        currency=currency,
        reason=str(details.get("reason") or "") if kind != SignalKind.PAID else "",
    )


def _order_signal(order: Mapping[str, Any]) -> Signal:
    """How an order stands: its capture's outcome once captured, otherwise nothing yet."""
    status = order.get("status")
    units = [u for u in order.get("purchase_units") or () if isinstance(u, dict)]
    unit = units[0] if units else {}
    captures = [
        c for c in (unit.get("payments") or {}).get("captures") or () if isinstance(c, dict)
    ]
    if status == "COMPLETED" and captures:
        capture = captures[0]
        kind = CAPTURE_STATUSES.get(str(capture.get("status")))
        if kind is None:  # PENDING (held for review, an eCheck): its webhook decides
            return Signal(SignalKind.IGNORED, reason=f"capture {capture.get('status')}")
        return _capture_signal(
            kind, capture, order_id=_text(order.get("id")), custom_id=unit.get("custom_id")
        )
    if status == "VOIDED":
        return Signal(
            SignalKind.CANCELLED,
            payment_id=_payment_id(unit.get("custom_id")),
            reference=_text(order.get("id")),
            reason="order voided at PayPal",
        )
    return Signal(SignalKind.IGNORED, reason=f"order {status}")


def _refund_signal(refund: Mapping[str, Any]) -> Signal:
    if refund.get("status") != "COMPLETED":
        return Signal(SignalKind.IGNORED, reason=f"refund {refund.get('status')}")
    amount, currency = _amount(refund)
    # The refund names its capture by the `up` link (…/v2/payments/captures/{id}).
    capture_link = _link(refund, "up") or ""
    capture_id = (
        capture_link.rstrip("/").rpartition("/")[2] if "/captures/" in capture_link else None
    )
    return Signal(
        kind=SignalKind.REFUNDED,
        payment_id=_payment_id(refund.get("custom_id")),
        payment_ref=capture_id,
        currency=currency,
        refund_id=_text(refund.get("id")),
        refund_minor=amount,
        reason=str(refund.get("note_to_payer") or ""),
    )


def read_paypal_event(event: Mapping[str, Any]) -> list[Signal]:
    """The signals of one PayPal event (an already verified one)."""
    kind = event.get("event_type")
    resource = event.get("resource")
    if not isinstance(resource, dict):
        return [Signal(SignalKind.IGNORED, reason=f"{kind} without its resource")]
    if kind == "CHECKOUT.ORDER.APPROVED":
        units = [u for u in resource.get("purchase_units") or () if isinstance(u, dict)]
        return [
            Signal(
                SignalKind.APPROVED,
                payment_id=_payment_id(units[0].get("custom_id")) if units else None,
                reference=_text(resource.get("id")),
            )
        ]
    if kind in CAPTURE_EVENTS:
        return [_capture_signal(CAPTURE_EVENTS[kind], resource, order_id=None)]
    if kind == "PAYMENT.CAPTURE.REFUNDED":
        return [_refund_signal(resource)]
    return [Signal(SignalKind.IGNORED, reason=f"{kind} is not an event payments act on")]


def _issues(response: httpx.Response) -> set[str]:
    """The `issue`s of a PayPal error answer (`ORDER_ALREADY_CAPTURED`, ...)."""
    try:
        answer = response.json()
    except ValueError:
        return set()
    details = answer.get("details") if isinstance(answer, dict) else None
    return {str(d.get("issue")) for d in details or () if isinstance(d, dict)}


def _refused(response: httpx.Response, what: str) -> GatewayError:
    retryable = response.status_code >= 500 or response.status_code == 429
    try:
        answer = response.json()
        name = answer.get("name") or answer.get("error") or ""
    except (ValueError, AttributeError):
        name = ""
    issues = ",".join(sorted(_issues(response)))
    return GatewayError(
        f"PayPal {what}: {response.status_code} {name} {issues}".rstrip(), retryable=retryable
    )


class PaypalGateway:
    """The Gateway for PayPal (see skillswap.payments.gateway)."""

    name = NAME

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.currencies = tuple(c.upper() for c in settings.paypal_currencies)
        self._base = settings.paypal_api_base.rstrip("/")
        self._client_id = settings.paypal_client_id
        self._secret = settings.paypal_client_secret
        self._webhook_id = settings.paypal_webhook_id
        self._return_url = return_url(settings)
        self._http = http

    # -- the token and the calls ---------------------------------------------------------------

    async def _token(self) -> str:
        """The cached access token, or a new one when it is about to expire."""
        cache = _tokens.setdefault(self._http, {})
        key = (self._base, self._client_id)
        cached = cache.get(key)
        if cached is not None and time.monotonic() < cached.renew_at:
            return cached.value
        try:
            response = await self._http.post(
                f"{self._base}/v1/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(self._client_id, self._secret),
                headers={"Accept": "application/json"},
                timeout=TIMEOUT_SECONDS,
            )
        except httpx.HTTPError as exc:
            raise GatewayError(f"PayPal unreachable: {type(exc).__name__}", retryable=True) from exc
        if response.status_code != 200:
            raise _refused(response, "token")
        answer = response.json()
        if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
            raise GatewayError("PayPal answered no access token", retryable=True)
        lifetime = answer.get("expires_in")
        token = _Token(
            value=answer["access_token"],
            renew_at=time.monotonic()
            + (lifetime if isinstance(lifetime, int) else 0)
            - TOKEN_REFRESH_MARGIN_SECONDS,
        )
        cache[key] = token
        return token.value

    def _forget_token(self, value: str) -> None:
        cache = _tokens.get(self._http, {})
        key = (self._base, self._client_id)
        if key in cache and cache[key].value == value:
            del cache[key]

    async def _call(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        request_id: str | None = None,
        prefer: str | None = None,
    ) -> httpx.Response:
        """One API call with the token; a token refused (revoked, expired early) is renewed once."""
        headers = {"Accept": "application/json"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        if request_id:
            headers["PayPal-Request-Id"] = request_id
        if prefer:
            headers["Prefer"] = prefer
        token = await self._token()
        response = await self._request(
            method, path, content, {**headers, "Authorization": f"Bearer {token}"}
        )
        if response.status_code == 401:
            self._forget_token(token)
            token = await self._token()
            response = await self._request(
                method, path, content, {**headers, "Authorization": f"Bearer {token}"}
            )
        return response

    async def _request(
        self, method: str, path: str, content: bytes | None, headers: dict[str, str]
    ) -> httpx.Response:
        try:
            return await self._http.request(
                method, self._base + path, content=content, headers=headers, timeout=TIMEOUT_SECONDS
            )
        except httpx.HTTPError as exc:
            raise GatewayError(f"PayPal unreachable: {type(exc).__name__}", retryable=True) from exc

    async def _send(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        request_id: str | None = None,
        prefer: str | None = None,
    ) -> httpx.Response:
        """`_call` with a JSON body."""
        content = None if body is None else json.dumps(body).encode("utf-8")
        return await self._call(method, path, content=content, request_id=request_id, prefer=prefer)

    # -- the Gateway ---------------------------------------------------------------------------

    async def create_checkout(self, request: CheckoutRequest) -> Checkout:
        """An order (intent CAPTURE) for the package, naming our payment in `custom_id`."""
        payment = str(request.payment_id)
        response = await self._send(
            "POST",
            "/v2/checkout/orders",
            {
                "intent": "CAPTURE",
                "purchase_units": [
                    {
                        "reference_id": f"payment-{payment}",
                        "custom_id": payment,
                        "description": request.description[:127],
                        "amount": {
                            "currency_code": request.currency,
                            "value": price_text(request.amount_minor, request.currency),
                        },
                    }
                ],
                "payment_source": {
                    "paypal": {
                        "email_address": request.buyer_email,
                        "experience_context": {
                            "brand_name": "SkillSwap",
                            "shipping_preference": "NO_SHIPPING",
                            "user_action": "PAY_NOW",
                            "return_url": self._return_url,
                            "cancel_url": request.cancel_url,
                        },
                    }
                },
            },
            # The same payment never opens two orders, however often this is retried.
            request_id=f"skillswap-payment-{payment}-order",
        )
        if response.status_code not in (200, 201):
            raise _refused(response, "order")
        order = response.json()
        approve = _link(order, "payer-action", "approve")
        if not isinstance(order.get("id"), str) or approve is None:
            raise GatewayError("PayPal answered an order without an approval link", retryable=False)
        return Checkout(reference=order["id"], redirect_url=approve)

    async def verify_webhook(
        self, body: bytes, headers: Mapping[str, str], *, now: datetime
    ) -> VerifiedEvent:
        """PayPal's answer on the event as received (only `SUCCESS` is the event PayPal sent)."""
        transmission = {
            field: headers.get(header) for field, header in TRANSMISSION_HEADERS.items()
        }
        missing = sorted(
            header for field, header in TRANSMISSION_HEADERS.items() if not transmission[field]
        )
        if missing:
            raise WebhookRefused(f"no {', '.join(missing)}")
        try:
            event = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise WebhookRefused("the body is not JSON") from exc
        event_id = event.get("id") if isinstance(event, dict) else None
        event_type = event.get("event_type") if isinstance(event, dict) else None
        if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
            raise WebhookRefused("the body is not a PayPal event")
        # The event goes in byte for byte: it parsed as one JSON object, so splicing it in
        # keeps the request well-formed.
        fields = json.dumps({**transmission, "webhook_id": self._webhook_id})
        request = fields[:-1].encode("utf-8") + b', "webhook_event": ' + body + b"}"
        response = await self._call(
            "POST", "/v1/notifications/verify-webhook-signature", content=request
        )
        if response.status_code != 200:
            if response.status_code >= 500 or response.status_code == 429:
                raise _refused(response, "webhook verification")
            raise WebhookRefused(f"PayPal refused to verify it: {response.status_code}")
        status = response.json().get("verification_status")
        if status != "SUCCESS":
            raise WebhookRefused(f"PayPal's verification answered {status!r}")
        return VerifiedEvent(event_id=event_id[:255], event_type=event_type[:128])

    def read_event(self, body: bytes) -> list[Signal]:
        return read_paypal_event(json.loads(body))

    async def fetch_status(self, reference: str) -> Signal:
        """How the order stands, an approved one captured first (approval alone pays nothing)."""
        order = await self._order(reference)
        if order.get("status") == "APPROVED":
            return await self.capture(reference)
        return _order_signal(order)

    async def capture(self, reference: str) -> Signal:
        """Take the approved order's money, once: `ORDER_ALREADY_CAPTURED` reads the capture."""
        response = await self._send(
            "POST",
            f"/v2/checkout/orders/{quote(reference, safe='')}/capture",
            {},
            request_id=f"skillswap-order-{reference}-capture",
            prefer="return=representation",
        )
        if response.status_code in (200, 201):
            return _order_signal(response.json())
        issues = _issues(response)
        if response.status_code == 422 and "ORDER_ALREADY_CAPTURED" in issues:
            return _order_signal(await self._order(reference))
        if response.status_code == 422 and "INSTRUMENT_DECLINED" in issues:
            return Signal(
                SignalKind.FAILED, reference=reference, reason="the funding source was declined"
            )
        if response.status_code == 422 and "ORDER_NOT_APPROVED" in issues:
            return Signal(SignalKind.IGNORED, reason="order not approved")
        raise _refused(response, "capture")

    async def _order(self, reference: str) -> dict[str, Any]:
        response = await self._send("GET", f"/v2/checkout/orders/{quote(reference, safe='')}")
        if response.status_code != 200:
            raise _refused(response, "order lookup")
        order: dict[str, Any] = response.json()
        return order

    async def refund(self, payment_ref: str, amount_minor: int, *, key: str) -> GatewayRefund:
        """Refund part or all of the capture `payment_ref` (in the capture's currency)."""
        capture = quote(payment_ref, safe="")
        found = await self._send("GET", f"/v2/payments/captures/{capture}")
        if found.status_code != 200:
            raise _refused(found, "capture lookup")
        _, currency = _amount(found.json())
        if currency is None:
            raise GatewayError("PayPal answered a capture without its amount", retryable=False)
        response = await self._send(
            "POST",
            f"/v2/payments/captures/{capture}/refund",
            {"amount": {"currency_code": currency, "value": price_text(amount_minor, currency)}},
            request_id=key,
            prefer="return=representation",
        )
        if response.status_code not in (200, 201):
            raise _refused(response, "refund")
        refund = response.json()
        refunded, _ = _amount(refund)
        return GatewayRefund(refund_id=str(refund["id"]), amount_minor=refunded or amount_minor)
