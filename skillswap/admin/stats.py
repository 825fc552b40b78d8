"""Marketplace statistics for administrators: per-period series and totals over a date range.

Closed UTC days come from the daily rollup (`stats_days`, `stats_day_completions`, kept by the
scheduler's `stats_rollup` job: `roll_up_closed_days`); today, and any day not rolled up yet,
from the rows themselves, per day, in SQL over the indexes of migration 0016. Weeks, months and
the range's totals are merged from the days in Python, exactly: counts and sums add up, active
users are the union of the days' bitmaps of ids, medians a selection over the days' sorted
durations. The figures that are "now" (totals, wallets, active skills) and the small tables
are read live. On PostgreSQL two connections per request (the daily figures and the sections
that read them, beside the others), on SQLite one read. Periods are UTC days, ISO weeks (from
Monday) or months; `from` and `to` are UTC dates, both included.

Definitions:
- users: `new` signed up in the period; `active` placed or received an order, or sent a chat
  message, in the period; `verified` (the trust badge) and `email_verified` are now.
- skills: `new` listed in the period; `active` (listed and owned by an active user) is now,
  also by category.
- orders: `placed` in the period, `completed` in the period (by its completion time),
  `disputed` moved to dispute in the period; `completion_rate` is the share of the orders
  placed in the period that are completed now; `median_seconds_to_complete` over the orders
  completed in the period (placed to completed), as `percentile_cont(0.5)` computes it.
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
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, column, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from skillswap.admin import audit
from skillswap.errors import ValidationFailed
from skillswap.i18n import lazy
from skillswap.models.base import UTCDateTime
from skillswap.models.stats import StatsDay, StatsDayCompletions
from skillswap.payments.packages import price_text

if TYPE_CHECKING:
    from skillswap.deps import Deps

INTERVALS = ("day", "week", "month")
MAX_BUCKETS = 400
DEFAULT_DAYS = 30
PAID = "('succeeded', 'partially_refunded', 'refunded')"
# How long after a UTC day's end it is rolled up: writes that began before midnight are in.
CLOSED_AFTER = timedelta(minutes=10)


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

    def grouped(self, column: str, what: str, table: str, where: str = "", keys: str = "") -> str:
        """Rows of (bucket, *keys, *what) over `table`'s rows whose `column` is in the range.
        On PostgreSQL one index range scan per bucket, between the bucket's bounds, instead of
        a bucket computed for every row (and a bucket with no rows has its row of zeros)."""
        where = f"{where} AND " if where else ""
        if not self.pg:
            return (
                f"SELECT {self.bucket(column)} AS b, {keys + ', ' if keys else ''}{what} "
                f"FROM {table} WHERE {where}{column} >= :start AND {column} < :end "
                f"GROUP BY b{', ' + keys if keys else ''}"
            )
        step = f"interval '1 {self.interval}'"
        utc = "AT TIME ZONE 'UTC'"
        return (
            "SELECT k.day AS b, c.* FROM ("
            f"SELECT g::date AS day, g {utc} AS s, (g + {step}) {utc} AS e FROM generate_series("
            f"CAST(:start AS timestamptz) {utc}, CAST(:end AS timestamptz) {utc} - interval "
            f"'1 day', {step}) g) k CROSS JOIN LATERAL (SELECT {keys + ', ' if keys else ''}"
            f"{what} FROM {table} WHERE {where}{column} >= k.s AND {column} < k.e "
            f"AND {column} < :end{' GROUP BY ' + keys if keys else ''}) c"
        )

    def day(self, column: str) -> str:
        if self.pg:
            return f"({column} AT TIME ZONE 'UTC')::date"
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
    names = [name for name in ("start", "end", "through") if f":{name}" in sql]
    statement = text(sql).bindparams(*(bindparam(n, type_=UTCDateTime()) for n in names))
    result = await session.execute(statement, {k: params[k] for k in names})
    return [tuple(row) for row in result.all()]


def _series(
    buckets: list[date], found: dict[date, dict[str, Any]], zero: dict[str, Any]
) -> list[dict[str, Any]]:
    return [{"bucket": b.isoformat(), **{**zero, **found.get(b, {})}} for b in buckets]


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


# The daily figures: closed days from the rollup (stats_days), the rest live from the rows.


@dataclass
class Days:
    """Per UTC day: users signed up, orders placed, completed (and what sellers earned by
    them) and disputed, payments by gateway and currency, messages, the
    active users (a bitmap of ids), the completed orders' durations (sorted), and the orders
    placed that day that are completed now."""

    new_users: dict[date, int] = field(default_factory=dict)
    placed: dict[date, int] = field(default_factory=dict)
    completed: dict[date, int] = field(default_factory=dict)
    disputed: dict[date, int] = field(default_factory=dict)
    # [gateway, currency, attempts, paid, amount_minor paid, points bought] lists
    payments: dict[date, list[list[Any]]] = field(default_factory=dict)
    earned: dict[date, int] = field(default_factory=dict)
    messages: dict[date, int] = field(default_factory=dict)
    active: dict[date, int] = field(default_factory=dict)
    durations: dict[date, array[float]] = field(default_factory=dict)
    done_by_placed: dict[date, int] = field(default_factory=dict)


def _add(into: dict[date, int], day: date, n: int) -> None:
    into[day] = into.get(day, 0) + n


def _bitmap(ids: list[int]) -> int:
    bits = bytearray(max(ids, default=0) // 8 + 1)
    for i in ids:
        bits[i >> 3] |= 1 << (i & 7)
    return int.from_bytes(bits, "little")


def _doubles(values: list[float]) -> array[float]:
    return array("d", sorted(values))


def _packed(durations: array[float]) -> bytes:
    if sys.byteorder == "big":
        durations = array("d", durations)
        durations.byteswap()
    return durations.tobytes()


def _unpacked(data: bytes) -> array[float]:
    durations = array("d")
    durations.frombytes(data)
    if sys.byteorder == "big":
        durations.byteswap()
    return durations


async def _live_days(
    session: AsyncSession, sql: Sql, start: datetime, end: datetime, days: Days
) -> None:
    """Add the days in [start, end) to `days` from the rows themselves."""
    p = {"start": start, "end": end}
    day, done_day = sql.day("created_at"), sql.day("completed_at")
    in_range = "created_at >= :start AND created_at < :end"
    completed_in_range = "completed_at >= :start AND completed_at < :end"
    for d, n in await _rows(
        session, f"SELECT {day} AS d, COUNT(*) FROM users WHERE {in_range} GROUP BY d", p
    ):
        _add(days.new_users, _day(d), int(n))
    for d, n in await _rows(
        session, f"SELECT {day} AS d, COUNT(*) FROM orders WHERE {in_range} GROUP BY d", p
    ):
        _add(days.placed, _day(d), int(n))
    for d, n in await _rows(
        session,
        f"SELECT {day} AS d, COUNT(*) FROM order_transitions "
        f"WHERE to_status = 'disputed' AND {in_range} GROUP BY d",
        p,
    ):
        _add(days.disputed, _day(d), int(n))
    for d, gateway, currency, n, ok, amount, points in await _rows(
        session,
        f"SELECT {day} AS d, gateway, currency, COUNT(*), "
        f"SUM(CASE WHEN status IN {PAID} THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN status IN {PAID} THEN amount_minor ELSE 0 END), "
        f"SUM(CASE WHEN status IN {PAID} THEN points ELSE 0 END) "
        f"FROM payments WHERE {in_range} GROUP BY d, gateway, currency",
        p,
    ):
        days.payments.setdefault(_day(d), []).append(
            [gateway, currency, int(n), int(ok or 0), int(amount or 0), int(points or 0)]
        )
    for d, n, earned in await _rows(
        session,
        f"SELECT {done_day} AS d, COUNT(*), COALESCE(SUM(seller_points), 0) FROM orders "
        f"WHERE {completed_in_range} GROUP BY d",
        p,
    ):
        _add(days.completed, _day(d), int(n))
        _add(days.earned, _day(d), int(earned))
    durations: dict[date, list[float]] = defaultdict(list)
    for d, seconds in await _rows(
        session,
        f"SELECT {done_day}, {sql.seconds('completed_at', 'created_at')} FROM orders "
        f"WHERE {completed_in_range}",
        p,
    ):
        durations[_day(d)].append(float(seconds))
    for d, values in durations.items():
        days.durations[d] = _doubles([*days.durations.get(d, ()), *values])
    for d, n in await _rows(
        session, f"SELECT {day} AS d, COUNT(*) FROM chat_messages WHERE {in_range} GROUP BY d", p
    ):
        _add(days.messages, _day(d), int(n))
    ids: dict[date, list[int]] = defaultdict(list)
    for d, uid in await _rows(
        session,
        f"SELECT {day}, buyer_id FROM orders WHERE {in_range} "
        f"UNION SELECT {day}, seller_id FROM orders WHERE {in_range} "
        f"UNION SELECT {day}, sender_id FROM chat_messages WHERE {in_range}",
        p,
    ):
        ids[_day(d)].append(int(uid))
    for d, users in ids.items():
        days.active[d] = days.active.get(d, 0) | _bitmap(users)


async def _stored_days(session: AsyncSession, start: date, end: date, days: Days) -> None:
    """Add the rolled-up days in [start, end) to `days`."""
    result = await session.execute(
        select(StatsDay).where(StatsDay.day >= start, StatsDay.day < end)
    )
    for row in result.scalars():
        days.new_users[row.day] = row.new_users
        days.placed[row.day] = row.placed
        days.completed[row.day] = row.completed
        days.disputed[row.day] = row.disputed
        days.payments[row.day] = row.payments
        days.earned[row.day] = row.earned
        days.messages[row.day] = row.messages
        days.active[row.day] = int.from_bytes(row.active_users, "little")
        days.durations[row.day] = _unpacked(row.durations)


async def _rolled_through(session: AsyncSession) -> date | None:
    """The day after the last rolled-up day: every day before it is in the rollup."""
    last = await session.scalar(select(func.max(StatsDay.day)))
    return None if last is None else _day(last) + timedelta(days=1)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


async def _days(session: AsyncSession, sql: Sql, start: date, end: date) -> Days:
    """The daily figures of [start, end): rolled-up days from the rollup, the others live."""
    days = Days()
    through = await _rolled_through(session)
    live_from = start if through is None else max(start, through)
    if through is not None and start < through:
        await _stored_days(session, start, min(end, through), days)
    if live_from < end:
        await _live_days(session, sql, _midnight(live_from), _midnight(end), days)
    # Orders placed in the range and completed since: on a rolled-up day, or after them.
    if through is not None and start < through:
        result = await session.execute(
            select(StatsDayCompletions.placed_day, func.sum(StatsDayCompletions.orders))
            .where(StatsDayCompletions.placed_day >= start, StatsDayCompletions.placed_day < end)
            .group_by(StatsDayCompletions.placed_day)
        )
        for d, n in result.all():
            _add(days.done_by_placed, _day(d), int(n))
    since = "" if through is None else "AND completed_at >= :through "
    values = {"start": _midnight(start), "end": _midnight(end)}
    if through is not None:
        values["through"] = _midnight(through)
    for d, n in await _rows(
        session,
        f"SELECT {sql.day('created_at')} AS d, COUNT(*) FROM orders "
        f"WHERE completed_at IS NOT NULL {since}"
        "AND created_at >= :start AND created_at < :end GROUP BY d",
        values,
    ):
        _add(days.done_by_placed, _day(d), int(n))
    return days


def _by_bucket(per_day: dict[date, Any], interval: str) -> dict[date, list[Any]]:
    buckets: dict[date, list[Any]] = defaultdict(list)
    for day, value in per_day.items():
        buckets[_bucket_start(day, interval)].append(value)
    return buckets


def _sums(per_day: dict[date, int], interval: str) -> dict[date, int]:
    return {b: sum(values) for b, values in _by_bucket(per_day, interval).items()}


def _union(bitmaps: list[int]) -> int:
    merged = 0
    for bits in bitmaps:
        merged |= bits
    return merged


def _kth(parts: list[array[float]], k: int) -> float:
    """The k-th smallest (from 0) of the sorted `parts` together, without sorting them all: a
    selection whose pivot is the middle of the widest window of candidates; bisecting every
    window at the pivot keeps the side the k-th is on, until few candidates are left."""
    windows = [(part, 0, len(part)) for part in parts if part]
    below = 0  # the values left of every window: all smaller than the k-th
    while sum(hi - lo for _, lo, hi in windows) > 4096:
        part, lo, hi = max(windows, key=lambda window: window[2] - window[1])
        pivot = part[(lo + hi) // 2]
        cuts = [
            (part, lo, bisect_left(part, pivot, lo, hi), bisect_right(part, pivot, lo, hi), hi)
            for part, lo, hi in windows
        ]
        less = below + sum(left - lo for _, lo, left, _, _ in cuts)
        at_most = below + sum(right - lo for _, lo, _, right, _ in cuts)
        if k < less:
            windows = [(part, lo, left) for part, lo, left, _, _ in cuts if left > lo]
        elif k < at_most:
            return pivot
        else:
            below = at_most
            windows = [(part, right, hi) for part, _, _, right, hi in cuts if hi > right]
    left = sorted(value for part, lo, hi in windows for value in part[lo:hi])
    return left[k - below]


def _median(parts: list[array[float]]) -> float | None:
    """`percentile_cont(0.5)` of the durations in `parts`, rounded to a tenth of a second:
    the middle one, or the first middle one plus half the gap to the second, in doubles."""
    n = sum(len(part) for part in parts)
    if not n:
        return None
    if n <= 4096:
        ordered = sorted(value for part in parts for value in part)
        first, second = ordered[(n - 1) // 2], ordered[n // 2]
    else:
        first, second = _kth(parts, (n - 1) // 2), _kth(parts, n // 2)
    middle = first if n % 2 else first + (second - first) * 0.5
    return round(middle, 1)


async def roll_up_closed_days(deps: Deps, now: datetime, *, chunk_days: int = 31) -> int:
    """Roll up every closed UTC day not rolled up yet (from the first day with users, orders,
    payments or messages), a chunk of days per unit of work, up to the first day with a
    payment still pending; how many days were added. A day is closed once CLOSED_AFTER has
    passed since its end, so that writes begun before midnight are in."""
    sql = Sql(deps.db.engine.dialect.name, "day")
    last_closed = (now - CLOSED_AFTER).astimezone(UTC).date()  # the first day still open
    async with deps.db.read() as session:
        day = await _rolled_through(session)
        if day is None:
            first = await session.scalar(
                text(
                    "SELECT MIN(at) FROM (SELECT MIN(created_at) AS at FROM users "
                    "UNION ALL SELECT MIN(created_at) FROM orders "
                    "UNION ALL SELECT MIN(created_at) FROM payments "
                    "UNION ALL SELECT MIN(created_at) FROM chat_messages) f"
                ).columns(column("at", UTCDateTime()))
            )
            day = last_closed if first is None else _day(first)
    added = 0
    while day < last_closed:
        begin, until = day, min(last_closed, day + timedelta(days=chunk_days))
        async with deps.db.read() as session:
            [(pending,)] = await _rows(
                session,
                "SELECT MIN(created_at) FROM payments WHERE status = 'pending' "
                "AND created_at >= :start AND created_at < :end",
                {"start": _midnight(begin), "end": _midnight(until)},
            )
        if pending is not None:  # that day waits until its payments are settled
            until = _day(pending)
            if until <= begin:
                break
        async with deps.db.uow() as uow:
            days = Days()
            await _live_days(uow.session, sql, _midnight(begin), _midnight(until), days)
            while day < until:
                uow.session.add(
                    StatsDay(
                        day=day,
                        new_users=days.new_users.get(day, 0),
                        placed=days.placed.get(day, 0),
                        completed=days.completed.get(day, 0),
                        disputed=days.disputed.get(day, 0),
                        payments=days.payments.get(day, []),
                        earned=days.earned.get(day, 0),
                        messages=days.messages.get(day, 0),
                        active_users=days.active.get(day, 0).to_bytes(
                            (days.active.get(day, 0).bit_length() + 7) // 8, "little"
                        ),
                        durations=_packed(days.durations.get(day, array("d"))),
                    )
                )
                day += timedelta(days=1)
                added += 1
            completions = await _rows(
                uow.session,
                f"SELECT {sql.day('completed_at')} AS c, {sql.day('created_at')} AS p, "
                "COUNT(*) FROM orders WHERE completed_at >= :start AND completed_at < :end "
                "GROUP BY c, p",
                {"start": _midnight(begin), "end": _midnight(until)},
            )
            uow.session.add_all(
                StatsDayCompletions(completed_day=_day(c), placed_day=_day(p), orders=int(n))
                for c, p, n in completions
            )
            await uow.commit()
    return added


async def _users(session: AsyncSession, sql: Sql, p: dict[str, Any]) -> dict[str, Any]:
    days: Days = await p["days"]
    new = list(_sums(days.new_users, p["interval"]).items())
    [(total, verified, email_verified)] = await _rows(
        session,
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN is_verified THEN 1 ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN email_verified THEN 1 ELSE 0 END), 0) FROM users",
        p,
    )
    found: dict[date, dict[str, Any]] = defaultdict(dict)
    for b, n in new:
        found[_day(b)]["new"] = int(n)
    everyone = 0
    for bucket, users in _by_bucket(days.active, p["interval"]).items():
        merged = _union(users)
        found[bucket]["active"] = merged.bit_count()
        everyone |= merged
    return {
        "series": _series(p["buckets"], found, {"new": 0, "active": 0}),
        "totals": {
            "new": sum(int(n) for _, n in new),
            "active": everyone.bit_count(),
            "total": int(total),
            "verified": int(verified),
            "email_verified": int(email_verified),
        },
    }


async def _skills(session: AsyncSession, sql: Sql, p: dict[str, Any]) -> dict[str, Any]:
    new = await _rows(session, sql.grouped("created_at", "COUNT(*)", "skills"), p)
    categories = await _rows(
        session,
        "SELECT c.id, c.slug, c.name_en, c.name_ar, COUNT(s.id) FROM skill_categories c "
        "JOIN skills s ON s.category_id = c.id AND s.status = 'active' "
        # A primary-key probe per listed skill, not a scan of every user to join them.
        "AND (SELECT u.is_active FROM users u WHERE u.id = s.owner_id) "
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
    days: Days = await p["days"]
    interval = p["interval"]
    disputed = list(_sums(days.disputed, interval).items())
    found: dict[date, dict[str, Any]] = defaultdict(dict)
    placed = _sums(days.placed, interval)
    done = _sums(days.done_by_placed, interval)
    for b, n in placed.items():
        found[b].update(placed=n, completion_rate=_rate(done.get(b, 0), n))
    durations = _by_bucket(days.durations, interval)
    for b, n in _sums(days.completed, interval).items():
        found[b].update(completed=n, median_seconds_to_complete=_median(durations.get(b, [])))
    for b, n in disputed:
        found[_day(b)]["disputed"] = int(n)
    zero = {
        "placed": 0,
        "completed": 0,
        "disputed": 0,
        "completion_rate": None,
        "median_seconds_to_complete": None,
    }
    placed_total = sum(placed.values())
    return {
        "series": _series(p["buckets"], found, zero),
        "totals": {
            "placed": placed_total,
            "completed": sum(days.completed.values()),
            "disputed": sum(int(n) for _, n in disputed),
            "completion_rate": _rate(sum(done.values()), placed_total),
            "median_seconds_to_complete": _median(list(days.durations.values())),
        },
    }


async def _points(session: AsyncSession, sql: Sql, p: dict[str, Any]) -> dict[str, Any]:
    [(circulating, held)] = await _rows(
        session,
        "SELECT COALESCE(SUM(balance), 0), COALESCE(SUM(held), 0) FROM ledger_accounts "
        "WHERE kind = 'user'",
        p,
    )
    earned = list(_sums((await p["days"]).earned, p["interval"]).items())
    bought_by: dict[date, int] = defaultdict(int)
    for day, rows in (await p["days"]).payments.items():
        bought_by[_bucket_start(day, p["interval"])] += sum(row[5] for row in rows)
    bought = list(bought_by.items())
    adjusted = await _rows(
        session,
        sql.grouped(
            "created_at",
            "COALESCE(SUM(CASE WHEN debit_account_id = -1 THEN amount ELSE -amount END), 0)",
            "ledger_transfers",
            "kind = 'adjustment' AND status = 'posted' "
            "AND -1 IN (debit_account_id, credit_account_id)",
        ),
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
    counts: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0])
    paid: dict[tuple[str, str], int] = defaultdict(int)
    for day, rows in (await p["days"]).payments.items():
        b = _bucket_start(day, p["interval"])
        for gateway, currency, n, ok, amount, _points in rows:
            counts[gateway, b][0] += n
            counts[gateway, b][1] += ok
            if ok:
                paid[gateway, currency] += amount
    attempts = [(g, b, n, ok) for (g, b), (n, ok) in counts.items()]
    revenue = [(g, c, n) for (g, c), n in paid.items()]
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
    sent = _sums((await p["days"]).messages, p["interval"])
    found = {b: {"messages": n} for b, n in sent.items()}
    return {
        "series": _series(p["buckets"], found, {"messages": 0}),
        "totals": {"messages": sum(sent.values())},
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
    params: dict[str, Any] = {
        "start": _midnight(span.start),
        "end": _midnight(span.end),
        "buckets": span.buckets,
        "interval": span.interval,
    }
    sql = Sql(deps.db.engine.dialect.name, span.interval)

    # The daily figures, awaited by the sections that read them.
    params["days"] = days = asyncio.get_running_loop().create_future()
    daily = ("orders", "payments", "points", "chat")
    other = tuple(n for n in SECTIONS if n not in daily)

    async def run(names: tuple[str, ...], *, with_days: bool) -> dict[str, Any]:
        try:
            async with deps.db.read() as session:
                if with_days:
                    days.set_result(await _days(session, sql, span.start, span.end))
                return {name: await SECTIONS[name](session, sql, params) for name in names}
        except BaseException as exc:
            if with_days and not days.done():  # no section waits for them for ever
                days.set_exception(exc)
            raise

    if sql.pg:
        # Two connections: the daily figures and what reads them, beside the others.
        parts = await asyncio.gather(run(daily, with_days=True), run(other, with_days=False))
        found = {**parts[0], **parts[1]}
    else:
        found = await run(tuple(SECTIONS), with_days=True)
    figures = {name: found[name] for name in SECTIONS}
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
