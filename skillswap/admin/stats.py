"""Marketplace statistics for administrators: per-period series and totals over a date range.

Every figure is computed in SQL, grouped by a period of a time column (`date_trunc` on
PostgreSQL, `date()` on SQLite), over the indexes of migration 0016; one statement per figure,
the sections run concurrently on PostgreSQL (each on its own connection) and one after the
other in one read on SQLite. Periods are UTC days, ISO weeks (from Monday) or months; `from`
and `to` are UTC dates, both included.

Definitions:
- users: `new` signed up in the period; `active` placed or received an order, or sent a chat
  message, in the period; `verified` (the trust badge) and `email_verified` are now.
- skills: `new` listed in the period; `active` (listed and owned by an active user) is now,
  also by category.
- orders: `placed` in the period, `completed` in the period (by its completion time),
  `disputed` moved to dispute in the period; `completion_rate` is the share of the orders
  placed in the period that are completed now; `median_seconds_to_complete` over the orders
  completed in the period (placed to completed). The median is SQL on both backends:
  `percentile_cont` on PostgreSQL, a window over the period's durations on SQLite.
- points: `in_circulation` (the sum of the users' wallets) and `held_in_escrow` are now;
  per period `earned` by sellers (orders completed), `bought` (payments made, refunded or not)
  and `adjusted` (administrators' adjustments, signed: positive credited wallets).
- payments, by gateway: `attempts` (payments started), `succeeded` (paid, refunded since or
  not), `success_rate`, revenue by currency (paid, in minor units and as exact decimal text)
  and refunds (made in the period) by currency.
- chat: messages sent per period.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from skillswap.admin import audit
from skillswap.errors import ValidationFailed
from skillswap.i18n import lazy
from skillswap.models.base import UTCDateTime
from skillswap.payments.packages import price_text

if TYPE_CHECKING:
    from skillswap.deps import Deps

INTERVALS = ("day", "week", "month")
MAX_BUCKETS = 400
DEFAULT_DAYS = 30
PAID = "('succeeded', 'partially_refunded', 'refunded')"


@dataclass(frozen=True)
class Range:
    start: date  # the first bucket's first day
    end: date  # the day after the range's last day
    interval: str
    buckets: list[date]


def _bucket_start(day: date, interval: str) -> date:
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def _next(day: date, interval: str) -> date:
    if interval == "week":
        return day + timedelta(days=7)
    if interval == "month":
        return (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return day + timedelta(days=1)


def stats_range(first: date | None, last: date | None, interval: str | None, today: date) -> Range:
    """The buckets between `first` and `last` (defaults: the last 30 days, by day), or a 400
    naming the field at fault."""
    interval = interval or "day"
    if interval not in INTERVALS:
        raise ValidationFailed(errors={"interval": [lazy("Use day, week or month.")]})
    last = last or today
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise ValidationFailed(errors={"from": [lazy("Must be on or before to.")]})
    start = _bucket_start(first, interval)
    buckets: list[date] = []
    day = start
    while day <= last:
        buckets.append(day)
        if len(buckets) > MAX_BUCKETS:
            raise ValidationFailed(
                errors={
                    "interval": [
                        lazy(
                            "At most {max} periods: choose a longer interval or a shorter range.",
                            max=MAX_BUCKETS,
                        )
                    ]
                }
            )
        day = _next(day, interval)
    return Range(start=start, end=last + timedelta(days=1), interval=interval, buckets=buckets)


class Sql:
    """The dialect's pieces: a column's bucket, a duration in seconds, a median."""

    def __init__(self, dialect: str, interval: str) -> None:
        self.pg = dialect == "postgresql"
        self.interval = interval

    def bucket(self, column: str) -> str:
        if self.pg:
            return f"date_trunc('{self.interval}', {column} AT TIME ZONE 'UTC')"
        if self.interval == "week":
            return f"date({column}, 'weekday 0', '-6 days')"
        if self.interval == "month":
            return f"date({column}, 'start of month')"
        return f"date({column})"

    def seconds(self, later: str, earlier: str) -> str:
        if self.pg:
            return f"EXTRACT(EPOCH FROM {later} - {earlier})"
        return f"(julianday({later}) - julianday({earlier})) * 86400.0"


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


Section = Callable[[AsyncSession, Sql, dict[str, Any]], Awaitable[dict[str, Any]]]


async def _rows(session: AsyncSession, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    names = [name for name in ("start", "end") if f":{name}" in sql]
    statement = text(sql).bindparams(*(bindparam(n, type_=UTCDateTime()) for n in names))
    result = await session.execute(statement, {k: params[k] for k in names})
    return [tuple(row) for row in result.all()]


def _series(
    buckets: list[date], found: dict[date, dict[str, Any]], zero: dict[str, Any]
) -> list[dict[str, Any]]:
    return [{"bucket": b.isoformat(), **{**zero, **found.get(b, {})}} for b in buckets]


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def _users(session: AsyncSession, sql: Sql, p: dict[str, Any]) -> dict[str, Any]:
    new = await _rows(
        session,
        f"SELECT {sql.bucket('created_at')} AS b, COUNT(*) FROM users "
        "WHERE created_at >= :start AND created_at < :end GROUP BY b",
        p,
    )
    activity = (
        "SELECT created_at AS at, buyer_id AS uid FROM orders "
        "WHERE created_at >= :start AND created_at < :end "
        "UNION ALL SELECT created_at, seller_id FROM orders "
        "WHERE created_at >= :start AND created_at < :end "
        "UNION ALL SELECT created_at, sender_id FROM chat_messages "
        "WHERE created_at >= :start AND created_at < :end"
    )
    active = await _rows(
        session,
        f"SELECT {sql.bucket('at')} AS b, COUNT(DISTINCT uid) FROM ({activity}) a GROUP BY b",
        p,
    )
    [(active_total,)] = await _rows(session, f"SELECT COUNT(DISTINCT uid) FROM ({activity}) a", p)
    [(total, verified, email_verified)] = await _rows(
        session,
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN is_verified THEN 1 ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN email_verified THEN 1 ELSE 0 END), 0) FROM users",
        p,
    )
    found: dict[date, dict[str, Any]] = defaultdict(dict)
    for b, n in new:
        found[_day(b)]["new"] = int(n)
    for b, n in active:
        found[_day(b)]["active"] = int(n)
    return {
        "series": _series(p["buckets"], found, {"new": 0, "active": 0}),
        "totals": {
            "new": sum(int(n) for _, n in new),
            "active": int(active_total or 0),
            "total": int(total),
            "verified": int(verified),
            "email_verified": int(email_verified),
        },
    }


async def _skills(session: AsyncSession, sql: Sql, p: dict[str, Any]) -> dict[str, Any]:
    new = await _rows(
        session,
        f"SELECT {sql.bucket('created_at')} AS b, COUNT(*) FROM skills "
        "WHERE created_at >= :start AND created_at < :end GROUP BY b",
        p,
    )
    categories = await _rows(
        session,
        "SELECT c.id, c.slug, c.name_en, c.name_ar, COUNT(s.id) FROM skill_categories c "
        "JOIN skills s ON s.category_id = c.id AND s.status = 'active' "
        "JOIN users u ON u.id = s.owner_id AND u.is_active "
        "GROUP BY c.id, c.slug, c.name_en, c.name_ar ORDER BY COUNT(s.id) DESC, c.id",
        p,
    )
    [(total,)] = await _rows(session, "SELECT COUNT(*) FROM skills WHERE status <> 'deleted'", p)
    found = {_day(b): {"new": int(n)} for b, n in new}
    return {
        "series": _series(p["buckets"], found, {"new": 0}),
        "totals": {
            "new": sum(int(n) for _, n in new),
            "active": sum(int(row[4]) for row in categories),
            "total": int(total),
        },
        "by_category": [
            {"id": i, "slug": slug, "name_en": en, "name_ar": ar, "active": int(n)}
            for i, slug, en, ar, n in categories
        ],
    }


async def _orders(session: AsyncSession, sql: Sql, p: dict[str, Any]) -> dict[str, Any]:
    placed = await _rows(
        session,
        f"SELECT {sql.bucket('created_at')} AS b, COUNT(*), "
        "SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END) FROM orders "
        "WHERE created_at >= :start AND created_at < :end GROUP BY b",
        p,
    )
    duration = sql.seconds("completed_at", "created_at")
    completed_where = "completed_at >= :start AND completed_at < :end"
    if sql.pg:
        completed = await _rows(
            session,
            f"SELECT {sql.bucket('completed_at')} AS b, COUNT(*), "
            f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {duration}) FROM orders "
            f"WHERE {completed_where} GROUP BY b",
            p,
        )
        [(median_total,)] = await _rows(
            session,
            f"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY {duration}) FROM orders "
            f"WHERE {completed_where}",
            p,
        )
    else:
        # The middle one or two durations of each period, found by a window in SQL.
        ranked = (
            f"SELECT {sql.bucket('completed_at')} AS b, {duration} AS d, "
            f"ROW_NUMBER() OVER (PARTITION BY {sql.bucket('completed_at')} ORDER BY {duration})"
            f" AS rn, COUNT(*) OVER (PARTITION BY {sql.bucket('completed_at')}) AS n "
            f"FROM orders WHERE {completed_where}"
        )
        completed = await _rows(
            session,
            f"SELECT b, MAX(n), AVG(CASE WHEN rn IN ((n + 1) / 2, (n + 2) / 2) THEN d END) "
            f"FROM ({ranked}) r GROUP BY b",
            p,
        )
        [(median_total,)] = await _rows(
            session,
            f"SELECT AVG(d) FROM (SELECT {duration} AS d, ROW_NUMBER() OVER (ORDER BY "
            f"{duration}) AS rn, COUNT(*) OVER () AS n FROM orders WHERE {completed_where}) r "
            "WHERE rn IN ((n + 1) / 2, (n + 2) / 2)",
            p,
        )
    disputed = await _rows(
        session,
        f"SELECT {sql.bucket('created_at')} AS b, COUNT(*) FROM order_transitions "
        "WHERE to_status = 'disputed' AND created_at >= :start AND created_at < :end GROUP BY b",
        p,
    )
    found: dict[date, dict[str, Any]] = defaultdict(dict)
    for b, n, done in placed:
        found[_day(b)].update(placed=int(n), completion_rate=_rate(int(done or 0), int(n)))
    for b, n, median in completed:
        found[_day(b)].update(
            completed=int(n),
            median_seconds_to_complete=None if median is None else round(float(median), 1),
        )
    for b, n in disputed:
        found[_day(b)]["disputed"] = int(n)
    zero = {
        "placed": 0,
        "completed": 0,
        "disputed": 0,
        "completion_rate": None,
        "median_seconds_to_complete": None,
    }
    placed_total = sum(int(n) for _, n, _ in placed)
    return {
        "series": _series(p["buckets"], found, zero),
        "totals": {
            "placed": placed_total,
            "completed": sum(int(n) for _, n, _ in completed),
            "disputed": sum(int(n) for _, n in disputed),
            "completion_rate": _rate(sum(int(d or 0) for _, _, d in placed), placed_total),
            "median_seconds_to_complete": None
            if median_total is None
            else round(float(median_total), 1),
        },
    }


async def _points(session: AsyncSession, sql: Sql, p: dict[str, Any]) -> dict[str, Any]:
    [(circulating, held)] = await _rows(
        session,
        "SELECT COALESCE(SUM(balance), 0), COALESCE(SUM(held), 0) FROM ledger_accounts "
        "WHERE kind = 'user'",
        p,
    )
    earned = await _rows(
        session,
        f"SELECT {sql.bucket('completed_at')} AS b, COALESCE(SUM(seller_points), 0) FROM orders "
        "WHERE completed_at >= :start AND completed_at < :end GROUP BY b",
        p,
    )
    bought = await _rows(
        session,
        f"SELECT {sql.bucket('created_at')} AS b, COALESCE(SUM(points), 0) FROM payments "
        f"WHERE created_at >= :start AND created_at < :end AND status IN {PAID} GROUP BY b",
        p,
    )
    adjusted = await _rows(
        session,
        f"SELECT {sql.bucket('created_at')} AS b, COALESCE(SUM(CASE WHEN debit_account_id = -1 "
        "THEN amount ELSE -amount END), 0) FROM ledger_transfers "
        "WHERE kind = 'adjustment' AND status = 'posted' AND created_at >= :start "
        "AND created_at < :end AND -1 IN (debit_account_id, credit_account_id) GROUP BY b",
        p,
    )
    found: dict[date, dict[str, Any]] = defaultdict(dict)
    for name, rows in (("earned", earned), ("bought", bought), ("adjusted", adjusted)):
        for b, n in rows:
            found[_day(b)][name] = int(n)
    return {
        "in_circulation": int(circulating),
        "held_in_escrow": int(held),
        "series": _series(p["buckets"], found, {"earned": 0, "bought": 0, "adjusted": 0}),
        "totals": {
            name: sum(int(n) for _, n in rows)
            for name, rows in (("earned", earned), ("bought", bought), ("adjusted", adjusted))
        },
    }


def _money(amounts: dict[str, int]) -> list[dict[str, Any]]:
    return [
        {"currency": c, "amount_minor": n, "amount": price_text(n, c)}
        for c, n in sorted(amounts.items())
    ]


async def _payments(session: AsyncSession, sql: Sql, p: dict[str, Any]) -> dict[str, Any]:
    attempts = await _rows(
        session,
        f"SELECT gateway, {sql.bucket('created_at')} AS b, COUNT(*), "
        f"SUM(CASE WHEN status IN {PAID} THEN 1 ELSE 0 END) FROM payments "
        "WHERE created_at >= :start AND created_at < :end GROUP BY gateway, b",
        p,
    )
    revenue = await _rows(
        session,
        "SELECT gateway, currency, COALESCE(SUM(amount_minor), 0) FROM payments "
        f"WHERE created_at >= :start AND created_at < :end AND status IN {PAID} "
        "GROUP BY gateway, currency",
        p,
    )
    refunds = await _rows(
        session,
        "SELECT p.gateway, p.currency, COUNT(*), COALESCE(SUM(r.amount_minor), 0) "
        "FROM payment_refunds r JOIN payments p ON p.id = r.payment_id "
        "WHERE r.created_at >= :start AND r.created_at < :end GROUP BY p.gateway, p.currency",
        p,
    )
    gateways = sorted({row[0] for row in attempts} | {row[0] for row in refunds})
    out = []
    for gateway in gateways:
        found: dict[date, dict[str, Any]] = {}
        for g, b, n, ok in attempts:
            if g == gateway:
                found[_day(b)] = {
                    "attempts": int(n),
                    "succeeded": int(ok or 0),
                    "success_rate": _rate(int(ok or 0), int(n)),
                }
        tried = sum(int(n) for g, _, n, _ in attempts if g == gateway)
        ok_total = sum(int(ok or 0) for g, _, _, ok in attempts if g == gateway)
        out.append(
            {
                "gateway": gateway,
                "series": _series(
                    p["buckets"], found, {"attempts": 0, "succeeded": 0, "success_rate": None}
                ),
                "totals": {
                    "attempts": tried,
                    "succeeded": ok_total,
                    "success_rate": _rate(ok_total, tried),
                },
                "revenue": _money({c: int(n) for g, c, n in revenue if g == gateway}),
                "refunds": {
                    "count": sum(int(n) for g, _, n, _ in refunds if g == gateway),
                    "amounts": _money({c: int(m) for g, c, _, m in refunds if g == gateway}),
                },
            }
        )
    return {"gateways": out}


async def _chat(session: AsyncSession, sql: Sql, p: dict[str, Any]) -> dict[str, Any]:
    sent = await _rows(
        session,
        f"SELECT {sql.bucket('created_at')} AS b, COUNT(*) FROM chat_messages "
        "WHERE created_at >= :start AND created_at < :end GROUP BY b",
        p,
    )
    found = {_day(b): {"messages": int(n)} for b, n in sent}
    return {
        "series": _series(p["buckets"], found, {"messages": 0}),
        "totals": {"messages": sum(int(n) for _, n in sent)},
    }


SECTIONS: dict[str, Section] = {
    "users": _users,
    "skills": _skills,
    "orders": _orders,
    "points": _points,
    "payments": _payments,
    "chat": _chat,
}


async def marketplace_stats(
    deps: Deps,
    *,
    actor: User,
    start: date | None,
    end: date | None,
    interval: str | None,
) -> dict[str, Any]:
    """The statistics between the UTC dates `start` and `end` (both included), by `interval`."""
    audit.require_admin(actor)
    span = stats_range(start, end, interval, deps.clock().astimezone(UTC).date())
    params = {
        "start": datetime.combine(span.start, datetime.min.time(), UTC),
        "end": datetime.combine(span.end, datetime.min.time(), UTC),
        "buckets": span.buckets,
    }
    sql = Sql(deps.db.engine.dialect.name, span.interval)

    async def run(section: Section) -> dict[str, Any]:
        async with deps.db.read() as session:
            return await section(session, sql, params)

    if sql.pg:
        # Each section on a connection of its own, at the same time.
        results = await asyncio.gather(*(run(section) for section in SECTIONS.values()))
        figures = dict(zip(SECTIONS, results, strict=True))
    else:
        async with deps.db.read() as session:
            figures = {name: await s(session, sql, params) for name, s in SECTIONS.items()}
    return {
        "from": span.start.isoformat(),
        "to": (span.end - timedelta(days=1)).isoformat(),
        "interval": span.interval,
        "timezone": "UTC",
        "buckets": [b.isoformat() for b in span.buckets],
        **figures,
    }


if TYPE_CHECKING:
    from skillswap.models import User
