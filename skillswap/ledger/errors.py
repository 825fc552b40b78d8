"""What the ledger refuses, as plain exceptions (the services turn them into API errors)."""

from __future__ import annotations


class LedgerError(Exception):
    """A ledger operation that cannot be carried out."""


class InvalidAmount(LedgerError):
    """Amounts are positive whole numbers of points."""


class UnknownAccount(LedgerError):
    """The account does not exist (or is not a wallet where a wallet is needed)."""


class InsufficientFunds(LedgerError):
    """The wallet's available balance is `shortfall` points short of what was asked.

    `replayed` is true when this is the stored refusal of an earlier attempt with the same key.
    """

    def __init__(self, shortfall: int, *, account_id: int, replayed: bool = False) -> None:
        self.shortfall = shortfall
        self.account_id = account_id
        self.replayed = replayed
        super().__init__(f"account {account_id} is {shortfall} points short")


class IdempotencyMismatch(LedgerError):
    """The idempotency key was already used for a different operation."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"idempotency key {key!r} was used for a different operation")


class HoldNotPending(LedgerError):
    """The hold was already posted, voided or rejected: it is resolved at most once."""

    def __init__(self, hold_id: int, status: str) -> None:
        self.hold_id = hold_id
        self.status = status
        super().__init__(f"hold {hold_id} is {status}, not pending")
