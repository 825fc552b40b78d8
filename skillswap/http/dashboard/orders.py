"""Orders and disputes (/admin/orders/, /admin/disputes/): every order, the disputed and paused
ones, and a case page with the order's history and the resolve form (`transition_order`)."""

from __future__ import annotations

from typing import Any

from skillswap.admin import orders as admin_orders
from skillswap.errors import ValidationFailed
from skillswap.http.base import route
from skillswap.http.dashboard.base import PAGE_SIZE, DashboardHandler
from skillswap.http.dashboard.export import stream_csv
from skillswap.i18n import lazy
from skillswap.models.orders import OrderAction, OrderStatus
from skillswap.orders import queries, services

CASE_STATUSES = [OrderStatus.DISPUTED, OrderStatus.PAUSED]
ORDER_CSV_HEADER = [
    "id",
    "status",
    "skill_id",
    "skill",
    "buyer_id",
    "buyer",
    "seller_id",
    "seller",
    "price_points",
    "resolution",
    "created_at",
    "updated_at",
]


def _order_row(view: Any) -> list[Any]:
    order = view.order
    return [
        order.id,
        order.status,
        view.skill.id,
        view.skill.title_en,
        view.buyer.id,
        view.buyer.username,
        view.seller.id,
        view.seller.username,
        order.price_points,
        order.resolution,
        order.created_at,
        order.updated_at,
    ]


class _OrderList(DashboardHandler):
    template = "admin/orders.html"

    def statuses(self) -> list[str]:
        raise NotImplementedError

    def sort_shown(self) -> str | None:
        """The order the table's headers show (None: a list that does not sort)."""
        return None

    async def _page(self, offset: int, limit: int) -> tuple[int, list[Any]]:
        return await queries.list_orders(
            self.deps,
            actor=self.actor,
            role=queries.EVERY_ROLE,
            statuses=self.statuses(),
            offset=offset,
            limit=limit,
        )

    async def show(self) -> None:
        if self.get_query_argument("format", None) == "csv":
            await stream_csv(
                self,
                filename=f"{self.nav}.csv",
                header=ORDER_CSV_HEADER,
                fetch=self._page,
                row=_order_row,
            )
            return
        count, rows = await self._page(self.offset(), PAGE_SIZE)
        self.render_page(
            self.template,
            count=count,
            orders=rows,
            statuses=list(OrderStatus),
            status=self.query_text("status"),
            search=self.query_text("search") or "",
            sort=self.sort_shown(),
        )


class OrdersHandler(_OrderList):
    nav = "orders"

    def statuses(self) -> list[str]:
        status = self.query_text("status")
        return [status] if status in set(OrderStatus) else []

    async def _page(self, offset: int, limit: int) -> tuple[int, list[Any]]:
        """The admin API's list: by status, and searched by id, party or skill."""
        statuses = self.statuses()
        return await admin_orders.list_orders(
            self.deps,
            actor=self.actor,
            status=statuses[0] if statuses else None,
            search=(self.query_text("search") or "")[:100] or None,
            offset=offset,
            limit=limit,
            sort=self.sort(),
        )

    def sort(self) -> str | None:
        sort = self.query_text("sort")
        return sort if sort in admin_orders.ORDER_SORT_KEYS else None

    def sort_shown(self) -> str | None:
        return self.sort() or admin_orders.DEFAULT_ORDER_SORT

    async def get(self, *args: str) -> None:
        """Every order, newest first or as sorted, by status and a search."""
        await self.show()


class DisputesHandler(_OrderList):
    nav = "disputes"
    template = "admin/disputes.html"

    def statuses(self) -> list[str]:
        return list(CASE_STATUSES)

    async def get(self, *args: str) -> None:
        """The orders waiting for an administrator: disputed, and paused by a ban."""
        await self.show()


class CaseHandler(DashboardHandler):
    nav = "disputes"

    def order_id(self) -> int:
        return self.query_id("order") or 0

    async def show(self) -> None:
        """One order: its parties, its history and what an administrator may do with it."""
        case = await admin_orders.order_case(self.deps, actor=self.actor, order_id=self.order_id())
        chat = [
            {
                "sender": _name(case.senders.get(m["sender"]), m["sender"]),
                "body": m["body"],
                "created_at": m["created_at"],
            }
            for m in case.messages
        ]
        self.render_page("admin/case.html", view=case.view, chat=chat, actions=OrderAction)

    async def post(self) -> None:
        """Resolve the dispute (refund, release or split), or take another allowed action."""
        await self.act(self._transition(), done="resolved")

    async def _transition(self) -> None:
        action = self.get_body_argument("action", "") or ""
        note = (self.get_body_argument("note", "") or "").strip()
        resolution = None
        buyer_points = None
        if action == OrderAction.RESOLVE:
            resolution = self.get_body_argument("resolution", "") or None
            if resolution == "split":
                buyer_points = await self._buyer_share()
        await services.transition_order(
            self.deps,
            actor=self.actor,
            order_id=self.order_id(),
            action=action,
            note=note,
            resolution=resolution,
            buyer_points=buyer_points,
        )

    async def _buyer_share(self) -> int:
        """A split is asked as the seller's share; the service takes the buyer's."""
        raw = (self.get_body_argument("seller_points", "") or "").strip()
        if not raw.isdecimal() or len(raw) > 15:
            raise ValidationFailed(errors={"seller_points": [lazy("Must be a whole number.")]})
        view = await queries.get_order(self.deps, actor=self.actor, order_id=self.order_id())
        return view.order.price_points - int(raw)


def _name(user: Any, user_id: int) -> str:
    return str(user.username) if user is not None else f"#{user_id}"


routes = [
    route("/admin/orders/", OrdersHandler),
    route("/admin/disputes/", DisputesHandler),
    route("/admin/disputes/case", CaseHandler),
]
