"""A response cache for public listing reads, invalidated by every write that could change them.

Anonymous browsing (`GET /api/skills/`, `/api/skills/{id}/`, categories) is most of the
traffic and its answers are the same for everyone, so a node keeps the bytes of recent answers.
Correctness rests on one rule: an entry is served only while the *listing version* it was
stored under is still current, and the version moves after every commit that wrote a skill,
a category, a skill image or a user (whose public profile is embedded in skill responses).

- The version is read *before* the database is queried and the entry is stored under that
  version; writers bump it *after* their commit. Whatever interleaving happens, an entry that
  could hold pre-commit data carries a version older than the bumped one and is never served
  again. A write is therefore visible to the next read.
- With Redis the version is a Redis counter, so a write on one node invalidates every node;
  without Redis it is a counter in this process (the embedded default runs one node).
- Writers do not have to remember anything: session listeners notice ORM flushes and DML
  statements on the watched tables and register the bump as an after-commit hook of the unit
  of work (or, for a session outside a unit of work, run it right after its commit).
- If Redis cannot be read the cache is bypassed, and every entry also expires after
  `ENTRY_TTL_SECONDS` in case a bump was lost to a Redis failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from skillswap.models import Category, Skill, SkillImage, User

if TYPE_CHECKING:
    from skillswap.db import Database
    from skillswap.settings import Settings

log = logging.getLogger(__name__)

WATCHED_TABLES = frozenset({"skills", "skill_categories", "skill_images", "users"})
# A change to any other user column (password, tokens, locale...) leaves listings as they were.
USER_FIELDS_SHOWN = (
    "username",
    "display_name",
    "avatar_url",
    "is_active",
    "is_verified",
    "rating_sum",
    "rating_count",
)
MAX_CACHE_BYTES = 32 * 1024 * 1024
ENTRY_TTL_SECONDS = 60.0
_DIRTY = "skills.listings_dirty"
_HOOKED = "skills.listings_bump_hooked"

Token = tuple[int, bytes | None]
_caches: weakref.WeakKeyDictionary[Engine, ListingCache] = weakref.WeakKeyDictionary()


class ListingCache:
    """The listing version (Redis or local) and the bounded LRU of response bodies."""

    def __init__(
        self, redis: Any | None, version_key: str, *, max_bytes: int = MAX_CACHE_BYTES
    ) -> None:
        self._redis = redis
        self._version_key = version_key
        self._local = 0
        self._entries: OrderedDict[Any, tuple[Token, float, bytes]] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._pending: set[asyncio.Task[None]] = set()
        self._next_read: asyncio.Future[bytes | None] | None = None
        self._reader: asyncio.Task[None] | None = None

    async def token(self) -> Token | None:
        """The current version, or None when it cannot be known (then do not cache).

        Concurrent callers share Redis reads, but only a read *sent after* a caller arrived
        may answer it (a read already in flight could predate a write the caller must see):
        callers arriving during a read wait for the next one, which serves them all.
        """
        if self._redis is None:
            return (self._local, None)
        local = self._local
        loop = asyncio.get_running_loop()
        if self._next_read is None:
            self._next_read = loop.create_future()
        waiting = self._next_read
        if self._reader is None or self._reader.done():
            self._reader = loop.create_task(self._read_versions())
        remote = await asyncio.shield(waiting)
        return None if remote is None else (local, remote)

    async def _read_versions(self) -> None:
        assert self._redis is not None
        waiting: asyncio.Future[bytes | None] | None = None
        try:
            while self._next_read is not None:
                waiting, self._next_read = self._next_read, None
                try:
                    remote = (await self._redis.get(self._version_key)) or b"0"
                except Exception:  # Redis unreachable: serve from the database, uncached
                    log.warning("listing version unavailable; cache bypassed", exc_info=True)
                    remote = None
                if not waiting.done():
                    waiting.set_result(remote)
        finally:
            # Cancelled mid-read: nobody may be left waiting for an answer that never comes.
            for pending in (waiting, self._next_read):
                if pending is not None and not pending.done():
                    pending.set_result(None)
            self._next_read = None

    def get(self, key: Any, token: Token) -> bytes | None:
        """The stored body for `key` if it was stored under `token` and has not expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_token, expires_at, body = entry
        if stored_token != token or expires_at < time.monotonic():
            self._discard(key)
            return None
        self._entries.move_to_end(key)
        return body

    def put(self, key: Any, token: Token, body: bytes) -> None:
        """Remember `body` for `key`, evicting the least recently used entries beyond the cap."""
        if len(body) > self._max_bytes // 16:
            return
        self._discard(key)
        self._entries[key] = (token, time.monotonic() + ENTRY_TTL_SECONDS, body)
        self._bytes += len(body)
        while self._bytes > self._max_bytes and self._entries:
            oldest = next(iter(self._entries))
            self._discard(oldest)

    def _discard(self, key: Any) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[2])

    async def bump(self) -> None:
        """Move the version on: every cached answer, on every node, becomes stale."""
        self._local += 1
        if self._redis is not None:
            try:
                await self._redis.incr(self._version_key)
            except Exception:
                # Other nodes may serve stale answers until their entries expire (ENTRY_TTL).
                log.exception("could not bump the shared listing version")

    def bump_soon(self) -> None:
        """Bump from synchronous code: the local version at once, Redis on the running loop."""
        self._local += 1
        if self._redis is not None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            task = loop.create_task(self._incr_remote())
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _incr_remote(self) -> None:
        assert self._redis is not None
        try:
            await self._redis.incr(self._version_key)
        except Exception:
            log.exception("could not bump the shared listing version")


def build_listing_cache(settings: Settings, redis: Any | None, db: Database) -> ListingCache:
    """This process's listing cache, watching `db` for writes (every process that writes must
    invalidate cached listings on all nodes, so every process builds one)."""
    cache = ListingCache(redis, f"{settings.redis_prefix}skills:listing-version")
    _caches[db.engine.sync_engine] = cache
    _watch_sessions()
    return cache


# -- noticing writes -------------------------------------------------------------------------

_watching = False


def _watch_sessions() -> None:
    global _watching
    if _watching:
        return
    _watching = True
    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "do_orm_execute", _on_execute)
    event.listen(Session, "after_commit", _after_commit)
    event.listen(Session, "after_rollback", _after_rollback)


def _cache_of(session: Session) -> ListingCache | None:
    bind = session.bind
    if isinstance(bind, Connection):
        bind = bind.engine
    return _caches.get(bind) if isinstance(bind, Engine) else None


def _mark_dirty(session: Session) -> None:
    cache = _cache_of(session)
    if cache is None or session.info.get(_HOOKED):
        return
    uow = session.info.get("uow")
    if uow is not None:
        session.info[_HOOKED] = True
        uow.after_commit(cache.bump)
    else:
        session.info[_DIRTY] = True


def _user_change_is_visible(user: User) -> bool:
    state = inspect(user)
    return any(state.attrs[name].history.has_changes() for name in USER_FIELDS_SHOWN)


def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, (Skill, Category, SkillImage)) or (
            isinstance(obj, User) and obj not in session.new and _user_change_is_visible(obj)
        ):
            _mark_dirty(session)
            return


def _on_execute(state: ORMExecuteState) -> None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in WATCHED_TABLES:
        _mark_dirty(state.session)


def _after_commit(session: Session) -> None:
    session.info.pop(_HOOKED, None)
    if session.info.pop(_DIRTY, False):
        cache = _cache_of(session)
        if cache is not None:
            cache.bump_soon()


def _after_rollback(session: Session) -> None:
    session.info.pop(_HOOKED, None)
    session.info.pop(_DIRTY, None)
