"""Transfers: moving a positive whole amount from one account to another, exactly once per key.

Every transfer is recorded under a unique idempotency key (`INSERT ... ON CONFLICT DO
NOTHING`): a concurrent attempt with the same key waits for the first to finish and then
replays its outcome, success or refusal. The accounts are locked in id order (`SELECT ... ORDER
BY id FOR NO KEY UPDATE`), so two transfers over the same accounts, in whatever direction,
queue instead of deadlocking, and no interleaving can overdraw a wallet.

On PostgreSQL a one-leg transfer is a single statement (`statements.TRANSFER_PG`: lock, decide,
record, move, write the entries), one round trip. Elsewhere, and for the legs of a hold, the
same steps run one statement at a time (`_transfer_in_steps`, `apply_legs`); on SQLite the
process-wide writer lock of `Database.uow()` gives them the same serial order. The backend
decides which: `stores.store_for`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from skillswap import metrics
from skillswap.db import Database
from skillswap.ledger.errors import (
    IdempotencyMismatch,
    InsufficientFunds,
    InvalidAmount,
    LedgerError,
    UnknownAccount,
)
from skillswap.ledger.stores import (
    AccountRow,
    AsyncpgStore,
    LedgerStore,
    NewEntry,
    NewTransfer,
    Outcome,
    store_for,
)
from skillswap.models.ledger import AccountKind, TransferStatus


class TransferKind(StrEnum):
    SIGNUP_BONUS = "signup_bonus"  # signup bonus account -> new user's wallet
    PURCHASE = "purchase"  # purchased points account -> buyer of a points package
    ORDER_PAYMENT = "order_payment"  # buyer's wallet -> escrow, when an order's hold is posted
    ORDER_EARNINGS = "order_earnings"  # escrow -> seller
    PLATFORM_FEE = "platform_fee"  # escrow -> platform fees
    PURCHASE_REFUND = "purchase_refund"  # buyer's wallet -> purchased points, on a refund
    PAYMENT_LOSS = "payment_loss"  # payment losses -> purchased points: refunded points spent
    ADJUSTMENT = "adjustment"  # a correction between any two accounts
    FORFEIT = "forfeit"  # an erased account's wallet -> forfeited


MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class TransferRequest:
    key: str
    kind: TransferKind
    debit_account_id: int
    credit_account_id: int
    amount: int
    order_id: int | None = None
    payment_id: int | None = None


@dataclass(frozen=True)
class TransferResult:
    transfer_id: int
    replayed: bool  # true when the key had already been used: this is the first outcome


@dataclass(frozen=True)
class Leg:
    """One already-recorded transfer to apply to the balances."""

    transfer_id: int
    debit_account_id: int
    credit_account_id: int
    amount: int


def check_amount(amount: int) -> None:
    """Refuse anything but a positive whole number of points."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InvalidAmount(f"amount must be a positive whole number, not {amount!r}")


