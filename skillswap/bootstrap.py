"""The composition root: the one place that builds a process's `Deps`.

Only entry points import this module (`serve`, the CLI, tests, benchmarks, and the coming worker
and scheduler). `bootstrap` runs inside the loop that will use what it creates: first the
platform resources (database, Redis, caches, clients), then this node's realtime service from
them, then `Deps` with the domain's wiring written out below: who reacts to which event, and
what deleting a skill asks the orders package. `Deps.close` closes everything in reverse order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx

from skillswap import events
from skillswap.accounts import deletion as account_deletion
from skillswap.accounts import exports as data_exports
from skillswap.auth.current_user import SignedInUsers
from skillswap.auth.passwords import PasswordHasher
from skillswap.auth.ratelimits import build_limits
from skillswap.auth.throttles import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from skillswap.auth.tokens import KeyRing, MemoryDenylist, RedisDenylist, TokenDenylist
from skillswap.chat import digest as chat_digest
from skillswap.db import Database, create_engine
from skillswap.deps import Clock, Deps, EventHandlers, OpenOrders, Subscriber, system_clock
from skillswap.i18n import Catalogs
from skillswap.mail import ConsoleMailer, Mailer, MailOff
from skillswap.mail.smtp import SmtpMailer
from skillswap.notifications import delivery
from skillswap.notifications.push import fcm_client
from skillswap.orders import reactions as order_reactions
from skillswap.orders.services import OpenOrdersOfSkills
from skillswap.payments import settlement as payment_settlement
from skillswap.points import alerts as ledger_alerts
from skillswap.points import signup_bonus
from skillswap.realtime import Realtime
from skillswap.settings import Settings
from skillswap.skills.cache import build_listing_cache
from skillswap.storage import Storage, open_storage
from skillswap.tasks.definitions import OutboxHandlers

# Who reacts to each event, in order; each runs inside the emitting transaction.
EVENT_HANDLERS: Mapping[type, Sequence[Subscriber]] = {
    # No account without its wallet (and its signup bonus, when due at signup).
    events.UserRegistered: (signup_bonus.on_user_registered,),
    # A verified address earns the signup bonus, once per address ever.
    events.EmailVerified: (signup_bonus.on_email_verified,),
    # The order's chat room, and the seller hears of the new order.
    events.OrderPlaced: (order_reactions.open_room_and_tell_the_seller,),
    # Buyer and seller hear of every transition the other side made.
    events.OrderTransitioned: (order_reactions.tell_the_other_side,),
}

# Which handler runs each kind of outbox row (skillswap.tasks.outbox.enqueue writes them in the
# transaction of the change that causes them; a worker runs them once it committed). A row of
# a kind listed nowhere is dead-lettered with "no handler", never dropped in silence.
OUTBOX_HANDLERS: OutboxHandlers = {
    # A notification's mail and push; an emailed code's mail.
    **delivery.HANDLERS,
    # The hourly digest of unread chat messages, for members who stayed away.
    **chat_digest.HANDLERS,
    # A failed ledger check, mailed to every administrator.
    **ledger_alerts.HANDLERS,
    # A gateway's stored webhook event, applied to its payment (credit, close, refund) once.
    **payment_settlement.HANDLERS,
    # Leaving: the mail of a scheduled deletion; a copy of one's data, built and mailed.
    **account_deletion.HANDLERS,
    **data_exports.HANDLERS,
}


def _redis_client(settings: Settings) -> Any:
    from redis.asyncio import BlockingConnectionPool, Redis

    # A burst of requests waits for a free connection instead of failing with "Too many
    # connections" (which the denylist would take for Redis being away).
    return Redis.from_pool(
        BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=100,
            timeout=5,
            socket_timeout=5,
            socket_connect_timeout=2,
        )
    )


def _shared_counters(settings: Settings, redis: Any | None) -> tuple[TokenDenylist, RateLimiter]:
    """The token denylist and the throttles: in Redis, shared by every node, when there is one."""
    if redis is None:
        return MemoryDenylist(), MemoryRateLimiter()
    prefix = settings.redis_prefix
    return (
        RedisDenylist(redis, prefix=f"{prefix}denylist:"),
        RedisRateLimiter(redis, prefix=f"{prefix}ratelimit:"),
    )


def _mailer(settings: Settings) -> Mailer:
    """SMTP when SMTP_HOST is set; otherwise each message is written to the log in development
    and dropped in production (a code written to production logs could open an account)."""
    if settings.smtp_host:
        return SmtpMailer(settings)
    return MailOff() if settings.is_production else ConsoleMailer()


async def bootstrap(
    settings: Settings,
    *,
    mailer: Mailer | None = None,
    clock: Clock | None = None,
    http: httpx.AsyncClient | None = None,
    storage: Storage | None = None,
    event_handlers: EventHandlers | None = None,
    open_orders: OpenOrders | None = None,
) -> Deps:
    """Create engines, pools, clients and the realtime node on the running loop.

    The keyword arguments replace one piece (a test's mailer, clock, HTTP client, storage or
    event table); a given HTTP client is closed with the rest, like the one made here.
    """
    clock = clock or system_clock
    stack = AsyncExitStack()
    try:
        db = Database(create_engine(settings))
        stack.push_async_callback(db.dispose)
        hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        stack.callback(hasher.close)
        redis: Any | None = None
        if settings.redis_url:
            redis = _redis_client(settings)
            stack.push_async_callback(redis.aclose)
        denylist, limiter = _shared_counters(settings, redis)
        http = http or httpx.AsyncClient(timeout=10.0)
        stack.push_async_callback(http.aclose)
        # Every process that writes must invalidate cached listings on all nodes.
        listing_cache = build_listing_cache(settings, redis, db)
        # STORAGE_BACKEND: the local disk, or an S3 client closed with the rest.
        storage = storage or await open_storage(settings, stack, clock=clock)
        # Built from the platform pieces; closed first (queued writes finish, sockets get 1001).
        realtime = Realtime(settings, db, clock)
        stack.push_async_callback(realtime.close)
        return Deps(
            settings=settings,
            db=db,
            redis=redis,
            denylist=denylist,
            hasher=hasher,
            keys=KeyRing(settings),
            mailer=mailer or _mailer(settings),
            catalogs=Catalogs(Path(settings.locales_dir) if settings.locales_dir else None),
            http=http,
            limiter=limiter,
            signed_in=SignedInUsers(settings.auth_user_cache_seconds),
            clock=clock,
            storage=storage,
            listing_cache=listing_cache,
            oidc_providers={},
            realtime=realtime,
            publisher=realtime,
            messages=realtime.writer,
            events=EVENT_HANDLERS if event_handlers is None else event_handlers,
            open_orders=open_orders or OpenOrdersOfSkills(),
            push=fcm_client(settings, http),
            rate_limits=build_limits(settings, redis),
            resources=stack,
        )
    except BaseException:
        await stack.aclose()
        raise
