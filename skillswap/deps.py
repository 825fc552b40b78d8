"""What a request, task or command is given: the long-lived resources of one process.

`Deps` is built by `skillswap.bootstrap` (the one composition root, imported only by entry
points) inside the running loop, and closed by it in reverse order. Domain modules import it
only for types; this module imports no domain code, only the platform pieces its fields are.
The narrow interfaces below are what domain code is given: it publishes through a `Publisher`,
hands chat messages to a `MessageSink`, asks `OpenOrders` before deleting a skill, and emits
events to the subscribers listed in `events`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from skillswap.auth.current_user import SignedInUsers
from skillswap.auth.passwords import PasswordHasher
from skillswap.auth.ratelimits import Limits, no_limits
from skillswap.auth.throttles import RateLimiter
from skillswap.auth.tokens import KeyRing, TokenDenylist
from skillswap.db import Database, UnitOfWork
from skillswap.i18n import Catalogs
from skillswap.mail import Mailer
from skillswap.models.base import utcnow
from skillswap.settings import Settings
from skillswap.storage import Storage

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from skillswap.accounts.oidc import OpenIDProvider
    from skillswap.chat.writer import SentMessage
    from skillswap.models import User
    from skillswap.notifications.push import FcmClient
    from skillswap.realtime import Realtime
    from skillswap.skills.cache import ListingCache

Clock = Callable[[], datetime]


system_clock: Clock = utcnow
"""The real time, in UTC: `deps.clock` unless a test moves it."""


class Publisher(Protocol):
    """Live delivery of what has committed, to every node's connections."""

    def publish_message(self, record: dict[str, Any]) -> None: ...

    def publish_room_event(self, room_id: int, event: dict[str, Any]) -> None: ...

    def publish_notification(self, user_id: int, record: dict[str, Any]) -> None: ...

    def end_user_connections(self, user_id: int) -> None:
        """Close the user's open connections on every node (their sessions were ended)."""
        ...


class Presence(Protocol):
    """Which users have a connection open on some node."""

    async def online(self, user_ids: Iterable[int]) -> set[int]: ...


class MessageSink(Protocol):
    """Where validated chat messages go to be written (the group-commit writer)."""

    def submit(
        self, *, actor: User, room_id: int, body: str, client_id: str | None
    ) -> asyncio.Future[SentMessage]: ...


class OpenOrders(Protocol):
    """Asked, inside the delete's transaction with the skill row locked, before a skill goes."""

    async def skill_has_open_orders(self, session: AsyncSession, skill_id: int) -> bool: ...


Subscriber = Callable[["Deps", UnitOfWork, Any], Awaitable[None]]
EventHandlers = Mapping[type, Sequence[Subscriber]]


@dataclass(frozen=True)
class Deps:
    settings: Settings
    db: Database
    redis: Any | None  # redis.asyncio.Redis when REDIS_URL is set
    denylist: TokenDenylist
    hasher: PasswordHasher
    keys: KeyRing
    mailer: Mailer
    catalogs: Catalogs
    http: httpx.AsyncClient
    limiter: RateLimiter
    signed_in: SignedInUsers
    clock: Clock
    storage: Storage
    listing_cache: ListingCache
    # Google's (and any other provider's) discovery document and keys, by discovery URL.
    oidc_providers: dict[str, OpenIDProvider]
    # This node's hub, bridge and presence (the WebSocket endpoint attaches to its hub).
    realtime: Realtime
    publisher: Publisher
    messages: MessageSink
    events: EventHandlers
    open_orders: OpenOrders
    # FCM, when FCM_CREDENTIALS_FILE is set (None: no push is sent).
    push: FcmClient | None = None
    # RATE_LIMITS: the named policies, in Redis when configured (skillswap.auth.ratelimits).
    rate_limits: Limits = field(default_factory=no_limits)
    # What bootstrap opened, closed in reverse order by `close`.
    resources: AsyncExitStack = field(default_factory=AsyncExitStack, repr=False)

    @property
    def pushes(self) -> bool:
        """Whether push notifications are configured (FCM_CREDENTIALS_FILE)."""
        return self.push is not None

    async def close(self) -> None:
        await self.resources.aclose()
