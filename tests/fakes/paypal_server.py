"""A local PayPal that answers like PayPal's REST API and verifies the webhooks it sends.

A real Tornado app on an unused port. It serves:

- `POST /v1/oauth2/token` with HTTP Basic `client_id:secret` and `grant_type=client_credentials`
  (401 `invalid_client` otherwise): a bearer token that every other call needs (401
  `invalid_token` for an unknown or revoked one).
- `POST /v2/checkout/orders` (intent CAPTURE, one purchase unit whose amount is a decimal string
  with the currency's digits; 400 `INVALID_REQUEST` naming the issue otherwise): an order
  `PAYER_ACTION_REQUIRED` with a `payer-action` link when `payment_source.paypal` is given,
  `CREATED` with an `approve` link when not. `GET /v2/checkout/orders/{id}`.
- `POST /v2/checkout/orders/{id}/capture`: 422 `ORDER_NOT_APPROVED` before the buyer approves,
  `ORDER_ALREADY_CAPTURED` once captured; the capture's status is what the buyer's approval
  set (COMPLETED, PENDING, DECLINED).
- `GET /v2/payments/captures/{id}`, `POST /v2/payments/captures/{id}/refund`.
- `PayPal-Request-Id` on every POST: the same id answers the first answer again, and a request
  arriving while the first is still being answered waits for that answer.
- `POST /v1/notifications/verify-webhook-signature`: SUCCESS only when the signature is the one
  this PayPal made for that transmission id, time, its webhook id and the CRC32 of the
  `webhook_event` *bytes as they appear in the request*, which must be those it sent.

The test drives the buyer (`approve`) and PayPal's notifications: the `*_event` builders make
the events PayPal would send, and `deliver` POSTs one to the app's webhook URL with PayPal's
transmission headers; it can sign with another key or send a body other than the one it signed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import string
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import tornado.httpserver
import tornado.testing
import tornado.web

from skillswap.payments.packages import price_text


def paypal_id(length: int = 17) -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(length))


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def raw_member(body: bytes, name: str) -> bytes | None:
    """The bytes of the top-level member `name` of a JSON object, exactly as they were written."""
    text = body.decode("utf-8")
    decoder = json.JSONDecoder()
    index = text.index("{") + 1
    while True:
        while text[index] in " \t\r\n,":
            index += 1
        if text[index] == "}":
            return None
        key, index = decoder.raw_decode(text, index)
        while text[index] in " \t\r\n:":
            index += 1
        _, end = decoder.raw_decode(text, index)
        if key == name:
            return text[index:end].encode("utf-8")
        index = end


class PaypalRefusal(Exception):
    def __init__(self, status: int, name: str, issue: str, description: str = "") -> None:
        self.status, self.name, self.issue = status, name, issue
        super().__init__(description or issue)

    def body(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "message": str(self),
            "debug_id": paypal_id(13).lower(),
            "details": [{"issue": self.issue, "description": str(self)}],
        }


@dataclass
class FakePaypal:
    client_id: str = field(default_factory=lambda: f"client-{secrets.token_hex(8)}")
    client_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    webhook_id: str = field(default_factory=lambda: paypal_id(17))
    base_url: str = ""
    token_lifetime: int = 32400  # seconds, as PayPal gives them
    capture_delay: float = 0.0  # how long a capture takes to answer
    honour_request_ids: bool = True
    verification_down: bool = False  # verify-webhook-signature answers 503
    tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    captures: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    capture_requests: list[str] = field(default_factory=list)  # order ids, one per request
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    verified: list[tuple[bytes, str]] = field(default_factory=list)  # event bytes, the answer
    # PayPal-Request-Id -> the first answer (status, body), set once it is known
    answers: dict[str, asyncio.Future[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    # What this PayPal signs its deliveries with (PayPal's own private key, for the real one).
    _signing_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    # -- the API -------------------------------------------------------------------------------

    def issue_token(self) -> dict[str, Any]:
        self.token_requests += 1
        token = f"A21AA{secrets.token_urlsafe(24)}"
        self.tokens.add(token)
        return {
            "scope": "https://uri.paypal.com/services/payments/payment",
            "access_token": token,
            "token_type": "Bearer",
            "app_id": "APP-80W284485P519543T",
            "expires_in": self.token_lifetime,
            "nonce": f"{now_text()}{secrets.token_hex(8)}",
        }

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    def create_order(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if params.get("intent") != "CAPTURE":
            raise PaypalRefusal(400, "INVALID_REQUEST", "INVALID_PARAMETER_VALUE", "intent")
        units = params.get("purchase_units")
        if not isinstance(units, list) or len(units) != 1:
            raise PaypalRefusal(400, "INVALID_REQUEST", "INVALID_ARRAY_LENGTH_ITEM")
        amount = units[0].get("amount") or {}
        currency, value = amount.get("currency_code"), amount.get("value")
        if not isinstance(currency, str) or not isinstance(value, str):
            raise PaypalRefusal(400, "INVALID_REQUEST", "MISSING_REQUIRED_PARAMETER", "amount")
        # The value must carry exactly the currency's decimals ("9.99", not "9.9" nor "999").
        decimals = len(price_text(0, currency).partition(".")[2])
        if not re.fullmatch(rf"\d+\.\d{{{decimals}}}" if decimals else r"\d+", value):
            raise PaypalRefusal(400, "INVALID_REQUEST", "DECIMAL_PRECISION", "amount.value")
        order_id = paypal_id()
        paypal_source = (params.get("payment_source") or {}).get("paypal")
        action = "payer-action" if paypal_source is not None else "approve"
        context = (paypal_source or {}).get("experience_context") or {}
        order = {
            "id": order_id,
            "intent": "CAPTURE",
            "status": "PAYER_ACTION_REQUIRED" if paypal_source is not None else "CREATED",
            "purchase_units": [
                {
                    "reference_id": units[0].get("reference_id", "default"),
                    "custom_id": units[0].get("custom_id"),
                    "description": units[0].get("description"),
                    "amount": {"currency_code": currency, "value": value},
                    "payee": {"merchant_id": "7KNGBPH2U58GQ"},
                }
            ],
            "create_time": now_text(),
            "links": [
                {"href": f"{self.base_url}/v2/checkout/orders/{order_id}", "rel": "self"},
                {"href": f"{self.base_url}/checkoutnow?token={order_id}", "rel": action},
            ],
            "_return_url": context.get("return_url"),
            "_cancel_url": context.get("cancel_url"),
            "_outcome": None,
        }
        self.orders[order_id] = order
        return 200, self.public(order)

    def capture_order(self, order_id: str) -> tuple[int, dict[str, Any]]:
        order = self.orders.get(order_id)
        if order is None:
            raise PaypalRefusal(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID")
        if order["status"] == "COMPLETED":
            raise PaypalRefusal(
                422,
                "UNPROCESSABLE_ENTITY",
                "ORDER_ALREADY_CAPTURED",
                "Order already captured. If 'intent=CAPTURE' only one capture per order is allowed.",
            )
        if order["status"] != "APPROVED":
            raise PaypalRefusal(422, "UNPROCESSABLE_ENTITY", "ORDER_NOT_APPROVED")
        unit = order["purchase_units"][0]
        outcome = order["_outcome"]
        capture_id = paypal_id()
        capture = {
            "id": capture_id,
            "status": outcome["status"],
            "amount": dict(outcome["amount"] or unit["amount"]),
            "final_capture": True,
            "custom_id": unit["custom_id"],
            "seller_protection": {"status": "ELIGIBLE"},
            "supplementary_data": {"related_ids": {"order_id": order_id}},
            "create_time": now_text(),
            "update_time": now_text(),
            "links": [
                {"href": f"{self.base_url}/v2/payments/captures/{capture_id}", "rel": "self"},
                {"href": f"{self.base_url}/v2/checkout/orders/{order_id}", "rel": "up"},
            ],
        }
        if outcome["status"] == "PENDING":
            capture["status_details"] = {"reason": "PENDING_REVIEW"}
        if outcome["status"] == "DECLINED":
            capture["status_details"] = {"reason": "DECLINED_BY_RISK_FRAUD_FILTERS"}
        self.captures[capture_id] = capture
        unit["payments"] = {"captures": [capture]}
        order["status"] = "COMPLETED"
        return 201, self.public(order)

    def refund_capture(self, capture_id: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        capture = self.captures.get(capture_id)
        if capture is None:
            raise PaypalRefusal(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID")
        amount = params.get("amount") or capture["amount"]
        if amount.get("currency_code") != capture["amount"]["currency_code"]:
            raise PaypalRefusal(422, "UNPROCESSABLE_ENTITY", "REFUND_CURRENCY_MISMATCH")
        return 201, self.refund(capture_id, amount["value"])

    @staticmethod
    def public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    # -- the buyer's side ----------------------------------------------------------------------

    def approve(
        self, order_id: str, *, capture: str = "COMPLETED", amount: dict[str, str] | None = None
    ) -> None:
        """The buyer approves; `capture` is what capturing will say, `amount` what it takes."""
        order = self.orders[order_id]
        order["status"] = "APPROVED"
        order["payer"] = {
            "name": {"given_name": "ليلى", "surname": "حسن"},
            "email_address": "buyer@example.com",
            "payer_id": paypal_id(13),
        }
        order["_outcome"] = {"status": capture, "amount": amount}

    def return_query(self, order_id: str) -> str:
        """What PayPal appends to the return URL when it sends the buyer back."""
        return f"?token={order_id}&PayerID={self.orders[order_id]['payer']['payer_id']}"

    def refund(self, capture_id: str, value: str) -> dict[str, Any]:
        capture = self.captures[capture_id]
        refund_id = paypal_id()
        refund = {
            "id": refund_id,
            "status": "COMPLETED",
            "amount": {"currency_code": capture["amount"]["currency_code"], "value": value},
            "create_time": now_text(),
            "links": [
                {"href": f"{self.base_url}/v2/payments/refunds/{refund_id}", "rel": "self"},
                {"href": f"{self.base_url}/v2/payments/captures/{capture_id}", "rel": "up"},
            ],
        }
        self.refunds[refund_id] = refund
        refunded = sum(
            Decimal(r["amount"]["value"])
            for r in self.refunds.values()
            if _link(r, "up").endswith(capture_id)
        )
        whole = refunded == Decimal(capture["amount"]["value"])
        capture["status"] = "REFUNDED" if whole else "PARTIALLY_REFUNDED"
        return refund

    def capture_of(self, order_id: str) -> dict[str, Any]:
        return self.orders[order_id]["purchase_units"][0]["payments"]["captures"][0]

    # -- events and their delivery -------------------------------------------------------------

    def event(self, kind: str, resource_type: str, resource: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"WH-{paypal_id(17)}-{paypal_id(17)}",
            "event_version": "1.0",
            "create_time": now_text(),
            "resource_type": resource_type,
            "resource_version": "2.0",
            "event_type": kind,
            "summary": f"{kind} ({resource.get('id')})",
            "resource": json.loads(json.dumps(self.public(resource))),
            "links": [],
        }

    def order_approved_event(self, order_id: str) -> dict[str, Any]:
        return self.event("CHECKOUT.ORDER.APPROVED", "checkout-order", self.orders[order_id])

    def capture_event(self, kind: str, order_id: str) -> dict[str, Any]:
        return self.event(kind, "capture", self.capture_of(order_id))

    def refund_event(self, refund: dict[str, Any]) -> dict[str, Any]:
        return self.event("PAYMENT.CAPTURE.REFUNDED", "refund", refund)

    @staticmethod
    def body_of(event: dict[str, Any]) -> bytes:
        # As PayPal sends it: compact, and UTF-8 unescaped (a payer's name stays Arabic).
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @property
    def cert_url(self) -> str:
        return f"{self.base_url}/v1/notifications/certs/CERT-360caa42-fca2a594-fake"

    def signature(
        self, transmission_id: str, when: str, body: bytes, *, key: bytes | None = None
    ) -> str:
        signed = f"{transmission_id}|{when}|{self.webhook_id}|{zlib.crc32(body)}"
        mac = hmac.new(key or self._signing_key, signed.encode("utf-8"), hashlib.sha256)
        return base64.b64encode(mac.digest()).decode("ascii")

    async def deliver(
        self,
        url: str,
        event: dict[str, Any],
        *,
        body: bytes | None = None,
        key: bytes | None = None,
    ) -> httpx.Response:
        """POST the event as PayPal would; `body` replaces what was signed (an altered body)."""
        signed = self.body_of(event)
        transmission_id, when = secrets.token_hex(16), now_text()
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.post(
                url,
                content=signed if body is None else body,
                headers={
                    "Content-Type": "application/json",
                    "PAYPAL-AUTH-ALGO": "SHA256withRSA",
                    "PAYPAL-CERT-URL": self.cert_url,
                    "PAYPAL-TRANSMISSION-ID": transmission_id,
                    "PAYPAL-TRANSMISSION-SIG": self.signature(
                        transmission_id, when, signed, key=key
                    ),
                    "PAYPAL-TRANSMISSION-TIME": when,
                    "User-Agent": "PayPal/AUHD-214.0-58843543",
                },
            )

    def verify(self, request: bytes) -> str:
        """The verification's answer for a verify-webhook-signature request body."""
        fields = json.loads(request)
        event = raw_member(request, "webhook_event")
        if event is None or fields.get("webhook_id") != self.webhook_id:
            return "FAILURE"
        if fields.get("auth_algo") != "SHA256withRSA" or fields.get("cert_url") != self.cert_url:
            return "FAILURE"
        expected = self.signature(
            str(fields.get("transmission_id")), str(fields.get("transmission_time")), event
        )
        sent = str(fields.get("transmission_sig"))
        answer = "SUCCESS" if hmac.compare_digest(expected, sent) else "FAILURE"
        self.verified.append((event, answer))
        return answer


