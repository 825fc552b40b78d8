"""Payment use cases: buy a package (a pending payment and its checkout), read payments, and
receive a gateway's webhook (stored once, processed by the worker: skillswap.payments.settlement).

No transaction is held open across a call to a gateway: the payment is committed `pending`
first, the checkout is opened, and its reference is written in a second transaction. A webhook
is verified on its raw bytes, then stored under UNIQUE (gateway, event_id) together with the
outbox row that has it processed, so a delivery is answered at once and a duplicate adds nothing.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from skillswap import metrics
from skillswap.errors import BadRequest, NotFound, ServiceUnavailable
from skillswap.i18n import lazy
from skillswap.models import Payment, PaymentEvent, PaymentStatus, PointsPackage, User
from skillswap.payments.gateway import CheckoutRequest, GatewayError, WebhookRefused
from skillswap.payments.gateways import gateway_for
from skillswap.payments.packages import Price, package_prices
from skillswap.tasks import outbox

if TYPE_CHECKING:
    from skillswap.deps import Deps

log = logging.getLogger("skillswap.payments")

EVENT_KIND = "payment.event"  # the outbox kind that processes one stored webhook event


def event_work_key(event_row_id: int) -> str:
    """The outbox key of a stored event's processing: one row per stored event."""
    return f"payment.event:{event_row_id}"


def _package_not_found() -> NotFound:
    return NotFound(lazy("This points package is not for sale."), code="package_not_found")


def _payment_not_found() -> NotFound:
    return NotFound(lazy("This payment does not exist."), code="payment_not_found")


def return_urls(base: str, payment_id: int) -> tuple[str, str]:
    """Where the gateway sends the buyer back after paying, and after giving up."""
    joiner = "&" if "?" in base else "?"

    def url(outcome: str) -> str:
        return f"{base}{joiner}{urlencode({'payment': payment_id, 'outcome': outcome})}"

    return url("success"), url("cancel")


def choose_price(
    prices: list[Price], *, requested: str | None, gateway_name: str, accepted: tuple[str, ...]
) -> Price:
    """The price to charge: the one in the requested currency, else the default (first) price
    if the gateway takes it, else the first one it takes. A gateway that names no currencies
    takes any; none to be had is a 400 naming what the package has and the gateway takes."""
    possible = [price for price in prices if not accepted or price.currency in accepted]
    chosen = next(
        (price for price in possible if requested is None or price.currency == requested), None
    )
    if chosen is not None:
        return chosen
    package_currencies = [price.currency for price in prices]
    extra = {
        "package_currencies": package_currencies,
        "gateway_currencies": list(accepted),
        "possible_currencies": [price.currency for price in possible],
    }
    if possible:
        detail = lazy(
            "This package cannot be paid in {currency} through {gateway}; it can be paid in"
            " {currencies}.",
            currency=requested,
            gateway=gateway_name,
            currencies=", ".join(extra["possible_currencies"]),
        )
    else:
        detail = lazy(
            "This package cannot be paid through {gateway}: it is priced in {package_currencies}"
            " and {gateway} takes {gateway_currencies}.",
            gateway=gateway_name,
            package_currencies=", ".join(package_currencies),
            gateway_currencies=", ".join(accepted),
        )
    raise BadRequest(detail, code="currency_not_offered", extra=extra)


