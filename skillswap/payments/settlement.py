"""Processing a stored gateway event: the payment state machine and its ledger transfers.

Crediting is keyed on the payment, never on the event: one Stripe payment fires several events
(`checkout.session.completed`, `..._async_payment_succeeded`), and the same one may be delivered
many times. A payment is credited by the conditional update that moves it `pending ->
succeeded`, and the ledger transfer under `payment:{id}:credit` in the same transaction; the
second event finds it settled and changes nothing. What the event claims (reference, amount,
currency) is checked against what the payment stored at creation: a mismatch is recorded on
the payment, which fails, and is never credited.

A refund reverses the points in proportion to the money refunded, under
`payment:{id}:refund:{refund id}`, never taking a wallet below zero: what the buyer already
spent is recorded on the refund as unrecovered, and moved from `payment_losses` to
`purchased_points` (so that `purchased_points` counts only points paid for). A refund is
applied once per gateway refund id, whether its webhook or the administrator's request that
made it (skillswap.payments.refunds) records it first. A refund that arrives before the
payment's confirmation (events come out of order) waits: the outbox retries it after the
confirmation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from skillswap import ledger, metrics
from skillswap.db import UnitOfWork
from skillswap.errors import AppError, NotFound
from skillswap.i18n import lazy
from skillswap.idempotency import fitted
from skillswap.ledger import SystemAccount, TransferKind, TransferRequest
from skillswap.ledger.transfers import MAX_KEY_LENGTH
from skillswap.models import LedgerAccount, Payment, PaymentEvent, PaymentRefund, PaymentStatus
from skillswap.models.payments import PaymentEventOutcome as Outcome
from skillswap.payments.gateway import Gateway, GatewayError, Signal, SignalKind
from skillswap.payments.gateways import gateway_for
from skillswap.payments.services import EVENT_KIND
from skillswap.tasks.definitions import OutboxHandler, PermanentTaskError
from skillswap.tasks.outbox import OutboxJob

if TYPE_CHECKING:
    from datetime import datetime

    from skillswap.deps import Deps

log = logging.getLogger("skillswap.payments")

CLOSING = {
    SignalKind.FAILED: PaymentStatus.FAILED,
    SignalKind.CANCELLED: PaymentStatus.CANCELLED,
    SignalKind.EXPIRED: PaymentStatus.EXPIRED,
}
REFUNDABLE = (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED)


def credit_key(payment_id: int) -> str:
    """The ledger key of a payment's credit: one credit per payment, whatever the events."""
    return f"payment:{payment_id}:credit"


def refund_key(payment_id: int, refund_id: str) -> str:
    """The ledger key of one refund's reversal."""
    return fitted(f"payment:{payment_id}:refund:{refund_id}", MAX_KEY_LENGTH)


def loss_key(payment_id: int, refund_id: str) -> str:
    """The ledger key of what one refund could not take back (the buyer had spent it)."""
    return fitted(f"payment:{payment_id}:refund:{refund_id}:loss", MAX_KEY_LENGTH)


def points_due(payment: Payment, amount_minor: int) -> int:
    """The points a refund of `amount_minor` more takes back: proportional, and exact in
    total (the refunds of a whole payment take back every point it credited)."""
    refunded = payment.refunded_minor + amount_minor
    return (payment.points * refunded) // payment.amount_minor - (
        payment.points * payment.refunded_minor
    ) // payment.amount_minor


class PaymentNotSettledYet(Exception):
    """A refund of a payment whose confirmation has not been processed yet: retried later."""


@dataclass(frozen=True)
class Applied:
    outcome: Outcome
    payment_id: int | None
    detail: str = ""


