"""Lesson orders over real HTTP: their time given back, the cancellation rule, no-shows,
rescheduling by agreement, and the deadlines that follow the lesson's times.

Each lesson is written at a chosen time (tests/lesson_support.py) and then moved through the
order action endpoint; every test ends with the ledger's own check.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from skillswap import events
from skillswap.lessons.rescheduling import claimed_by
from skillswap.models import LessonAvailability, LessonReminder, Order
from skillswap.points.services import audit_ledger
from tests.conftest import EVENT_LOG, Api, extra_server
from tests.factories import balance, insert_skill
from tests.lesson_support import lesson_order

ORDERS = "/api/points/orders/"
seen_events = EVENT_LOG.events


def quarter_after(moment: datetime, delta: timedelta) -> datetime:
    """The quarter hour at or just before `moment + delta`."""
    at = (moment + delta).astimezone(UTC).replace(second=0, microsecond=0)
    return at - timedelta(minutes=at.minute % 15)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@contextlib.asynccontextmanager
async def node_with(settings, deps, **overrides):
    """An Api on another app of this deployment, on the shared app's clock, whose settings
    differ by `overrides`."""
    configured = settings.with_overrides(**overrides)
    async with (
        extra_server(configured, event_handlers=EVENT_LOG.handlers(), clock=deps.clock) as (
            url,
            _deps,
        ),
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield Api(client)


async def act(api, user, order_id, action, **body):
    return await api.post(f"{ORDERS}{order_id}/{action}/", token=user.access, json=body)


async def read(api, user, order_id) -> dict[str, Any]:
    response = await api.get(f"{ORDERS}{order_id}/", token=user.access)
    assert response.status_code == 200, response.text
    return response.json()


async def claims(deps, order_id) -> list[datetime]:
    async with deps.db.read() as session:
        return await claimed_by(session, order_id)


async def teaches_all_week(deps, seller_id: int) -> None:
    """The teacher's hours: every day, all day (UTC)."""
    async with deps.db.uow() as uow:
        uow.session.add(
            LessonAvailability(
                user_id=seller_id,
                timezone="UTC",
                weekly=[{"weekday": day, "start": "00:00", "end": "24:00"} for day in range(7)],
                exceptions=[],
            )
        )
        await uow.commit()