async def create_payment(
    deps: Deps,
    *,
    actor: User,
    package_id: int,
    gateway_name: str,
    currency: str | None,
    return_url: str,
) -> Payment:
    """A pending payment for the package and the gateway's checkout the buyer is sent to."""
    gateway = gateway_for(deps, gateway_name)
    now = deps.clock()
    async with deps.db.uow() as uow:
        package = await uow.session.get(PointsPackage, package_id)
        if package is None or not package.is_active:
            raise _package_not_found()
        price = choose_price(
            package_prices(package),
            requested=currency,
            gateway_name=gateway.name,
            accepted=gateway.currencies,
        )
        payment = Payment(
            user_id=actor.id,
            package_id=package.id,
            gateway=gateway.name,
            status=PaymentStatus.PENDING,
            points=package.points,
            amount_minor=price.amount_minor,
            currency=price.currency,
            refunded_minor=0,
            created_at=now,
            updated_at=now,
        )
        uow.session.add(payment)
        await uow.session.flush()
        metrics.on_commit(uow.session, metrics.count_payment(payment.gateway, payment.status))
        name = package.name_ar if actor.locale == "ar" else package.name_en
        await uow.commit()
    success_url, cancel_url = return_urls(return_url, payment.id)
    translator = deps.catalogs.get(actor.locale)
    request = CheckoutRequest(
        payment_id=payment.id,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        points=payment.points,
        description=translator.text(
            lazy("{package}: {points} SkillSwap points", package=name, points=payment.points)
        ),
        buyer_email=actor.email,
        success_url=success_url,
        cancel_url=cancel_url,
        buyer_name=actor.display_name or actor.username,
        buyer_phone=actor.phone,
    )
    try:
        checkout = await gateway.create_checkout(request)
    except GatewayError as exc:
        log.warning("payment %d: the %s checkout failed: %s", payment.id, gateway.name, exc)
        await _close_unopened(deps, payment, reason=str(exc))
        raise ServiceUnavailable(
            lazy("The payment gateway could not be reached. Try again shortly."),
            code="gateway_unavailable",
        ) from exc
    async with deps.db.uow() as uow:
        await uow.session.execute(
            update(Payment)
            .where(Payment.id == payment.id, Payment.reference.is_(None))
            .values(
                reference=checkout.reference,
                redirect_url=checkout.redirect_url,
                updated_at=deps.clock(),
            )
        )
        await uow.commit()
    payment.reference = checkout.reference
    payment.redirect_url = checkout.redirect_url
    return payment


async def _close_unopened(deps: Deps, payment: Payment, *, reason: str) -> None:
    """A payment whose checkout never opened: failed, so that nobody waits for it."""
    async with deps.db.uow() as uow:
        closed = await uow.session.execute(
            update(Payment)
            .where(Payment.id == payment.id, Payment.status == PaymentStatus.PENDING)
            .values(
                status=PaymentStatus.FAILED,
                failure_reason=f"checkout not opened: {reason}",
                updated_at=deps.clock(),
            )
        )
        if closed.rowcount:  # type: ignore[attr-defined]
            metrics.on_commit(uow.session, metrics.count_payment(payment.gateway, "failed"))
        await uow.commit()
    payment.status = PaymentStatus.FAILED


async def list_payments(
    deps: Deps, *, actor: User, offset: int, limit: int
) -> tuple[int, list[Payment]]:
    """The actor's payments, newest first, with the total count."""
    async with deps.db.read() as session:
        count = await session.scalar(
            select(func.count()).select_from(Payment).where(Payment.user_id == actor.id)
        )
        rows = await session.scalars(
            select(Payment)
            .where(Payment.user_id == actor.id)
            .order_by(Payment.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return int(count or 0), list(rows)


async def get_payment(deps: Deps, *, actor: User, payment_id: int) -> Payment:
    """One payment, for its buyer and administrators (anyone else: not found)."""
    async with deps.db.read() as session:
        payment = await session.get(Payment, payment_id)
    if payment is None or (payment.user_id != actor.id and not actor.is_admin):
        raise _payment_not_found()
    return payment


async def receive_webhook(
    deps: Deps, *, gateway_name: str, body: bytes, headers: Mapping[str, str]
) -> bool:
    """Verify a gateway's notification and store it for the worker; False for a duplicate."""
    gateway = gateway_for(deps, gateway_name)
    now = deps.clock()
    try:
        verified = gateway.verify_webhook(body, headers, now=now)
        if inspect.isawaitable(verified):  # the gateway is asked (PayPal)
            verified = await verified
    except WebhookRefused as exc:
        log.warning("%s webhook refused: %s", gateway.name, exc)
        raise BadRequest(
            lazy("This notification could not be verified."), code="invalid_webhook"
        ) from None
    except GatewayError as exc:
        # Not stored and not a 2xx: the gateway delivers it again later.
        log.warning("%s webhook not verified, the gateway is unreachable: %s", gateway.name, exc)
        raise ServiceUnavailable(
            lazy("The payment gateway could not be reached. Try again shortly."),
            code="gateway_unavailable",
        ) from exc
    async with deps.db.uow() as uow:
        session = uow.session
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        stored = await session.execute(
            insert(PaymentEvent)
            .values(
                gateway=gateway.name,
                event_id=verified.event_id,
                event_type=verified.event_type,
                body=body,
                headers=dict(headers),
                received_at=now,
            )
            .on_conflict_do_nothing(index_elements=["gateway", "event_id"])
            .returning(PaymentEvent.id)
        )
        event_row_id = stored.scalar_one_or_none()
        if event_row_id is not None:
            await outbox.enqueue(
                uow, EVENT_KIND, event_work_key(event_row_id), {"event": event_row_id}, now=now
            )
        await uow.commit()
    return event_row_id is not None
