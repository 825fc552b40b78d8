"""What the ledger's stores read and write, and the interface both stores implement."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple, Protocol


class AccountRow(NamedTuple):
    id: int
    kind: str
    balance: int
    held: int


class TransferRow(NamedTuple):
    id: int
    kind: str
    status: str
    debit_account_id: int
    credit_account_id: int
    amount: int
    order_id: int | None
    payment_id: int | None
    shortfall: int | None


class HoldRow(NamedTuple):
    id: int
    account_id: int
    amount: int
    status: str
    shortfall: int | None


class NewTransfer(NamedTuple):
    idempotency_key: str
    kind: str
    debit_account_id: int
    credit_account_id: int
    amount: int
    order_id: int | None
    payment_id: int | None
    hold_id: int | None
    created_at: datetime


class NewEntry(NamedTuple):
    transfer_id: int
    account_id: int
    amount: int
    balance_after: int
    created_at: datetime


class Outcome(NamedTuple):
    """What recording a transfer or hold under its key came to."""

    found: int  # how many of the accounts it names exist (and, for a hold, are user wallets)
    id: int | None  # the new transfer or hold; None when the key had already been used
    shortfall: int | None  # set when it was refused (and recorded as such) for lack of points


class LedgerStore(Protocol):
    """The ledger's statements; every method runs inside the caller's transaction."""

    async def find_wallet(self, user_id: int) -> int | None:
        """The user's wallet id, if any."""

    async def create_wallet(self, user_id: int, now: datetime) -> None:
        """Create the user's empty wallet unless one exists (a concurrent one wins)."""

    async def wallet_balance(self, user_id: int) -> tuple[int, int] | None:
        """(balance, held) of the user's wallet, if any."""

    async def account_state(self, account_id: int) -> tuple[str, int, int] | None:
        """(kind, balance, held) of an account, unlocked."""

    async def lock_accounts(self, ids: Sequence[int]) -> list[AccountRow]:
        """Lock the accounts in ascending id order and return them."""

    async def move(self, changes: Sequence[tuple[int, int, int]]) -> None:
        """Add (account, balance delta, held delta) to locked accounts."""

    async def reserve(self, account_id: int, amount: int) -> bool:
        """Hold `amount` on a wallet if it is available; False (nothing changed) if not."""

    async def release(self, account_id: int, amount: int) -> None:
        """Stop holding `amount` on a wallet."""

    async def transfer_at_once(self, new: NewTransfer) -> Outcome | None:
        """A whole one-leg transfer in one statement; None when this store runs it in steps."""

    async def hold_at_once(
        self, key: str, account_id: int, amount: int, now: datetime
    ) -> Outcome | None:
        """A whole hold placement in one statement; None when this store runs it in steps."""

    async def claim_transfer(self, new: NewTransfer) -> int | None:
        """Record a posted transfer under its key; None if the key was already used."""

    async def record_transfers(self, rows: Sequence[NewTransfer]) -> list[int]:
        """Record posted transfers (fresh keys); their ids, in order."""

    async def first_transfer(self, key: str) -> TransferRow:
        """The transfer recorded under `key`."""

    async def reject_transfer(self, transfer_id: int, shortfall: int) -> None:
        """Mark a just-claimed transfer as refused for lack of `shortfall` points."""

    async def write_entries(self, entries: Sequence[NewEntry]) -> None:
        """Write the entries of posted transfers."""

    async def claim_hold(self, key: str, account_id: int, amount: int, now: datetime) -> int | None:
        """Record a pending hold under its key; None if the key was already used."""

    async def first_hold(self, key: str) -> HoldRow:
        """The hold recorded under `key`."""

    async def hold_status(self, hold_id: int) -> str | None:
        """A hold's status, if it exists."""

    async def reject_hold(self, hold_id: int, shortfall: int, now: datetime) -> None:
        """Mark a just-claimed hold as refused for lack of `shortfall` points."""

    async def void_hold(self, hold_id: int, now: datetime) -> tuple[int, int] | None:
        """Void a pending hold: (account, amount), or None if it was not pending."""

    async def post_hold(self, hold_id: int, total: int, now: datetime) -> tuple[int, int] | None:
        """Post `total` of a pending hold: (account, held amount), or None if not possible."""
