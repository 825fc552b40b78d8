"""The buyer's way back from Paymob's checkout (the response callback): shown, never settled.

Paymob redirects the browser with the transaction in the query, signed like its callbacks. The
hmac is checked so that nobody is shown a result Paymob did not give, but only the processed
callback (the webhook, through the worker) or reconciliation ever moves a payment or credits:
a browser's URL is the buyer's to replay, alter or never load.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from skillswap.errors import BadRequest, NotFound
from skillswap.i18n import lazy
from skillswap.models import Payment
from skillswap.payments.gateway import WebhookRefused
from skillswap.payments.gateways import unknown_gateway
from skillswap.payments.paymob_gateway import NAME, PaymobGateway, configured

if TYPE_CHECKING:
    from skillswap.deps import Deps

log = logging.getLogger("skillswap.payments")


@dataclass(frozen=True)
class PaymobReturn:
    payment_id: int
    paid_or_pending: bool  # what Paymob told the buyer: paid, or still on its way


async def paymob_return(deps: Deps, *, query: Mapping[str, str]) -> PaymobReturn:
    """The payment a verified return is about, and whether Paymob told the buyer it was paid."""
    if not configured(deps.settings):
        raise unknown_gateway(deps.settings)
    try:
        returned = PaymobGateway(deps.settings, deps.http).verify_return(query)
    except WebhookRefused as exc:
        log.warning("paymob return refused: %s", exc)
        raise BadRequest(
            lazy("This return from the payment gateway could not be verified."),
            code="invalid_return",
        ) from None
    async with deps.db.read() as session:
        payment_id = await session.scalar(
            select(Payment.id).where(
                Payment.gateway == NAME, Payment.reference == returned.reference
            )
        )
    if payment_id is None:
        raise NotFound(lazy("This payment does not exist."), code="payment_not_found")
    return PaymobReturn(payment_id, returned.paid_or_pending)
