"""A local Paymob that answers like Paymob's API and sends callbacks the way Paymob signs them.

A real Tornado app on an unused port. With `Authorization: Token <secret key>` (401 otherwise)
and JSON bodies it serves:

- `POST /v1/intention/`: amount (piastres) equal to the items' sum, known integration ids in
  `payment_methods` (404 with Paymob's message otherwise), `first_name`, `last_name`, `email`
  and `phone_number` in `billing_data`, a `special_reference` not used before; it opens an
  order and answers the intention (`id`, `client_secret`, `intention_order_id`, ...), 201.
- `POST /api/acceptance/void_refund/refund` (`transaction_id`, `amount_cents`): a refund
  transaction of its own, a child of the paid one, which is marked refunded.
- `POST /api/ecommerce/orders/transaction_inquiry` (`order_id`): the order's last transaction,
  404 when it has none.

The test drives the buyer: `pay(checkout_url, ...)` makes a transaction on the intention's
order (paid, declined or pending; of another amount). `deliver(tx)` POSTs the transaction
processed callback to the intention's notification_url with `?hmac=` (HMAC-SHA512 with the
HMAC secret over the documented fields); it can sign with another secret, or send a body other
than the one it signed. `return_url(tx)` is where Paymob would redirect the buyer's browser.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import itertools
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import tornado.httpserver
import tornado.testing
import tornado.web

# Paymob's documented order of the signed fields (processed callback: paths into `obj`).
SIGNED = (
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
REQUIRED_BILLING = ("first_name", "last_name", "email", "phone_number")
OWNER = 302852  # the merchant's user at Paymob
_ids = itertools.count(192036465)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _at(obj: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None  # type: ignore[assignment]
    return obj


class PaymobRefusal(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        self.status, self.detail = status, detail
        super().__init__(str(detail))


@dataclass
class FakePaymob:
    secret_key: str = field(default_factory=lambda: f"egy_sk_test_{secrets.token_hex(16)}")
    public_key: str = field(default_factory=lambda: f"egy_pk_test_{secrets.token_hex(8)}")
    hmac_secret: str = field(default_factory=lambda: secrets.token_hex(16).upper())
    integration_ids: tuple[int, ...] = (4097558, 4097559)
    base_url: str = ""
    intentions: dict[str, dict[str, Any]] = field(default_factory=dict)  # by client secret
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    transactions: dict[int, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    # -- the API -------------------------------------------------------------------------------

    def create_intention(self, params: dict[str, Any]) -> dict[str, Any]:
        amount, items = params.get("amount"), params.get("items") or []
        if type(amount) is not int or amount <= 0:
            raise PaymobRefusal(400, {"amount": ["A valid integer is required."]})
        if sum(item.get("amount", 0) * item.get("quantity", 1) for item in items) != amount:
            raise PaymobRefusal(400, {"detail": "Items total amount must equal the amount."})
        methods = params.get("payment_methods") or []
        if not methods or any(m not in self.integration_ids for m in methods):
            raise PaymobRefusal(
                404, {"detail": "Integration ID/Name does not exist in our system ."}
            )
        billing = params.get("billing_data") or {}
        missing = [name for name in REQUIRED_BILLING if not billing.get(name)]
        if missing:
            raise PaymobRefusal(
                400, {"billing_data": {n: ["This field is required."] for n in missing}}
            )
        reference = params.get("special_reference")
        if any(i["special_reference"] == reference for i in self.intentions.values()):
            raise PaymobRefusal(400, {"detail": "special reference is duplicate"})
        order_id = next(_ids)
        client_secret = f"egy_csk_test_{secrets.token_hex(16)}"
        self.orders[order_id] = {
            "id": order_id,
            "created_at": _now(),
            "amount_cents": amount,
            "currency": params.get("currency"),
            "merchant_order_id": reference,
            "paid_amount_cents": 0,
        }
        intention = {
            "id": f"pi_test_{secrets.token_hex(12)}",
            "client_secret": client_secret,
            "intention_order_id": order_id,
            "special_reference": reference,
            "status": "intended",
            "intention_detail": {
                "amount": amount,
                "currency": params.get("currency"),
                "items": items,
                "billing_data": billing,
            },
            "payment_keys": [
                {"integration": m, "key": secrets.token_hex(8), "order_id": order_id}
                for m in methods
            ],
            "payment_methods": [{"integration_id": m} for m in methods],
            "extras": {"creation_extras": params.get("extras") or {}},
            "confirmed": False,
            "created": _now(),
            "notification_url": params.get("notification_url"),
            "redirection_url": params.get("redirection_url"),
        }
        self.intentions[client_secret] = intention
        return {k: v for k, v in intention.items() if not k.endswith("_url")}

    def create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        parent = self.transactions.get(params.get("transaction_id"))  # type: ignore[arg-type]
        amount = params.get("amount_cents")
        if parent is None or not parent["success"] or parent["has_parent_transaction"]:
            raise PaymobRefusal(404, {"detail": "Transaction not found or not refundable."})
        if type(amount) is not int or not 0 < amount <= self.refundable(parent):
            raise PaymobRefusal(400, {"detail": "Refund amount exceeds the refundable amount."})
        return self.refund(parent, amount)

    def inquiry(self, params: dict[str, Any]) -> dict[str, Any]:
        order_id = params.get("order_id")
        found = [tx for tx in self.transactions.values() if tx["order"]["id"] == order_id]
        if not found:
            raise PaymobRefusal(404, {"detail": "Not found."})
        return copy.deepcopy(found[-1])

    # -- the buyer's side and the dashboard ----------------------------------------------------

    def intention_of(self, checkout_url: str) -> dict[str, Any]:
        [client_secret] = parse_qs(urlsplit(checkout_url).query)["clientSecret"]
        return self.intentions[client_secret]

    def pay(
        self,
        checkout_url: str,
        *,
        success: bool = True,
        pending: bool = False,
        amount: int | None = None,
        currency: str | None = None,
        wallet: bool = False,
    ) -> dict[str, Any]:
        """The buyer pays at the checkout: a transaction on the intention's order."""
        intention = self.intention_of(checkout_url)
        order = self.orders[intention["intention_order_id"]]
        paid = order["amount_cents"] if amount is None else amount
        tx = self._transaction(
            order,
            amount=paid,
            currency=currency or order["currency"],
            success=success and not pending,
            pending=pending,
            source=("wallet", "wallet", "01010101010")
            if wallet
            else ("card", "MasterCard", "2346"),
            message="Approved"
            if success and not pending
            else ("Pending" if pending else "Do not honour"),
        )
        if tx["success"]:
            order["paid_amount_cents"] = paid
        return tx

    def settle(self, tx: dict[str, Any]) -> dict[str, Any]:
        """A pending (wallet) transaction goes through: the same transaction, now paid."""
        tx.update(pending=False, success=True, data={"message": "Approved"})
        return tx

    def refundable(self, parent: dict[str, Any]) -> int:
        return int(parent["amount_cents"]) - int(parent["refunded_amount_cents"])

    def refund(self, parent: dict[str, Any], amount: int) -> dict[str, Any]:
        """A refund transaction (from the API or the dashboard), a child of the paid one."""
        order = self.orders[parent["order"]["id"]]
        child = self._transaction(
            order,
            amount=amount,
            currency=parent["currency"],
            success=True,
            pending=False,
            source=(
                parent["source_data"]["type"],
                parent["source_data"]["sub_type"],
                parent["source_data"]["pan"],
            ),
            message="Approved",
        )
        child.update(has_parent_transaction=True, is_refund=True, parent_transaction=parent["id"])
        parent["refunded_amount_cents"] += amount
        parent["is_refunded"] = True
        return child

    def _transaction(
        self,
        order: dict[str, Any],
        *,
        amount: int,
        currency: str,
        success: bool,
        pending: bool,
        source: tuple[str, str, str],
        message: str,
    ) -> dict[str, Any]:
        tx_id = next(_ids)
        kind, sub_type, pan = source
        tx = {
            "id": tx_id,
            "pending": pending,
            "amount_cents": amount,
            "success": success,
            "is_auth": False,
            "is_capture": False,
            "is_standalone_payment": True,
            "is_voided": False,
            "is_refunded": False,
            "is_3d_secure": kind == "card",
            "integration_id": self.integration_ids[1 if kind == "wallet" else 0],
            "profile_id": 164295,
            "has_parent_transaction": False,
            "order": dict(order),
            "created_at": _now(),
            "currency": currency,
            "source_data": {"pan": pan, "type": kind, "sub_type": sub_type},
            "error_occured": False,
            "is_refund": False,
            "is_void": False,
            "refunded_amount_cents": 0,
            "owner": OWNER,
            "parent_transaction": None,
            "data": {"message": message},
        }
        self.transactions[tx_id] = tx
        return tx

    # -- callbacks -----------------------------------------------------------------------------

    def sign(self, values: list[str], *, secret: str | None = None) -> str:
        key = (secret or self.hmac_secret).encode()
        return hmac.new(key, "".join(values).encode(), hashlib.sha512).hexdigest()

    def processed_hmac(self, tx: dict[str, Any], *, secret: str | None = None) -> str:
        return self.sign([_text(_at(tx, path)) for path in SIGNED], secret=secret)

    @staticmethod
    def body_of(tx: dict[str, Any]) -> bytes:
        callback = {
            "type": "TRANSACTION",
            "obj": tx,
            "issuer_bank": None,
            "transaction_processed_callback_responses": "",
        }
        return json.dumps(callback).encode()

    def notification_url(self, tx: dict[str, Any]) -> str:
        order_id = tx["order"]["id"]
        [intention] = [i for i in self.intentions.values() if i["intention_order_id"] == order_id]
        return str(intention["notification_url"])

    async def deliver(
        self,
        tx: dict[str, Any],
        *,
        url: str | None = None,
        secret: str | None = None,
        body: bytes | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        """POST the processed callback as Paymob does; `body` replaces what was signed."""
        signed = copy.deepcopy(tx)
        mac = signature if signature is not None else self.processed_hmac(signed, secret=secret)
        target = url or self.notification_url(tx)
        query = f"?{urlencode({'hmac': mac})}" if mac else ""
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.post(
                target + query,
                content=self.body_of(signed) if body is None else body,
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "python-requests/2.31.0",
                },
            )

    def return_query(self, tx: dict[str, Any], *, secret: str | None = None) -> dict[str, str]:
        """The response callback's query: the transaction flattened, and its hmac."""
        flat = {name: _text(_at(tx, name)) for name in SIGNED if name != "order.id"}
        flat.update(
            order=str(tx["order"]["id"]),
            merchant_order_id=str(tx["order"]["merchant_order_id"]),
            **{"data.message": str(tx["data"]["message"]), "txn_response_code": "APPROVED"},
        )
        signed = [flat["order"] if name == "order.id" else flat[name] for name in SIGNED]
        flat["hmac"] = self.sign(signed, secret=secret)
        return flat

    def return_url(self, tx: dict[str, Any], **options: Any) -> str:
        order_id = tx["order"]["id"]
        [intention] = [i for i in self.intentions.values() if i["intention_order_id"] == order_id]
        return f"{intention['redirection_url']}?{urlencode(self.return_query(tx, **options))}"


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat()