def check_key(key: str) -> None:
    """Refuse an empty or overlong idempotency key."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise LedgerError(f"idempotency keys are 1 to {MAX_KEY_LENGTH} characters")


async def transfer(
    session: AsyncSession, request: TransferRequest, *, now: datetime
) -> TransferResult:
    """Move points inside the caller's transaction; the same key returns the first outcome.

    Refused for lack of points, the transfer is recorded as rejected and `InsufficientFunds`
    is raised: commit anyway to make the refusal the key's permanent outcome.
    """
    result = await transfer_in(await store_for(session), request, now=now)
    if not result.replayed:
        metrics.on_commit(session, metrics.count_transfer(request.kind, request.amount))
    return result


async def transfer_in(
    store: LedgerStore, request: TransferRequest, *, now: datetime
) -> TransferResult:
    """`transfer` on a store the caller already has."""
    check_amount(request.amount)
    check_key(request.key)
    if request.debit_account_id == request.credit_account_id:
        raise LedgerError("a transfer needs two different accounts")
    new = NewTransfer(
        idempotency_key=request.key,
        kind=str(request.kind),
        debit_account_id=request.debit_account_id,
        credit_account_id=request.credit_account_id,
        amount=request.amount,
        order_id=request.order_id,
        payment_id=request.payment_id,
        hold_id=None,
        created_at=now,
    )
    outcome = await store.transfer_at_once(new) or await _transfer_in_steps(store, new, now=now)
    if outcome.found < 2:
        raise UnknownAccount(
            f"no ledger account among {request.debit_account_id}, {request.credit_account_id}"
        )
    if outcome.id is None:
        return await _replay(store, request)
    if outcome.shortfall:
        raise InsufficientFunds(outcome.shortfall, account_id=request.debit_account_id)
    return TransferResult(transfer_id=outcome.id, replayed=False)


async def _transfer_in_steps(store: LedgerStore, new: NewTransfer, *, now: datetime) -> Outcome:
    """Lock, claim the key, check and move: what `transfer_at_once` does in one go."""
    locked = await store.lock_accounts(sorted((new.debit_account_id, new.credit_account_id)))
    if len(locked) < 2:
        return Outcome(found=len(locked), id=None, shortfall=None)
    claimed = await store.claim_transfer(new)
    if claimed is None:
        return Outcome(found=2, id=None, shortfall=None)
    leg = Leg(claimed, new.debit_account_id, new.credit_account_id, new.amount)
    shortfall = await apply_legs(store, [leg], now=now, locked=locked)
    if shortfall:
        await store.reject_transfer(claimed, shortfall)
    return Outcome(found=2, id=claimed, shortfall=shortfall or None)


async def _replay(store: LedgerStore, request: TransferRequest) -> TransferResult:
    first = await store.first_transfer(request.key)
    same = (
        first.kind == str(request.kind)
        and first.debit_account_id == request.debit_account_id
        and first.credit_account_id == request.credit_account_id
        and first.amount == request.amount
        and first.order_id == request.order_id
        and first.payment_id == request.payment_id
    )
    if not same:
        raise IdempotencyMismatch(request.key)
    if first.status == TransferStatus.REJECTED:
        raise InsufficientFunds(
            first.shortfall or 0, account_id=first.debit_account_id, replayed=True
        )
    return TransferResult(transfer_id=first.id, replayed=True)


async def apply_legs(
    store: LedgerStore,
    legs: Sequence[Leg],
    *,
    now: datetime,
    release_held: Mapping[int, int] | None = None,
    locked: Sequence[AccountRow] | None = None,
) -> int:
    """Apply recorded transfers (and release held points) to the balances, writing entries.

    Returns 0 when done, or by how many points a user wallet would be overdrawn, in which case
    nothing was changed. The accounts are locked in ascending id order before anything is read,
    unless the caller passes them as `locked`, already locked in this transaction.
    """
    release = dict(release_held or {})
    ids = sorted(
        {leg.debit_account_id for leg in legs}
        | {leg.credit_account_id for leg in legs}
        | set(release)
    )
    rows = list(locked) if locked is not None else await store.lock_accounts(ids)
    if len(rows) != len(ids):
        missing = set(ids) - {row.id for row in rows}
        raise UnknownAccount(f"no ledger account {sorted(missing)}")
    balance = {row.id: row.balance for row in rows}
    held = {row.id: row.held for row in rows}
    for account_id, amount in release.items():
        held[account_id] -= amount
        if held[account_id] < 0:
            raise LedgerError(f"account {account_id} would release more than it holds")
    entries: list[NewEntry] = []
    for leg in legs:
        for account_id, signed in (
            (leg.debit_account_id, -leg.amount),
            (leg.credit_account_id, leg.amount),
        ):
            balance[account_id] += signed
            entries.append(NewEntry(leg.transfer_id, account_id, signed, balance[account_id], now))
    for row in rows:
        available = balance[row.id] - held[row.id]
        if row.kind == AccountKind.USER and available < 0:
            return -available
    # Relative updates keep `balance = sum(entries)` exact even if a lock were ever missed.
    await store.move(
        [(row.id, balance[row.id] - row.balance, held[row.id] - row.held) for row in rows]
    )
    if entries:
        await store.write_entries(entries)
    return 0


async def run_transfer(db: Database, request: TransferRequest, *, now: datetime) -> TransferResult:
    """One transfer as its own transaction; a refusal is committed too, so retries replay it."""
    if not db.on_driver:
        async with db.uow() as uow:  # the writer lock serialises SQLite's writers
            store: LedgerStore = await store_for(uow.session)
            try:
                result = await transfer_in(store, request, now=now)
            except InsufficientFunds as refused:
                if not refused.replayed:
                    await uow.commit()
                raise
            await uow.commit()
    else:
        # On a connection in autocommit, with no unit of work around it: on PostgreSQL the
        # transfer is one statement, atomic on its own, and a refusal it records is committed
        # with it.
        async with db.autocommit() as driver:
            result = await transfer_in(AsyncpgStore(driver), request, now=now)
    if not result.replayed:
        metrics.count_transfer(request.kind, request.amount)()
    return result
