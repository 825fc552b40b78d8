"""Domain events: what one capability announces inside a transaction and others react to.

A subscriber runs inside the emitting unit of work, so what it writes (a ledger entry, a
notification row, a chat room) commits or rolls back with the change that caused it. Work that
must wait for the commit (publishing live, enqueuing tasks) is registered with
`uow.after_commit` by the subscriber itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from skillswap.db import UnitOfWork
    from skillswap.deps import Deps

E = TypeVar("E")
Subscriber = Callable[["Deps", "UnitOfWork", Any], Awaitable[None]]

_subscribers: dict[type, list[Subscriber]] = defaultdict(list)

# Modules whose import registers subscribers; each capability adds its own line.
SUBSCRIBER_MODULES: list[str] = [
    "skillswap.points.services",  # signup bonus on UserRegistered
    "skillswap.orders.reactions",  # a chat room per order; notifications of every transition
    "skillswap.orders.services",  # registers its open-order check with skill deletion
]


def subscribe(event_type: type[E]) -> Callable[[Subscriber], Subscriber]:
    """Register the decorated coroutine `(deps, uow, event)` for `event_type`."""

    def register(fn: Subscriber) -> Subscriber:
        if fn not in _subscribers[event_type]:
            _subscribers[event_type].append(fn)
        return fn

    return register


async def emit(deps: Deps, uow: UnitOfWork, event: object) -> None:
    """Run every subscriber of `type(event)` inside the caller's transaction, in order."""
    for subscriber in _subscribers.get(type(event), ()):
        await subscriber(deps, uow, event)


def install_subscribers() -> None:
    """Import every subscriber module (called once by `build_deps`)."""
    for module in SUBSCRIBER_MODULES:
        __import__(module)


@dataclass(frozen=True)
class UserRegistered:
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
