"""An administrator refunds (part of) a payment: at the gateway first, then the points.

The points a refund takes back are those the money bought, in proportion. When the buyer has
already spent some of them, the refund is refused before the gateway is called, naming what is
available, unless the administrator confirms (`take_available`) taking only that: the rest is
then recorded as a loss (`payment_losses`), so the ledger stays balanced and no wallet goes
below zero.

No transaction is held open across the gateway's call. The gateway's idempotency key is
derived from the payment's refunded total and the amount, so a request retried after a lost
answer gets the same refund back instead of a second one; concurrent requests for the same
amount, too. The refund is then recorded through the settlement's own path, under the gateway's
refund id: whichever of this request and the gateway's refund webhook comes first reverses the
points, the other changes nothing. The administrator's audit row ("payment.refund") is written
in that same transaction, once per gateway refund, whichever of the two applied it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from skillswap import ledger
from skillswap.admin import audit
from skillswap.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from skillswap.i18n import lazy
from skillswap.models import AuditEntry, Payment, PaymentRefund, User
from skillswap.models.admin import AuditTarget
from skillswap.models.payments import PaymentEventOutcome
from skillswap.payments import settlement
from skillswap.payments.admin import require_admin
from skillswap.payments.gateway import GatewayError, GatewayRefund, Signal, SignalKind
from skillswap.payments.gateways import gateway_for
from skillswap.payments.packages import price_text

if TYPE_CHECKING:
    from skillswap.deps import Deps

log = logging.getLogger("skillswap.payments")


@dataclass(frozen=True)
class RefundDone:
    payment: Payment  # as it is after the refund
    refund: PaymentRefund


def refund_request_key(payment: Payment, amount_minor: int) -> str:
    """The gateway's idempotency key for refunding `amount_minor` of the payment as it stands:
    the same until a refund is recorded, whatever the number of attempts."""
    return f"skillswap-payment-{payment.id}-refund-{payment.refunded_minor}-{amount_minor}"


def _not_found() -> NotFound:
    return NotFound(lazy("This payment does not exist."), code="payment_not_found")


def _refundable_amount(payment: Payment, amount_minor: int | None) -> int:
    """What this refund is for: the amount asked, or all that is left to refund."""
    if payment.status not in settlement.REFUNDABLE or payment.gateway_payment_ref is None:
        raise Conflict(
            lazy(
                "Only a succeeded or partly refunded payment can be refunded; this one is "
                "{status}.",
                status=payment.status,
            ),
            code="payment_not_refundable",
            extra={"payment_status": payment.status},
        )
    remaining = payment.amount_minor - payment.refunded_minor
    if amount_minor is None:
        return remaining
    if amount_minor > remaining:
        left = price_text(remaining, payment.currency)
        raise ValidationFailed(
            errors={
                "amount_minor": [
                    lazy(
                        "At most {amount} {currency} ({minor}) is left to refund.",
                        amount=left,
                        currency=payment.currency,
                        minor=remaining,
                    )
                ]
            }
        )
    return amount_minor


async def refund_payment(
    deps: Deps,
    *,
    actor: User,
    payment_id: int,
    amount_minor: int | None,
    reason: str,
    take_available: bool,
) -> RefundDone:
    """Refund the payment at its gateway and take back its share of the points (administrators)."""
    require_admin(actor)
    async with deps.db.read() as session:
        payment = await session.get(Payment, payment_id)
        if payment is None:
            raise _not_found()
        wallet = await ledger.wallet_balance(session, payment.user_id)
    amount = _refundable_amount(payment, amount_minor)
    due = settlement.points_due(payment, amount)
    available = max(0, wallet.available)
    if due > available and not take_available:
        raise Conflict(
            lazy(
                "The buyer has already spent some of these points: {available} of the {due} "
                "this refund takes back are left. Confirm with take_available to take those "
                "and record the rest as a loss.",
                available=available,
                due=due,
            ),
            code="refund_points_spent",
            extra={"points_due": due, "points_available": available},
        )
    gateway = gateway_for(deps, payment.gateway)
    assert payment.gateway_payment_ref is not None  # _refundable_amount checked it
    try:
        made = await gateway.refund(
            payment.gateway_payment_ref, amount, key=refund_request_key(payment, amount)
        )
    except GatewayError as exc:
        log.warning("payment %d: the %s refund failed: %s", payment.id, gateway.name, exc)
        if exc.retryable:
            raise ServiceUnavailable(
                lazy("The payment gateway could not be reached. Try again shortly."),
                code="gateway_unavailable",
            ) from exc
        raise Conflict(
            lazy("The payment gateway refused this refund."), code="refund_refused"
        ) from exc
    applied, refunded, record = await _record_refund(deps, actor, payment, made, reason=reason)
    if record is None or refunded is None:
        # The gateway made a refund this payment cannot hold (it says another amount or
        # currency): nothing was reversed, and an operator has to look.
        log.error(
            "payment %d: %s refund %s of %d recorded nothing: %s %s",
            payment.id,
            gateway.name,
            made.refund_id,
            made.amount_minor,
            applied.outcome,
            applied.detail,
        )
        raise Conflict(
            lazy("The gateway's refund does not fit this payment; it was logged for review."),
            code="refund_not_applied",
        )
    if applied.outcome == PaymentEventOutcome.REFUNDED:
        log.info(
            "payment %d: administrator %d refunded %d %s (%s): %d points back, %d lost",
            payment.id,
            actor.id,
            made.amount_minor,
            payment.currency,
            made.refund_id,
            record.points_reversed,
            record.points_unrecovered,
        )
    return RefundDone(refunded, record)


async def _record_refund(
    deps: Deps, actor: User, payment: Payment, made: GatewayRefund, *, reason: str
) -> tuple[settlement.Applied, Payment | None, PaymentRefund | None]:
    """Apply the gateway's refund as its webhook would, and audit it, in one transaction.

    `payment` is the payment as the administrator found it, before the gateway's call: the
    audit row's "before". Returns what applying did, the payment after it and its refund record
    (None when the refund does not fit the payment: nothing was applied, nothing audited).
    """
    signal = Signal(
        SignalKind.REFUNDED,
        payment_id=payment.id,
        currency=payment.currency,
        refund_id=made.refund_id,
        refund_minor=made.amount_minor,
        reason=reason,
    )
    now = deps.clock()
    async with deps.db.uow() as uow:
        applied = await settlement.apply_signal(
            uow, payment.gateway, signal, now=now, wait_for_payment=False
        )
        session = uow.session
        await session.flush()  # the refund record applying added
        refunded = await session.get(Payment, payment.id, populate_existing=True)
        record = await session.scalar(
            select(PaymentRefund).where(
                PaymentRefund.payment_id == payment.id,
                PaymentRefund.gateway_refund_id == made.refund_id,
            )
        )
        if (
            record is not None
            and refunded is not None
            and not await _audited_before(session, payment.id, made.refund_id)
        ):
            await audit.record(
                session,
                actor,
                "payment.refund",
                AuditTarget.PAYMENT,
                payment.id,
                before={"status": payment.status, "refunded_minor": payment.refunded_minor},
                after={
                    "status": refunded.status,
                    "refunded_minor": refunded.refunded_minor,
                    "gateway_refund_id": record.gateway_refund_id,
                    "amount_minor": record.amount_minor,
                    "points_reversed": record.points_reversed,
                    "points_unrecovered": record.points_unrecovered,
                },
                reason=reason,
                now=now,
            )
        await uow.commit()
    return applied, refunded, record


async def _audited_before(session: AsyncSession, payment_id: int, refund_id: str) -> bool:
    """Whether an earlier request (retried after a lost answer) already audited this refund."""
    earlier = await session.scalars(
        select(AuditEntry.after).where(
            AuditEntry.action == "payment.refund",
            AuditEntry.target_type == AuditTarget.PAYMENT,
            AuditEntry.target_id == payment_id,
        )
    )
    return any((after or {}).get("gateway_refund_id") == refund_id for after in earlier)
