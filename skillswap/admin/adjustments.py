"""Ledger adjustments: an administrator corrects a wallet by a signed number of points.

An adjustment is one double-entry transfer between the wallet and the `adjustments` system
account (a credit leaves it, a debit comes back to it), its audit row ("wallet.adjust") and the
user's notification, all in one transaction: refused, nothing of it is written. A debit may
not take more than the wallet's available balance (balance − held): points held for open
orders are the sellers' to be.

The transfer's key derives from the administrator and the request's `Idempotency-Key`, so a
replay, even one racing the first request past the HTTP layer, moves the points once and is
answered with the first adjustment.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from skillswap import ledger
from skillswap.admin import audit
from skillswap.db import UnitOfWork
from skillswap.errors import Conflict, NotFound, ValidationFailed
from skillswap.i18n import lazy, lazy_plural
from skillswap.ledger import SystemAccount, TransferKind, TransferRequest
from skillswap.models import AuditEntry, LedgerEntry, User
from skillswap.models.admin import AuditTarget
from skillswap.models.notifications import NotificationKind
from skillswap.notifications import services as notifications

if TYPE_CHECKING:
    from skillswap.deps import Deps

ACTION = "wallet.adjust"
MAX_POINTS = 1_000_000  # one adjustment, either way: a typo of a few zeros is refused
MAX_REASON = 500


@dataclass(frozen=True)
class Adjustment:
    """A done adjustment: the transfer, the wallet's balance either side of it, who and why."""

    transfer_id: int
    user_id: int
    amount: int  # signed: positive credited the wallet, negative debited it
    reason: str
    balance_before: int
    balance_after: int
    held: int
    actor_id: int
    created_at: datetime
    replayed: bool = False  # the key's first adjustment, answered again

    @property
    def available(self) -> int:
        return self.balance_after - self.held


def transfer_key(actor_id: int, idempotency_key: str | None) -> str:
    """The ledger key of an adjustment: the same for the same administrator and request key."""
    if idempotency_key is None:
        return f"adjustment:{actor_id}:once:{secrets.token_hex(16)}"
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()
    return f"adjustment:{actor_id}:{digest}"


def _check(amount: int, reason: str) -> None:
    errors = {}
    if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
        errors["amount"] = [lazy("Must be a whole number of points other than 0.")]
    elif abs(amount) > MAX_POINTS:
        errors["amount"] = [lazy("At most {max} points either way.", max=MAX_POINTS)]
    if not reason.strip():
        errors["reason"] = [lazy("Say why the points are adjusted.")]
    elif len(reason) > MAX_REASON:
        errors["reason"] = [lazy("At most {max} characters.", max=MAX_REASON)]
    if errors:
        raise ValidationFailed(errors=errors)


def _user_not_found() -> NotFound:
    return NotFound(lazy("This user does not exist."), code="user_not_found")


def _overdrawn(shortfall: int, amount: int) -> Conflict:
    available = -amount - shortfall
    return Conflict(
        lazy(
            "The wallet has {available} points available: {n} cannot be taken from it.",
            available=available,
            n=-amount,
        ),
        code="insufficient_points",
        extra={"points_available": available, "shortfall": shortfall},
    )


async def adjust_wallet(
    deps: Deps,
    *,
    actor: User,
    user_id: int,
    amount: int,
    reason: str,
    idempotency_key: str | None,
) -> Adjustment:
    """Credit (amount > 0) or debit (amount < 0) a user's wallet, audited and notified."""
    audit.require_admin(actor)
    _check(amount, reason)
    now = deps.clock()
    async with deps.db.uow() as uow:
        user = await uow.session.get(User, user_id)
        if user is None:
            raise _user_not_found()
        wallet = await ledger.ensure_wallet(uow.session, user_id, now=now)
        debit, credit = (
            (SystemAccount.ADJUSTMENTS, wallet)
            if amount > 0
            else (wallet, SystemAccount.ADJUSTMENTS)
        )
        request = TransferRequest(
            key=transfer_key(actor.id, idempotency_key),
            kind=TransferKind.ADJUSTMENT,
            debit_account_id=debit,
            credit_account_id=credit,
            amount=abs(amount),
        )
        try:
            done = await ledger.transfer(uow.session, request, now=now)
        except ledger.InsufficientFunds as refused:
            # Leaving without commit rolls the refused transfer back: nothing is written.
            raise _overdrawn(refused.shortfall, amount) from None
        except ledger.IdempotencyMismatch:
            raise Conflict(
                lazy("This Idempotency-Key was used for another adjustment."),
                code="idempotency_key_reused",
            ) from None
        adjustment = await _adjustment(
            uow, actor, user_id, wallet, done.transfer_id, amount, reason, now=now
        )
        if done.replayed:
            return await _first_of(uow, adjustment)
        await audit.record(
            uow.session,
            actor,
            ACTION,
            AuditTarget.WALLET,
            user_id,
            before={"balance": adjustment.balance_before},
            after={
                "balance": adjustment.balance_after,
                "amount": amount,
                "transfer_id": done.transfer_id,
            },
            reason=reason,
            now=now,
        )
        await _tell_the_user(deps, uow, adjustment)
        await uow.commit()
    return adjustment


