"""Order deadlines: every open status but a dispute runs out, and the clock then moves the order.

A pending or accepted order expires (the buyer is refunded); a delivered one completes (the
seller is paid). These functions take `now` so that a scheduler, or a test with a controlled
clock, decides when it is. Each due order moves in its own unit of work through the same
conditional update as a person's action, so a buyer completing at the deadline and the clock
completing it cannot both succeed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from skillswap.deps import Deps
from skillswap.models import Order
from skillswap.orders import apply_transition
from skillswap.orders_rules import DEADLINE_RULES
from skillswap.orders_settlement import settlement_for


@dataclass(frozen=True)
class DeadlineReport:
    expired: int
    completed: int


async def expire_overdue_orders(deps: Deps, *, now: datetime, limit: int = 500) -> int:
    """Expire (and refund) pending and accepted orders whose deadline passed by `now`."""
    return await _run_deadlines(deps, ("pending", "accepted"), now=now, limit=limit)


async def complete_overdue_deliveries(deps: Deps, *, now: datetime, limit: int = 500) -> int:
    """Complete (and pay) delivered orders the buyer did not answer by `now`."""
    return await _run_deadlines(deps, ("delivered",), now=now, limit=limit)


async def run_order_deadlines(deps: Deps, *, now: datetime) -> DeadlineReport:
    """Every deadline due by `now` (what the scheduler calls)."""
    expired = await expire_overdue_orders(deps, now=now)
    completed = await complete_overdue_deliveries(deps, now=now)
    return DeadlineReport(expired=expired, completed=completed)


async def _run_deadlines(
    deps: Deps, statuses: tuple[str, ...], *, now: datetime, limit: int
) -> int:
    async with deps.db.read() as session:
        due = (
            (
                await session.execute(
                    select(Order.id)
                    .where(Order.status.in_(statuses), Order.deadline_at <= now)
                    .order_by(Order.deadline_at, Order.id)
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )
    moved = 0
    for order_id in due:
        # One unit of work per order: a slow or failing one holds up no other.
        async with deps.db.uow() as uow:
            order = await uow.session.get(Order, order_id)
            if order is None or order.status not in statuses:
                continue  # someone acted first
            rule = DEADLINE_RULES[order.status]
            settlement = settlement_for(
                rule,
                price=order.price_points,
                fee_percent=deps.settings.platform_fee_percent,
                resolution=None,
                buyer_points=None,
            )
            if await apply_transition(
                deps,
                uow,
                order,
                rule,
                actor_id=None,
                note="",
                settlement=settlement,
                now=now,
                due_by=now,
            ):
                await uow.commit()
                moved += 1
    return moved