def _link(obj: dict[str, Any], rel: str) -> str:
    return next(link["href"] for link in obj["links"] if link["rel"] == rel)


class _Api(tornado.web.RequestHandler):
    def initialize(self, paypal: FakePaypal) -> None:
        self.paypal = paypal

    def check_xsrf_cookie(self) -> None:
        return None

    def _refuse(self, refusal: PaypalRefusal) -> None:
        self.set_status(refusal.status)
        self.finish(refusal.body())

    def _authorised(self) -> bool:
        header = self.request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and header[7:] in self.paypal.tokens:
            return True
        self.set_status(401)
        self.finish(
            {"error": "invalid_token", "error_description": "Token signature verification failed"}
        )
        return False

    def _params(self) -> Any:
        return json.loads(self.request.body or b"{}")

    async def _answer(self, create: Any) -> None:
        """Answer `create()`, once per PayPal-Request-Id (later ones get the first answer)."""
        headers = dict(self.request.headers)
        self.paypal.requests.append(
            (self.request.method or "", self.request.path, headers, self._params())
        )
        key = (
            self.request.headers.get("PayPal-Request-Id")
            if self.paypal.honour_request_ids
            else None
        )
        if key and key in self.paypal.answers:
            status, body = await self.paypal.answers[key]
            self.set_status(status)
            self.finish(body)
            return
        future: asyncio.Future[tuple[int, dict[str, Any]]] = (
            asyncio.get_running_loop().create_future()
        )
        if key:
            self.paypal.answers[key] = future
        try:
            status, body = await create()
        except PaypalRefusal as refusal:
            status, body = refusal.status, refusal.body()
        future.set_result((status, body))
        self.set_status(status)
        self.finish(body)


