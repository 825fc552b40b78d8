"""Paymob: the Intention API and Unified Checkout over plain httpx, and Paymob's HMAC callbacks.

Every call is authenticated with `Authorization: Token <PAYMOB_SECRET_KEY>`. A payment is an
intention whose one item costs the package's price (Paymob wants the amount, in piastres, to
equal the items' sum); Paymob answers with the order it opened (`intention_order_id`, our
payment's `reference`, which every transaction callback names as `order.id`) and a client
secret, and the buyer pays at `{PAYMOB_API_BASE}/unifiedcheckout/?publicKey=...&clientSecret=...`.

Paymob does not sign the body: its transaction callbacks carry `?hmac=`, an HMAC-SHA512 with the
HMAC secret over twenty of the transaction's fields, their values concatenated in a fixed order
(booleans as `true`/`false`, null as nothing). The processed callback (a POST of JSON) has them
in `obj`; the response callback (the buyer's browser coming back, a GET) has them as query
arguments. Only those fields are trusted: the payment is found by the signed order id, never by
`merchant_order_id` / `special_reference`, which the signature does not cover.

Paymob sends no event id, and sends the same transaction again when its state changes (pending,
then paid; refunded later): an event is the transaction in one state, `{id}:{hmac}`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

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
from skillswap.settings import Settings

NAME = "paymob"
WEBHOOK_PATH = "/api/payments/paymob/webhook/"  # the transaction processed callback
RETURN_PATH = "/api/payments/paymob/return/"  # the transaction response callback (the browser)
# Paymob signs in the query string (`?hmac=`), not in a header: the webhook endpoint hands the
# query's hmac on under this name with the request's headers (dropping any such header sent),
# so that the stored event keeps the signature it was verified with.
HMAC_HEADER = "Paymob-Hmac"
TRANSACTION = "TRANSACTION"
TIMEOUT_SECONDS = 30.0
ITEM_NAME_MAX = 50
# The signed fields, in Paymob's order, as paths into the processed callback's `obj`. The
# response callback's query names them the same, but for the order (`order`).
HMAC_FIELDS = (
    "amount_cents",
    "created_at",
    "currency",
    "error_occured",
    "has_parent_transaction",
    "id",
    "integration_id",
    "is_3d_secure",
    "is_auth",
    "is_capture",
    "is_refunded",
    "is_standalone_payment",
    "is_voided",
    "order.id",
    "owner",
    "pending",
    "source_data.pan",
    "source_data.sub_type",
    "source_data.type",
    "success",
)
# Billing data Paymob requires; what the profile does not hold is "NA", as Paymob documents.
BILLING_FIELDS = (
    "apartment",
    "building",
    "city",
    "country",
    "floor",
    "postal_code",
    "state",
    "street",
)


def configured(settings: Settings) -> bool:
    """Paymob is offered when its keys, its HMAC secret and an integration id are all set."""
    return bool(
        settings.paymob_secret_key
        and settings.paymob_public_key
        and settings.paymob_hmac_secret
        and settings.paymob_integration_ids
    )


def callback_url(settings: Settings, path: str) -> str:
    """Our endpoint at `path` as Paymob must call it (the service's public address)."""
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    return base.rstrip("/") + path


def special_reference(payment_id: int) -> str:
    """How an intention names our payment (unique per merchant at Paymob)."""
    return f"skillswap-payment-{payment_id}"


def billing_data(request: CheckoutRequest) -> dict[str, str]:
    """Paymob's required billing data from the buyer's profile, "NA" where it says nothing."""
    first, _, last = request.buyer_name.strip().partition(" ")
    return {
        **dict.fromkeys(BILLING_FIELDS, "NA"),
        "first_name": first or "NA",
        "last_name": last.strip() or "NA",
        "email": request.buyer_email,
        "phone_number": request.buyer_phone or "NA",
    }


def hmac_text(value: Any) -> str:
    """A field's value as Paymob concatenates it: `true`/`false`, nothing for null."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _at(obj: Mapping[str, Any], path: str) -> Any:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def processed_hmac_values(obj: Mapping[str, Any]) -> list[str]:
    """The signed values of a processed callback's transaction, in order."""
    return [hmac_text(_at(obj, path)) for path in HMAC_FIELDS]


def response_hmac_values(query: Mapping[str, str]) -> list[str]:
    """The signed values of a response callback's query, in order."""
    # Paymob's redirects name the order `order`; its HMAC page calls it `order_id`.
    order = query.get("order", query.get("order_id", ""))
    return [order if path == "order.id" else query.get(path, "") for path in HMAC_FIELDS]


def verify_paymob_hmac(values: Sequence[str], received: str | None, secret: str) -> None:
    """Raise WebhookRefused unless `received` is the HMAC-SHA512 of the values (constant time)."""
    if not received:
        raise WebhookRefused("no hmac")
    expected = hmac.new(secret.encode("utf-8"), "".join(values).encode("utf-8"), hashlib.sha512)
    if not hmac.compare_digest(
        expected.hexdigest().encode("ascii"), received.strip().lower().encode("utf-8")
    ):
        raise WebhookRefused("the hmac does not match the transaction")


def _int(value: Any) -> int | None:
    return value if type(value) is int else None  # not a boolean, which is an int too


def _text_id(value: Any) -> str | None:
    number = _int(value)
    return str(number) if number is not None else None


def transaction_signal(obj: Mapping[str, Any]) -> Signal:
    """What one (verified) transaction says about its payment.

    A declined attempt leaves the payment open: the buyer may try again on the same checkout,
    and that success must still be credited; reconciliation closes what stays unpaid.
    """
    tx = _text_id(obj.get("id"))
    currency = obj.get("currency")
    common: dict[str, Any] = {
        "reference": _text_id(_at(obj, "order.id")),
        "currency": currency.upper() if isinstance(currency, str) else None,
    }
    if obj.get("pending") is True:
        return Signal(SignalKind.IGNORED, reason=f"transaction {tx} is pending")
    if obj.get("has_parent_transaction") is True:
        # A refund (or a void) of the order's payment, in a transaction of its own.
        if obj.get("success") is True and obj.get("is_capture") is not True:
            return Signal(
                SignalKind.REFUNDED,
                refund_id=tx,
                refund_minor=_int(obj.get("amount_cents")),
                reason="refunded at Paymob",
                **common,
            )
        return Signal(SignalKind.IGNORED, reason=f"child transaction {tx} did not refund")
    if obj.get("success") is True:
        return Signal(
            SignalKind.PAID, payment_ref=tx, amount_minor=_int(obj.get("amount_cents")), **common
        )
    message = _at(obj, "data.message")
    return Signal(SignalKind.IGNORED, reason=f"transaction {tx} declined: {message or 'no reason'}")


def _declined(obj: Mapping[str, Any]) -> bool:
    """A payment attempt (not a refund) that Paymob finished without taking the money."""
    return (
        obj.get("pending") is not True
        and obj.get("has_parent_transaction") is not True
        and obj.get("success") is not True
    )


@dataclass(frozen=True)
class ReturnedTransaction:
    """A verified response callback: the order the buyer paid for, and what Paymob told them."""

    reference: str
    paid_or_pending: bool


class PaymobGateway:
    """The Gateway for Paymob (see skillswap.payments.gateway)."""

    name = NAME

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.currencies = tuple(c.upper() for c in settings.paymob_currencies)
        self._base = settings.paymob_api_base.rstrip("/")
        self._secret_key = settings.paymob_secret_key
        self._public_key = settings.paymob_public_key
        self._hmac_secret = settings.paymob_hmac_secret
        self._integrations = [
            int(i) if i.isdecimal() else i for i in settings.paymob_integration_ids
        ]
        self._notification_url = callback_url(settings, WEBHOOK_PATH)
        self._redirection_url = callback_url(settings, RETURN_PATH)
        self._http = http

    async def _post(self, path: str, payload: dict[str, Any]) -> httpx.Response:
        try:
            return await self._http.post(
                self._base + path,
                json=payload,
                headers={"Authorization": f"Token {self._secret_key}"},
                timeout=TIMEOUT_SECONDS,
            )
        except httpx.HTTPError as exc:
            # Only a request that never left is safe to send again: Paymob takes no
            # idempotency key, and a second refund or intention would be a new one.
            retryable = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            raise GatewayError(
                f"Paymob could not be reached: {type(exc).__name__}", retryable=retryable
            ) from exc

    @staticmethod
    def _answer(response: httpx.Response, what: str) -> dict[str, Any]:
        if response.is_success:
            try:
                found = response.json()
            except ValueError:
                found = None
            if isinstance(found, dict):
                return found
        retryable = response.status_code >= 500 or response.status_code == 429
        raise GatewayError(
            f"Paymob {what}: {response.status_code} {response.text[:300]}", retryable=retryable
        )

    async def create_checkout(self, request: CheckoutRequest) -> Checkout:
        """An intention for the package (one item, so the amount is the items' sum)."""
        response = await self._post(
            "/v1/intention/",
            {
                "amount": request.amount_minor,
                "currency": request.currency,
                "payment_methods": self._integrations,
                "items": [
                    {
                        "name": request.description[:ITEM_NAME_MAX],
                        "amount": request.amount_minor,
                        "description": request.description,
                        "quantity": 1,
                    }
                ],
                "billing_data": billing_data(request),
                "special_reference": special_reference(request.payment_id),
                "extras": {"payment_id": request.payment_id, "points": request.points},
                "notification_url": self._notification_url,
                "redirection_url": self._redirection_url,
            },
        )
        intention = self._answer(response, "refused the intention")
        order_id, client_secret = (
            intention.get("intention_order_id"),
            intention.get("client_secret"),
        )
        if _int(order_id) is None or not isinstance(client_secret, str) or not client_secret:
            raise GatewayError("Paymob answered an intention without its order", retryable=False)
        query = urlencode({"publicKey": self._public_key, "clientSecret": client_secret})
        return Checkout(
            reference=str(order_id), redirect_url=f"{self._base}/unifiedcheckout/?{query}"
        )

    def verify_webhook(
        self, body: bytes, headers: Mapping[str, str], *, now: datetime
    ) -> VerifiedEvent:
        """The processed callback's hmac over its transaction (the body must be read first)."""
        received = headers.get(HMAC_HEADER)
        if not received:
            raise WebhookRefused("no hmac in the callback's query")
        try:
            callback = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise WebhookRefused("the body is not JSON") from exc
        obj = callback.get("obj") if isinstance(callback, dict) else None
        if not isinstance(obj, dict) or callback.get("type") != TRANSACTION:
            raise WebhookRefused("the body is not a transaction callback")
        verify_paymob_hmac(processed_hmac_values(obj), received, self._hmac_secret)
        tx = _text_id(obj.get("id"))
        if tx is None:
            raise WebhookRefused("the transaction has no id")
        return VerifiedEvent(
            event_id=f"{tx}:{received.strip().lower()}"[:255], event_type=TRANSACTION
        )

    def read_event(self, body: bytes) -> list[Signal]:
        return [transaction_signal(json.loads(body)["obj"])]

    def verify_return(self, query: Mapping[str, str]) -> ReturnedTransaction:
        """The browser's response callback, once its hmac holds (WebhookRefused otherwise)."""
        verify_paymob_hmac(response_hmac_values(query), query.get("hmac"), self._hmac_secret)
        reference = query.get("order", query.get("order_id", ""))
        if not reference.isdecimal():
            raise WebhookRefused("the return names no order")
        succeeded = query.get("success") == "true"
        return ReturnedTransaction(reference, succeeded or query.get("pending") == "true")

    async def fetch_status(self, reference: str) -> Signal:
        """The order's last transaction (the transaction inquiry), for a payment left pending.

        Asked only past the reconciliation window: a last attempt that was declined then
        fails the payment, where its callback left the checkout open for another attempt.
        """
        if not reference.isdecimal():
            return Signal(SignalKind.IGNORED, reason=f"{reference!r} is not a Paymob order")
        response = await self._post(
            "/api/ecommerce/orders/transaction_inquiry", {"order_id": int(reference)}
        )
        if response.status_code == 404:
            return Signal(SignalKind.IGNORED, reason=f"order {reference} has no transaction")
        last = self._answer(response, "refused the transaction inquiry")
        found = transaction_signal(last)
        if _declined(last):
            return Signal(SignalKind.FAILED, reference=found.reference, reason=found.reason)
        return found

    async def refund(self, payment_ref: str, amount_minor: int, *, key: str) -> GatewayRefund:
        """A refund transaction of `amount_minor` of the paid transaction `payment_ref`.

        Paymob takes no idempotency key (`key` names this refund in our logs only): a refund
        whose answer was lost is not sent again (see `_post`), an administrator checks first.
        """
        if not payment_ref.isdecimal():
            raise GatewayError(f"{payment_ref!r} is not a Paymob transaction", retryable=False)
        response = await self._post(
            "/api/acceptance/void_refund/refund",
            {"transaction_id": int(payment_ref), "amount_cents": amount_minor},
        )
        refund = self._answer(response, f"refused refund {key}")
        refund_id, amount = _text_id(refund.get("id")), _int(refund.get("amount_cents"))
        if refund.get("success") is not True or refund_id is None or amount is None:
            message = _at(refund, "data.message") or "declined"
            raise GatewayError(f"Paymob declined refund {key}: {message}", retryable=False)
        return GatewayRefund(refund_id=refund_id, amount_minor=amount)
