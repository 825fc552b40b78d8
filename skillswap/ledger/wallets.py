"""Accounts: the system accounts at fixed ids, and one wallet per user, created on first use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from sqlalchemy.ext.asyncio import AsyncSession

from skillswap.ledger.stores import LedgerStore, store_for


class SystemAccount(IntEnum):
    """The system accounts; migrations create them at exactly these ids (0004: 1 to 4).

    They may go negative: points enter circulation by leaving one of them, which keeps the sum
    of all balances at zero. Their low ids also put them first in the fixed lock order. Ids
    from 5 on were wallets in every database before 0013, so accounts added later count down
    from 0, which no sequence ever hands out.
    """

    # Refunded points the buyer had already spent: they stay in circulation, unpaid for, and
    # come from here (0013). Its balance is minus the points lost to refunds.
    PAYMENT_LOSSES = 0
    # Administrators' corrections (0015): a credit to a wallet leaves it, a debit comes back.
    ADJUSTMENTS = -1
    # What was left in the wallets of erased accounts (0019): it leaves circulation here.
    FORFEITED = -2
    SIGNUP_BONUS = 1  # where signup bonuses come from
    PURCHASED_POINTS = 2  # where points bought with money come from
    ESCROW = 3  # clearing account: an order's payment passes through it to the seller and fee
    PLATFORM_FEES = 4  # the platform's cut of completed orders

    @property
    def code(self) -> str:
        """The account's `code` column."""
        return self.name.lower()


@dataclass(frozen=True)
class WalletBalance:
    balance: int
    held: int

    @property
    def available(self) -> int:
        """What the user may spend: the balance minus what open orders hold."""
        return self.balance - self.held


async def find_wallet(session: AsyncSession, user_id: int) -> int | None:
    """The id of the user's wallet, if it exists."""
    return await (await store_for(session)).find_wallet(user_id)


async def ensure_wallet(session: AsyncSession, user_id: int, *, now: datetime) -> int:
    """The id of the user's wallet, creating it (empty) when the user has none yet."""
    return await ensure_wallet_in(await store_for(session), user_id, now=now)


async def ensure_wallet_in(store: LedgerStore, user_id: int, *, now: datetime) -> int:
    """`ensure_wallet` on a store the caller already has."""
    account_id = await store.find_wallet(user_id)
    if account_id is None:
        # A concurrent first use may create it at the same moment: the loser keeps the winner's.
        await store.create_wallet(user_id, now)
        account_id = await store.find_wallet(user_id)
    assert account_id is not None
    return account_id


async def wallet_balance(session: AsyncSession, user_id: int) -> WalletBalance:
    """The user's balance and held points (zero for a user who never had a wallet)."""
    found = await (await store_for(session)).wallet_balance(user_id)
    return WalletBalance(*found) if found else WalletBalance(0, 0)
