"""A local Stripe that answers like Stripe's API and sends webhooks the way Stripe signs them.

A real Tornado app on an unused port. It serves, with `Authorization: Bearer <secret key>`
(401 otherwise) and form-encoded bodies (`line_items[0][price_data][currency]=usd`):

- `POST /v1/checkout/sessions`: payment mode only; `success_url`, one line item with
  `price_data` (`currency`, positive `unit_amount`, `product_data[name]`) and a quantity are
  required (400 `invalid_request_error` naming the `param` otherwise). `Idempotency-Key` is
  honoured as Stripe does: the same key with the same parameters answers the first session again
  (`Idempotent-Replayed: true`), with others a 400 `idempotency_error`.
- `GET /v1/checkout/sessions/{id}`; `POST /v1/refunds` (`payment_intent`, `amount`).

The test drives the buyer's side: `pay(session)` completes a session (a payment intent and a
charge appear, copying the intent's metadata as Stripe does), `expire(session)` lets it run out.
The `*_event` builders make the events Stripe would send, and `deliver` POSTs one to the app's
webhook URL with a `Stripe-Signature` (`t=...,v1=HMAC-SHA256(secret, "t." + body)`); it can sign
with another secret, at another time, or send a body other than the one it signed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import tornado.httpserver
import tornado.testing
import tornado.web

API_VERSION = "2025-06-30.basil"


def token(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


def parse_form(body: bytes) -> dict[str, Any]:
    """Stripe's nested form encoding (`a[b][0][c]=v`) as dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode("utf-8"), keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node: Any = root
        for part, following in itertools.pairwise(parts):
            child = [] if following.isdecimal() else {}
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append(None)
                node[index] = node[index] if node[index] is not None else child
                node = node[index]
            else:
                node = node.setdefault(part, child)
        last = parts[-1]
        if isinstance(node, list):
            while len(node) <= int(last):
                node.append(None)
            node[int(last)] = value
        else:
            node[last] = value
    return root


class StripeRefusal(Exception):
    def __init__(self, status: int, kind: str, message: str, param: str | None = None) -> None:
        self.status, self.kind, self.message, self.param = status, kind, message, param
        super().__init__(message)


