"""Everything a request, task or command needs, built inside the running loop and closed after."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from skillswap.auth.current_user import SignedInUsers
from skillswap.auth.passwords import PasswordHasher
from skillswap.auth.throttles import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from skillswap.auth.tokens import KeyRing, MemoryDenylist, RedisDenylist, TokenDenylist
from skillswap.db import Database, create_engine
from skillswap.i18n import Catalogs
from skillswap.mail import Mailer, RecordingMailer
from skillswap.settings import Settings

if TYPE_CHECKING:
    from skillswap.realtime import Realtime

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
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
    clock: Clock = system_clock
    # Chat writer, hub, bridge and presence of this process (set by build_deps).
    realtime: Realtime | None = None
    # Filled by later capabilities (realtime hub, task broker, payment gateways, storage).
    extras: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        if self.realtime is not None:
            await self.realtime.close()
        await self.http.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.dispose()
        self.hasher.close()


async def build_deps(
    settings: Settings,
    *,
    mailer: Mailer | None = None,
    clock: Clock | None = None,
    http: httpx.AsyncClient | None = None,
) -> Deps:
    """Create engines, pools and clients on the running loop (nothing is built at import)."""
    from skillswap import events

    events.install_subscribers()
    db = Database(create_engine(settings))
    redis = None
    denylist: TokenDenylist
    limiter: RateLimiter
    if settings.redis_url:
        from redis.asyncio import BlockingConnectionPool, Redis

        # A burst of requests waits for a free connection instead of failing with "Too many
        # connections" (which the denylist would take for Redis being away).
        redis = Redis.from_pool(
            BlockingConnectionPool.from_url(
                settings.redis_url,
                max_connections=100,
                timeout=5,
                socket_timeout=5,
                socket_connect_timeout=2,
            )
        )
        denylist = RedisDenylist(redis, prefix=f"{settings.redis_prefix}denylist:")
        limiter = RedisRateLimiter(redis, prefix=f"{settings.redis_prefix}ratelimit:")
    else:
        denylist = MemoryDenylist()
        limiter = MemoryRateLimiter()
    built = Deps(
        settings=settings,
        db=db,
        redis=redis,
        denylist=denylist,
        hasher=PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        ),
        keys=KeyRing(settings),
        mailer=mailer or RecordingMailer(),
        catalogs=Catalogs(),
        http=http or httpx.AsyncClient(timeout=10.0),
        limiter=limiter,
        signed_in=SignedInUsers(settings.auth_user_cache_seconds),
        clock=clock or system_clock,
    )
    from skillswap.skills.cache import install_listing_cache

    # Every process that writes must invalidate cached listings on all nodes.
    install_listing_cache(built)
    from skillswap.realtime import build_realtime

    built.realtime = build_realtime(built)
    return built
