"""Administrators and orders: every order (`GET /api/admin/orders/?status=&search=&buyer_id=
&seller_id=&sort=`) and one order's case (`GET /api/admin/orders/{id}/?before=&limit=`: the order,
its history with who acted, both parties, and its chat, read-only). Disputes are settled with
the order's own `resolve` action. The services check who is asking."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from skillswap.admin import orders as admin_orders
from skillswap.http.admin_audit import AdminHandler
from skillswap.http.base import path_id, route, takes_query
from skillswap.http.operations import operation
from skillswap.http.orders import order_json
from skillswap.http.query import PageQuery
from skillswap.http.schemas import MessageOut, OrderOut, Out, Page
from skillswap.http.validation import Body, Id
from skillswap.models import User
from skillswap.models.orders import OrderStatus

STATUS_PATTERN = "^(" + "|".join(OrderStatus) + ")$"


class AdminOrdersQuery(PageQuery):
    status: str | None = Field(
        default=None,
        pattern=STATUS_PATTERN,
        json_schema_extra={"enum": [s.value for s in OrderStatus]},
        description="Only orders in this status (e.g. `disputed`, `paused`)",
    )
    search: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="An order id, a party's username or email, or the skill's title",
    )
    buyer_id: Id | None = Field(default=None, description="Only this buyer's orders")
    seller_id: Id | None = Field(default=None, description="Only this seller's orders")
    sort: str | None = Field(
        default=None,
        pattern="^(" + "|".join(admin_orders.ORDER_SORT_KEYS) + ")$",
        json_schema_extra={"enum": list(admin_orders.ORDER_SORT_KEYS)},
        description="A column, `-column` for descending (default: `-id`, newest first)",
    )


class OrderCaseQuery(Body):
    before: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="Chat messages before this `seq`"
    )
    limit: int = Field(
        default=50, ge=1, le=admin_orders.MAX_MESSAGES, description="Chat messages, at most"
    )


class CaseParty(Out):
    id: int
    username: str
    display_name: str
    email: str
    is_active: bool


class CaseMessage(MessageOut):
    seq: int
    sender_name: str


class CaseTransition(Out):
    action: str
    from_status: str | None
    to_status: str
    actor_id: int | None = Field(description="null: a deadline moved the order")
    actor_name: str | None
    note: str
    at: datetime


class OrderCaseOut(Out):
    order: OrderOut
    buyer: CaseParty
    seller: CaseParty
    history: list[CaseTransition] = Field(description="Oldest first, with who acted")
    messages: list[CaseMessage] = Field(description="The order's chat, oldest first")
    has_more: bool = Field(description="Older messages exist (ask with ?before= the first seq)")


def _party(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "email": user.email,
        "is_active": user.is_active,
    }


def _name(user: User | None) -> str | None:
    return None if user is None else (user.display_name or user.username)


class AdminOrdersHandler(AdminHandler):
    @operation("adminListOrders", tag="Admin", response=Page[OrderOut], paged=True, problems=(403,))
    @takes_query(AdminOrdersQuery)
    async def get(self) -> None:
        """Every order, newest first or as sorted, by status, party or a search."""
        query = self.query(AdminOrdersQuery)
        page = self.page_params()
        count, views = await admin_orders.list_orders(
            self.deps,
            actor=self.user,
            status=query.status,
            search=query.search,
            buyer_id=query.buyer_id,
            seller_id=query.seller_id,
            offset=page.offset,
            limit=page.page_size,
            sort=query.sort,
        )
        self.send_page(page, count=count, results=[order_json(v, self.translator) for v in views])


class AdminOrderCaseHandler(AdminHandler):
    @operation("adminOrderCase", tag="Admin", response=OrderCaseOut, problems=(403, 404))
    @takes_query(OrderCaseQuery)
    async def get(self, order_id: str) -> None:
        """An order with its whole history (who acted) and its chat, for settling a dispute."""
        query = self.query(OrderCaseQuery)
        case = await admin_orders.order_case(
            self.deps,
            actor=self.user,
            order_id=path_id(order_id),
            before=query.before,
            limit=query.limit,
        )
        view = case.view
        self.send(
            {
                "order": order_json(view, self.translator),
                "buyer": _party(view.buyer),
                "seller": _party(view.seller),
                "history": [
                    {
                        "action": step.action,
                        "from_status": step.from_status,
                        "to_status": step.to_status,
                        "actor_id": step.actor_id,
                        "actor_name": _name(case.actors.get(step.actor_id))
                        if step.actor_id is not None
                        else None,
                        "note": step.note,
                        "at": step.created_at,
                    }
                    for step in view.history or []
                ],
                "messages": [
                    {
                        "id": m["id"],
                        "seq": m["seq"],
                        "sender": m["sender"],
                        "sender_name": _name(case.senders.get(m["sender"])) or "",
                        "body": m["body"],
                        "created_at": m["created_at"],
                        "client_id": m["client_id"],
                    }
                    for m in case.messages
                ],
                "has_more": case.has_more,
            }
        )


routes = [
    route("/api/admin/orders/", AdminOrdersHandler),
    route(r"/api/admin/orders/(\d+)/", AdminOrderCaseHandler),
]
