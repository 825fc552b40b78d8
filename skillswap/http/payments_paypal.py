"""PayPal's endpoints: its webhook, and the page PayPal sends the buyer back to.

`POST /api/payments/paypal/webhook/` has PayPal verify the notification, stores it and answers
at once (the worker processes it). `GET /api/payments/paypal/return/?token=ORDER_ID` is where
the buyer lands after approving: the order is captured and settled (once, however it races the
`CHECKOUT.ORDER.APPROVED` webhook), then the browser goes on to the web app's page
(PAYMENT_RETURN_URL) with `?payment={id}&outcome=success`, or `cancel` when PayPal declined;
a client that asks for `application/json` gets the payment instead.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from skillswap.http.base import BaseHandler, public, route, takes_query
from skillswap.http.operations import operation
from skillswap.http.payments import PaymentOut, WebhookReceived, payment_json
from skillswap.models.payments import PaymentStatus
from skillswap.payments import services as payments
from skillswap.payments import settlement
from skillswap.payments.paypal_gateway import NAME, RETURN_PATH

# Where the buyer is sent on as having paid: PayPal took the money, or is still deciding.
PAID_OR_PENDING = (PaymentStatus.SUCCEEDED, PaymentStatus.PENDING)


def _accepts_json(accept: str) -> bool:
    return any(
        part.split(";")[0].strip().lower() == "application/json" for part in accept.split(",")
    )


class PaypalReturnQuery(BaseModel):
    """What PayPal appends to the return URL (`token`, `PayerID`); any other argument is
    PayPal's to add and ignored here."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    token: str = Field(min_length=1, max_length=64, description="The PayPal order's id")


class PaypalWebhookHandler(BaseHandler):
    @operation("paypalWebhook", tag="Points", response=WebhookReceived, problems=(503,))
    @public
    async def post(self) -> None:
        """PayPal's notifications: verified by PayPal as received, stored, processed by the worker."""
        stored = await payments.receive_webhook(
            self.deps,
            gateway_name=NAME,
            body=self.request.body or b"",
            headers=self.request.headers,
        )
        self.send({"received": True, "duplicate": not stored})


class PaypalReturnHandler(BaseHandler):
    @operation("paypalReturn", tag="Points", response=PaymentOut, also={302: None}, problems=(404,))
    @public
    @takes_query(PaypalReturnQuery)
    async def get(self) -> None:
        """The buyer is back from PayPal: the order is captured, then a 302 to the web app (or,
        with `Accept: application/json`, the payment)."""
        token = self.query(PaypalReturnQuery).token
        payment = await settlement.settle_from_gateway(
            self.deps, gateway_name=NAME, reference=token
        )
        if _accepts_json(self.request.headers.get("Accept", "")):
            self.send(payment_json(payment))
            return
        base = self.deps.settings.payment_return_url or self.absolute_url("/")
        success, cancel = payments.return_urls(base, payment.id)
        self.redirect(success if payment.status in PAID_OR_PENDING else cancel, status=302)


routes = [
    route("/api/payments/paypal/webhook/", PaypalWebhookHandler),
    route(RETURN_PATH, PaypalReturnHandler),
]
