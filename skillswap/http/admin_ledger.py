"""Administrators and the ledger: adjustments (`/api/admin/ledger/adjustments/`), a wallet's
statement (`/api/admin/ledger/wallets/{user_id}/`) and the last nightly check
(`/api/admin/ledger/check/`). The services check who is asking."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from skillswap.admin import adjustments
from skillswap.admin import ledger as admin_ledger
from skillswap.http.admin_audit import AdminHandler
from skillswap.http.base import idempotent, path_id, route, takes_query
from skillswap.http.operations import operation
from skillswap.http.query import PageQuery
from skillswap.http.schemas import Out, Page, TransactionOut
from skillswap.http.skills import PlainText
from skillswap.http.validation import Body, Id
from skillswap.models import AuditEntry
from skillswap.models.admin import LedgerCheck


class AdjustmentBody(Body):
    user_id: Id
    amount: int = Field(
        ge=-adjustments.MAX_POINTS,
        le=adjustments.MAX_POINTS,
        description="Signed whole points: positive credits the wallet, negative debits it "
        "(never 0; a debit at most the wallet's available points, else 409 "
        "`insufficient_points`)",
    )
    reason: PlainText = Field(min_length=1, max_length=adjustments.MAX_REASON)


class AdjustmentOut(Out):
    transfer_id: int
    user_id: int
    amount: int = Field(description="Signed: positive credited the wallet")
    reason: str
    balance_before: int
    balance_after: int
    held: int
    available: int
    actor_id: int
    created_at: datetime


class AdjustmentListed(Out):
    id: int = Field(description="The adjustment's audit row")
    actor_id: int
    user_id: int
    amount: int
    balance_before: int
    balance_after: int
    transfer_id: int
    reason: str
    request_id: str | None
    created_at: datetime


class AdjustmentsQuery(PageQuery):
    user_id: Id | None = Field(default=None, description="Only this user's wallet")


class WalletUser(Out):
    id: int
    username: str
    email: str
    is_active: bool


class WalletStatementOut(Out):
    user: WalletUser
    balance: int
    held: int = Field(description="Held in escrow for open orders")
    available: int
    entries: Page[TransactionOut] = Field(description="Newest first")


class LedgerProblem(Out):
    invariant: str
    detail: str


class LedgerCheckOut(Out):
    checked: bool = Field(description="False until the scheduler has run a check")
    checked_at: datetime | None
    passed: bool | None
    invariants: list[str]
    problem_count: int
    problems: list[LedgerProblem]
    counts: dict[str, int] = Field(description="Rows per ledger table when checked")
    duration_ms: int | None


def adjustment_json(done: adjustments.Adjustment) -> dict[str, Any]:
    return {
        "transfer_id": done.transfer_id,
        "user_id": done.user_id,
        "amount": done.amount,
        "reason": done.reason,
        "balance_before": done.balance_before,
        "balance_after": done.balance_after,
        "held": done.held,
        "available": done.available,
        "actor_id": done.actor_id,
        "created_at": done.created_at,
    }


def listed_adjustment_json(entry: AuditEntry) -> dict[str, Any]:
    after, before = entry.after or {}, entry.before or {}
    return {
        "id": entry.id,
        "actor_id": entry.actor_id,
        "user_id": entry.target_id,
        "amount": after.get("amount", 0),
        "balance_before": before.get("balance", 0),
        "balance_after": after.get("balance", 0),
        "transfer_id": after.get("transfer_id", 0),
        "reason": entry.reason,
        "request_id": entry.request_id,
        "created_at": entry.created_at,
    }


def ledger_check_json(check: LedgerCheck | None) -> dict[str, Any]:
    if check is None:
        return {
            "checked": False,
            "checked_at": None,
            "passed": None,
            "invariants": [],
            "problem_count": 0,
            "problems": [],
            "counts": {},
            "duration_ms": None,
        }
    return {
        "checked": True,
        "checked_at": check.checked_at,
        "passed": check.passed,
        "invariants": check.invariants,
        "problem_count": check.problem_count,
        "problems": check.problems,
        "counts": check.counts,
        "duration_ms": check.duration_ms,
    }


class AdminAdjustmentsHandler(AdminHandler):
    @operation(
        "adminListAdjustments",
        tag="Admin",
        response=Page[AdjustmentListed],
        paged=True,
        problems=(403,),
    )
    @takes_query(AdjustmentsQuery)
    async def get(self) -> None:
        """Every ledger adjustment, newest first (`?user_id=` for one wallet's)."""
        query = self.query(AdjustmentsQuery)
        page = self.page_params()
        count, rows = await adjustments.list_adjustments(
            self.deps,
            actor=self.user,
            user_id=query.user_id,
            offset=page.offset,
            limit=page.page_size,
        )
        self.send_page(page, count=count, results=[listed_adjustment_json(e) for e in rows])

    @operation(
        "adjustWallet",
        tag="Admin",
        body=AdjustmentBody,
        response=AdjustmentOut,
        status=201,
        problems=(403, 404, 409),
    )
    @idempotent
    async def post(self) -> None:
        """Credit or debit a wallet by a signed number of points, from or to `adjustments`."""
        body = self.parse_body(AdjustmentBody)
        done = await adjustments.adjust_wallet(
            self.deps,
            actor=self.user,
            user_id=body.user_id,
            amount=body.amount,
            reason=body.reason,
            idempotency_key=self.request.headers.get("Idempotency-Key"),
        )
        self.send(adjustment_json(done), status=201)

    def location_of(self, created: Any) -> str:
        return f"/api/admin/ledger/wallets/{created['user_id']}/"


class AdminWalletHandler(AdminHandler):
    @operation(
        "adminWalletStatement",
        tag="Admin",
        response=WalletStatementOut,
        paged=True,
        problems=(403, 404),
    )
    @takes_query(PageQuery)
    async def get(self, user_id: str) -> None:
        """A user's balance, held and available points, and wallet entries newest first."""
        page = self.page_params()
        statement = await admin_ledger.wallet_statement(
            self.deps,
            actor=self.user,
            user_id=path_id(user_id),
            offset=page.offset,
            limit=page.page_size,
        )
        has_next = page.offset + len(statement.lines) < statement.count
        base = self.absolute_url(self.request.path)
        self.send(
            {
                "user": {
                    "id": statement.user.id,
                    "username": statement.user.username,
                    "email": statement.user.email,
                    "is_active": statement.user.is_active,
                },
                "balance": statement.wallet.balance,
                "held": statement.wallet.held,
                "available": statement.wallet.available,
                "entries": {
                    "count": statement.count,
                    "next": f"{base}?page={page.page + 1}&page_size={page.page_size}"
                    if has_next
                    else None,
                    "previous": f"{base}?page={page.page - 1}&page_size={page.page_size}"
                    if page.page > 1
                    else None,
                    "results": [
                        {
                            "id": line.id,
                            "transfer_id": line.transfer_id,
                            "amount": line.amount,
                            "direction": "credit" if line.amount > 0 else "debit",
                            "kind": line.kind,
                            "description": self.translator.text(line.description),
                            "balance_after": line.balance_after,
                            "order_id": line.order_id,
                            "payment_id": line.payment_id,
                            "created_at": line.created_at,
                        }
                        for line in statement.lines
                    ],
                },
            }
        )


class AdminLedgerCheckHandler(AdminHandler):
    @operation("adminLastLedgerCheck", tag="Admin", response=LedgerCheckOut, problems=(403,))
    async def get(self) -> None:
        """The last nightly ledger check: when, whether every invariant held, what broke."""
        check = await admin_ledger.last_ledger_check(self.deps, actor=self.user)
        self.send(ledger_check_json(check))


routes = [
    route("/api/admin/ledger/adjustments/", AdminAdjustmentsHandler),
    route(r"/api/admin/ledger/wallets/(\d+)/", AdminWalletHandler),
    route("/api/admin/ledger/check/", AdminLedgerCheckHandler),
]
