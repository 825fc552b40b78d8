"""Invariants tying orders to the ledger: each order's escrow hold matches the order's status.

They run beside the ledger's own (`skillswap ledger check`, the property-based tests).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from skillswap.ledger import Check
from skillswap.models.ledger import HoldStatus
from skillswap.models.orders import OrderStatus, Resolution
from skillswap.orders.rules import OPEN_STATUSES

REFUNDED_STATUSES = (OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED)


def expected_hold(
    status: str, resolution: str | None, price: int, refunded: int | None
) -> tuple[HoldStatus, int | None]:
    """The hold status and posted amount an order in `status` must have.

    A lesson its buyer cancelled late is cancelled with part of its price posted to the teacher
    (`refunded` below the price); any other cancellation voided the hold.
    """
    if status in OPEN_STATUSES:
        return HoldStatus.PENDING, None
    if status == OrderStatus.CANCELLED and refunded is not None and refunded < price:
        return HoldStatus.POSTED, price - refunded
    resolved = status == OrderStatus.RESOLVED
    if status in REFUNDED_STATUSES or (resolved and resolution == Resolution.REFUND):
        return HoldStatus.VOIDED, None
    if resolved and resolution == Resolution.SPLIT:
        return HoldStatus.POSTED, price - (refunded or 0)
    return HoldStatus.POSTED, price  # completed, or resolved by release


async def order_holds_match_status(conn: AsyncConnection) -> list[str]:
    """Open orders hold their price; settled ones posted or voided it exactly as they say."""
    rows = (
        await conn.execute(
            text(
                """
                SELECT o.id, o.status, o.resolution, o.price_points, o.refunded_points,
                       o.buyer_id, h.status, h.amount, h.posted_amount, a.user_id
                FROM orders o
                JOIN ledger_holds h ON h.id = o.hold_id
                JOIN ledger_accounts a ON a.id = h.account_id
                ORDER BY o.id
                """
            )
        )
    ).all()
    problems: list[str] = []
    for (
        order_id,
        status,
        resolution,
        price,
        refunded,
        buyer,
        hold_status,
        amount,
        posted,
        owner,
    ) in rows:
        if amount != price or owner != buyer:
            problems.append(
                f"order {order_id}: hold of {amount} on user {owner}'s wallet, price {price} for buyer {buyer}"
            )
        want_status, want_posted = expected_hold(status, resolution, price, refunded)
        if hold_status != want_status or posted != want_posted:
            problems.append(
                f"order {order_id} ({status}{'/' + resolution if resolution else ''}): "
                f"hold {hold_status} posting {posted}, expected {want_status} posting {want_posted}"
            )
    return problems


async def order_payouts_match_settlement(conn: AsyncConnection) -> list[str]:
    """The seller's earnings and the fee on the ledger equal what the order says was paid."""
    rows = (
        await conn.execute(
            text(
                """
                SELECT o.id, o.seller_id, COALESCE(o.seller_points, 0), COALESCE(o.fee_points, 0),
                       COALESCE(SUM(CASE WHEN t.kind = 'order_earnings' AND a.user_id = o.seller_id
                                    THEN t.amount ELSE 0 END), 0),
                       COALESCE(SUM(CASE WHEN t.kind = 'order_earnings' AND
                                         (a.user_id IS NULL OR a.user_id <> o.seller_id)
                                    THEN t.amount ELSE 0 END), 0),
                       COALESCE(SUM(CASE WHEN t.kind = 'platform_fee' THEN t.amount ELSE 0 END), 0)
                FROM orders o
                LEFT JOIN ledger_transfers t ON t.order_id = o.id AND t.status = 'posted'
                LEFT JOIN ledger_accounts a ON a.id = t.credit_account_id
                GROUP BY o.id, o.seller_id, o.seller_points, o.fee_points
                ORDER BY o.id
                """
            )
        )
    ).all()
    return [
        f"order {order_id}: seller paid {earned} (+{elsewhere} elsewhere) and fee {fee} on the "
        f"ledger, the order says {seller_points} and {fee_points}"
        for order_id, _seller, seller_points, fee_points, earned, elsewhere, fee in rows
        if earned != seller_points or fee != fee_points or elsewhere != 0
    ]


ORDER_INVARIANTS: dict[str, Check] = {
    "order_holds_match_status": order_holds_match_status,
    "order_payouts_match_settlement": order_payouts_match_settlement,
}
