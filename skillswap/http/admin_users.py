"""Administrators and users: `GET /api/admin/users/`, `GET|PATCH /api/admin/users/{id}/`.

Non-administrators are refused (403 `admin_only`) before their query or body is read
(`AdminHandler`); the services check again, first thing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from skillswap.admin import users as admin_users
from skillswap.http.admin_audit import AdminHandler
from skillswap.http.admin_payments import AdminPaymentOut, admin_payment_json
from skillswap.http.base import path_id, route, takes_query
from skillswap.http.operations import operation
from skillswap.http.query import PageQuery
from skillswap.http.schemas import Out, Page
from skillswap.http.skills import PlainText
from skillswap.http.validation import Body
from skillswap.models import Order, Report, User

# -- response models -----------------------------------------------------------------------------


class AdminUserOut(Out):
    """A user as administrators see them (the account's private fields included)."""

    id: int
    email: str
    username: str
    display_name: str
    avatar_url: str
    locale: str
    is_admin: bool
    is_active: bool = Field(description="false: banned")
    is_verified: bool = Field(description="The trust badge the public profile shows")
    email_verified: bool
    banned_at: datetime | None
    deletion_scheduled_for: datetime | None = Field(
        description="When the account will be deleted (it can be reinstated until then)"
    )
    deleted_at: datetime | None = Field(description="When the account was erased (a tombstone)")
    rating_average: float | None
    rating_count: int
    created_at: datetime


class WalletOut(Out):
    balance: int
    held: int = Field(description="Held in escrow by open orders")
    available: int


class AdminOrderSummary(Out):
    id: int
    status: str
    buyer_id: int
    seller_id: int
    skill_id: int
    price_points: int
    deadline_at: datetime | None
    created_at: datetime


class AdminReportOut(Out):
    """A report as administrators see it (the reporter sees less: see ReportOut)."""

    id: int
    reporter_id: int
    target_type: Literal["skill", "user", "review", "message"]
    target_id: int
    subject_user_id: int | None = Field(description="Whom the report is about")
    reason: str
    detail: str
    status: Literal["open", "closed"]
    outcome: str | None
    closed_by: int | None
    closed_at: datetime | None
    note: str
    created_at: datetime


class AdminUserDetailOut(Out):
    user: AdminUserOut
    wallet: WalletOut
    orders_as_buyer: list[AdminOrderSummary] = Field(description="The latest 20")
    orders_as_seller: list[AdminOrderSummary] = Field(description="The latest 20")
    payments: list[AdminPaymentOut] = Field(description="The latest 20")
    reports: list[AdminReportOut] = Field(description="The latest 20 about this user")


def admin_user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "username": user.username,
        "display_name": user.display_name,
        "avatar_url": user.avatar_url,
        "locale": user.locale,
        "is_admin": user.is_admin,
        "is_active": user.is_active,
        "is_verified": user.is_verified,
        "email_verified": user.email_verified,
        "banned_at": user.banned_at,
        "deletion_scheduled_for": user.deletion_scheduled_for,
        "deleted_at": user.deleted_at,
        "rating_average": user.rating_average,
        "rating_count": user.rating_count,
        "created_at": user.created_at,
    }


def order_summary_json(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "status": order.status,
        "buyer_id": order.buyer_id,
        "seller_id": order.seller_id,
        "skill_id": order.skill_id,
        "price_points": order.price_points,
        "deadline_at": order.deadline_at,
        "created_at": order.created_at,
    }


def admin_report_json(report: Report) -> dict[str, Any]:
    return {
        "id": report.id,
        "reporter_id": report.reporter_id,
        "target_type": report.target_type,
        "target_id": report.target_id,
        "subject_user_id": report.subject_user_id,
        "reason": report.reason,
        "detail": report.detail,
        "status": report.status,
        "outcome": report.outcome,
        "closed_by": report.closed_by,
        "closed_at": report.closed_at,
        "note": report.note,
        "created_at": report.created_at,
    }


def user_detail_json(detail: admin_users.UserDetail) -> dict[str, Any]:
    wallet = detail.wallet
    return {
        "user": admin_user_json(detail.user),
        "wallet": {"balance": wallet.balance, "held": wallet.held, "available": wallet.available},
        "orders_as_buyer": [order_summary_json(o) for o in detail.orders_as_buyer],
        "orders_as_seller": [order_summary_json(o) for o in detail.orders_as_seller],
        "payments": [admin_payment_json(p) for p in detail.payments],
        "reports": [admin_report_json(r) for r in detail.reports],
    }


# -- input ---------------------------------------------------------------------------------------


class AdminUsersQuery(PageQuery):
    search: PlainText | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="In email, username and display name (any case)",
    )
    status: Literal["active", "banned", "deleting", "deleted"] | None = Field(
        default=None,
        description="`deleting`: a deletion is scheduled; `deleted`: erased (a tombstone)",
    )
    is_verified: bool | None = Field(default=None, description="Only users with (or without) it")
    sort: Literal["newest", "oldest", "email", "username"] | None = Field(
        default=None, description="Default: newest first"
    )


class UserPatchBody(Body):
    is_active: bool | None = Field(default=None, description="false bans, true lifts the ban")
    is_verified: bool | None = Field(default=None, description="The trust badge")
    is_admin: bool | None = None
    reason: PlainText = Field(default="", max_length=1000, description="Required to ban")


# -- handlers ------------------------------------------------------------------------------------


class AdminUsersHandler(AdminHandler):
    @operation(
        "adminListUsers", tag="Admin", response=Page[AdminUserOut], paged=True, problems=(403,)
    )
    @takes_query(AdminUsersQuery)
    async def get(self) -> None:
        """Every user, newest first: search in email, username and display name; filter."""
        query = self.query(AdminUsersQuery)
        page = self.page_params()
        count, rows = await admin_users.list_users(
            self.deps,
            actor=self.user,
            search=query.search,
            status=query.status,
            is_verified=query.is_verified,
            sort=query.sort,
            offset=page.offset,
            limit=page.page_size,
        )
        self.send_page(page, count=count, results=[admin_user_json(u) for u in rows])


class AdminUserHandler(AdminHandler):
    @operation("adminGetUser", tag="Admin", response=AdminUserDetailOut, problems=(403, 404))
    async def get(self, user_id: str) -> None:
        """One user: profile, wallet, latest orders on both sides, payments, reports about them."""
        detail = await admin_users.user_detail(self.deps, actor=self.user, user_id=path_id(user_id))
        self.send(user_detail_json(detail))

    @operation(
        "adminUpdateUser",
        tag="Admin",
        body=UserPatchBody,
        response=AdminUserOut,
        problems=(403, 404, 409),
    )
    async def patch(self, user_id: str) -> None:
        """Ban (`is_active: false`, with a reason) or unban, verify, grant or revoke admin rights."""
        body = self.parse_body(UserPatchBody)
        user = await admin_users.update_user(
            self.deps,
            actor=self.user,
            user_id=path_id(user_id),
            is_active=body.is_active,
            is_verified=body.is_verified,
            is_admin=body.is_admin,
            reason=body.reason,
        )
        self.send(admin_user_json(user))


routes = [
    route("/api/admin/users/", AdminUsersHandler),
    route(r"/api/admin/users/(?P<user_id>\d+)/", AdminUserHandler),
]
