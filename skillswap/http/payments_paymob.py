"""Paymob's endpoints: its transaction callback, and the page it sends the buyer back to.

`POST /api/payments/paymob/webhook/?hmac=...` (the transaction processed callback) is verified
by its hmac, stored and answered at once; the worker processes it. `GET
/api/payments/paymob/return/` (the transaction response callback) is where the browser lands
after paying: its hmac is checked and the browser goes on to the web app's page
(PAYMENT_RETURN_URL) with `?payment={id}&outcome=success`, or `cancel` when Paymob declined;
it never settles anything.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from tornado.httputil import HTTPHeaders

from skillswap.http.base import BaseHandler, public, route, takes_query
from skillswap.http.operations import operation
from skillswap.http.payments import WebhookReceived
from skillswap.http.schemas import Out
from skillswap.http.validation import Body
from skillswap.payments import services as payments
from skillswap.payments.paymob_gateway import HMAC_HEADER, NAME, RETURN_PATH, WEBHOOK_PATH
from skillswap.payments.paymob_return import paymob_return

HMAC_MAX = 256  # a hex SHA-512 is 128


class PaymobWebhookQuery(Body):
    """What Paymob adds to the notification URL: the callback's signature, nothing else."""

    hmac: str | None = Field(default=None, max_length=HMAC_MAX, description="HMAC-SHA512, hex")


class PaymobReturnQuery(BaseModel):
    """The transaction and its signature; Paymob adds many more, all signed or ignored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    hmac: str | None = Field(default=None, max_length=HMAC_MAX, description="HMAC-SHA512, hex")


class PaymobReturned(Out):
    """Where a buyer back from Paymob is sent, for apps that ask for JSON."""

    payment_id: int
    outcome: str = Field(json_schema_extra={"enum": ["success", "cancel"]})
    redirect_url: str = Field(description="The web app's page (PAYMENT_RETURN_URL) for it")


def _accepts_json(accept: str) -> bool:
    return any(
        part.split(";")[0].strip().lower() == "application/json" for part in accept.split(",")
    )


class PaymobWebhookHandler(BaseHandler):
    @operation("paymobWebhook", tag="Points", response=WebhookReceived)
    @public
    @takes_query(PaymobWebhookQuery)
    async def post(self) -> None:
        """Paymob's transaction callbacks: verified by their hmac, stored, processed by the worker."""
        headers = HTTPHeaders(self.request.headers)
        headers.pop(HMAC_HEADER, None)  # only the query's hmac is Paymob's
        signature = self.query(PaymobWebhookQuery).hmac
        if signature:
            headers[HMAC_HEADER] = signature
        stored = await payments.receive_webhook(
            self.deps, gateway_name=NAME, body=self.request.body or b"", headers=headers
        )
        self.send({"received": True, "duplicate": not stored})


class PaymobReturnHandler(BaseHandler):
    @operation(
        "paymobReturn", tag="Points", response=PaymobReturned, also={302: None}, problems=(404,)
    )
    @public
    @takes_query(PaymobReturnQuery)
    async def get(self) -> None:
        """The buyer is back from Paymob: the result is checked and shown, never settled.

        A browser gets a 302 to the web app's page; an app that sends `Accept:
        application/json` gets where that would be.
        """
        query = {
            name: values[-1].decode("utf-8", "replace")
            for name, values in self.request.query_arguments.items()
        }
        returned = await paymob_return(self.deps, query=query)
        base = self.deps.settings.payment_return_url or self.absolute_url("/")
        success, cancel = payments.return_urls(base, returned.payment_id)
        outcome, page = ("success", success) if returned.paid_or_pending else ("cancel", cancel)
        if _accepts_json(self.request.headers.get("Accept", "")):
            self.send({"payment_id": returned.payment_id, "outcome": outcome, "redirect_url": page})
            return
        self.redirect(page, status=302)


routes = [
    route(WEBHOOK_PATH, PaymobWebhookHandler),
    route(RETURN_PATH, PaymobReturnHandler),
]
