"""Reconciliation: payments left pending past a window are settled by asking their gateway.

A webhook can be lost (an outage on either side, a gateway that gives up retrying; Paymob
documents no retry schedule at all), and then the buyer paid and got nothing. Each run asks the
gateway about payments still `pending` PAYMENTS_RECONCILE_AFTER_SECONDS after their creation,
at most PAYMENTS_RECONCILE_BATCH_SIZE of them, those asked about longest ago first (a payment
still open at its gateway is marked asked, `updated_at`, and goes to the back: checkouts the
buyer abandoned, which a gateway may keep open for days, never hold newer payments back), and applies its answer through the
settlement's own path (`settle_from_gateway`): the conditional update and the credit's ledger
key make it exactly once, whether the webhook arrives before, during or after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from skillswap.models import Payment, PaymentStatus
from skillswap.payments.gateways import configured_gateways
from skillswap.payments.settlement import settle_from_gateway

if TYPE_CHECKING:
    from skillswap.deps import Deps


@dataclass(frozen=True)
class Reconciled:
    payment_id: int
    gateway: str
    status: str  # after the gateway was asked: still `pending` if open there (or unreachable)


@dataclass(frozen=True)
class ReconcileReport:
    asked: list[Reconciled]

    @property
    def settled(self) -> list[Reconciled]:
        """The payments the gateway's answer moved on."""
        return [r for r in self.asked if r.status != PaymentStatus.PENDING]


async def stale_pending_payments(deps: Deps, *, now: datetime) -> list[tuple[int, str, str]]:
    """(id, gateway, reference) of the payments pending past the window that were asked
    about (or created) longest ago, one batch."""
    settings = deps.settings
    offered = configured_gateways(settings)
    if not offered:
        return []
    cutoff = now - timedelta(seconds=settings.payments_reconcile_after_seconds)
    async with deps.db.read() as session:
        rows = await session.execute(
            select(Payment.id, Payment.gateway, Payment.reference)
            .where(
                Payment.status == PaymentStatus.PENDING,
                Payment.created_at <= cutoff,
                Payment.gateway.in_(offered),
                # A checkout that never opened has nothing to ask about (it failed at once).
                Payment.reference.is_not(None),
            )
            .order_by(Payment.updated_at, Payment.id)
            .limit(settings.payments_reconcile_batch_size)
        )
        return [(row.id, row.gateway, row.reference) for row in rows]


async def reconcile_payments(deps: Deps, *, now: datetime) -> ReconcileReport:
    """Ask the gateways about one batch of stale pending payments and settle what they answer."""
    asked = []
    for payment_id, gateway, reference in await stale_pending_payments(deps, now=now):
        payment = await settle_from_gateway(deps, gateway_name=gateway, reference=reference)
        if payment.status == PaymentStatus.PENDING:
            await _asked(deps, payment_id, now=now)
        asked.append(Reconciled(payment_id, gateway, payment.status))
    return ReconcileReport(asked)


async def _asked(deps: Deps, payment_id: int, *, now: datetime) -> None:
    """A payment still open at its gateway goes to the back of the next runs' queue."""
    async with deps.db.uow() as uow:
        await uow.session.execute(
            update(Payment)
            .where(Payment.id == payment_id, Payment.status == PaymentStatus.PENDING)
            .values(updated_at=now)
        )
        await uow.commit()
