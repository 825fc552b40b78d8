"""Buyers racing for one lesson slot, or for overlapping ones: the claims' primary key decides.

Each race is two real requests sent at once (asyncio.gather). Whatever either read first, exactly
one booking is written; the other is refused `slot_taken`, its transaction rolled back whole (no
order, no hold: the loser's points untouched), and the ledger stays consistent.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from skillswap.models import LessonSlotClaim, Order
from skillswap.points.services import audit_ledger
from tests.factories import balance

ORDERS = "/api/points/orders/"
ALL_DAY = [{"weekday": day, "start": "00:00", "end": "24:00"} for day in range(7)]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def lesson_teacher(api: Any, make_user: Any) -> Any:
    teacher = await make_user()
    response = await api.put(
        "/api/lessons/availability/",
        token=teacher.access,
        json={"timezone": "UTC", "weekly": ALL_DAY, "exceptions": []},
    )
    assert response.status_code == 200, response.text
    return teacher


def a_start(deps: Any, hour: int) -> datetime:
    day = (deps.clock() + timedelta(days=3)).date()
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


async def orders_of(deps: Any, buyer_id: int) -> int:
    async with deps.db.read() as session:
        found = await session.scalar(
            select(func.count()).select_from(Order).where(Order.buyer_id == buyer_id)
        )
    return int(found or 0)


async def claimed_by(deps: Any, seller_id: int) -> list[tuple[datetime, int]]:
    async with deps.db.read() as session:
        rows = await session.execute(
            select(LessonSlotClaim.quarter_starts_at, LessonSlotClaim.order_id)
            .where(LessonSlotClaim.seller_id == seller_id)
            .order_by(LessonSlotClaim.quarter_starts_at)
        )
        return [(row[0], row[1]) for row in rows]


async def race(api: Any, bookings: list[tuple[Any, int, datetime]]) -> list[Any]:
    return list(
        await asyncio.gather(
            *(
                api.post(
                    ORDERS,
                    token=buyer.access,
                    json={"skill_id": skill_id, "slot_start": iso(starts_at)},
                )
                for buyer, skill_id, starts_at in bookings
            )
        )
    )


async def test_two_buyers_racing_for_one_slot_exactly_one_books_it(
    api, deps, make_user, make_skill
):
    teacher = await lesson_teacher(api, make_user)
    skill = await make_skill(teacher, lesson_minutes=60, price_points=25)
    for round_number in range(4):
        first, second = await make_user(), await make_user()
        starts_at = a_start(deps, 8 + 2 * round_number)
        responses = await race(
            api, [(first, skill["id"], starts_at), (second, skill["id"], starts_at)]
        )
        assert sorted(r.status_code for r in responses) == [201, 409]
        won = next(r for r in responses if r.status_code == 201).json()
        lost = next(r for r in responses if r.status_code == 409).json()
        assert lost["code"] == "slot_taken"
        winner, loser = (first, second) if won["buyer"]["id"] == first.id else (second, first)
        assert await balance(deps, winner.id) == (100, 25)
        assert await balance(deps, loser.id) == (100, 0)  # nothing held
        assert await orders_of(deps, loser.id) == 0
        claims = [claim for claim in await claimed_by(deps, teacher.id) if claim[1] == won["id"]]
        assert [moment for moment, _ in claims] == [
            starts_at + timedelta(minutes=15 * n) for n in range(4)
        ]
    report = await audit_ledger(deps.db)
    assert report.ok, report.violations


async def test_overlapping_slots_of_a_teachers_two_lessons_race_and_one_wins(
    api, deps, make_user, make_skill
):
    teacher = await lesson_teacher(api, make_user)
    hour = await make_skill(teacher, lesson_minutes=60, price_points=10)
    half = await make_skill(teacher, lesson_minutes=30, price_points=5)
    for round_number in range(3):
        first, second = await make_user(), await make_user()
        starts_at = a_start(deps, 2 + 3 * round_number)
        # 10:00-11:00 against 10:30-11:00: they share the last two quarters.
        responses = await race(
            api,
            [
                (first, hour["id"], starts_at),
                (second, half["id"], starts_at + timedelta(minutes=30)),
            ],
        )
        assert sorted(r.status_code for r in responses) == [201, 409]
        lost = next(r for r in responses if r.status_code == 409).json()
        assert lost["code"] == "slot_taken"
        won = next(r for r in responses if r.status_code == 201).json()
        loser = second if won["buyer"]["id"] == first.id else first
        assert await balance(deps, loser.id) == (100, 0)
        assert await orders_of(deps, loser.id) == 0
        owners = {order_id for _, order_id in await claimed_by(deps, teacher.id)}
        assert won["id"] in owners
    assert (await audit_ledger(deps.db)).ok


async def test_one_buyer_booking_twice_at_once_gets_one_lesson_and_one_hold(
    api, deps, make_user, make_skill
):
    teacher = await lesson_teacher(api, make_user)
    skill = await make_skill(teacher, lesson_minutes=45, price_points=40)
    buyer = await make_user()
    starts_at = a_start(deps, 20)
    responses = await race(api, [(buyer, skill["id"], starts_at), (buyer, skill["id"], starts_at)])
    assert sorted(r.status_code for r in responses) == [201, 409]
    assert await balance(deps, buyer.id) == (100, 40)
    assert await orders_of(deps, buyer.id) == 1
    assert (await audit_ledger(deps.db)).ok
