"""What an order's transition does with its escrowed price: refund, pay the seller, or split.

A lesson cancelled late by its buyer is split too: half to the teacher, less the fee on that
half (skillswap.lessons.cancellation decides the half; this module moves the points).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from skillswap.errors import ValidationFailed
from skillswap.i18n import lazy, one_of
from skillswap.lessons.rules import LessonTimes, lesson_deadline
from skillswap.models.orders import RESOLUTIONS, OrderStatus, Resolution
from skillswap.orders.rules import Escrow, Rule
from skillswap.settings import Settings


@dataclass(frozen=True)
class Settlement:
    """Where an order's escrowed points go when a transition settles it."""

    escrow: Escrow  # KEEP, VOID or POST
    seller_points: int | None = None
    fee_points: int | None = None
    refunded_points: int | None = None
    resolution: str | None = None

    @property
    def columns(self) -> dict[str, object]:
        """The order columns that record this settlement."""
        if self.escrow is Escrow.KEEP:
            return {}
        return {
            "seller_points": self.seller_points,
            "fee_points": self.fee_points,
            "refunded_points": self.refunded_points,
            "resolution": self.resolution,
        }


def fee_for(seller_part: int, fee_percent: int) -> int:
    """The platform's whole-point cut of what a seller is paid (rounded down, in their favour)."""
    return seller_part * max(0, min(fee_percent, 100)) // 100


def _pay_seller(
    seller_part: int, price: int, fee_percent: int, resolution: str | None
) -> Settlement:
    fee = fee_for(seller_part, fee_percent)
    return Settlement(
        Escrow.POST,
        seller_points=seller_part - fee,
        fee_points=fee,
        refunded_points=price - seller_part,
        resolution=resolution,
    )


def settlement_for(
    rule: Rule,
    *,
    price: int,
    fee_percent: int,
    resolution: str | None,
    buyer_points: int | None,
    teacher_share: int = 0,
) -> Settlement:
    """What `rule` does with the escrowed price, checking an administrator's resolution.

    `teacher_share` is what a lesson's cancellation (`Escrow.CANCELLATION`) leaves the teacher:
    0 refunds the buyer in full; otherwise the teacher is paid that part (less the fee) and the
    rest goes back to the buyer.
    """
    if rule.escrow is not Escrow.RESOLVE:
        if resolution is not None or buyer_points is not None:
            raise ValidationFailed(
                errors={"resolution": [lazy("Only a dispute resolution takes a resolution.")]}
            )
        if rule.escrow is Escrow.KEEP:
            return Settlement(Escrow.KEEP)
        if rule.escrow is Escrow.CANCELLATION and 0 < teacher_share < price:
            return _pay_seller(teacher_share, price, fee_percent, None)
        if rule.escrow in (Escrow.VOID, Escrow.CANCELLATION):
            return Settlement(Escrow.VOID, seller_points=0, fee_points=0, refunded_points=price)
        return _pay_seller(price, price, fee_percent, None)
    if resolution not in RESOLUTIONS:
        raise ValidationFailed(
            errors={"resolution": [lazy("Must be one of: {choices}.", choices=one_of(RESOLUTIONS))]}
        )
    if resolution != Resolution.SPLIT and buyer_points is not None:
        raise ValidationFailed(errors={"buyer_points": [lazy("Only a split takes buyer_points.")]})
    if resolution == Resolution.REFUND:
        return Settlement(
            Escrow.VOID, seller_points=0, fee_points=0, refunded_points=price, resolution=resolution
        )
    if resolution == Resolution.RELEASE:
        return _pay_seller(price, price, fee_percent, resolution)
    if buyer_points is None or not 0 < buyer_points < price:
        raise ValidationFailed(
            errors={
                "buyer_points": [
                    lazy("A split gives the buyer between 1 and {max} points.", max=price - 1)
                ]
            }
        )
    return _pay_seller(price - buyer_points, price, fee_percent, resolution)


def deadline_after(
    status: str, now: datetime, settings: Settings, lesson: LessonTimes | None = None
) -> datetime | None:
    """When an order entering `status` runs out of time (None: it waits for a person).

    A lesson's deadlines follow its times (skillswap.lessons.rules `lesson_deadline`).
    """
    if lesson is not None:
        return lesson_deadline(status, now, settings, lesson)
    timeouts: dict[str, int] = {
        OrderStatus.PENDING: settings.order_accept_timeout_seconds,
        OrderStatus.ACCEPTED: settings.order_delivery_timeout_seconds,
        OrderStatus.DELIVERED: settings.order_auto_complete_seconds,
    }
    seconds = timeouts.get(status)
    return None if seconds is None else now + timedelta(seconds=seconds)