def quarters_from(start: datetime, minutes: int = 60) -> list[datetime]:
    return [start + timedelta(minutes=15 * n) for n in range(minutes // 15)]


@pytest.fixture
def pair(make_user):
    async def build():
        return await make_user(), await make_user()

    return build


# -- the time given back ---------------------------------------------------------------------


async def test_a_lesson_ending_without_its_lesson_gives_its_quarters_back(api, deps, pair):
    buyer, seller = await pair()
    start = quarter_after(deps.clock(), timedelta(days=3))
    rejected = await lesson_order(api, deps, buyer, seller, starts_at=start, price=10)
    assert await claims(deps, rejected["id"]) == quarters_from(start)
    response = await act(api, seller, rejected["id"], "reject")
    assert (response.status_code, response.json()["status"]) == (200, "rejected")
    assert await claims(deps, rejected["id"]) == []
    # The time is free again: another lesson takes the very same quarters.
    by_seller = await lesson_order(api, deps, buyer, seller, starts_at=start, price=10)
    await act(api, seller, by_seller["id"], "accept")
    assert (await act(api, seller, by_seller["id"], "cancel")).json()["status"] == "cancelled"
    assert await claims(deps, by_seller["id"]) == []
    by_buyer = await lesson_order(api, deps, buyer, seller, starts_at=start, price=10)
    assert (await act(api, buyer, by_buyer["id"], "cancel")).json()["status"] == "cancelled"
    assert await claims(deps, by_buyer["id"]) == []
    # An accepted lesson keeps its time.
    kept = await lesson_order(api, deps, buyer, seller, starts_at=start, price=10)
    await act(api, seller, kept["id"], "accept")
    assert await claims(deps, kept["id"]) == quarters_from(start)
    assert await balance(deps, buyer.id) == (100, 10)
    assert await balance(deps, seller.id) == (100, 0)
    assert (await audit_ledger(deps.db)).ok


async def test_a_dispute_resolved_by_refund_gives_the_time_back_and_a_release_keeps_it(
    api, deps, pair, make_user
):
    buyer, seller = await pair()
    admin = await make_user(admin=True)
    start = quarter_after(deps.clock(), timedelta(days=2))
    refunded = await lesson_order(api, deps, buyer, seller, starts_at=start, price=10)
    released = await lesson_order(
        api, deps, buyer, seller, starts_at=start + timedelta(hours=2), price=10
    )
    for order in (refunded, released):
        await act(api, seller, order["id"], "accept")
        assert (await act(api, buyer, order["id"], "dispute")).status_code == 200
    done = await act(api, admin, refunded["id"], "resolve", resolution="refund")
    assert done.json()["status"] == "resolved"
    assert await claims(deps, refunded["id"]) == []
    await act(api, admin, released["id"], "resolve", resolution="release")
    assert await claims(deps, released["id"]) == quarters_from(start + timedelta(hours=2))
    assert await balance(deps, buyer.id) == (90, 0)
    assert await balance(deps, seller.id) == (110, 0)
    assert (await audit_ledger(deps.db)).ok


# -- the cancellation rule --------------------------------------------------------------------


async def test_a_buyer_cancelling_more_than_a_day_ahead_is_refunded_in_full(api, deps, pair):
    buyer, seller = await pair()
    start = quarter_after(deps.clock(), timedelta(days=1, hours=1))
    order = await lesson_order(api, deps, buyer, seller, starts_at=start, price=20)
    accepted = (await act(api, seller, order["id"], "accept")).json()
    assert accepted["allowed_actions"] == ["cancel", "propose_time"]
    as_buyer = await read(api, buyer, order["id"])
    assert as_buyer["allowed_actions"] == ["cancel", "dispute", "propose_time"]
    cancelled = await act(api, buyer, order["id"], "cancel")
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert (body["status"], body["resolution"]) == ("cancelled", None)
    assert body["settlement"] == {"seller_points": 0, "fee_points": 0, "refunded_points": 20}
    assert await balance(deps, buyer.id) == (100, 0)
    assert await balance(deps, seller.id) == (100, 0)
    assert (await audit_ledger(deps.db)).ok


async def test_a_late_cancellation_pays_the_teacher_half_less_the_fee(settings, deps, pair):
    buyer, seller = await pair()
    async with node_with(settings, deps, platform_fee_percent=10) as api:
        now = deps.clock()
        accepted = await lesson_order(
            api, deps, buyer, seller, starts_at=quarter_after(now, timedelta(hours=5)), price=25
        )
        await act(api, seller, accepted["id"], "accept")
        late = (await act(api, buyer, accepted["id"], "cancel")).json()
        # A booking the teacher has not confirmed yet is cancelled free, however late.
        pending = await lesson_order(
            api, deps, buyer, seller, starts_at=quarter_after(now, timedelta(hours=23)), price=9
        )
        pending_late = (await act(api, buyer, pending["id"], "cancel")).json()
        # One point: half of it is nothing, so it is refunded.
        tiny = await lesson_order(
            api, deps, buyer, seller, starts_at=quarter_after(now, timedelta(hours=7)), price=1
        )
        tiny_late = (await act(api, buyer, tiny["id"], "cancel")).json()
        statement = (await api.get("/api/points/transactions/", token=seller.access)).json()
    assert (late["status"], late["resolution"]) == ("cancelled", None)
    assert late["settlement"] == {"seller_points": 11, "fee_points": 1, "refunded_points": 13}
    assert pending_late["settlement"] == {"seller_points": 0, "fee_points": 0, "refunded_points": 9}
    assert tiny_late["settlement"] == {"seller_points": 0, "fee_points": 0, "refunded_points": 1}
    assert late["history"][-1]["action"] == "cancel"
    assert await balance(deps, buyer.id) == (100 - 12, 0)
    assert await balance(deps, seller.id) == (100 + 11, 0)
    for order in (accepted, pending, tiny):
        assert await claims(deps, order["id"]) == []
    newest = statement["results"][0]
    assert (newest["kind"], newest["amount"], newest["order_id"]) == (
        "order_earnings",
        11,
        accepted["id"],
    )
    assert (await audit_ledger(deps.db)).ok


async def test_the_free_cancellation_period_is_configurable(settings, deps, pair):
    buyer, seller = await pair()
    async with node_with(settings, deps, lesson_free_cancel_seconds=3600) as api:
        start = quarter_after(deps.clock(), timedelta(hours=3))
        order = await lesson_order(api, deps, buyer, seller, starts_at=start, price=10)
        body = (await act(api, buyer, order["id"], "cancel")).json()
    assert body["settlement"] == {"seller_points": 0, "fee_points": 0, "refunded_points": 10}
    assert await balance(deps, buyer.id) == (100, 0)
    assert (await audit_ledger(deps.db)).ok


async def test_the_seller_cancelling_refunds_in_full_even_late_or_after_the_start(api, deps, pair):
    buyer, seller = await pair()
    now = deps.clock()
    soon = await lesson_order(
        api, deps, buyer, seller, starts_at=quarter_after(now, timedelta(hours=2)), price=20
    )
    begun = await lesson_order(
        api, deps, buyer, seller, starts_at=quarter_after(now, -timedelta(minutes=20)), price=20
    )
    await act(api, seller, soon["id"], "accept")
    await accept_in_time(api, deps, seller, begun["id"])
    for order in (soon, begun):
        body = (await act(api, seller, order["id"], "cancel")).json()
        assert body["status"] == "cancelled"
        assert body["settlement"] == {"seller_points": 0, "fee_points": 0, "refunded_points": 20}
    assert await balance(deps, buyer.id) == (100, 0)
    assert await balance(deps, seller.id) == (100, 0)
    assert (await audit_ledger(deps.db)).ok


async def test_the_buyer_cannot_cancel_once_the_lesson_has_started(api, deps, pair):
    buyer, seller = await pair()
    start = quarter_after(deps.clock(), -timedelta(minutes=15))
    order = await lesson_order(api, deps, buyer, seller, starts_at=start, price=10)
    # Pending past its start: it can no longer be confirmed nor cancelled, only run out.
    pending = await act(api, buyer, order["id"], "cancel")
    assert (pending.status_code, pending.json()["code"]) == (409, "lesson_started")
    assert pending.json()["allowed_actions"] == []
    confirm = await act(api, seller, order["id"], "accept")
    assert (confirm.status_code, confirm.json()["code"]) == (409, "lesson_started")
    assert (await read(api, seller, order["id"]))["allowed_actions"] == ["reject"]
    assert (await read(api, buyer, order["id"]))["status"] == "pending"
    assert await balance(deps, buyer.id) == (100, 10)
    assert (await audit_ledger(deps.db)).ok


# -- no-shows ---------------------------------------------------------------------------------


async def test_a_no_show_pays_the_teacher_everything_less_the_fee(settings, deps, pair):
    buyer, seller = await pair()
    now = deps.clock()
    async with node_with(settings, deps, platform_fee_percent=10) as api:
        missed = await lesson_order(
            api, deps, buyer, seller, starts_at=quarter_after(now, -timedelta(minutes=30)), price=30
        )
        await accept_in_time(api, deps, seller, missed["id"])
        as_seller = await read(api, seller, missed["id"])
        assert as_seller["allowed_actions"] == ["cancel", "no_show"]
        by_buyer = await act(api, buyer, missed["id"], "no_show")
        assert (by_buyer.status_code, by_buyer.json()["code"]) == (403, "action_not_permitted")
        reported = await act(api, seller, missed["id"], "no_show", note="Waited 20 minutes")
        assert reported.status_code == 200, reported.text
        again = await act(api, seller, missed["id"], "no_show")
        # Reported, it stands as a delivery: the learner completes it, or disputes it.
        body = reported.json()
        assert body["status"] == "delivered"
        auto = timedelta(seconds=deps.settings.order_auto_complete_seconds)
        assert abs(utc(body["deadline_at"]) - (deps.clock() + auto)) < timedelta(minutes=1)
        assert body["settlement"] is None
        assert (await read(api, buyer, missed["id"]))["allowed_actions"] == ["complete", "dispute"]
        assert await balance(deps, buyer.id) == (100, 30)  # still held
        completed = await act(api, buyer, missed["id"], "complete")
        assert completed.status_code == 200, completed.text
    last = body["history"][-1]
    assert (last["action"], last["from_status"], last["to_status"], last["actor_id"]) == (
        "no_show",
        "accepted",
        "delivered",
        seller.id,
    )
    assert last["note"] == "Waited 20 minutes"
    assert (again.status_code, again.json()["code"]) == (409, "invalid_transition")
    done = completed.json()
    assert (done["status"], done["deadline_at"]) == ("completed", None)
    assert done["settlement"] == {"seller_points": 27, "fee_points": 3, "refunded_points": 0}
    # The buyer heard of it; the time stays taken.
    told = [
        e
        for e in seen_events
        if isinstance(e, events.OrderTransitioned) and e.order_id == missed["id"]
    ]
    assert [e.action for e in told] == ["accept", "no_show", "complete"]
    assert await claims(deps, missed["id"]) == quarters_from(utc(done["lesson"]["starts_at"]))
    assert await balance(deps, buyer.id) == (70, 0)
    assert await balance(deps, seller.id) == (127, 0)
    assert (await audit_ledger(deps.db)).ok


async def test_a_learner_who_did_come_disputes_a_no_show_and_the_clock_pays_an_unanswered_one(
    own_app,
):
    from skillswap.orders.deadlines import run_order_deadlines

    api, deps = own_app.api, own_app.deps
    buyer, seller = await own_app.user(), await own_app.user()
    now = deps.clock()
    disputed = await lesson_order(
        api, deps, buyer, seller, starts_at=quarter_after(now, -timedelta(minutes=45)), price=20
    )
    unanswered = await lesson_order(
        api,
        deps,
        buyer,
        seller,
        starts_at=quarter_after(now, -timedelta(minutes=75)),
        price=10,
        minutes=15,
    )
    for order in (disputed, unanswered):
        await accept_in_time(api, deps, seller, order["id"])
        reported = await act(api, seller, order["id"], "no_show")
        assert reported.status_code == 200, reported.text
    contested = await act(api, buyer, disputed["id"], "dispute", note="I was there")
    assert contested.status_code == 200, contested.text
    assert contested.json()["status"] == "disputed"
    changes = await act(api, buyer, unanswered["id"], "request_changes")
    assert changes.status_code == 403, changes.text  # a lesson is not redone on request
    auto = timedelta(seconds=deps.settings.order_auto_complete_seconds)
    report = await run_order_deadlines(deps, now=now + auto + timedelta(minutes=1))
    assert report.completed == 1
    paid = await read(api, seller, unanswered["id"])
    assert paid["status"] == "completed"
    assert paid["settlement"]["refunded_points"] == 0
    assert (await read(api, buyer, disputed["id"]))["status"] == "disputed"  # an admin decides
    assert (await audit_ledger(deps.db)).ok


async def accept_in_time(api, deps, seller, order_id) -> None:
    """Accept a lesson whose start has passed (the seller may not any more): as if in time."""
    with deps.clock.moved(timedelta(hours=-2)):
        response = await act(api, seller, order_id, "accept")
    assert response.status_code == 200, response.text


async def test_a_no_show_is_refused_too_early_after_the_deadline_and_for_other_orders(
    api, deps, pair
):
    buyer, seller = await pair()
    now = deps.clock()
    start = quarter_after(now, timedelta(hours=2))
    early = await lesson_order(api, deps, buyer, seller, starts_at=start, price=10)
    await act(api, seller, early["id"], "accept")
    for before in (timedelta(hours=-1), timedelta(minutes=9, seconds=59)):
        with deps.clock.moved(start + before - now):
            refused = await act(api, seller, early["id"], "no_show")
        assert (refused.status_code, refused.json()["code"]) == (409, "no_show_too_early")
        assert "no_show" not in refused.json()["allowed_actions"]
    # Long after: the deadline (end + ORDER_DELIVERY_TIMEOUT_SECONDS) has passed.
    late = timedelta(minutes=61, seconds=deps.settings.order_delivery_timeout_seconds)
    with deps.clock.moved(start + late - now):
        closed = await act(api, seller, early["id"], "no_show")
    assert (closed.status_code, closed.json()["code"]) == (409, "lesson_deadline_passed")
    # Not a lesson at all.
    skill_id = await insert_skill(deps, owner_id=seller.id, price=10)
    placed = await api.post(ORDERS, token=buyer.access, json={"skill_id": skill_id})
    plain = placed.json()["id"]
    await act(api, seller, plain, "accept")
    not_lesson = await act(api, seller, plain, "no_show")
    assert (not_lesson.status_code, not_lesson.json()["code"]) == (403, "action_not_permitted")
    assert not_lesson.json()["allowed_actions"] == ["deliver", "cancel"]
    assert (await read(api, buyer, early["id"]))["status"] == "accepted"
    assert (await audit_ledger(deps.db)).ok


# -- marking a lesson taught --------------------------------------------------------------------


async def test_a_lesson_is_marked_taught_after_its_end_and_completed_by_the_buyer(api, deps, pair):
    buyer, seller = await pair()
    start = quarter_after(deps.clock(), -timedelta(minutes=30))
    order = await lesson_order(api, deps, buyer, seller, starts_at=start, price=10)
    await accept_in_time(api, deps, seller, order["id"])
    too_soon = await act(api, seller, order["id"], "deliver")
    assert (too_soon.status_code, too_soon.json()["code"]) == (409, "lesson_not_over")
    with deps.clock.moved(timedelta(hours=1)):
        delivered = await act(api, seller, order["id"], "deliver")
        assert delivered.json()["status"] == "delivered", delivered.text
        completed = await act(api, buyer, order["id"], "complete")
    assert completed.json()["settlement"] == {
        "seller_points": 10,
        "fee_points": 0,
        "refunded_points": 0,
    }
    assert await balance(deps, seller.id) == (110, 0)
    assert (await audit_ledger(deps.db)).ok


# -- rescheduling -------------------------------------------------------------------------------


async def test_a_new_time_proposed_by_one_side_and_accepted_by_the_other_moves_the_lesson(
    api, deps, pair
):
    buyer, seller = await pair()
    await teaches_all_week(deps, seller.id)
    now = deps.clock()
    start = quarter_after(now, timedelta(days=3))
    order = await lesson_order(api, deps, buyer, seller, starts_at=start, price=10)
    order_id = order["id"]
    await act(api, seller, order_id, "accept")
    async with deps.db.uow() as uow:
        uow.session.add(LessonReminder(order_id=order_id, user_id=buyer.id, offset_seconds=86400))
        await uow.commit()
    first = start + timedelta(days=1)
    proposed = await act(api, buyer, order_id, "propose_time", slot_start=iso(first))
    assert proposed.status_code == 200, proposed.text
    body = proposed.json()
    assert body["status"] == "accepted"
    assert body["lesson"]["proposed_starts_at"] == iso(first)
    assert body["lesson"]["proposed_by"] == buyer.id
    assert body["lesson"]["starts_at"] == iso(start)
    step = body["history"][-1]
    assert (step["action"], step["from_status"], step["to_status"], step["note"]) == (
        "propose_time",
        "accepted",
        "accepted",
        iso(first),
    )
    assert "accept_time" not in body["allowed_actions"]
    own = await act(api, buyer, order_id, "accept_time")
    assert (own.status_code, own.json()["code"]) == (409, "own_proposal")
    assert "accept_time" in (await read(api, seller, order_id))["allowed_actions"]
    # A counter-proposal replaces it.
    second = start + timedelta(days=2, minutes=45)
    counter = await act(
        api, seller, order_id, "propose_time", slot_start=iso(second), note="Thursday suits me"
    )
    assert counter.json()["lesson"]["proposed_by"] == seller.id
    assert counter.json()["history"][-1]["note"] == f"{iso(second)}\nThursday suits me"
    assert await claims(deps, order_id) == quarters_from(start)
    moved = await act(api, buyer, order_id, "accept_time")
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert body["status"] == "accepted"
    assert body["lesson"] == {
        "starts_at": iso(second),
        "ends_at": iso(second + timedelta(hours=1)),
        "minutes": 60,
        "proposed_starts_at": None,
        "proposed_by": None,
    }
    step = body["history"][-1]
    assert (step["action"], step["from_status"], step["to_status"], step["actor_id"]) == (
        "accept_time",
        "accepted",
        "accepted",
        buyer.id,
    )
    assert step["note"] == iso(second)
    # The deadline follows the new end; the quarters moved; the reminders start again.
    delivery = timedelta(seconds=deps.settings.order_delivery_timeout_seconds)
    assert utc(body["deadline_at"]) == second + timedelta(hours=1) + delivery
    assert await claims(deps, order_id) == quarters_from(second)
    async with deps.db.read() as session:
        reminders = await session.scalars(
            select(LessonReminder).where(LessonReminder.order_id == order_id)
        )
        assert list(reminders) == []
    again = await act(api, seller, order_id, "accept_time")
    assert (again.status_code, again.json()["code"]) == (409, "no_proposal")
    told = [
        (e.action, e.actor_id)
        for e in seen_events
        if isinstance(e, events.OrderTransitioned) and e.order_id == order_id
    ]
    assert told == [
        ("accept", seller.id),
        ("propose_time", buyer.id),
        ("propose_time", seller.id),
        ("accept_time", buyer.id),
    ]
    notices = (await api.get("/api/notifications/", token=seller.access)).json()["results"]
    assert any(
        n["payload"].get("action") == "accept_time" and n["payload"]["order_id"] == order_id
        for n in notices
    )
    assert await balance(deps, buyer.id) == (100, 10)
    assert (await audit_ledger(deps.db)).ok


async def test_a_moved_pending_booking_expires_no_later_than_its_new_start(api, deps, pair):
    buyer, seller = await pair()
    await teaches_all_week(deps, seller.id)
    now = deps.clock()
    start = quarter_after(now, timedelta(days=6))
    order = await lesson_order(api, deps, buyer, seller, starts_at=start, price=10)
    sooner = quarter_after(now, timedelta(hours=5))
    await act(api, seller, order["id"], "propose_time", slot_start=iso(sooner))
    pending = await read(api, buyer, order["id"])
    assert pending["allowed_actions"] == ["cancel", "propose_time", "accept_time"]
    body = (await act(api, buyer, order["id"], "accept_time")).json()
    assert body["status"] == "pending"
    assert utc(body["deadline_at"]) == sooner
    assert await claims(deps, order["id"]) == quarters_from(sooner)
    # Accepted, its deadline is the end plus the delivery timeout.
    accepted = (await act(api, seller, order["id"], "accept")).json()
    delivery = timedelta(seconds=deps.settings.order_delivery_timeout_seconds)
    assert utc(accepted["deadline_at"]) == sooner + timedelta(hours=1) + delivery
    assert (await audit_ledger(deps.db)).ok


async def test_a_proposed_time_is_checked(api, deps, pair, make_user):
    buyer, seller = await pair()
    stranger = await make_user()
    now = deps.clock()
    start = quarter_after(now, timedelta(days=3))
    order_id = (await lesson_order(api, deps, buyer, seller, starts_at=start))["id"]

    async def propose(slot_start, user=buyer):
        body = {} if slot_start is None else {"slot_start": slot_start}
        return await act(api, user, order_id, "propose_time", **body)

    # The teacher gives lessons only from 09:00 to 12:00 UTC.
    async with deps.db.uow() as uow:
        uow.session.add(
            LessonAvailability(
                user_id=seller.id,
                timezone="UTC",
                weekly=[{"weekday": day, "start": "09:00", "end": "12:00"} for day in range(7)],
                exceptions=[],
            )
        )
        await uow.commit()
    day = (start + timedelta(days=2)).replace(hour=0, minute=0)
    unavailable = "slot_unavailable"
    cases = [
        (None, 400, "Give the proposed start of the lesson."),
        ("not a time", 400, "Enter a valid date and time."),
        (iso(start), 400, "This is already the lesson's time."),
        (
            iso(day.replace(hour=9, minute=10)),
            unavailable,
            "Lessons start on the quarter hour (:00, :15, :30 or :45).",
        ),
        (iso(day.replace(hour=13)), unavailable, "The teacher does not offer this time."),
        # 11:15 to 12:15 does not fit in the hours.
        (
            iso(day.replace(hour=11, minute=15)),
            unavailable,
            "The teacher does not offer this time.",
        ),
        (iso(quarter_after(now, timedelta(minutes=30))), unavailable, "This time is too soon"),
        (iso(quarter_after(now, -timedelta(days=1))), unavailable, "This time is too soon"),
        (iso(quarter_after(now, timedelta(days=500))), unavailable, "This time is too far ahead"),
    ]
    for value, expected, message in cases:
        refused = await propose(value)
        problem = refused.json()
        if expected == 400:
            assert (refused.status_code, problem["code"]) == (400, "validation_error"), value
            assert problem["errors"]["slot_start"] == [message]
        else:
            assert (refused.status_code, problem["code"]) == (409, expected), value
            assert problem["detail"].startswith(message), problem
    after = await read(api, buyer, order_id)
    assert after["lesson"]["proposed_starts_at"] is None
    assert [step["action"] for step in after["history"]] == ["place"]
    # A local time with its offset is the same moment in UTC.
    cairo = (day.replace(hour=10) + timedelta(hours=2)).replace(tzinfo=None).isoformat() + "+02:00"
    fine = await propose(cairo)
    assert fine.status_code == 200, fine.text
    assert fine.json()["lesson"]["proposed_starts_at"] == iso(day.replace(hour=10))
    other = await act(api, buyer, order_id, "cancel", slot_start=iso(day.replace(hour=10)))
    assert (other.status_code, other.json()["errors"]["slot_start"][0]) == (
        400,
        "Only proposing a time takes a slot_start.",
    )
    nobody = await propose(iso(day.replace(hour=10)), user=stranger)
    assert (nobody.status_code, nobody.json()["code"]) == (404, "order_not_found")
    no_proposal_yet = await lesson_order(
        api, deps, buyer, seller, starts_at=start + timedelta(hours=2)
    )
    refused = await act(api, seller, no_proposal_yet["id"], "accept_time")
    assert (refused.status_code, refused.json()["code"]) == (409, "no_proposal")
    # Once over, a lesson is no longer moved.
    await act(api, seller, order_id, "reject")
    closed = await propose(iso(day.replace(hour=9)))
    assert (closed.status_code, closed.json()["code"]) == (409, "invalid_transition")
    assert (await audit_ledger(deps.db)).ok


async def test_accepting_a_time_someone_booked_meanwhile_is_409_and_changes_nothing(
    api, deps, pair, make_user
):
    buyer, seller = await pair()
    other_buyer = await make_user()
    await teaches_all_week(deps, seller.id)
    start = quarter_after(deps.clock(), timedelta(days=4))
    order = await lesson_order(api, deps, buyer, seller, starts_at=start, price=10)
    wanted = start + timedelta(days=1)
    await act(api, buyer, order["id"], "propose_time", slot_start=iso(wanted))
    # Another buyer books a lesson overlapping the proposed time's last quarter.
    taken = wanted + timedelta(minutes=45)
    await lesson_order(api, deps, other_buyer, seller, starts_at=taken, price=10)
    refused = await act(api, seller, order["id"], "accept_time")
    assert (refused.status_code, refused.json()["code"]) == (409, "slot_taken")
    after = await read(api, seller, order["id"])
    assert after["lesson"]["starts_at"] == iso(start)
    assert after["lesson"]["proposed_starts_at"] == iso(wanted)
    assert [s["action"] for s in after["history"]] == ["place", "propose_time"]
    assert await claims(deps, order["id"]) == quarters_from(start)
    # Moving by a quarter hour over its own time is fine: the old claims go first.
    await act(
        api, buyer, order["id"], "propose_time", slot_start=iso(start + timedelta(minutes=15))
    )
    shifted = await act(api, seller, order["id"], "accept_time")
    assert shifted.status_code == 200, shifted.text
    assert await claims(deps, order["id"]) == quarters_from(start + timedelta(minutes=15))
    assert (await audit_ledger(deps.db)).ok


async def test_two_lessons_moved_to_one_time_at_once_one_wins(api, deps, pair, make_user):
    buyer, seller = await pair()
    other_buyer = await make_user()
    await teaches_all_week(deps, seller.id)
    start = quarter_after(deps.clock(), timedelta(days=5))
    first = await lesson_order(api, deps, buyer, seller, starts_at=start, price=10)
    second = await lesson_order(
        api, deps, other_buyer, seller, starts_at=start + timedelta(hours=3), price=10
    )
    wanted = start + timedelta(days=1, minutes=30)
    await act(api, buyer, first["id"], "propose_time", slot_start=iso(wanted))
    await act(api, other_buyer, second["id"], "propose_time", slot_start=iso(wanted))
    answers = await asyncio.gather(
        act(api, seller, first["id"], "accept_time"),
        act(api, seller, second["id"], "accept_time"),
    )
    assert sorted(a.status_code for a in answers) == [200, 409]
    lost = next(a for a in answers if a.status_code == 409)
    assert lost.json()["code"] == "slot_taken"
    winner, loser = (first, second) if answers[0].status_code == 200 else (second, first)
    assert await claims(deps, winner["id"]) == quarters_from(wanted)
    loser_start = start if loser is first else start + timedelta(hours=3)
    assert await claims(deps, loser["id"]) == quarters_from(loser_start)
    assert (await audit_ledger(deps.db)).ok


# -- deadlines --------------------------------------------------------------------------------


async def test_lesson_deadlines_follow_the_lesson(own_app):
    from skillswap.orders.deadlines import run_order_deadlines

    api, deps = own_app.api, own_app.deps
    buyer, seller = await own_app.user(), await own_app.user()
    now = deps.clock()
    start = quarter_after(now, timedelta(hours=6))
    never_marked = await lesson_order(api, deps, buyer, seller, starts_at=start, price=10)
    accepted = (await act(api, seller, never_marked["id"], "accept")).json()
    delivery = timedelta(seconds=deps.settings.order_delivery_timeout_seconds)
    end = start + timedelta(hours=1)
    assert utc(accepted["deadline_at"]) == end + delivery
    taught = await lesson_order(
        api, deps, buyer, seller, starts_at=start + timedelta(hours=2), price=10
    )
    await act(api, seller, taught["id"], "accept")
    with deps.clock.moved(timedelta(hours=10)):
        delivered = (await act(api, seller, taught["id"], "deliver")).json()
    auto = timedelta(seconds=deps.settings.order_auto_complete_seconds)
    assert abs(utc(delivered["deadline_at"]) - (now + timedelta(hours=10) + auto)) < timedelta(
        minutes=1
    )
    # Nothing is due a minute before the end plus the delivery timeout (the delivered one
    # completes by itself, as any delivered order).
    report = await run_order_deadlines(deps, now=end + delivery - timedelta(minutes=1))
    assert (report.expired, report.completed) == (0, 1)
    report = await run_order_deadlines(deps, now=end + delivery + timedelta(minutes=1))
    assert (report.expired, report.completed) == (1, 0)
    expired = await read(api, buyer, never_marked["id"])
    assert (expired["status"], expired["history"][-1]["action"]) == ("expired", "expire")
    assert await claims(deps, never_marked["id"]) == []
    assert await claims(deps, taught["id"]) == quarters_from(start + timedelta(hours=2))
    assert await balance(deps, buyer.id) == (90, 0)
    assert await balance(deps, seller.id) == (110, 0)
    async with deps.db.read() as session:
        order = await session.get(Order, never_marked["id"])
        assert order is not None and order.deadline_at is None
    assert (await audit_ledger(deps.db)).ok


async def test_a_cancel_racing_an_accepted_time_leaves_no_claim_behind(api, deps, pair):
    buyer, seller = await pair()
    await teaches_all_week(deps, seller.id)
    start = quarter_after(deps.clock(), timedelta(days=4))
    order = await lesson_order(api, deps, buyer, seller, starts_at=start, price=10)
    await act(api, seller, order["id"], "accept")
    wanted = start + timedelta(days=1)
    await act(api, seller, order["id"], "propose_time", slot_start=iso(wanted))
    cancelled, moved = await asyncio.gather(
        act(api, buyer, order["id"], "cancel"),
        act(api, buyer, order["id"], "accept_time"),
    )
    # The cancel always wins (before the move, or after it); a move after the cancel is refused.
    assert cancelled.status_code == 200, cancelled.text
    assert moved.status_code in (200, 409), moved.text
    if moved.status_code == 409:
        assert moved.json()["code"] == "invalid_transition"
    after = await read(api, buyer, order["id"])
    assert after["status"] == "cancelled"
    assert after["settlement"] == {"seller_points": 0, "fee_points": 0, "refunded_points": 10}
    assert await claims(deps, order["id"]) == []
    assert await balance(deps, buyer.id) == (100, 0)
    assert (await audit_ledger(deps.db)).ok


async def test_a_cancel_racing_a_move_is_priced_at_the_time_the_lesson_has_when_it_is_cancelled(
    api, deps, pair
):
    buyer, seller = await pair()
    await teaches_all_week(deps, seller.id)
    now = deps.clock()
    outcomes = set()
    for n in range(4):
        start = quarter_after(now, timedelta(days=4, hours=n))
        # Quarter-hour lessons: within the teacher's one window a day, wherever the clock is.
        order = await lesson_order(api, deps, buyer, seller, starts_at=start, price=10, minutes=15)
        await act(api, seller, order["id"], "accept")
        soon = quarter_after(now, timedelta(hours=5, minutes=15 * n))  # within the 24 h
        proposed = await act(api, buyer, order["id"], "propose_time", slot_start=iso(soon))
        assert proposed.status_code == 200, proposed.text
        moved, cancelled = await asyncio.gather(
            act(api, seller, order["id"], "accept_time"),
            act(api, buyer, order["id"], "cancel"),
        )
        assert cancelled.status_code == 200, cancelled.text
        settlement = cancelled.json()["settlement"]
        if moved.status_code == 200:  # moved first: cancelled 5 h ahead, half is the teacher's
            assert settlement == {"seller_points": 5, "fee_points": 0, "refunded_points": 5}
        else:  # cancelled first, 4 days ahead: free, and the move refused
            assert moved.json()["code"] == "invalid_transition", moved.text
            assert settlement == {"seller_points": 0, "fee_points": 0, "refunded_points": 10}
        outcomes.add(moved.status_code)
        assert await claims(deps, order["id"]) == []
    assert outcomes <= {200, 409}
    assert (await audit_ledger(deps.db)).ok


async def test_a_proposal_grown_too_near_or_past_can_no_longer_be_accepted(api, deps, pair):
    buyer, seller = await pair()
    await teaches_all_week(deps, seller.id)
    now = deps.clock()
    start = quarter_after(now, timedelta(days=3))
    order = await lesson_order(api, deps, buyer, seller, starts_at=start, price=10, minutes=15)
    await act(api, seller, order["id"], "accept")
    soon = quarter_after(now, timedelta(hours=3))
    proposed = await act(api, buyer, order["id"], "propose_time", slot_start=iso(soon))
    assert proposed.status_code == 200, proposed.text
    for later in (timedelta(hours=2, minutes=30), timedelta(hours=4)):  # in the notice; past
        with deps.clock.moved(later):
            refused = await act(api, seller, order["id"], "accept_time")
        assert (refused.status_code, refused.json()["code"]) == (409, "slot_unavailable")
    lesson = (await read(api, seller, order["id"]))["lesson"]
    assert (lesson["starts_at"], lesson["proposed_starts_at"]) == (iso(start), iso(soon))
    assert await claims(deps, order["id"]) == [start]
    # Later still, past the proposed time, a no-show is not open on it: the lesson is 3 days on.
    with deps.clock.moved(timedelta(hours=4)):
        no_show = await act(api, seller, order["id"], "no_show")
    assert (no_show.status_code, no_show.json()["code"]) == (409, "no_show_too_early")
    assert (await audit_ledger(deps.db)).ok
