"""Where an order's escrowed points go, each figure written out here."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from skillswap.errors import ValidationFailed
from skillswap.i18n import Catalogs
from skillswap.orders.rules import Escrow, Role, Rule
from skillswap.orders.settlement import Settlement, deadline_after, fee_for, settlement_for
from skillswap.settings import Settings

COMPLETE = Rule("complete", Role.BUYER, ("delivered",), "completed", Escrow.POST)
REJECT = Rule("reject", Role.SELLER, ("pending",), "rejected", Escrow.VOID)
ACCEPT = Rule("accept", Role.SELLER, ("pending",), "accepted", Escrow.KEEP)
RESOLVE = Rule("resolve", Role.ADMIN, ("disputed",), "resolved", Escrow.RESOLVE)
ENGLISH = Catalogs().get("en")


def english_errors(exc: ValidationFailed) -> dict[str, list[str]]:
    return {
        field: [message.render(ENGLISH) for message in messages]
        for field, messages in exc.errors.items()
    }


@pytest.mark.parametrize(
    ("seller_part", "percent", "fee"),
    [(100, 10, 10), (99, 10, 9), (9, 10, 0), (10, 0, 0), (10, 100, 10), (10, 150, 10), (10, -5, 0)],
)
def test_the_fee_is_whole_points_rounded_down(seller_part: int, percent: int, fee: int) -> None:
    assert fee_for(seller_part, percent) == fee


def test_completing_pays_the_seller_the_price_less_the_fee() -> None:
    settled = settlement_for(COMPLETE, price=95, fee_percent=10, resolution=None, buyer_points=None)
    assert settled == Settlement(
        Escrow.POST, seller_points=86, fee_points=9, refunded_points=0, resolution=None
    )
    assert settled.columns == {
        "seller_points": 86,
        "fee_points": 9,
        "refunded_points": 0,
        "resolution": None,
    }


def test_a_void_refunds_the_whole_price() -> None:
    settled = settlement_for(REJECT, price=40, fee_percent=10, resolution=None, buyer_points=None)
    assert settled == Settlement(Escrow.VOID, seller_points=0, fee_points=0, refunded_points=40)


def test_keeping_the_hold_writes_no_columns() -> None:
    settled = settlement_for(ACCEPT, price=40, fee_percent=10, resolution=None, buyer_points=None)
    assert settled == Settlement(Escrow.KEEP)
    assert settled.columns == {}


def test_refund_release_and_split_resolutions() -> None:
    refund = settlement_for(
        RESOLVE, price=50, fee_percent=10, resolution="refund", buyer_points=None
    )
    release = settlement_for(
        RESOLVE, price=50, fee_percent=10, resolution="release", buyer_points=None
    )
    split = settlement_for(RESOLVE, price=50, fee_percent=10, resolution="split", buyer_points=21)
    assert refund == Settlement(
        Escrow.VOID, seller_points=0, fee_points=0, refunded_points=50, resolution="refund"
    )
    assert release == Settlement(
        Escrow.POST, seller_points=45, fee_points=5, refunded_points=0, resolution="release"
    )
    # The seller's 29 points pay a fee of 2 (2.9 rounded down); the buyer gets their 21 back.
    assert split == Settlement(
        Escrow.POST, seller_points=27, fee_points=2, refunded_points=21, resolution="split"
    )


@pytest.mark.parametrize(
    ("resolution", "buyer_points", "errors"),
    [
        (None, None, {"resolution": ["Must be one of: refund, release, or split."]}),
        ("keep", None, {"resolution": ["Must be one of: refund, release, or split."]}),
        ("refund", 3, {"buyer_points": ["Only a split takes buyer_points."]}),
        ("release", 3, {"buyer_points": ["Only a split takes buyer_points."]}),
        ("split", None, {"buyer_points": ["A split gives the buyer between 1 and 49 points."]}),
        ("split", 0, {"buyer_points": ["A split gives the buyer between 1 and 49 points."]}),
        ("split", 50, {"buyer_points": ["A split gives the buyer between 1 and 49 points."]}),
    ],
)
def test_a_resolution_that_cannot_be_carried_out(
    resolution: str | None, buyer_points: int | None, errors: dict[str, list[str]]
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        settlement_for(
            RESOLVE, price=50, fee_percent=10, resolution=resolution, buyer_points=buyer_points
        )
    assert english_errors(refused.value) == errors


@pytest.mark.parametrize(("resolution", "buyer_points"), [("refund", None), (None, 5)])
def test_only_a_resolution_takes_resolution_fields(
    resolution: str | None, buyer_points: int | None
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        settlement_for(
            COMPLETE, price=50, fee_percent=10, resolution=resolution, buyer_points=buyer_points
        )
    assert english_errors(refused.value) == {
        "resolution": ["Only a dispute resolution takes a resolution."]
    }


def test_deadlines_by_status() -> None:
    settings = Settings(
        secret_key="x" * 40,
        order_accept_timeout_seconds=60,
        order_delivery_timeout_seconds=3600,
        order_auto_complete_seconds=86400,
    )
    now = datetime(2030, 1, 31, 23, 30, tzinfo=UTC)
    assert deadline_after("pending", now, settings) == datetime(2030, 1, 31, 23, 31, tzinfo=UTC)
    assert deadline_after("accepted", now, settings) == datetime(2030, 2, 1, 0, 30, tzinfo=UTC)
    assert deadline_after("delivered", now, settings) == datetime(2030, 2, 1, 23, 30, tzinfo=UTC)
    assert deadline_after("disputed", now, settings) is None
    assert deadline_after("completed", now, settings) is None
