"""Domain events: what one capability announces inside a transaction and others react to.

A subscriber runs inside the emitting unit of work, so what it writes (a ledger entry, a
notification row, a chat room) commits or rolls back with the change that caused it. Work that
must wait for the commit (publishing live, enqueuing tasks) is registered with
`uow.after_commit` by the subscriber itself.

Who reacts to what is one explicit table (`skillswap.bootstrap.EVENT_HANDLERS`), handed to
`Deps.events`; nothing subscribes by being imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from skillswap.db import UnitOfWork
    from skillswap.deps import Deps


async def emit(deps: Deps, uow: UnitOfWork, event: object) -> None:
    """Run every subscriber of `type(event)` (from `deps.events`) inside the caller's
    transaction, in order."""
    for subscriber in deps.events.get(type(event), ()):
        await subscriber(deps, uow, event)


@dataclass(frozen=True)
class UserRegistered:
    user_id: int


@dataclass(frozen=True)
class EmailVerified:
    """An account's email address was proven theirs (the emailed code, or Google vouching)."""

    user_id: int


@dataclass(frozen=True)
class OrderPlaced:
    """An order was created with its points held in escrow."""

    order_id: int
    buyer_id: int
    seller_id: int
    skill_id: int


@dataclass(frozen=True)
class OrderTransitioned:
    """An order moved from one status to another (by a person, an admin, or a deadline)."""

    order_id: int
    buyer_id: int
    seller_id: int
    actor_id: int | None  # None when a deadline moved it
    action: (
        str  # accept, reject, deliver, complete, cancel, request_changes, dispute, resolve, expire
    )
    from_status: str
    to_status: str
    note: str = ""