@dataclass
class FakeStripe:
    secret_key: str = field(default_factory=lambda: f"sk_test_{secrets.token_hex(16)}")
    webhook_secret: str = field(default_factory=lambda: f"whsec_{secrets.token_hex(16)}")
    base_url: str = ""
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Idempotency-Key -> (the request's parameters, the status and body first answered)
    idempotency: dict[str, tuple[dict[str, Any], int, dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    # -- the API -------------------------------------------------------------------------------

    def create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("mode") != "payment":
            raise StripeRefusal(400, "invalid_request_error", "Only payment mode here", "mode")
        if not params.get("success_url"):
            raise StripeRefusal(
                400, "invalid_request_error", "Missing required param", "success_url"
            )
        items = params.get("line_items")
        if not isinstance(items, list) or len(items) != 1:
            raise StripeRefusal(400, "invalid_request_error", "One line item", "line_items")
        price = items[0].get("price_data") or {}
        amount = price.get("unit_amount", "")
        if not amount.isdecimal() or int(amount) <= 0:
            raise StripeRefusal(
                400,
                "invalid_request_error",
                "Invalid integer",
                "line_items[0][price_data][unit_amount]",
            )
        if not price.get("currency") or not (price.get("product_data") or {}).get("name"):
            raise StripeRefusal(
                400, "invalid_request_error", "Missing price data", "line_items[0][price_data]"
            )
        quantity = int(items[0].get("quantity") or 1)
        session_id = token("cs")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "amount_subtotal": int(amount) * quantity,
            "amount_total": int(amount) * quantity,
            "currency": price["currency"],
            "client_reference_id": params.get("client_reference_id"),
            "customer_email": params.get("customer_email"),
            "metadata": params.get("metadata") or {},
            "payment_intent": None,
            "success_url": params["success_url"],
            "cancel_url": params.get("cancel_url"),
            "url": f"{self.base_url}/c/pay/{session_id}",
            "livemode": False,
            "created": int(time.time()),
            "expires_at": int(time.time()) + 24 * 3600,
            "_intent_metadata": (params.get("payment_intent_data") or {}).get("metadata") or {},
        }
        self.sessions[session_id] = session
        return self.public(session)

    def create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        intent = self.intents.get(params.get("payment_intent", ""))
        if intent is None:
            raise StripeRefusal(
                404, "invalid_request_error", "No such payment_intent", "payment_intent"
            )
        charge = self.charges[intent["latest_charge"]]
        amount = int(params.get("amount") or charge["amount"] - charge["amount_refunded"])
        if amount <= 0 or charge["amount_refunded"] + amount > charge["amount"]:
            raise StripeRefusal(400, "invalid_request_error", "Refund exceeds charge", "amount")
        return self.refund(charge, amount)

    @staticmethod
    def public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    # -- the buyer's side ----------------------------------------------------------------------

    def pay(self, session_id: str, *, amount: int | None = None) -> dict[str, Any]:
        """The buyer pays: the session completes, with a payment intent and its charge."""
        session = self.sessions[session_id]
        intent_id, charge_id = token("pi"), token("ch")
        paid = session["amount_total"] if amount is None else amount
        self.charges[charge_id] = {
            "id": charge_id,
            "object": "charge",
            "amount": paid,
            "amount_refunded": 0,
            "currency": session["currency"],
            "paid": True,
            "refunded": False,
            "payment_intent": intent_id,
            "metadata": dict(session["_intent_metadata"]),
            "refunds": {"object": "list", "data": []},
        }
        self.intents[intent_id] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": paid,
            "currency": session["currency"],
            "status": "succeeded",
            "latest_charge": charge_id,
            "metadata": dict(session["_intent_metadata"]),
        }
        session.update(status="complete", payment_status="paid", payment_intent=intent_id)
        return self.public(session)

    def expire(self, session_id: str) -> dict[str, Any]:
        session = self.sessions[session_id]
        session.update(status="expired")
        return self.public(session)

    def refund(self, charge: dict[str, Any], amount: int) -> dict[str, Any]:
        refund_id = token("re")
        refund = {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "currency": charge["currency"],
            "charge": charge["id"],
            "payment_intent": charge["payment_intent"],
            "status": "succeeded",
            "reason": "requested_by_customer",
            "metadata": {},
        }
        self.refunds[refund_id] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        charge["refunds"]["data"].insert(0, refund)
        return refund

    def charge_of(self, session_id: str) -> dict[str, Any]:
        intent = self.intents[self.sessions[session_id]["payment_intent"]]
        return self.charges[intent["latest_charge"]]

    # -- events and their delivery -------------------------------------------------------------

    def event(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": token("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": json.loads(json.dumps(self.public(obj)))},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }

    def session_event(self, kind: str, session_id: str) -> dict[str, Any]:
        return self.event(kind, self.sessions[session_id])

    def charge_refunded_event(self, session_id: str) -> dict[str, Any]:
        return self.event("charge.refunded", self.charge_of(session_id))

    def refund_event(self, kind: str, refund: dict[str, Any]) -> dict[str, Any]:
        return self.event(kind, refund)

    def signature(
        self, body: bytes, *, timestamp: int | None = None, secret: str | None = None
    ) -> str:
        moment = int(time.time()) if timestamp is None else timestamp
        mac = hmac.new(
            (secret or self.webhook_secret).encode(), f"{moment}.".encode() + body, hashlib.sha256
        )
        return f"t={moment},v1={mac.hexdigest()}"

    @staticmethod
    def body_of(event: dict[str, Any]) -> bytes:
        return json.dumps(event, indent=2).encode("utf-8")  # as Stripe sends it

    async def deliver(
        self,
        url: str,
        event: dict[str, Any],
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        body: bytes | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        """POST the event as Stripe would; `body` replaces what was signed (an altered body)."""
        signed = self.body_of(event)
        header = signature or self.signature(signed, timestamp=timestamp, secret=secret)
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.post(
                url,
                content=signed if body is None else body,
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "Stripe-Signature": header,
                    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                },
            )


class _Api(tornado.web.RequestHandler):
    def initialize(self, stripe: FakeStripe) -> None:
        self.stripe = stripe

    def check_xsrf_cookie(self) -> None:
        return None

    def _error(self, refusal: StripeRefusal) -> None:
        self.set_status(refusal.status)
        error: dict[str, Any] = {"type": refusal.kind, "message": refusal.message}
        if refusal.param:
            error["param"] = refusal.param
        self.finish({"error": error})

    def _authorised(self) -> bool:
        if self.request.headers.get("Authorization") == f"Bearer {self.stripe.secret_key}":
            return True
        self._error(StripeRefusal(401, "invalid_request_error", "Invalid API Key provided"))
        return False

    def _answer(self, create: Any) -> None:
        params = parse_form(self.request.body or b"")
        self.stripe.requests.append((self.request.method or "", self.request.path, params))
        key = self.request.headers.get("Idempotency-Key")
        if key and key in self.stripe.idempotency:
            first, status, body = self.stripe.idempotency[key]
            if first != params:
                return self._error(
                    StripeRefusal(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters",
                    )
                )
            self.set_status(status)
            self.set_header("Idempotent-Replayed", "true")
            return self.finish(body)
        try:
            status, body = 200, create(params)
        except StripeRefusal as refusal:
            status, body = (
                refusal.status,
                {"error": {"type": refusal.kind, "message": refusal.message}},
            )
        if key:
            self.stripe.idempotency[key] = (params, status, body)
        self.set_status(status)
        self.finish(body)


class _Sessions(_Api):
    def post(self) -> None:
        if self._authorised():
            self._answer(self.stripe.create_session)


class _Session(_Api):
    def get(self, session_id: str) -> None:
        if not self._authorised():
            return
        session = self.stripe.sessions.get(session_id)
        if session is None:
            return self._error(
                StripeRefusal(404, "invalid_request_error", "No such checkout.session")
            )
        self.finish(self.stripe.public(session))


class _Refunds(_Api):
    def post(self) -> None:
        if self._authorised():
            self._answer(self.stripe.create_refund)


@contextlib.asynccontextmanager
async def running_stripe() -> AsyncIterator[FakeStripe]:
    """The fake Stripe on an unused port of this process."""
    stripe = FakeStripe()
    app = tornado.web.Application(
        [
            (r"/v1/checkout/sessions", _Sessions, {"stripe": stripe}),
            (r"/v1/checkout/sessions/([^/]+)", _Session, {"stripe": stripe}),
            (r"/v1/refunds", _Refunds, {"stripe": stripe}),
        ]
    )
    server = tornado.httpserver.HTTPServer(app)
    sock, port = tornado.testing.bind_unused_port()
    server.add_sockets([sock])
    stripe.base_url = f"http://127.0.0.1:{port}"
    try:
        yield stripe
    finally:
        server.stop()
        await server.close_all_connections()
