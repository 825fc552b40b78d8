"""Payment endpoints: buy a points package through a gateway, read payments, gateway webhooks.

`POST /api/points/purchase/` {package_id, gateway, currency?} and the seed's per-gateway
`POST /api/payments/{stripe,paypal,paymob}/` {package_id} open a checkout;
`GET /api/payments/history/` and `GET /api/payments/{id}/` read payments;
`POST /api/payments/stripe/webhook/` stores Stripe's notification and answers at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from skillswap.http.base import (
    BaseHandler,
    idempotent,
    limited,
    path_id,
    public,
    route,
    takes_query,
)
from skillswap.http.operations import operation
from skillswap.http.query import PageQuery
from skillswap.http.schemas import Out, Page
from skillswap.http.validation import Body, Id
from skillswap.models import Payment
from skillswap.models.payments import PaymentStatus
from skillswap.payments import services as payments
from skillswap.payments.packages import price_text

CURRENCY = r"^[A-Z]{3}$"


class PaymentOut(Out):
    """A purchase of points through a gateway."""

    id: int
    gateway: str
    status: str = Field(json_schema_extra={"enum": [s.value for s in PaymentStatus]})
    package_id: int | None = Field(description="null once the package was deleted")
    points: int
    amount: str = Field(description="Exact decimal, e.g. `4.99`")
    amount_minor: int
    currency: str
    refunded_minor: int
    redirect_url: str | None = Field(description="Where the app sends the buyer to pay")
    created_at: datetime
    updated_at: datetime
    settled_at: datetime | None = Field(description="When the gateway confirmed it")


class WebhookReceived(Out):
    received: bool
    duplicate: bool = Field(description="This event had been received before")


def payment_json(payment: Payment) -> dict[str, Any]:
    """A payment as its buyer (or an administrator) sees it."""
    return {
        "id": payment.id,
        "gateway": payment.gateway,
        "status": payment.status,
        "package_id": payment.package_id,
        "points": payment.points,
        "amount": price_text(payment.amount_minor, payment.currency),
        "amount_minor": payment.amount_minor,
        "currency": payment.currency,
        "refunded_minor": payment.refunded_minor,
        "redirect_url": payment.redirect_url,
        "created_at": payment.created_at,
        "updated_at": payment.updated_at,
        "settled_at": payment.settled_at,
    }


class GatewayPurchaseBody(Body):
    package_id: Id
    currency: str | None = Field(default=None, pattern=CURRENCY)


class PurchaseBody(GatewayPurchaseBody):
    gateway: str = Field(min_length=1, max_length=32, description="stripe, paypal or paymob")


class _Purchase(BaseHandler):
    async def purchase(self, gateway: str, body: GatewayPurchaseBody) -> None:
        payment = await payments.create_payment(
            self.deps,
            actor=self.user,
            package_id=body.package_id,
            gateway_name=gateway,
            currency=body.currency,
            return_url=self.deps.settings.payment_return_url or self.absolute_url("/"),
        )
        self.send(payment_json(payment), status=201)

    def location_of(self, created: Any) -> str:
        return f"/api/payments/{created['id']}/"


class PurchaseHandler(_Purchase):
    @operation(
        "purchasePoints",
        tag="Points",
        body=PurchaseBody,
        response=PaymentOut,
        status=201,
        problems=(404, 409, 503),
    )
    @limited("purchase")
    @idempotent
    async def post(self) -> None:
        """Buy a points package: a pending payment and the gateway's checkout (`redirect_url`)."""
        body = self.parse_body(PurchaseBody)
        await self.purchase(body.gateway, body)


class _OneGateway(_Purchase):
    """The seed's per-gateway paths: `gateway` is the one the path names."""

    gateway: str

    async def purchase_here(self) -> None:
        await self.purchase(self.gateway, self.parse_body(GatewayPurchaseBody))


def _pay_with(gateway: str) -> Any:
    """The declaration of one gateway's purchase path."""
    return operation(
        f"payWith{gateway.capitalize()}",
        tag="Points",
        body=GatewayPurchaseBody,
        response=PaymentOut,
        status=201,
        problems=(404, 409, 503),
    )


class StripePurchaseHandler(_OneGateway):
    gateway = "stripe"

    @_pay_with("stripe")
    @limited("purchase")
    @idempotent
    async def post(self) -> None:
        """Buy a points package through Stripe (purchasePoints with `gateway: stripe`)."""
        await self.purchase_here()


class PaypalPurchaseHandler(_OneGateway):
    gateway = "paypal"

    @_pay_with("paypal")
    @limited("purchase")
    @idempotent
    async def post(self) -> None:
        """Buy a points package through PayPal (400 `unknown_gateway` until it is configured)."""
        await self.purchase_here()


class PaymobPurchaseHandler(_OneGateway):
    gateway = "paymob"

    @_pay_with("paymob")
    @limited("purchase")
    @idempotent
    async def post(self) -> None:
        """Buy a points package through Paymob (400 `unknown_gateway` until it is configured)."""
        await self.purchase_here()


class PaymentHistoryHandler(BaseHandler):
    @operation("listPayments", tag="Points", response=Page[PaymentOut], paged=True)
    @takes_query(PageQuery)
    async def get(self) -> None:
        """The signed-in user's payments, newest first."""
        page = self.page_params()
        count, rows = await payments.list_payments(
            self.deps, actor=self.user, offset=page.offset, limit=page.page_size
        )
        self.send_page(page, count=count, results=[payment_json(p) for p in rows])


class PaymentHandler(BaseHandler):
    @operation("getPayment", tag="Points", response=PaymentOut, problems=(404,))
    async def get(self, payment_id: str) -> None:
        """One payment (its buyer and administrators only)."""
        payment = await payments.get_payment(
            self.deps, actor=self.user, payment_id=path_id(payment_id)
        )
        self.send(payment_json(payment))


class StripeWebhookHandler(BaseHandler):
    @operation("stripeWebhook", tag="Points", response=WebhookReceived)
    @public
    async def post(self) -> None:
        """Stripe's notifications: verified on the raw body, stored, processed by the worker."""
        stored = await payments.receive_webhook(
            self.deps,
            gateway_name="stripe",
            body=self.request.body or b"",
            headers=self.request.headers,
        )
        self.send({"received": True, "duplicate": not stored})


routes = [
    route("/api/points/purchase/", PurchaseHandler),
    route("/api/payments/history/", PaymentHistoryHandler),
    route("/api/payments/stripe/webhook/", StripeWebhookHandler),
    route("/api/payments/stripe/", StripePurchaseHandler),
    route("/api/payments/paypal/", PaypalPurchaseHandler),
    route("/api/payments/paymob/", PaymobPurchaseHandler),
    route(r"/api/payments/(?P<payment_id>\d+)/", PaymentHandler),
]