class _Api(tornado.web.RequestHandler):
    def initialize(self, paymob: FakePaymob) -> None:
        self.paymob = paymob

    def check_xsrf_cookie(self) -> None:
        return None

    def _serve(self, answer: Any, created: int = 200) -> None:
        if self.request.headers.get("Authorization") != f"Token {self.paymob.secret_key}":
            self.set_status(401)
            self.finish({"detail": "Authentication credentials were not provided."})
            return
        params = json.loads(self.request.body or b"{}")
        self.paymob.requests.append((self.request.method or "", self.request.path, params))
        try:
            body = answer(params)
        except PaymobRefusal as refusal:
            self.set_status(refusal.status)
            self.finish(refusal.detail)
            return
        self.set_status(created)
        self.finish(body)


class _Intentions(_Api):
    def post(self) -> None:
        self._serve(self.paymob.create_intention, created=201)


class _Refunds(_Api):
    def post(self) -> None:
        self._serve(self.paymob.create_refund)


class _Inquiry(_Api):
    def post(self) -> None:
        self._serve(self.paymob.inquiry)


@contextlib.asynccontextmanager
async def running_paymob() -> AsyncIterator[FakePaymob]:
    """The fake Paymob on an unused port of this process."""
    paymob = FakePaymob()
    app = tornado.web.Application(
        [
            (r"/v1/intention/", _Intentions, {"paymob": paymob}),
            (r"/api/acceptance/void_refund/refund", _Refunds, {"paymob": paymob}),
            (r"/api/ecommerce/orders/transaction_inquiry", _Inquiry, {"paymob": paymob}),
        ]
    )
    server = tornado.httpserver.HTTPServer(app)
    sock, port = tornado.testing.bind_unused_port()
    server.add_sockets([sock])
    paymob.base_url = f"http://127.0.0.1:{port}"
    try:
        yield paymob
    finally:
        server.stop()
        await server.close_all_connections()
