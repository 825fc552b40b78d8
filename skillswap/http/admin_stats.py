"""Marketplace statistics: `GET /api/admin/stats/?from=&to=&interval=day|week|month`.

UTC dates, both included (widened to whole periods); at most 400 periods. What each figure
counts is said in skillswap.admin.stats. The service checks who is asking.
"""

from __future__ import annotations

from datetime import date

from pydantic import Field

from skillswap.admin import stats
from skillswap.http.admin_audit import AdminHandler
from skillswap.http.base import route, takes_query
from skillswap.http.operations import operation
from skillswap.http.schemas import Out
from skillswap.http.validation import Body


class StatsQuery(Body):
    start: date | None = Field(
        default=None, alias="from", description="First UTC day (default: 29 days before `to`)"
    )
    end: date | None = Field(default=None, alias="to", description="Last UTC day (default: today)")
    interval: str | None = Field(
        default=None,
        pattern="^(day|week|month)$",
        json_schema_extra={"enum": list(stats.INTERVALS)},
        description="The period of each bucket (default: day; weeks start on Monday)",
    )


class UserBucket(Out):
    bucket: date
    new: int
    active: int = Field(description="Placed or received an order, or sent a chat message")


class UserTotals(Out):
    new: int
    active: int
    total: int
    verified: int = Field(description="Users with the trust badge, now")
    email_verified: int


class UsersStats(Out):
    series: list[UserBucket]
    totals: UserTotals


class SkillBucket(Out):
    bucket: date
    new: int


class SkillTotals(Out):
    new: int
    active: int = Field(description="Listed by active users, now")
    total: int


class CategoryCount(Out):
    id: int
    slug: str
    name_en: str
    name_ar: str
    active: int


class SkillsStats(Out):
    series: list[SkillBucket]
    totals: SkillTotals
    by_category: list[CategoryCount]


class OrderBucket(Out):
    bucket: date
    placed: int
    completed: int
    disputed: int
    completion_rate: float | None = Field(description="Of the orders placed, completed now")
    median_seconds_to_complete: float | None


class OrderTotals(Out):
    placed: int
    completed: int
    disputed: int
    completion_rate: float | None
    median_seconds_to_complete: float | None


class OrdersStats(Out):
    series: list[OrderBucket]
    totals: OrderTotals


class PointsBucket(Out):
    bucket: date
    earned: int
    bought: int
    adjusted: int = Field(description="Signed: positive credited wallets")


class PointsTotals(Out):
    earned: int
    bought: int
    adjusted: int


class PointsStats(Out):
    in_circulation: int = Field(description="The sum of the users' wallets, now")
    held_in_escrow: int
    series: list[PointsBucket]
    totals: PointsTotals


class PaymentBucket(Out):
    bucket: date
    attempts: int
    succeeded: int
    success_rate: float | None


class PaymentTotals(Out):
    attempts: int
    succeeded: int
    success_rate: float | None


class Money(Out):
    currency: str
    amount_minor: int
    amount: str = Field(description="Exact decimal, e.g. `4.99`")


class RefundTotals(Out):
    count: int
    amounts: list[Money]


class GatewayStats(Out):
    gateway: str
    series: list[PaymentBucket]
    totals: PaymentTotals
    revenue: list[Money]
    refunds: RefundTotals


class PaymentsStats(Out):
    gateways: list[GatewayStats]


class ChatBucket(Out):
    bucket: date
    messages: int


class ChatTotals(Out):
    messages: int


class ChatStats(Out):
    series: list[ChatBucket]
    totals: ChatTotals


class StatsOut(Out):
    start: date = Field(alias="from")
    end: date = Field(alias="to")
    interval: str
    timezone: str
    buckets: list[date]
    users: UsersStats
    skills: SkillsStats
    orders: OrdersStats
    points: PointsStats
    payments: PaymentsStats
    chat: ChatStats


class AdminStatsHandler(AdminHandler):
    @operation("adminMarketplaceStats", tag="Admin", response=StatsOut, problems=(403,))
    @takes_query(StatsQuery)
    async def get(self) -> None:
        """Users, skills, orders, points, payments and chat per period, with totals."""
        query = self.query(StatsQuery)
        figures = await stats.marketplace_stats(
            self.deps,
            actor=self.user,
            start=query.start,
            end=query.end,
            interval=query.interval,
        )
        self.send(figures)


routes = [route("/api/admin/stats/", AdminStatsHandler)]
