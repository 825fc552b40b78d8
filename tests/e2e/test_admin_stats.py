"""Marketplace statistics over real HTTP, on a database of its own: a small known marketplace
(users signed up on known days, orders placed, completed and disputed, chat messages, an
adjustment) and the exact figures per day, week and month; bad ranges 400 naming the field;
non-administrators 403 before anything is read."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.conftest import OwnApp
from tests.factories import TestUser, place_order

BONUS = 100
# A Wednesday, so its week starts two days before and its month at the 1st.
DAY_ONE = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)


async def _act(app: OwnApp, who: TestUser, order_id: int, action: str) -> None:
    response = await app.api.post(f"/api/points/orders/{order_id}/{action}/", token=who.access)
    assert response.status_code == 200, response.text


async def _stats(app: OwnApp, admin: TestUser, query: str) -> dict[str, Any]:
    response = await app.api.get(f"/api/admin/stats/?{query}", token=admin.access)
    assert response.status_code == 200, response.text
    figures: dict[str, Any] = response.json()
    return figures


async def _move(app: OwnApp, sql: str, **values: Any) -> None:
    """Put rows made now at the known times the test asserts about."""
    from sqlalchemy import bindparam, text

    from skillswap.models.base import UTCDateTime

    statement = text(sql).bindparams(
        *(bindparam(k, type_=UTCDateTime()) for k, v in values.items() if isinstance(v, datetime))
    )
    async with app.deps.db.uow() as uow:
        await uow.session.execute(statement, values)
        await uow.commit()


async def test_the_figures_of_a_known_marketplace_per_day_week_and_month(own_app: OwnApp):
    app = own_app
    one, two = DAY_ONE, DAY_ONE + timedelta(days=1, hours=1)
    admin = await app.user(admin=True)
    buyer, seller = await app.user(), await app.user()
    done = await place_order(app.api, app.deps, buyer, seller)
    disputed = await place_order(app.api, app.deps, buyer, seller)
    for action in ("accept", "deliver"):
        await _act(app, seller, done["id"], action)
        await _act(app, seller, disputed["id"], action)
    said = await app.api.post(
        f"/api/chat/rooms/{done['room_id']}/send/", token=buyer.access, json={"body": "Hi"}
    )
    assert said.status_code in (200, 201), said.text
    await _act(app, buyer, done["id"], "complete")
    await _act(app, buyer, disputed["id"], "dispute")
    late = await app.user(verified=False)  # signs up on day two, does nothing, never verifies
    adjusted = await app.api.post(
        "/api/admin/ledger/adjustments/",
        token=admin.access,
        json={"user_id": late.id, "amount": 5, "reason": "Welcome"},
    )
    assert adjusted.status_code == 201, adjusted.text
    await _move(app, "UPDATE users SET created_at = :one WHERE id <> :late", one=one, late=late.id)
    await _move(app, "UPDATE users SET created_at = :two WHERE id = :late", two=two, late=late.id)
    await _move(app, "UPDATE skills SET created_at = :one", one=one)
    await _move(app, "UPDATE orders SET created_at = :one", one=one)
    await _move(
        app, "UPDATE orders SET completed_at = :two WHERE completed_at IS NOT NULL", two=two
    )
    await _move(app, "UPDATE order_transitions SET created_at = :one", one=one)
    await _move(
        app,
        "UPDATE order_transitions SET created_at = :two WHERE action IN ('complete', 'dispute')",
        two=two,
    )
    await _move(app, "UPDATE chat_messages SET created_at = :one", one=one)
    await _move(app, "UPDATE ledger_transfers SET created_at = :two", two=two)

    by_day = await _stats(app, admin, "from=2026-03-11&to=2026-03-12&interval=day")
    assert (by_day["from"], by_day["to"], by_day["interval"], by_day["timezone"]) == (
        "2026-03-11",
        "2026-03-12",
        "day",
        "UTC",
    )
    assert by_day["buckets"] == ["2026-03-11", "2026-03-12"]
    assert by_day["users"]["series"] == [
        {"bucket": "2026-03-11", "new": 3, "active": 2},
        {"bucket": "2026-03-12", "new": 1, "active": 0},
    ]
    assert by_day["users"]["totals"] == {
        "new": 4,
        "active": 2,
        "total": 4,
        "verified": 0,
        "email_verified": 3,
    }
    day_one, day_two = by_day["orders"]["series"]
    assert (day_one["placed"], day_one["completed"], day_one["disputed"]) == (2, 0, 0)
    assert day_one["completion_rate"] == 0.5  # of the two placed, one is completed now
    assert (day_two["placed"], day_two["completed"], day_two["disputed"]) == (0, 1, 1)
    assert day_two["median_seconds_to_complete"] == 86400 + 3600
    assert by_day["orders"]["totals"]["completed"] == 1
    assert by_day["orders"]["totals"]["completion_rate"] == 0.5
    points = by_day["points"]
    assert points["in_circulation"] == 3 * BONUS + 5  # the unverified latecomer has no bonus
    assert points["held_in_escrow"] == 1  # the disputed order's point
    earned = points["totals"]["earned"]
    assert earned in (0, 1)  # the 1-point order's seller share after the platform fee
    assert [b["adjusted"] for b in points["series"]] == [0, 5]
    assert [b["earned"] for b in points["series"]] == [0, earned]
    assert points["totals"]["bought"] == 0
    assert by_day["chat"]["series"] == [
        {"bucket": "2026-03-11", "messages": 1},
        {"bucket": "2026-03-12", "messages": 0},
    ]
    assert by_day["payments"] == {"gateways": []}
    assert by_day["skills"]["totals"]["new"] == 2 and by_day["skills"]["totals"]["active"] == 2

    by_week = await _stats(app, admin, "from=2026-03-11&to=2026-03-12&interval=week")
    assert by_week["buckets"] == ["2026-03-09"] and by_week["from"] == "2026-03-09"
    assert by_week["users"]["series"] == [{"bucket": "2026-03-09", "new": 4, "active": 2}]
    [week] = by_week["orders"]["series"]
    assert (week["placed"], week["completed"], week["disputed"]) == (2, 1, 1)
    by_month = await _stats(app, admin, "from=2026-01-01&to=2026-03-31&interval=month")
    assert by_month["buckets"] == ["2026-01-01", "2026-02-01", "2026-03-01"]
    assert [b["new"] for b in by_month["users"]["series"]] == [0, 0, 4]
    assert [b["messages"] for b in by_month["chat"]["series"]] == [0, 0, 1]
    nothing = await _stats(app, admin, "from=2025-01-01&to=2025-01-03")
    assert [b["placed"] for b in nothing["orders"]["series"]] == [0, 0, 0]


async def test_the_default_range_is_the_last_30_days_by_day(own_app: OwnApp):
    admin = await own_app.user(admin=True)
    figures = await _stats(own_app, admin, "")
    today = datetime.now(UTC).date()
    assert figures["interval"] == "day" and len(figures["buckets"]) == 30
    assert figures["to"] == today.isoformat()
    assert figures["from"] == (today - timedelta(days=29)).isoformat()
    assert figures["users"]["totals"]["new"] == 1


async def test_bad_ranges_are_refused_naming_the_field_and_strangers_first(own_app: OwnApp):
    admin, user = await own_app.user(admin=True), await own_app.user()
    for query in ("", "from=yesterday", "interval=year"):
        refused = await own_app.api.get(f"/api/admin/stats/?{query}", token=user.access)
        assert refused.status_code == 403 and refused.json()["code"] == "admin_only"
    cases = {
        "from=2026-13-01": "from",
        "to=soon": "to",
        "interval=year": "interval",
        "from=2026-03-02&to=2026-03-01": "from",
        "from=2020-01-01&to=2026-01-01&interval=day": "interval",
        "unknown=1": "unknown",
    }
    for query, field in cases.items():
        bad = await own_app.api.get(f"/api/admin/stats/?{query}", token=admin.access)
        assert bad.status_code == 400, (query, bad.text)
        assert set(bad.json()["errors"]) == {field}, (query, bad.json())
    by_month = await _stats(own_app, admin, "from=2000-01-01&to=2026-12-31&interval=month")
    assert len(by_month["buckets"]) == 324
    assert date.fromisoformat(by_month["buckets"][-1]) == date(2026, 12, 1)


async def _all_intervals(app: OwnApp, admin: TestUser) -> list[dict[str, Any]]:
    return [
        await _stats(app, admin, "from=2026-03-09&to=2026-03-22&interval=day"),
        await _stats(app, admin, "from=2026-03-09&to=2026-03-22&interval=week"),
        await _stats(app, admin, "from=2026-03-01&to=2026-04-30&interval=month"),
        await _stats(app, admin, "from=2026-03-12&to=2026-03-13&interval=day"),
    ]


async def test_the_daily_rollup_gives_the_figures_read_live(own_app: OwnApp):
    """Rolled-up days and live rows give the same figures, to the active users and medians,
    also when an order placed on a rolled-up day completes after it was rolled up."""
    from sqlalchemy import text

    from skillswap.admin.stats import roll_up_closed_days

    app = own_app
    admin = await app.user(admin=True)
    buyer, seller, other = await app.user(), await app.user(), await app.user()
    orders = [await place_order(app.api, app.deps, buyer, seller) for _ in range(4)]
    orders.append(await place_order(app.api, app.deps, other, seller))
    for order in orders:
        await _act(app, seller, order["id"], "accept")
    for order in orders[:4]:
        await _act(app, seller, order["id"], "deliver")
        await _act(app, buyer, order["id"], "complete")
    said = await app.api.post(
        f"/api/chat/rooms/{orders[4]['room_id']}/send/", token=other.access, json={"body": "Hi"}
    )
    assert said.status_code in (200, 201), said.text
    # Placed on the 11th, 12th and 16th; completed after 1, 2.5, 4 and 7 hours and 2 days.
    placed = [DAY_ONE, DAY_ONE, DAY_ONE + timedelta(days=1), DAY_ONE + timedelta(days=5)]
    took = [timedelta(hours=1), timedelta(hours=2.5), timedelta(hours=4), timedelta(days=2)]
    for order, at, after in zip(orders[:4], placed, took, strict=True):
        await _move(
            app,
            "UPDATE orders SET created_at = :at, completed_at = :done WHERE id = :id",
            at=at,
            done=at + after,
            id=order["id"],
        )
    await _move(
        app, "UPDATE orders SET created_at = :at WHERE id = :id", at=DAY_ONE, id=orders[4]["id"]
    )
    await _move(app, "UPDATE chat_messages SET created_at = :at", at=DAY_ONE + timedelta(days=1))
    for status, at in (("succeeded", 0), ("refunded", 0), ("failed", 1), ("pending", 2)):
        await _move(
            app,
            "INSERT INTO payments (user_id, gateway, status, points, amount_minor, currency, "
            "refunded_minor, created_at, updated_at, settled_at) VALUES (:user, 'stripe', "
            ":status, 100, 499, 'USD', 0, :at, :at, :settled)",
            user=buyer.id,
            status=status,
            at=DAY_ONE + timedelta(days=at),
            settled=DAY_ONE + timedelta(days=at) if status in ("succeeded", "refunded") else None,
        )

    live = await _all_intervals(app, admin)
    by_day = live[0]
    assert [b["active"] for b in by_day["users"]["series"]][2:5] == [3, 3, 0]  # 11th to 13th
    assert by_day["users"]["totals"]["active"] == 3
    assert by_day["orders"]["totals"]["median_seconds_to_complete"] == 3.25 * 3600
    [march] = [b for b in live[2]["orders"]["series"] if b["bucket"] == "2026-03-01"]
    assert (march["placed"], march["completed"], march["completion_rate"]) == (5, 4, 0.8)

    [stripe] = live[2]["payments"]["gateways"]
    assert (stripe["totals"]["attempts"], stripe["totals"]["succeeded"]) == (4, 2)
    assert stripe["revenue"] == [{"currency": "USD", "amount_minor": 998, "amount": "9.98"}]
    assert live[2]["points"]["totals"]["bought"] == 200

    # The 13th has a payment still pending: the days up to it are rolled up, not beyond.
    assert await roll_up_closed_days(app.deps, datetime.now(UTC)) == 2
    assert await _all_intervals(app, admin) == live
    await _move(app, "UPDATE payments SET status = 'expired' WHERE status = 'pending'")
    live = await _all_intervals(app, admin)
    added = await roll_up_closed_days(app.deps, datetime.now(UTC))
    assert added >= 9  # from the 13th of March to yesterday
    assert await roll_up_closed_days(app.deps, datetime.now(UTC)) == 0
    assert await _all_intervals(app, admin) == live

    # The last order, placed on a rolled-up day, completes today: its day's rate follows.
    await _act(app, seller, orders[4]["id"], "deliver")
    await _act(app, other, orders[4]["id"], "complete")
    rolled = await _all_intervals(app, admin)
    [march] = [b for b in rolled[2]["orders"]["series"] if b["bucket"] == "2026-03-01"]
    assert (march["placed"], march["completed"], march["completion_rate"]) == (5, 4, 1.0)
    async with app.deps.db.uow() as uow:
        await uow.session.execute(text("DELETE FROM stats_day_completions"))
        await uow.session.execute(text("DELETE FROM stats_days"))
        await uow.commit()
    assert await _all_intervals(app, admin) == rolled
