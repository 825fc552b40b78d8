"""Holds (two-phase transfers) for escrow: reserve now, then post or void, exactly once.

A pending hold raises the wallet's `held`, so its available balance drops at once while the
points stay on the wallet. The hold leaves `pending` only through a conditional
`UPDATE ... WHERE status = 'pending'`: of two concurrent resolutions exactly one changes a row,
and the other is told the hold is no longer pending.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from skillswap import metrics
from skillswap.ledger.errors import (
    HoldNotPending,
    IdempotencyMismatch,
    InsufficientFunds,
    InvalidAmount,
    LedgerError,
    UnknownAccount,
)
from skillswap.ledger.stores import LedgerStore, NewTransfer, Outcome, store_for
from skillswap.ledger.transfers import Leg, TransferKind, apply_legs, check_amount, check_key
from skillswap.ledger.wallets import SystemAccount
from skillswap.models.ledger import AccountKind, HoldStatus


@dataclass(frozen=True)
class HoldResult:
    hold_id: int
    status: str
    replayed: bool  # the key had been used: this is the first hold placed with it


@dataclass(frozen=True)
class Payout:
    """Where part of a posted hold goes (from escrow)."""

    account_id: int
    amount: int
    kind: TransferKind


async def place_hold(
    session: AsyncSession, *, key: str, account_id: int, amount: int, now: datetime
) -> HoldResult:
    """Reserve `amount` on a wallet; the same key returns the first hold (or its refusal).

    Refused for lack of points, the hold is recorded as rejected and `InsufficientFunds` is
    raised: commit anyway to make the refusal the key's permanent outcome.
    """
    return await place_hold_in(
        await store_for(session), key=key, account_id=account_id, amount=amount, now=now
    )


async def place_hold_in(
    store: LedgerStore, *, key: str, account_id: int, amount: int, now: datetime
) -> HoldResult:
    """`place_hold` on a store the caller already has."""
    check_hold(key, amount)
    outcome = await store.hold_at_once(key, account_id, amount, now) or await _hold_in_steps(
        store, key, account_id, amount, now
    )
    return await hold_result(store, outcome, key=key, account_id=account_id, amount=amount)


def check_hold(key: str, amount: int) -> None:
    """What placing a hold refuses (before writing anything; a caller whose own statement
    placed one checks the same before committing it)."""
    check_amount(amount)
    check_key(key)


async def hold_result(
    store: LedgerStore, outcome: Outcome, *, key: str, account_id: int, amount: int
) -> HoldResult:
    """What a hold's placement came to, raising as `place_hold` does.

    Also for a caller whose own statement placed the hold among other writes (with
    `statements.hold_ctes`, after `check_hold`): the outcome means the same there.
    """
    if outcome.found == 0:
        raise UnknownAccount(f"no wallet {account_id}")
    if outcome.id is None:
        first = await store.first_hold(key)
        if first.account_id != account_id or first.amount != amount:
            raise IdempotencyMismatch(key)
        if first.status == HoldStatus.REJECTED:
            raise InsufficientFunds(first.shortfall or 0, account_id=account_id, replayed=True)
        return HoldResult(hold_id=first.id, status=first.status, replayed=True)
    if outcome.shortfall:
        raise InsufficientFunds(outcome.shortfall, account_id=account_id)
    return HoldResult(hold_id=outcome.id, status=HoldStatus.PENDING, replayed=False)


async def _hold_in_steps(
    store: LedgerStore, key: str, account_id: int, amount: int, now: datetime
) -> Outcome:
    """Claim the key, then reserve: what `hold_at_once` does in one statement."""
    claimed = await store.claim_hold(key, account_id, amount, now)
    if claimed is None:
        return Outcome(found=1, id=None, shortfall=None)
    # One conditional update both checks and reserves (see statements.RESERVE).
    if await store.reserve(account_id, amount):
        return Outcome(found=1, id=claimed, shortfall=None)
    state = await store.account_state(account_id)
    if state is None or state[0] != AccountKind.USER:
        return Outcome(found=0, id=None, shortfall=None)
    _kind, balance, held = state
    shortfall = amount - (balance - held)
    await store.reject_hold(claimed, shortfall, now)
    return Outcome(found=1, id=claimed, shortfall=shortfall)


async def void_hold(session: AsyncSession, *, hold_id: int, now: datetime) -> int:
    """Release a pending hold back to the wallet's available balance; returns its amount."""
    store = await store_for(session)
    voided = await store.void_hold(hold_id, now)
    if voided is None:
        raise HoldNotPending(hold_id, await _status(store, hold_id))
    account_id, amount = voided
    await store.release(account_id, amount)
    return int(amount)


async def post_hold(
    session: AsyncSession,
    *,
    hold_id: int,
    payouts: Sequence[Payout],
    order_id: int | None,
    now: datetime,
) -> int:
    """Settle a pending hold: pay the payouts' total from the wallet through escrow.

    The total may be less than the hold (a split): the rest simply stops being held. Returns
    the total paid.
    """
    if not payouts:
        raise InvalidAmount("posting a hold pays at least one account")
    for payout in payouts:
        check_amount(payout.amount)
    total = sum(payout.amount for payout in payouts)
    store = await store_for(session)
    posted = await store.post_hold(hold_id, total, now)
    if posted is None:
        status = await _status(store, hold_id)
        if status != HoldStatus.PENDING:
            raise HoldNotPending(hold_id, status)
        raise InvalidAmount(f"hold {hold_id} holds less than {total}")
    wallet, held_amount = posted
    planned = _capture_and_payouts(hold_id, wallet, total, payouts, order_id=order_id, now=now)
    ids = await store.record_transfers(planned)
    legs = [
        Leg(transfer_id, row.debit_account_id, row.credit_account_id, row.amount)
        for transfer_id, row in zip(ids, planned, strict=True)
    ]
    shortfall = await apply_legs(store, legs, now=now, release_held={wallet: held_amount})
    if shortfall:
        # Cannot happen while `held` reserves the hold; refusing keeps a broken ledger unchanged.
        raise LedgerError(f"posting hold {hold_id} would overdraw its wallet by {shortfall}")
    for row in planned:
        metrics.on_commit(session, metrics.count_transfer(row.kind, row.amount))
    return total


def _capture_and_payouts(
    hold_id: int,
    wallet: int,
    total: int,
    payouts: Sequence[Payout],
    *,
    order_id: int | None,
    now: datetime,
) -> list[NewTransfer]:
    """The transfers that settle a hold, each under a key derived from the hold."""
    escrow = int(SystemAccount.ESCROW)
    # The buyer pays escrow, escrow pays each payout: the escrow account nets to zero.
    return [
        NewTransfer(
            f"hold:{hold_id}:capture",
            str(TransferKind.ORDER_PAYMENT),
            wallet,
            escrow,
            total,
            order_id,
            None,
            hold_id,
            now,
        ),
        *(
            NewTransfer(
                f"hold:{hold_id}:payout:{index}",
                str(payout.kind),
                escrow,
                payout.account_id,
                payout.amount,
                order_id,
                None,
                hold_id,
                now,
            )
            for index, payout in enumerate(payouts)
        ),
    ]


async def _status(store: LedgerStore, hold_id: int) -> str:
    status = await store.hold_status(hold_id)
    if status is None:
        raise LedgerError(f"no hold {hold_id}")
    return status
