"""Accounts: the system accounts at fixed ids, and one wallet per user, created on first use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from skillswap.models import LedgerAccount


class SystemAccount(IntEnum):
    """The system accounts; migration 0004 creates them at exactly these ids.

    They may go negative: points enter circulation by leaving one of them, which keeps the sum
    of all balances at zero. Their low ids also put them first in the fixed lock order.
    """

    SIGNUP_BONUS = 1  # where signup bonuses come from
    PURCHASED_POINTS = 2  # where points bought with money come from
    ESCROW = 3  # clearing account: an order's payment passes through it to the seller and fee
    PLATFORM_FEES = 4  # the platform's cut of completed orders

    @property
    def code(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class WalletBalance:
    balance: int
    held: int

    @property
    def available(self) -> int:
        return self.balance - self.held


def insert_for(session: AsyncSession, table: Any) -> Any:
    """An INSERT that knows `ON CONFLICT DO NOTHING` on the session's backend."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


async def find_wallet(session: AsyncSession, user_id: int) -> int | None:
    """The id of the user's wallet, if it exists."""
    return await session.scalar(select(LedgerAccount.id).where(LedgerAccount.user_id == user_id))


async def ensure_wallet(session: AsyncSession, user_id: int, *, now: datetime) -> int:
    """The id of the user's wallet, creating it (empty) when the user has none yet."""
    account_id = await find_wallet(session, user_id)
    if account_id is not None:
        return account_id
    # A concurrent first use may create it at the same moment: the loser waits and keeps theirs.
    await session.execute(
        insert_for(session, LedgerAccount)
        .values(kind="user", user_id=user_id, balance=0, held=0, created_at=now)
        .on_conflict_do_nothing(index_elements=["user_id"])
    )
    account_id = await find_wallet(session, user_id)
    assert account_id is not None
    return account_id


async def wallet_balance(session: AsyncSession, user_id: int) -> WalletBalance:
    """The user's balance and held points (zero for a user who never had a wallet)."""
    row = (
        await session.execute(
            select(LedgerAccount.balance, LedgerAccount.held).where(
                LedgerAccount.user_id == user_id
            )
        )
    ).first()
    return WalletBalance(balance=row.balance, held=row.held) if row else WalletBalance(0, 0)
