"""Which gateways this deployment offers, and the adapter for one of them.

A gateway is offered when its settings are complete; an unconfigured one is simply not offered
(asking for it is a 400 listing those that are). Adapters are thin and hold no connection of
their own (they borrow the process's httpx client), so one is made where it is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from skillswap.errors import BadRequest
from skillswap.i18n import lazy
from skillswap.payments import paymob_gateway, paypal_gateway, stripe_gateway
from skillswap.payments.gateway import Gateway
from skillswap.settings import Settings

if TYPE_CHECKING:
    from skillswap.deps import Deps

# Each gateway, in the API's order: whether its settings are complete, and its adapter.
GATEWAYS: dict[
    str, tuple[Callable[[Settings], bool], Callable[[Settings, httpx.AsyncClient], Gateway]]
] = {
    stripe_gateway.NAME: (stripe_gateway.configured, stripe_gateway.StripeGateway),
    paypal_gateway.NAME: (paypal_gateway.configured, paypal_gateway.PaypalGateway),
    paymob_gateway.NAME: (paymob_gateway.configured, paymob_gateway.PaymobGateway),
}


def configured_gateways(settings: Settings) -> list[str]:
    """The gateways this deployment offers, in the API's order."""
    return [name for name, (configured, _) in GATEWAYS.items() if configured(settings)]


def unknown_gateway(settings: Settings) -> BadRequest:
    """The 400 for a gateway that is unknown or not configured, naming those that are."""
    offered = configured_gateways(settings)
    detail = (
        lazy("Choose one of the payment gateways offered: {gateways}.", gateways=", ".join(offered))
        if offered
        else lazy("No payment gateway is configured.")
    )
    return BadRequest(detail, code="unknown_gateway", extra={"configured_gateways": offered})


def gateway_for(deps: Deps, name: str) -> Gateway:
    """The adapter for `name`, or the 400 of `unknown_gateway`."""
    if name not in configured_gateways(deps.settings):
        raise unknown_gateway(deps.settings)
    _, adapter = GATEWAYS[name]
    return adapter(deps.settings, deps.http)
