"""Order deadlines: every open status but a dispute runs out, and the clock then moves the order.

A pending order, or an accepted one never delivered, expires (the buyer is refunded); an
accepted one that was delivered before and sent back for changes is disputed (an administrator
decides: the buyer has had the work); a delivered one completes (the seller is paid). These
functions take `now` so that a scheduler, or a test with a controlled clock, decides when it
is. Each due order moves in its own unit of work through the same conditional update as a
person's action, so a buyer completing at the deadline and the clock completing it cannot both
succeed. The review windows that close are swept here too (`publish_due_reviews`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from skillswap.models import Order
from skillswap.models.orders import OrderStatus
from skillswap.orders.rules import deadline_rule
from skillswap.orders.services import apply_transition
from skillswap.orders.settlement import settlement_for
from skillswap.reviews.services import publish_due_reviews

if TYPE_CHECKING:
    from skillswap.deps import Deps


# The statuses whose deadline the clock runs out, in two sweeps: the undelivered ones (expired,
# or disputed after a redelivery) and the delivered ones (completed).
_RUN_OUT_UNDELIVERED = (OrderStatus.PENDING, OrderStatus.ACCEPTED)
_RUN_OUT_DELIVERED = (OrderStatus.DELIVERED,)


@dataclass(frozen=True)
class DeadlineReport:
    expired: int
    completed: int
    disputed: int = 0  # accepted orders, delivered before, whose redelivery ran out
    reviews_published: int = 0  # lone reviews counted when their window closed


async def expire_overdue_orders(deps: Deps, *, now: datetime, limit: int = 500) -> int:
    """Move pending and accepted orders whose deadline passed by `now`: expire or dispute them.

    Expired ones are refunded; accepted ones that had been delivered are disputed instead.
    """
    moved = await _run_deadlines(deps, _RUN_OUT_UNDELIVERED, now=now, limit=limit)
    return sum(moved.values())


async def complete_overdue_deliveries(deps: Deps, *, now: datetime, limit: int = 500) -> int:
    """Complete (and pay) delivered orders the buyer did not answer by `now`."""
    moved = await _run_deadlines(deps, _RUN_OUT_DELIVERED, now=now, limit=limit)
    return sum(moved.values())


async def run_order_deadlines(deps: Deps, *, now: datetime) -> DeadlineReport:
    """Every deadline due by `now`, and every review window closed by then (the scheduler's)."""
    moved = await _run_deadlines(deps, _RUN_OUT_UNDELIVERED, now=now, limit=500)
    moved += await _run_deadlines(deps, _RUN_OUT_DELIVERED, now=now, limit=500)
    published = await publish_due_reviews(deps, now=now)
    return DeadlineReport(
        expired=moved[OrderStatus.EXPIRED],
        completed=moved[OrderStatus.COMPLETED],
        disputed=moved[OrderStatus.DISPUTED],
        reviews_published=published,
    )


async def _run_deadlines(
    deps: Deps, statuses: tuple[OrderStatus, ...], *, now: datetime, limit: int
) -> Counter[OrderStatus]:
    """Move the due orders in `statuses`; how many entered each status."""
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
    moved: Counter[OrderStatus] = Counter()
    for order_id in due:
        # One unit of work per order: a slow or failing one holds up no other.
        async with deps.db.uow() as uow:
            order = await uow.session.get(Order, order_id)
            if order is None or order.status not in statuses:
                continue  # someone acted first
            # The change count cannot move while the order is accepted, and re-entering
            # accepted sets a new deadline, which the conditional update below checks.
            rule = deadline_rule(order.status, change_requests=order.change_requests)
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
                moved[rule.to_status] += 1
    return moved
