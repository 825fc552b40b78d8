"""Points use cases: a wallet's balance and statement, and the ledger audit (the signup bonus is
in signup_bonus.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from skillswap import ledger
from skillswap.db import Database, UnitOfWork
from skillswap.i18n import Message, lazy
from skillswap.ledger import TransferKind, WalletBalance
from skillswap.models import LedgerAccount, LedgerEntry, LedgerTransfer, PointsPackage, User
from skillswap.points.signup_bonus import grant_signup_bonus
from skillswap.points.signup_bonus import signup_bonus_key as signup_bonus_key

if TYPE_CHECKING:
    from skillswap.deps import Deps


async def get_balance(deps: Deps, *, actor: User) -> WalletBalance:
    """The actor's balance, the part held in escrow for open orders, and what is available."""
    async with deps.db.read() as session:
        return await ledger.wallet_balance(session, actor.id)


def describe_entry(kind: str, order_id: int | None) -> Message:
    """The statement line for one entry, translated when the response is written."""
    if kind == TransferKind.ORDER_PAYMENT:
        return lazy("Payment for order #{order}", order=order_id)
    if kind == TransferKind.ORDER_EARNINGS:
        return lazy("Earnings from order #{order}", order=order_id)
    if kind == TransferKind.PLATFORM_FEE:
        return lazy("Platform fee for order #{order}", order=order_id)
    if kind == TransferKind.SIGNUP_BONUS:
        return lazy("Signup bonus")
    if kind == TransferKind.PURCHASE:
        return lazy("Points purchase")
    if kind == TransferKind.PURCHASE_REFUND:
        return lazy("Points purchase refunded")
    return lazy("Balance adjustment")


@dataclass(frozen=True)
class StatementLine:
    id: int
    transfer_id: int
    amount: int  # signed: positive credits, negative debits
    kind: str
    description: Message
    balance_after: int
    order_id: int | None
    payment_id: int | None
    created_at: datetime


async def list_transactions(
    deps: Deps, *, actor: User, offset: int, limit: int
) -> tuple[int, list[StatementLine]]:
    """The actor's wallet entries, newest first, with the total count."""
    async with deps.db.read() as session:
        wallet = await ledger.find_wallet(session, actor.id)
        if wallet is None:
            return 0, []
        count = await session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.account_id == wallet)
        )
        rows = (
            await session.execute(
                select(
                    LedgerEntry.id,
                    LedgerEntry.transfer_id,
                    LedgerEntry.amount,
                    LedgerEntry.balance_after,
                    LedgerEntry.created_at,
                    LedgerTransfer.kind,
                    LedgerTransfer.order_id,
                    LedgerTransfer.payment_id,
                )
                .join(LedgerTransfer, LedgerTransfer.id == LedgerEntry.transfer_id)
                .where(LedgerEntry.account_id == wallet)
                .order_by(LedgerEntry.id.desc())
                .offset(offset)
                .limit(limit)
            )
        ).all()
    return int(count or 0), [
        StatementLine(
            id=row.id,
            transfer_id=row.transfer_id,
            amount=row.amount,
            kind=row.kind,
            description=describe_entry(row.kind, row.order_id),
            balance_after=row.balance_after,
            order_id=row.order_id,
            payment_id=row.payment_id,
            created_at=row.created_at,
        )
        for row in rows
    ]


# -- the audit behind `skillswap ledger check` --------------------------------------------------


@dataclass(frozen=True)
class AuditReport:
    violations: list[ledger.Violation]
    checked: list[str]  # names of the invariants verified
    counts: dict[str, int]

    @property
    def ok(self) -> bool:
        """True when no invariant is broken."""
        return not self.violations


async def audit_ledger(db: Database) -> AuditReport:
    """Verify every ledger and order invariant over the whole database, in one snapshot."""
    from skillswap.orders.invariants import ORDER_INVARIANTS

    checks = {**ledger.LEDGER_INVARIANTS, **ORDER_INVARIANTS}
    async with db.engine.connect() as conn:
        if db.is_sqlite:
            # pysqlite opens no transaction for SELECTs; an explicit one pins a WAL snapshot.
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("BEGIN")
            try:
                violations = await ledger.run_checks(conn, checks)
                counts = await _counts(conn)
            finally:
                await conn.exec_driver_sql("ROLLBACK")
        else:
            await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                await conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                violations = await ledger.run_checks(conn, checks)
                counts = await _counts(conn)
    return AuditReport(violations=violations, checked=list(checks), counts=counts)


async def _counts(conn: AsyncConnection) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in (
        "ledger_accounts",
        "ledger_transfers",
        "ledger_entries",
        "ledger_holds",
        "orders",
    ):
        counts[table] = int(
            (await conn.execute(text(f"SELECT COUNT(*) FROM {table}"))).scalar_one()
        )
    return counts


# -- demo data -----------------------------------------------------------------------------------


async def seed(deps: Deps, uow: UnitOfWork, user_ids: list[int], skills: int) -> dict[str, int]:
    """Demo users get the bonus they would have had by signing up; the shop gets packages."""
    for user_id in user_ids:
        await grant_signup_bonus(deps, uow, user_id=user_id)
    packages = 0
    if not await uow.session.scalar(select(func.count()).select_from(PointsPackage)):
        now = deps.clock()
        for order, (name_en, name_ar, points, cents) in enumerate(DEMO_PACKAGES):
            uow.session.add(
                PointsPackage(
                    name_en=name_en,
                    name_ar=name_ar,
                    points=points,
                    price_minor=cents,
                    currency="USD",
                    is_active=True,
                    sort_order=order,
                    created_at=now,
                    updated_at=now,
                )
            )
            packages += 1
    wallets = await uow.session.scalar(
        select(func.count()).select_from(LedgerAccount).where(LedgerAccount.user_id.in_(user_ids))
    )
    return {"wallets": int(wallets or 0), "points packages": packages}


DEMO_PACKAGES = (
    ("Starter", "باقة البداية", 100, 499),
    ("Learner", "باقة المتعلّم", 250, 999),
    ("Scholar", "باقة العالِم", 600, 1999),
)