async def process_payment_event(deps: Deps, job: OutboxJob) -> None:
    """The outbox handler of `payment.event`: apply a stored event once."""
    try:
        event_row_id = int(job.payload["event"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentTaskError(f"malformed payment event payload: {job.payload!r}") from exc
    async with deps.db.read() as session:
        event = await session.get(PaymentEvent, event_row_id)
    if event is None:
        raise PermanentTaskError(f"payment event {event_row_id} is gone")
    if event.processed_at is not None:
        return  # processed by an earlier run whose outcome was not recorded in the outbox
    try:
        gateway = gateway_for(deps, event.gateway)
    except AppError as exc:
        raise PermanentTaskError(f"the {event.gateway} gateway is not configured") from exc
    try:
        signals = [await resolve_approval(deps, gateway, s) for s in gateway.read_event(event.body)]
    except GatewayError as exc:
        if exc.retryable:
            raise
        raise PermanentTaskError(f"{event.gateway} refused the capture: {exc}") from exc
    # On its last attempt a refund stops waiting for a payment that never came: recorded.
    last_attempt = job.attempts >= deps.settings.task_max_attempts
    await apply_event(deps, event, signals, wait_for_payment=not last_attempt)


async def apply_event(
    deps: Deps, event: PaymentEvent, signals: list[Signal], *, wait_for_payment: bool = True
) -> list[Applied]:
    """Apply an event's signals and mark it processed, all in one transaction (or none).

    A refund of a payment not found or not settled yet raises PaymentNotSettledYet (the outbox
    retries the event) while `wait_for_payment`; otherwise it is recorded as unknown.
    """
    now = deps.clock()
    async with deps.db.uow() as uow:
        # Whoever marks the event first applies it; a concurrent run waits here, then stops.
        claimed = await uow.session.execute(
            update(PaymentEvent)
            .where(PaymentEvent.id == event.id, PaymentEvent.processed_at.is_(None))
            .values(processed_at=now)
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            return []
        applied = [
            await apply_signal(
                uow, event.gateway, signal, now=now, wait_for_payment=wait_for_payment
            )
            for signal in signals
        ]
        first = applied[0] if applied else Applied(Outcome.IGNORED, None, "no signal")
        await uow.session.execute(
            update(PaymentEvent)
            .where(PaymentEvent.id == event.id)
            .values(
                outcome=first.outcome,
                payment_id=next((a.payment_id for a in applied if a.payment_id), None),
                detail="; ".join(a.detail for a in applied if a.detail) or None,
            )
        )
        await uow.commit()
    for result in applied:
        if result.outcome in (Outcome.MISMATCH, Outcome.UNKNOWN_PAYMENT):
            log.warning(
                "%s event %s (%s): %s %s",
                event.gateway,
                event.event_id,
                event.event_type,
                result.outcome,
                result.detail,
            )
    return applied


async def apply_signal(
    uow: UnitOfWork, gateway: str, signal: Signal, *, now: datetime, wait_for_payment: bool = True
) -> Applied:
    """One signal's effect on its payment, inside the caller's transaction."""
    if signal.kind == SignalKind.IGNORED:
        return Applied(Outcome.IGNORED, None, signal.reason)
    if signal.kind == SignalKind.APPROVED:  # what its capture answers is applied, not this
        return Applied(Outcome.IGNORED, None, "an approval, not yet captured")
    payment = await _find_payment(uow.session, gateway, signal)
    refund = signal.kind == SignalKind.REFUNDED
    # A refund names the gateway's payment, which is known here once its confirmation was
    # processed: before that (events out of order) it waits, as for a pending payment.
    unsettled = payment is None or (refund and payment.status == PaymentStatus.PENDING)
    if unsettled and refund and wait_for_payment:
        raise PaymentNotSettledYet(f"refund {signal.refund_id} before its payment's confirmation")
    if payment is None or unsettled:
        return Applied(Outcome.UNKNOWN_PAYMENT, None, "the event names no settled payment of ours")
    if signal.kind == SignalKind.PAID:
        return await _settle(uow, payment, signal, now=now)
    if signal.kind in CLOSING:
        return await _close(uow.session, payment, signal, CLOSING[signal.kind], now=now)
    return await _refund(uow, payment, signal, now=now)


async def resolve_approval(deps: Deps, gateway: Gateway, signal: Signal) -> Signal:
    """An approval replaced by what the gateway answers once asked to take the money (PayPal's
    capture, idempotent there); any other signal as it is.

    Only a pending payment's checkout is captured: money taken for a payment closed here would
    be credited to nobody.
    """
    if signal.kind != SignalKind.APPROVED:
        return signal
    if signal.reference is None:
        return Signal(SignalKind.IGNORED, reason="an approval naming no checkout")
    async with deps.db.read() as session:
        status = await session.scalar(
            select(Payment.status).where(
                Payment.gateway == gateway.name, Payment.reference == signal.reference
            )
        )
    if status != PaymentStatus.PENDING:
        return Signal(SignalKind.IGNORED, reason=f"approval of a {status or 'unknown'} payment")
    return await gateway.fetch_status(signal.reference)


async def settle_from_gateway(deps: Deps, *, gateway_name: str, reference: str) -> Payment:
    """The buyer is back from the gateway's checkout `reference`: settle it now if it is paid.

    The gateway is asked (capturing an approval), and its answer goes through the same
    settlement as a webhook's, so this racing the gateway's own events still credits once. An
    unreachable gateway leaves the payment pending for its webhook (or reconciliation).
    """
    gateway = gateway_for(deps, gateway_name)
    async with deps.db.read() as session:
        payment = await session.scalar(
            select(Payment).where(Payment.gateway == gateway.name, Payment.reference == reference)
        )
    if payment is None:
        raise NotFound(lazy("This payment does not exist."), code="payment_not_found")
    if payment.status != PaymentStatus.PENDING:
        return payment
    try:
        signal = await resolve_approval(
            deps, gateway, Signal(SignalKind.APPROVED, reference=reference)
        )
    except GatewayError as exc:
        log.warning("payment %d: asking %s failed: %s", payment.id, gateway.name, exc)
        return payment
    now = deps.clock()
    async with deps.db.uow() as uow:
        applied = await apply_signal(uow, gateway.name, signal, now=now, wait_for_payment=False)
        settled = (
            await uow.session.execute(
                select(Payment)
                .where(Payment.id == payment.id)
                .execution_options(populate_existing=True)
            )
        ).scalar_one()
        await uow.commit()
    if applied.outcome == Outcome.MISMATCH:
        log.warning("payment %d at %s: %s", payment.id, gateway.name, applied.detail)
    return settled


async def _find_payment(session: AsyncSession, gateway: str, signal: Signal) -> Payment | None:
    """The payment the signal is about, its row locked until the transaction ends."""
    if signal.payment_id is not None:
        condition = Payment.id == signal.payment_id
    elif signal.reference is not None:
        condition = Payment.reference == signal.reference
    elif signal.payment_ref is not None:
        condition = Payment.gateway_payment_ref == signal.payment_ref
    else:
        return None
    return await session.scalar(
        select(Payment)
        .where(condition, Payment.gateway == gateway)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _mismatches(payment: Payment, signal: Signal) -> list[str]:
    """What the gateway's confirmation says differently from the payment as created."""
    found = []
    if signal.reference != payment.reference:
        found.append(f"reference {signal.reference!r}, expected {payment.reference!r}")
    if signal.amount_minor != payment.amount_minor:
        found.append(f"amount {signal.amount_minor}, expected {payment.amount_minor}")
    if signal.currency != payment.currency:
        found.append(f"currency {signal.currency!r}, expected {payment.currency!r}")
    return found


async def _move(
    session: AsyncSession,
    payment: Payment,
    to: PaymentStatus,
    *,
    now: datetime,
    **values: object,
) -> bool:
    """The conditional update `pending -> to`; False when the payment had left `pending`."""
    moved = await session.execute(
        update(Payment)
        .where(Payment.id == payment.id, Payment.status == PaymentStatus.PENDING)
        .values(status=to, updated_at=now, **values)
    )
    if not moved.rowcount:  # type: ignore[attr-defined]
        return False
    metrics.on_commit(session, metrics.count_payment(payment.gateway, to))
    return True


async def _settle(uow: UnitOfWork, payment: Payment, signal: Signal, *, now: datetime) -> Applied:
    mismatches = _mismatches(payment, signal)
    if mismatches:
        detail = "the confirmation does not match the payment: " + "; ".join(mismatches)
        await _move(uow.session, payment, PaymentStatus.FAILED, now=now, failure_reason=detail)
        return Applied(Outcome.MISMATCH, payment.id, detail)
    settled = await _move(
        uow.session,
        payment,
        PaymentStatus.SUCCEEDED,
        now=now,
        settled_at=now,
        gateway_payment_ref=signal.payment_ref,
    )
    if not settled:
        return Applied(Outcome.ALREADY_SETTLED, payment.id, f"payment is {payment.status}")
    wallet = await ledger.ensure_wallet(uow.session, payment.user_id, now=now)
    await ledger.transfer(
        uow.session,
        TransferRequest(
            key=credit_key(payment.id),
            kind=TransferKind.PURCHASE,
            debit_account_id=SystemAccount.PURCHASED_POINTS,
            credit_account_id=wallet,
            amount=payment.points,
            payment_id=payment.id,
        ),
        now=now,
    )
    return Applied(Outcome.CREDITED, payment.id)


async def _close(
    session: AsyncSession,
    payment: Payment,
    signal: Signal,
    to: PaymentStatus,
    *,
    now: datetime,
) -> Applied:
    if signal.reference is not None and signal.reference != payment.reference:
        detail = f"reference {signal.reference!r}, expected {payment.reference!r}"
        return Applied(Outcome.MISMATCH, payment.id, detail)
    reason = signal.reason or f"{to} at the gateway"
    if await _move(session, payment, to, now=now, failure_reason=reason):
        return Applied(Outcome.CLOSED, payment.id)
    return Applied(Outcome.ALREADY_SETTLED, payment.id, f"payment is {payment.status}")


async def _refund(uow: UnitOfWork, payment: Payment, signal: Signal, *, now: datetime) -> Applied:
    session = uow.session
    refund_id, amount = signal.refund_id, signal.refund_minor
    # Before anything else: the same refund comes again in its other events, and from the
    # administrator's request that made it, after the payment may have been refunded in full.
    if refund_id is not None:
        seen = await session.scalar(
            select(PaymentRefund.id).where(
                PaymentRefund.payment_id == payment.id,
                PaymentRefund.gateway_refund_id == refund_id,
            )
        )
        if seen is not None:
            return Applied(Outcome.ALREADY_SETTLED, payment.id, f"refund {refund_id} applied")
    if payment.status not in REFUNDABLE:
        return Applied(Outcome.IGNORED, payment.id, f"refund of a {payment.status} payment")
    if (
        refund_id is None
        or amount is None
        or amount <= 0
        or signal.currency != payment.currency
        or payment.refunded_minor + amount > payment.amount_minor
    ):
        detail = (
            f"refund {refund_id!r} of {amount} {signal.currency} does not fit payment "
            f"{payment.id} ({payment.refunded_minor} of {payment.amount_minor} "
            f"{payment.currency} refunded)"
        )
        return Applied(Outcome.MISMATCH, payment.id, detail)
    due = points_due(payment, amount)
    taken = await _reverse_points(uow, payment, refund_id, due, now=now)
    session.add(
        PaymentRefund(
            payment_id=payment.id,
            gateway_refund_id=refund_id,
            amount_minor=amount,
            points_reversed=taken,
            points_unrecovered=due - taken,
            reason=signal.reason,
            created_at=now,
        )
    )
    refunded = payment.refunded_minor + amount
    status = (
        PaymentStatus.REFUNDED
        if refunded == payment.amount_minor
        else PaymentStatus.PARTIALLY_REFUNDED
    )
    await session.execute(
        update(Payment)
        .where(Payment.id == payment.id)
        .values(status=status, refunded_minor=refunded, updated_at=now)
    )
    metrics.on_commit(session, metrics.count_payment(payment.gateway, status))
    return Applied(Outcome.REFUNDED, payment.id)


async def _reverse_points(
    uow: UnitOfWork, payment: Payment, refund_id: str, due: int, *, now: datetime
) -> int:
    """Move up to `due` points from the buyer's wallet back to purchased points, and the rest
    (spent already) from payment losses; how many came from the wallet."""
    if due <= 0:
        return 0
    session = uow.session
    wallet = await ledger.ensure_wallet(session, payment.user_id, now=now)
    # Locked in the ledger's order (system accounts first), so that what is read as available
    # stays so until the transfer: a refusal would be its key's outcome for good.
    accounts = await session.execute(
        select(LedgerAccount.id, LedgerAccount.balance, LedgerAccount.held)
        .where(
            LedgerAccount.id.in_(
                (SystemAccount.PAYMENT_LOSSES, SystemAccount.PURCHASED_POINTS, wallet)
            )
        )
        .order_by(LedgerAccount.id)
        .with_for_update(key_share=True)
    )
    available = next(row.balance - row.held for row in accounts if row.id == wallet)
    taken = max(0, min(due, available))
    moves = [
        (refund_key(payment.id, refund_id), TransferKind.PURCHASE_REFUND, wallet, taken),
        (
            loss_key(payment.id, refund_id),
            TransferKind.PAYMENT_LOSS,
            SystemAccount.PAYMENT_LOSSES,
            due - taken,
        ),
    ]
    for key, kind, debit, amount in moves:
        if amount:
            await ledger.transfer(
                session,
                TransferRequest(
                    key=key,
                    kind=kind,
                    debit_account_id=debit,
                    credit_account_id=SystemAccount.PURCHASED_POINTS,
                    amount=amount,
                    payment_id=payment.id,
                ),
                now=now,
            )
    return taken


HANDLERS: dict[str, OutboxHandler] = {EVENT_KIND: process_payment_event}