class _Token(tornado.web.RequestHandler):
    def initialize(self, paypal: FakePaypal) -> None:
        self.paypal = paypal

    def check_xsrf_cookie(self) -> None:
        return None

    def post(self) -> None:
        expected = base64.b64encode(
            f"{self.paypal.client_id}:{self.paypal.client_secret}".encode()
        ).decode()
        form = parse_qs((self.request.body or b"").decode())
        if self.request.headers.get("Authorization") != f"Basic {expected}":
            self.set_status(401)
            self.finish(
                {"error": "invalid_client", "error_description": "Client Authentication failed"}
            )
            return
        if form.get("grant_type") != ["client_credentials"]:
            self.set_status(400)
            self.finish({"error": "unsupported_grant_type"})
            return
        self.finish(self.paypal.issue_token())


class _Orders(_Api):
    async def post(self) -> None:
        if self._authorised():
            params = self._params()

            async def create() -> tuple[int, dict[str, Any]]:
                return self.paypal.create_order(params)

            await self._answer(create)


class _Order(_Api):
    def get(self, order_id: str) -> None:
        if not self._authorised():
            return
        order = self.paypal.orders.get(order_id)
        if order is None:
            return self._refuse(PaypalRefusal(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID"))
        self.finish(self.paypal.public(order))


class _Capture(_Api):
    async def post(self, order_id: str) -> None:
        if not self._authorised():
            return
        self.paypal.capture_requests.append(order_id)

        async def create() -> tuple[int, dict[str, Any]]:
            await asyncio.sleep(self.paypal.capture_delay)
            return self.paypal.capture_order(order_id)

        await self._answer(create)


class _CaptureRead(_Api):
    def get(self, capture_id: str) -> None:
        if not self._authorised():
            return
        capture = self.paypal.captures.get(capture_id)
        if capture is None:
            return self._refuse(PaypalRefusal(404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID"))
        self.finish(capture)


class _Refund(_Api):
    async def post(self, capture_id: str) -> None:
        if self._authorised():
            params = self._params()

            async def create() -> tuple[int, dict[str, Any]]:
                return self.paypal.refund_capture(capture_id, params)

            await self._answer(create)


class _Verify(_Api):
    def post(self) -> None:
        if self.paypal.verification_down:
            self._refuse(PaypalRefusal(503, "SERVICE_UNAVAILABLE", "SERVICE_UNAVAILABLE"))
        elif self._authorised():
            self.finish({"verification_status": self.paypal.verify(self.request.body or b"")})


@contextlib.asynccontextmanager
async def running_paypal() -> AsyncIterator[FakePaypal]:
    """The fake PayPal on an unused port of this process."""
    paypal = FakePaypal()
    given = {"paypal": paypal}
    app = tornado.web.Application(
        [
            (r"/v1/oauth2/token", _Token, given),
            (r"/v2/checkout/orders", _Orders, given),
            (r"/v2/checkout/orders/([^/]+)", _Order, given),
            (r"/v2/checkout/orders/([^/]+)/capture", _Capture, given),
            (r"/v2/payments/captures/([^/]+)", _CaptureRead, given),
            (r"/v2/payments/captures/([^/]+)/refund", _Refund, given),
            (r"/v1/notifications/verify-webhook-signature", _Verify, given),
        ]
    )
    server = tornado.httpserver.HTTPServer(app)
    sock, port = tornado.testing.bind_unused_port()
    server.add_sockets([sock])
    paypal.base_url = f"http://127.0.0.1:{port}"
    try:
        yield paypal
    finally:
        server.stop()
        await server.close_all_connections()