async def _adjustment(
    uow: UnitOfWork,
    actor: User,
    user_id: int,
    wallet: int,
    transfer_id: int,
    amount: int,
    reason: str,
    *,
    now: datetime,
) -> Adjustment:
    """The adjustment as its wallet entry records it (the balance right after it)."""
    after = await uow.session.scalar(
        select(LedgerEntry.balance_after).where(
            LedgerEntry.transfer_id == transfer_id, LedgerEntry.account_id == wallet
        )
    )
    assert after is not None
    state = await ledger.wallet_balance(uow.session, user_id)
    return Adjustment(
        transfer_id=transfer_id,
        user_id=user_id,
        amount=amount,
        reason=reason,
        balance_before=after - amount,
        balance_after=after,
        held=state.held,
        actor_id=actor.id,
        created_at=now,
    )


async def _first_of(uow: UnitOfWork, replay: Adjustment) -> Adjustment:
    """The first adjustment under a replayed key, as its audit row recorded it."""
    rows = await uow.session.scalars(
        select(AuditEntry).where(
            AuditEntry.action == ACTION,
            AuditEntry.target_type == AuditTarget.WALLET,
            AuditEntry.target_id == replay.user_id,
            AuditEntry.actor_id == replay.actor_id,
        )
    )
    for entry in rows:
        if (entry.after or {}).get("transfer_id") == replay.transfer_id:
            return Adjustment(
                **{
                    **replay.__dict__,
                    "reason": entry.reason,
                    "created_at": entry.created_at,
                    "replayed": True,
                }
            )
    return Adjustment(**{**replay.__dict__, "replayed": True})


async def _tell_the_user(deps: Deps, uow: UnitOfWork, adjustment: Adjustment) -> None:
    n = abs(adjustment.amount)
    text = (
        lazy_plural(
            "An administrator added {n} point to your wallet: {reason}",
            "An administrator added {n} points to your wallet: {reason}",
            n,
            reason=adjustment.reason,
        )
        if adjustment.amount > 0
        else lazy_plural(
            "An administrator took {n} point from your wallet: {reason}",
            "An administrator took {n} points from your wallet: {reason}",
            n,
            reason=adjustment.reason,
        )
    )
    await notifications.notify(
        deps,
        uow,
        user_id=adjustment.user_id,
        kind=NotificationKind.POINTS_ADJUSTED,
        text=text,
        payload={
            "amount": adjustment.amount,
            "reason": adjustment.reason,
            "transfer_id": adjustment.transfer_id,
            "balance": adjustment.balance_after,
        },
    )


async def list_adjustments(
    deps: Deps, *, actor: User, user_id: int | None, offset: int, limit: int
) -> tuple[int, list[AuditEntry]]:
    """Every adjustment, newest first (their audit rows: who, whose wallet, how much, why)."""
    audit.require_admin(actor)
    conditions = [AuditEntry.action == ACTION, AuditEntry.target_type == AuditTarget.WALLET]
    if user_id is not None:
        conditions.append(AuditEntry.target_id == user_id)
    async with deps.db.read() as session:
        count = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(*conditions)
        )
        rows = await session.scalars(
            select(AuditEntry)
            .where(*conditions)
            .order_by(AuditEntry.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return int(count or 0), list(rows)
