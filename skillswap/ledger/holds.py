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

from sqlalchemy import BigInteger, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from skillswap.ledger.accounts import SystemAccount, insert_for
from skillswap.ledger.errors import (
    HoldNotPending,
    IdempotencyMismatch,
    InsufficientFunds,
    InvalidAmount,
    LedgerError,
    UnknownAccount,
)
from skillswap.ledger.transfers import Leg, TransferKind, apply_legs, check_amount, check_key
from skillswap.models import LedgerAccount, LedgerHold, LedgerTransfer


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
    check_amount(amount)
    check_key(key)
    claimed = await session.scalar(
        insert_for(session, LedgerHold)
        .values(
            idempotency_key=key,
            account_id=account_id,
            amount=amount,
            status="pending",
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(LedgerHold.id)
    )
    if claimed is None:
        first = (
            await session.execute(select(LedgerHold).where(LedgerHold.idempotency_key == key))
        ).scalar_one()
        if first.account_id != account_id or first.amount != amount:
            raise IdempotencyMismatch(key)
        if first.status == "rejected":
            raise InsufficientFunds(first.shortfall or 0, account_id=account_id, replayed=True)
        return HoldResult(hold_id=first.id, status=first.status, replayed=True)
    # One conditional update both checks and reserves: PostgreSQL re-evaluates the condition
    # on the latest row version after waiting for a concurrent writer, so it cannot overdraw.
    reserved = await session.execute(
        update(LedgerAccount)
        .where(
            LedgerAccount.id == account_id,
            LedgerAccount.kind == "user",
            LedgerAccount.balance - LedgerAccount.held >= literal(amount, BigInteger()),
        )
        .values(held=LedgerAccount.held + literal(amount, BigInteger()))
    )
    if reserved.rowcount != 1:  # type: ignore[attr-defined]
        wallet = (
            await session.execute(
                select(LedgerAccount.kind, LedgerAccount.balance, LedgerAccount.held).where(
                    LedgerAccount.id == account_id
                )
            )
        ).first()
        if wallet is None or wallet.kind != "user":
            raise UnknownAccount(f"no wallet {account_id}")
        shortfall = amount - (wallet.balance - wallet.held)
        await session.execute(
            update(LedgerHold)
            .where(LedgerHold.id == claimed)
            .values(status="rejected", shortfall=shortfall, resolved_at=now)
        )
        raise InsufficientFunds(shortfall, account_id=account_id)
    return HoldResult(hold_id=claimed, status="pending", replayed=False)


async def void_hold(session: AsyncSession, *, hold_id: int, now: datetime) -> int:
    """Release a pending hold back to the wallet's available balance; returns its amount."""
    row = (
        await session.execute(
            update(LedgerHold)
            .where(LedgerHold.id == hold_id, LedgerHold.status == "pending")
            .values(status="voided", resolved_at=now)
            .returning(LedgerHold.account_id, LedgerHold.amount)
        )
    ).first()
    if row is None:
        raise HoldNotPending(hold_id, await _status(session, hold_id))
    await session.execute(
        update(LedgerAccount)
        .where(LedgerAccount.id == row.account_id)
        .values(held=LedgerAccount.held - literal(row.amount, BigInteger()))
    )
    return int(row.amount)


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
    row = (
        await session.execute(
            update(LedgerHold)
            .where(
                LedgerHold.id == hold_id,
                LedgerHold.status == "pending",
                LedgerHold.amount >= literal(total, BigInteger()),
            )
            .values(status="posted", posted_amount=total, resolved_at=now)
            .returning(LedgerHold.account_id, LedgerHold.amount)
        )
    ).first()
    if row is None:
        status = await _status(session, hold_id)
        if status != "pending":
            raise HoldNotPending(hold_id, status)
        raise InvalidAmount(f"hold {hold_id} holds less than {total}")
    wallet, escrow = int(row.account_id), int(SystemAccount.ESCROW)
    # The buyer pays escrow, escrow pays each payout: the escrow account nets to zero.
    planned = [
        (f"hold:{hold_id}:capture", TransferKind.ORDER_PAYMENT, wallet, escrow, total),
        *(
            (
                f"hold:{hold_id}:payout:{index}",
                payout.kind,
                escrow,
                payout.account_id,
                payout.amount,
            )
            for index, payout in enumerate(payouts)
        ),
    ]
    ids = (
        await session.scalars(
            insert(LedgerTransfer).returning(LedgerTransfer.id, sort_by_parameter_order=True),
            [
                {
                    "idempotency_key": key,
                    "kind": str(kind),
                    "status": "posted",
                    "debit_account_id": debit,
                    "credit_account_id": credit,
                    "amount": amount,
                    "order_id": order_id,
                    "hold_id": hold_id,
                    "created_at": now,
                }
                for key, kind, debit, credit, amount in planned
            ],
        )
    ).all()
    legs = [
        Leg(transfer_id, debit, credit, amount)
        for transfer_id, (_key, _kind, debit, credit, amount) in zip(ids, planned, strict=True)
    ]
    shortfall = await apply_legs(session, legs, now=now, release_held={wallet: int(row.amount)})
    if shortfall:
        # Cannot happen while `held` reserves the hold; refusing keeps a broken ledger unchanged.
        raise LedgerError(f"posting hold {hold_id} would overdraw its wallet by {shortfall}")
    return total


async def _status(session: AsyncSession, hold_id: int) -> str:
    status = await session.scalar(select(LedgerHold.status).where(LedgerHold.id == hold_id))
    if status is None:
        raise LedgerError(f"no hold {hold_id}")
    return str(status)
