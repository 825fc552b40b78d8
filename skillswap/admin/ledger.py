"""What administrators read of the ledger: one wallet's statement, and the last nightly check.

The scheduler's `ledger_check` job stores each run's outcome (`record_ledger_check`), so the
ledger page can say when the ledger was last verified and what, if anything, was broken,
without running the whole-database check on a page view.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from skillswap import ledger
from skillswap.admin import audit
from skillswap.errors import NotFound
from skillswap.i18n import lazy
from skillswap.ledger import WalletBalance
from skillswap.models import User
from skillswap.models.admin import LedgerCheck
from skillswap.points import services as points

if TYPE_CHECKING:
    from skillswap.deps import Deps
    from skillswap.points.services import AuditReport, StatementLine


@dataclass(frozen=True)
class WalletStatement:
    user: User
    wallet: WalletBalance
    count: int  # entries across all pages
    lines: list[StatementLine]  # this page, newest first


async def wallet_statement(
    deps: Deps, *, actor: User, user_id: int, offset: int, limit: int
) -> WalletStatement:
    """A user's balance, held and available points, and wallet entries newest first."""
    audit.require_admin(actor)
    async with deps.db.read() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise NotFound(lazy("This user does not exist."), code="user_not_found")
        wallet = await ledger.wallet_balance(session, user_id)
    # The very statement the user reads of their own wallet.
    count, lines = await points.list_transactions(deps, actor=user, offset=offset, limit=limit)
    return WalletStatement(user=user, wallet=wallet, count=count, lines=lines)


async def record_ledger_check(
    deps: Deps, report: AuditReport, *, checked_at: datetime, duration_ms: int
) -> LedgerCheck:
    """Keep one check's outcome (the scheduler's job calls this after every run)."""
    check = LedgerCheck(
        checked_at=checked_at,
        passed=report.ok,
        invariants=list(report.checked),
        problem_count=len(report.violations),
        problems=[{"invariant": v.invariant, "detail": v.detail} for v in report.violations],
        counts=dict(report.counts),
        duration_ms=duration_ms,
    )
    async with deps.db.uow() as uow:
        uow.session.add(check)
        await uow.session.flush()
        await uow.commit()
    return check


async def last_ledger_check(deps: Deps, *, actor: User) -> LedgerCheck | None:
    """The newest stored ledger check (None until the scheduler has run one)."""
    audit.require_admin(actor)
    async with deps.db.read() as session:
        found: LedgerCheck | None = await session.scalar(
            select(LedgerCheck).order_by(LedgerCheck.checked_at.desc(), LedgerCheck.id.desc())
        )
        return found
