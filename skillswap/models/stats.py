"""The marketplace statistics' daily rollup: one row per closed UTC day, kept by the scheduler.

A year of orders and messages is too many rows to count, deduplicate and sort per request; a
closed day never changes, so what the statistics need of it is kept once: the counts, the
sums, its payments by gateway and currency once none is pending, the set of its active users (a bitmap of their ids) and its completed orders' durations
(sorted). Sets and sorted durations merge exactly into any week, month or range, so distinct
users and medians stay exact. `stats_day_completions` counts the orders completed on a day by
the day they were placed: an order placed on a closed day may complete later.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import BigInteger, Date, Index, Integer, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from skillswap.models.base import Base
from skillswap.models.notifications import JSONDocument


class StatsDay(Base):
    __tablename__ = "stats_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    new_users: Mapped[int] = mapped_column(Integer)
    placed: Mapped[int] = mapped_column(Integer)
    completed: Mapped[int] = mapped_column(Integer)
    earned: Mapped[int] = mapped_column(BigInteger)
    disputed: Mapped[int] = mapped_column(Integer)
    messages: Mapped[int] = mapped_column(Integer)
    # Per gateway and currency: [gateway, currency, attempts, paid, amount_minor paid, points
    # bought]. A day is rolled up once none of its payments is pending: only a pending payment
    # moves into or out of the paid ones.
    payments: Mapped[list[Any]] = mapped_column(JSONDocument)
    # Bit n set: user n placed or received an order, or sent a message, that day.
    active_users: Mapped[bytes] = mapped_column(LargeBinary)
    # The seconds each order completed that day took, as sorted little-endian doubles.
    durations: Mapped[bytes] = mapped_column(LargeBinary)


class StatsDayCompletions(Base):
    __tablename__ = "stats_day_completions"
    __table_args__ = (Index("ix_stats_day_completions_placed", "placed_day"),)

    completed_day: Mapped[date] = mapped_column(Date, primary_key=True)
    placed_day: Mapped[date] = mapped_column(Date, primary_key=True)
    orders: Mapped[int] = mapped_column(Integer)
